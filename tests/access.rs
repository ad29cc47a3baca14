//! Signed, expiring links (docs/signed-links.md) in every mode: stowaway asked directly, nginx
//! proxy_pass, nginx auth_request and lighttpd, with links minted by `stowaway sign`,
//! examples/sign_link.py and examples/sign_link.sh.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LOCAL: &[u8] = b"local file bytes";
const REMOTE: &[u8] = b"remote object bytes";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Site {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    s3: S3Server,
    st: Stowaway,
}

/// One presigned mount `/static/` with signed links required (k1 signs, k2 still accepted),
/// `here.jpg` local and `remote.jpg` in S3.
fn site(server_extra: &str) -> Site {
    site_with(|_| server_extra.to_string(), false)
}

/// Like [`site`]; `server_extra` gets the site's directory (for a front secret file), and
/// `unix` makes stowaway listen on a Unix socket.
fn site_with(server_extra: impl FnOnce(&Path) -> String, unix: bool) -> Site {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.put("site-media", "static/remote.jpg", REMOTE);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("site/static");
    write_file(&root, "here.jpg", LOCAL);
    let cfg = config(&s3, &root, &server_extra(&dir), &access_section(&dir, "k1"));
    let st = if unix {
        Stowaway::start_unix(&dir, &cfg)
    } else {
        Stowaway::start(&dir, &cfg)
    };
    Site {
        _tmp: tmp,
        dir,
        root,
        s3,
        st,
    }
}

/// `stowaway sign <path> <args>` with the site's config.
fn sign(s: &Site, path: &str, args: &[&str]) -> String {
    sign_at(&s.st.config, path, args)
}

/// `stowaway sign <path> <args> --config <config>`.
fn sign_at(config: &Path, path: &str, args: &[&str]) -> String {
    let out = stowaway_cmd()
        .arg("sign")
        .arg(path)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign {path} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        link.starts_with('/') && link.contains("&signature="),
        "{link}"
    );
    link
}

fn ttl_args(secs: u64) -> String {
    (now() + secs).to_string()
}

/// How a mode answers a request that is allowed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// stowaway asked directly (as nginx proxy_pass would, without nginx).
    Direct,
    /// A front server sends the file itself.
    Front,
}

fn assert_allowed_local(mode: Mode, r: &Response, method: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.raw_head);
    match (mode, method) {
        (Mode::Direct, _) => assert!(
            r.header("x-accel-redirect").is_some() || r.header("x-sendfile").is_some(),
            "{what}: {}",
            r.raw_head
        ),
        (Mode::Front, "HEAD") => assert_eq!(
            r.header("content-length"),
            Some(LOCAL.len().to_string().as_str()),
            "{what}"
        ),
        (Mode::Front, _) => assert_eq!(r.body, LOCAL, "{what}"),
    }
}

fn assert_allowed_remote(r: &Response, method: &str, what: &str) {
    assert_eq!(r.status, 302, "{what}: {}", r.raw_head);
    let loc = r.header("location").unwrap();
    let obj = fetch_url(method, loc);
    assert_eq!(obj.status, 200, "{what}: {loc}");
    if method == "GET" {
        assert_eq!(obj.body, REMOTE, "{what}");
    }
}

