//! The uploader against the real in-process S3 server (s3s-fs 0.14.1, SigV4 checked): many
//! files, a large multipart file, a growing file, an S3 outage, `kill -9`, an archive on
//! another (full) file system, a file replaced before finalize, bad input, `migrate`.
//!
//! Throughput and memory figures are printed (`cargo test --test uploader -- --nocapture`).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

const BUCKET: &str = "uploads-bkt";
const KEY_PREFIX: &str = "static/";

/// The heavy tests share two cores; running them one at a time keeps the timing assumptions
/// (settle times, deadlines) honest.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The harness's world (S3 server with the bucket, root, archive) with this file's helpers.
struct World(common::World);

impl std::ops::Deref for World {
    type Target = common::World;
    fn deref(&self) -> &common::World {
        &self.0
    }
}

impl World {
    fn new() -> World {
        World(common::World::new(BUCKET))
    }

    /// `fixtures/uploader.toml`; `uploader` and `mount` entries override its keys.
    fn config(&self, uploader: &[(&str, &str)], mount: &[(&str, &str)]) -> String {
        let c = self.0.config("uploader.toml", &[]);
        let c = set_keys(&c, "[uploader]", uploader);
        set_keys(&c, "[[mount]]", mount)
    }

    /// Writes a config for commands that do not listen (migrate).
    fn config_file(&self, uploader: &[(&str, &str)], mount: &[(&str, &str)]) -> PathBuf {
        let p = self
            .path()
            .join(format!("migrate-{}.toml", fastrand::u32(..)));
        std::fs::write(
            &p,
            self.config(uploader, mount)
                .replace("@LISTEN@", "127.0.0.1:1"),
        )
        .unwrap();
        p
    }

    fn object(&self, rel: &str) -> Option<Vec<u8>> {
        self.s3.get(BUCKET, &format!("{KEY_PREFIX}{rel}"))
    }

    /// True once every file is in the archive and gone from the root.
    fn all_archived(&self, rels: &[String]) -> bool {
        rels.iter().all(|r| self.in_archive(r) && !self.in_root(r))
    }

    /// Every file's object and archived copy equal `content(rel)`.
    fn assert_all_migrated(&self, files: &[(String, Vec<u8>)]) {
        let keys: BTreeSet<String> = self.s3.list(BUCKET).into_iter().collect();
        for (rel, content) in files {
            assert!(!self.in_root(rel), "{rel} still in the root");
            assert_eq!(
                &std::fs::read(self.archive.join(rel)).unwrap(),
                content,
                "archived {rel}"
            );
            assert!(
                keys.contains(&format!("{KEY_PREFIX}{rel}")),
                "{rel} not in the bucket"
            );
            assert_eq!(self.object(rel).as_ref(), Some(content), "object {rel}");
        }
    }

    /// Relative paths of every file under `dir`.
    fn tree(dir: &Path) -> BTreeSet<String> {
        walk(dir)
            .into_iter()
            .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().to_string())
            .collect()
    }

    fn temp_files_in_archive(&self) -> Vec<PathBuf> {
        walk(&self.archive)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".stowaway-tmp")
            })
            .collect()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// Peak resident set size of a process, from /proc (KiB).
fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `stowaway migrate --config PATH [args]`.
fn migrate(config: &Path, args: &[&str]) -> Output {
    let mut c = stowaway_cmd();
    c.arg("migrate").arg("--config").arg(config).args(args);
    c.output().expect("run stowaway migrate")
}

