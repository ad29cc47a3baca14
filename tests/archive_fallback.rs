//! Issue 12, item 12: while the S3 probe reports S3 unreachable, a migrated file whose archived
//! copy is still on local disk is sent from the archive (X-Accel-Redirect to the generated
//! internal archive location) instead of a 302 to a dead endpoint; after S3 is back, 302 again.
//! A mount with `serve_archive_when_s3_down = false` keeps redirecting; a symlink in the archive
//! is never followed.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use std::time::Duration;

use common::*;
use fronts::*;

const ARCHIVED: &str = "/static/photos/old.jpg";

/// The S3 server stopped and started again around one stowaway, asked directly and through
/// nginx (proxy mode, generated config, inside the realistic site).
#[test]
fn archive_serves_while_s3_is_down_then_redirects_again() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let root = dir.path().join("site/static");
    let archive = dir.path().join("archive/static");
    let root2 = dir.path().join("site/media");
    let archive2 = dir.path().join("archive/media");
    for d in [&root, &archive, &root2, &archive2] {
        std::fs::create_dir_all(d).unwrap();
    }
    let body = content(70_000);
    // Migrated: in S3 and in the archive, no longer in the root.
    s3.put("site-media", "static/photos/old.jpg", &body);
    write_file(&archive, "photos/old.jpg", &body);
    s3.put("site-media", "static/only-in-s3.jpg", b"s3");
    s3.put("site-media", "media/old.jpg", &body);
    write_file(&archive2, "old.jpg", &body);
    // A symlink in the archive pointing outside: never followed.
    let outside = write_file(dir.path(), "outside/secret.txt", SECRET_MARKER);
    std::os::unix::fs::symlink(&outside, archive.join("link.jpg")).unwrap();
    s3.put("site-media", "static/link.jpg", b"s3-link");

    let mount_extra = format!(
        "upload = false\narchive_root = \"{}\"\n\
         [[mount]]\nprefix = \"/media/\"\nroot = \"{}\"\nbucket = \"site-media\"\nkey_prefix = \"media/\"\n\
         url = \"presigned\"\nupload = false\narchive_root = \"{}\"\nserve_archive_when_s3_down = false\n",
        archive.display(),
        root2.display(),
        archive2.display()
    );
    let cfg = config(&s3, &root, "s3_probe_interval = \"200ms\"", &mount_extra);
    let st = Stowaway::start(dir.path(), &cfg);
    let nginx = proxy_nginx_in_site(dir.path(), &st, &dir.path().join("site"));
    let nconf = gen_config(
        &st,
        &[
            "nginx",
            "--mode",
            "proxy",
            "--front-listen",
            "127.0.0.1:@PORT@",
        ],
    );
    assert!(
        nconf.contains("location ^~ /_stowaway_local/@archive/static/"),
        "archive location generated:\n{nconf}"
    );
    assert!(
        !nconf.contains("@archive/media/"),
        "no archive location for the opted-out mount:\n{nconf}"
    );

    // S3 up: the usual redirect.
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, "/readyz").status
            == 200),
        "ready: {}",
        st.log_text()
    );
    let r = get(st.addr, ARCHIVED);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(get(nginx.addr, ARCHIVED).status, 302);

    // S3 down: the archived copy, bytes intact, through nginx; Range works as for local files.
    s3.pause();
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, ARCHIVED).status
            == 200),
        "archive served once the probe sees S3 down: {}",
        st.log_text()
    );
    let r = get(st.addr, ARCHIVED);
    assert_eq!(
        r.header("x-accel-redirect"),
        Some("/_stowaway_local/@archive/static/photos/old.jpg"),
        "{r:?}"
    );
    let r = get(nginx.addr, ARCHIVED);
    assert_eq!(r.status, 200, "{r:?}\n{}", nginx.error_log());
    assert!(r.body == body, "archived bytes served intact");
    let r = request(nginx.addr, "GET", ARCHIVED, &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, body[10..20]);
    // Not in the archive: still the redirect (nothing better to offer).
    assert_eq!(get(nginx.addr, "/static/only-in-s3.jpg").status, 302);
    // Opted out: redirect although the archive holds the file.
    assert_eq!(get(st.addr, "/media/old.jpg").status, 302);
    assert_eq!(get(nginx.addr, "/media/old.jpg").status, 302);
    // A symlink in the archive is not followed, directly or through nginx.
    let r = get(st.addr, "/static/link.jpg");
    assert_ne!(r.status, 200, "{r:?}");
    let r = get(nginx.addr, "/static/link.jpg");
    assert!(
        !r.body
            .windows(SECRET_MARKER.len())
            .any(|w| w == SECRET_MARKER)
    );
    // The internal archive location is not reachable from outside.
    let r = get(
        nginx.addr,
        "/_stowaway_local/@archive/static/photos/old.jpg",
    );
    assert_eq!(r.status, 404);

    // S3 back: redirects again.
    s3.resume();
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, ARCHIVED).status
            == 302),
        "302 once S3 is reachable again: {}",
        st.log_text()
    );
    let r = get(nginx.addr, ARCHIVED);
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(fetch_url("GET", &loc).body, body);
}

/// lighttpd mode, asked directly: the archived copy's absolute path in X-Sendfile.
#[test]
fn lighttpd_mode_sends_the_archive_path() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let root = dir.path().join("site/static");
    let archive = dir.path().join("archive/static");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    write_file(&archive, "a b.jpg", b"archived");
    let cfg = config(
        &s3,
        &root,
        "s3_probe_interval = \"200ms\"\nfront = \"lighttpd\"",
        &format!("upload = false\narchive_root = \"{}\"\n", archive.display()),
    );
    let st = Stowaway::start(dir.path(), &cfg);
    assert!(wait_until(Duration::from_secs(20), || get(
        st.addr, "/readyz"
    )
    .status
        == 200));
    assert_eq!(get(st.addr, "/static/a%20b.jpg").status, 302);
    s3.pause();
    assert!(wait_until(Duration::from_secs(20), || get(
        st.addr,
        "/static/a%20b.jpg"
    )
    .status
        == 200));
    let r = get(st.addr, "/static/a%20b.jpg");
    let canon = std::fs::canonicalize(&archive).unwrap();
    assert_eq!(
        r.header("x-sendfile"),
        Some(format!("{}/a%20b.jpg", canon.display()).as_str()),
        "{r:?}"
    );
    let lconf = gen_config(&st, &["lighttpd"]);
    assert!(
        lconf.contains(&format!("\"{}\"", canon.display())),
        "archive in x-sendfile-docroot:\n{lconf}"
    );
    s3.resume();
    assert!(wait_until(Duration::from_secs(20), || get(
        st.addr,
        "/static/a%20b.jpg"
    )
    .status
        == 302));
}
