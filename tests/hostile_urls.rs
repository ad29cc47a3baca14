//! The hostile-URL corpus: several hundred request targets (tests/corpus/hostile_urls.txt plus
//! families generated here: traversal dots × separators in every encoding, every control byte
//! raw and encoded, long paths and segments), each sent raw through every way a request
//! reaches stowaway:
//!
//! * `direct`: stowaway itself (front = nginx, answers with X-Accel-Redirect);
//! * `direct-sendfile`: stowaway itself (front = lighttpd, answers with X-Sendfile);
//! * `auth-endpoint`: stowaway's `/_stowaway/auth` with the target in `X-Original-URI`;
//! * `nginx-proxy`, `nginx-auth`, `nginx-local-first`: the real nginx with the generated
//!   configs of each mode (local-first must also answer every case with proxy mode's status);
//! * `lighttpd`: the real lighttpd with the generated config (`--mode sendfile`);
//! * `lighttpd-local-first`: the real lighttpd with the default (local-first) config, which
//!   must answer every target with the same status as `lighttpd`.
//!
//! One oracle judges every answer ([`judge`]): no byte of a file outside the roots (marker
//! files beside the root, above it and in the archive folder, /etc/passwd), no 5xx, no
//! injected header line, a 2xx body only ever equal to a file inside the root, redirects only
//! into the mount's bucket prefix for a key without dot segments, and X-Accel-Redirect /
//! X-Sendfile only ever naming a regular file inside the root reached without symlinks.
//! After the run neither stowaway logged a panic, and both still answer.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::*;
use fronts::*;

/// Unique contents of the files outside the root; none may ever appear in an answer.
const MARKERS: &[(&str, &str)] = &[
    ("secret.txt", "MARKER-ABOVE-ROOT-3f9a1c"),
    ("other/outside.txt", "MARKER-BESIDE-ROOT-b27e44"),
    ("archive/archived.txt", "MARKER-IN-ARCHIVE-c81d09"),
    ("archive/ok.jpg", "MARKER-ARCHIVED-TWIN-5e6f12"),
    ("archive/sub/in.jpg", "MARKER-ARCHIVED-SUB-0a7b3d"),
    ("static-archive/archived.txt", "MARKER-OTHER-PREFIX-9c4e88"),
    ("staticx/x.txt", "MARKER-PREFIX-LOOKALIKE-77d2aa"),
];

/// A line every /etc/passwd has.
const PASSWD: &[u8] = b"root:x:0:0:";

/// Files inside the root: the only bodies a 2xx answer may carry.
const ROOT_FILES: &[(&str, &str)] = &[
    ("ok.jpg", "ROOT-FILE ok.jpg: fine to serve"),
    ("sub/in.jpg", "ROOT-FILE sub/in.jpg: fine to serve"),
    ("café.jpg", "ROOT-FILE café.jpg (precomposed)"),
    ("a b.jpg", "ROOT-FILE a b.jpg"),
    ("%2e%2e/secret.txt", "ROOT-FILE literal %2e%2e directory"),
];

/// Header names that the corpus tries to inject.
const INJECTED: &[&str] = &["x-injected", "set-cookie", "x-evil"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Direct,
    DirectSendfile,
    AuthEndpoint,
    NginxProxy,
    NginxAuth,
    NginxLocalFirst,
    Lighttpd,
    LighttpdLocalFirst,
}

const MODES: &[Mode] = &[
    Mode::Direct,
    Mode::DirectSendfile,
    Mode::AuthEndpoint,
    Mode::NginxProxy,
    Mode::NginxAuth,
    Mode::NginxLocalFirst,
    Mode::Lighttpd,
    Mode::LighttpdLocalFirst,
];

