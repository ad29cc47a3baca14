//! nginx (Debian package) in auth_request mode, running exactly the config
//! `stowaway gen-config nginx --mode auth` prints, in front of the real stowaway binary and a
//! real SigV4-checking S3 server.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

fn site(server_extra: &str, mount_extra: &str) -> Site {
    let world = World::site("site-media");
    let dir = world.path().to_path_buf();
    let st = world.start(&config(&world.s3, &world.root, server_extra, mount_extra));
    Site { world, dir, st }
}

fn bucket_prefix(s: &Site) -> String {
    s.bucket_url("static/")
}

#[test]
fn local_file_is_served_by_nginx_with_range_head_and_304() {
    let s = site("", "");
    let nginx = auth_nginx(&s.dir, &s.st);
    let body = content(10_240);
    write_file(&s.root, "photo123.jpg", &body);
    write_file(&s.root, "a b/€ q?x#%.jpg", &body[..100]);

    let r = get(nginx.addr, "/static/photo123.jpg");
    assert_eq!(r.status, 200, "{}", r.raw_head);
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    for internal in ["x-s3-location", "x-stowaway-status", "x-accel-expires"] {
        assert!(
            r.header(internal).is_none(),
            "{internal} leaks: {}",
            r.raw_head
        );
    }
    let etag = r.header("etag").unwrap().to_string();

    let r = request(
        nginx.addr,
        "GET",
        "/static/photo123.jpg",
        &[("Range", "bytes=0-99")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/10240"));
    assert_eq!(r.body, &body[..100]);
    let r = request(
        nginx.addr,
        "GET",
        "/static/photo123.jpg",
        &[("Range", "bytes=-10")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &body[10_230..]));

    let r = request(nginx.addr, "HEAD", "/static/photo123.jpg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10240"));
    assert!(r.body.is_empty());

    assert_eq!(
        request(
            nginx.addr,
            "GET",
            "/static/photo123.jpg",
            &[("If-None-Match", &etag)]
        )
        .status,
        304
    );

    // Awkward names reach the right file; nginx's own normalisation agrees with stowaway's.
    let r = get(nginx.addr, "/static/a%20b/%E2%82%AC%20q%3Fx%23%25.jpg");
    assert_eq!(r.status, 200, "{}", r.raw_head);
    assert_eq!(r.body, &body[..100]);
    assert_eq!(get(nginx.addr, "/static//photo123.jpg").body, body);
    assert_eq!(get(nginx.addr, "/static/./photo123.jpg").body, body);
    assert_eq!(get(nginx.addr, "/static/photo123.jpg?x=1&y=%20").body, body);
}

#[test]
fn missing_file_redirects_to_a_url_signed_for_the_method_that_s3_accepts() {
    let s = site("", "");
    let nginx = auth_nginx(&s.dir, &s.st);
    let body = content(5000);
    s.s3.put("site-media", "static/gone/pic 1+2.png", &body);
    for method in ["GET", "HEAD"] {
        let r = request(nginx.addr, method, "/static/gone/pic%201+2.png", &[]);
        assert_eq!(r.status, 302, "{method}: {}", r.raw_head);
        let loc = r.header("location").unwrap().to_string();
        assert!(
            loc.starts_with(&format!("{}gone/pic%201%2B2.png?", bucket_prefix(&s))),
            "{loc}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let obj = fetch_url(method, &loc);
        assert_eq!(obj.status, 200, "{method} {loc}");
        if method == "GET" {
            assert_eq!(obj.body, body);
        } else {
            assert_eq!(obj.header("content-length"), Some("5000"));
            // Signed for HEAD: the same URL does not work for GET.
            assert_eq!(
                fetch_url("GET", &loc).status,
                403,
                "a HEAD URL must not download"
            );
        }
    }
    // Other methods get the same answer as in proxy_pass mode.
    assert_eq!(
        request(nginx.addr, "POST", "/static/gone/pic%201+2.png", &[]).status,
        405
    );
    assert_eq!(
        request(nginx.addr, "DELETE", "/static/photo.jpg", &[]).status,
        405
    );
}

/// A "local" verdict cached by nginx stays correct after the file is archived: try_files
/// misses, and the URL cached with the verdict still downloads the object. stowaway is stopped
/// first, so the second answer can only come from nginx's verdict cache.
#[test]
fn cached_local_verdict_survives_archiving_the_file() {
    let s = site("verdict_ttl = \"5m\"", "");
    let nginx = auth_nginx(&s.dir, &s.st);
    let body = content(4321);
    write_file(&s.root, "doc/report.pdf", &body);
    for method in ["GET", "HEAD"] {
        let r = request(nginx.addr, method, "/static/doc/report.pdf", &[]);
        assert_eq!(r.status, 200, "{method}: {}", r.raw_head);
    }
    // A cached remote verdict too.
    s.s3.put("site-media", "static/elsewhere.bin", b"remote bytes");
    let first = get(nginx.addr, "/static/elsewhere.bin");
    assert_eq!(first.status, 302);

    let bucket = bucket_prefix(&s);
    let mut st = s.st;
    st.proc.kill();
    // Archive: the object appears in S3, the local file moves out of the root.
    s.world.s3.put("site-media", "static/doc/report.pdf", &body);
    std::fs::create_dir_all(s.dir.join("archive")).unwrap();
    std::fs::rename(
        s.world.root.join("doc/report.pdf"),
        s.dir.join("archive/report.pdf"),
    )
    .unwrap();

    for method in ["GET", "HEAD"] {
        // open_file_cache may send the moved file from its cached descriptor for up to
        // open_file_cache_valid (2 s, documented); never anything else.
        let mut last = None;
        let redirected = wait_until(Duration::from_secs(8), || {
            let r = request(nginx.addr, method, "/static/doc/report.pdf", &[]);
            let done = r.status == 302;
            if !done {
                assert_eq!(r.status, 200, "{method}: {}", r.raw_head);
                assert!(method == "HEAD" || r.body == body, "{method}: stale bytes");
            }
            last = Some(r);
            done
        });
        let r = last.unwrap();
        assert!(
            redirected,
            "{method} after archiving: {}\n{}",
            r.raw_head,
            nginx.error_log()
        );
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(&format!("{bucket}doc/report.pdf?")),
            "{loc}"
        );
        let obj = fetch_url(method, loc);
        assert_eq!(obj.status, 200, "{method} {loc}");
        if method == "GET" {
            assert_eq!(obj.body, body);
        }
    }
    let again = get(nginx.addr, "/static/elsewhere.bin");
    assert_eq!(again.status, 302);
    assert_eq!(
        again.header("location"),
        first.header("location"),
        "the cached verdict carries the cached URL"
    );
    // Never cached: a path nobody asked for while stowaway was up.
    assert_eq!(
        get(nginx.addr, "/static/never-asked.jpg").status,
        500,
        "no verdict without stowaway (fail closed)"
    );
}

/// The file vanishes between the verdict and nginx's open (staged by pointing nginx's root at
/// an empty directory): with fallback_header the URL sent along is used, without it nginx asks
/// stowaway's decision endpoint again.
#[test]
fn file_vanishing_after_the_verdict_still_ends_in_a_302() {
    for fallback_header in [true, false] {
        let s = site(&format!("fallback_header = {fallback_header}"), "");
        let empty = s.dir.join("site/empty");
        std::fs::create_dir_all(&empty).unwrap();
        let conf = replace_directive(
            &auth_conf(&s.st),
            "root",
            &format!("        root {};", empty.display()),
        );
        let nginx = Nginx::start(
            &s.dir,
            &in_realistic_site(&conf, &s.dir.join("site-docroot")),
        );
        let body = content(300);
        write_file(&s.root, "vanish.jpg", &body);
        s.s3.put("site-media", "static/vanish.jpg", &body);
        for method in ["GET", "HEAD"] {
            let r = request(nginx.addr, method, "/static/vanish.jpg", &[]);
            assert_eq!(
                r.status, 302,
                "fallback_header={fallback_header} {method}: {}",
                r.raw_head
            );
            let loc = r.header("location").unwrap().to_string();
            let obj = fetch_url(method, &loc);
            assert_eq!(obj.status, 200, "{loc}");
            if method == "GET" {
                assert_eq!(obj.body, body);
            }
        }
    }
}

/// The auth endpoint itself: only 200, 401 and 403 (+ X-Stowaway-Status), a verdict lifetime
/// in X-Accel-Expires bounded by the URL's validity, and no Cache-Control.
#[test]
fn auth_endpoint_speaks_nginx_auth_request() {
    let s = site("verdict_ttl = \"1h\"", "");
    write_file(&s.root, "here.jpg", b"x");
    std::fs::create_dir_all(s.root.join("dir")).unwrap();
    let auth = |uri: &str, method: Option<&str>| {
        let mut h = vec![("X-Original-URI", uri)];
        if let Some(m) = method {
            h.push(("X-Original-Method", m));
        }
        request(s.st.addr, "GET", "/_stowaway/auth", &h)
    };
    let ttl = |r: &Response| -> u64 {
        r.header("x-accel-expires")
            .unwrap_or_else(|| panic!("no X-Accel-Expires: {}", r.raw_head))
            .parse()
            .unwrap()
    };

    let r = auth("/static/here.jpg", None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("x-s3-location")
            .unwrap()
            .contains("/site-media/static/here.jpg?X-Amz-")
    );
    // Presigned per request for 10 minutes: cached for at most half of that, not the 1h TTL.
    assert!(ttl(&r) > 0 && ttl(&r) <= 300, "{}", r.raw_head);
    assert!(
        r.header("cache-control").is_none() && r.body.is_empty(),
        "{}",
        r.raw_head
    );

    let r = auth("/static/gone.jpg?x=1", Some("HEAD"));
    assert_eq!(r.status, 401);
    let loc = r.header("x-s3-location").unwrap();
    assert!(loc.contains("/site-media/static/gone.jpg?X-Amz-"), "{loc}");
    assert!(ttl(&r) > 0 && ttl(&r) <= 300);

    for (uri, method, status) in [
        ("/static/%2e%2e/x", None, "400"),
        ("/static/a%00b", None, "400"),
        ("/static/dir", None, "404"),
        ("/static/", None, "404"),
        ("/elsewhere/a.jpg", None, "404"),
        ("/static/here.jpg", Some("POST"), "405"),
    ] {
        let r = auth(uri, method);
        assert_eq!(r.status, 403, "{uri}");
        assert_eq!(r.header("x-stowaway-status"), Some(status), "{uri}");
        assert_eq!(ttl(&r), 3600, "{uri}: refusals of a path are stable");
    }
    // Without X-Original-URI (not our nginx config): refused, never cached.
    let r = request(s.st.addr, "GET", "/_stowaway/auth", &[]);
    assert_eq!(
        (r.status, r.header("x-stowaway-status")),
        (403, Some("400"))
    );
    assert_eq!(ttl(&r), 0);
}

#[test]
fn public_mount_verdicts_use_the_configured_ttl() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(&s3, &root, "verdict_ttl = \"42s\"", "")
        .replace("url = \"presigned\"", "url = \"public\"");
    let st = Stowaway::start(d.path(), &cfg);
    let r = request(
        st.addr,
        "GET",
        "/_stowaway/auth",
        &[("X-Original-URI", "/static/a.jpg")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("x-s3-location").unwrap(),
        format!("{}/site-media/static/a.jpg", s3.endpoint)
    );
    assert_eq!(r.header("x-accel-expires"), Some("42"));
    // verdict_ttl = 0 turns caching off, in stowaway's answers and in the generated config.
    let cfg0 = config(&s3, &root, "verdict_ttl = \"0s\"", "");
    let st0 = Stowaway::start(d.path(), &cfg0);
    let r = request(
        st0.addr,
        "GET",
        "/_stowaway/auth",
        &[("X-Original-URI", "/static/a.jpg")],
    );
    assert_eq!(r.header("x-accel-expires"), Some("0"));
    let conf = auth_conf(&st0);
    assert!(!conf.contains("proxy_cache"), "{conf}");
    let nginx = Nginx::start(d.path(), &conf);
    assert_eq!(get(nginx.addr, "/static/a.jpg").status, 302);
}

#[test]
fn hostile_urls_get_the_same_answers_as_in_proxy_pass_mode() {
    let s = site("", "");
    plant_hostile_fixtures(&s.dir, &s.root);
    let auth = auth_nginx(&s.dir, &s.st);
    let proxy = proxy_nginx(&s.dir, &s.st);
    let bucket = bucket_prefix(&s);
    for t in HOSTILE {
        let a = request_bytes(auth.addr, "GET", t, &[]);
        let p = request_bytes(proxy.addr, "GET", t, &[]);
        assert_harmless(&a, t, &bucket);
        assert_harmless(&p, t, &bucket);
        assert_eq!(
            a.status,
            p.status,
            "{}: auth mode {} vs proxy mode {}",
            String::from_utf8_lossy(t),
            a.raw_head,
            p.raw_head
        );
    }
    // A client cannot smuggle another URI, method or address into the verdict.
    let r = request(
        auth.addr,
        "GET",
        "/static/ok.jpg",
        &[
            ("X-Original-URI", "/static/other.jpg"),
            ("X-Original-Method", "HEAD"),
            ("X-Sidecar-Recheck", "1"),
        ],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, b"fine".as_slice()));
    // The verdict location is internal.
    assert_eq!(get(auth.addr, "/_stowaway_local/auth/0").status, 404);
    assert_eq!(get(auth.addr, "/static/ok.jpg").body, b"fine");
}

