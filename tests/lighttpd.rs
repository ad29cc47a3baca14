//! lighttpd 1.4.69 (Debian package) in mod_proxy + X-Sendfile mode, running exactly the config
//! `stowaway gen-config lighttpd` prints (with the shipped stowaway-recheck.lua), in front of
//! the real stowaway binary and a real SigV4-checking S3 server; and the standalone mod_magnet
//! script `stowaway gen-config lighttpd-magnet` prints.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The harness's site world (root `site/static/`, bucket `site-media`) and its stowaway.
struct Site {
    world: World,
    dir: PathBuf,
    st: Stowaway,
}

impl std::ops::Deref for Site {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

fn site(mount_extra: &str) -> Site {
    let world = World::site("site-media");
    let dir = world.path().to_path_buf();
    let st = world.start(&config(
        &world.s3,
        &world.root,
        "front = \"lighttpd\"",
        mount_extra,
    ));
    Site { world, dir, st }
}

fn bucket_prefix(s: &Site) -> String {
    s.bucket_url("static/")
}

/// The front configs every lighttpd test runs: the default (local-first) and `--mode sendfile`.
type StartFront = fn(&Path, &Stowaway) -> Lighttpd;

const FRONTS: &[(&str, StartFront)] = &[
    ("local-first", lighttpd_front),
    ("sendfile", lighttpd_sendfile_front),
];

#[test]
fn local_file_is_sent_by_lighttpd_with_range_head_and_304() {
    for (mode, front) in FRONTS {
        eprintln!("lighttpd {mode}");
        local_file_is_sent(front);
    }
}

fn local_file_is_sent(front: &StartFront) {
    let s = site("");
    let l = front(&s.dir, &s.st);
    let body = content(10_240);
    write_file(&s.root, "photo123.jpg", &body);
    write_file(&s.root, "a b/€ q?x#%+.jpg", &body[..100]);

    let r = get(l.addr, "/static/photo123.jpg");
    assert_eq!(r.status, 200, "{}\n{}", r.raw_head, l.error_log());
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some("10240"));
    assert!(
        r.header("x-sendfile").is_none() && r.header("x-s3-location").is_none(),
        "internal headers leak: {}",
        r.raw_head
    );
    // lighttpd passes every backend header on: the validators must be lighttpd's own.
    assert_eq!(r.header("server"), Some("lighttpd"), "{}", r.raw_head);
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("etag"))
            .count(),
        1,
        "{}",
        r.raw_head
    );
    let etag = r.header("etag").unwrap().to_string();
    let last_modified = r.header("last-modified").unwrap().to_string();

    let r = request(
        l.addr,
        "GET",
        "/static/photo123.jpg",
        &[("Range", "bytes=0-99")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/10240"));
    assert_eq!(r.body, &body[..100]);
    let r = request(
        l.addr,
        "GET",
        "/static/photo123.jpg",
        &[("Range", "bytes=10000-")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &body[10_000..]));

    let r = request(l.addr, "HEAD", "/static/photo123.jpg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10240"));
    assert!(r.body.is_empty());

    assert_eq!(
        request(
            l.addr,
            "GET",
            "/static/photo123.jpg",
            &[("If-None-Match", &etag)]
        )
        .status,
        304
    );
    assert_eq!(
        request(
            l.addr,
            "GET",
            "/static/photo123.jpg",
            &[("If-Modified-Since", &last_modified)]
        )
        .status,
        304
    );

    // Awkward names survive the X-Sendfile encoding.
    let r = get(l.addr, "/static/a%20b/%E2%82%AC%20q%3Fx%23%25+.jpg");
    assert_eq!(r.status, 200, "{}\n{}", r.raw_head, l.error_log());
    assert_eq!(r.body, &body[..100]);
    assert_eq!(get(l.addr, "/static//photo123.jpg").body, body);
    assert_eq!(get(l.addr, "/static/./photo123.jpg").body, body);
}