/// One corpus entry.
struct Case {
    family: String,
    target: Vec<u8>,
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad escape in {s}")));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The corpus file plus the generated families.
fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let text = include_str!("corpus/hostile_urls.txt");
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (family, target) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("corpus line without a tab: {line:?}"));
        cases.push(Case {
            family: family.to_string(),
            target: unescape(target),
        });
    }
    let mut add = |family: &str, target: Vec<u8>| {
        cases.push(Case {
            family: family.to_string(),
            target,
        })
    };
    // Traversal: every spelling of "..", every spelling of "/", one and two levels up.
    let dots = [
        "..",
        "%2e%2e",
        "%2E%2E",
        "%2e.",
        ".%2e",
        "%2E.",
        "%252e%252e",
        "%25252e%25252e",
        "%c0%ae%c0%ae",
        "%C0%AE%C0%AE",
        "%e0%80%ae%e0%80%ae",
        "%f0%80%80%ae%f0%80%80%ae",
        "%c0%2e%c0%2e",
        "%c0.%c0.",
        "..%00",
        "..%01",
        ". .",
        "...",
        "..%20",
        "%20..",
        "..%09",
    ];
    let seps = [
        "/",
        "%2f",
        "%2F",
        "%252f",
        "%25252f",
        "\\",
        "%5c",
        "%5C",
        "%255c",
        "%c0%af",
        "%e0%80%af",
        "%c1%9c",
        "//",
        "/./",
        "%2f%2f",
        "/%2e/",
        ";/",
    ];
    for d in dots {
        for s in seps {
            add(
                "traversal",
                format!("/static/{d}{s}secret.txt").into_bytes(),
            );
            add(
                "traversal",
                format!("/static/sub/{d}{s}{d}{s}other{s}outside.txt").into_bytes(),
            );
        }
        add(
            "traversal",
            format!("/static/{d}/archive/archived.txt").into_bytes(),
        );
        add(
            "traversal",
            format!("/static/{d}/{d}/{d}/{d}/{d}/{d}/{d}/{d}/etc/passwd").into_bytes(),
        );
    }
    // Every C0 control byte and DEL, raw (the client sends them as they are) and encoded, and
    // the C1 controls encoded as UTF-8.
    for b in (0u8..0x20).chain([0x7f]) {
        let mut raw = b"/static/a".to_vec();
        raw.push(b);
        raw.extend_from_slice(b"b.jpg");
        add("control-raw", raw);
        add(
            "control-enc",
            format!("/static/a%{b:02x}b.jpg").into_bytes(),
        );
        add(
            "control-enc",
            format!("/static/..%{b:02X}/secret.txt").into_bytes(),
        );
    }
    for c in 0x80u32..0xa0 {
        let ch = char::from_u32(c).unwrap();
        let mut enc = String::new();
        for byte in ch.to_string().bytes() {
            enc.push_str(&format!("%{byte:02x}"));
        }
        add("control-c1", format!("/static/a{enc}b.jpg").into_bytes());
    }
    // Long paths and segments, around every limit.
    for n in [254usize, 255, 256, 1000, 4000] {
        add("long", format!("/static/{}", "a".repeat(n)).into_bytes());
        add(
            "long",
            format!("/static/{}/../../secret.txt", "%2e".repeat(n / 3)).into_bytes(),
        );
    }
    for total in [4095usize, 4096, 4097, 8200, 20_000] {
        let mut t = "/static/".to_string();
        while t.len() + 2 <= total {
            t.push_str("a/");
        }
        while t.len() < total {
            t.push('b');
        }
        add("long", t.into_bytes());
    }
    for k in [1023usize, 1024, 1025] {
        // A key of exactly k bytes, in segments of 200.
        let mut key = String::new();
        while key.len() < k {
            if !key.is_empty() && key.len() % 201 == 200 {
                key.push('/');
            } else {
                key.push('k');
            }
        }
        add("long", format!("/static/{key}").into_bytes());
    }
    add(
        "long",
        format!("/static/{}secret.txt", "../".repeat(1000)).into_bytes(),
    );
    add(
        "long",
        format!("/static/{}secret.txt", "%2e%2e/".repeat(500)).into_bytes(),
    );
    add(
        "long",
        format!(
            "/static/{}{}secret.txt",
            "a/".repeat(1000),
            "../".repeat(1001)
        )
        .into_bytes(),
    );
    add(
        "long",
        format!("/static/{}ok.jpg", "./".repeat(2000)).into_bytes(),
    );
    add(
        "long",
        format!("{}static/ok.jpg", "/".repeat(3000)).into_bytes(),
    );
    add(
        "long",
        format!("/static/ok.jpg?{}", "q".repeat(10_000)).into_bytes(),
    );
    add(
        "long",
        format!("/static/missing.jpg?{}", "%0d%0a".repeat(1000)).into_bytes(),
    );
    cases
}

