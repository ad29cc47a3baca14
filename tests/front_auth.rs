//! Front authentication (docs/front-servers.md, "Who may ask stowaway"): forwarded-address
//! headers count only from an authenticated front (Unix socket, shared secret header) or a
//! listed proxy; with a front secret, requests without it get 403 and nothing else; the secret
//! never reaches a client. Real stowaway, real nginx and lighttpd, real S3.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOCAL: &[u8] = b"local file bytes";
const REMOTE: &[u8] = b"remote object bytes";

struct Site {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    _s3: S3Server,
    st: Stowaway,
}

/// `/static/` with `here.jpg` local and `remote.jpg` in S3; `signed` adds `[mount.access]`.
fn site(server_extra: impl FnOnce(&Path) -> String, signed: bool, unix: bool) -> Site {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.put("site-media", "static/remote.jpg", REMOTE);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("site/static");
    write_file(&root, "here.jpg", LOCAL);
    let access = if signed {
        access_section(&dir, "k1")
    } else {
        String::new()
    };
    let cfg = config(&s3, &root, &server_extra(&dir), &access);
    let st = if unix {
        Stowaway::start_unix(&dir, &cfg)
    } else {
        Stowaway::start(&dir, &cfg)
    };
    Site {
        _tmp: tmp,
        dir,
        _s3: s3,
        st,
    }
}