#[test]
fn shipped_auth_config_matches_the_generator() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let standalone = ["--front-listen", "80", "--server-name", "www.example.com"];
    for (args, file) in [
        (&["--mode", "auth"][..], "nginx/stowaway-auth.conf"),
        (
            &["--mode", "auth", "--part", "http"][..],
            "nginx/stowaway-auth-http.conf",
        ),
        (
            &["--mode", "auth", "--part", "server"][..],
            "nginx/stowaway-auth-server.conf",
        ),
        (
            &["--mode", "proxy", "--part", "http"][..],
            "nginx/stowaway-proxy-http.conf",
        ),
        (
            &["--mode", "proxy", "--part", "server"][..],
            "nginx/stowaway-proxy-server.conf",
        ),
        // Every mount of the example is open: the default is local-first.
        (&["--part", "http"][..], "nginx/stowaway-local-http.conf"),
        (
            &["--part", "server"][..],
            "nginx/stowaway-local-server.conf",
        ),
    ] {
        let mut cmd = stowaway_cmd();
        cmd.args(["gen-config", "nginx"]).args(args);
        if !args.contains(&"--part") {
            cmd.args(standalone);
        }
        let out = cmd
            .arg("--config")
            .arg(repo.join("examples/stowaway.toml"))
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

/// Issue 11 items 3, 8 and 10: inside a site with regex locations and rewrites, the generated
/// locations keep their requests, and a request a rewrite brought into a mount is refused
/// (the verdict would be about the pre-rewrite URI, nginx would serve the rewritten one).
#[test]
fn site_regex_locations_and_rewrites_cannot_bypass_stowaway() {
    let t = two_mounts("");
    let nginx = auth_nginx_in_site(&t.dir, &t.st, &t.dir.join("site"));
    assert_site_cannot_bypass(&nginx, &t, true);
}

/// Issue 11 item 5: the longest key stowaway accepts fits nginx's upstream buffers, with and
/// without the verdict cache.
#[test]
fn longest_key_is_served_local_and_redirected() {
    for extra in [
        "fallback_header = true",
        "fallback_header = false\nverdict_ttl = \"0s\"",
    ] {
        let s = site(extra, "");
        let nginx = auth_nginx(&s.dir, &s.st);
        assert_longest_key_served(nginx.addr, &s.root, &s.s3, &|| nginx.error_log());
    }
}

/// Issue 12 items 1 and 5: the http and server snippets inside Debian's default site and a
/// realistic site; the site answers as before, the mounts work.
#[test]
fn snippets_drop_into_debian_default_and_a_realistic_site() {
    assert_snippets_drop_into_sites(AUTH_ARGS);
}

/// Issue 12 item 13: --fail-open serves open mounts from disk while stowaway is down (the
/// failed verdict subrequest is a 500).
#[test]
fn fail_open_serves_open_mounts_from_disk_while_stowaway_is_down() {
    assert_fail_open(AUTH_ARGS, 500);
}

/// Issue 12 item 1: proxy mode and auth mode of one stowaway and a second stowaway instance,
/// all with their default names, in one nginx (before: `duplicate upstream "stowaway"`).
#[test]
fn proxy_and_auth_mode_and_a_second_instance_share_one_nginx() {
    let mut t = two_mounts("");
    let cfg = std::fs::read_to_string(&t.st.config).unwrap().replace(
        &format!("listen = \"{}\"", t.st.addr),
        "listen = \"@LISTEN@\"",
    );
    assert!(cfg.contains("@LISTEN@"));
    let st2 = Stowaway::start(&t.dir, &cfg);
    let (h1, s1) = nginx_snippets(&t.dir, &t.st, &[]);
    let (h2, s2) = nginx_snippets(&t.dir, &t.st, AUTH_ARGS);
    let (h3, s3) = nginx_snippets(&t.dir, &st2, &[]);
    let (p2, p3) = (free_port(), free_port());
    let conf = format!(
        "{h1}{h2}{h3}\n\
         server {{\n    listen 127.0.0.1:@PORT@;\n    include {};\n}}\n\
         server {{\n    listen 127.0.0.1:{p2};\n    include {};\n}}\n\
         server {{\n    listen 127.0.0.1:{p3};\n    include {};\n}}\n",
        s1.display(),
        s2.display(),
        s3.display()
    );
    let nginx = Nginx::start(&t.dir, &conf);
    let second: std::net::SocketAddr = format!("127.0.0.1:{p2}").parse().unwrap();
    let third: std::net::SocketAddr = format!("127.0.0.1:{p3}").parse().unwrap();
    for addr in [nginx.addr, second, third] {
        assert_mounts_work(addr, &t, &|| nginx.error_log());
    }
    // The third server talks to the second instance only.
    t.st.proc.kill();
    assert_eq!(get(third, "/static/photo.jpg").body, b"public jpg");
    assert_eq!(get(nginx.addr, "/static/photo.jpg").status, 502);
}

/// Issue 12 item 2: the generated http part with the default verdict cache directory passes
/// `nginx -t` in Debian's own layout (/etc/nginx copied to a prefix, the http part in conf.d,
/// the server part included in sites-enabled/default). Before, /var/cache/nginx/stowaway could
/// not be created (Debian has no /var/cache/nginx).
#[test]
fn debian_nginx_layout_accepts_the_default_verdict_cache_dir() {
    let t = two_mounts("");
    let prefix = t.dir.join("etc-nginx");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg("/etc/nginx")
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(ok.success());
    let p = format!("{}/", prefix.display());
    let main = std::fs::read_to_string(prefix.join("nginx.conf"))
        .unwrap()
        .replace("/etc/nginx/", &p);
    std::fs::write(prefix.join("nginx.conf"), main).unwrap();
    let http = gen_config(&t.st, &["nginx", "--mode", "auth", "--part", "http"]);
    let server = gen_config(&t.st, &["nginx", "--mode", "auth", "--part", "server"]);
    let cache = http
        .lines()
        .find_map(|l| l.strip_prefix("proxy_cache_path "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(cache.starts_with("/var/cache/stowaway_auth_"), "{cache}");
    std::fs::write(prefix.join("conf.d/stowaway.conf"), http).unwrap();
    std::fs::create_dir_all(prefix.join("snippets")).unwrap();
    std::fs::write(prefix.join("snippets/stowaway-server.conf"), server).unwrap();
    let site = std::fs::read_to_string("/etc/nginx/sites-available/default")
        .unwrap()
        .replacen(
            "server {",
            &format!("server {{\n\tinclude {p}snippets/stowaway-server.conf;"),
            1,
        );
    let enabled = prefix.join("sites-enabled/default");
    let _ = std::fs::remove_file(&enabled);
    std::fs::write(&enabled, site).unwrap();
    let existed = Path::new(&cache).exists();
    let out = std::process::Command::new(nginx_bin())
        .arg("-t")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .output()
        .unwrap();
    let created = Path::new(&cache).is_dir();
    if !existed {
        let _ = std::fs::remove_dir(&cache);
    }
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(created, "nginx created {cache}");
}

/// Issue 12 item 1: the server part's `set $stowaway_uri $uri;` misplaced after a site's
/// `rewrite … last` fails closed: the rewritten request never records its URI and is refused,
/// while direct requests still work.
#[test]
fn server_part_included_after_a_rewrite_fails_closed() {
    let t = two_mounts("");
    let (http, server) = nginx_snippets(&t.dir, &t.st, AUTH_ARGS);
    let conf = format!(
        "{http}\nserver {{\n    listen 127.0.0.1:@PORT@;\n    rewrite ^/old-static/(.*)$ /static/$1 last;\n    include {};\n}}\n",
        server.display()
    );
    let nginx = Nginx::start(&t.dir, &conf);
    assert_eq!(get(nginx.addr, "/static/notes.txt").body, b"public txt");
    let r = get(nginx.addr, "/old-static/notes.txt");
    assert_eq!(r.status, 403, "{}", r.raw_head);
    assert!(r.body.windows(10).all(|w| w != b"public txt"));
}