/// Control cases: valid requests that must work in every mode, so that the oracle is known to
/// see what a front server sends (a broken site would pass every hostile case vacuously).
const CONTROLS: &[(&str, &str)] = &[
    ("/static/ok.jpg", "ok.jpg"),
    ("/static/sub/in.jpg", "sub/in.jpg"),
    ("/static/caf%C3%A9.jpg", "café.jpg"),
    ("/static/a%20b.jpg", "a b.jpg"),
];

struct Site {
    _tmp: tempfile::TempDir,
    site: PathBuf,
    root: PathBuf,
    s3: S3Server,
    st: Stowaway,
    st_sendfile: Stowaway,
    nginx_proxy: Nginx,
    nginx_auth: Nginx,
    nginx_local: Nginx,
    lighttpd: Lighttpd,
    lighttpd_local: Lighttpd,
}

fn site() -> Site {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let site = dir.join("site");
    let root = site.join("static");
    let archive = site.join("archive");
    std::fs::create_dir_all(&root).unwrap();
    for (rel, m) in MARKERS {
        write_file(&site, rel, m.as_bytes());
    }
    for (rel, c) in ROOT_FILES {
        write_file(&root, rel, c.as_bytes());
    }
    let link = |to: &Path, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
    link(&site.join("other/outside.txt"), "link-out.txt");
    link(Path::new("../secret.txt"), "rel-out.txt");
    link(&site.join("other"), "linkdir");
    link(&archive.join("archived.txt"), "link-archive.txt");
    link(&archive, "linkarch");
    link(Path::new("/etc/passwd"), "link-etc");
    link(Path::new("/"), "link-root");
    link(Path::new("loop"), "loop");
    link(Path::new(".."), "sub/up");
    let archive_line = format!("archive_root = \"{}\"\n", archive.display());
    let st = Stowaway::start(&dir, &config(&s3, &root, "", &archive_line));
    let st_sendfile = Stowaway::start(
        &dir,
        &config(&s3, &root, "front = \"lighttpd\"", &archive_line),
    );
    let nginx_proxy = proxy_nginx(&dir, &st);
    let nginx_auth = auth_nginx(&dir, &st);
    let nginx_local = local_nginx(&dir, &st);
    let lighttpd = lighttpd_sendfile_front(&dir, &st_sendfile);
    let lighttpd_local = lighttpd_front(&dir, &st_sendfile);
    Site {
        _tmp: tmp,
        site,
        root,
        s3,
        st,
        st_sendfile,
        nginx_proxy,
        nginx_auth,
        nginx_local,
        lighttpd,
        lighttpd_local,
    }
}

impl Site {
    fn addr(&self, mode: Mode) -> SocketAddr {
        match mode {
            Mode::Direct | Mode::AuthEndpoint => self.st.addr,
            Mode::DirectSendfile => self.st_sendfile.addr,
            Mode::NginxProxy => self.nginx_proxy.addr,
            Mode::NginxAuth => self.nginx_auth.addr,
            Mode::NginxLocalFirst => self.nginx_local.addr,
            Mode::Lighttpd => self.lighttpd.addr,
            Mode::LighttpdLocalFirst => self.lighttpd_local.addr,
        }
    }

