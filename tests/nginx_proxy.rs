//! nginx (Debian package) in proxy_pass + X-Accel-Redirect mode, running exactly the config
//! `stowaway gen-config nginx` prints, in front of the real stowaway binary and a real
//! SigV4-checking S3 server.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::{
    HOSTILE, assert_harmless, assert_longest_key_served, assert_site_cannot_bypass, config,
    content, in_realistic_site, plant_hostile_fixtures, proxy_nginx, proxy_nginx_in_site,
    two_mounts,
};

use std::path::Path;

struct Site {
    world: World,
    st: Stowaway,
    nginx: Nginx,
}

impl std::ops::Deref for Site {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

fn stowaway_config(s3: &S3Server, root: &Path, url: &str, fallback_header: bool) -> String {
    let c = config(
        s3,
        root,
        &format!("fallback_header = {fallback_header}"),
        "",
    );
    set_keys(&c, "[[mount]]", &[("url", &format!("\"{url}\""))])
}

/// `gen-config nginx` for the running stowaway; `alias_override` points nginx at another
/// directory than stowaway (to stage the vanished-file race deterministically).
fn nginx_conf(st: &Stowaway, alias_override: Option<&Path>) -> String {
    let out = stowaway_cmd()
        .args([
            "gen-config",
            "nginx",
            "--mode",
            "proxy",
            "--front-listen",
            "127.0.0.1:@PORT@",
            "--config",
        ])
        .arg(&st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = String::from_utf8(out.stdout).unwrap();
    match alias_override {
        None => conf,
        Some(other) => {
            let line = conf
                .lines()
                .find(|l| l.trim_start().starts_with("alias "))
                .unwrap()
                .to_string();
            conf.replace(&line, &format!("        alias {}/;", other.display()))
        }
    }
}

fn site(url: &str, fallback_header: bool, split_alias: bool) -> Site {
    let world = World::site("site-media");
    let (dir, root) = (world.path(), &world.root);
    plant_hostile_fixtures(dir, root);
    let st = Stowaway::start(dir, &stowaway_config(&world.s3, root, url, fallback_header));
    let empty = dir.join("site/empty");
    std::fs::create_dir_all(&empty).unwrap();
    let conf = nginx_conf(&st, split_alias.then_some(empty.as_path()));
    let nginx = Nginx::start(dir, &in_realistic_site(&conf, &dir.join("site-docroot")));
    Site { world, st, nginx }
}

#[test]
fn local_file_is_served_by_nginx_with_range_head_and_304() {
    let s = site("presigned", true, false);
    let body = content(10_240);
    write_file(&s.root, "photo123.jpg", &body);
    write_file(&s.root, "a b/€ q?x#%.jpg", &body[..100]);

    let r = get(s.nginx.addr, "/static/photo123.jpg");
    assert_eq!(r.status, 200, "{}", r.raw_head);
    assert_eq!(r.body, body);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(
        r.header("x-accel-redirect").is_none() && r.header("x-s3-location").is_none(),
        "internal headers leak: {}",
        r.raw_head
    );
    let etag = r.header("etag").unwrap().to_string();

    let r = request(
        s.nginx.addr,
        "GET",
        "/static/photo123.jpg",
        &[("Range", "bytes=0-99")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-99/10240"));
    assert_eq!(r.body, &body[..100]);

    let r = request(s.nginx.addr, "HEAD", "/static/photo123.jpg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10240"));
    assert!(r.body.is_empty());

    let r = request(
        s.nginx.addr,
        "GET",
        "/static/photo123.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);

    // Awkward names survive the X-Accel-Redirect encoding.
    let r = get(s.nginx.addr, "/static/a%20b/%E2%82%AC%20q%3Fx%23%25.jpg");
    assert_eq!(r.status, 200, "{}", r.raw_head);
    assert_eq!(r.body, &body[..100]);
    // Non-normalised forms nginx forwards raw.
    assert_eq!(get(s.nginx.addr, "/static//photo123.jpg").body, body);
    assert_eq!(get(s.nginx.addr, "/static/./photo123.jpg").body, body);
}

#[test]
fn missing_file_redirects_to_a_presigned_url_that_s3_accepts() {
    let s = site("presigned", true, false);
    let body = content(5000);
    s.s3.put("site-media", "static/gone/pic 1+2.png", &body);
    for method in ["GET", "HEAD"] {
        let r = request(s.nginx.addr, method, "/static/gone/pic%201+2.png", &[]);
        assert_eq!(r.status, 302, "{}", r.raw_head);
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(&format!(
                "{}/site-media/static/gone/pic%201%2B2.png?",
                s.s3.endpoint
            )),
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

#[test]
fn public_mode_redirects_to_the_plain_object_url() {
    let s = site("public", true, false);
    let r = get(s.nginx.addr, "/static/dir/x%20y.jpg");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/site-media/static/dir/x%20y.jpg", s.s3.endpoint)
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
}

#[test]
fn file_vanishing_after_the_decision_still_ends_in_a_302() {
    // stowaway sees the file (its root), nginx does not (its alias is an empty directory):
    // exactly the state of a file removed between the decision and nginx's open().
    for fallback_header in [true, false] {
        let s = site("presigned", fallback_header, true);
        let body = content(300);
        write_file(&s.root, "vanish.jpg", &body);
        s.s3.put("site-media", "static/vanish.jpg", &body);
        for method in ["GET", "HEAD"] {
            let r = request(s.nginx.addr, method, "/static/vanish.jpg", &[]);
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

#[test]
fn internal_prefix_is_not_reachable_from_outside() {
    let s = site("presigned", true, false);
    write_file(&s.root, "photo.jpg", b"data");
    for t in [
        "/_stowaway_local/static/photo.jpg",
        "/_stowaway_local/static/missing.jpg",
        "/_stowaway_local/",
    ] {
        let r = get(s.nginx.addr, t);
        assert_eq!(r.status, 404, "{t}: {}", r.raw_head);
        assert!(r.header("location").is_none());
    }
    // A client cannot force a recheck or smuggle another URI.
    let r = request(
        s.nginx.addr,
        "GET",
        "/static/photo.jpg",
        &[
            ("X-Sidecar-Recheck", "1"),
            ("X-Original-URI", "/static/other.jpg"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"data");
}

#[test]
fn hostile_urls_never_reach_outside_the_root() {
    let s = site("presigned", true, false);
    let bucket_prefix = format!("{}/site-media/static/", s.s3.endpoint);
    for t in HOSTILE {
        let r = request_bytes(s.nginx.addr, "GET", t, &[]);
        assert_harmless(&r, t, &bucket_prefix);
    }
    // Symlinks are refused by stowaway itself (404), not just by nginx.
    assert_eq!(get(s.st.addr, "/static/link.txt").status, 404);
    assert_eq!(get(s.st.addr, "/static/linkdir/outside.txt").status, 404);
    assert_eq!(get(s.nginx.addr, "/static/ok.jpg").body, b"fine");
}

/// Issue 11 item 3 and item 10: inside a site with regex locations for common extensions and
/// PHP and with rewrites, the generated locations keep their requests.
#[test]
fn site_regex_locations_and_rewrites_cannot_bypass_stowaway() {
    let t = two_mounts("");
    let nginx = proxy_nginx_in_site(&t.dir, &t.st, &t.dir.join("site"));
    assert_site_cannot_bypass(&nginx, &t, false);
}

/// Issue 11 item 5: the longest key stowaway accepts fits nginx's upstream buffers.
#[test]
fn longest_key_is_served_local_and_redirected() {
    for fallback_header in [true, false] {
        let s = site("presigned", fallback_header, false);
        assert_longest_key_served(s.nginx.addr, &s.root, &s.s3, &|| s.nginx.error_log());
    }
}

/// Issue 11 item 8: a root with a space is quoted and served; roots nginx or lighttpd cannot
/// express safely are refused by gen-config with exit 2, naming mount.root and the fix.
#[test]
fn odd_roots_are_quoted_or_refused() {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = dir.join("site/my static files");
    write_file(&root, "a b.jpg", b"spaced root");
    let st = Stowaway::start(dir, &fronts::config(&s3, &root, "", ""));
    let proxy = proxy_nginx(dir, &st);
    let auth = fronts::auth_nginx(dir, &st);
    for n in [&proxy, &auth] {
        let r = get(n.addr, "/static/a%20b.jpg");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"spaced root"[..]),
            "{}",
            r.raw_head
        );
    }
    for bad in ["/srv/a$uri/b", "/srv/a;b", "/srv/a}b", "/srv/a\\\"b"] {
        let cfg = dir.join("bad.toml");
        std::fs::write(
            &cfg,
            fronts::config(&s3, Path::new(bad), "", "").replace("@LISTEN@", "127.0.0.1:1"),
        )
        .unwrap();
        for front in [
            &["nginx"][..],
            &["nginx", "--mode", "auth"],
            &["lighttpd"],
            &["lighttpd-magnet"],
        ] {
            let out = stowaway_cmd()
                .arg("gen-config")
                .args(front)
                .arg("--config")
                .arg(&cfg)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{bad} {front:?}: {err}");
            assert!(out.stdout.is_empty(), "{bad} {front:?}: wrote a config");
            assert!(
                err.contains("mount.root") && err.contains("/static/") && err.contains("fix:"),
                "{bad} {front:?}: {err}"
            );
        }
    }
    // Front options that would be written unquoted are checked too.
    let out = stowaway_cmd()
        .args([
            "gen-config",
            "nginx",
            "--mode",
            "proxy",
            "--front-listen",
            "80; include /etc/passwd",
            "--config",
        ])
        .arg(&st.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--front-listen"));
}

/// Issue 12 items 1 and 5: the http and server snippets inside Debian's default site and a
/// realistic site; the site answers as before, the mounts work.
#[test]
fn snippets_drop_into_debian_default_and_a_realistic_site() {
    fronts::assert_snippets_drop_into_sites(&[]);
}

/// Issue 12 item 13: --fail-open serves open mounts from disk while stowaway is down.
#[test]
fn fail_open_serves_open_mounts_from_disk_while_stowaway_is_down() {
    fronts::assert_fail_open(&[], 502);
}