#[test]
fn missing_file_redirects_to_a_presigned_url_that_s3_accepts() {
    let s = site("");
    let l = lighttpd_front(&s.dir, &s.st);
    let body = content(5000);
    s.s3.put("site-media", "static/gone/pic 1+2.png", &body);
    for method in ["GET", "HEAD"] {
        let r = request(l.addr, method, "/static/gone/pic%201+2.png", &[]);
        assert_eq!(r.status, 302, "{method}: {}", r.raw_head);
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(&format!("{}gone/pic%201%2B2.png?", bucket_prefix(&s))),
            "{loc}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let obj = fetch_url(method, loc);
        assert_eq!(obj.status, 200, "{method} {loc}");
        if method == "GET" {
            assert_eq!(obj.body, body);
        } else {
            assert_eq!(obj.header("content-length"), Some("5000"));
        }
    }
}

/// A TCP relay between lighttpd and stowaway (mod_proxy opens one connection per request and
/// sends `Connection: close`). When stowaway answers with X-Sendfile, `on_sendfile` runs
/// before the answer is passed on: the file can vanish exactly between the decision and
/// lighttpd's open().
fn relay(upstream: SocketAddr, on_sendfile: Arc<dyn Fn() + Send + Sync>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let on_sendfile = on_sendfile.clone();
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let Ok(mut up) = TcpStream::connect(upstream) else {
                    return;
                };
                if up.write_all(&req).is_err() {
                    return;
                }
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                if String::from_utf8_lossy(&resp)
                    .to_ascii_lowercase()
                    .contains("\r\nx-sendfile:")
                {
                    on_sendfile();
                }
                let _ = c.write_all(&resp);
            });
        }
    });
    addr
}

#[test]
fn file_vanishing_after_the_decision_is_rechecked_through_the_404_handler() {
    let s = site("");
    let body = content(300);
    write_file(&s.root, "vanish.jpg", &body);
    write_file(&s.root, "stays.jpg", b"stays");
    s.s3.put("site-media", "static/vanish.jpg", &body);
    let victim = s.root.join("vanish.jpg");
    let relay_addr = relay(
        s.st.addr,
        Arc::new(move || {
            let _ = std::fs::remove_file(&victim);
        }),
    );
    // X-Sendfile mode: in local-first mode lighttpd would send the file without asking.
    let conf = lighttpd_sendfile_conf(&s.st).replacen(
        &format!("\"port\" => {},", s.st.addr.port()),
        &format!("\"port\" => {},", relay_addr.port()),
        1,
    );
    assert!(
        conf.contains(&format!("\"port\" => {},", relay_addr.port())),
        "{conf}"
    );
    let l = Lighttpd::start(&s.dir, &conf);
    for method in ["GET", "HEAD"] {
        write_file(&s.root, "vanish.jpg", &body);
        let r = request(l.addr, method, "/static/vanish.jpg?v=1", &[]);
        assert_eq!(r.status, 302, "{method}: {}\n{}", r.raw_head, l.error_log());
        assert!(
            !s.root.join("vanish.jpg").exists(),
            "the relay removed the file"
        );
        let loc = r.header("location").unwrap().to_string();
        let obj = fetch_url(method, &loc);
        assert_eq!(obj.status, 200, "{loc}");
        if method == "GET" {
            assert_eq!(obj.body, body);
        }
    }
    assert!(
        l.error_log().contains("vanish.jpg"),
        "lighttpd saw the file missing: {}",
        l.error_log()
    );
    // Through the same relay, a file that stays is served.
    assert_eq!(get(l.addr, "/static/stays.jpg").body, b"stays");
}

