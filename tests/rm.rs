//! Issue 16, item 1: `stowaway rm` removes a file everywhere it lives (root, archive, S3) and
//! leaves a tombstone in the bucket; while it lives the path is refused (404, or 410) and a copy
//! that comes back is neither served nor uploaded; after it expires the copy is both. A partial
//! failure names the place and a rerun finishes the job. Also: `--all-versions` (item 1,
//! versioned buckets, via the fault proxy), expired tombstones swept from the bucket, and `rm`
//! behind lighttpd.

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;
#[path = "common/fronts.rs"]
mod fronts;

use std::time::{Duration, Instant};

use common::*;
use fronts::*;

const BUCKET: &str = "site-media";

fn rm_config(w: &World, settle: &str, ttl: &str, status: &str) -> String {
    w.config(
        "rm.toml",
        &[
            ("settle", settle),
            ("tombstone_ttl", ttl),
            ("tombstone_status", status),
        ],
    )
}

/// A migrated file, asked for in a loop through nginx in auth mode (verdicts cached for
/// `verdict_ttl` = 1 s): once `rm` returns, no request gets the old bytes, and nginx answers
/// 404 after the verdict cache and the tombstone refresh caught up.
#[test]
fn rm_of_a_migrated_file_under_load() {
    const P: &str = "/static/avatars/u1.jpg";
    let w = World::site(BUCKET);
    let body = content(50_000);
    write_file(&w.root, "avatars/u1.jpg", &body);
    let st = w.start(&rm_config(&w, "200ms", "1h", "404"));
    let nginx = auth_nginx_in_site(w.path(), &st, &w.path().join("site"));
    assert!(
        wait_until(Duration::from_secs(30), || w.in_archive("avatars/u1.jpg")
            && !w.in_root("avatars/u1.jpg")),
        "migrated: {}",
        st.log_text()
    );
    let r = get(nginx.addr, P);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(fetch_url("GET", r.header("location").unwrap()).body == body);

    let load = OldBytesLoad::start(nginx.addr, P, &body);

    let out = stowaway_rm(&st.config, &[P]);
    let returned = Instant::now();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.says(P, "tombstone", "recorded until"), "{out:?}");
    assert!(out.says(P, "root", "not there"), "{out:?}");
    assert!(out.says(P, "archive", "removed "), "{out:?}");
    assert!(
        out.says(P, "s3", "deleted s3://site-media/static/avatars/u1.jpg"),
        "{out:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(nginx.addr, P).status == 404),
        "404 through nginx once the verdict cache and the tombstones caught up: {}",
        st.log_text()
    );
    let late = load.finish(20, returned);
    assert!(
        late.is_empty(),
        "{} requests got the old bytes after rm returned, the first after {:?}",
        late.len(),
        late.first()
    );
    assert_eq!(w.s3.get(BUCKET, "static/avatars/u1.jpg"), None);
    assert!(!w.in_archive("avatars/u1.jpg"));
    assert!(
        w.s3.list(BUCKET)
            .contains(&"static/.stowaway-tombstones/avatars/u1.jpg".to_string())
    );
    // The tombstone itself is never served.
    let r = get(st.addr, "/static/.stowaway-tombstones/avatars/u1.jpg");
    assert_eq!(r.status, 404, "{r:?}");
}

/// A local file not yet migrated: removed and tombstoned (410 here). A copy that comes back is
/// left in place but neither served (directly or through nginx) nor uploaded while the
/// tombstone lives; once it expires, it is served and migrated like any new file.
#[test]
fn tombstone_holds_back_a_copy_that_comes_back_until_it_expires() {
    const P: &str = "/static/docs/cv.pdf";
    let w = World::site(BUCKET);
    write_file(&w.root, "docs/cv.pdf", b"version one");
    let st = w.start(&rm_config(&w, "2s", "8s", "410"));
    let nginx = proxy_nginx_in_site(w.path(), &st, &w.path().join("site"));
    let out = stowaway_rm(&st.config, &[P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.says(P, "root", "removed "), "{out:?}");
    assert!(out.says(P, "s3", "not there"), "{out:?}");
    assert!(!w.in_root("docs/cv.pdf"));
    let keys = w.s3.list(BUCKET);
    assert!(
        keys.contains(&"static/.stowaway-tombstones/docs/cv.pdf".to_string()),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&"static/docs/cv.pdf".to_string()),
        "{keys:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || get(st.addr, P).status == 410),
        "410 once the tombstone is loaded: {}",
        st.log_text()
    );

    write_file(&w.root, "docs/cv.pdf", b"version two, restored");
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .contains("removed by `stowaway rm`")),
        "the uploader reports the copy instead of uploading it: {}",
        st.log_text()
    );
    assert_eq!(get(st.addr, P).status, 410);
    assert_eq!(get(nginx.addr, P).status, 410);
    assert_eq!(w.s3.get(BUCKET, "static/docs/cv.pdf"), None, "not uploaded");
    assert!(w.in_root("docs/cv.pdf"), "left in place");

    // Expired: migrated and answered like any file.
    assert!(
        wait_until(Duration::from_secs(30), || w
            .s3
            .get(BUCKET, "static/docs/cv.pdf")
            == Some(b"version two, restored".to_vec())),
        "uploaded after the tombstone expired: {}",
        st.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || get(nginx.addr, P)
        .status
        == 302));
}