/// The whole matrix against one mode. `send` issues a request (method, target, from-address).
fn matrix(s: &Site, mode: Mode, send: &dyn Fn(&str, &str, IpAddr) -> Response) {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let lo2: IpAddr = "127.0.0.2".parse().unwrap();
    let exp = ttl_args(600);
    let local = sign(s, "/static/here.jpg", &["--expires", &exp]);
    let remote = sign(s, "/static/remote.jpg", &["--ttl", "10m"]);

    // Valid links: served or redirected, for GET and HEAD.
    for method in ["GET", "HEAD"] {
        assert_allowed_local(
            mode,
            &send(method, &local, lo),
            method,
            &format!("{mode:?} {method} local"),
        );
        assert_allowed_remote(
            &send(method, &remote, lo),
            method,
            &format!("{mode:?} {method} remote"),
        );
    }
    // Extra query parameters are not part of the signature and do not hurt.
    assert_eq!(
        send("GET", &format!("{local}&utm_source=mail"), lo).status,
        200
    );

    // Missing, tampered, expired, another path.
    let status = |t: &str| send("GET", t, lo).status;
    assert_eq!(status("/static/here.jpg"), 403, "{mode:?} no signature");
    assert_eq!(
        status("/static/remote.jpg"),
        403,
        "{mode:?} no signature, remote"
    );
    let sig = local.rsplit_once("signature=").unwrap().1;
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    assert_eq!(
        status(&local.replace(sig, &flipped)),
        403,
        "{mode:?} tampered signature"
    );
    let later = (now() + 7200).to_string();
    assert_eq!(
        status(&local.replace(&format!("expires={exp}"), &format!("expires={later}"))),
        403,
        "{mode:?} extended expiry"
    );
    assert_eq!(
        status(&local.replace("kid=k1", "kid=k9")),
        403,
        "{mode:?} unknown key"
    );
    let expired = sign(
        s,
        "/static/here.jpg",
        &["--expires", &(now() - 5).to_string()],
    );
    assert_eq!(status(&expired), 410, "{mode:?} expired");
    let expired_remote = sign(s, "/static/remote.jpg", &["--expires", "1000"]);
    assert_eq!(status(&expired_remote), 410, "{mode:?} expired remote");
    assert_eq!(
        status(&local.replacen("/static/here.jpg", "/static/remote.jpg", 1)),
        403,
        "{mode:?} another path"
    );
    assert_eq!(
        status(&remote.replacen("/static/remote.jpg", "/static/here.jpg", 1)),
        403,
        "{mode:?} another path (local)"
    );

    // Method binding: a HEAD link does not download; a GET link also answers HEAD.
    let head_only = sign(
        s,
        "/static/remote.jpg",
        &["--ttl", "10m", "--method", "HEAD"],
    );
    assert_eq!(
        send("GET", &head_only, lo).status,
        403,
        "{mode:?} another method"
    );
    assert_allowed_remote(
        &send("HEAD", &head_only, lo),
        "HEAD",
        &format!("{mode:?} HEAD link"),
    );
    let get_only = sign(s, "/static/here.jpg", &["--ttl", "10m", "--method", "get"]);
    assert!(get_only.contains("&method=GET&"), "{get_only}");
    assert_allowed_local(
        mode,
        &send("HEAD", &get_only, lo),
        "HEAD",
        &format!("{mode:?} GET link with HEAD"),
    );
    assert_eq!(
        send("GET", &get_only.replace("method=GET", "method=HEAD"), lo).status,
        403,
        "{mode:?} rebinding the method"
    );

    // Client-prefix binding.
    let other_net = sign(
        s,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "10.0.0.0/8"],
    );
    assert_eq!(
        send("GET", &other_net, lo).status,
        403,
        "{mode:?} another client prefix"
    );
    let only_lo2 = sign(
        s,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "127.0.0.2"],
    );
    // The front server's view of the client counts, whatever headers the client sends; an
    // allowed verdict for one client is not reused for another (auth mode caches verdicts).
    assert_allowed_local(
        mode,
        &send("GET", &only_lo2, lo2),
        "GET",
        &format!("{mode:?} bound client"),
    );
    assert_eq!(
        send("GET", &only_lo2, lo).status,
        403,
        "{mode:?} another client, after an allowed one"
    );
    assert_allowed_local(
        mode,
        &send("GET", &only_lo2, lo2),
        "GET",
        &format!("{mode:?} bound client again"),
    );
    let loopback = sign(
        s,
        "/static/remote.jpg",
        &["--ttl", "10m", "--ip-prefix", "127.0.0.0/8"],
    );
    assert_allowed_remote(
        &send("GET", &loopback, lo),
        "GET",
        &format!("{mode:?} client prefix"),
    );
    assert_eq!(
        status(&loopback.replace("127.0.0.0%2F8", "10.0.0.0%2F8")),
        403,
        "{mode:?} rebinding the prefix"
    );

    // Key rotation: links signed with the older key k2 are still accepted.
    let old_key = sign(s, "/static/here.jpg", &["--ttl", "10m", "--kid", "k2"]);
    assert!(old_key.contains("kid=k2"), "{old_key}");
    assert_allowed_local(
        mode,
        &send("GET", &old_key, lo),
        "GET",
        &format!("{mode:?} rotated key"),
    );

    // Links minted by the Python and shell examples.
    let key_file = s.dir.join("link-key-k1");
    let py = Command::new("python3")
        .arg(repo().join("examples/sign_link.py"))
        .args(["--kid", "k1", "--ttl", "600", "--secret-file"])
        .arg(&key_file)
        .args([
            "--ip-prefix",
            "127.0.0.0/8",
            "--method",
            "GET",
            "/static/remote.jpg",
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py_link = String::from_utf8(py.stdout).unwrap().trim().to_string();
    assert_allowed_remote(
        &send("GET", &py_link, lo),
        "GET",
        &format!("{mode:?} sign_link.py {py_link}"),
    );
    let sh = Command::new("bash")
        .arg(repo().join("examples/sign_link.sh"))
        .args(["-t", "600", "-m", "GET", "k1"])
        .arg(&key_file)
        .arg("/static/here.jpg")
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    let sh_link = String::from_utf8(sh.stdout).unwrap().trim().to_string();
    assert_allowed_local(
        mode,
        &send("GET", &sh_link, lo),
        "GET",
        &format!("{mode:?} sign_link.sh {sh_link}"),
    );
    let sh = Command::new("bash")
        .arg(repo().join("examples/sign_link.sh"))
        .args(["-e", "1000", "k1"])
        .arg(&key_file)
        .arg("/static/here.jpg")
        .output()
        .unwrap();
    assert_eq!(
        send("GET", String::from_utf8(sh.stdout).unwrap().trim(), lo).status,
        410,
        "{mode:?} expired shell link"
    );
}

fn sender(
    addr: SocketAddr,
    extra: &'static [(&'static str, &'static str)],
) -> impl Fn(&str, &str, IpAddr) -> Response {
    move |method, target, from| request_from(from, addr, method, target, extra)
}

/// A client trying to pass as 10.1.2.3 to the front server.
const SPOOF: &[(&str, &str)] = &[
    ("X-Real-IP", "10.1.2.3"),
    ("X-Forwarded-For", "10.1.2.3"),
    ("X-Stowaway-Front", "forged"),
];

#[test]
fn signed_links_when_stowaway_is_asked_directly() {
    let s = site("");
    matrix(&s, Mode::Direct, &sender(s.st.addr, &[]));
    // Directly (no front authentication configured), the client address is the peer's,
    // whatever X-Real-IP says.
    let bound = sign(
        &s,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "10.0.0.0/8"],
    );
    assert_eq!(
        request(s.st.addr, "GET", &bound, &[("X-Real-IP", "10.1.2.3")]).status,
        403
    );
    assert_eq!(request(s.st.addr, "GET", &bound, &[]).status, 403);
    assert_eq!(
        request(s.st.addr, "GET", &bound, &[("X-Real-IP", "garbage")]).status,
        403
    );
}