fn sign(st: &Stowaway, path: &str, args: &[&str]) -> String {
    let out = stowaway_cmd()
        .arg("sign")
        .arg(path)
        .args(args)
        .arg("--config")
        .arg(&st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Nothing in `r` tells the asker anything about the file or where it lives.
fn assert_bare_refusal(r: &Response, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.raw_head);
    for h in [
        "x-accel-redirect",
        "x-sendfile",
        "x-s3-location",
        "location",
        "x-stowaway-status",
        "x-accel-expires",
    ] {
        assert!(r.header(h).is_none(), "{what}: {h} in {}", r.raw_head);
    }
    assert!(
        !r.raw_head.contains("/site/static") && !r.body.windows(12).any(|w| w == b"/site/static"),
        "{what}: the root leaked: {}",
        r.raw_head
    );
}

const SPOOFED: &[(&str, &str)] = &[("X-Real-IP", "10.1.2.3"), ("X-Forwarded-For", "10.1.2.3")];

/// A local process talking straight to the TCP listener cannot pass as 10.1.2.3 with a
/// forwarded-address header, in the nginx and the lighttpd flavour (which would also reveal
/// the absolute path in X-Sendfile).
#[test]
fn spoofed_forwarded_headers_straight_at_the_listener_do_not_satisfy_ip_bound_links() {
    for front in ["nginx", "lighttpd"] {
        let s = site(|_| format!("front = \"{front}\"\n"), true, false);
        let bound = sign(
            &s.st,
            "/static/here.jpg",
            &["--ttl", "10m", "--ip-prefix", "10.0.0.0/8"],
        );
        for h in [&SPOOFED[..1], &SPOOFED[1..], SPOOFED] {
            let r = request(s.st.addr, "GET", &bound, h);
            assert_bare_refusal(&r, &format!("{front} {h:?}"));
        }
        let bound_remote = sign(
            &s.st,
            "/static/remote.jpg",
            &["--ttl", "10m", "--ip-prefix", "10.0.0.0/8"],
        );
        assert_bare_refusal(
            &request(s.st.addr, "GET", &bound_remote, SPOOFED),
            &format!("{front} remote"),
        );
        // The peer address is the client: a link bound to it works without any header.
        let lo = sign(
            &s.st,
            "/static/here.jpg",
            &["--ttl", "10m", "--ip-prefix", "127.0.0.1"],
        );
        assert_eq!(request(s.st.addr, "GET", &lo, &[]).status, 200);
    }
}

/// With `server.front_secret_file`, a request without the secret (or with a wrong one) gets a
/// bare 403 on the decision and the auth endpoint, in both flavours; health stays open.
#[test]
fn front_secret_is_required_on_the_decision_and_auth_endpoints() {
    for front in ["nginx", "lighttpd"] {
        let s = site(
            |d| format!("front = \"{front}\"\n{}", front_secret_line(d)),
            false,
            false,
        );
        let a = s.st.addr;
        for (what, extra) in [
            ("no secret", vec![]),
            (
                "wrong secret",
                vec![("X-Stowaway-Front", "0123456789abcdef0123456789abcdef")],
            ),
            (
                "prefix of the secret",
                vec![("X-Stowaway-Front", &FRONT_SECRET[..40])],
            ),
            ("empty", vec![("X-Stowaway-Front", "")]),
        ] {
            for target in ["/static/here.jpg", "/static/remote.jpg", "/static/none.jpg"] {
                let r = request(a, "GET", target, &extra);
                assert_bare_refusal(&r, &format!("{front} {what} {target}"));
                assert_bare_refusal(
                    &request(a, "HEAD", target, &extra),
                    &format!("{front} {what} HEAD {target}"),
                );
            }
            let mut auth = extra.clone();
            auth.push(("X-Original-URI", "/static/here.jpg"));
            assert_bare_refusal(
                &request(a, "GET", "/_stowaway/auth", &auth),
                &format!("{front} {what} auth here"),
            );
            auth.pop();
            auth.push(("X-Original-URI", "/static/remote.jpg"));
            assert_bare_refusal(
                &request(a, "GET", "/_stowaway/auth", &auth),
                &format!("{front} {what} auth remote"),
            );
        }
        // Health stays open (readiness once the first S3 probe is in).
        for open in ["/healthz", "/readyz", "/metrics"] {
            assert!(
                wait_until(Duration::from_secs(20), || get(a, open).status == 200),
                "{open}"
            );
        }
        // With the secret: answered as before.
        let ok = [("X-Stowaway-Front", FRONT_SECRET)];
        let r = request(a, "GET", "/static/here.jpg", &ok);
        assert_eq!(r.status, 200, "{}", r.raw_head);
        let internal = if front == "nginx" {
            "x-accel-redirect"
        } else {
            "x-sendfile"
        };
        assert!(r.header(internal).is_some(), "{}", r.raw_head);
        assert_eq!(request(a, "GET", "/static/remote.jpg", &ok).status, 302);
        let log = s.st.log_text();
        assert!(!log.contains(FRONT_SECRET), "the secret was logged: {log}");
    }
}

/// A running front server of any kind, kept alive while it is used.
fn start_front(
    s: &Site,
    front: &str,
    mode: &str,
) -> (Box<dyn std::any::Any>, std::net::SocketAddr) {
    match (front, mode) {
        ("nginx", "proxy") => {
            let n = proxy_nginx(&s.dir, &s.st);
            let a = n.addr;
            (Box::new(n), a)
        }
        ("nginx", _) => {
            let n = auth_nginx(&s.dir, &s.st);
            let a = n.addr;
            (Box::new(n), a)
        }
        _ => {
            let l = lighttpd_front(&s.dir, &s.st);
            let a = l.addr;
            (Box::new(l), a)
        }
    }
}

/// Every front works end to end when authenticated (local file, redirect, IP-bound links for
/// the real client, not for a spoofed one) and no client ever sees the secret.
fn front_end_to_end(s: &Site, front: &str, mode: &str, with_secret: bool) {
    let what = format!("{front} {mode} secret={with_secret}");
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let lo2: IpAddr = "127.0.0.2".parse().unwrap();
    let (_guard, f) = start_front(s, front, mode);
    // The client tries to forge everything the front server sets.
    let forged: &[(&str, &str)] = &[
        ("X-Real-IP", "127.0.0.2"),
        ("X-Forwarded-For", "127.0.0.2"),
        ("X-Stowaway-Front", "forged"),
    ];
    let send = |target: &str, from: IpAddr| {
        let r = request_from(from, f, "GET", target, forged);
        assert_no_secret(&r, &what);
        r
    };
    let here = sign(&s.st, "/static/here.jpg", &["--ttl", "10m"]);
    let r = send(&here, lo);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, LOCAL),
        "{what}: {}",
        r.raw_head
    );
    for h in [
        "x-accel-redirect",
        "x-sendfile",
        "x-s3-location",
        "x-stowaway-front",
    ] {
        assert!(r.header(h).is_none(), "{what}: {h} leaked: {}", r.raw_head);
    }
    let remote = sign(&s.st, "/static/remote.jpg", &["--ttl", "10m"]);
    let r = send(&remote, lo);
    assert_eq!(r.status, 302, "{what}: {}", r.raw_head);
    let loc = r.header("location").unwrap();
    assert!(!loc.contains(FRONT_SECRET));
    assert_eq!(fetch_url("GET", loc).body, REMOTE, "{what}");
    let only_lo2 = sign(
        &s.st,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "127.0.0.2"],
    );
    assert_eq!(send(&only_lo2, lo2).status, 200, "{what}: the real client");
    assert_eq!(
        send(&only_lo2, lo).status,
        403,
        "{what}: a client posing as 127.0.0.2"
    );
    assert_eq!(send("/static/here.jpg", lo).status, 403, "{what}: unsigned");
    assert_eq!(send("/static/nothing/", lo).status, 404, "{what}: 404");
    let log = s.st.log_text();
    assert!(!log.contains(FRONT_SECRET), "{what}: the secret was logged");
}

