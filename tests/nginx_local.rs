//! nginx (Debian package) in local-first mode, running exactly the config `stowaway gen-config
//! nginx --mode local-first` prints inside the realistic site, in front of the real stowaway
//! binary and a real SigV4-checking S3 server: local hits never reach stowaway, a miss's 302 is
//! cached by nginx for no longer than its URL lives, and a file that is local again is sent at
//! once. (The hostile-URL corpus runs through this mode in tests/hostile_urls.rs.)

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use fronts::*;

struct Site {
    world: World,
    st: Stowaway,
    nginx: Nginx,
}

/// One open presigned mount `/static/` with `mount_keys` set (e.g. expires and window), and
/// nginx in local-first mode.
fn site(mount_keys: &[(&str, &str)]) -> Site {
    let world = World::site("site-media");
    let (dir, root) = (world.path(), &world.root);
    let c = set_keys(&config(&world.s3, root, "", ""), "[[mount]]", mount_keys);
    let st = Stowaway::start(dir, &c);
    let nginx = local_nginx(dir, &st);
    Site { world, st, nginx }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A query parameter of a presigned URL.
fn param<'a>(url: &'a str, name: &str) -> &'a str {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// Unix seconds after which a presigned URL no longer works (X-Amz-Date + X-Amz-Expires).
fn url_expiry(url: &str) -> u64 {
    let date = param(url, "X-Amz-Date");
    let t = unix_of_amz_date(date);
    t + param(url, "X-Amz-Expires").parse::<u64>().unwrap()
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds (days from civil, no leap seconds).
fn unix_of_amz_date(d: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| d[r].parse::<i64>().unwrap();
    let (y, m, day) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss) as u64
}

#[test]
fn local_hits_never_reach_stowaway_and_work_like_proxy_mode() {
    let s = site(&[]);
    let body = content(10_240);
    write_file(&s.world.root, "photo123.jpg", &body);
    write_file(&s.world.root, "a b/€ q.jpg", &body[..100]);
    let before = decisions(&s.st, "local", "/static/");
    let a = s.nginx.addr;
    let r = get(a, "/static/photo123.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, body.as_slice()),
        "{}",
        r.raw_head
    );
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let etag = r.header("etag").unwrap().to_string();
    let r = request(a, "GET", "/static/photo123.jpg", &[("Range", "bytes=0-99")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &body[..100]));
    let r = request(a, "HEAD", "/static/photo123.jpg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10240"));
    let r = request(
        a,
        "GET",
        "/static/photo123.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(
        decisions(&s.st, "local", "/static/"),
        before,
        "a plain local hit reached stowaway"
    );
    // Not plainly safe: stowaway decides (X-Accel-Redirect), the answer is the same.
    for p in [
        "/static/a%20b/%E2%82%AC%20q.jpg",
        "/static//photo123.jpg",
        "/static/./photo123.jpg",
        "/static/%70hoto123.jpg",
    ] {
        let r = get(a, p);
        assert_eq!(r.status, 200, "{p}: {}", r.raw_head);
        assert!(body.starts_with(&r.body) && !r.body.is_empty(), "{p}");
    }
    assert_eq!(decisions(&s.st, "local", "/static/"), before + 4);
    // Ignored names are stowaway's to refuse, never nginx's to send.
    for hidden in [
        ".env",
        "up.part",
        ".stowaway-tmp1",
        ".git/config",
        "x.tmp/y.jpg",
    ] {
        write_file(&s.world.root, hidden, SECRET_MARKER);
        let r = get(a, &format!("/static/{hidden}"));
        assert_eq!(r.status, 404, "{hidden}: {}", r.raw_head);
        assert!(
            !r.body
                .windows(SECRET_MARKER.len())
                .any(|w| w == SECRET_MARKER)
        );
    }
}

/// Item 2: a repeated presigned 302 comes from nginx's cache (stowaway asked twice per method:
/// `proxy_cache_min_uses 2`),
/// the client never sees X-Accel-Expires, and a cached answer's Cache-Control is no-store.
#[test]
fn repeated_redirects_come_from_nginx_cache() {
    let s = site(&[("expires", "\"10m\""), ("window", "\"5m\"")]);
    s.world.s3.put("site-media", "static/gone.jpg", b"from s3");
    let before = decisions(&s.st, "remote", "/static/");
    let first = get(s.nginx.addr, "/static/gone.jpg");
    assert_eq!(first.status, 302, "{}", first.raw_head);
    let loc = first.header("location").unwrap().to_string();
    assert!(
        first
            .header("cache-control")
            .is_some_and(|c| c.starts_with("private, max-age=")),
        "{}",
        first.raw_head
    );
    // proxy_cache_min_uses 2: the second ask is still stowaway's (and is stored).
    let second = get(s.nginx.addr, "/static/gone.jpg");
    assert_eq!(second.header("location"), Some(loc.as_str()));
    assert_eq!(decisions(&s.st, "remote", "/static/"), before + 2);
    for _ in 0..5 {
        let r = get(s.nginx.addr, "/static/gone.jpg");
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some(loc.as_str()));
        // Counted from stowaway's answer, a max-age would outlive the URL at the client.
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{}",
            r.raw_head
        );
        assert!(r.header("x-accel-expires").is_none(), "{}", r.raw_head);
    }
    assert!(
        first.header("x-accel-expires").is_none(),
        "{}",
        first.raw_head
    );
    assert_eq!(
        decisions(&s.st, "remote", "/static/"),
        before + 2,
        "the repeated 302 was not cached"
    );
    assert_eq!(fetch_url("GET", &loc).body, b"from s3");
    // HEAD has its own entry, signed for HEAD.
    for _ in 0..4 {
        let h = request(s.nginx.addr, "HEAD", "/static/gone.jpg", &[]);
        assert_eq!(h.status, 302);
        let hloc = h.header("location").unwrap();
        assert_ne!(hloc, loc);
        assert_eq!(fetch_url("HEAD", hloc).status, 200);
    }
    assert_eq!(decisions(&s.st, "remote", "/static/"), before + 4);
}