// The front server's view of the client only counts from an authenticated front: each front
// runs once with the shared secret header and once over the Unix socket.

#[test]
fn signed_links_through_nginx_proxy_pass_with_front_secret() {
    let s = site_with(front_secret_line, false);
    let nginx = proxy_nginx(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(nginx.addr, SPOOF));
}

#[test]
fn signed_links_through_nginx_proxy_pass_over_unix_socket() {
    let s = site_with(|_| String::new(), true);
    let nginx = proxy_nginx(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(nginx.addr, SPOOF));
}

#[test]
fn signed_links_through_nginx_auth_request_with_front_secret() {
    let s = site_with(
        |d| format!("verdict_ttl = \"5m\"\n{}", front_secret_line(d)),
        false,
    );
    let nginx = auth_nginx(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(nginx.addr, SPOOF));
}

#[test]
fn signed_links_through_nginx_auth_request_over_unix_socket() {
    let s = site_with(|_| "verdict_ttl = \"5m\"".into(), true);
    let nginx = auth_nginx(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(nginx.addr, SPOOF));
}

#[test]
fn signed_links_through_lighttpd_with_front_secret() {
    let s = site_with(
        |d| format!("front = \"lighttpd\"\n{}", front_secret_line(d)),
        false,
    );
    let l = lighttpd_front(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(l.addr, SPOOF));
}

