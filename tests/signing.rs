//! Presigned redirects against a real SigV4-verifying S3 server (s3s-fs 0.14.1, in process).

mod common;
use common::*;

fn config(s3: &S3Server, root: &std::path::Path, extra_mount: &str) -> String {
    format!(
        "[server]\nlisten = \"@LISTEN@\"\n[uploader]\nenabled = false\n{}\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"media-bucket\"\nkey_prefix = \"static/\"\nurl = \"presigned\"\nexpires = \"10m\"\n{extra_mount}\n",
        s3.s3_section(),
        root.display()
    )
}

#[test]
fn redirect_url_downloads_the_exact_bytes() {
    let s3 = S3Server::start();
    s3.create_bucket("media-bucket");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s3.put("media-bucket", "static/photo.jpg", &body);
    let st = Stowaway::start(dir.path(), &config(&s3, &root, ""));
    let r = get(st.addr, "/static/photo.jpg");
    assert_eq!(r.status, 302, "{}", r.raw_head);
    let loc = r.header("location").unwrap();
    assert!(loc.contains("X-Amz-Signature="), "{loc}");
    let obj = fetch_url("GET", loc);
    assert_eq!(obj.status, 200);
    assert_eq!(obj.body, body);
}

fn follow(r: &Response, method: &str) -> Response {
    let loc = r
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {}", r.raw_head));
    fetch_url(method, loc)
}

#[test]
fn awkward_keys_round_trip() {
    let s3 = S3Server::start();
    s3.create_bucket("media-bucket");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(dir.path(), &config(&s3, &root, ""));
    let names = [
        "a b.jpg",
        "plus+sign.png",
        "per%cent.txt",
        "q?mark.gif",
        "hash#tag.css",
        "eq=and&amp.js",
        "ünïcødé/€ 東京.txt",
        "dir/sub dir/x y+z.bin",
    ];
    for (i, name) in names.iter().enumerate() {
        let body = format!("object number {i}: {name}").into_bytes();
        s3.put("media-bucket", &format!("static/{name}"), &body);
        let target = format!("/static/{}", stowaway::paths::encode_path(name));
        let r = get(st.addr, &target);
        assert_eq!(r.status, 302, "{name}");
        let got = follow(&r, "GET");
        assert_eq!(got.status, 200, "{name}: {}", r.header("location").unwrap());
        assert_eq!(got.body, body, "{name}");
    }
}

#[test]
fn tampered_and_expired_urls_are_refused_by_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("media-bucket");
    s3.put("media-bucket", "static/x.txt", b"payload");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(dir.path(), &config(&s3, &root, "window = \"0s\""));
    let loc = get(st.addr, "/static/x.txt")
        .header("location")
        .unwrap()
        .to_string();
    assert_eq!(fetch_url("GET", &loc).status, 200);
    // Flip the last signature digit.
    let last = loc.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &loc[..loc.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(fetch_url("GET", &tampered).status, 403);
    // Another object's path with this signature.
    s3.put("media-bucket", "static/y.txt", b"other");
    assert_eq!(
        fetch_url("GET", &loc.replace("/x.txt?", "/y.txt?")).status,
        403
    );
    // A longer expiry than signed.
    assert_eq!(
        fetch_url(
            "GET",
            &loc.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")
        )
        .status,
        403
    );

    // Expired: a mount with a 1s expiry and no window; the URL dies after a second.
    let st2 = Stowaway::start(
        dir.path(),
        &config(&s3, &root, "window = \"0s\"").replace("expires = \"10m\"", "expires = \"1s\""),
    );
    let loc = get(st2.addr, "/static/x.txt")
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc.contains("X-Amz-Expires=1&"), "{loc}");
    assert!(
        wait_until(std::time::Duration::from_secs(10), || fetch_url(
            "GET", &loc
        )
        .status
            == 403),
        "expired URL still accepted"
    );
    let r = fetch_url("GET", &loc);
    assert!(
        String::from_utf8_lossy(&r.body).contains("expired"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    drop(st);
}

#[test]
fn head_gets_a_head_signed_url() {
    let s3 = S3Server::start();
    s3.create_bucket("media-bucket");
    s3.put("media-bucket", "static/h.bin", &[7u8; 1234]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(dir.path(), &config(&s3, &root, ""));
    let head = request(st.addr, "HEAD", "/static/h.bin", &[]);
    assert_eq!(head.status, 302);
    let r = follow(&head, "HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    // The HEAD signature does not authorise GET, and vice versa.
    assert_eq!(follow(&head, "GET").status, 403);
    let get_r = get(st.addr, "/static/h.bin");
    assert_ne!(get_r.header("location"), head.header("location"));
    assert_eq!(follow(&get_r, "HEAD").status, 403);
}

#[test]
fn one_window_one_url() {
    let s3 = S3Server::start();
    s3.create_bucket("media-bucket");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    // 2-second windows: requests in one window share the URL, later windows differ.
    let st = Stowaway::start(dir.path(), &config(&s3, &root, "window = \"2s\""));
    let loc = |p: &str| get(st.addr, p).header("location").unwrap().to_string();
    let mut same = false;
    for _ in 0..20 {
        let (a, b) = (loc("/static/w.jpg"), loc("/static/w.jpg"));
        if a == b {
            same = true;
            break;
        }
    }
    assert!(same, "two back-to-back requests never shared a URL");
    let first = loc("/static/w.jpg");
    assert!(
        wait_until(std::time::Duration::from_secs(10), || loc("/static/w.jpg")
            != first),
        "URL never changed across windows"
    );
    let r = get(st.addr, "/static/w.jpg");
    assert!(
        r.header("cache-control")
            .unwrap()
            .starts_with("private, max-age=")
    );
}