fn text(o: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The decision for `rel`: 200 with X-Accel-Redirect (local) or 302 (in S3).
fn decision(st: &Stowaway, rel: &str) -> Response {
    get(st.addr, &format!("/static/{rel}"))
}

fn assert_local(st: &Stowaway, rel: &str) {
    let r = decision(st, rel);
    assert_eq!(r.status, 200, "{rel}: {}", r.raw_head);
    assert!(
        r.header("x-accel-redirect").is_some(),
        "{rel}: {}",
        r.raw_head
    );
}

fn assert_redirect_serves(st: &Stowaway, rel: &str, content: &[u8]) {
    let r = decision(st, rel);
    assert_eq!(r.status, 302, "{rel}: {}", r.raw_head);
    let o = fetch_url("GET", r.header("location").unwrap());
    assert_eq!(o.status, 200);
    assert_eq!(o.body, content, "{rel} via the redirect");
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

// -------------------------------------------------------------------------------------------

#[test]
fn many_small_files_end_verified_in_s3_and_archived() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..300u64 {
        let ext = ["jpg", "png", "txt", "bin"][(i % 4) as usize];
        let rel = format!("d{}/s{}/f{i}.{ext}", i % 10, i % 3);
        let content = bytes(i, 500 + (i as usize * 37) % 8000);
        write_file(&w.root, &rel, &content);
        files.push((rel, content));
    }
    for ignored in [
        ".hidden.jpg",
        "d1/upload.tmp",
        "d2/big.part",
        ".cache/x.jpg",
    ] {
        write_file(&w.root, ignored, b"ignored");
    }
    // A name S3 keys cannot carry as-is (a backslash): skipped with a warning, left alone.
    write_file(&w.root, "d3/back\\slash.jpg", b"odd name");
    let total: u64 = files.iter().map(|(_, c)| c.len() as u64).sum();
    let rels: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();

    let t0 = Instant::now();
    let cfg = w.config(&[("cache_control", "\"public, max-age=60\"")], &[]);
    let st = Stowaway::start(w.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(60), || w.all_archived(&rels)),
        "not all archived: {}",
        st.log_text()
    );
    let took = t0.elapsed();

    w.assert_all_migrated(&files);
    assert_eq!(
        World::tree(&w.archive),
        rels.iter().cloned().collect::<BTreeSet<_>>(),
        "the archive mirrors the root"
    );
    for ignored in [
        ".hidden.jpg",
        "d1/upload.tmp",
        "d2/big.part",
        ".cache/x.jpg",
    ] {
        assert!(w.in_root(ignored), "{ignored} must be left alone");
        assert!(
            w.object(ignored).is_none(),
            "{ignored} must not be uploaded"
        );
    }
    assert!(
        !w.root.join("d1/s1").exists() && w.root.join("d1").is_dir(),
        "directories emptied by archiving go; one still holding (ignored) files stays"
    );
    assert!(w.in_root("d3/back\\slash.jpg"));
    let warned = st.log_text().matches("cannot be an object key").count();
    assert_eq!(warned, 1, "warned once, not on every rescan");
    // Labels: Content-Type from the extension, the SHA-256 in user metadata.
    let c = w.s3.client();
    let h =
        w.s3.rt
            .block_on(
                c.head_object()
                    .bucket(BUCKET)
                    .key("static/d0/s0/f0.jpg")
                    .send(),
            )
            .unwrap();
    assert_eq!(h.content_type(), Some("image/jpeg"));
    assert_eq!(h.cache_control(), Some("public, max-age=60"));
    let sha = hex::encode(Sha256::digest(&files[0].1));
    assert_eq!(h.metadata().and_then(|m| m.get("sha256")), Some(&sha));
    // Once finalized, the decision endpoint redirects, and the redirect serves the bytes.
    assert_redirect_serves(&st, &files[7].0, &files[7].1);
    eprintln!(
        "MEASURE many-small: {} files, {:.2} MiB in {:.2}s = {:.0} files/s, {:.2} MiB/s",
        files.len(),
        mib(total),
        took.as_secs_f64(),
        files.len() as f64 / took.as_secs_f64(),
        mib(total) / took.as_secs_f64()
    );
}