    /// Sends `target` in `mode`; `None` if the mode cannot carry it (CR or LF in a header).
    fn send(&self, mode: Mode, method: &str, target: &[u8]) -> Option<Vec<u8>> {
        let addr = self.addr(mode);
        if mode == Mode::AuthEndpoint {
            if target.iter().any(|&b| b == b'\r' || b == b'\n') {
                return None;
            }
            return Some(raw_exchange(
                addr,
                "GET",
                b"/_stowaway/auth",
                &[
                    ("X-Original-URI", target),
                    ("X-Original-Method", method.as_bytes()),
                ],
            ));
        }
        Some(raw_exchange(addr, method, target, &[]))
    }

    fn bucket_prefix(&self) -> String {
        format!("{}/site-media/static/", self.s3.endpoint)
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `Err(message)` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A relative key as decoded from a URL or header: no empty, `.` or `..` segment, no control
/// character, no backslash.
fn check_clean_key(key: &[u8], what: &str) -> Result<(), String> {
    let Ok(key) = std::str::from_utf8(key) else {
        return Err(format!("{what}: key is not UTF-8"));
    };
    ensure!(!key.is_empty(), "{what}: empty key");
    for seg in key.split('/') {
        ensure!(
            !seg.is_empty() && seg != "." && seg != "..",
            "{what}: dot or empty segment in {key:?}"
        );
        ensure!(
            !seg.chars().any(char::is_control) && !seg.contains('\\'),
            "{what}: control character or backslash in {key:?}"
        );
    }
    Ok(())
}

/// Only unreserved characters, `/` and percent escapes (plus the query characters of a URL):
/// what stowaway promises for the targets it sends.
fn check_url_safe(v: &str, query_ok: bool, what: &str) -> Result<(), String> {
    ensure!(
        v.bytes().all(|b| b.is_ascii_alphanumeric()
            || b"-._~/%".contains(&b)
            || (query_ok && b"?&=:".contains(&b))),
        "{what}: unexpected character in {v:?}"
    );
    Ok(())
}

/// The file `root/key` is a regular file inside the root, reached without any symlink.
fn check_inside_root(root: &Path, key: &str, what: &str) -> Result<(), String> {
    let mut p = root.to_path_buf();
    for seg in key.split('/') {
        p.push(seg);
        let m = std::fs::symlink_metadata(&p)
            .map_err(|e| format!("{what}: {} does not exist: {e}", p.display()))?;
        ensure!(
            !m.file_type().is_symlink(),
            "{what}: {} is a symlink",
            p.display()
        );
    }
    ensure!(
        std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()),
        "{what}: not a regular file"
    );
    let canon = std::fs::canonicalize(&p).map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        canon.starts_with(std::fs::canonicalize(root).unwrap()),
        "{what}: {} is outside the root",
        canon.display()
    );
    Ok(())
}

