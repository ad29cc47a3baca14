//! `[server]`: the listener, who counts as the front server (Unix socket permissions, a shared
//! secret, trusted proxies), the internal prefix and the timers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::super::types::{
    DEFAULT_SOCKET_MODE, FrontAuthSettings, FrontServer, Listen, RestoreTier, ServerSettings,
};
use super::super::units::duration_or;
use super::super::{ConfigError, FsChecks, RawServer, Secret, invalid, read_secret_file};
use crate::ipprefix::IpPrefix;

/// Shortest accepted front secret.
pub const MIN_FRONT_SECRET_BYTES: usize = 32;
/// `server.url_cache_entries` when unset: the hot set of a busy site, about 5 MiB per mount.
pub const DEFAULT_URL_CACHE_ENTRIES: usize = 10_000;
/// A bound on the bound: 10 million URLs would be gigabytes, almost surely a typo.
const MAX_URL_CACHE_ENTRIES: usize = 1_000_000;
/// `sun_path` holds 108 bytes with the NUL; stowaway binds a temp name (`<path>.<pid>.tmp`)
/// first, so the configured path must leave room for that suffix.
const MAX_SOCKET_PATH: usize = 107 - 16;

/// Validates `[server]`.
pub fn validate(s: &RawServer, fs: FsChecks) -> Result<ServerSettings, ConfigError> {
    let listen_s = s.listen.clone().unwrap_or_else(|| "127.0.0.1:8700".into());
    let listen = parse_listen(&listen_s, fs)?;
    let front_auth = validate_front_auth(s, &listen, fs)?;
    let metrics_listen = match s.metrics_listen.as_deref() {
        None | Some("") => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.metrics_listen",
                a,
                "not an IP:port address",
                "use e.g. \"127.0.0.1:9700\", or remove it to serve /metrics on server.listen",
            )
        })?),
    };
    if metrics_listen.is_some() && metrics_listen == listen.tcp() {
        return Err(invalid(
            "server.metrics_listen",
            listen.to_string(),
            "the same address as server.listen",
            "use another port, or remove it to serve /metrics on server.listen",
        ));
    }
    let workers = s.workers.unwrap_or(0);
    if workers > 256 {
        return Err(invalid(
            "server.workers",
            workers,
            "too many workers",
            "use 0 (one per core) or a small number",
        ));
    }
    let url_cache_entries = s.url_cache_entries.unwrap_or(DEFAULT_URL_CACHE_ENTRIES);
    if url_cache_entries > MAX_URL_CACHE_ENTRIES {
        return Err(invalid(
            "server.url_cache_entries",
            url_cache_entries,
            format!("more than {MAX_URL_CACHE_ENTRIES} entries"),
            "each entry holds a presigned URL (about 0.5 KiB): use e.g. 10000, or 0 to disable the cache",
        ));
    }
    let storage_class_refresh = duration_or(
        "server.storage_class_refresh",
        &s.storage_class_refresh,
        Duration::ZERO,
    )?;
    let restore_days = validate_restore_days(s.restore_days, storage_class_refresh)?;
    let internal_prefix =
        validate_internal_prefix(s.internal_prefix.as_deref().unwrap_or("/_stowaway_local/"))?;
    let front = match s.front.as_deref().unwrap_or("nginx") {
        "nginx" => FrontServer::Nginx,
        "lighttpd" => FrontServer::Lighttpd,
        other => {
            return Err(invalid(
                "server.front",
                other,
                "unknown front server",
                "use \"nginx\" or \"lighttpd\"",
            ));
        }
    };
    let mut v = ServerSettings {
        listen,
        workers,
        internal_prefix,
        front,
        fallback_header: s.fallback_header.unwrap_or(true),
        verdict_ttl: duration_or("server.verdict_ttl", &s.verdict_ttl, Duration::from_secs(5))?,
        metrics_listen,
        shutdown_timeout: duration_or(
            "server.shutdown_timeout",
            &s.shutdown_timeout,
            Duration::from_secs(30),
        )?,
        s3_probe_interval: duration_or(
            "server.s3_probe_interval",
            &s.s3_probe_interval,
            Duration::from_secs(15),
        )?,
        url_cache_entries,
        admin_listen: None,
        admin_token_file: None,
        admin_token: None,
        tombstone_refresh: duration_or(
            "server.tombstone_refresh",
            &s.tombstone_refresh,
            Duration::from_secs(30),
        )?,
        storage_class_refresh,
        restore_days,
        restore_tier: validate_restore_tier(s.restore_tier.as_deref())?,
        front_auth,
    };
    (v.admin_listen, v.admin_token_file, v.admin_token) = validate_admin(s, &v, fs)?;
    Ok(v)
}

