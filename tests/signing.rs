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