#[test]
fn fronts_with_the_front_secret_work_and_never_show_it() {
    for (front, mode) in [("nginx", "proxy"), ("nginx", "auth"), ("lighttpd", "")] {
        let s = site(
            |d| {
                format!(
                    "front = \"{front}\"\nfallback_header = false\n{}",
                    front_secret_line(d)
                )
            },
            true,
            false,
        );
        let conf = match front {
            "nginx" => gen_config(
                &s.st,
                &[
                    "nginx",
                    "--mode",
                    if mode == "auth" { "auth" } else { "proxy" },
                ],
            ),
            _ => gen_config(&s.st, &["lighttpd"]),
        };
        assert!(
            conf.contains(FRONT_SECRET) && conf.contains("SECRET: this file holds"),
            "{conf}"
        );
        front_end_to_end(&s, front, mode, true);
    }
}

/// `server.listen = "unix:..."`: the socket gets `socket_mode` and `socket_group`, a stale
/// socket is replaced, another file never is; healthcheck, nginx (both modes) and lighttpd work
/// over it, and requests on it count as from the front.
#[test]
fn unix_socket_listener_permissions_and_fronts() {
    let group = ["www-data", "nogroup", "daemon", "root"]
        .into_iter()
        .find(|g| {
            std::process::Command::new("getent")
                .args(["group", g])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap();
    let gid: u32 = String::from_utf8(
        std::process::Command::new("getent")
            .args(["group", group])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split(':')
    .nth(2)
    .unwrap()
    .parse()
    .unwrap();
    for (front, mode) in [("nginx", "proxy"), ("nginx", "auth"), ("lighttpd", "")] {
        let s = site(
            |_| {
                format!("front = \"{front}\"\nsocket_mode = \"0640\"\nsocket_group = \"{group}\"\n")
            },
            true,
            true,
        );
        let sock = s.st.sock.clone().unwrap();
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(meta.gid(), gid);
        // `healthcheck --ready` talks to the socket (ready once the first S3 probe is in).
        let ready = wait_until(Duration::from_secs(20), || {
            stowaway_cmd()
                .args(["healthcheck", "--ready", "--config"])
                .arg(&s.st.config)
                .output()
                .unwrap()
                .status
                .success()
        });
        assert!(
            ready,
            "healthcheck over the Unix socket: {}",
            s.st.log_text()
        );
        let conf = match front {
            "nginx" => gen_config(
                &s.st,
                &[
                    "nginx",
                    "--mode",
                    if mode == "auth" { "auth" } else { "proxy" },
                ],
            ),
            _ => gen_config(&s.st, &["lighttpd"]),
        };
        let want = match front {
            "nginx" => format!("server unix:{};", sock.display()),
            _ => format!("\"socket\" => \"{}\"", sock.display()),
        };
        assert!(conf.contains(&want), "{want} not in\n{conf}");
        front_end_to_end(&s, front, mode, false);
    }
}

#[test]
fn unix_socket_start_up_rules() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let base = config(&s3, &root, "", "");
    // A stale socket (nobody listening) is replaced.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let cfg_path = dir.join("stale.toml");
    std::fs::write(
        &cfg_path,
        base.replace("@LISTEN@", &format!("unix:{}", stale.display())),
    )
    .unwrap();
    let mut serve = stowaway_cmd()
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = wait_until(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&stale).is_ok()
            && request_unix(&stale, "GET", "/healthz", &[]).status == 200
    });
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(up, "stowaway did not replace the stale socket");
    assert_eq!(
        std::fs::symlink_metadata(&stale)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o660,
        "default socket_mode"
    );
    // Another file is never replaced; bad modes and unknown groups name their key.
    let file = dir.join("data.sock");
    std::fs::write(&file, b"precious").unwrap();
    for (listen, extra, key) in [
        (format!("unix:{}", file.display()), "", "server.listen"),
        (
            format!("unix:{}/x.sock", dir.display()),
            "socket_group = \"no-such-group-stowaway\"\n",
            "server.socket_group",
        ),
        (
            format!("unix:{}/x.sock", dir.display()),
            "socket_mode = \"0666\"\n",
            "server.socket_mode",
        ),
        (
            "127.0.0.1:1".to_string(),
            "socket_mode = \"0660\"\n",
            "server.socket_mode",
        ),
    ] {
        let p = dir.join("bad.toml");
        std::fs::write(
            &p,
            config(&s3, &root, extra, "").replace("@LISTEN@", &listen),
        )
        .unwrap();
        for cmd in ["check-config", "serve"] {
            let o = stowaway_cmd()
                .args([cmd, "--config"])
                .arg(&p)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{cmd} {listen} {extra}: {err}");
            assert!(err.contains(key) && err.contains("fix:"), "{cmd}: {err}");
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

/// This host's own non-loopback IPv4 address (connections from it to 127.0.0.1 stay on this
/// machine), to play a front server on "another host"; `None` if it has none.
fn host_address() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(String::from)
}

/// `server.trusted_proxies`: forwarded headers count from listed addresses only, and loopback
/// (any local process) or "everything" can never be listed.
#[test]
fn trusted_proxies_are_honoured_only_from_listed_addresses() {
    for bad in ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0/0", "::/0"] {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("c.toml");
        std::fs::create_dir_all(d.path().join("root")).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:8080\"\ntrusted_proxies = [\"{bad}\"]\n[uploader]\nenabled = false\n[s3]\nregion = \"us-east-1\"\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"b\"\nurl = \"public\"\n",
                d.path().join("root").display()
            ),
        )
        .unwrap();
        let o = stowaway_cmd()
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("server.trusted_proxies[0]"), "{bad}: {err}");
    }
    let Some(proxy) = host_address() else {
        eprintln!("SKIPPED the trusted-proxy exchange: this host has no non-loopback IPv4 address");
        return;
    };
    let s = site(
        |_| format!("trusted_proxies = [\"{proxy}\", \"10.9.0.0/16\"]\n"),
        true,
        false,
    );
    let bound = sign(
        &s.st,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "10.0.0.0/8"],
    );
    let from = |ip: &str, h: &[(&str, &str)]| {
        request_from(ip.parse().unwrap(), s.st.addr, "GET", &bound, h).status
    };
    let real_ip = [("X-Real-IP", "10.1.2.3")];
    assert_eq!(from(&proxy, &real_ip), 200, "listed proxy");
    assert_eq!(from("127.0.0.3", &real_ip), 403, "unlisted address");
    assert_eq!(from("127.0.0.1", &real_ip), 403, "unlisted loopback");
    assert_eq!(
        from(&proxy, &[]),
        403,
        "listed proxy, no header: its own address"
    );
    // Without a front secret, other requests are still answered (by peer address).
    let lo3 = sign(
        &s.st,
        "/static/here.jpg",
        &["--ttl", "10m", "--ip-prefix", "127.0.0.3"],
    );
    assert_eq!(
        request_from("127.0.0.3".parse().unwrap(), s.st.addr, "GET", &lo3, &[]).status,
        200
    );
}
