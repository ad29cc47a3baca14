//! Front-server sites for the auth-mode, lighttpd and access-control tests: a stowaway config
//! builder, the front-server configs exactly as `stowaway gen-config` prints them, and the
//! hostile-URL case list. Include it next to `mod common;` with
//! `#[path = "common/fronts.rs"] mod fronts;`.
#![allow(dead_code)]

#[path = "lighttpd.rs"]
pub mod lighttpd;

use std::path::{Path, PathBuf};

use crate::common::*;
pub use lighttpd::Lighttpd;

/// Link-signing secrets for the tests (32+ bytes).
pub const K1_SECRET: &str = "k1-secret-0123456789abcdef0123456789";
pub const K2_SECRET: &str = "k2-secret-abcdefghijklmnopqrstuvwxyz";

/// A marker in files outside the served root: no answer may ever contain it.
pub const SECRET_MARKER: &[u8] = b"OUTSIDE-THE-ROOT-SECRET-7d1f";

/// The repository's lighttpd/ directory (holds the shipped stowaway-recheck.lua).
pub fn repo_lighttpd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lighttpd")
}

/// Deterministic test content.
pub fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

/// A stowaway config with one presigned mount `/static/` (bucket `site-media`, key prefix
/// `static/`, expires 10m, no window). `server_extra` and `mount_extra` are appended to their
/// sections; `mount_extra` may open `[mount.access]`.
pub fn config(s3: &S3Server, root: &Path, server_extra: &str, mount_extra: &str) -> String {
    format!(
        "[server]\nlisten = \"@LISTEN@\"\n{server_extra}\n[uploader]\nenabled = false\n{}\n\
         [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"site-media\"\nkey_prefix = \"static/\"\n\
         url = \"presigned\"\nexpires = \"10m\"\nwindow = \"0s\"\n{mount_extra}\n",
        s3.s3_section(),
        root.display()
    )
}