#[test]
fn signed_links_through_lighttpd_over_unix_socket() {
    let s = site_with(|_| "front = \"lighttpd\"".into(), true);
    let l = lighttpd_front(&s.dir, &s.st);
    matrix(&s, Mode::Front, &sender(l.addr, SPOOF));
}

/// nginx caches an "allowed" verdict no longer than the link is valid: once it expires, the
/// next request is refused although server.verdict_ttl is 5 minutes.
#[test]
fn auth_mode_verdict_cache_never_outlives_the_link() {
    let s = site("verdict_ttl = \"5m\"");
    let nginx = auth_nginx(&s.dir, &s.st);
    let link = sign(&s, "/static/here.jpg", &["--ttl", "2s"]);
    let first = get(nginx.addr, &link);
    assert!(
        first.status == 200 || first.status == 410,
        "{}",
        first.raw_head
    );
    let refused = wait_until(Duration::from_secs(20), || {
        get(nginx.addr, &link).status == 410
    });
    assert!(refused, "the cached verdict outlived the link");
    // The file itself is still there for a fresh link.
    assert_eq!(
        get(nginx.addr, &sign(&s, "/static/here.jpg", &["--ttl", "10m"])).body,
        LOCAL
    );
}

#[test]
fn redirect_cache_control_never_outlives_the_link() {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(&s3, &root, "", &access_section(tmp.path(), "k1"))
        .replace("window = \"0s\"", "window = \"5m\"");
    let st = Stowaway::start(tmp.path(), &cfg);
    let s = Site {
        _tmp: tmp,
        dir: PathBuf::new(),
        root,
        s3,
        st,
    };
    let max_age = |link: &str| -> u64 {
        let r = get(s.st.addr, link);
        assert_eq!(r.status, 302, "{}", r.raw_head);
        let cc = r.header("cache-control").unwrap().to_string();
        cc.strip_prefix("private, max-age=")
            .unwrap_or_else(|| panic!("{cc}"))
            .parse()
            .unwrap()
    };
    assert!(max_age(&sign(&s, "/static/x.jpg", &["--ttl", "1h"])) > 100);
    assert!(max_age(&sign(&s, "/static/x.jpg", &["--ttl", "100s"])) <= 100);
}

#[test]
fn hostile_urls_get_the_same_answers_on_signed_mounts() {
    let s = site("");
    plant_hostile_fixtures(&s.dir, &s.root);
    let proxy = proxy_nginx(&s.dir, &s.st);
    let auth = auth_nginx(&s.dir, &s.st);
    let bucket = format!("{}/site-media/static/", s.s3.endpoint);
    for t in HOSTILE {
        let p = request_bytes(proxy.addr, "GET", t, &[]);
        let a = request_bytes(auth.addr, "GET", t, &[]);
        assert_harmless(&p, t, &bucket);
        assert_harmless(&a, t, &bucket);
        assert_ne!(
            p.status,
            302,
            "{}: unsigned, so never redirected",
            String::from_utf8_lossy(t)
        );
        assert_eq!(a.status, p.status, "{}", String::from_utf8_lossy(t));
    }
}