#[test]
fn large_file_goes_multipart_with_bounded_memory() {
    let _g = serial();
    let w = World::new();
    const SIZE: usize = 100 << 20;
    let path = w.root.join("video/big.mp4");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut sha = Sha256::new();
    {
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..(SIZE >> 20) {
            let chunk = bytes(1000 + i as u64, 1 << 20);
            sha.update(&chunk);
            f.write_all(&chunk).unwrap();
        }
    }
    let want_sha = sha.finalize();
    let cfg = w.config(
        &[
            ("multipart_threshold", "\"16MiB\""),
            ("part_size", "\"8MiB\""),
        ],
        &[],
    );
    let t0 = Instant::now();
    let st = Stowaway::start(w.path(), &cfg);
    let rel = "video/big.mp4".to_string();
    assert!(
        wait_until(Duration::from_secs(120), || w
            .all_archived(std::slice::from_ref(&rel))),
        "{}",
        st.log_text()
    );
    let took = t0.elapsed();
    let hwm = vm_hwm_kib(st.proc.child.id());
    let c = w.s3.client();
    let h =
        w.s3.rt
            .block_on(
                c.head_object()
                    .bucket(BUCKET)
                    .key("static/video/big.mp4")
                    .send(),
            )
            .unwrap();
    assert_eq!(h.content_length(), Some(SIZE as i64));
    assert!(
        h.e_tag().unwrap().trim_matches('"').ends_with("-13"),
        "13 parts of 8 MiB: {:?}",
        h.e_tag()
    );
    assert_eq!(h.content_type(), Some("video/mp4"));
    let obj = w.object(&rel).unwrap();
    assert_eq!(Sha256::digest(&obj), want_sha, "object bytes");
    assert_eq!(
        Sha256::digest(std::fs::read(w.archive.join(&rel)).unwrap()),
        want_sha,
        "archived bytes"
    );
    eprintln!(
        "MEASURE large: 100 MiB multipart (8 MiB parts) in {:.2}s = {:.2} MiB/s; stowaway peak RSS (VmHWM) {:.1} MiB",
        took.as_secs_f64(),
        100.0 / took.as_secs_f64(),
        hwm as f64 / 1024.0
    );
    assert!(hwm < 200 * 1024, "peak RSS {hwm} KiB is not bounded");
}

