//! Issue 15: the hot-object cache, end to end. Real nginx (local-first, auth) and lighttpd run
//! the configs `stowaway gen-config` writes; S3 is s3s-fs behind the fault proxy, which counts
//! every GET, so "the S3 side sees no further GET" is counted where it happens.

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;
#[path = "common/fronts.rs"]
mod fronts;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use faultproxy::{Fault, FaultProxy};
use fronts::*;
use sha2::Digest;

const WAIT: Duration = Duration::from_secs(20);

/// One stowaway with a cached mount, its S3 behind the fault proxy.
struct Cached {
    dir: tempfile::TempDir,
    s3: S3Server,
    proxy: FaultProxy,
    root: PathBuf,
    cache: PathBuf,
    config: String,
    st: Stowaway,
}

fn cached(server_extra: &str, mount_extra: &str, revalidate: &str) -> Cached {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    cached_in(
        dir,
        cache,
        server_extra,
        mount_extra,
        revalidate,
        "64MiB",
        "",
    )
}

fn cached_in(
    dir: tempfile::TempDir,
    cache: PathBuf,
    server_extra: &str,
    mount_extra: &str,
    revalidate: &str,
    max_size: &str,
    cache_extra: &str,
) -> Cached {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let proxy = FaultProxy::start(&s3.endpoint);
    let root = dir.path().join("site/static");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let config = fixture(
        "cache.toml",
        &[
            ("server_extra", server_extra),
            ("mount_extra", mount_extra),
            ("region", REGION),
            ("endpoint", &proxy.endpoint),
            ("root", &root.display().to_string()),
            ("cache", &cache.display().to_string()),
            ("revalidate", revalidate),
            ("max_size", max_size),
            ("cache_extra", cache_extra),
        ],
    );
    let st = Stowaway::start(dir.path(), &config);
    Cached {
        dir,
        s3,
        proxy,
        root,
        cache,
        config,
        st,
    }
}

