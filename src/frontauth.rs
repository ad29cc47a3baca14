//! Who may talk to the decision endpoints, and whose word counts for the client address.
//!
//! Loopback is not a trust boundary: every local process (and, with a remote front, every host
//! that reaches the listener) can send `X-Real-IP` / `X-Forwarded-For`. A request is *from the
//! front server* when it arrived
//! * on the Unix socket of `server.listen = "unix:/path"` (its permissions admit only the front
//!   server's user or group), or
//! * with the shared secret of `server.front_secret_file` in [`FRONT_HEADER`], or
//! * from an address in `server.trusted_proxies`.
//!
//! Only then are the forwarded-address headers honoured; otherwise the socket peer is the
//! client. With a front secret configured, a request without it is refused outright.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::access::IpPrefix;
use crate::config::{ConfigError, FsChecks, RawServer, Secret, invalid, read_secret_file};

/// The header the generated front configs put the shared secret in.
pub const FRONT_HEADER: HeaderName = HeaderName::from_static("x-stowaway-front");
/// Its spelling in front-server configs.
pub const FRONT_HEADER_NAME: &str = "X-Stowaway-Front";
/// Shortest accepted front secret.
pub const MIN_FRONT_SECRET_BYTES: usize = 32;
/// Default `server.socket_mode`: the owner and the socket's group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// `sun_path` holds 108 bytes with the NUL; stowaway binds a temp name (`<path>.<pid>.tmp`)
/// first, so the configured path must leave room for that suffix.
const MAX_SOCKET_PATH: usize = 107 - 16;

/// Where the decision endpoints listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix stream socket at this absolute path.
    Unix(PathBuf),
}