#[test]
fn a_growing_file_is_never_uploaded_truncated() {
    let _g = serial();
    let w = World::new();
    let st = Stowaway::start(w.path(), &w.config(&[("settle", "\"1s\"")], &[]));
    let path = w.root.join("logs/growing.bin");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let mut all = Vec::new();
    let t0 = Instant::now();
    let mut i = 0u64;
    // Append every 50 ms for 3 s; the object must not appear while the file grows.
    while t0.elapsed() < Duration::from_secs(3) {
        let chunk = bytes(i, 16 * 1024);
        f.write_all(&chunk).unwrap();
        all.extend_from_slice(&chunk);
        i += 1;
        assert!(
            w.object("logs/growing.bin").is_none(),
            "uploaded while still growing ({} bytes written)",
            all.len()
        );
        assert!(
            w.in_root("logs/growing.bin"),
            "finalized while still growing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(f);
    let rel = "logs/growing.bin".to_string();
    assert!(
        wait_until(Duration::from_secs(30), || w
            .all_archived(std::slice::from_ref(&rel))),
        "{}",
        st.log_text()
    );
    assert_eq!(w.object(&rel).unwrap().len(), all.len());
    w.assert_all_migrated(&[(rel, all)]);
}

#[test]
fn an_s3_outage_mid_run_loses_nothing() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..150u64 {
        let rel = format!("o{}/f{i}.bin", i % 5);
        let content = bytes(i + 50_000, 64 * 1024);
        write_file(&w.root, &rel, &content);
        files.push((rel, content));
    }
    let rels: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    let st = Stowaway::start(w.path(), &w.config(&[("concurrency", "2")], &[]));
    assert!(
        wait_until(Duration::from_secs(30), || rels
            .iter()
            .filter(|r| w.in_archive(r))
            .count()
            >= 10),
        "{}",
        st.log_text()
    );
    w.s3.pause();
    let archived_at_pause = rels.iter().filter(|r| w.in_archive(r)).count();
    assert!(
        archived_at_pause < rels.len(),
        "everything was done before the outage; make the run longer"
    );
    // Wait until the uploader has noticed: retries, failures, then the circuit breaker pausing
    // the mount until the next rescan (it comes back on its own once S3 does).
    assert!(
        wait_until(Duration::from_secs(30), || st
            .log_text()
            .contains("files in a row failed after all retries")),
        "{}",
        st.log_text()
    );
    // While S3 is down, files still local are served locally, nothing is lost.
    let local: Vec<&String> = rels.iter().filter(|r| w.in_root(r)).collect();
    assert!(!local.is_empty());
    assert_local(&st, local[0]);
    for (rel, content) in &files {
        let here = std::fs::read(w.root.join(rel))
            .or_else(|_| std::fs::read(w.archive.join(rel)))
            .unwrap();
        assert_eq!(&here, content, "{rel} during the outage");
    }
    w.s3.resume();
    assert!(
        wait_until(Duration::from_secs(60), || w.all_archived(&rels)),
        "not finished after the outage: {}",
        st.log_text()
    );
    w.assert_all_migrated(&files);
    let log = st.log_text();
    assert!(
        log.contains("transient failure, retrying"),
        "retries are logged"
    );
    assert!(
        log.contains("upload failed after retries"),
        "files that ran out of retries are logged"
    );
    eprintln!(
        "MEASURE outage: {archived_at_pause}/{} archived when S3 was paused; all verified after it came back",
        rels.len()
    );
}

#[test]
fn killed_mid_upload_and_restarted_completes() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..120u64 {
        let rel = format!("k{}/f{i}.dat", i % 4);
        let content = bytes(i + 70_000, 128 * 1024);
        write_file(&w.root, &rel, &content);
        files.push((rel, content));
    }
    for i in 0..2u64 {
        let rel = format!("k-big/b{i}.dat");
        let content = bytes(i + 80_000, 20 << 20);
        write_file(&w.root, &rel, &content);
        files.push((rel, content));
    }
    let rels: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    let cfg = w.config(
        &[
            ("multipart_threshold", "\"8MiB\""),
            ("part_size", "\"5MiB\""),
        ],
        &[],
    );
    let mut st = Stowaway::start(w.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(30), || rels
            .iter()
            .filter(|r| w.in_archive(r))
            .count()
            >= 15),
        "{}",
        st.log_text()
    );
    st.proc.kill();
    let archived = rels.iter().filter(|r| w.in_archive(r)).count();
    assert!(
        archived < rels.len(),
        "finished before the kill; make the run longer"
    );
    // The invariant at the moment of the kill: each file complete in the root, or archived
    // (complete) with its verified object in S3 — never lost, never two partial copies.
    for (rel, content) in &files {
        match (w.in_root(rel), w.in_archive(rel)) {
            (true, false) => assert_eq!(
                &std::fs::read(w.root.join(rel)).unwrap(),
                content,
                "{rel} in the root"
            ),
            (false, true) => {
                assert_eq!(
                    &std::fs::read(w.archive.join(rel)).unwrap(),
                    content,
                    "{rel} in the archive"
                );
                assert_eq!(
                    w.object(rel).as_ref(),
                    Some(content),
                    "{rel} archived but not in S3"
                );
            }
            other => panic!("{rel}: in root/archive = {other:?}"),
        }
    }
    let st2 = Stowaway::start(w.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(60), || w.all_archived(&rels)),
        "restart did not finish: {}",
        st2.log_text()
    );
    w.assert_all_migrated(&files);
    assert!(w.temp_files_in_archive().is_empty());
    eprintln!(
        "MEASURE kill: {archived}/{} archived at SIGKILL; the restart completed the rest",
        rels.len()
    );
}