impl Cached {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `stowaway_cache_<name>{mount="/static/"}` from /metrics.
    fn metric(&self, name: &str) -> u64 {
        let r = get(self.st.addr, "/metrics");
        let text = String::from_utf8_lossy(&r.body).to_string();
        let key = format!("stowaway_cache_{name}{{mount=\"/static/\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Every file under the cache directory but the journal and the stats file.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(&self.cache).into_iter().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().is_file()
                && name != ".stowaway-cache.journal"
                && name != ".stowaway-cache.stats"
            {
                out.push(
                    e.path()
                        .strip_prefix(&self.cache)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
        out.sort();
        out
    }

    fn gets(&self, key: &str) -> usize {
        self.proxy
            .requests_to("GET", &format!("/site-media/static/{key}"))
    }

    /// Misses through `front` until `key` is in the cache (each answered with the 302).
    #[track_caller]
    fn warm(&self, front: SocketAddr, key: &str) {
        let path = format!("/static/{key}");
        let ok = wait_until(WAIT, || {
            if self.cache.join(key).is_file() {
                return true;
            }
            let r = get(front, &path);
            assert_eq!(r.status, 302, "a miss is a redirect: {r:?}");
            std::thread::sleep(Duration::from_millis(100));
            self.cache.join(key).is_file()
        });
        assert!(ok, "{key} cached: {}", self.st.log_text());
    }

    /// Waits until `n` more revalidation rounds have finished (each leaves the stats file
    /// anew, by rename: a new inode). The tests that call it space rounds a second apart at
    /// most, so a round must come within 5 s (the default `check_interval` is 10 s).
    #[track_caller]
    fn rounds(&self, n: usize) {
        use std::os::unix::fs::MetadataExt;
        let stamp = || {
            std::fs::metadata(self.cache.join(".stowaway-cache.stats"))
                .map(|m| (m.ino(), m.mtime_nsec(), m.mtime()))
                .ok()
        };
        for _ in 0..n {
            let before = stamp();
            assert!(
                wait_until(Duration::from_secs(5), || stamp().is_some()
                    && stamp() != before),
                "no revalidation round: {}",
                self.st.log_text()
            );
        }
    }

    /// `stowaway status --json`.
    fn status(&self) -> serde_json::Value {
        let out = stowaway_cmd()
            .args(["status", "--json", "--config"])
            .arg(&self.st.config)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn restart(&mut self) {
        self.st.proc.kill();
        self.st = Stowaway::start(self.dir.path(), &self.config);
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The cached object answered by `front` exactly like a local file: same bytes, Range 206,
/// conditional 304; and no further GET reaches S3.
#[track_caller]
fn assert_served_from_cache(c: &Cached, front: SocketAddr, target: &str, key: &str, body: &[u8]) {
    let gets = c.gets(key);
    let r = get(front, target);
    assert_eq!(r.status, 200, "{r:?}\n{}", c.st.log_text());
    assert_eq!(sha(&r.body), sha(body), "exact bytes");
    let r = request(front, "GET", target, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, body[100..200]);
    let (etag, modified) = (
        r.header("etag").map(str::to_string),
        r.header("last-modified").map(str::to_string),
    );
    let cond = match (&etag, &modified) {
        (Some(e), _) => ("If-None-Match", e.clone()),
        (None, Some(m)) => ("If-Modified-Since", m.clone()),
        (None, None) => panic!("no validator: {r:?}"),
    };
    let r = request(front, "GET", target, &[(cond.0, &cond.1)]);
    assert_eq!(r.status, 304, "{r:?}");
    let r = request(front, "HEAD", target, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(c.gets(key), gets, "no S3 GET for a cached object");
}

#[test]
fn nginx_local_first_serves_a_popular_object_from_the_cache() {
    let c = cached("", "", "1h");
    let body = bytes(1, 300_000);
    c.s3.put_migrated("site-media", "static/hot/photo.jpg", &body);
    c.s3.put_migrated("site-media", "static/cold.jpg", b"cold");
    let nginx = local_nginx(c.path(), &c.st);
    let conf = gen_config(&c.st, &["nginx", "--mode", "local-first"]);
    assert!(conf.contains("location @stowaway_"), "{conf}");
    assert!(
        conf.contains(&format!("root {};", c.cache.display())),
        "{conf}"
    );

    // One request is not popular: still a redirect, nothing cached.
    assert_eq!(get(nginx.addr, "/static/cold.jpg").status, 302);
    c.warm(nginx.addr, "hot/photo.jpg");
    assert_eq!(c.gets("hot/photo.jpg"), 1, "one fill, one GET");
    assert_served_from_cache(
        &c,
        nginx.addr,
        "/static/hot/photo.jpg",
        "hot/photo.jpg",
        &body,
    );
    for _ in 0..5 {
        assert_eq!(get(nginx.addr, "/static/hot/photo.jpg").status, 200);
    }
    assert_eq!(c.gets("hot/photo.jpg"), 1, "the S3 side saw one GET in all");
    assert_eq!(c.gets("cold.jpg"), 0, "one-hit wonders are not filled");
    assert_eq!(
        c.metric("hits_total"),
        0,
        "local-first hits never reach stowaway"
    );
    assert_eq!(c.files(), ["hot/photo.jpg"]);
    // Counted just after the rename that made the file visible.
    assert!(wait_until(WAIT, || c.metric("fills_total") == 1
        && c.metric("bytes") >= 300_000));
    // A local file always wins over the cache: within open_file_cache_valid, since nginx
    // remembers the root's misses in a cached mount (benches case 12); meanwhile only the
    // cached copy's exact bytes.
    write_file(&c.root, "hot/photo.jpg", b"local bytes");
    let written = Instant::now();
    assert!(wait_until(WAIT, || {
        let r = get(nginx.addr, "/static/hot/photo.jpg");
        assert!(
            r.body == body || r.body == b"local bytes",
            "neither copy: {}",
            r.status
        );
        r.body == b"local bytes"
    }));
    let bound = Duration::from_secs(stowaway::front::OPEN_FILE_CACHE_VALID_SECS + 1);
    assert!(
        written.elapsed() < bound,
        "the local file won only after {:?}",
        written.elapsed()
    );
    // The cache's own files are never served.
    assert_eq!(
        get(nginx.addr, "/static/.stowaway-cache.journal").status,
        404
    );
}

/// In local-first mode nginx answers cache hits without stowaway; the revalidation round finds
/// them by the files' access times (a read since the last round counts once), so the policy
/// and `status` still learn of them.
#[test]
fn local_first_hits_are_learnt_from_access_times() {
    // Rounds every second (by default 10 s apart; `revalidate` alone: 15 minutes).
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cached_in(dir, cache, "", "", "1h", "64MiB", "check_interval = \"1s\"");
    let body = bytes(4, 120_000);
    c.s3.put_migrated("site-media", "static/seen/a.jpg", &body);
    let nginx = local_nginx(c.path(), &c.st);
    c.warm(nginx.addr, "seen/a.jpg");
    c.rounds(2);
    assert_eq!(c.metric("front_reads_total"), 0, "a fill is not a read");
    for _ in 0..3 {
        let r = get(nginx.addr, "/static/seen/a.jpg");
        assert_eq!((r.status, sha(&r.body)), (200, sha(&body)));
    }
    assert!(
        wait_until(WAIT, || c.metric("front_reads_total") >= 1),
        "nginx's reads of the cached file were never noticed: {}",
        c.st.log_text()
    );
    c.rounds(2);
    let n = c.metric("front_reads_total");
    assert!(n <= 3, "three reads counted {n} times");
    c.rounds(3);
    assert_eq!(
        c.metric("front_reads_total"),
        n,
        "a read is counted once (its access time is set back)"
    );
    assert_eq!(get(nginx.addr, "/static/seen/a.jpg").status, 200);
    assert!(wait_until(WAIT, || c.metric("front_reads_total") == n + 1));
    assert_eq!(c.metric("hits_total"), 0, "the hits never reached stowaway");
    let v = c.status();
    let cache = &v["caches"][0];
    assert_eq!(cache["front_reads"], n + 1, "{v}");
    assert_eq!(cache["s3_gets_avoided"], n + 1, "{v}");
    assert_eq!(cache["egress_bytes_avoided"], (n + 1) * 120_000, "{v}");
}

/// On a `noatime` file system reads leave no trace: stowaway says so at start-up, naming the
/// directory and the fix, and counts nothing (it degrades to learning from misses only).
#[test]
fn a_noatime_cache_directory_is_named_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cachefs");
    let Some(fs) = Tmpfs::mount(&cache, "8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    fs.remount("noatime");
    let c = cached_in(dir, cache, "", "", "1s", "4MiB", "");
    let body = bytes(5, 50_000);
    c.s3.put_migrated("site-media", "static/n.jpg", &body);
    let nginx = local_nginx(c.path(), &c.st);
    c.warm(nginx.addr, "n.jpg");
    for _ in 0..3 {
        assert_eq!(get(nginx.addr, "/static/n.jpg").body, body);
    }
    c.rounds(3);
    assert_eq!(c.metric("front_reads_total"), 0);
    let log = c.st.log_text();
    assert!(
        log.contains("mounted noatime") && log.contains("cachefs") && log.contains("relatime"),
        "{log}"
    );
}

#[test]
fn nginx_auth_mode_serves_cached_objects_only_after_a_positive_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let access = access_section(dir.path(), "k1");
    let cache = dir.path().join("cache");
    let c = cached_in(dir, cache, "", &access, "1h", "64MiB", "");
    let body = bytes(2, 200_000);
    c.s3.put_migrated("site-media", "static/private/doc.pdf", &body);
    let nginx = auth_nginx(c.path(), &c.st);
    let signed = sign_link(&c.st, "/static/private/doc.pdf", &["--ttl", "1h"]);
    // Unsigned: refused, and no fill is started for it.
    for _ in 0..3 {
        assert_eq!(get(nginx.addr, "/static/private/doc.pdf").status, 403);
    }
    assert_eq!(c.metric("misses_total"), 0);
    let ok = wait_until(WAIT, || {
        let r = get(nginx.addr, &signed);
        r.status == 200 || {
            assert_eq!(r.status, 302, "{r:?}");
            false
        }
    });
    assert!(ok, "cached after min_hits: {}", c.st.log_text());
    assert_served_from_cache(&c, nginx.addr, &signed, "private/doc.pdf", &body);
    assert!(
        c.metric("hits_total") >= 4,
        "auth mode: stowaway sees the hits"
    );
    // Cached, but without a valid link still refused.
    assert_eq!(get(nginx.addr, "/static/private/doc.pdf").status, 403);
    let tampered = signed.replace("/doc.pdf", "/doc.pdf?x=1&");
    assert_ne!(get(nginx.addr, &tampered).status, 200);
    // The internal cache location cannot be reached from outside.
    let r = get(nginx.addr, "/_stowaway_local/@cache/static/private/doc.pdf");
    assert_ne!(r.status, 200, "{r:?}");
}

#[test]
fn failed_fills_leave_nothing_and_never_hold_a_request() {
    let c = cached("", "", "1h");
    let nginx = local_nginx(c.path(), &c.st);
    let cases: &[(&str, Fault)] = &[
        ("corrupt.jpg", Fault::Corrupt),
        ("corrupt-etag.jpg", Fault::Corrupt),
        ("truncated.jpg", Fault::Truncate),
        ("s3-error.jpg", Fault::Status500),
        ("s3-down.jpg", Fault::ResetBefore),
    ];
    for (i, (key, fault)) in cases.iter().enumerate() {
        let body = bytes(10 + i as u64, 150_000);
        if key.contains("etag") {
            // Not uploaded by stowaway: no x-amz-meta-sha256, the MD5 ETag is the check.
            c.s3.put("site-media", &format!("static/{key}"), &body);
        } else {
            c.s3.put_migrated("site-media", &format!("static/{key}"), &body);
        }
        let failures = c.metric("fill_failures_total");
        c.proxy.set(1.0, &[*fault], &["GET"]);
        let ok = wait_until(WAIT, || {
            assert_eq!(get(nginx.addr, &format!("/static/{key}")).status, 302);
            c.metric("fill_failures_total") > failures
        });
        assert!(ok, "{fault:?}: the fill fails: {}", c.st.log_text());
        let mut earlier: Vec<String> = cases[..i].iter().map(|(k, _)| k.to_string()).collect();
        earlier.sort();
        assert_eq!(
            c.files(),
            earlier,
            "{fault:?}: nothing left of the failed fill"
        );
        assert_eq!(get(nginx.addr, &format!("/static/{key}")).status, 302);
        c.proxy.off();
        // Straight to stowaway: nginx's redirect cache now answers these misses itself.
        c.warm(c.st.addr, key);
        assert_eq!(get(nginx.addr, &format!("/static/{key}")).body, body);
    }
    // Slow S3: the fill takes seconds, every request meanwhile gets its 302 at once.
    let body = bytes(20, 100_000);
    c.s3.put_migrated("site-media", "static/slow.jpg", &body);
    c.proxy.set_slow(Duration::from_secs(3));
    c.proxy.set(1.0, &[Fault::Slow], &["GET"]);
    let mut worst = Duration::ZERO;
    let ok = wait_until(WAIT, || {
        let t = Instant::now();
        let r = get(c.st.addr, "/static/slow.jpg");
        worst = worst.max(t.elapsed());
        r.status == 200
    });
    assert!(ok, "filled in the end: {}", c.st.log_text());
    assert!(
        worst < Duration::from_secs(2),
        "a miss never waits for the fill: {worst:?}"
    );
    assert_eq!(
        c.gets("slow.jpg"),
        1,
        "one fill per key while many misses came in"
    );
    assert_eq!(get(nginx.addr, "/static/slow.jpg").body, body);
}

#[test]
fn replaced_objects_are_never_served_stale() {
    let c = cached("", "", "1s");
    let nginx = local_nginx(c.path(), &c.st);
    let v1 = bytes(30, 120_000);
    c.s3.put_migrated("site-media", "static/r.jpg", &v1);
    c.warm(nginx.addr, "r.jpg");
    assert_eq!(get(nginx.addr, "/static/r.jpg").body, v1);

    // The web app writes new bytes under the same name; the uploader replaces the object and
    // drops the cached copy before the local file goes — and waits until nginx's kept
    // descriptor of it (open_file_cache) is stale, so a client loop never gets the old bytes
    // once the local file is gone.
    let load =
        OldBytesLoad::start_paced(nginx.addr, "/static/r.jpg", &v1, Duration::from_millis(5));
    let v2 = bytes(31, 90_000);
    write_file(&c.root, "r.jpg", &v2);
    let gone = wait_until(WAIT, || !c.root.join("r.jpg").exists());
    let since = Instant::now();
    assert!(gone, "uploaded and finalized: {}", c.st.log_text());
    let old = load.finish(200, since);
    assert!(
        old.is_empty(),
        "old bytes after the local file went: {old:?}"
    );
    assert_eq!(c.s3.get("site-media", "static/r.jpg").unwrap(), v2);
    // The load loop's misses may already have cached the new bytes.
    let r = get(nginx.addr, "/static/r.jpg");
    assert!(r.body != v1, "the old bytes are gone with the local file");
    assert!(r.status == 302 || r.body == v2, "status {}", r.status);
    c.warm(c.st.addr, "r.jpg");
    assert_eq!(get(nginx.addr, "/static/r.jpg").body, v2);

    // Replaced in S3 behind stowaway's back: dropped at the next revalidation (1s).
    let v3 = bytes(32, 80_000);
    c.s3.put_migrated("site-media", "static/r.jpg", &v3);
    let dropped = wait_until(WAIT, || get(nginx.addr, "/static/r.jpg").status == 302);
    assert!(dropped, "revalidation drops it: {}", c.st.log_text());
    c.warm(c.st.addr, "r.jpg");
    assert_eq!(get(nginx.addr, "/static/r.jpg").body, v3);
}

#[test]
fn kill_9_during_a_fill_leaves_nothing_after_restart() {
    let mut c = cached("", "", "1h");
    let body = bytes(40, 400_000);
    c.s3.put_migrated("site-media", "static/big.jpg", &body);
    c.proxy.set_slow(Duration::from_secs(4));
    c.proxy.set(1.0, &[Fault::Slow], &["GET"]);
    let cache = c.cache.clone();
    let temp = move || {
        std::fs::read_dir(&cache).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".stowaway-cache-tmp.")
        })
    };
    for _ in 0..2 {
        assert_eq!(get(c.st.addr, "/static/big.jpg").status, 302);
    }
    assert!(
        wait_until(WAIT, &temp),
        "a fill is under way: {}",
        c.st.log_text()
    );
    // Killed mid-fill; a stranger's file appears meanwhile.
    c.st.proc.kill();
    write_file(&c.cache, "planted.jpg", b"not ours");
    assert!(temp());
    c.proxy.off();
    c.restart();
    let clean = wait_until(WAIT, || !temp() && c.files().is_empty());
    assert!(clean, "no temp, nothing foreign: {:?}", c.files());
    assert_eq!(
        get(c.st.addr, "/static/big.jpg").status,
        302,
        "nothing partial served"
    );
    assert_eq!(get(c.st.addr, "/static/planted.jpg").status, 302);
    // Counted once the scan is done (the files go while it runs).
    let counted = wait_until(WAIT, || c.metric("foreign_removed_total") == 1);
    assert!(counted, "{}", c.metric("foreign_removed_total"));
    // And it fills normally afterwards.
    let ok = wait_until(WAIT, || {
        get(c.st.addr, "/static/big.jpg");
        c.cache.join("big.jpg").is_file()
    });
    assert!(ok, "{}", c.st.log_text());
    assert_eq!(std::fs::read(c.cache.join("big.jpg")).unwrap(), body);
}

#[test]
fn a_full_cache_filesystem_fails_the_fill_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cachefs");
    let Some(fs) = Tmpfs::mount(&cache, "256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let c = cached_in(dir, cache, "", "", "1h", "10MiB", "");
    let body = bytes(50, 600_000);
    c.s3.put_migrated("site-media", "static/huge.jpg", &body);
    let ok = wait_until(WAIT, || {
        assert_eq!(get(c.st.addr, "/static/huge.jpg").status, 302);
        c.metric("fill_failures_total") > 0
    });
    assert!(ok, "{}", c.st.log_text());
    assert!(c.files().is_empty(), "{:?}", c.files());
    let temps = std::fs::read_dir(&c.cache).unwrap().flatten().count();
    assert!(temps <= 2, "only the journal and stats remain");
    assert_eq!(get(c.st.addr, "/static/huge.jpg").status, 302);
    // Room again: the next misses fill it.
    fs.resize("4m");
    let ok = wait_until(WAIT, || {
        get(c.st.addr, "/static/huge.jpg");
        c.cache.join("huge.jpg").is_file()
    });
    assert!(ok, "{}", c.st.log_text());
    assert_eq!(std::fs::read(c.cache.join("huge.jpg")).unwrap(), body);
    drop(c);
}

#[test]
fn a_deleted_cache_directory_is_recreated_and_redirects_meanwhile() {
    let c = cached("", "", "1s");
    let nginx = local_nginx(c.path(), &c.st);
    let body = bytes(60, 100_000);
    c.s3.put_migrated("site-media", "static/d/x.jpg", &body);
    c.warm(nginx.addr, "d/x.jpg");
    std::fs::remove_dir_all(&c.cache).unwrap();
    assert_eq!(get(nginx.addr, "/static/d/x.jpg").status, 302);
    let back = wait_until(WAIT, || c.cache.is_dir());
    assert!(back, "recreated: {}", c.st.log_text());
    c.warm(c.st.addr, "d/x.jpg");
    assert_eq!(get(nginx.addr, "/static/d/x.jpg").body, body);
    assert_eq!(get(c.st.addr, "/healthz").status, 200);
}

#[test]
fn lighttpd_serves_cached_objects_in_both_modes() {
    let c = cached("front = \"lighttpd\"", "", "1s");
    let body = bytes(70, 250_000);
    c.s3.put_migrated("site-media", "static/l/a.jpg", &body);
    c.s3.put_migrated("site-media", "static/l/b.jpg", &body);
    // local-first: the script looks into the cache dir right after the root.
    let lf = lighttpd_front(c.path(), &c.st);
    c.warm(lf.addr, "l/a.jpg");
    assert_served_from_cache(&c, lf.addr, "/static/l/a.jpg", "l/a.jpg", &body);
    assert_eq!(
        c.metric("hits_total"),
        0,
        "local-first hits never reach stowaway"
    );
    assert!(
        wait_until(WAIT, || c.metric("front_reads_total") >= 1),
        "lighttpd's own reads are found by access time"
    );
    c.rounds(2);
    let front_reads = c.metric("front_reads_total");
    // sendfile: stowaway answers X-Sendfile into the cache dir (a docroot of its own).
    let sf = lighttpd_sendfile_front(c.path(), &c.st);
    c.warm(sf.addr, "l/b.jpg");
    assert_served_from_cache(&c, sf.addr, "/static/l/b.jpg", "l/b.jpg", &body);
    let hits = c.metric("hits_total");
    assert!(hits >= 4, "sendfile hits reach stowaway: {hits}");
    c.rounds(3);
    assert_eq!(
        c.metric("front_reads_total"),
        front_reads,
        "lighttpd's reads for hits stowaway answered are those hits, not counted twice"
    );
}

#[test]
fn proxy_mode_and_status_report_what_the_cache_saved() {
    let c = cached("", "", "1s");
    let body = bytes(80, 50_000);
    c.s3.put_migrated("site-media", "static/s.jpg", &body);
    c.warm(c.st.addr, "s.jpg");
    for _ in 0..3 {
        let r = get(c.st.addr, "/static/s.jpg");
        assert_eq!(
            r.header("x-accel-redirect"),
            Some("/_stowaway_local/@cache/static/s.jpg"),
            "{r:?}"
        );
    }
    let ok = wait_until(WAIT, || {
        let v = c.status();
        v["caches"][0]["s3_gets_avoided"] == 3
            && v["caches"][0]["egress_bytes_avoided"] == 150_000
            && v["caches"][0]["files"] == 1
    });
    assert!(ok, "status --json reports the avoided GETs and bytes");
    // nginx proxy mode acts on that X-Accel-Redirect: the internal cache location.
    let nginx = proxy_nginx(c.path(), &c.st);
    assert_served_from_cache(&c, nginx.addr, "/static/s.jpg", "s.jpg", &body);
}

#[test]
fn evicted_entries_leave_the_disk_and_usage_stays_under_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let c = cached_in(dir, cache, "", "", "1h", "1MiB", "");
    for n in 0..4u64 {
        let key = format!("e/{n}.jpg");
        c.s3.put_migrated(
            "site-media",
            &format!("static/{key}"),
            &bytes(90 + n, 400_000),
        );
        c.warm(c.st.addr, &key);
        let used: u64 = walkdir::WalkDir::new(&c.cache)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| std::os::unix::fs::MetadataExt::blocks(&e.metadata().unwrap()) * 512)
            .sum();
        assert!(used <= 1 << 20, "{used} bytes on disk after {key}");
        assert_eq!(
            c.metric("files"),
            c.files().len() as u64,
            "index and disk agree"
        );
    }
    assert!(c.metric("evictions_total") >= 1);
    assert!(c.files().len() < 4, "{:?}", c.files());
    // An evicted object is a miss again: the redirect.
    let gone = (0..4)
        .map(|n| format!("e/{n}.jpg"))
        .find(|k| !c.files().contains(k))
        .unwrap();
    assert_eq!(get(c.st.addr, &format!("/static/{gone}")).status, 302);
}

/// Issue 16 meets 15: `stowaway rm` removes the cached copy too (beneath the cache directory),
/// says so, and the running serve neither sends it again nor fills it back.
#[test]
fn rm_removes_the_cached_copy() {
    let c = cached("tombstone_refresh = \"1s\"", "", "1h");
    let key = "rm/gone.jpg";
    c.s3.put_migrated("site-media", &format!("static/{key}"), &bytes(7, 50_000));
    c.warm(c.st.addr, key);
    let path = format!("/static/{key}");
    let run = stowaway_rm(&c.st.config, &[&path]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.says(&path, "cache", "removed"), "{}", run.stdout);
    assert!(!c.cache.join(key).exists(), "cached copy left behind");
    // Tombstoned now: refused, never a cached answer, and never filled again.
    let ok = wait_until(WAIT, || {
        let r = get(c.st.addr, &path);
        r.status == 404 || r.status == 410
    });
    assert!(ok, "{}", c.st.log_text());
    for _ in 0..3 {
        let r = get(c.st.addr, &path);
        assert!(r.status == 404 || r.status == 410, "{r:?}");
    }
    assert!(!c.cache.join(key).exists(), "filled back after rm");
    // Idempotent: a second rm finds nothing in the cache.
    let again = stowaway_rm(&c.st.config, &[&path]);
    assert!(again.says(&path, "cache", "not there"), "{}", again.stdout);
}

/// A cached file deleted by another process (`stowaway migrate` or `rm` purging it, an
/// operator): the next background round forgets it and requests go on being answered. (The
/// round once locked the index twice and hung every later request for a cached mount.)
#[test]
fn a_cache_file_deleted_by_another_process_is_forgotten() {
    let c = cached("", "", "1s");
    let key = "by-hand/gone.jpg";
    c.s3.put_migrated("site-media", &format!("static/{key}"), &bytes(9, 40_000));
    c.warm(c.st.addr, key);
    assert_eq!(c.metric("files"), 1);
    std::fs::remove_file(c.cache.join(key)).unwrap();
    let forgotten = wait_until(WAIT, || c.metric("files") == 0);
    assert!(forgotten, "{}", c.st.log_text());
    let asked = Instant::now();
    let r = get(c.st.addr, &format!("/static/{key}"));
    assert_eq!(r.status, 302);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[test]
fn a_fill_under_way_during_a_reload_is_never_left_untracked() {
    let c = cached("", "", "1h");
    let body = bytes(41, 300_000);
    c.s3.put_migrated("site-media", "static/reloaded.jpg", &body);
    c.proxy.set_slow(Duration::from_secs(10));
    c.proxy.set(1.0, &[Fault::Slow], &["GET"]);
    let cache = c.cache.clone();
    let temp = move || {
        std::fs::read_dir(&cache).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(".stowaway-cache-tmp.") && !n.contains("stats") && !n.contains("journal")
        })
    };
    for _ in 0..2 {
        assert_eq!(get(c.st.addr, "/static/reloaded.jpg").status, 302);
    }
    assert!(
        wait_until(WAIT, &temp),
        "a fill is under way: {}",
        c.st.log_text()
    );
    // SIGHUP mid-fill: a new set of caches rescans the directory while the old fill runs on.
    c.st.proc.signal(1);
    assert!(
        wait_until(WAIT, || c.st.log_text().contains("configuration reloaded")),
        "{}",
        c.st.log_text()
    );
    c.proxy.off();
    assert!(wait_until(WAIT, || !temp()), "{}", c.st.log_text());
    // Whatever is on disk now, the running index knows it (counted against max_size,
    // revalidated, evictable); a file only the front server knows about is the bug.
    let consistent = wait_until(Duration::from_secs(5), || {
        c.metric("files") as usize == c.files().len()
    });
    assert!(
        consistent,
        "on disk {:?}, index {} files: {}",
        c.files(),
        c.metric("files"),
        c.st.log_text()
    );
}