#[test]
fn clients_cannot_force_a_recheck_or_reach_the_recheck_url() {
    let s = site("");
    let l = lighttpd_front(&s.dir, &s.st);
    write_file(&s.root, "photo.jpg", b"data");
    let r = request(
        l.addr,
        "GET",
        "/static/photo.jpg",
        &[
            ("X-Sidecar-Recheck", "1"),
            ("X-Original-URI", "/static/other.jpg"),
        ],
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"data".as_slice()),
        "{}",
        r.raw_head
    );
    // The recheck URL asked directly is about itself: outside every mount.
    for t in [
        "/_stowaway_local/recheck",
        "/_stowaway_local/recheck?x=/static/photo.jpg",
    ] {
        let r = request(l.addr, "GET", t, &[("X-Original-URI", "/static/photo.jpg")]);
        assert_eq!(r.status, 404, "{t}: {}", r.raw_head);
    }
}

/// What lighttpd answers for each [`HOSTILE`] target. lighttpd normalises the target before
/// stowaway sees it (Debian's http-parseopts decode `%2f`, drop dot segments and reject
/// control characters), so some answers differ from nginx's; none leaks anything.
const LIGHTTPD_HOSTILE_STATUS: &[u16] = &[
    404, // /static/../other/outside.txt: normalised to /other/…, outside the mount (docroot is empty)
    404, // %2e%2e
    404, // %2E%2E%2F…: %2F decoded, then the dot segment
    404, // ..%2f…
    302, // %252e%252e: a literal "%2e%2e" directory name, inside the mount: not local
    400, // overlong UTF-8: stowaway refuses it
    400, // backslashes: stowaway refuses them
    400, // encoded backslashes
    404, // symlink: stowaway refuses it
    404, // symlinked directory
    400, // NUL: lighttpd refuses it
    400, // CR LF: lighttpd refuses it
    400, // LF
    404, // another prefix
    404, // .. into another prefix
    302, // a%2fb.jpg: lighttpd decodes %2f, stowaway sees a/b.jpg (nginx mode: 400)
    404, // the mount itself
    404, // a directory
    404, // a directory with a slash
];

#[test]
fn hostile_urls_never_reach_outside_the_root() {
    let s = site("");
    plant_hostile_fixtures(&s.dir, &s.root);
    let proxy_answers: Vec<u16> = HOSTILE
        .iter()
        .map(|t| request_bytes(s.st.addr, "GET", t, &[]).status)
        .collect();
    for (mode, front) in FRONTS {
        let l = front(&s.dir, &s.st);
        let mut got = Vec::new();
        for t in HOSTILE {
            let r = request_bytes(l.addr, "GET", t, &[]);
            assert_harmless(&r, t, &bucket_prefix(&s));
            got.push(r.status);
        }
        assert_eq!(
            got, LIGHTTPD_HOSTILE_STATUS,
            "lighttpd {mode} answers (stowaway asked directly: {proxy_answers:?})"
        );
        // Symlinks are refused by stowaway itself and by lighttpd (server.follow-symlink = "disable").
        assert_eq!(get(s.st.addr, "/static/link.txt").status, 404);
        assert_eq!(get(l.addr, "/static/ok.jpg").body, b"fine");
        assert_eq!(get(l.addr, "/static/sub/in.jpg").body, b"sub");
    }
}