#[test]
fn archive_on_another_file_system_and_when_it_is_full() {
    let _g = serial();
    let w = World::new();
    let Some(tmpfs) = Tmpfs::mount(&w.archive, "2m") else {
        eprintln!(
            "SKIPPED archive_on_another_file_system_and_when_it_is_full: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)"
        );
        return;
    };
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        std::fs::metadata(&w.root).unwrap().dev(),
        std::fs::metadata(&w.archive).unwrap().dev()
    );
    // Phase 1: fits. Copied across, then the source removed.
    let mut small = Vec::new();
    for i in 0..4u64 {
        let rel = format!("x/s{i}.bin");
        let c = bytes(i + 90_000, 200 * 1024);
        write_file(&w.root, &rel, &c);
        small.push((rel, c));
    }
    let mut st = Stowaway::start(w.path(), &w.config(&[], &[]));
    let rels: Vec<String> = small.iter().map(|(r, _)| r.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(30), || w.all_archived(&rels)),
        "{}",
        st.log_text()
    );
    w.assert_all_migrated(&small);
    // Phase 2: 8 × 300 KiB into the ~1.2 MiB left. Some cannot be archived.
    let mut big = Vec::new();
    for i in 0..8u64 {
        let rel = format!("y/b{i}.bin");
        let c = bytes(i + 91_000, 300 * 1024);
        write_file(&w.root, &rel, &c);
        big.push((rel, c));
    }
    assert!(
        wait_until(Duration::from_secs(30), || big
            .iter()
            .all(|(r, c)| w.object(r).as_ref() == Some(c))
            && st.log_text().contains("No space left on device")),
        "{}",
        st.log_text()
    );
    // Look at a quiet moment (no copy attempt in progress): every file complete in exactly one
    // place, no temp file in the archive.
    let mut stayed = 0;
    let quiet = wait_until(Duration::from_secs(20), || {
        w.temp_files_in_archive().is_empty()
            && big.iter().all(|(r, _)| w.in_root(r) != w.in_archive(r))
    });
    assert!(quiet, "{:?}", w.temp_files_in_archive());
    for (rel, c) in &big {
        match (w.in_root(rel), w.in_archive(rel)) {
            (true, false) => {
                stayed += 1;
                assert_eq!(
                    &std::fs::read(w.root.join(rel)).unwrap(),
                    c,
                    "{rel} intact in the root"
                );
                assert_local(&st, rel);
            }
            (false, true) => assert_eq!(
                &std::fs::read(w.archive.join(rel)).unwrap(),
                c,
                "{rel} complete in the archive"
            ),
            other => panic!("{rel}: in root/archive = {other:?}"),
        }
    }
    st.proc.kill();
    assert!(stayed > 0, "the archive was never full");
    // What a copy interrupted by a crash leaves behind (pid 0 is never a live process).
    let stale = w.archive.join("y/.stowaway-tmp.0.deadbeef.3");
    std::fs::write(&stale, b"half a copy").unwrap();
    // Room again: the restart (or the next rescan) completes the move.
    tmpfs.resize("16m");
    st = Stowaway::start(w.path(), &w.config(&[], &[]));
    let big_rels: Vec<String> = big.iter().map(|(r, _)| r.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(30), || w.all_archived(&big_rels)),
        "{}",
        st.log_text()
    );
    w.assert_all_migrated(&big);
    assert!(
        !stale.exists(),
        "the stale temp file is cleaned up at start-up"
    );
    assert!(w.temp_files_in_archive().is_empty());
    drop(st);
    eprintln!("MEASURE tmpfs: {stayed}/8 files stayed local while the archive was full");
}

#[test]
fn a_file_replaced_between_upload_and_finalize_is_uploaded_again() {
    let _g = serial();
    let w = World::new();
    let v1 = bytes(1, 10_000);
    let v2 = bytes(2, 12_345);
    write_file(&w.root, "r/doc.pdf", &v1);
    let st = Stowaway::start(w.path(), &w.config(&[], &[("finalize_grace", "\"2s\"")]));
    assert!(
        wait_until(Duration::from_secs(30), || w.object("r/doc.pdf").is_some()),
        "{}",
        st.log_text()
    );
    // Uploaded and in its grace period: still local, and the endpoint still says so.
    assert!(w.in_root("r/doc.pdf"));
    assert_local(&st, "r/doc.pdf");
    // Replace it the way writers do: a temp file renamed over it.
    std::fs::write(w.root.join("r/.doc.pdf.tmp"), &v2).unwrap();
    std::fs::rename(w.root.join("r/.doc.pdf.tmp"), w.root.join("r/doc.pdf")).unwrap();
    let rel = "r/doc.pdf".to_string();
    assert!(
        wait_until(Duration::from_secs(30), || w
            .all_archived(std::slice::from_ref(&rel))),
        "{}",
        st.log_text()
    );
    assert_eq!(
        std::fs::read(w.archive.join(&rel)).unwrap(),
        v2,
        "the archive holds the new version"
    );
    assert_eq!(w.object(&rel).unwrap(), v2, "the new version was uploaded");
    assert!(st.log_text().contains("changed"), "{}", st.log_text());
    assert_redirect_serves(&st, &rel, &v2);
}