type Admin = (Option<Listen>, Option<std::path::PathBuf>, Option<Secret>);

/// `server.admin_listen` and `server.admin_token_file`: the admin API deletes files, so it
/// listens on loopback or a Unix socket only, and never without a token.
fn validate_admin(s: &RawServer, v: &ServerSettings, fs: FsChecks) -> Result<Admin, ConfigError> {
    const KEY: &str = "server.admin_listen";
    let listen = match s.admin_listen.as_deref() {
        None | Some("") => None,
        Some(a) => Some(match parse_listen(a, fs) {
            Ok(Listen::Tcp(addr)) if !addr.ip().is_loopback() => {
                return Err(invalid(
                    KEY,
                    a,
                    "not a loopback address: the admin API deletes files and must not be reachable from other hosts",
                    "use e.g. \"127.0.0.1:8701\" or \"unix:/run/stowaway/admin.sock\"",
                ));
            }
            Ok(l) => l,
            Err(ConfigError::Invalid { problem, fix, .. }) => {
                return Err(invalid(KEY, a, problem, fix));
            }
            Err(e) => return Err(e),
        }),
    };
    if let Some(l) = &listen {
        let taken = [Some(v.listen.clone()), v.metrics_listen.map(Listen::Tcp)];
        if taken.contains(&Some(l.clone())) {
            return Err(invalid(
                KEY,
                l.to_string(),
                "the same address as server.listen or server.metrics_listen",
                "give the admin API its own port or socket",
            ));
        }
    }
    match (&listen, &s.admin_token_file) {
        (None, None) => Ok((None, None, None)),
        (None, Some(f)) => Err(invalid(
            "server.admin_token_file",
            f,
            "only applies when server.admin_listen is set",
            "set server.admin_listen = \"unix:/run/stowaway/admin.sock\", or remove it",
        )),
        (Some(l), None) => Err(invalid(
            "server.admin_token_file",
            "",
            format!("missing: the admin API on {l} needs a bearer token"),
            "write one with `openssl rand -hex 32 > /etc/stowaway/admin-token; chmod 600 /etc/stowaway/admin-token` and set server.admin_token_file to it",
        )),
        (Some(_), Some(f)) => {
            let token = read_secret_file("server.admin_token_file", f)?;
            if let Err((problem, fix)) = check_front_secret(&token) {
                return Err(invalid("server.admin_token_file", f, problem, fix));
            }
            Ok((listen, Some(f.clone()), Some(token)))
        }
    }
}

/// Longest `server.restore_days`: a year of paying for a restored copy is a typo, not a plan
/// (copy the object back to STANDARD instead).
const MAX_RESTORE_DAYS: u32 = 365;

/// `server.restore_days`: 0 (no RestoreObject) up to a year; more than 0 needs the storage
/// classes to be known, i.e. `server.storage_class_refresh` on.
fn validate_restore_days(v: Option<u32>, refresh: Duration) -> Result<u32, ConfigError> {
    let d = v.unwrap_or(0);
    if d > MAX_RESTORE_DAYS {
        return Err(invalid(
            "server.restore_days",
            d,
            format!("more than {MAX_RESTORE_DAYS} days"),
            "use e.g. 7 (days a restored copy stays readable), or 0 to start no restores",
        ));
    }
    if d > 0 && refresh.is_zero() {
        return Err(invalid(
            "server.restore_days",
            d,
            "restores are started for objects known to be archived, and server.storage_class_refresh is off, so none ever is",
            "set server.storage_class_refresh (e.g. \"1h\"), or restore_days = 0",
        ));
    }
    Ok(d)
}