impl Listen {
    /// The TCP address, if this is a TCP listener.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Listen::Tcp(a) => Some(*a),
            Listen::Unix(_) => None,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Front authentication settings of `[server]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrontAuthSettings {
    /// Permissions of the Unix socket; `None` for a TCP listener.
    #[serde(serialize_with = "octal", skip_serializing_if = "Option::is_none")]
    pub socket_mode: Option<u32>,
    /// Group the Unix socket is given to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// Its id, resolved at validation (`None` without file-system checks).
    #[serde(skip)]
    pub socket_gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_secret_file: Option<PathBuf>,
    #[serde(skip)]
    pub front_secret: Option<Secret>,
    pub trusted_proxies: Vec<IpPrefix>,
}

fn octal<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:04o}", m.unwrap_or(DEFAULT_SOCKET_MODE)))
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
    if fs == FsChecks::Check {
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
pub fn validate(
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
fn untrustworthy_proxy(p: &IpPrefix) -> Option<&'static str> {
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

type HmacSha256 = Hmac<Sha256>;

/// How far a request is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Front authentication is required and missing: refuse.
    Refused,
    /// Not from the front: the socket peer is the client.
    Direct,
    /// From the front server: its forwarded-address headers count.
    Front,
}

/// The per-request check, built once at start-up.
pub struct FrontAuth {
    unix: bool,
    /// A front secret is configured: requests without it are refused.
    required: bool,
    /// A keyed HMAC and the secret's tag under it: comparing tags of equal length in constant
    /// time hides both the secret's bytes and its length. `None` with `required` refuses all.
    check: Option<(HmacSha256, Vec<u8>)>,
    trusted: Vec<IpPrefix>,
}

impl fmt::Debug for FrontAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontAuth")
            .field("unix", &self.unix)
            .field("secret", &self.required.then_some("<redacted>"))
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl FrontAuth {
    pub fn new(listen: &Listen, a: &FrontAuthSettings) -> Self {
        // The HMAC key only makes the tag fixed-length; it is not a secret.
        let check = a.front_secret.as_ref().and_then(|s| {
            let base = HmacSha256::new_from_slice(b"stowaway front secret").ok()?;
            let mut m = base.clone();
            m.update(s.expose().as_bytes());
            Some((base, m.finalize().into_bytes().to_vec()))
        });
        FrontAuth {
            unix: matches!(listen, Listen::Unix(_)),
            required: a.front_secret.is_some(),
            check,
            trusted: a.trusted_proxies.clone(),
        }
    }

    /// Whether every request must carry the secret.
    pub fn requires_secret(&self) -> bool {
        self.required
    }

    fn secret_ok(&self, presented: Option<&[u8]>) -> bool {
        let (Some((base, tag)), Some(p)) = (&self.check, presented) else {
            return false;
        };
        let mut m = base.clone();
        m.update(p);
        m.verify_slice(tag).is_ok()
    }

    /// Judges one request from its secret header and peer address.
    pub fn judge(&self, presented: Option<&[u8]>, peer: Option<IpAddr>) -> Trust {
        if self.required {
            return if self.secret_ok(presented) {
                Trust::Front
            } else {
                Trust::Refused
            };
        }
        if self.unix || peer.is_some_and(|ip| self.trusted.iter().any(|p| p.contains(ip))) {
            Trust::Front
        } else {
            Trust::Direct
        }
    }

    /// [`FrontAuth::judge`] for an actix request.
    pub fn check(&self, req: &HttpRequest) -> Trust {
        self.judge(
            req.headers().get(FRONT_HEADER).map(|v| v.as_bytes()),
            req.peer_addr().map(|a| a.ip()),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_and_wide_trusted_proxies_are_refused() {
        use super::untrustworthy_proxy;
        use crate::access::IpPrefix;
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
            key_of(validate(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.socket_mode"
        );
        let mut r = raw();
        r.socket_group = Some("root".into());
        assert_eq!(
            key_of(validate(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.socket_group"
        );
        let a = validate(&r, &unix, FsChecks::Check).unwrap();
        assert_eq!((a.socket_gid, a.socket_mode), (Some(0), Some(0o660)));
        r.socket_group = Some("no-such-group-stowaway".into());
        let e = validate(&r, &unix, FsChecks::Check).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        r.socket_group = Some("a:b".into());
        assert_eq!(
            key_of(validate(&r, &unix, FsChecks::Skip).unwrap_err()),
            "server.socket_group"
        );
        let mut r = raw();
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into()]);
        assert_eq!(
            key_of(validate(&r, &unix, FsChecks::Skip).unwrap_err()),
            "server.trusted_proxies[0]"
        );
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into(), "10.0.0.300".into()]);
        assert_eq!(
            key_of(validate(&r, &tcp, FsChecks::Skip).unwrap_err()),
            "server.trusted_proxies[1]"
        );
        r.trusted_proxies = Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]);
        assert_eq!(
            validate(&r, &tcp, FsChecks::Skip)
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
        let a = validate(&r, &tcp, FsChecks::Skip).unwrap();
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
            let e = validate(&r, &tcp, FsChecks::Skip).unwrap_err().to_string();
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

    #[test]
    fn trust_decisions() {
        let tcp = Listen::Tcp("127.0.0.1:1".parse().unwrap());
        let unix = Listen::Unix("/tmp/x.sock".into());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let none = FrontAuth::new(&tcp, &FrontAuthSettings::default());
        assert_eq!(
            none.judge(Some(b"anything"), ip("127.0.0.1")),
            Trust::Direct
        );
        assert_eq!(
            FrontAuth::new(&unix, &FrontAuthSettings::default()).judge(None, None),
            Trust::Front
        );
        let proxies = FrontAuth::new(
            &tcp,
            &FrontAuthSettings {
                trusted_proxies: vec![IpPrefix::parse("10.0.0.0/24").unwrap()],
                ..Default::default()
            },
        );
        assert_eq!(proxies.judge(None, ip("10.0.0.7")), Trust::Front);
        assert_eq!(proxies.judge(None, ip("::ffff:10.0.0.7")), Trust::Front);
        assert_eq!(proxies.judge(None, ip("10.0.1.7")), Trust::Direct);
        assert_eq!(proxies.judge(None, None), Trust::Direct);
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        for listen in [&tcp, &unix] {
            let a = FrontAuth::new(
                listen,
                &FrontAuthSettings {
                    front_secret: Some(Secret::new(secret)),
                    ..Default::default()
                },
            );
            assert!(a.requires_secret());
            assert_eq!(a.judge(Some(secret.as_bytes()), None), Trust::Front);
            assert_eq!(a.judge(None, ip("127.0.0.1")), Trust::Refused);
            assert_eq!(a.judge(Some(b""), None), Trust::Refused);
            assert_eq!(a.judge(Some(&secret.as_bytes()[1..]), None), Trust::Refused);
            assert_eq!(
                a.judge(Some(format!("{secret}x").as_bytes()), None),
                Trust::Refused
            );
            assert!(!format!("{a:?}").contains(secret));
        }
    }
}