#[test]
fn magnet_script_serves_local_files_and_redirects_missing_ones_unsigned() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("site/static");
    let private = dir.join("site/private");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    plant_hostile_fixtures(dir, &root);
    write_file(&private, "mine.txt", b"private");
    // Mount 0 public; mount 1 signed links only (presigned, [mount.access]).
    let cfg = config(&s3, &root, "", "").replace("url = \"presigned\"", "url = \"public\"")
        + &format!(
            "[[mount]]\nprefix = \"/private/\"\nroot = \"{}\"\nbucket = \"site-media\"\nkey_prefix = \"private/\"\nurl = \"presigned\"\n{}",
            private.display(),
            access_section(dir, "k1")
        );
    let cfg_path = dir.join("magnet.toml");
    std::fs::write(&cfg_path, cfg.replace("@LISTEN@", "127.0.0.1:1")).unwrap();
    let out = stowaway_cmd()
        .args([
            "gen-config",
            "lighttpd-magnet",
            "--lua-dir",
            "@DIR@",
            "--config",
        ])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8(out.stdout).unwrap();
    // The lighttpd.conf lines the script documents, uncommented.
    let conf_lines: String = script
        .lines()
        .skip_while(|l| !l.starts_with("-- lighttpd.conf:"))
        .skip(1)
        .take_while(|l| l.starts_with("--   "))
        .map(|l| format!("{}\n", &l[5..]))
        .collect();
    assert!(
        conf_lines.contains("magnet.attract-physical-path-to"),
        "{conf_lines}"
    );
    let magnet_dir = dir.join("magnet");
    std::fs::create_dir_all(&magnet_dir).unwrap();
    // The config points at @DIR@/local-or-s3.lua: lighttpd's own directory, known once it
    // runs; mod_magnet loads the script on the first request.
    let l = Lighttpd::start(&magnet_dir, &conf_lines);
    std::fs::write(l.dir.join("local-or-s3.lua"), &script).unwrap();
    let body = content(2048);
    write_file(&root, "photo.jpg", &body);

    let r = get(l.addr, "/static/photo.jpg");
    assert_eq!(r.status, 200, "{}\n{}", r.raw_head, l.error_log());
    assert_eq!(r.body, body);
    let etag = r.header("etag").unwrap().to_string();
    let r = request(
        l.addr,
        "GET",
        "/static/photo.jpg",
        &[("Range", "bytes=0-9")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &body[..10]));
    let r = request(l.addr, "HEAD", "/static/photo.jpg", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("2048")));
    assert_eq!(
        request(
            l.addr,
            "GET",
            "/static/photo.jpg",
            &[("If-None-Match", &etag)]
        )
        .status,
        304
    );

    // Missing: 302 to the unsigned object URL, every segment percent-encoded.
    let r = get(l.addr, "/static/gone/a%20b%2B%E2%82%AC.jpg");
    assert_eq!(r.status, 302, "{}", r.raw_head);
    assert_eq!(
        r.header("location").unwrap(),
        format!(
            "{}/site-media/static/gone/a%20b%2B%E2%82%AC.jpg",
            s3.endpoint
        )
    );

    // No access control in Lua: a signed-links-only mount is refused outright, even for a
    // local file and even with a link stowaway would accept.
    assert_eq!(get(l.addr, "/private/mine.txt").status, 403);
    let link = stowaway_cmd()
        .args(["sign", "/private/mine.txt", "--ttl", "1h", "--config"])
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        link.status.success(),
        "{}",
        String::from_utf8_lossy(&link.stderr)
    );
    assert_eq!(
        get(l.addr, String::from_utf8(link.stdout).unwrap().trim()).status,
        403
    );

    let public_prefix = format!("{}/site-media/static/", s3.endpoint);
    for t in HOSTILE {
        let r = request_bytes(l.addr, "GET", t, &[]);
        assert_harmless(&r, t, &public_prefix);
    }
    // Symlinks: lighttpd refuses to send them.
    assert_eq!(get(l.addr, "/static/link.txt").status, 403);
    assert_eq!(get(l.addr, "/static/ok.jpg").body, b"fine");
    // A directory is no file.
    assert_eq!(get(l.addr, "/static/sub").status, 404);
}

#[test]
fn shipped_lighttpd_files_match_the_generator() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = repo.join("examples/stowaway.toml");
    for (args, file) in [
        (&["lighttpd"][..], "lighttpd/stowaway.conf"),
        (&["lighttpd-magnet"][..], "lighttpd/local-or-s3.lua"),
    ] {
        let out = stowaway_cmd()
            .arg("gen-config")
            .args(args)
            .arg("--config")
            .arg(&example)
            .env("STOWAWAY__SERVER__FRONT", "lighttpd")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shipped = std::fs::read_to_string(repo.join(file)).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            shipped,
            "regenerate {file}"
        );
    }
}