#[test]
fn a_key_too_deep_for_the_restart_scan_is_never_left_untracked() {
    let mut c = cached("", "", "1h");
    let key = format!("{}deep.jpg", "d/".repeat(70));
    c.s3.put_migrated("site-media", &format!("static/{key}"), b"deep bytes");
    let target = format!("/static/{key}");
    for _ in 0..3 {
        assert_eq!(get(c.st.addr, &target).status, 302);
    }
    // Filled (before the fix) or refused: either way settled before the restart.
    wait_until(Duration::from_secs(3), || c.cache.join(&key).is_file());
    c.restart();
    let settled = wait_until(WAIT, || c.st.log_text().contains("index rebuilt"));
    assert!(settled, "{}", c.st.log_text());
    // A file the front server would send that the rebuilt index does not know (never
    // revalidated, never evicted, outside max_size) is the bug.
    assert_eq!(
        c.files().len(),
        c.metric("files") as usize,
        "on disk {:?}: {}",
        c.files(),
        c.st.log_text()
    );
}

/// A signed mount's cached object, without a valid link, through every front server and mode
/// stowaway generates (nginx inside the realistic site, whose regex and rewrite locations
/// come after the generated ones): never the cached bytes.
#[test]
fn a_signed_mounts_cached_object_needs_a_valid_link_in_every_mode() {
    let body = bytes(3, 120_000);
    let probe = |front: SocketAddr, signed: &str, what: &str, c: &Cached| {
        for target in [
            "/static/private/p.jpg".to_string(),
            "/old-static/private/p.jpg".to_string(),
            "/moved/private/p.jpg".to_string(),
            "/static/private/./p.jpg".to_string(),
            "/static//private/p.jpg".to_string(),
            "/static/private/p%2Ejpg".to_string(),
            signed.replace("/p.jpg", "/p.JPG"),
            signed.replace("signature=", "signature=A"),
        ] {
            let r = get(front, &target);
            assert!(
                r.status != 200 && r.status != 206 && sha(&r.body) != sha(&body),
                "{what} {target}: {r:?}\n{}",
                c.st.log_text()
            );
        }
    };
    for lighttpd in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let access = access_section(dir.path(), "k1");
        let cache = dir.path().join("cache");
        let server = if lighttpd { "front = \"lighttpd\"" } else { "" };
        let c = cached_in(dir, cache, server, &access, "1h", "64MiB", "");
        c.s3.put_migrated("site-media", "static/private/p.jpg", &body);
        let signed = sign_link(&c.st, "/static/private/p.jpg", &["--ttl", "1h"]);
        let filled = wait_until(WAIT, || {
            get(c.st.addr, &signed);
            c.cache.join("private/p.jpg").is_file()
        });
        assert!(filled, "{}", c.st.log_text());
        if lighttpd {
            let lf = lighttpd_front(c.path(), &c.st);
            assert_eq!(sha(&get(lf.addr, &signed).body), sha(&body));
            probe(lf.addr, &signed, "lighttpd local-first", &c);
            let sf = lighttpd_sendfile_front(c.path(), &c.st);
            assert_eq!(sha(&get(sf.addr, &signed).body), sha(&body));
            probe(sf.addr, &signed, "lighttpd sendfile", &c);
        } else {
            for (mode, n) in [
                ("local-first", local_nginx(c.path(), &c.st)),
                ("proxy", proxy_nginx(c.path(), &c.st)),
                ("auth", auth_nginx(c.path(), &c.st)),
            ] {
                assert_eq!(sha(&get(n.addr, &signed).body), sha(&body), "{mode}");
                probe(n.addr, &signed, mode, &c);
            }
        }
    }
}