/// With S3 down, `rm` removes the local copies, names the S3 places that failed and exits 1;
/// run again it finishes; a third run finds nothing left and succeeds too.
#[test]
fn rm_with_s3_down_then_again() {
    const P: &str = "/static/a b.jpg";
    let w = World::site(BUCKET);
    write_file(&w.root, "a b.jpg", b"root copy");
    write_file(&w.archive, "a b.jpg", b"archived copy");
    w.s3.put(BUCKET, "static/a b.jpg", b"object");
    let cfg = w.path().join("rm.toml");
    std::fs::write(
        &cfg,
        rm_config(&w, "1h", "1h", "404").replace("@LISTEN@", "127.0.0.1:1"),
    )
    .unwrap();

    let out = stowaway_rm(&cfg, &["/elsewhere/x.jpg", P]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(w.in_root("a b.jpg"), "a bad path stops everything: {out:?}");

    w.s3.pause();
    let out = stowaway_rm(&cfg, &[P]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.says(P, "tombstone", "FAILED"), "{out:?}");
    assert!(out.says(P, "root", "removed "), "{out:?}");
    assert!(out.says(P, "archive", "removed "), "{out:?}");
    assert!(
        out.says(
            P,
            "s3",
            "FAILED: cannot delete s3://site-media/static/a b.jpg"
        ),
        "{out:?}"
    );
    assert!(out.stderr.contains("run the same command again"), "{out:?}");
    assert!(!w.in_root("a b.jpg") && !w.in_archive("a b.jpg"));

    w.s3.resume();
    let out = stowaway_rm(&cfg, &[P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.says(P, "tombstone", "recorded until"), "{out:?}");
    assert!(out.says(P, "root", "not there"), "{out:?}");
    assert!(out.says(P, "s3", "deleted "), "{out:?}");
    assert_eq!(w.s3.get(BUCKET, "static/a b.jpg"), None);

    let out = stowaway_rm(&cfg, &[P]);
    assert_eq!(out.code, Some(0), "rm twice is fine: {out:?}");
    assert!(out.says(P, "s3", "not there"), "{out:?}");
}

/// `--all-versions` against a versioned bucket (the fault proxy answers ListObjectVersions
/// from planted versions, one a page; s3s-fs keeps none): where the store cannot list
/// versions the S3 place fails by name; a plain `rm` only deletes (a delete marker, in a
/// real versioned bucket) and lists nothing; `--all-versions` deletes every version and
/// delete marker of exactly that key by VersionId, and again finds none.
#[test]
fn rm_all_versions_deletes_every_version_by_id() {
    use faultproxy::{FaultProxy, Version};
    const P: &str = "/static/v/a.jpg";
    let w = World::site(BUCKET);
    let proxy = FaultProxy::start(&w.s3.endpoint);
    let cfg = w.path().join("rm.toml");
    std::fs::write(
        &cfg,
        rm_config(&w, "1h", "1h", "404")
            .replace("@LISTEN@", "127.0.0.1:1")
            .replace(&w.s3.endpoint, &proxy.endpoint),
    )
    .unwrap();
    w.s3.put(BUCKET, "static/v/a.jpg", b"latest");

    let out = stowaway_rm(&cfg, &["--all-versions", P]);
    assert_eq!(
        out.code,
        Some(1),
        "s3s-fs has no ListObjectVersions: {out:?}"
    );
    assert!(
        out.says(
            P,
            "s3",
            "FAILED: cannot delete the versions of s3://site-media/static/v/a.jpg"
        ),
        "{out:?}"
    );

    let out = stowaway_rm(&cfg, &[P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.says(P, "s3", "deleted s3://site-media/static/v/a.jpg"),
        "{out:?}"
    );
    assert!(proxy.version_deletes().is_empty());

    let v = |key: &str, id: &str, marker: bool| Version {
        bucket: BUCKET.into(),
        key: key.into(),
        version_id: id.into(),
        delete_marker: marker,
    };
    proxy.answer_list_object_versions(
        1,
        &[
            v("static/v/a.jpg", "dm3", true),
            v("static/v/a.jpg", "v2", false),
            v("static/v/a.jpg", "v1", false),
            v("static/v/a.jpg2", "x1", false),
        ],
    );
    let out = stowaway_rm(&cfg, &["--all-versions", P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.says(
            P,
            "s3",
            "deleted 3 version(s) of s3://site-media/static/v/a.jpg"
        ),
        "{out:?}"
    );
    assert_eq!(
        proxy.version_deletes(),
        [
            ("static/v/a.jpg", "dm3"),
            ("static/v/a.jpg", "v2"),
            ("static/v/a.jpg", "v1")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert!(proxy.version_list_requests() >= 3, "paginated");
    let out = stowaway_rm(&cfg, &["--all-versions", P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.says(P, "s3", "not there (no versions)"), "{out:?}");
}

/// The value of the unlabelled metric `name` on `st`'s /metrics.
fn metric(st: &Stowaway, name: &str) -> Option<f64> {
    let text = String::from_utf8_lossy(&get(st.addr, "/metrics").body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A tombstone past its ttl is deleted from the bucket by `serve` (and counted); one under
/// another prefix of the same bucket — not one of its mounts — is never touched.
#[test]
fn expired_tombstones_are_deleted_from_the_bucket() {
    const P: &str = "/static/gone.jpg";
    const TOMB: &str = "static/.stowaway-tombstones/gone.jpg";
    const FOREIGN: &str = "other/.stowaway-tombstones/x.jpg";
    let w = World::site(BUCKET);
    w.s3.put(BUCKET, FOREIGN, b"");
    write_file(&w.root, "gone.jpg", b"x");
    let st = w.start(&rm_config(&w, "1h", "3s", "404"));
    let out = stowaway_rm(&st.config, &[P]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(w.s3.list(BUCKET).contains(&TOMB.to_string()));
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            &st,
            "stowaway_tombstones"
        ) == Some(1.0)),
        "loaded: {}",
        st.log_text()
    );
    assert_eq!(get(st.addr, P).status, 404);
    assert!(
        w.s3.list(BUCKET).contains(&TOMB.to_string()),
        "a live tombstone stays"
    );
    assert!(
        wait_until(Duration::from_secs(20), || !w
            .s3
            .list(BUCKET)
            .contains(&TOMB.to_string())),
        "expired tombstone deleted: {}",
        st.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || metric(
            &st,
            "stowaway_tombstones_expired_deleted_total"
        ) == Some(1.0)),
        "{}",
        st.log_text()
    );
    assert_eq!(metric(&st, "stowaway_tombstones"), Some(0.0));
    assert!(st.log_text().contains("expired tombstones deleted"));
    assert!(
        w.s3.list(BUCKET).contains(&FOREIGN.to_string()),
        "another prefix is not this process's to clean"
    );
}

/// Behind lighttpd (both generated modes): after `rm`, a local file and a migrated one are
/// refused with the tombstone's status. A copy that comes back is refused where stowaway
/// decides every request (`--mode sendfile`); the default local-first mode sends plain local
/// files without asking stowaway, so it sends the copy: the documented limit of that mode.
#[test]
fn rm_behind_lighttpd() {
    let w = World::site(BUCKET);
    write_file(&w.root, "docs/a.pdf", b"local");
    w.s3.put(BUCKET, "static/old/b.jpg", b"migrated");
    let cfg = set_keys(
        &rm_config(&w, "1h", "1h", "410"),
        "[server]",
        &[("front", "\"lighttpd\"")],
    );
    let st = w.start(&cfg);
    let fronts = [
        ("local-first", lighttpd_front(w.path(), &st)),
        ("sendfile", lighttpd_sendfile_front(w.path(), &st)),
    ];
    for (mode, l) in &fronts {
        assert_eq!(get(l.addr, "/static/docs/a.pdf").status, 200, "{mode}");
        assert_eq!(get(l.addr, "/static/old/b.jpg").status, 302, "{mode}");
    }
    let out = stowaway_rm(&st.config, &["/static/docs/a.pdf", "/static/old/b.jpg"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for (mode, l) in &fronts {
        for p in ["/static/docs/a.pdf", "/static/old/b.jpg"] {
            assert!(
                wait_until(Duration::from_secs(10), || get(l.addr, p).status == 410),
                "{mode} {p}: {:?}\n{}",
                get(l.addr, p),
                st.log_text()
            );
        }
    }
    write_file(&w.root, "docs/a.pdf", b"back again");
    let (_, sendfile) = &fronts[1];
    assert_eq!(get(sendfile.addr, "/static/docs/a.pdf").status, 410);
    let (_, local_first) = &fronts[0];
    // Once lighttpd's stat cache (one second) has let go of the deleted file.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = get(local_first.addr, "/static/docs/a.pdf");
            (r.status, r.body.as_slice()) == (200, &b"back again"[..])
        }),
        "local-first sends the copy that came back"
    );
    assert_eq!(get(sendfile.addr, "/static/docs/a.pdf").status, 410);
}