/// `server.restore_tier`: one of S3's three retrieval tiers, spelt as S3 spells them.
fn validate_restore_tier(v: Option<&str>) -> Result<RestoreTier, ConfigError> {
    match v.unwrap_or("Standard") {
        "Standard" => Ok(RestoreTier::Standard),
        "Bulk" => Ok(RestoreTier::Bulk),
        "Expedited" => Ok(RestoreTier::Expedited),
        other => Err(invalid(
            "server.restore_tier",
            other,
            "not an S3 retrieval tier",
            "use \"Standard\", \"Bulk\" or \"Expedited\"",
        )),
    }
}

/// `server.internal_prefix`: the URL path under which the front server serves local files.
fn validate_internal_prefix(p: &str) -> Result<String, ConfigError> {
    let ok = p.starts_with('/')
        && p.ends_with('/')
        && p.len() > 2
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
        && !p.contains("//")
        && !p.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(p.to_string())
    } else {
        Err(invalid(
            "server.internal_prefix",
            p,
            "must be an absolute URL path of letters, digits, `_`, `-`, `.`, starting and ending with `/`",
            "use e.g. \"/_stowaway_local/\" and the same value in the nginx `internal` location",
        ))
    }
}

/// Parses `server.listen`: `IP:port` or `unix:/absolute/path`.
pub fn parse_listen(s: &str, fs: FsChecks) -> Result<Listen, ConfigError> {
    let Some(p) = s.strip_prefix("unix:") else {
        return s.parse().map(Listen::Tcp).map_err(|_| {
            invalid(
                "server.listen",
                s,
                "not an IP:port address or unix:/path",
                "use e.g. \"unix:/run/stowaway/stowaway.sock\" (the front server on this host) or \"127.0.0.1:8700\"",
            )
        });
    };
    let path = Path::new(p);
    if !path.is_absolute() || p.ends_with('/') || p.chars().any(char::is_control) {
        return Err(invalid(
            "server.listen",
            s,
            "the socket path must be an absolute file path",
            "use e.g. \"unix:/run/stowaway/stowaway.sock\"",
        ));
    }
    if p.len() > MAX_SOCKET_PATH {
        return Err(invalid(
            "server.listen",
            s,
            format!(
                "the socket path is longer than {MAX_SOCKET_PATH} bytes (the kernel's limit for socket addresses, less room for a temporary name)"
            ),
            "use a shorter path, e.g. under /run/stowaway/",
        ));
    }
    match fs {
        FsChecks::Skip => {}
        FsChecks::Check => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            if !dir.is_dir() {
                return Err(invalid(
                    "server.listen",
                    s,
                    format!("the directory {} does not exist", dir.display()),
                    "create it (owned by stowaway's user), e.g. with systemd's RuntimeDirectory=stowaway",
                ));
            }
            if let Ok(m) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_socket() {
                    return Err(invalid(
                        "server.listen",
                        s,
                        "the path exists and is not a socket (stowaway only ever replaces a stale socket)",
                        "choose another path, or remove that file yourself",
                    ));
                }
            }
        }
    }
    Ok(Listen::Unix(path.to_path_buf()))
}

/// Parses `server.socket_mode`, an octal string such as `"0660"`.
pub fn parse_socket_mode(s: &str) -> Result<u32, ConfigError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = (!digits.is_empty() && digits.len() <= 4)
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            invalid(
                "server.socket_mode",
                s,
                "not an octal permission mode",
                "use e.g. \"0660\" (owner and group may connect)",
            )
        })?;
    if mode & 0o002 != 0 {
        return Err(invalid(
            "server.socket_mode",
            s,
            "any local user could connect and pass as the front server",
            "drop the write bit for others, e.g. \"0660\", and set server.socket_group to the front server's group",
        ));
    }
    if mode & 0o200 == 0 {
        return Err(invalid(
            "server.socket_mode",
            s,
            "the owner cannot connect (connecting needs write permission)",
            "use e.g. \"0660\"",
        ));
    }
    Ok(mode)
}

