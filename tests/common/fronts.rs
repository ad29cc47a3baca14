//! Front-server sites for the auth-mode, lighttpd and access-control tests: a stowaway config
//! builder, the front-server configs exactly as `stowaway gen-config` prints them, and the
//! hostile-URL case list. Include it next to `mod common;` with
//! `#[path = "common/fronts.rs"] mod fronts;`.
#![allow(dead_code)]

#[path = "lighttpd.rs"]
pub mod lighttpd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
pub use lighttpd::Lighttpd;

/// Link-signing secrets for the tests (32+ bytes).
pub const K1_SECRET: &str = "k1-secret-0123456789abcdef0123456789";
pub const K2_SECRET: &str = "k2-secret-abcdefghijklmnopqrstuvwxyz";

/// A marker in files outside the served root: no answer may ever contain it.
pub const SECRET_MARKER: &[u8] = b"OUTSIDE-THE-ROOT-SECRET-7d1f";

/// Deterministic test content.
pub fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

/// A stowaway config with one presigned mount `/static/` (bucket `site-media`, key prefix
/// `static/`, expires 10m, no window). `server_extra` and `mount_extra` are appended to their
/// sections; `mount_extra` may open `[mount.access]`.
pub fn config(s3: &S3Server, root: &Path, server_extra: &str, mount_extra: &str) -> String {
    fixture(
        "front.toml",
        &[
            ("server_extra", server_extra),
            ("mount_extra", mount_extra),
            ("region", REGION),
            ("endpoint", &s3.endpoint),
            ("root", &root.display().to_string()),
        ],
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

/// What a real site has around the generated locations: a document root that holds the mount
/// roots (`dir/site`, as `/srv/site` holds `/srv/site/static`), regex locations for common
/// extensions and PHP, an API behind `proxy_pass` (the tiny upstream [`site_api`] on port
/// `api_port`), and rewrites (server level and in a location) into the mounts. Every nginx
/// test runs the generated config inside it, so a generated location that loses to a regex
/// location or trusts a pre-rewrite URI shows up everywhere.
pub fn realistic_site(site_root: &Path, api_port: u16) -> String {
    format!(
        "\n    # ---- the surrounding site (test harness) ----\n\
         \x20   root \"{}\";\n\
         \x20   index index.html;\n\
         \x20   rewrite ^/old-static/(.*)$ /static/$1 last;\n\
         \x20   rewrite ^/static/shared/(.*)$ /private/$1 last;\n\
         \x20   location ^~ /moved/ {{ rewrite ^/moved/(.*)$ /static/$1 last; }}\n\
         \x20   location / {{ try_files $uri $uri/ =404; }}\n\
         \x20   location /api/ {{ proxy_pass http://127.0.0.1:{api_port}; }}\n\
         \x20   location ~* \\.(?:css|js|jpe?g|png|gif|pdf|txt|html)$ {{ expires 7d; add_header X-Site-Regex 1 always; }}\n\
         \x20   location ~ \\.php$ {{ return 418; }}\n",
        site_root.display()
    )
}

/// The site's API: a server block (for the `http {}` context) on `port` that echoes the URI.
pub fn site_api(port: u16) -> String {
    format!(
        "\nserver {{\n    listen 127.0.0.1:{port};\n    location / {{ default_type text/plain; return 200 \"api $request_uri\\n\"; }}\n}}\n"
    )
}

/// `conf` (a generated standalone nginx config, its server block last) with
/// [`realistic_site`] added to the server block, after the generated lines.
pub fn in_realistic_site(conf: &str, site_root: &Path) -> String {
    let api = free_port();
    let end = conf.trim_end().rfind('}').expect("a server block");
    format!(
        "{}{}}}\n{}",
        &conf[..end],
        realistic_site(site_root, api),
        site_api(api)
    )
}

/// `gen-config nginx <mode_args> --part http` and `--part server` for `st`: the http part
/// (text, for the `http {}` context) and the server part, written to
/// `dir/<name>-server.conf` to be included.
pub fn nginx_snippets(dir: &Path, st: &Stowaway, mode_args: &[&str]) -> (String, PathBuf) {
    let mut args = vec!["nginx"];
    args.extend_from_slice(mode_args);
    let http = gen_config(st, &[&args[..], &["--part", "http"]].concat());
    let server = gen_config(st, &[&args[..], &["--part", "server"]].concat());
    let name = http
        .lines()
        .find_map(|l| l.strip_prefix("upstream "))
        .and_then(|l| l.strip_suffix(" {"))
        .expect("an upstream in the http part")
        .to_string();
    let path = dir.join(format!("{name}-server.conf"));
    std::fs::write(&path, server).unwrap();
    (http, path)
}

/// The http part and [`realistic_site`] as the operator's server block on `@PORT@`, with
/// `include <server part>` as its first line (`None`: the same site without stowaway).
pub fn realistic_site_with(http: &str, include: Option<&Path>, site_root: &Path) -> String {
    let api = free_port();
    let include = include.map_or(String::new(), |p| format!("    include {};\n", p.display()));
    format!(
        "{http}{}\nserver {{\n    listen 127.0.0.1:@PORT@;\n{include}{}}}\n",
        site_api(api),
        realistic_site(site_root, api)
    )
}

/// Debian's stock `sites-available/default` server block (from the nginx package) on `@PORT@`
/// with the document root `docroot`, after the http part, with `include <server part>` as
/// the block's first line (`None`: the stock site without stowaway).
pub fn debian_default_site_with(http: &str, include: Option<&Path>, docroot: &Path) -> String {
    let stock = std::fs::read_to_string("/etc/nginx/sites-available/default")
        .expect("Debian's /etc/nginx/sites-available/default (scripts/install-deps.sh)");
    let mut out = String::from(http);
    let mut included = false;
    for line in stock.lines() {
        let t = line.trim();
        let line = if t == "listen 80 default_server;" {
            "\tlisten 127.0.0.1:@PORT@ default_server;".to_string()
        } else if t == "listen [::]:80 default_server;" {
            continue;
        } else if t == "root /var/www/html;" {
            format!("\troot \"{}\";", docroot.display())
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
        if t == "server {" && !included {
            included = true;
            if let Some(p) = include {
                out.push_str(&format!("\tinclude {};\n", p.display()));
            }
        }
    }
    assert!(included, "no server block in Debian's default site");
    out
}

/// Documents of the surrounding site, in `site_root`.
pub fn plant_site_docs(site_root: &Path) {
    write_file(site_root, "index.html", b"<h1>home</h1>");
    write_file(site_root, "css/site.css", b"body{}");
    write_file(site_root, "img/logo.png", b"png");
    write_file(site_root, "docs/index.html", b"docs index");
    write_file(site_root, "docs/page.html", b"docs page");
    write_file(site_root, "index.php", b"<?php");
    write_file(site_root, "index.nginx-debian.html", b"debian welcome");
}

/// Requests the site's own routes (docs, regex locations, PHP, API, misses) on both fronts:
/// the site with stowaway included answers each exactly as the same site without it (status,
/// body and headers; `Date` and `Expires` only for presence, they hold the time).
pub fn assert_site_routes_unchanged(with: &Nginx, without: &Nginx) {
    for path in [
        "/",
        "/index.html",
        "/index.nginx-debian.html",
        "/css/site.css",
        "/img/logo.png?v=3",
        "/docs/",
        "/docs/page.html",
        "/index.php",
        "/api/users?id=1",
        "/api/static/photo.jpg",
        "/nope",
        "/nope.jpg",
        "/staticx/photo.jpg",
    ] {
        for method in ["GET", "HEAD"] {
            let a = request(with.addr, method, path, &[]);
            let b = request(without.addr, method, path, &[]);
            let view = |r: &Response| {
                let mut h: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let k = k.to_ascii_lowercase();
                        let v = if k == "date" || k == "expires" {
                            String::new()
                        } else {
                            v.clone()
                        };
                        (k, v)
                    })
                    .collect();
                h.sort();
                (r.status, h, r.body.clone())
            };
            assert_eq!(
                view(&a),
                view(&b),
                "{method} {path} changed:\n{}\nvs without stowaway:\n{}",
                a.raw_head,
                b.raw_head
            );
        }
    }
}

/// The mounts of [`TwoMounts`] through `front`: local file (200, Range, 304), a file only in
/// S3 (302 that S3 serves), a signed mount refused without a link and served with one; no
/// internal header reaches the client.
pub fn assert_mounts_work(front: SocketAddr, t: &TwoMounts, log: &dyn Fn() -> String) {
    let internal = |r: &Response| {
        for h in [
            "x-accel-redirect",
            "x-sendfile",
            "x-s3-location",
            "x-stowaway-status",
        ] {
            assert!(
                r.header(h).is_none(),
                "{h} reached the client: {}",
                r.raw_head
            );
        }
    };
    let r = get(front, "/static/photo.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"public jpg"[..]),
        "{}\n{:?}\n{}",
        r.raw_head,
        String::from_utf8_lossy(&r.body),
        log()
    );
    internal(&r);
    let etag = r.header("etag").expect("an ETag").to_string();
    let r = request(front, "GET", "/static/photo.jpg", &[("Range", "bytes=0-5")]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &b"public"[..]),
        "{}",
        r.raw_head
    );
    let r = request(
        front,
        "GET",
        "/static/photo.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304, "{}", r.raw_head);
    let r = get(front, "/static/gone.txt");
    assert_eq!(r.status, 302, "{}\n{}", r.raw_head, log());
    internal(&r);
    assert_eq!(
        fetch_url("GET", r.header("location").unwrap()).body,
        b"from s3"
    );
    let r = get(front, "/private/report.txt");
    assert_eq!(r.status, 403, "{}", r.raw_head);
    assert!(!has_private(&r));
    internal(&r);
    let link = sign_link(&t.st, "/private/report.txt", &["--ttl", "5m"]);
    let r = get(front, &link);
    assert_eq!((r.status, has_private(&r)), (200, true), "{}", r.raw_head);
    internal(&r);
}

/// nginx in proxy_pass mode, from `gen-config nginx`, inside [`realistic_site`] with a site
/// root `dir/site-docroot` of its own.
pub fn proxy_nginx(dir: &Path, st: &Stowaway) -> Nginx {
    proxy_nginx_in_site(dir, st, &dir.join("site-docroot"))
}

/// nginx in proxy_pass mode inside [`realistic_site`] with the site root `site_root`.
/// The server part is included as the first line of the site's server block.
pub fn proxy_nginx_in_site(dir: &Path, st: &Stowaway, site_root: &Path) -> Nginx {
    let (http, server) = nginx_snippets(dir, st, PROXY_ARGS);
    Nginx::start(dir, &realistic_site_with(&http, Some(&server), site_root))
}

/// `stowaway sign <path> <args>` with `st`'s config: the signed link (path and query).
pub fn sign_link(st: &Stowaway, path: &str, args: &[&str]) -> String {
    sign_link_with(&st.config, path, args)
}

/// `stowaway sign <path> <args>` with the config file `config`.
pub fn sign_link_with(config: &Path, path: &str, args: &[&str]) -> String {
    let out = stowaway_cmd()
        .arg("sign")
        .arg(path)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign {path} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A second mount `/private/` (root `root`, key prefix `private/`, presigned) with signed links
/// required, for `config`'s `mount_extra`.
pub fn private_mount(root: &Path, secrets_dir: &Path) -> String {
    format!(
        "[[mount]]\nprefix = \"/private/\"\nroot = \"{}\"\nbucket = \"site-media\"\nkey_prefix = \"private/\"\n\
         url = \"presigned\"\nexpires = \"10m\"\nwindow = \"0s\"\n{}",
        root.display(),
        access_section(secrets_dir, "k1")
    )
}

/// A key of exactly `n` bytes made of multibyte UTF-8 only (2-, 3- and 4-byte characters), in
/// segments of at most `max_seg` bytes.
pub fn multibyte_key(n: usize, max_seg: usize) -> String {
    fn segment(n: usize) -> String {
        let (fours, tail) = match n % 4 {
            0 => (n / 4, ""),
            1 => ((n - 5) / 4, "é€"),
            2 => (n / 4, "é"),
            _ => (n / 4, "€"),
        };
        format!("{}{tail}", "😀".repeat(fours))
    }
    let mut segs = Vec::new();
    let mut rest = n;
    while rest > max_seg {
        // Leave at least two bytes (one character) for the next segment.
        let seg = if rest - max_seg > 2 {
            max_seg
        } else {
            max_seg - 2
        };
        segs.push(segment(seg));
        rest -= seg + 1;
    }
    segs.push(segment(rest));
    let key = segs.join("/");
    assert_eq!(key.len(), n);
    key
}

/// The longest key stowaway accepts (`MAX_KEY_BYTES`, 1024 bytes), all multibyte UTF-8.
pub fn longest_key() -> String {
    multibyte_key(1024, 255)
}

/// `key` percent-encoded for a request path (every byte that is not unreserved or `/`).
pub fn encode_path(key: &str) -> String {
    let mut s = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `gen-config nginx --mode proxy` (the default only when a mount has access control).
pub const PROXY_ARGS: &[&str] = &["--mode", "proxy"];

/// `gen-config nginx --mode local-first` arguments with both caches inside nginx's directory.
pub const LOCAL_ARGS: &[&str] = &[
    "--mode",
    "local-first",
    "--verdict-cache-dir",
    "@DIR@/verdicts",
    "--redirect-cache-dir",
    "@DIR@/redirects",
];

/// nginx in local-first mode, from `gen-config nginx --mode local-first`, inside
/// [`realistic_site`] with a site root `dir/site-docroot` of its own.
pub fn local_nginx(dir: &Path, st: &Stowaway) -> Nginx {
    local_nginx_in_site(dir, st, &dir.join("site-docroot"))
}

/// nginx in local-first mode inside [`realistic_site`] with the site root `site_root`.
pub fn local_nginx_in_site(dir: &Path, st: &Stowaway, site_root: &Path) -> Nginx {
    let (http, server) = nginx_snippets(dir, st, LOCAL_ARGS);
    Nginx::start(dir, &realistic_site_with(&http, Some(&server), site_root))
}

/// stowaway's `stowaway_decisions_total` for `outcome` (`local`, `remote`, …) and `mount`
/// (`""` for answers about no mount), read from its `/metrics` (TCP or Unix socket).
pub fn decisions(st: &Stowaway, outcome: &str, mount: &str) -> u64 {
    let r = match &st.sock {
        Some(p) => request_unix(p, "GET", "/metrics", &[]),
        None => get(st.addr, "/metrics"),
    };
    assert_eq!(r.status, 200, "{}", r.raw_head);
    let text = String::from_utf8(r.body).unwrap();
    let key = format!("stowaway_decisions_total{{outcome=\"{outcome}\",mount=\"{mount}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// `gen-config nginx --mode auth` arguments with the verdict cache inside nginx's directory.
pub const AUTH_ARGS: &[&str] = &["--mode", "auth", "--verdict-cache-dir", "@DIR@/verdicts"];

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

/// nginx in auth_request mode, from `gen-config nginx --mode auth`, inside [`realistic_site`]
/// with a site root `dir/site-docroot` of its own.
pub fn auth_nginx(dir: &Path, st: &Stowaway) -> Nginx {
    auth_nginx_in_site(dir, st, &dir.join("site-docroot"))
}

/// nginx in auth_request mode inside [`realistic_site`] with the site root `site_root`.
/// The server part is included as the first line of the site's server block.
pub fn auth_nginx_in_site(dir: &Path, st: &Stowaway, site_root: &Path) -> Nginx {
    let (http, server) = nginx_snippets(dir, st, AUTH_ARGS);
    Nginx::start(dir, &realistic_site_with(&http, Some(&server), site_root))
}

/// `gen-config lighttpd --out-dir`, as an installed binary is used (no file of the repository):
/// the directory, next to `st`'s config, holding every file the lighttpd setup needs, in the
/// default mode (local-first).
pub fn lighttpd_files(st: &Stowaway) -> PathBuf {
    lighttpd_files_in(st, None)
}

/// [`lighttpd_files`] for `gen-config lighttpd --mode <mode>` (`None`: no `--mode`).
pub fn lighttpd_files_in(st: &Stowaway, mode: Option<&str>) -> PathBuf {
    let out_dir = st.config.with_file_name(format!(
        "lighttpd-files-{}-{}",
        st.addr.port(),
        mode.unwrap_or("default")
    ));
    let mut cmd = stowaway_cmd();
    cmd.args(["gen-config", "lighttpd", "--out-dir"])
        .arg(&out_dir)
        .arg("--config")
        .arg(&st.config);
    if let Some(m) = mode {
        cmd.args(["--mode", m]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "gen-config lighttpd --out-dir: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_dir
}

/// The lighttpd config from `gen-config lighttpd --mode sendfile --out-dir` (its scripts stay
/// in that directory).
pub fn lighttpd_sendfile_conf(st: &Stowaway) -> String {
    std::fs::read_to_string(lighttpd_files_in(st, Some("sendfile")).join("stowaway.conf")).unwrap()
}

/// lighttpd with the default `gen-config lighttpd` output (local-first: lighttpd sends plain
/// local files of open mounts itself, the rest goes to stowaway over mod_proxy + X-Sendfile):
/// lighttpd.conf includes the stowaway.conf that `--out-dir` wrote.
pub fn lighttpd_front(dir: &Path, st: &Stowaway) -> Lighttpd {
    let conf = lighttpd_files(st).join("stowaway.conf");
    Lighttpd::start(dir, &format!("include \"{}\"", conf.display()))
}

/// lighttpd in mod_proxy + X-Sendfile mode (`--mode sendfile`): stowaway decides every request.
pub fn lighttpd_sendfile_front(dir: &Path, st: &Stowaway) -> Lighttpd {
    let conf = lighttpd_files_in(st, Some("sendfile")).join("stowaway.conf");
    Lighttpd::start(dir, &format!("include \"{}\"", conf.display()))
}

/// How many requests stowaway has decided (every answer of its decision endpoint counts once
/// in `stowaway_decisions_total`, whatever the outcome), from its /metrics.
pub fn decisions_total(st: &Stowaway) -> u64 {
    let r = match &st.sock {
        Some(p) => request_unix(p, "GET", "/metrics", &[]),
        None => get(st.addr, "/metrics"),
    };
    assert_eq!(r.status, 200, "{}", r.raw_head);
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with("stowaway_decisions_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
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

/// A site with two mounts on one bucket: open `/static/` (root `dir/site/static`, `server_extra`
/// in `[server]`) and signed `/private/` (root `dir/site/private`, k1 signs). `/static/` holds
/// `photo.jpg`, `notes.txt`, `page.php` and `shared/report.txt`; `/private/` holds `report.txt`
/// and `pic.jpg` (all [`PRIVATE_MARK`]ed) and S3 holds `static/gone.txt`.
pub struct TwoMounts {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub s3: S3Server,
    pub st: Stowaway,
    pub static_root: PathBuf,
    pub private_root: PathBuf,
}

/// Marks every byte of the private mount's files: no unsigned answer may contain it.
pub const PRIVATE_MARK: &[u8] = b"PRIVATE-MOUNT-CONTENT-41c9";

pub fn two_mounts(server_extra: &str) -> TwoMounts {
    two_mounts_on(server_extra, false)
}

/// [`two_mounts`], stowaway listening on a Unix socket when `unix`.
pub fn two_mounts_on(server_extra: &str, unix: bool) -> TwoMounts {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.put("site-media", "static/gone.txt", b"from s3");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let static_root = dir.join("site/static");
    let private_root = dir.join("site/private");
    write_file(&static_root, "photo.jpg", b"public jpg");
    write_file(&static_root, "notes.txt", b"public txt");
    write_file(&static_root, "page.php", b"public php");
    write_file(&static_root, "shared/report.txt", b"public decoy");
    write_file(&private_root, "report.txt", PRIVATE_MARK);
    write_file(&private_root, "pic.jpg", PRIVATE_MARK);
    let cfg = config(
        &s3,
        &static_root,
        server_extra,
        &private_mount(&private_root, &dir),
    );
    let st = if unix {
        Stowaway::start_unix(&dir, &cfg)
    } else {
        Stowaway::start(&dir, &cfg)
    };
    TwoMounts {
        _tmp: tmp,
        dir,
        s3,
        st,
        static_root,
        private_root,
    }
}

fn has_private(r: &Response) -> bool {
    r.body
        .windows(PRIVATE_MARK.len())
        .any(|w| w == PRIVATE_MARK)
}

/// The generated config inside [`realistic_site`]: the site's regex locations never take a
/// mount's request (signed files stay signed, local files are sent as stowaway decided), a
/// rewrite never brings an unsigned request to a signed file, and nginx does not name its
/// version. `auth_mode`: rewritten requests into a mount are refused (the verdict would be
/// about the pre-rewrite URI); proxy mode judges the rewritten URI.
pub fn assert_site_cannot_bypass(nginx: &Nginx, t: &TwoMounts, auth_mode: bool) {
    assert_site_cannot_bypass_with(nginx, t, auth_mode, auth_mode)
}

/// [`assert_site_cannot_bypass`] with the rewrite rule per mount: `signed_refuses_rewrites`
/// for the signed mount (auth-mode locations), `open_refuses_rewrites` for the open one
/// (local-first mode judges a rewritten URI like proxy mode, but its signed mount is in auth
/// mode).
pub fn assert_site_cannot_bypass_with(
    nginx: &Nginx,
    t: &TwoMounts,
    signed_refuses_rewrites: bool,
    open_refuses_rewrites: bool,
) {
    let a = nginx.addr;
    let untouched = |r: &Response, what: &str| {
        assert!(
            r.header("x-site-regex").is_none() && r.header("expires").is_none(),
            "{what}: the site's regex location took it: {}",
            r.raw_head
        );
        assert_eq!(r.header("server"), Some("nginx"), "{what}: {}", r.raw_head);
    };
    // Unsigned requests for signed files: refused, whatever the extension.
    for p in ["/private/report.txt", "/private/pic.jpg", "/private/x.php"] {
        let r = get(a, p);
        assert_eq!(r.status, 403, "unsigned {p}: {}", r.raw_head);
        assert!(!has_private(&r), "unsigned {p} leaked");
        untouched(&r, p);
    }
    let link = sign_link(&t.st, "/private/report.txt", &["--ttl", "5m"]);
    let r = get(a, &link);
    assert_eq!((r.status, has_private(&r)), (200, true), "{}", r.raw_head);
    untouched(&r, "signed link");
    // Local files of the open mount are sent as stowaway decided, not by the regex locations.
    for (p, body) in [
        ("/static/photo.jpg", &b"public jpg"[..]),
        ("/static/notes.txt", b"public txt"),
        ("/static/page.php", b"public php"),
    ] {
        let r = get(a, p);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, body),
            "{p}: {}",
            r.raw_head
        );
        untouched(&r, p);
    }
    let r = get(a, "/static/gone.txt");
    assert_eq!(r.status, 302, "{}", r.raw_head);
    untouched(&r, "/static/gone.txt");
    assert_eq!(
        fetch_url("GET", r.header("location").unwrap()).body,
        b"from s3"
    );
    // The site rewrites /static/shared/* onto /private/*: never served unsigned.
    let r = get(a, "/static/shared/report.txt");
    assert_eq!(
        r.status, 403,
        "rewrite into the signed mount: {}",
        r.raw_head
    );
    assert!(!has_private(&r), "a rewrite leaked the signed file");
    // A signed link's parameters on the rewritten path.
    let query = link.split_once('?').unwrap().1;
    let r = get(a, &format!("/static/shared/report.txt?{query}"));
    if signed_refuses_rewrites {
        assert_eq!(r.status, 403, "{}", r.raw_head);
    } else {
        assert_eq!((r.status, has_private(&r)), (200, true), "{}", r.raw_head);
    }
    // Rewrites within the open mount (server level and in a location).
    for p in ["/old-static/notes.txt", "/moved/notes.txt"] {
        let r = get(a, p);
        if open_refuses_rewrites {
            assert_eq!(r.status, 403, "{p}: {}", r.raw_head);
            assert!(r.body.windows(10).all(|w| w != b"public txt"), "{p}");
        } else {
            assert_eq!(
                (r.status, r.body.as_slice()),
                (200, &b"public txt"[..]),
                "{p}"
            );
        }
    }
}

/// The longest key stowaway accepts (all multibyte UTF-8) is served through the front at
/// `front`: sent from disk when local (GET and HEAD), 302 to the object that S3 then serves
/// when not. `root` is the `/static/` mount's root (bucket `site-media`, key prefix `static/`).
pub fn assert_longest_key_served(
    front: SocketAddr,
    root: &Path,
    s3: &S3Server,
    log: &dyn Fn() -> String,
) {
    let key = longest_key();
    write_file(root, &key, b"longest local");
    let r = get(front, &format!("/static/{}", encode_path(&key)));
    assert_eq!(r.status, 200, "local: {}\n{}", r.raw_head, log());
    assert_eq!(r.body, b"longest local");
    let r = request(
        front,
        "HEAD",
        &format!("/static/{}", encode_path(&key)),
        &[],
    );
    assert_eq!(r.status, 200, "local HEAD: {}\n{}", r.raw_head, log());
    // Not local: a 302 to the object's presigned URL. The test S3 server (s3s-fs) cannot store
    // long keys (it names a metadata file after the whole key), so S3's part of the check is:
    // the longest key S3 allows (1024 bytes with the mount's key prefix) passes the signature
    // check and is not found (a bad signature would be a 403); stowaway's longest (1024 bytes
    // plus the prefix) still gets its 302, which S3 answers with KeyTooLongError.
    let s3_longest = multibyte_key(1024 - "static/".len(), 255);
    let too_long = longest_key().replacen('😀', "🙃", 1);
    for (key, s3_status, s3_code) in [
        (&s3_longest, 404, "NoSuchKey"),
        (&too_long, 400, "KeyTooLong"),
    ] {
        for method in ["GET", "HEAD"] {
            let r = request(front, method, &format!("/static/{}", encode_path(key)), &[]);
            assert_eq!(
                r.status,
                302,
                "{} bytes {method}: {}\n{}",
                key.len(),
                r.raw_head,
                log()
            );
            let loc = r.header("location").unwrap();
            let want = format!("{}/site-media/static/{}?", s3.endpoint, encode_path(key));
            assert!(
                loc.starts_with(&want),
                "{} bytes {method}: {loc}",
                key.len()
            );
            let obj = fetch_url(method, loc);
            let body = String::from_utf8_lossy(&obj.body);
            assert_eq!(
                obj.status,
                s3_status,
                "{} bytes {method}: {body}",
                key.len()
            );
            assert!(method == "HEAD" || body.contains(s3_code), "{body}");
        }
    }
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

/// Issue 12 items 1 and 5: the `--part http` and `--part server` snippets of `gen-config nginx
/// <mode_args>` dropped into (a) Debian's stock default site and (b) [`realistic_site`], the
/// server part included as the block's first line. The site's own routes answer exactly as
/// the same site without stowaway, and the mounts work.
pub fn assert_snippets_drop_into_sites(mode_args: &[&str]) {
    let t = two_mounts("");
    let site = t.dir.join("site");
    plant_site_docs(&site);
    let (http, server) = nginx_snippets(&t.dir, &t.st, mode_args);
    type Build = fn(&str, Option<&Path>, &Path) -> String;
    for (what, build) in [
        ("Debian's default site", debian_default_site_with as Build),
        ("the realistic site", realistic_site_with as Build),
    ] {
        let with = Nginx::start(&t.dir, &build(&http, Some(&server), &site));
        let without = Nginx::start(&t.dir, &build("", None, &site));
        assert_eq!(
            get(without.addr, "/docs/page.html").body,
            b"docs page",
            "{what}"
        );
        assert_site_routes_unchanged(&with, &without);
        assert_mounts_work(with.addr, &t, &|| {
            format!("{what}: {}\n{}", with.error_log(), t.st.log_text())
        });
    }
}

/// Issue 12 item 13: with `--fail-open`, while stowaway is down nginx sends the files on disk
/// of a mount without access control (Range too, the symlink rule kept, a missing file 404),
/// and the signed mount stays closed; without the flag everything fails closed.
/// `down_status`: what nginx answers a request stowaway cannot decide (502 in proxy mode, 500
/// in auth mode).
pub fn assert_fail_open(mode_args: &[&str], down_status: u16) {
    let mut t = two_mounts("");
    write_file(&t.static_root, "a b/€ q.jpg", b"odd name");
    write_file(&t.static_root, "sub/index.html", b"index");
    for hidden in [
        ".env",
        "up.part",
        ".stowaway-tmp1",
        ".git/config",
        "x.tmp/y.jpg",
    ] {
        write_file(&t.static_root, hidden, PRIVATE_MARK);
    }
    std::os::unix::fs::symlink(
        t.private_root.join("report.txt"),
        t.static_root.join("link.txt"),
    )
    .unwrap();
    let site = t.dir.join("site-docroot");
    let (http, server) = nginx_snippets(&t.dir, &t.st, mode_args);
    let closed = Nginx::start(&t.dir, &realistic_site_with(&http, Some(&server), &site));
    let mut args = mode_args.to_vec();
    args.extend(["--fail-open", "--name", "failopen"]);
    let (http, server) = nginx_snippets(&t.dir, &t.st, &args);
    let open = Nginx::start(&t.dir, &realistic_site_with(&http, Some(&server), &site));
    // While stowaway runs, --fail-open changes nothing.
    assert_mounts_work(open.addr, &t, &|| open.error_log());
    // Not asked before (auth mode's verdict cache answers a link it has a verdict for).
    let link = sign_link(&t.st, "/private/report.txt", &["--ttl", "7m"]);

    t.st.proc.kill();
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
            t.st.addr
        )
        .is_err()),
        "stowaway still answers"
    );
    for p in ["/static/photo.jpg", "/static/gone.txt"] {
        let r = get(closed.addr, p);
        assert_eq!(
            r.status, down_status,
            "fail-closed by default: {p}: {}",
            r.raw_head
        );
    }
    let r = get(open.addr, "/static/photo.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"public jpg"[..]),
        "{}\n{}",
        r.raw_head,
        open.error_log()
    );
    let r = request(
        open.addr,
        "GET",
        "/static/photo.jpg",
        &[("Range", "bytes=0-5")],
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &b"public"[..]),
        "{}",
        r.raw_head
    );
    let r = get(open.addr, "/static/a%20b/%E2%82%AC%20q.jpg");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"odd name"[..]),
        "{}",
        r.raw_head
    );
    // Not on disk and never asked before (auth mode's verdict cache may still redirect a
    // file it has a fresh verdict for): nothing can say where it went.
    assert_eq!(get(open.addr, "/static/never-asked.txt").status, 404);
    for p in [
        "/static/sub/",
        "/static/sub",
        "/static/",
        "/static/link.txt",
    ] {
        let r = get(open.addr, p);
        assert!(
            matches!(r.status, 403 | 404) && !has_private(&r),
            "{p}: {}",
            r.raw_head
        );
    }
    for p in [
        "/static/../private/report.txt",
        "/static/%2e%2e/private/report.txt",
    ] {
        let r = get(open.addr, p);
        assert!(!has_private(&r), "{p}: {}", r.raw_head);
    }
    // The signed mount never fails open, not even with a valid link (an unsigned request may
    // meet auth mode's cached refusal).
    for p in ["/private/report.txt", "/private/pic.jpg", link.as_str()] {
        let r = get(open.addr, p);
        assert!(
            r.status == down_status || r.status == 403 && p == "/private/report.txt",
            "{p}: {}",
            r.raw_head
        );
        assert!(!has_private(&r), "{p} failed open");
    }
    // The fail-open location is internal.
    let r = get(open.addr, "/_stowaway_local/fail-open/0/photo.jpg");
    assert_eq!(r.status, 404, "{}", r.raw_head);
}

/// A client asking for `path` through a front server in a loop, noting when each request
/// started and whether it got `body` (directly or behind its redirect): for "no request gets
/// the old bytes once X returned".
pub struct OldBytesLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    old: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    asked: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OldBytesLoad {
    /// Starts the loop and waits until it got the old bytes once.
    pub fn start(front: SocketAddr, path: &str, body: &[u8]) -> OldBytesLoad {
        Self::start_paced(front, path, body, Duration::ZERO)
    }

    /// [`OldBytesLoad::start`] with a pause between requests (a loop of many seconds without
    /// one fills the loopback port range with TIME_WAIT sockets).
    pub fn start_paced(
        front: SocketAddr,
        path: &str,
        body: &[u8],
        pause: Duration,
    ) -> OldBytesLoad {
        use std::sync::atomic::Ordering::Relaxed;
        let l = OldBytesLoad {
            stop: Default::default(),
            old: Default::default(),
            asked: Default::default(),
            thread: None,
        };
        let (stop, old, asked) = (l.stop.clone(), l.old.clone(), l.asked.clone());
        let (path, body) = (path.to_string(), body.to_vec());
        let thread = std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let started = std::time::Instant::now();
                let r = get(front, &path);
                let got = match r.status {
                    200 => r.body == body,
                    302 => {
                        let o = fetch_url("GET", r.header("location").unwrap());
                        o.status == 200 && o.body == body
                    }
                    _ => false,
                };
                if got {
                    old.lock().unwrap().push(started);
                }
                asked.fetch_add(1, Relaxed);
                std::thread::sleep(pause);
            }
        });
        let l = OldBytesLoad {
            thread: Some(thread),
            ..l
        };
        assert!(
            wait_until(Duration::from_secs(10), || !l
                .old
                .lock()
                .unwrap()
                .is_empty()),
            "the loop never got the bytes"
        );
        l
    }

    /// Lets at least `n` more requests finish, then stops the loop; returns, for each request
    /// that started at or after `since` and got the old bytes, how long after `since`.
    pub fn finish(mut self, n: u64, since: std::time::Instant) -> Vec<Duration> {
        use std::sync::atomic::Ordering::Relaxed;
        let before = self.asked.load(Relaxed);
        assert!(wait_until(Duration::from_secs(10), || self
            .asked
            .load(Relaxed)
            >= before + n));
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let old = self.old.lock().unwrap();
        old.iter()
            .filter(|t| **t >= since)
            .map(|t| t.duration_since(since))
            .collect()
    }
}