/// Issue 11 item 5: the longest key stowaway accepts is sent by lighttpd (X-Sendfile) and
/// redirected.
#[test]
fn longest_key_is_served_local_and_redirected() {
    let s = site("");
    let l = lighttpd_front(&s.dir, &s.st);
    assert_longest_key_served(l.addr, &s.root, &s.s3, &|| l.error_log());
}

/// Issue 11 item 8: a root with a space works behind lighttpd.
#[test]
fn root_with_a_space_is_served() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site/my static files");
    write_file(&root, "a b.jpg", b"spaced root");
    let st = Stowaway::start(tmp.path(), &config(&s3, &root, "front = \"lighttpd\"", ""));
    let l = lighttpd_front(tmp.path(), &st);
    let r = get(l.addr, "/static/a%20b.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"spaced root"[..]),
        "{}\n{}",
        r.raw_head,
        l.error_log()
    );
}

/// Issue 12 item 3: `gen-config lighttpd --out-dir` writes every file the setup needs (the
/// tests' lighttpd runs from that directory only, no file of the repository), and the
/// recheck script it names is the one it wrote.
#[test]
fn out_dir_holds_every_file_the_lighttpd_setup_needs() {
    let s = site("");
    let dir = lighttpd_files(&s.st);
    let conf = std::fs::read_to_string(dir.join("stowaway.conf")).unwrap();
    let script = dir.join("stowaway-recheck.lua");
    assert!(script.is_file());
    assert!(
        conf.contains(&format!(
            "magnet.attract-raw-url-to = ( \"{}\" )",
            script.display()
        )),
        "{conf}"
    );
    let local_first = dir.join("stowaway-local-first.lua");
    assert!(local_first.is_file());
    assert!(
        conf.contains(&format!(
            "magnet.attract-raw-url-to = ( \"{}\" )",
            local_first.display()
        )),
        "{conf}"
    );
    assert!(!conf.contains(env!("CARGO_MANIFEST_DIR")), "{conf}");
    // The magnet script too.
    let out = stowaway_cmd()
        .args(["gen-config", "lighttpd-magnet", "--out-dir"])
        .arg(s.dir.join("magnet"))
        .arg("--config")
        .arg(&s.st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.dir.join("magnet/local-or-s3.lua").is_file());
    // nginx has no files to write: refused, naming the fix.
    let out = stowaway_cmd()
        .args(["gen-config", "nginx", "--out-dir"])
        .arg(s.dir.join("n"))
        .arg("--config")
        .arg(&s.st.config)
        .env("STOWAWAY__SERVER__FRONT", "nginx")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--part"));
}