/// `[mount.access]` with keys k1 (signs) and k2 (accepted), secrets in 0600 files under `dir`.
pub fn access_section(dir: &Path, sign_with: &str) -> String {
    let mut files = Vec::new();
    for (id, secret) in [("k1", K1_SECRET), ("k2", K2_SECRET)] {
        let f = dir.join(format!("link-key-{id}"));
        std::fs::write(&f, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        files.push((id, f));
    }
    let mut s = format!("[mount.access]\nsign_with = \"{sign_with}\"\n");
    for (id, f) in files {
        s.push_str(&format!(
            "[[mount.access.keys]]\nid = \"{id}\"\nsecret_file = \"{}\"\n",
            f.display()
        ));
    }
    s
}

/// `stowaway gen-config <args> --config <st's config>`.
pub fn gen_config(st: &Stowaway, args: &[&str]) -> String {
    let out = stowaway_cmd()
        .arg("gen-config")
        .args(args)
        .arg("--config")
        .arg(&st.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gen-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The first line of `conf` starting with `directive ` (after indentation), replaced.
pub fn replace_directive(conf: &str, directive: &str, new_line: &str) -> String {
    let line = conf
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{directive} ")))
        .unwrap_or_else(|| panic!("no {directive} in\n{conf}"))
        .to_string();
    conf.replacen(&line, new_line, 1)
}

/// nginx in proxy_pass mode, from `gen-config nginx`.
pub fn proxy_nginx(dir: &Path, st: &Stowaway) -> Nginx {
    Nginx::start(
        dir,
        &gen_config(st, &["nginx", "--front-listen", "127.0.0.1:@PORT@"]),
    )
}

/// The auth-mode config from `gen-config nginx --mode auth`, cache inside nginx's directory.
pub fn auth_conf(st: &Stowaway) -> String {
    gen_config(
        st,
        &[
            "nginx",
            "--mode",
            "auth",
            "--front-listen",
            "127.0.0.1:@PORT@",
            "--verdict-cache-dir",
            "@DIR@/verdicts",
        ],
    )
}

/// nginx in auth_request mode, from `gen-config nginx --mode auth`.
pub fn auth_nginx(dir: &Path, st: &Stowaway) -> Nginx {
    Nginx::start(dir, &auth_conf(st))
}

/// The lighttpd config from `gen-config lighttpd`, using the shipped recheck script.
pub fn lighttpd_conf(st: &Stowaway) -> String {
    let lua_dir = repo_lighttpd_dir();
    gen_config(st, &["lighttpd", "--lua-dir", lua_dir.to_str().unwrap()])
}

/// lighttpd in mod_proxy + X-Sendfile mode, from `gen-config lighttpd`.
pub fn lighttpd_front(dir: &Path, st: &Stowaway) -> Lighttpd {
    Lighttpd::start(dir, &lighttpd_conf(st))
}

/// Hostile request targets (traversal, encodings, symlinks, injection, other prefixes). The
/// site must have `site/other/outside.txt` and `site/static-archive/archived.txt` (both
/// holding [`SECRET_MARKER`]) next to the root `site/static`, plus the links made by
/// [`plant_hostile_fixtures`].
pub const HOSTILE: &[&[u8]] = &[
    b"/static/../other/outside.txt",
    b"/static/%2e%2e/other/outside.txt",
    b"/static/%2E%2E%2Fother%2Foutside.txt",
    b"/static/..%2fother%2foutside.txt",
    b"/static/%252e%252e/other/outside.txt",
    b"/static/%c0%ae%c0%ae/other/outside.txt",
    b"/static/..\\other\\outside.txt",
    b"/static/%5c..%5cother%5coutside.txt",
    b"/static/link.txt",
    b"/static/linkdir/outside.txt",
    b"/static/ok.jpg%00.txt",
    b"/static/a%0d%0aSet-Cookie:%20evil=1",
    b"/static/a%0aX-Injected:%20yes",
    b"/static-archive/archived.txt",
    b"/static/../static-archive/archived.txt",
    b"/static/a%2fb.jpg",
    b"/static/",
    b"/static/sub",
    b"/static/sub/",
];

/// Creates the files and links the [`HOSTILE`] cases aim at, under `site_dir` (the parent of
/// `site/static`).
pub fn plant_hostile_fixtures(site_dir: &Path, root: &Path) {
    write_file(site_dir, "site/other/outside.txt", SECRET_MARKER);
    write_file(site_dir, "site/static-archive/archived.txt", SECRET_MARKER);
    write_file(root, "ok.jpg", b"fine");
    write_file(root, "sub/in.jpg", b"sub");
    std::os::unix::fs::symlink(
        site_dir.join("site/other/outside.txt"),
        root.join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(site_dir.join("site/other"), root.join("linkdir")).unwrap();
}

/// The properties every answer to a hostile target must have, in every mode: no secret, a
/// refusal or a redirect into the mount's bucket prefix, and no injected header.
pub fn assert_harmless(r: &Response, target: &[u8], bucket_prefix: &str) {
    let shown = String::from_utf8_lossy(target);
    assert!(
        !r.body
            .windows(SECRET_MARKER.len())
            .any(|w| w == SECRET_MARKER),
        "{shown} leaked the secret"
    );
    assert!(
        matches!(r.status, 400 | 403 | 404 | 302),
        "{shown}: {}",
        r.raw_head
    );
    if r.status == 302 {
        assert!(
            r.header("location")
                .unwrap_or("")
                .starts_with(bucket_prefix),
            "{shown}: {}",
            r.raw_head
        );
    }
    let head = r.raw_head.to_ascii_lowercase();
    assert!(
        !head.contains("set-cookie") && !head.contains("x-injected"),
        "{shown} injected a header: {}",
        r.raw_head
    );
}

/// The front secret of [`front_secret_line`] (hex, 64 bytes).
pub const FRONT_SECRET: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00112233445566778899aabbccddeeff";

/// `front_secret_file = "<dir>/front-secret"` for `[server]`, the file holding
/// [`FRONT_SECRET`] with mode 0600.
pub fn front_secret_line(dir: &Path) -> String {
    let f = dir.join("front-secret");
    std::fs::write(&f, format!("{FRONT_SECRET}\n")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!("front_secret_file = \"{}\"\n", f.display())
}

/// Fails if the front secret appears anywhere in a response a client got.
pub fn assert_no_secret(r: &Response, what: &str) {
    assert!(
        !r.raw_head.contains(FRONT_SECRET)
            && !r
                .body
                .windows(FRONT_SECRET.len())
                .any(|w| w == FRONT_SECRET.as_bytes()),
        "{what}: the front secret reached the client: {}",
        r.raw_head
    );
}