#[test]
fn new_and_moved_in_directories_are_found_without_a_rescan() {
    let _g = serial();
    let w = World::new();
    // Rescans every hour: only the start-up scan and file events can find these.
    let st = Stowaway::start(w.path(), &w.config(&[("rescan_interval", "\"1h\"")], &[]));
    assert!(wait_until(Duration::from_secs(10), || st
        .log_text()
        .contains("uploader started")));
    let mut files = Vec::new();
    // mkdir -p and write at once: inotify reports neither the subdirectories nor the file.
    let c = bytes(7, 3000);
    write_file(&w.root, "new/a/b/c/deep.txt", &c);
    files.push(("new/a/b/c/deep.txt".to_string(), c));
    // The same many times over, to give the race a chance: a file written into a directory
    // before notify watched it, after the new tree's first walk had passed, has no event and is
    // found by the walk repeated a second later (seen once in CI under load: deep.txt stayed
    // local; not reproduced on demand).
    for i in 0..40u64 {
        let rel = format!("burst{i}/a/b/c/f.txt");
        write_file(&w.root, &rel, &bytes(200 + i, 100));
        files.push((rel, bytes(200 + i, 100)));
    }
    // A directory tree prepared elsewhere and moved in: its files produce no events.
    let outside = w.path().join("staging");
    for i in 0..3u64 {
        write_file(
            &outside,
            &format!("batch/sub/m{i}.txt"),
            &bytes(100 + i, 2000),
        );
    }
    std::fs::rename(outside.join("batch"), w.root.join("batch")).unwrap();
    for i in 0..3u64 {
        files.push((format!("batch/sub/m{i}.txt"), bytes(100 + i, 2000)));
    }
    let rels: Vec<String> = files.iter().map(|(r, _)| r.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(20), || w.all_archived(&rels)),
        "{}",
        st.log_text()
    );
    w.assert_all_migrated(&files);
    // The watcher's counters reach /metrics (events seen, directories watched).
    let m = String::from_utf8_lossy(&get(st.addr, "/metrics").body).to_string();
    let value = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{m}"))
    };
    assert!(value("stowaway_watch_events_total ") > 0.0, "{m}");
    assert!(value("stowaway_watches ") >= 1.0, "{m}");
}

#[test]
fn rename_is_ready_skips_the_settle_time() {
    let _g = serial();
    let w = World::new();
    let cfg = w.config(
        &[
            ("settle", "\"1h\""),
            ("rename_is_ready", "true"),
            ("rescan_interval", "\"1h\""),
        ],
        &[],
    );
    // The directory exists (and is watched) before the rename: in a directory created just
    // now, inotify may not watch it yet, and its files are found by a walk, which cannot tell
    // a renamed file from a written one.
    std::fs::create_dir_all(w.root.join("p")).unwrap();
    let st = Stowaway::start(w.path(), &cfg);
    assert!(wait_until(Duration::from_secs(10), || st
        .log_text()
        .contains("uploader started")));
    write_file(&w.root, "p/direct.jpg", b"written in place");
    write_file(&w.root, "p/.photo.jpg.part", b"renamed into place");
    std::fs::rename(w.root.join("p/.photo.jpg.part"), w.root.join("p/photo.jpg")).unwrap();
    let rel = "p/photo.jpg".to_string();
    assert!(
        wait_until(Duration::from_secs(20), || w
            .all_archived(std::slice::from_ref(&rel))),
        "{}",
        st.log_text()
    );
    w.assert_all_migrated(&[(rel, b"renamed into place".to_vec())]);
    // Written earlier but in place: it waits out its (hour-long) settle time.
    assert!(w.in_root("p/direct.jpg"));
    assert!(w.object("p/direct.jpg").is_none());
}