#[test]
fn secrets_stay_out_of_print_config_and_logs() {
    let s = site("");
    let out = stowaway_cmd()
        .arg("print-config")
        .arg("--config")
        .arg(&s.st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("sign_with = \"k1\"") && text.contains("<redacted>"),
        "{text}"
    );
    assert!(
        !text.contains(K1_SECRET) && !text.contains(K2_SECRET),
        "{text}"
    );

    // Debug logging never shows a link's signature (a bearer credential for that file).
    let st = Stowaway::start_with(
        &s.dir,
        &std::fs::read_to_string(&s.st.config)
            .unwrap()
            .replace(&s.st.addr.to_string(), "@LISTEN@"),
        &[("RUST_LOG", "debug")],
    );
    let link = sign(&s, "/static/here.jpg", &["--ttl", "10m"]);
    assert_eq!(get(st.addr, &link).status, 200);
    assert_eq!(get(st.addr, &link.replace("kid=k1", "kid=k2")).status, 403);
    let sig = link.rsplit_once("signature=").unwrap().1;
    let log = st.log_text();
    assert!(log.contains("here.jpg"), "debug logging is on: {log}");
    assert!(!log.contains(sig) && !log.contains(K1_SECRET), "{log}");
}

#[test]
fn configuration_and_sign_command_errors() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let check = |cfg: &str| {
        let p = tmp.path().join("c.toml");
        write_private(&p, cfg.replace("@LISTEN@", "127.0.0.1:1"));
        stowaway_cmd()
            .arg("check-config")
            .arg("--config")
            .arg(&p)
            .output()
            .unwrap()
    };
    let access = access_section(tmp.path(), "k1");
    let ok = check(&config(&s3, &root, "", &access));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let cases = [
        (
            config(&s3, &root, "", &access).replace("url = \"presigned\"", "url = \"public\""),
            "mount[0].url",
        ),
        (
            config(
                &s3,
                &root,
                "",
                &access.replace("sign_with = \"k1\"", "sign_with = \"k7\""),
            ),
            "mount[0].access.sign_with",
        ),
        (
            config(&s3, &root, "", "[mount.access]\n"),
            "mount[0].access.keys",
        ),
        (
            config(
                &s3,
                &root,
                "",
                "[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"short\"\n",
            ),
            "mount[0].access.keys[0].secret",
        ),
        (
            config(
                &s3,
                &root,
                "",
                "[mount.access]\n[[mount.access.keys]]\nid = \"bad id\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
            ),
            "mount[0].access.keys[0].id",
        ),
        (
            config(
                &s3,
                &root,
                "",
                "[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\n",
            ),
            "mount[0].access.keys[0].secret_file",
        ),
    ];
    for (cfg, key) in cases {
        let out = check(&cfg);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            !err.contains("short\"") && !err.contains("0123456789abcdef0123456789abcdef"),
            "secret shown: {err}"
        );
    }
    // A world-readable secret file is refused.
    let loose = tmp.path().join("loose-key");
    std::fs::write(&loose, K1_SECRET).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = check(&config(
        &s3,
        &root,
        "",
        &format!(
            "[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret_file = \"{}\"\n",
            loose.display()
        ),
    ));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `enabled = false` switches access control off.
    let off = config(
        &s3,
        &root,
        "",
        &access.replacen("[mount.access]\n", "[mount.access]\nenabled = false\n", 1),
    );
    let st = Stowaway::start(tmp.path(), &off);
    assert_eq!(get(st.addr, "/static/x.jpg").status, 302);

    // sign: only files of signed mounts, only sane paths.
    let p = tmp.path().join("c.toml");
    std::fs::write(
        &p,
        config(&s3, &root, "", &access).replace("@LISTEN@", "127.0.0.1:1"),
    )
    .unwrap();
    for (path, extra, why) in [
        ("/elsewhere/a.jpg", &[][..], "under any mount"),
        ("/static/../x", &[][..], "`..`"),
        ("/static/dir/", &[][..], "directory"),
        (
            "/static/a.jpg",
            &["--ip-prefix", "10.0.0.0/99"][..],
            "not an IP address",
        ),
        ("/static/a.jpg", &["--kid", "k9"][..], "no key"),
        ("/static/a.jpg", &["--method", "G E T"][..], "method"),
    ] {
        let out = stowaway_cmd()
            .args(["sign", path, "--ttl", "1h"])
            .args(extra)
            .arg("--config")
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{path} {extra:?}: {err}");
        assert!(err.contains(why), "{path} {extra:?}: {err}");
    }
    let out = stowaway_cmd()
        .args([
            "sign",
            "/static/a b.jpg",
            "--expires",
            "1700000000",
            "--base-url",
            "https://www.example.com/",
            "--config",
        ])
        .arg(&p)
        .output()
        .unwrap();
    let link = String::from_utf8(out.stdout).unwrap();
    assert!(
        link.starts_with(
            "https://www.example.com/static/a%20b.jpg?expires=1700000000&kid=k1&signature="
        ),
        "{link}"
    );
}