/// Issue 12 item 4: a config for the other front server is refused (exit 2, naming
/// server.front and the fix), and if stowaway's front kind drifts after the config was
/// generated, no internal header (X-Accel-Redirect, X-S3-Location, X-Sendfile with an
/// absolute path) reaches a client.
#[test]
fn front_mismatch_is_refused_and_a_drifted_front_leaks_no_header() {
    let s = site("");
    write_file(&s.root, "photo.jpg", b"local");
    s.s3.put("site-media", "static/gone.jpg", b"s3");
    let generate = |args: &[&str], front: &str| {
        stowaway_cmd()
            .arg("gen-config")
            .args(args)
            .arg("--config")
            .arg(&s.st.config)
            .env("STOWAWAY__SERVER__FRONT", front)
            .output()
            .unwrap()
    };
    for (args, front) in [
        (&["lighttpd"][..], "nginx"),
        (&["nginx"][..], "lighttpd"),
        (&["nginx", "--mode", "auth"][..], "lighttpd"),
        (&["nginx", "--part", "server"][..], "lighttpd"),
    ] {
        let out = generate(args, front);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} with {front}: {err}");
        assert!(out.stdout.is_empty());
        assert!(
            err.contains(&format!("server.front is \"{front}\""))
                && err.contains("fix: set server.front"),
            "{err}"
        );
    }
    let no_leak = |r: &Response, what: &str| {
        let head = r.raw_head.to_ascii_lowercase();
        for h in ["x-accel-redirect", "x-sendfile", "x-s3-location"] {
            assert!(
                !head.contains(h),
                "{what}: {h} reached the client: {}",
                r.raw_head
            );
        }
        assert!(
            !r.raw_head.contains(s.root.to_str().unwrap()),
            "{what}: the root path reached the client: {}",
            r.raw_head
        );
    };
    // stowaway answers for lighttpd (X-Sendfile); nginx runs a config generated for nginx.
    let out = generate(&["nginx", "--part", "http"], "nginx");
    assert!(out.status.success());
    let http = String::from_utf8(out.stdout).unwrap();
    let out = generate(&["nginx", "--part", "server"], "nginx");
    let server = s.dir.join("drift-server.conf");
    std::fs::write(&server, &out.stdout).unwrap();
    let n = Nginx::start(
        &s.dir,
        &realistic_site_with(&http, Some(&server), &s.dir.join("docroot")),
    );
    for p in ["/static/photo.jpg", "/static/gone.jpg"] {
        no_leak(&get(n.addr, p), &format!("nginx {p}"));
    }
    // stowaway answers for nginx (X-Accel-Redirect, X-S3-Location); lighttpd runs a config
    // generated for lighttpd.
    let st_nginx = Stowaway::start(&s.dir, &config(&s.s3, &s.root, "", ""));
    let lout = s.dir.join("drift-lighttpd");
    let out = stowaway_cmd()
        .args(["gen-config", "lighttpd", "--out-dir"])
        .arg(&lout)
        .arg("--config")
        .arg(&st_nginx.config)
        .env("STOWAWAY__SERVER__FRONT", "lighttpd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = Lighttpd::start(
        &s.dir,
        &format!("include \"{}\"", lout.join("stowaway.conf").display()),
    );
    for p in ["/static/photo.jpg", "/static/gone.jpg"] {
        no_leak(&get(l.addr, p), &format!("lighttpd {p}"));
    }
}