#[test]
fn keep_uploads_once_and_a_restart_does_not_upload_again() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..5u64 {
        let rel = format!("keep/k{i}.txt");
        let c = bytes(i + 300, 4000);
        write_file(&w.root, &rel, &c);
        files.push((rel, c));
    }
    let cfg = w
        .config(
            &[("rescan_interval", "\"1s\"")],
            &[("finalize", "\"keep\"")],
        )
        .replace(
            "level = \"info\"",
            "level = \"info,stowaway::uploader=debug\"",
        );
    let st = Stowaway::start(w.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(30), || files
            .iter()
            .all(|(r, c)| w.object(r).as_ref() == Some(c))),
        "{}",
        st.log_text()
    );
    let migrated = |log: &str, uploaded: bool| {
        log.lines()
            .filter(|l| l.contains("file migrated") && l.contains(&format!("uploaded={uploaded}")))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || migrated(&st.log_text(), true)
            == 5),
        "{}",
        st.log_text()
    );
    // Three more rescans find the same files: nothing is uploaded again.
    let rescans = |log: &str| log.matches("full scan finished").count();
    let before = rescans(&st.log_text());
    assert!(
        wait_until(Duration::from_secs(20), || rescans(&st.log_text())
            >= before + 3),
        "{}",
        st.log_text()
    );
    assert_eq!(
        migrated(&st.log_text(), true),
        5,
        "re-uploaded on a rescan:\n{}",
        st.log_text()
    );
    drop(st);
    for (rel, c) in &files {
        assert_eq!(&std::fs::read(w.root.join(rel)).unwrap(), c, "{rel} kept");
        assert!(!w.in_archive(rel));
    }
    // After a restart the in-memory record is gone; HeadObject finds the identical objects.
    let st2 = Stowaway::start(w.path(), &cfg);
    assert!(
        wait_until(Duration::from_secs(30), || migrated(&st2.log_text(), false)
            == 5),
        "{}",
        st2.log_text()
    );
    assert_eq!(migrated(&st2.log_text(), true), 0);
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn an_unreadable_file_fails_clearly_and_stays() {
    let _g = serial();
    let w = World::new();
    write_file(&w.root, "ok/good.txt", b"readable");
    let secret = write_file(&w.root, "ok/secret.bin", b"nobody may read this");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let cfg = w.config_file(&[("settle", "\"0s\"")], &[]);
    // Tests run as root, which reads mode-000 files anyway; drop the capabilities that allow it
    // so the kernel refuses the open as it would for an ordinary service user.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(env!("CARGO_BIN_EXE_stowaway"));
    aws_env(&mut cmd);
    let probe = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-dac_override,-dac_read_search",
            "--",
            "cat",
        ])
        .arg(&secret)
        .output();
    if !matches!(&probe, Ok(o) if !o.status.success()) {
        eprintln!(
            "SKIPPED an_unreadable_file_fails_clearly_and_stays: cannot make a file unreadable here (setpriv missing or no CAP_SETPCAP)"
        );
        return;
    }
    let out = cmd
        .arg("migrate")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("cannot read local file")
            && all.contains("secret.bin")
            && all.contains("Permission denied"),
        "{all}"
    );
    assert!(all.contains("1 failed"), "{all}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"nobody may read this",
        "left in place"
    );
    assert!(w.object("ok/secret.bin").is_none());
    // The readable file went through.
    w.assert_all_migrated(&[("ok/good.txt".to_string(), b"readable".to_vec())]);
}

#[test]
fn a_missing_bucket_fails_clearly_and_deletes_nothing() {
    let _g = serial();
    let w = World::new();
    for i in 0..30 {
        write_file(&w.root, &format!("m/f{i}.txt"), b"content");
    }
    let cfg = w.config_file(&[("settle", "\"0s\"")], &[("bucket", "\"no-such-bucket\"")]);
    let out = migrate(&cfg, &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("NoSuchBucket") && all.contains("create it"),
        "{all}"
    );
    assert!(
        all.contains("paused"),
        "the mount is paused instead of failing file by file: {all}"
    );
    // At most one error per worker before the mount pauses, not one per file.
    assert!(all.matches("NoSuchBucket").count() <= 10, "{all}");
    assert!(all.contains("30 not attempted"), "{all}");
    // (s3s-fs would create the bucket directory on a PutObject; none was sent.)
    assert!(
        !w.s3.data.join("no-such-bucket").exists(),
        "something was uploaded"
    );
    for i in 0..30 {
        assert!(w.in_root(&format!("m/f{i}.txt")));
    }
    assert!(World::tree(&w.archive).is_empty());
}