/// Item 2: with a short signing window the cached 302 is only ever answered while its URL
/// works; then nginx asks again and the new URL differs, and the old one has expired by then.
#[test]
fn a_cached_redirect_never_outlives_its_url() {
    let s = site(&[("expires", "\"3s\""), ("window", "\"4s\"")]);
    s.world.s3.put("site-media", "static/gone.jpg", b"from s3");
    let first = get(s.nginx.addr, "/static/gone.jpg");
    assert_eq!(first.status, 302, "{}", first.raw_head);
    let old = first.header("location").unwrap().to_string();
    let old_expiry = url_expiry(&old);
    let mut served_old = 0;
    let mut new = None;
    let changed = wait_until(Duration::from_secs(30), || {
        let r = get(s.nginx.addr, "/static/gone.jpg");
        assert_eq!(r.status, 302, "{}", r.raw_head);
        let loc = r.header("location").unwrap().to_string();
        if loc == old {
            served_old += 1;
            assert!(
                now_s() < old_expiry,
                "a cached redirect outlived its URL ({old_expiry}): {}",
                r.raw_head
            );
            return false;
        }
        new = Some(loc);
        true
    });
    assert!(changed, "the redirect never changed");
    let new = new.unwrap();
    assert!(served_old > 0, "nothing came from the cache");
    assert!(url_expiry(&new) > old_expiry, "{old} -> {new}");
    assert_eq!(fetch_url("GET", &new).body, b"from s3");
    // The old URL is dead (S3 checks X-Amz-Expires) once its time is up.
    assert!(
        wait_until(Duration::from_secs(15), || now_s() > old_expiry + 1),
        "clock"
    );
    assert_eq!(
        fetch_url("GET", &old).status,
        403,
        "the old URL still works"
    );
}

/// Item 2: try_files looks at the disk before the cache, so a file the app uploads again is
/// sent at once although nginx holds a fresh 302 for it.
#[test]
fn a_file_local_again_is_served_at_once() {
    let s = site(&[("expires", "\"1h\""), ("window", "\"5m\"")]);
    s.world.s3.put("site-media", "static/back.jpg", b"from s3");
    for _ in 0..2 {
        assert_eq!(get(s.nginx.addr, "/static/back.jpg").status, 302);
    }
    write_file(&s.world.root, "back.jpg", b"local again");
    let r = get(s.nginx.addr, "/static/back.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"local again"[..]),
        "{}",
        r.raw_head
    );
}

/// While stowaway is down a local-first mount still sends its files on disk (no fail-open
/// needed); a miss is a 502.
#[test]
fn local_hits_survive_stowaway_being_down() {
    let mut s = site(&[]);
    write_file(&s.world.root, "photo.jpg", b"on disk");
    s.st.proc.kill();
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(s.st.addr).is_err()
    }));
    let r = get(s.nginx.addr, "/static/photo.jpg");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"on disk"[..]));
    assert_eq!(get(s.nginx.addr, "/static/missing.jpg").status, 502);
}

/// Item 3: over a Unix socket (`server.listen = "unix:…"`), local-first (open mount local,
/// miss, signed mount through auth mode) and auth mode work; the upstream is the socket.
#[test]
fn local_first_and_auth_mode_over_a_unix_socket() {
    let t = two_mounts_on("", true);
    let sock = t.st.sock.clone().unwrap();
    for args in [LOCAL_ARGS, AUTH_ARGS] {
        let (http, server) = nginx_snippets(&t.dir, &t.st, args);
        assert!(
            http.contains(&format!("server unix:{};", sock.display())),
            "{http}"
        );
        let nginx = Nginx::start(
            &t.dir,
            &realistic_site_with(&http, Some(&server), &t.dir.join("site-docroot")),
        );
        assert_mounts_work(nginx.addr, &t, &|| {
            format!("{}\n{}", nginx.error_log(), t.st.log_text())
        });
    }
}

#[test]
fn site_regex_locations_and_rewrites_cannot_bypass_stowaway() {
    let t = two_mounts("");
    let nginx = local_nginx(&t.dir, &t.st);
    // The signed mount is in auth mode (rewrites refused); the open one judges the
    // rewritten URI like proxy mode.
    assert_site_cannot_bypass_with(&nginx, &t, true, false);
}

#[test]
fn snippets_drop_into_debian_default_and_a_realistic_site() {
    assert_snippets_drop_into_sites(LOCAL_ARGS);
}

#[test]
fn longest_key_is_served_local_and_redirected() {
    let s = site(&[]);
    assert_longest_key_served(s.nginx.addr, &s.world.root, &s.world.s3, &|| {
        s.nginx.error_log()
    });
}

#[test]
fn gen_config_defaults_to_local_first_only_when_every_mount_is_open() {
    let s = site(&[]);
    let conf = gen_config(&s.st, &["nginx"]);
    assert!(conf.contains("local-first mode"), "{conf}");
    let t = two_mounts("");
    let conf = gen_config(&t.st, &["nginx"]);
    assert!(
        conf.contains("proxy_pass + X-Accel-Redirect mode"),
        "{conf}"
    );
}