/// The oracle. `Err` names the case, the mode and the violation. `Ok(status)` otherwise (0 when
/// the server closed the connection without an HTTP/1.x answer).
fn judge(s: &Site, mode: Mode, method: &str, target: &[u8], raw: &[u8]) -> Result<u16, String> {
    let what = format!("[{mode:?} {method}] {:?}", String::from_utf8_lossy(target));
    // 1. No byte from outside the roots, anywhere in what came back.
    for (rel, m) in MARKERS {
        ensure!(
            !raw.windows(m.len()).any(|w| w == m.as_bytes()),
            "{what}: LEAKED site/{rel}:\n{}",
            String::from_utf8_lossy(raw)
        );
    }
    ensure!(
        !raw.windows(PASSWD.len()).any(|w| w == PASSWD),
        "{what}: LEAKED /etc/passwd"
    );
    let Some(r) = try_parse_response(raw, method == "HEAD") else {
        // Dropped without an answer (or an HTTP/0.9 one): nothing leaked, checked above.
        return Ok(0);
    };
    // 2. Never a server error.
    ensure!(r.status < 500, "{what}: {}", r.raw_head);
    // 3. A well-formed header block: no bare CR or LF, no injected header names.
    for line in r.raw_head.split("\r\n").skip(1) {
        ensure!(
            !line.contains('\r') && !line.contains('\n'),
            "{what}: bare CR/LF in a header line: {:?}",
            r.raw_head
        );
        let Some((name, _)) = line.split_once(':') else {
            return Err(format!("{what}: header line without a colon: {line:?}"));
        };
        ensure!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)),
            "{what}: odd header name {name:?}"
        );
        let lname = name.to_ascii_lowercase();
        ensure!(
            !INJECTED.contains(&lname.as_str()),
            "{what}: INJECTED header {line:?}"
        );
    }
    // 4. Redirects go into the mount's bucket prefix, for a clean key (or, from a front
    //    server, to its own origin: nginx adds the slash to `/static`).
    let bucket = s.bucket_prefix();
    let own = format!("http://{}/", s.addr(mode));
    let front = matches!(
        mode,
        Mode::NginxProxy
            | Mode::NginxAuth
            | Mode::NginxLocalFirst
            | Mode::Lighttpd
            | Mode::LighttpdLocalFirst
    );
    for h in ["location", "x-s3-location"] {
        let values: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(h))
            .map(|(_, v)| v.as_str())
            .collect();
        ensure!(values.len() <= 1, "{what}: several {h}: {}", r.raw_head);
        if let Some(loc) = values.first() {
            if front
                && h == "location"
                && let Some(path) = loc.strip_prefix(&own)
            {
                check_url_safe(path, true, &what)?;
                continue;
            }
            let Some(rest) = loc.strip_prefix(&bucket) else {
                return Err(format!("{what}: {h} outside the bucket prefix: {loc}"));
            };
            let path = rest.split('?').next().unwrap();
            check_url_safe(rest, true, &format!("{what} {h}"))?;
            check_clean_key(&percent_decode(path), &format!("{what} {h}"))?;
        }
    }
    // 5. Local answers name a regular file inside the root, reached without symlinks.
    for h in ["x-accel-redirect", "x-sendfile"] {
        if let Some(v) = r.header(h) {
            ensure!(
                !front,
                "{what}: the front server leaked {h}: {}",
                r.raw_head
            );
            check_url_safe(v, false, &what)?;
            let Ok(decoded) = String::from_utf8(percent_decode(v)) else {
                return Err(format!("{what}: {h} {v} is not UTF-8"));
            };
            let prefix = if h == "x-accel-redirect" {
                "/_stowaway_local/static/".to_string()
            } else {
                format!("{}/", s.root.display())
            };
            let Some(key) = decoded.strip_prefix(&prefix) else {
                return Err(format!("{what}: {h} {v} outside the root"));
            };
            check_clean_key(key.as_bytes(), &what)?;
            check_inside_root(&s.root, key, &what)?;
        }
    }
    // 6. A successful body is exactly a file inside the root.
    if (200..300).contains(&r.status) && !r.body.is_empty() {
        ensure!(
            ROOT_FILES.iter().any(|(_, c)| r.body == c.as_bytes()),
            "{what}: a 2xx body that is no file of the root: {:?}",
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(r.status)
}

#[test]
fn hostile_urls_in_every_mode_never_leave_the_root() {
    let s = site();
    let cases = corpus();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    // The controls work everywhere (and their bodies are what a leak would look like).
    for (t, rel) in CONTROLS {
        let want = ROOT_FILES.iter().find(|(r, _)| r == rel).unwrap().1;
        for &mode in MODES {
            let raw = s.send(mode, "GET", t.as_bytes()).unwrap();
            let status = judge(&s, mode, "GET", t.as_bytes(), &raw).unwrap();
            let r = try_parse_response(&raw, false).unwrap();
            match mode {
                Mode::Direct | Mode::DirectSendfile | Mode::AuthEndpoint => {
                    assert_eq!(status, 200, "{mode:?} {t}: {}", r.raw_head)
                }
                _ => assert_eq!(
                    (status, r.body.as_slice()),
                    (200, want.as_bytes()),
                    "{mode:?} {t}: {}",
                    r.raw_head
                ),
            }
        }
    }
    // Sanity of the oracle itself: a body holding a marker is caught.
    let fake = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{}",
        MARKERS[0].1
    );
    assert!(
        judge(&s, Mode::NginxProxy, "GET", b"/x", fake.as_bytes()).is_err(),
        "the oracle must catch a leaked marker"
    );
    let injected = "HTTP/1.1 302 Found\r\nLocation: x\r\nX-Injected: yes\r\n\r\n";
    assert!(judge(&s, Mode::Direct, "GET", b"/x", injected.as_bytes()).is_err());

    let mut by_mode: BTreeMap<Mode, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut by_family: BTreeMap<String, usize> = BTreeMap::new();
    let mut sent = 0usize;
    let mut failures = Vec::new();
    for c in &cases {
        *by_family.entry(c.family.clone()).or_default() += 1;
        let mut statuses = BTreeMap::new();
        for &mode in MODES {
            for method in ["GET", "HEAD"] {
                // HEAD for the families where it could differ; GET for all.
                if method == "HEAD" && !matches!(c.family.as_str(), "symlink" | "inject") {
                    continue;
                }
                let Some(raw) = s.send(mode, method, &c.target) else {
                    continue;
                };
                sent += 1;
                match judge(&s, mode, method, &c.target, &raw) {
                    Ok(status) => {
                        *by_mode.entry(mode).or_default().entry(status).or_default() += 1;
                        statuses.insert((mode, method), status);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        // Local-first answers exactly as the mode that asks stowaway for everything (only where
        // the front server sends a file from disk itself does the path differ).
        for (asks, local) in [
            (Mode::NginxProxy, Mode::NginxLocalFirst),
            (Mode::Lighttpd, Mode::LighttpdLocalFirst),
        ] {
            for method in ["GET", "HEAD"] {
                let want = statuses.get(&(asks, method));
                let got = statuses.get(&(local, method));
                if want != got {
                    failures.push(format!(
                        "[{local:?} {method}] {:?}: answered {got:?}, {asks:?} {want:?}",
                        String::from_utf8_lossy(&c.target)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sent} answers break the oracle:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nobody panicked, everybody still answers.
    let mut st = s.st;
    let mut st2 = s.st_sendfile;
    for (name, p) in [("stowaway", &mut st), ("stowaway-sendfile", &mut st2)] {
        assert!(
            p.proc.child.try_wait().unwrap().is_none(),
            "{name} exited: {}",
            p.log_text()
        );
        let log = p.log_text();
        assert!(!log.contains("panicked"), "{name} panicked:\n{log}");
        assert_eq!(get(p.addr, "/healthz").status, 200);
    }
    for (name, l) in [
        ("nginx-proxy", s.nginx_proxy.error_log()),
        ("nginx-auth", s.nginx_auth.error_log()),
        ("nginx-local-first", s.nginx_local.error_log()),
    ] {
        assert!(
            !l.contains("upstream prematurely closed") && !l.contains("[alert]"),
            "{name}: {l}"
        );
    }
    eprintln!(
        "HOSTILE: {} cases ({}) × {} modes = {sent} requests (+{} control requests), 0 leaks",
        cases.len(),
        by_family
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        MODES.len(),
        CONTROLS.len() * MODES.len()
    );
    for (mode, statuses) in &by_mode {
        eprintln!("HOSTILE {mode:?}: status → count {statuses:?} (0 = closed without an answer)");
    }
    let _ = &s.site;
}