/// The id of group `name`, through `getent` (so NSS groups count), else `/etc/group`.
pub fn lookup_group(name: &str) -> Option<u32> {
    let from_getent = std::process::Command::new("getent")
        .args(["group", "--", name])
        .stderr(std::process::Stdio::null())
        .output();
    let text = match from_getent {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        // `getent` ran and does not know it.
        Ok(o) if o.status.code() == Some(2) => return None,
        _ => std::fs::read_to_string("/etc/group").unwrap_or_default(),
    };
    group_id(&text, name)
}

/// The gid of `name` in `group(5)` lines.
fn group_id(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.trim().parse().ok()
    })
}

/// Checks a front secret: long enough, and plain enough to go into a header and into nginx and
/// lighttpd config strings unquoted.
pub fn check_front_secret(s: &Secret) -> Result<(), (String, &'static str)> {
    let v = s.expose();
    if v.len() < MIN_FRONT_SECRET_BYTES {
        return Err((
            format!("shorter than {MIN_FRONT_SECRET_BYTES} bytes"),
            "write a random secret into it, e.g. `openssl rand -hex 32 > FILE`",
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=._~-".contains(&b))
    {
        return Err((
            "holds characters other than letters, digits and + / = . _ ~ -".into(),
            "use hex or base64, e.g. `openssl rand -hex 32 > FILE`",
        ));
    }
    Ok(())
}

/// Validates the front-authentication keys of `[server]` for `listen`.
pub fn validate_front_auth(
    s: &RawServer,
    listen: &Listen,
    fs: FsChecks,
) -> Result<FrontAuthSettings, ConfigError> {
    let unix = matches!(listen, Listen::Unix(_));
    let only_unix = |key: &str, v: &str| {
        invalid(
            key,
            v,
            "only applies when server.listen is a unix: socket",
            "remove it, or set server.listen = \"unix:/run/stowaway/stowaway.sock\"",
        )
    };
    let socket_mode = match (&s.socket_mode, unix) {
        (Some(m), false) => return Err(only_unix("server.socket_mode", m)),
        (Some(m), true) => Some(parse_socket_mode(m)?),
        (None, true) => Some(DEFAULT_SOCKET_MODE),
        (None, false) => None,
    };
    let (socket_group, socket_gid) = match (&s.socket_group, unix) {
        (Some(g), false) => return Err(only_unix("server.socket_group", g)),
        (Some(g), true) => {
            if g.is_empty() || g.contains([':', '\n', '/']) {
                return Err(invalid(
                    "server.socket_group",
                    g,
                    "not a group name",
                    "name the front server's group, e.g. \"www-data\"",
                ));
            }
            let gid = match fs {
                FsChecks::Skip => None,
                FsChecks::Check => Some(lookup_group(g).ok_or_else(|| {
                    invalid(
                        "server.socket_group",
                        g,
                        "no such group",
                        "name an existing group the front server runs in, e.g. \"www-data\" (see `getent group`)",
                    )
                })?),
            };
            (Some(g.clone()), gid)
        }
        (None, _) => (None, None),
    };
    let front_secret = match &s.front_secret_file {
        None => None,
        Some(f) => {
            let secret = read_secret_file("server.front_secret_file", f)?;
            if let Err((problem, fix)) = check_front_secret(&secret) {
                return Err(invalid("server.front_secret_file", f, problem, fix));
            }
            Some(secret)
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().flatten().enumerate() {
        let key = format!("server.trusted_proxies[{i}]");
        if unix {
            return Err(invalid(
                &key,
                p,
                "only applies to a TCP listener",
                "remove it: over the Unix socket the front server is already trusted",
            ));
        }
        let prefix = IpPrefix::parse(p.trim()).ok_or_else(|| {
            invalid(
                &key,
                p,
                "not an address or CIDR prefix",
                "use e.g. \"10.0.0.5\" or \"10.0.0.0/24\" (the front servers' addresses)",
            )
        })?;
        if let Some(problem) = untrustworthy_proxy(&prefix) {
            return Err(invalid(
                &key,
                p,
                problem,
                "list only the addresses of front servers on other hosts; for a front server on this host use server.listen = \"unix:/run/stowaway/stowaway.sock\" or server.front_secret_file",
            ));
        }
        trusted_proxies.push(prefix);
    }
    Ok(FrontAuthSettings {
        socket_mode,
        socket_group,
        socket_gid,
        front_secret_file: s.front_secret_file.clone(),
        front_secret,
        trusted_proxies,
    })
}

/// Why a `trusted_proxies` entry would trust far more than a front server, if it would.
/// Loopback is no trust boundary (every local process can connect from it), and a prefix
/// wider than a /8 (IPv4) or /16 (IPv6) is not a list of front servers.
pub(super) fn untrustworthy_proxy(p: &IpPrefix) -> Option<&'static str> {
    let loopback: [std::net::IpAddr; 2] = [
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    if loopback.iter().any(|&a| p.contains(a)) || p.network().is_loopback() {
        return Some(
            "contains a loopback address: every local process connects from there, so any of them could claim any client address",
        );
    }
    let min = if p.is_ipv4() { 8 } else { 16 };
    if p.prefix_len() < min {
        return Some("is far too wide to be a list of front servers");
    }
    None
}
#[cfg(test)]
mod tests {
    #[test]
    fn loopback_and_wide_trusted_proxies_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.0.0.0/8",
            "::1",
            "0.0.0.0/0",
            "::/0",
            "0.0.0.0/1",
            "10.0.0.0/7",
            "2001::/15",
            "::ffff:127.0.0.1",
            "127.0.0.2",
        ] {
            let p = IpPrefix::parse(bad).unwrap();
            assert!(untrustworthy_proxy(&p).is_some(), "{bad}");
        }
        for good in [
            "10.0.0.5",
            "10.0.0.0/24",
            "10.0.0.0/8",
            "2001:db8::/32",
            "fd00::7",
        ] {
            let p = IpPrefix::parse(good).unwrap();
            assert_eq!(untrustworthy_proxy(&p), None, "{good}");
        }
    }

    use super::*;

    fn raw() -> RawServer {
        RawServer::default()
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("127.0.0.1:8700", FsChecks::Skip).unwrap(),
            Listen::Tcp("127.0.0.1:8700".parse().unwrap())
        );
        assert_eq!(
            parse_listen("unix:/run/s/s.sock", FsChecks::Skip).unwrap(),
            Listen::Unix("/run/s/s.sock".into())
        );
        for bad in [
            "localhost",
            "unix:",
            "unix:relative.sock",
            "unix:/run/dir/",
            "unix:/run/a\nb",
        ] {
            assert_eq!(
                key_of(parse_listen(bad, FsChecks::Skip).unwrap_err()),
                "server.listen",
                "{bad}"
            );
        }
        let long = format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH));
        assert!(parse_listen(&long, FsChecks::Skip).is_err());
        assert_eq!(
            Listen::Unix("/run/x.sock".into()).to_string(),
            "unix:/run/x.sock"
        );
    }

    #[test]
    fn listen_never_replaces_a_file_that_is_not_a_socket() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file.sock");
        std::fs::write(&f, b"data").unwrap();
        let e = parse_listen(&format!("unix:{}", f.display()), FsChecks::Check).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        let missing = d.path().join("nodir/x.sock");
        let e = parse_listen(&format!("unix:{}", missing.display()), FsChecks::Check).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(
            parse_listen(
                &format!("unix:{}/ok.sock", d.path().display()),
                FsChecks::Check
            )
            .is_ok()
        );
    }

    #[test]
    fn socket_modes() {
        assert_eq!(parse_socket_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_socket_mode("600").unwrap(), 0o600);
        assert_eq!(parse_socket_mode("0o640").unwrap(), 0o640);
        for bad in [
            "",
            "0668",
            "rw-rw----",
            "10660",
            "0666",
            "0777",
            "0060",
            "660x",
        ] {
            assert_eq!(
                key_of(parse_socket_mode(bad).unwrap_err()),
                "server.socket_mode",
                "{bad}"
            );
        }
    }

    #[test]
    fn group_lines() {
        let t = "root:x:0:\nwww-data:x:33:\nbad\nweb:x:1000:alice,bob\n";
        assert_eq!(group_id(t, "www-data"), Some(33));
        assert_eq!(group_id(t, "web"), Some(1000));
        assert_eq!(group_id(t, "www"), None);
        assert_eq!(group_id(t, "bad"), None);
        assert_eq!(lookup_group("root"), Some(0));
        assert_eq!(lookup_group("no-such-group-stowaway"), None);
    }

    #[test]
    fn unix_only_keys_are_refused_on_tcp_and_groups_must_exist() {
        let tcp = Listen::Tcp("127.0.0.1:1".parse().unwrap());
        let unix = Listen::Unix("/tmp/x.sock".into());
        let mut r = raw();
        r.socket_mode = Some("0660".into());
        assert_eq!(
            key_of(validate_front_auth(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.socket_mode"
        );
        let mut r = raw();
        r.socket_group = Some("root".into());
        assert_eq!(
            key_of(validate_front_auth(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.socket_group"
        );
        let a = validate_front_auth(&r, &unix, FsChecks::Check).unwrap();
        assert_eq!((a.socket_gid, a.socket_mode), (Some(0), Some(0o660)));
        r.socket_group = Some("no-such-group-stowaway".into());
        let e = validate_front_auth(&r, &unix, FsChecks::Check).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        r.socket_group = Some("a:b".into());
        assert_eq!(
            key_of(validate_front_auth(&r, &unix, FsChecks::Skip).unwrap_err()),
            "server.socket_group"
        );
        let mut r = raw();
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into()]);
        assert_eq!(
            key_of(validate_front_auth(&r, &unix, FsChecks::Skip).unwrap_err()),
            "server.trusted_proxies[0]"
        );
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into(), "10.0.0.300".into()]);
        assert_eq!(
            key_of(validate_front_auth(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.trusted_proxies[1]"
        );
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]);
        assert_eq!(
            validate_front_auth(&r, &tcp, FsChecks::Skip)
                .unwrap()
                .trusted_proxies
                .len(),
            2
        );
    }

    #[test]
    fn front_secret_rules() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str, mode: u32| {
            let f = d.path().join(name);
            std::fs::write(&f, body).unwrap();
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            f
        };
        let tcp = Listen::Tcp("127.0.0.1:1".parse().unwrap());
        let mut r = raw();
        let good = "0123456789abcdef0123456789abcdef";
        r.front_secret_file = Some(write("ok", &format!("{good}\n"), 0o600));
        let a = validate_front_auth(&r, &tcp, FsChecks::Skip).unwrap();
        assert_eq!(a.front_secret.unwrap().expose(), good);
        for (name, body, mode, needle) in [
            ("open", good, 0o644, "readable by group or others"),
            ("short", "abc", 0o600, "shorter than"),
            (
                "quote",
                "0123456789abcdef0123456789abcde\"",
                0o600,
                "characters",
            ),
            (
                "space",
                "0123456789abcdef 0123456789abcdef",
                0o600,
                "characters",
            ),
        ] {
            r.front_secret_file = Some(write(name, body, mode));
            let e = validate_front_auth(&r, &tcp, FsChecks::Skip)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("server.front_secret_file") && e.contains(needle),
                "{name}: {e}"
            );
            assert!(
                !e.contains("0123456789abcdef"),
                "the secret was echoed: {e}"
            );
        }
    }

    use super::super::testing::server;

    #[test]
    fn listen_is_an_address_or_a_socket_path() {
        server("listen = \"127.0.0.1:9000\"").accepted();
        server("listen = \"unix:/run/stowaway/s.sock\"").accepted();
        server("listen = \"localhost:9000\"").refused("server.listen");
        server("listen = \"unix:run/s.sock\"").refused("server.listen");
    }

    #[test]
    fn metrics_listen_is_an_address_other_than_listen() {
        let s = server("metrics_listen = \"127.0.0.1:9700\"").accepted();
        assert_eq!(
            s.server.metrics_listen,
            Some("127.0.0.1:9700".parse().unwrap())
        );
        assert_eq!(
            server("metrics_listen = \"\"")
                .accepted()
                .server
                .metrics_listen,
            None
        );
        server("metrics_listen = \"9700\"").refused("server.metrics_listen");
        let e = server("listen = \"127.0.0.1:9700\"\nmetrics_listen = \"127.0.0.1:9700\"")
            .refused("server.metrics_listen");
        assert!(e.contains("same address"), "{e}");
        // On a Unix socket there is no address to collide with.
        server("listen = \"unix:/run/s.sock\"\nmetrics_listen = \"127.0.0.1:8700\"").accepted();
    }

    #[test]
    fn admin_api_is_loopback_or_unix_and_needs_a_private_token() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str, mode: u32| {
            let f = d.path().join(name);
            std::fs::write(&f, body).unwrap();
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            f.display().to_string()
        };
        let good = write("ok", "0123456789abcdef0123456789abcdef\n", 0o600);
        let with = |listen: &str, file: &str| {
            server(&format!(
                "admin_listen = \"{listen}\"\nadmin_token_file = \"{file}\""
            ))
        };
        assert_eq!(
            server("").accepted().server.admin_listen,
            None,
            "off by default"
        );
        let s = with("127.0.0.1:8701", &good).accepted();
        assert_eq!(
            s.server.admin_listen,
            Some(Listen::Tcp("127.0.0.1:8701".parse().unwrap()))
        );
        assert_eq!(
            s.server.admin_token.unwrap().expose(),
            "0123456789abcdef0123456789abcdef"
        );
        with("[::1]:8701", &good).accepted();
        with("unix:/run/stowaway/admin.sock", &good).accepted();
        for bad in ["0.0.0.0:8701", "10.0.0.5:8701", "[::]:8701"] {
            let e = with(bad, &good).refused("server.admin_listen");
            assert!(e.contains("not a loopback address"), "{bad}: {e}");
        }
        with("localhost:8701", &good).refused("server.admin_listen");
        with("unix:run/admin.sock", &good).refused("server.admin_listen");
        let e = server("listen = \"127.0.0.1:8700\"\nadmin_listen = \"127.0.0.1:8700\"")
            .refused("server.admin_listen");
        assert!(e.contains("same address"), "{e}");
        let e = server("admin_listen = \"127.0.0.1:8701\"").refused("server.admin_token_file");
        assert!(e.contains("needs a bearer token"), "{e}");
        let e =
            server(&format!("admin_token_file = \"{good}\"")).refused("server.admin_token_file");
        assert!(e.contains("only applies when server.admin_listen"), "{e}");
        let open = write("open", "0123456789abcdef0123456789abcdef", 0o640);
        let e = with("127.0.0.1:8701", &open).refused("server.admin_token_file");
        assert!(e.contains("readable by group or others"), "{e}");
        let short = write("short", "abc", 0o600);
        let e = with("127.0.0.1:8701", &short).refused("server.admin_token_file");
        assert!(e.contains("shorter than") && !e.contains("abc\""), "{e}");
    }

    #[test]
    fn workers_are_at_most_256() {
        assert_eq!(server("workers = 256").accepted().server.workers, 256);
        assert_eq!(server("").accepted().server.workers, 0);
        server("workers = 257").refused("server.workers");
    }

    #[test]
    fn url_cache_entries_default_zero_and_bound() {
        assert_eq!(
            server("").accepted().server.url_cache_entries,
            DEFAULT_URL_CACHE_ENTRIES
        );
        assert_eq!(
            server("url_cache_entries = 0")
                .accepted()
                .server
                .url_cache_entries,
            0
        );
        assert_eq!(
            server("url_cache_entries = 1000000")
                .accepted()
                .server
                .url_cache_entries,
            1_000_000
        );
        let e = server("url_cache_entries = 1000001").refused("server.url_cache_entries");
        assert!(e.contains("0 to disable"), "{e}");
    }

    #[test]
    fn internal_prefix_is_a_plain_absolute_directory_path() {
        for good in ["/_stowaway_local/", "/a/", "/x.y/z-1/"] {
            let s = server(&format!("internal_prefix = \"{good}\"")).accepted();
            assert_eq!(s.server.internal_prefix, good);
        }
        for bad in [
            "", "/", "//", "_local/", "/_local", "/a//b/", "/a/../b/", "/./", "/a b/", "/ä/",
        ] {
            server(&format!("internal_prefix = \"{bad}\"")).refused("server.internal_prefix");
        }
    }

    #[test]
    fn front_is_nginx_or_lighttpd() {
        assert_eq!(server("").accepted().server.front, FrontServer::Nginx);
        let s = server("front = \"lighttpd\"").accepted();
        assert_eq!(s.server.front, FrontServer::Lighttpd);
        server("front = \"apache\"").refused("server.front");
        server("front = \"Nginx\"").refused("server.front");
    }

    #[test]
    fn timers_are_durations() {
        let s =
            server("verdict_ttl = \"0s\"\nshutdown_timeout = \"1m\"\ns3_probe_interval = \"2\"")
                .accepted();
        assert_eq!(s.server.verdict_ttl, Duration::ZERO);
        assert_eq!(s.server.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(s.server.s3_probe_interval, Duration::from_secs(2));
        for key in ["verdict_ttl", "shutdown_timeout", "s3_probe_interval"] {
            let e = server(&format!("{key} = \"soon\"")).refused(&format!("server.{key}"));
            assert!(e.contains("not a duration"), "{e}");
        }
    }

    #[test]
    fn front_auth_keys_are_checked_through_server() {
        server("listen = \"unix:/run/s.sock\"\nsocket_mode = \"0640\"").accepted();
        server("socket_mode = \"0660\"").refused("server.socket_mode");
        server("listen = \"unix:/run/s.sock\"\nsocket_mode = \"0666\"")
            .refused("server.socket_mode");
        server("socket_group = \"www-data\"").refused("server.socket_group");
        server("trusted_proxies = [\"10.0.0.0/24\"]").accepted();
        server("trusted_proxies = [\"10.0.0.0/24\", \"127.0.0.1\"]")
            .refused("server.trusted_proxies[1]");
        server("front_secret_file = \"/nonexistent/stowaway-front\"")
            .refused("server.front_secret_file");
    }

    #[test]
    fn storage_class_refresh_is_a_duration_off_by_default() {
        let s = server("").accepted();
        assert_eq!(s.server.storage_class_refresh, Duration::ZERO);
        assert_eq!(s.server.restore_days, 0);
        assert_eq!(s.server.restore_tier, RestoreTier::Standard);
        let s = server("storage_class_refresh = \"1h\"").accepted();
        assert_eq!(s.server.storage_class_refresh, Duration::from_secs(3600));
        let e =
            server("storage_class_refresh = \"hourly\"").refused("server.storage_class_refresh");
        assert!(e.contains("not a duration"), "{e}");
    }

    #[test]
    fn restore_days_is_bounded_and_needs_the_refresh() {
        let s = server("storage_class_refresh = \"1h\"\nrestore_days = 7").accepted();
        assert_eq!(s.server.restore_days, 7);
        server("storage_class_refresh = \"1h\"\nrestore_days = 365").accepted();
        let e = server("storage_class_refresh = \"1h\"\nrestore_days = 366")
            .refused("server.restore_days");
        assert!(e.contains("more than 365 days"), "{e}");
        let e = server("restore_days = 7").refused("server.restore_days");
        assert!(e.contains("set server.storage_class_refresh"), "{e}");
        server("restore_days = 0").accepted();
    }

    #[test]
    fn restore_tier_is_one_of_s3s_tiers() {
        for (t, want) in [
            ("Standard", RestoreTier::Standard),
            ("Bulk", RestoreTier::Bulk),
            ("Expedited", RestoreTier::Expedited),
        ] {
            let s = server(&format!("restore_tier = \"{t}\"")).accepted();
            assert_eq!(s.server.restore_tier, want);
            assert_eq!(want.as_str(), t);
        }
        for bad in ["standard", "Fast", ""] {
            let e = server(&format!("restore_tier = \"{bad}\"")).refused("server.restore_tier");
            assert!(
                e.contains("use \"Standard\", \"Bulk\" or \"Expedited\""),
                "{e}"
            );
        }
    }
}
