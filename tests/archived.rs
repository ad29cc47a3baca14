//! Issue 16, item 5: a migrated object that a bucket lifecycle rule moved to GLACIER or
//! DEEP_ARCHIVE is answered 503 with `Retry-After` (S3 would give the redirected client 403
//! InvalidObjectState), one RestoreObject is started for it, and once S3 reports the restored
//! copy the redirect comes back; an archived object whose archive copy is still local is sent
//! from there; GLACIER_IR and STANDARD objects are redirected, with no HeadObject per request.
//! S3 is s3s-fs behind the fault proxy, which answers for archived objects as S3 does; the
//! front server is real nginx (proxy mode, generated config).

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;
#[path = "common/fronts.rs"]
mod fronts;

use std::time::Duration;

use common::*;
use faultproxy::FaultProxy;
use fronts::*;

const BUCKET: &str = "site-media";
const COLD: &str = "/static/cold/deep.jpg";
const COLD_KEY: &str = "static/cold/deep.jpg";
const LOCAL: &str = "/static/cold/archived-here.jpg";
const IR: &str = "/static/instant.jpg";
const WARM: &str = "/static/warm.jpg";

#[test]
fn archived_objects_get_503_until_restored_and_the_local_archive_copy_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let proxy = FaultProxy::start(&s3.endpoint);
    let root = dir.path().join("site/static");
    let archive = dir.path().join("archive/static");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    let body = content(40_000);
    for key in [COLD, LOCAL, IR, WARM] {
        s3.put(BUCKET, &key[1..], &body);
    }
    write_file(&archive, "cold/archived-here.jpg", &body);
    proxy.archive_object(BUCKET, COLD_KEY, "DEEP_ARCHIVE");
    proxy.archive_object(BUCKET, "static/cold/archived-here.jpg", "GLACIER");
    proxy.archive_object(BUCKET, "static/instant.jpg", "GLACIER_IR");

    let cfg = config(
        &s3,
        &root,
        "storage_class_refresh = \"300ms\"\nrestore_days = 3\nrestore_tier = \"Bulk\"",
        &format!("upload = false\narchive_root = \"{}\"", archive.display()),
    )
    .replace(&s3.endpoint, &proxy.endpoint);
    let st = Stowaway::start(dir.path(), &cfg);
    let nginx = proxy_nginx_in_site(dir.path(), &st, &dir.path().join("site"));

    // What a client would get from S3 itself for the archived object.
    let r = get(st.addr, WARM);
    assert_eq!(r.status, 302, "{r:?}");
    let s3_url = r
        .header("location")
        .unwrap()
        .replace("warm.jpg", "cold/deep.jpg");
    let direct = fetch_url("GET", &s3_url);
    assert_eq!(direct.status, 403, "the proxy answers as S3 does");
    assert!(String::from_utf8_lossy(&direct.body).contains("InvalidObjectState"));

    // Once the listing is loaded: 503 with Retry-After (Bulk: 5 h), through nginx too.
    assert!(
        wait_until(Duration::from_secs(20), || get(nginx.addr, COLD).status
            == 503),
        "503 for the DEEP_ARCHIVE object: {}",
        st.log_text()
    );
    let r = get(nginx.addr, COLD);
    assert_eq!(r.header("retry-after"), Some("18000"), "{r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(String::from_utf8_lossy(&r.body).contains("not readable until restored"));
    assert_eq!(request(nginx.addr, "HEAD", COLD, &[]).status, 503);
    // nginx in auth_request mode answers the status stowaway names: 503 too.
    let auth_dir = dir.path().join("auth");
    std::fs::create_dir_all(&auth_dir).unwrap();
    let auth = auth_nginx(&auth_dir, &st);
    let r = get(auth.addr, COLD);
    assert_eq!(r.status, 503, "{r:?}\n{}", auth.error_log());
    assert_eq!(get(auth.addr, WARM).status, 302);

    // The archived copy still on disk is sent instead, bytes intact.
    let r = get(st.addr, LOCAL);
    assert_eq!(
        r.header("x-accel-redirect"),
        Some("/_stowaway_local/@archive/static/cold/archived-here.jpg"),
        "{r:?}"
    );
    let r = get(nginx.addr, LOCAL);
    assert_eq!(r.status, 200, "{r:?}\n{}", nginx.error_log());
    assert!(r.body == body);
    // GLACIER_IR is readable: redirected, and S3 serves it.
    let r = get(nginx.addr, IR);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(fetch_url("GET", r.header("location").unwrap()).body == body);

    // One restore per key, however many requests; none for the key served from the archive.
    assert!(
        wait_until(Duration::from_secs(10), || proxy.restores(BUCKET, COLD_KEY)
            == 1),
        "a restore was started: {}",
        st.log_text()
    );
    for _ in 0..30 {
        assert_eq!(get(nginx.addr, COLD).status, 503);
        assert_eq!(get(nginx.addr, WARM).status, 302);
    }
    // Requests keep coming while the running restore is looked at again (HeadObject, at most
    // every storage_class_refresh): still one restore.
    assert!(
        wait_until(Duration::from_secs(20), || {
            get(nginx.addr, COLD).status == 503 && proxy.heads(COLD_KEY) >= 3
        }),
        "the running restore is looked at again: {}",
        st.log_text()
    );
    assert_eq!(proxy.restores(BUCKET, COLD_KEY), 1);
    assert_eq!(proxy.restores(BUCKET, "static/cold/archived-here.jpg"), 0);
    // No HeadObject on the hot path: none at all for readable objects.
    assert_eq!(proxy.heads("static/warm.jpg"), 0);
    assert_eq!(proxy.heads("static/instant.jpg"), 0);
    assert!(
        st.log_text()
            .contains("started a restore of an archived object")
    );

    // The restore finishes: redirects again, and the restored copy is served by S3.
    proxy.finish_restore(BUCKET, COLD_KEY);
    assert!(
        wait_until(Duration::from_secs(20), || get(nginx.addr, COLD).status
            == 302),
        "302 once restored: {}",
        st.log_text()
    );
    let r = get(nginx.addr, COLD);
    assert!(fetch_url("GET", r.header("location").unwrap()).body == body);
    assert_eq!(proxy.restores(BUCKET, COLD_KEY), 1);
}

#[test]
fn without_storage_class_refresh_nothing_is_listed_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let proxy = FaultProxy::start(&s3.endpoint);
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    s3.put(BUCKET, COLD_KEY, b"cold");
    proxy.archive_object(BUCKET, COLD_KEY, "GLACIER");
    let cfg = config(&s3, &root, "", "upload = false").replace(&s3.endpoint, &proxy.endpoint);
    let st = Stowaway::start(dir.path(), &cfg);
    let before = proxy.requests();
    for _ in 0..5 {
        assert_eq!(get(st.addr, COLD).status, 302);
    }
    assert_eq!(
        proxy.requests(),
        before,
        "off by default: no S3 request per decision"
    );
}
