//! Issue 16, item 1: the admin API — `DELETE /_stowaway/objects/<mount-path>` on its own
//! listener (loopback or a Unix socket, bearer token from an owner-only file) removes a file
//! everywhere as `stowaway rm` does and answers one JSON result per place: 401 without the
//! token, 200 (also when repeated), 503 + Retry-After when a place failed (a retry finishes),
//! `?all_versions=true` for versioned buckets. Also measures its latency against s3s-fs.

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;
#[path = "common/fronts.rs"]
mod fronts;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use faultproxy::{FaultProxy, Version};
use fronts::content;

const BUCKET: &str = "site-media";
const TOKEN: &str = "0123456789abcdef0123456789abcdef-admin";

/// Where the admin API of a test listens.
enum AdminAt {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

impl AdminAt {
    fn listen(&self) -> String {
        match self {
            AdminAt::Tcp(a) => a.to_string(),
            AdminAt::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    fn send(&self, method: &str, target: &str, token: Option<&str>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        match self {
            AdminAt::Tcp(a) => request(*a, method, target, &headers),
            AdminAt::Unix(p) => request_unix(p, method, target, &headers),
        }
    }

    /// `DELETE /_stowaway/objects<path>` with the right token.
    fn delete(&self, path: &str) -> (Response, serde_json::Value) {
        let r = self.send("DELETE", &format!("/_stowaway/objects{path}"), Some(TOKEN));
        let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
        (r, v)
    }
}

/// The `detail` of `location` in an admin answer, with whether it succeeded.
fn place(v: &serde_json::Value, location: &str) -> (bool, String) {
    let r = v["results"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["location"] == location))
        .unwrap_or_else(|| panic!("no {location} in {v}"));
    (
        r["ok"].as_bool().unwrap(),
        r["detail"].as_str().unwrap().to_string(),
    )
}

/// tests/fixtures/rm.toml with the admin API on at `at`, its token in an owner-only file, and
/// `server` lines on top (e.g. `endpoint`).
fn admin_config(w: &World, at: &AdminAt, settle: &str, server: &[(&str, &str)]) -> String {
    let token_file = w.path().join("admin-token");
    write_private(&token_file, format!("{TOKEN}\n"));
    let base = w.config(
        "rm.toml",
        &[
            ("settle", settle),
            ("tombstone_ttl", "1h"),
            ("tombstone_status", "404"),
        ],
    );
    let (listen, file) = (
        format!("\"{}\"", at.listen()),
        format!("\"{}\"", token_file.display()),
    );
    let mut keys = vec![
        ("admin_listen", listen.as_str()),
        ("admin_token_file", file.as_str()),
    ];
    keys.extend_from_slice(server);
    set_keys(&base, "[server]", &keys)
}

fn tcp_admin() -> AdminAt {
    AdminAt::Tcp(format!("127.0.0.1:{}", free_port()).parse().unwrap())
}

fn wait_for_admin(at: &AdminAt, st: &Stowaway) {
    assert!(
        wait_until(Duration::from_secs(10), || match at {
            AdminAt::Tcp(a) => std::net::TcpStream::connect(a).is_ok(),
            AdminAt::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
        }),
        "admin API not listening: {}",
        st.log_text()
    );
}

/// A migrated file (archive + object): the token is required (absent, wrong, another length:
/// 401), only DELETE is allowed, the answer names every place; this process refuses the path
/// at once (its tombstone refresh is an hour away); repeating is a 200 that finds nothing.
#[test]
fn admin_delete_needs_the_token_removes_everywhere_and_repeats_safely() {
    const P: &str = "/static/avatars/u 1.jpg";
    const T: &str = "/_stowaway/objects/static/avatars/u%201.jpg";
    let w = World::site(BUCKET);
    let body = content(20_000);
    write_file(&w.root, "avatars/u 1.jpg", &body);
    let at = tcp_admin();
    let st = w.start(&admin_config(
        &w,
        &at,
        "200ms",
        &[("tombstone_refresh", "\"1h\"")],
    ));
    wait_for_admin(&at, &st);
    assert!(
        wait_until(Duration::from_secs(30), || w.in_archive("avatars/u 1.jpg")),
        "migrated: {}",
        st.log_text()
    );
    assert_eq!(get(st.addr, "/static/avatars/u%201.jpg").status, 302);

    for token in [
        None,
        Some("wrong"),
        Some(&TOKEN[..TOKEN.len() - 1]),
        Some(""),
    ] {
        let r = at.send("DELETE", T, token);
        assert_eq!(r.status, 401, "{token:?}: {r:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = at.send("DELETE", T, Some(&format!("{TOKEN}0")));
    assert_eq!(r.status, 401, "a token with more bytes: {r:?}");
    assert!(
        w.in_archive("avatars/u 1.jpg"),
        "nothing removed without the token"
    );
    assert_eq!(at.send("GET", T, Some(TOKEN)).status, 405);
    assert_eq!(at.send("DELETE", "/elsewhere", Some(TOKEN)).status, 404);
    let (r, v) = at.delete("/other/a.jpg");
    assert_eq!(r.status, 404, "{v}");
    let (r, v) = at.delete("/static/avatars/");
    assert_eq!(r.status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("directory"), "{v}");
    for hostile in [
        "/static/..%2F..%2Fetc/passwd",
        "/static/a%00.jpg",
        "/static/%ff.jpg",
    ] {
        let (r, v) = at.delete(hostile);
        assert_eq!(r.status, 400, "{hostile}: {v}");
    }
    let (r, _) = at.delete("/static/a.jpg?force=1");
    assert_eq!(r.status, 400);

    let (r, v) = at.delete("/static/avatars/u%201.jpg");
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["path"], P, "{v}");
    assert!(
        place(&v, "tombstone").1.starts_with("recorded until "),
        "{v}"
    );
    assert_eq!(place(&v, "root"), (true, "not there".into()), "{v}");
    assert!(place(&v, "archive").1.starts_with("removed "), "{v}");
    assert_eq!(
        place(&v, "s3"),
        (
            true,
            "deleted s3://site-media/static/avatars/u 1.jpg".into()
        )
    );
    assert_eq!(place(&v, "cache"), (true, "not configured".into()));
    assert!(!w.in_archive("avatars/u 1.jpg"));
    assert_eq!(w.s3.get(BUCKET, "static/avatars/u 1.jpg"), None);
    assert!(
        w.s3.list(BUCKET)
            .contains(&"static/.stowaway-tombstones/avatars/u 1.jpg".to_string())
    );
    let r = get(st.addr, "/static/avatars/u%201.jpg");
    assert_eq!(r.status, 404, "refused at once, before any refresh: {r:?}");

    let (r, v) = at.delete("/static/avatars/u%201.jpg");
    assert_eq!(r.status, 200, "repeated: {v}");
    assert_eq!(place(&v, "archive"), (true, "not there".into()));
    assert_eq!(place(&v, "s3"), (true, "not there".into()));
    let metrics = String::from_utf8_lossy(&get(st.addr, "/metrics").body).into_owned();
    assert!(
        metrics.contains("stowaway_admin_deletes_total{result=\"removed\"} 2"),
        "the 401s and 400s are not counted: {metrics}"
    );
    let log = st.log_text();
    assert!(log.contains("admin: removed everywhere"), "{log}");
    assert!(!log.contains(TOKEN), "the token was logged: {log}");
}

/// stowaway's own names are not files to remove: a DELETE naming a `.stowaway-` segment
/// (another path's tombstone, an archive temp copy in flight, a detached file on its way to
/// the archive) is a 400 that removes nothing. Before, it deleted the tombstone object — the
/// removed path came back at the next refresh — and unlinked the temp files.
#[test]
fn admin_delete_never_touches_stowaways_own_names() {
    let w = World::site(BUCKET);
    w.s3.put(BUCKET, "static/.stowaway-tombstones/old.jpg", b"");
    let temp = format!(".stowaway-tmp.{}.1.2", std::process::id());
    write_file(&w.archive, &format!("a/{temp}"), b"half copy");
    let detached = format!("a/.stowaway-rm.{}.0.b.jpg", std::process::id());
    write_file(&w.root, &detached, b"on its way");
    let at = tcp_admin();
    let st = w.start(&admin_config(&w, &at, "1h", &[]));
    wait_for_admin(&at, &st);
    for hostile in [
        "/static/.stowaway-tombstones/old.jpg".to_string(),
        "/static/%2Estowaway-tombstones/old.jpg".to_string(),
        "/static/.stowaway-tombstones%2Fold.jpg".to_string(),
        format!("/static/a/{temp}"),
        format!("/static/{detached}"),
    ] {
        let (r, v) = at.delete(&hostile);
        assert_eq!(r.status, 400, "{hostile}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(".stowaway-"),
            "{hostile}: {v}"
        );
    }
    assert!(
        w.s3.list(BUCKET)
            .contains(&"static/.stowaway-tombstones/old.jpg".to_string()),
        "the tombstone object stays"
    );
    assert!(w.archive.join("a").join(&temp).exists(), "temp copy stays");
    assert!(w.root.join(&detached).exists(), "detached file stays");
    assert!(
        !w.s3
            .list(BUCKET)
            .iter()
            .any(|k| k.contains(".stowaway-tombstones/.stowaway-")),
        "no tombstone of a tombstone: {:?}",
        w.s3.list(BUCKET)
    );
}

/// Under load through nginx in auth mode (verdicts cached for `verdict_ttl` = 1 s): once the
/// DELETE returns no request gets the old bytes, and nginx answers 404 within the verdict
/// cache's second — this process refuses the path at once, with its tombstone refresh an
/// hour away.
#[test]
fn admin_delete_under_load_behind_nginx_auth() {
    const P: &str = "/static/avatars/u2.jpg";
    let w = World::site(BUCKET);
    let body = content(50_000);
    write_file(&w.root, "avatars/u2.jpg", &body);
    let at = tcp_admin();
    let st = w.start(&admin_config(
        &w,
        &at,
        "200ms",
        &[("tombstone_refresh", "\"1h\"")],
    ));
    let nginx = fronts::auth_nginx_in_site(w.path(), &st, &w.path().join("site"));
    wait_for_admin(&at, &st);
    assert!(
        wait_until(Duration::from_secs(30), || w.in_archive("avatars/u2.jpg")
            && !w.in_root("avatars/u2.jpg")),
        "migrated: {}",
        st.log_text()
    );
    let load = fronts::OldBytesLoad::start(nginx.addr, P, &body);
    let (r, v) = at.delete("/static/avatars/u2.jpg");
    let returned = Instant::now();
    assert_eq!(r.status, 200, "{v}");
    assert!(
        wait_until(Duration::from_secs(3), || get(nginx.addr, P).status == 404),
        "404 through nginx within the verdict cache's lifetime: {}",
        st.log_text()
    );
    let late = load.finish(20, returned);
    assert!(
        late.is_empty(),
        "{} requests got the old bytes after the DELETE returned, the first after {:?}",
        late.len(),
        late.first()
    );
}

/// Over a Unix socket, with S3 down: the local copies go, the S3 places are reported failed
/// with 503 and Retry-After; the same DELETE once S3 is back finishes the job.
#[test]
fn admin_delete_with_s3_down_reports_each_place_and_a_retry_finishes() {
    let w = World::site(BUCKET);
    write_file(&w.root, "a b.jpg", b"root copy");
    write_file(&w.archive, "a b.jpg", b"archived copy");
    w.s3.put(BUCKET, "static/a b.jpg", b"object");
    let at = AdminAt::Unix(w.path().join("admin.sock"));
    let st = w.start(&admin_config(&w, &at, "1h", &[]));
    wait_for_admin(&at, &st);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(match &at {
            AdminAt::Unix(p) => p.as_path(),
            AdminAt::Tcp(_) => unreachable!(),
        })
        .unwrap()
        .permissions(),
    );
    assert_eq!(mode & 0o007, 0, "others cannot connect: {mode:o}");

    w.s3.pause();
    let (r, v) = at.delete("/static/a%20b.jpg");
    assert_eq!(r.status, 503, "{v}");
    assert_eq!(r.header("retry-after"), Some("10"));
    assert_eq!(v["ok"], false, "{v}");
    assert!(!place(&v, "tombstone").0, "{v}");
    assert!(place(&v, "root").1.starts_with("removed "), "{v}");
    assert!(place(&v, "archive").1.starts_with("removed "), "{v}");
    let (ok, s3) = place(&v, "s3");
    assert!(
        !ok && s3.starts_with("cannot delete s3://site-media/static/a b.jpg"),
        "{v}"
    );
    assert!(!w.in_root("a b.jpg") && !w.in_archive("a b.jpg"));
    assert_eq!(get(st.addr, "/static/a%20b.jpg").status, 404);

    w.s3.resume();
    let (r, v) = at.delete("/static/a%20b.jpg");
    assert_eq!(r.status, 200, "{v}");
    assert!(
        place(&v, "tombstone").1.starts_with("recorded until "),
        "{v}"
    );
    assert_eq!(place(&v, "s3").1, "deleted s3://site-media/static/a b.jpg");
    assert_eq!(w.s3.get(BUCKET, "static/a b.jpg"), None);
}

/// `server.admin_listen` on a non-loopback address: serve refuses to start (exit 2), naming
/// the key and the fix.
#[test]
fn admin_listen_off_loopback_is_refused() {
    let w = World::site(BUCKET);
    let at = AdminAt::Tcp(format!("0.0.0.0:{}", free_port()).parse().unwrap());
    let mut st = Stowaway::spawn_with(w.path(), &admin_config(&w, &at, "1h", &[]), &[]);
    let mut status = None;
    let exited = wait_until(Duration::from_secs(20), || {
        status = st.proc.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(exited, "serve started anyway: {}", st.log_text());
    st.proc.kill();
    let err = st.log_text();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "`server.admin_listen` = \"{}\": not a loopback address",
            at.listen()
        )),
        "{err}"
    );
    assert!(err.contains("fix: "), "{err}");
}

/// `?all_versions=true` against a versioned bucket (the fault proxy answers ListObjectVersions
/// from planted versions, one a page): every version and delete marker of the key, and no
/// other key, is deleted by VersionId.
#[test]
fn admin_delete_all_versions() {
    let w = World::site(BUCKET);
    w.s3.put(BUCKET, "static/v/a.jpg", b"latest");
    let proxy = FaultProxy::start(&w.s3.endpoint);
    let v = |key: &str, id: &str, marker: bool| Version {
        bucket: BUCKET.into(),
        key: key.into(),
        version_id: id.into(),
        delete_marker: marker,
    };
    proxy.answer_list_object_versions(
        1,
        &[
            v("static/v/a.jpg", "v3", false),
            v("static/v/a.jpg", "dm2", true),
            v("static/v/a.jpg", "v1", false),
            v("static/v/a.jpg.bak", "b1", false),
        ],
    );
    let at = tcp_admin();
    let cfg = admin_config(&w, &at, "1h", &[]).replace(&w.s3.endpoint, &proxy.endpoint);
    let st = w.start(&cfg);
    wait_for_admin(&at, &st);
    let (r, body) = at.delete("/static/v/a.jpg?all_versions=true");
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(
        place(&body, "s3").1,
        "deleted 3 version(s) of s3://site-media/static/v/a.jpg"
    );
    assert_eq!(
        proxy.version_deletes(),
        [
            ("static/v/a.jpg", "v3"),
            ("static/v/a.jpg", "dm2"),
            ("static/v/a.jpg", "v1")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert!(proxy.version_list_requests() >= 3, "paginated");
    assert_eq!(w.s3.get(BUCKET, "static/v/a.jpg"), None);
    let (r, body) = at.delete("/static/v/a.jpg?all_versions=true");
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(place(&body, "s3").1, "not there (no versions)");
}

/// Decide, measure: the latency of a full admin DELETE (tombstone PUT, two local unlinks,
/// HEAD + DELETE of the object) against s3s-fs on loopback, p50 and p99 over N calls.
#[test]
fn admin_delete_latency() {
    const N: usize = 200;
    let w = World::site(BUCKET);
    for i in 0..N {
        write_file(&w.root, &format!("l/{i}.jpg"), b"root");
        write_file(&w.archive, &format!("l/{i}.jpg"), b"archive");
        w.s3.put(BUCKET, &format!("static/l/{i}.jpg"), b"object");
    }
    let at = tcp_admin();
    let st = w.start(&admin_config(&w, &at, "1h", &[]));
    wait_for_admin(&at, &st);
    let mut took = Vec::with_capacity(N);
    for i in 0..N {
        let t = Instant::now();
        let (r, v) = at.delete(&format!("/static/l/{i}.jpg"));
        took.push(t.elapsed());
        assert_eq!(r.status, 200, "{v}");
    }
    took.sort();
    let (p50, p99) = (took[N / 2], took[N * 99 / 100]);
    eprintln!("admin DELETE latency over {N} calls against s3s-fs: p50 {p50:?}, p99 {p99:?}");
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
    assert!(!Path::new(&w.root.join("l/0.jpg")).exists());
}