#[test]
fn wrong_credentials_fail_clearly_and_delete_nothing() {
    let _g = serial();
    let w = World::new();
    for i in 0..3 {
        write_file(&w.root, &format!("c/f{i}.txt"), b"content");
    }
    let st = Stowaway::start_with(
        w.path(),
        &w.config(&[], &[]),
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
    );
    // (The tombstone listing at start-up meets the same error first: wait for the uploader's.)
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .contains("paused until the next rescan")),
        "{}",
        st.log_text()
    );
    let log = st.log_text();
    assert!(log.contains("SignatureDoesNotMatch"), "{log}");
    assert!(log.contains("secret access key is wrong"), "{log}");
    // Two more rescans: still nothing removed, and the error is not repeated for every file.
    assert!(wait_until(Duration::from_secs(20), || st
        .log_text()
        .matches("paused until the next rescan")
        .count()
        >= 3));
    for i in 0..3 {
        assert!(w.in_root(&format!("c/f{i}.txt")));
        assert_local(&st, &format!("c/f{i}.txt"));
    }
    assert!(World::tree(&w.archive).is_empty());
    assert!(w.s3.list(BUCKET).is_empty());
}

// ---- migrate ------------------------------------------------------------------------------

#[test]
fn migrate_dry_run_changes_nothing_then_migrate_does_the_work() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..20u64 {
        let rel = format!("bk/{}/f{i}.txt", i % 3);
        let c = bytes(i + 500, 1000 + i as usize);
        write_file(&w.root, &rel, &c);
        files.push((rel, c));
    }
    let cfg = w.config_file(&[("settle", "\"2s\"")], &[]);
    // The backlog must be older than the settle time; a fresh file is not.
    assert!(wait_until(Duration::from_secs(10), || {
        let m = std::fs::metadata(w.root.join(&files[19].0)).unwrap();
        m.modified().unwrap().elapsed().unwrap_or_default() > Duration::from_millis(2100)
    }));
    write_file(&w.root, "bk/fresh.txt", b"just written");
    let out = migrate(&cfg, &["--dry-run"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (rel, _) in &files {
        assert!(
            stdout.contains(&format!(
                "{}/{rel} -> s3://{BUCKET}/{KEY_PREFIX}{rel}",
                w.root.display()
            )),
            "{rel} not listed:\n{all}"
        );
    }
    assert!(
        stdout.contains("would skip") && stdout.contains("fresh.txt"),
        "{all}"
    );
    assert!(stdout.contains("20 file(s)"), "{all}");
    assert_eq!(World::tree(&w.root).len(), 21, "dry run changed the root");
    assert!(
        World::tree(&w.archive).is_empty(),
        "dry run archived something"
    );
    assert!(w.s3.list(BUCKET).is_empty(), "dry run uploaded something");

    write_file(&w.root, "bk/fresh.txt", b"just written again");
    let t0 = Instant::now();
    let out = migrate(&cfg, &[]);
    let took = t0.elapsed();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    w.assert_all_migrated(&files);
    assert!(
        w.in_root("bk/fresh.txt"),
        "the fresh file is skipped, not migrated"
    );
    assert!(
        all.contains("20 file(s) migrated") && all.contains("1 skipped"),
        "{all}"
    );
    eprintln!(
        "MEASURE migrate: 20 files in {:.2}s (process start to exit)",
        took.as_secs_f64()
    );
}

#[test]
fn delete_mode_removes_only_verified_files() {
    let _g = serial();
    let w = World::new();
    let mut files = Vec::new();
    for i in 0..8u64 {
        let rel = format!("del/{}/f{i}.txt", i % 2);
        let c = bytes(i + 700, 2048);
        write_file(&w.root, &rel, &c);
        files.push((rel, c));
    }
    let cfg = w.config_file(&[("settle", "\"0s\"")], &[("finalize", "\"delete\"")]);
    let out = migrate(&cfg, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for (rel, c) in &files {
        assert!(!w.in_root(rel), "{rel} not deleted");
        assert_eq!(w.object(rel).as_ref(), Some(c), "{rel} in S3");
    }
    assert!(
        !w.root.join("del").exists() && w.root.is_dir(),
        "directories emptied by the deletes go, the root stays"
    );
    assert!(World::tree(&w.archive).is_empty());
}