/// Issue 12 item 3: the README's lighttpd recipe in Debian's own layout (/etc/lighttpd copied
/// to a prefix that stands for it): `gen-config lighttpd --out-dir <prefix>/stowaway`, an
/// include line in conf-enabled/, and `lighttpd -tt` accepts the whole configuration.
#[test]
fn debian_lighttpd_layout_accepts_the_out_dir_recipe() {
    let s = site("");
    let prefix = s.dir.join("etc-lighttpd");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg("/etc/lighttpd")
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(ok.success());
    let p = format!("{}/", prefix.display());
    let main = std::fs::read_to_string(prefix.join("lighttpd.conf"))
        .unwrap()
        .replace("/etc/lighttpd/", &p);
    std::fs::write(prefix.join("lighttpd.conf"), main).unwrap();
    let out = stowaway_cmd()
        .args(["gen-config", "lighttpd", "--out-dir"])
        .arg(prefix.join("stowaway"))
        .arg("--config")
        .arg(&s.st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        prefix.join("conf-enabled/50-stowaway.conf"),
        format!("include \"{p}stowaway/stowaway.conf\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(fronts::lighttpd::lighttpd_bin())
        .arg("-tt")
        .arg("-f")
        .arg(prefix.join("lighttpd.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lighttpd -tt: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 14 item 1, over TCP and over stowaway's Unix socket: in local-first mode (the
/// default) lighttpd sends a plain local file itself, and stowaway never hears of it (its own
/// metrics say so), with Range, HEAD and 304 all lighttpd's; a miss reaches stowaway with the
/// client's own request target and gets its presigned 302; ignored names, symlinks,
/// directories and other methods are stowaway's to refuse; a file that appears on disk is
/// served at once.
#[test]
fn local_first_sends_local_hits_without_asking_stowaway() {
    for unix in [false, true] {
        eprintln!("stowaway on a Unix socket: {unix}");
        local_first_hits(unix);
    }
}

fn local_first_hits(unix: bool) {
    let world = World::site("site-media");
    let dir = world.path().to_path_buf();
    let cfg = config(&world.s3, &world.root, "front = \"lighttpd\"", "");
    let st = if unix {
        Stowaway::start_unix(&dir, &cfg)
    } else {
        Stowaway::start(&dir, &cfg)
    };
    let l = lighttpd_front(&dir, &st);
    let root = &world.root;
    let body = content(10_240);
    write_file(root, "photo.jpg", &body);
    write_file(root, "a b/€ q?x#%+.jpg", &body[..100]);
    write_file(&dir, "site/outside.jpg", SECRET_MARKER);
    let asked = decisions_total(&st);

    let r = get(l.addr, "/static/photo.jpg");
    assert_eq!(r.status, 200, "{}\n{}", r.raw_head, l.error_log());
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let etag = r.header("etag").unwrap().to_string();
    let last_modified = r.header("last-modified").unwrap().to_string();
    let r = request(
        l.addr,
        "GET",
        "/static/photo.jpg",
        &[("Range", "bytes=0-99")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/10240"));
    assert_eq!(r.body, &body[..100]);
    let r = request(
        l.addr,
        "GET",
        "/static/photo.jpg",
        &[("Range", "bytes=-40")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &body[10_200..]));
    let r = request(l.addr, "HEAD", "/static/photo.jpg", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("10240")));
    assert!(r.body.is_empty());
    for (h, v) in [
        ("If-None-Match", &etag),
        ("If-Modified-Since", &last_modified),
    ] {
        let r = request(l.addr, "GET", "/static/photo.jpg", &[(h, v)]);
        assert_eq!(r.status, 304, "{h}: {}", r.raw_head);
    }
    for t in [
        "/static/a%20b/%E2%82%AC%20q%3Fx%23%25+.jpg",
        "/static//a%20b/%E2%82%AC%20q%3Fx%23%25+.jpg",
    ] {
        let r = get(l.addr, t);
        assert_eq!((r.status, r.body.as_slice()), (200, &body[..100]), "{t}");
    }
    assert_eq!(get(l.addr, "/static/./photo.jpg?v=2").body, body);
    assert_eq!(
        decisions_total(&st),
        asked,
        "a local hit reached stowaway: {}",
        st.log_text()
    );

    // Every request below reaches stowaway, once.
    let mut asked = asked;
    let mut via_stowaway = |method: &str, target: &str| {
        let r = request(l.addr, method, target, &[("Content-Length", "0")]);
        asked += 1;
        assert_eq!(
            decisions_total(&st),
            asked,
            "{method} {target} did not reach stowaway exactly once: {}",
            r.raw_head
        );
        r
    };
    // A miss: stowaway's presigned 302 for the client's own target, which S3 accepts.
    world
        .s3
        .put("site-media", "static/gone/pic 1+2.png", &body[..5000]);
    for method in ["GET", "HEAD"] {
        let r = via_stowaway(method, "/static/gone/pic%201+2.png?v=3");
        assert_eq!(r.status, 302, "{method}: {}", r.raw_head);
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(&format!(
                "{}gone/pic%201%2B2.png?",
                world.bucket_url("static/")
            )),
            "{loc}"
        );
        assert_eq!(fetch_url(method, loc).status, 200, "{loc}");
    }
    // Ignored names (the mount's globs, stowaway's own temp files) are never sent by lighttpd.
    for rel in [
        ".env",
        ".git/config",
        "up/load.jpg.part",
        "x.tmp",
        ".stowaway-tmp.1.2.3",
    ] {
        write_file(root, rel, SECRET_MARKER);
        let r = via_stowaway("GET", &format!("/static/{rel}"));
        assert_eq!(r.status, 404, "{rel}: {}", r.raw_head);
    }
    // Symlinks, to a file outside the root, to one inside, and through a directory: not followed.
    std::os::unix::fs::symlink(dir.join("site/outside.jpg"), root.join("out.jpg")).unwrap();
    std::os::unix::fs::symlink(root.join("photo.jpg"), root.join("alias.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.join("site"), root.join("lnk")).unwrap();
    for t in [
        "/static/out.jpg",
        "/static/alias.jpg",
        "/static/lnk/outside.jpg",
    ] {
        let r = via_stowaway("GET", t);
        assert_eq!(r.status, 404, "{t}: {}", r.raw_head);
        assert!(r.body.len() < 100 && r.body != SECRET_MARKER, "{t}");
    }
    for t in ["/static/a%20b", "/static/a%20b/"] {
        assert_eq!(via_stowaway("GET", t).status, 404, "{t}");
    }
    assert_eq!(via_stowaway("POST", "/static/photo.jpg").status, 405);

    // A file that appears is sent at once: no negative caching in front of it.
    assert_eq!(via_stowaway("GET", "/static/new.jpg").status, 302);
    write_file(root, "new.jpg", b"new");
    let r = get(l.addr, "/static/new.jpg");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"new"[..]));
    assert_eq!(decisions_total(&st), asked, "the new file reached stowaway");
}

/// Issue 14 item 1: a mount with access control keeps X-Sendfile mode in the local-first
/// output: lighttpd never sends one of its files without stowaway's verdict, while the open
/// mount beside it is served by lighttpd alone.
#[test]
fn local_first_never_sends_a_file_of_an_access_controlled_mount() {
    let world = World::site("site-media");
    let dir = world.path().to_path_buf();
    let private = dir.join("site/private");
    write_file(&private, "mine.txt", b"private");
    write_file(&world.root, "ok.jpg", b"fine");
    let cfg = config(
        &world.s3,
        &world.root,
        "front = \"lighttpd\"",
        &format!(
            "[[mount]]\nprefix = \"/private/\"\nroot = \"{}\"\nbucket = \"site-media\"\nkey_prefix = \"private/\"\n{}",
            private.display(),
            access_section(&dir, "k1"),
        ),
    );
    let st = Stowaway::start(&dir, &cfg);
    let l = lighttpd_front(&dir, &st);
    let asked = decisions_total(&st);
    let r = get(l.addr, "/static/ok.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"fine"[..]),
        "{}",
        l.error_log()
    );
    assert_eq!(decisions_total(&st), asked);
    for t in ["/private/mine.txt", "/private/mine.txt?sig=forged"] {
        let r = get(l.addr, t);
        assert_eq!(r.status, 403, "{t}: {}", r.raw_head);
        assert!(!r.body.starts_with(b"private"), "{t}");
    }
    let link = stowaway_cmd()
        .args(["sign", "/private/mine.txt", "--ttl", "1h", "--config"])
        .arg(&st.config)
        .output()
        .unwrap();
    assert!(
        link.status.success(),
        "{}",
        String::from_utf8_lossy(&link.stderr)
    );
    let r = get(l.addr, String::from_utf8(link.stdout).unwrap().trim());
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"private"[..]),
        "{}",
        r.raw_head
    );
    assert_eq!(decisions_total(&st), asked + 3);
}

/// Issue 14 item 1: the shipped lighttpd/ files are what the default `gen-config lighttpd
/// --out-dir` writes for examples/stowaway.toml (the printed config is the same stowaway.conf).
#[test]
fn shipped_local_first_files_match_the_generator() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let out = stowaway_cmd()
        .args([
            "gen-config",
            "lighttpd",
            "--lua-dir",
            "/etc/lighttpd/stowaway",
            "--out-dir",
        ])
        .arg(tmp.path())
        .arg("--config")
        .arg(repo.join("examples/stowaway.toml"))
        .env("STOWAWAY__SERVER__FRONT", "lighttpd")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "stowaway.conf",
        "stowaway-recheck.lua",
        "stowaway-local-first.lua",
    ] {
        let shipped = std::fs::read_to_string(repo.join("lighttpd").join(f)).unwrap();
        let written = std::fs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(written, shipped, "regenerate lighttpd/{f}");
    }
}