/// `access.max_link_ttl`: `stowaway sign` refuses to mint a link valid for longer (exit 2),
/// and the server refuses such a link with 403 (directly and through nginx auth_request):
/// one minted by another tool with the key, or before the limit was lowered.
#[test]
fn links_valid_longer_than_max_link_ttl_are_refused() {
    let s = site("");
    // Default limit: 7 days.
    let week = sign(&s, "/static/here.jpg", &["--ttl", "7d"]);
    assert_eq!(get(s.st.addr, &week).status, 200);
    let out = stowaway_cmd()
        .args(["sign", "/static/here.jpg", "--ttl", "8d", "--config"])
        .arg(&s.st.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("max_link_ttl") && err.contains("8days") && err.contains("fix"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no link printed");
    // The shipped Python example has no limit: the server enforces it.
    let py = Command::new("python3")
        .arg(repo().join("examples/sign_link.py"))
        .args([
            "--kid",
            "k1",
            "--ttl",
            &(8 * 86400).to_string(),
            "--secret-file",
        ])
        .arg(s.dir.join("link-key-k1"))
        .arg("/static/here.jpg")
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let long = String::from_utf8(py.stdout).unwrap().trim().to_string();
    let r = get(s.st.addr, &long);
    assert_eq!(r.status, 403, "{}", r.raw_head);
    assert!(r.header("x-accel-redirect").is_none(), "{}", r.raw_head);

    // The limit lowered to 1h: the week-long link is refused, a 10-minute one still works.
    let cfg = std::fs::read_to_string(&s.st.config)
        .unwrap()
        .replace(&s.st.addr.to_string(), "@LISTEN@")
        .replace(
            "[mount.access]\n",
            "[mount.access]\nmax_link_ttl = \"1h\"\n",
        );
    let st = Stowaway::start(&s.dir, &cfg);
    let nginx = auth_nginx(&s.dir, &st);
    for (addr, via) in [(st.addr, "direct"), (nginx.addr, "nginx auth_request")] {
        let r = get(addr, &week);
        assert_eq!(r.status, 403, "{via}: {}", r.raw_head);
        assert_ne!(r.body, LOCAL, "{via}");
    }
    let short = sign_at(&st.config, "/static/here.jpg", &["--ttl", "10m"]);
    assert_eq!(get(nginx.addr, &short).body, LOCAL);
    let out = stowaway_cmd()
        .args(["sign", "/static/here.jpg", "--ttl", "2h", "--config"])
        .arg(&st.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "sign obeys the lowered limit");
}
