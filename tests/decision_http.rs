//! The decision endpoint spoken to directly, as nginx would (raw, unnormalised targets).

mod common;
use common::*;

fn start(
    dir: &std::path::Path,
    root: &std::path::Path,
    s3: &S3Server,
    server_extra: &str,
) -> Stowaway {
    // Mounts may not nest (config refuses it): the avatars root is a sibling of `root`.
    let avatars = dir.join("avatars");
    std::fs::create_dir_all(&avatars).unwrap();
    Stowaway::start(
        dir,
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\n{server_extra}\n[uploader]\nenabled = false\n{}\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"bkt-one\"\nurl = \"public\"\n\n[[mount]]\nprefix = \"/media/avatars/\"\nroot = \"{}\"\nbucket = \"bkt-two\"\nkey_prefix = \"av/\"\nurl = \"presigned\"\nwindow = \"5m\"\nexpires = \"10m\"\n",
            s3.s3_section(),
            root.display(),
            avatars.display()
        ),
    )
}

#[test]
fn local_answer_is_an_empty_200_with_accel_redirect_and_fallback_url() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    write_file(&d.path().join("avatars"), "face 1.png", b"x");
    write_file(&root, "a?b.txt", b"y");
    let st = start(d.path(), &root, &s3, "");
    for method in ["GET", "HEAD"] {
        let r = request(st.addr, method, "/static/a%3Fb.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-accel-redirect"),
            Some("/_stowaway_local/static/a%3Fb.txt")
        );
        assert_eq!(r.header("content-length"), Some("0"));
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("x-s3-location").unwrap(),
            format!("{}/bkt-one/a%3Fb.txt", s3.endpoint)
        );
        assert!(
            r.header("content-type").is_none(),
            "nginx must pick the type from the file"
        );
    }
    let r = get(st.addr, "/media/avatars/face%201.png");
    assert_eq!(
        r.header("x-accel-redirect"),
        Some("/_stowaway_local/media/avatars/face%201.png")
    );
    assert!(
        r.header("x-s3-location")
            .unwrap()
            .contains("/bkt-two/av/face%201.png?X-Amz-Algorithm=")
    );
}

#[test]
fn remote_answer_is_a_302_with_cache_control() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let st = start(d.path(), &root, &s3, "");
    let r = get(st.addr, "/static/gone.jpg");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location").unwrap(),
        format!("{}/bkt-one/gone.jpg", s3.endpoint)
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let r = get(st.addr, "/media/avatars/gone.jpg");
    assert_eq!(r.status, 302);
    let cc = r.header("cache-control").unwrap();
    let n: u64 = cc
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    // Valid for at most window + expires (15 min), minus the safety margin.
    assert!(n > 0 && n <= 900 - 60, "{cc}");
    // A recheck (file reported vanished) is never local.
    write_file(&root, "here.jpg", b"z");
    assert_eq!(get(st.addr, "/static/here.jpg").status, 200);
    assert_eq!(
        request(
            st.addr,
            "GET",
            "/static/here.jpg",
            &[("X-Sidecar-Recheck", "1")]
        )
        .status,
        302
    );
    let r = request(
        st.addr,
        "GET",
        "/_stowaway_recheck",
        &[
            ("X-Sidecar-Recheck", "1"),
            ("X-Original-URI", "/static/here.jpg?x=1"),
        ],
    );
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().ends_with("/bkt-one/here.jpg"));
}

#[test]
fn bad_requests_and_not_found() {
    let s3 = S3Server::start();
    // Readiness probes the buckets.
    s3.create_bucket("bkt-one");
    s3.create_bucket("bkt-two");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    write_file(&root, "ok.txt", b"ok");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let st = start(d.path(), &root, &s3, "");
    for t in [
        "/static/../x",
        "/static/%2e%2e/x",
        "/static/a%2fb",
        "/static/a%5cb",
        "/static/%00",
        "/static/a%0d%0ab",
        "/static/%zz",
        "/static/%c0%ae",
    ] {
        let r = get(st.addr, t);
        assert_eq!(r.status, 400, "{t}");
        assert!(r.header("location").is_none() && r.header("x-accel-redirect").is_none());
    }
    let long = format!("/static/{}", "a".repeat(300));
    assert_eq!(get(st.addr, &long).status, 400);
    for t in [
        "/",
        "/static/",
        "/other/x",
        "/_stowaway_local/static/ok.txt",
        "/static/sub/",
        "/staticx",
    ] {
        assert_eq!(get(st.addr, t).status, 404, "{t}");
    }
    let r = request(
        st.addr,
        "POST",
        "/static/ok.txt",
        &[("Content-Length", "0")],
    );
    assert_eq!(r.status, 405);
    assert_eq!(get(st.addr, "/healthz").status, 200);
    // Ready once the background S3 probe has succeeded.
    assert!(wait_until(std::time::Duration::from_secs(20), || get(
        st.addr, "/readyz"
    )
    .status
        == 200));
}

#[test]
fn lighttpd_front_answers_with_x_sendfile() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r r");
    write_file(&root, "a%b.txt", b"x");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let st = start(d.path(), &root, &s3, "front = \"lighttpd\"");
    let r = get(st.addr, "/static/a%25b.txt");
    assert_eq!(r.status, 200);
    let canon = std::fs::canonicalize(&root).unwrap();
    let want = format!(
        "{}/a%25b.txt",
        canon.display().to_string().replace(' ', "%20")
    );
    assert_eq!(r.header("x-sendfile"), Some(want.as_str()));
    assert!(
        r.header("x-accel-redirect").is_none()
            && r.header("etag").is_none()
            && r.header("last-modified").is_none()
    );
}

#[test]
fn ignored_files_are_not_served_unless_the_mount_says_so() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("r");
    write_file(&root, ".env", b"DB_PASSWORD=x");
    write_file(&root, "up/photo.jpg.part", b"half");
    write_file(&root, ".git/config", b"[core]");
    write_file(&root, "notes.tmp", b"t");
    write_file(&root, "photo.jpg", b"ok");
    let st = start(d.path(), &root, &s3, "");
    for t in [
        "/static/.env",
        "/static/up/photo.jpg.part",
        "/static/.git/config",
        "/static/notes.tmp",
        // Not local either: an ignored name is never sent to S3 (it was never uploaded).
        "/static/.htpasswd",
    ] {
        let r = get(st.addr, t);
        assert_eq!(r.status, 404, "{t}");
        assert!(r.header("x-accel-redirect").is_none(), "{t}");
        assert!(r.header("location").is_none(), "{t}");
    }
    assert_eq!(get(st.addr, "/static/photo.jpg").status, 200);
    // A mount that opts in serves them as before.
    let d2 = tempfile::tempdir().unwrap();
    let st2 = Stowaway::start(
        d2.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\n[uploader]\nenabled = false\n{}\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"bkt-one\"\nurl = \"public\"\nserve_ignored = true\n",
            s3.s3_section(),
            root.display()
        ),
    );
    let r = get(st2.addr, "/static/.env");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-accel-redirect"),
        Some("/_stowaway_local/static/.env")
    );
}