/// The site keeps `open_file_cache` at http level (common in tuned sites): the cache location
/// must not inherit it, or nginx sends a purged entry's old bytes from a kept descriptor.
#[test]
fn a_site_wide_open_file_cache_never_sends_a_purged_entry() {
    let c = cached("", "", "1h");
    let (http, server) = nginx_snippets(c.path(), &c.st, LOCAL_ARGS);
    let http =
        format!("open_file_cache max=1000 inactive=120s;\nopen_file_cache_valid 120s;\n{http}");
    let site = c.path().join("site-docroot");
    let nginx = Nginx::start(c.path(), &realistic_site_with(&http, Some(&server), &site));
    let v1 = bytes(33, 100_000);
    c.s3.put_migrated("site-media", "static/o.jpg", &v1);
    c.warm(nginx.addr, "o.jpg");
    for _ in 0..3 {
        assert_eq!(sha(&get(nginx.addr, "/static/o.jpg").body), sha(&v1));
    }
    let v2 = bytes(34, 90_000);
    write_file(&c.root, "o.jpg", &v2);
    let gone = wait_until(WAIT, || !c.root.join("o.jpg").exists());
    assert!(gone, "uploaded and finalized: {}", c.st.log_text());
    assert!(!c.cache.join("o.jpg").exists(), "purged");
    let r = get(nginx.addr, "/static/o.jpg");
    assert_ne!(
        sha(&r.body),
        sha(&v1),
        "old bytes from a kept descriptor: {r:?}"
    );
}
