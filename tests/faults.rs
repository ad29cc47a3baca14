//! The uploader's fault matrix. Every case — S3 stopped and restarted mid-run; S3 answering
//! 500/503, resetting connections, cutting answers off or answering very slowly (through the
//! fault-injecting proxy in tests/common/faultproxy.rs); `kill -9` at random points, many
//! times; a full archive file system; unreadable files; a missing bucket; access denied;
//! unknown credentials; the clock jumping — is judged by the same oracle, [`Oracle::check`]:
//!
//! * every original file's SHA-256 is found in the root, or (once it left the root) in S3 as
//!   an object that was fetched and hashed, and with `finalize = "archive"` in the archive too;
//!   no copy anywhere (root, archive, S3) holds other bytes under the file's name;
//! * when the run is complete: every file migrated (unless the case expects it to stay), no
//!   `.stowaway-tmp*` file in the archive, and no object in the bucket that is not an original
//!   file.
//!
//! Quick by default (CI); `STOWAWAY_THOROUGH=1` runs the long settings (200 kill -9 runs, more
//! files, higher fault rates). `STOWAWAY_SEED=N` replays the random choices of a run.

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use faultproxy::{Fault, FaultProxy};
use sha2::{Digest, Sha256};

/// The heavy cases share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn thorough() -> bool {
    std::env::var("STOWAWAY_THOROUGH").is_ok_and(|v| v != "0" && !v.is_empty())
}

/// Seeds `fastrand` from `STOWAWAY_SEED` or the clock, and says which, so a failure can be
/// replayed.
fn seed(case: &str) -> u64 {
    let s = std::env::var("STOWAWAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    fastrand::seed(s);
    eprintln!("{case}: STOWAWAY_SEED={s}");
    s
}

const KEY_PREFIX: &str = "static/";

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// One original file: where it was written and the hash of what was written.
#[derive(Debug, Clone)]
struct Original {
    rel: String,
    sha: [u8; 32],
    len: usize,
}

/// A test world: the harness's root and archive, a bucket on a real S3 server shared by
/// many worlds, and the files written so far.
struct World {
    dirs: Dirs,
    bucket: String,
    files: Vec<Original>,
}

impl std::ops::Deref for World {
    type Target = Dirs;
    fn deref(&self) -> &Dirs {
        &self.dirs
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut Dirs {
        &mut self.dirs
    }
}

impl World {
    fn new(s3: &S3Server, bucket: &str, create_bucket: bool) -> World {
        if create_bucket {
            s3.create_bucket(bucket);
        }
        World {
            dirs: Dirs::new("root", "archive"),
            bucket: bucket.to_string(),
            files: Vec::new(),
        }
    }

    /// Writes `n` files of random sizes in `[min, max)` bytes, plus `big` multipart-sized ones.
    fn write_files(&mut self, tag: &str, n: usize, min: usize, max: usize, big: usize) {
        for i in 0..n {
            let rel = format!("{tag}/d{}/f{i}.bin", i % 4);
            let len = min + fastrand::usize(..(max - min).max(1));
            self.add(&rel, &bytes(fastrand::u64(..), len));
        }
        for i in 0..big {
            // Three 5 MiB parts, the last one short.
            let len = (11 << 20) + fastrand::usize(..4096);
            self.add(
                &format!("{tag}/big/b{i}.dat"),
                &bytes(fastrand::u64(..), len),
            );
        }
    }

    fn add(&mut self, rel: &str, content: &[u8]) {
        write_file(&self.root, rel, content);
        self.files.push(Original {
            rel: rel.to_string(),
            sha: sha(content),
            len: content.len(),
        });
    }

    /// A serve/migrate configuration against `endpoint` (the S3 server or a proxy in front).
    /// `uploader` lines (`key = value`) replace the test defaults of the same key.
    fn config(&self, endpoint: &str, uploader: &str, mount: &str) -> String {
        let defaults = [
            "settle = \"0s\"",
            "rescan_interval = \"1s\"",
            "retry_min_delay = \"20ms\"",
            "retry_max_delay = \"200ms\"",
            "max_attempts = 3",
            "concurrency = 3",
            "multipart_threshold = \"8MiB\"",
            "part_size = \"5MiB\"",
        ];
        let overridden = |d: &str| {
            let k = d.split(' ').next().unwrap();
            uploader.lines().any(|l| l.split(' ').next() == Some(k))
        };
        let u: String = defaults
            .iter()
            .filter(|d| !overridden(d))
            .map(|d| format!("{d}\n"))
            .collect();
        format!(
            "[server]\nlisten = \"@LISTEN@\"\nshutdown_timeout = \"2s\"\ns3_probe_interval = \"0s\"\n[log]\nlevel = \"info\"\n\
             [uploader]\n{u}{uploader}\n\
             [s3]\nregion = \"{REGION}\"\nendpoint = \"{endpoint}\"\naddressing_style = \"path\"\n\
             [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"{}\"\nkey_prefix = \"{KEY_PREFIX}\"\n\
             url = \"presigned\"\nexpires = \"10m\"\nwindow = \"0s\"\nfinalize = \"archive\"\narchive_root = \"{}\"\n{mount}\n",
            self.root.display(),
            self.bucket,
            self.archive.display()
        )
    }

    fn archived(&self) -> usize {
        self.files
            .iter()
            .filter(|f| self.archive.join(&f.rel).exists() && !self.in_root(&f.rel))
            .count()
    }

    fn all_archived(&self) -> bool {
        self.archived() == self.files.len()
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".stowaway-tmp"))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Incomplete multipart uploads s3s-fs still holds (`.upload-<id>.json` in its data folder).
fn open_multipart_uploads(s3: &S3Server) -> usize {
    std::fs::read_dir(&s3.data)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with(".upload-") && n.ends_with(".json")
                })
                .count()
        })
        .unwrap_or(0)
}

/// When the oracle looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Mid-run (possibly with stowaway dead): nothing lost, nothing corrupt.
    During,
    /// The run is over: additionally everything migrated (except `stays`), no garbage.
    Final,
}

/// The one oracle, with its running totals.
#[derive(Default)]
struct Oracle {
    checks: usize,
    files_checked: usize,
    lost: usize,
    faults: BTreeMap<String, u64>,
}

impl Oracle {
    fn fault(&mut self, kind: &str, n: u64) {
        *self.faults.entry(kind.to_string()).or_default() += n;
    }

    /// Judges `w` now. `stays`: files the case expects to remain local at the end. Panics with
    /// every violation found.
    fn check(&mut self, s3: &S3Server, w: &World, phase: Phase, stays: &BTreeSet<String>) {
        self.checks += 1;
        let mut bad = Vec::new();
        let keys: BTreeSet<String> = if s3.bucket_exists(&w.bucket) {
            s3.list(&w.bucket).into_iter().collect()
        } else {
            BTreeSet::new()
        };
        for f in &w.files {
            self.files_checked += 1;
            let read_hash = |p: &Path| std::fs::read(p).ok().map(|b| (sha(&b), b.len()));
            // Root first, then archive, then S3: a file only ever moves root → archive, and
            // its object is verified before it leaves the root, so this order cannot miss a
            // file that moved while we looked.
            let local = read_hash(&w.root.join(&f.rel));
            let archived = read_hash(&w.archive.join(&f.rel));
            let key = format!("{KEY_PREFIX}{}", f.rel);
            let object = if keys.contains(&key) || phase == Phase::During {
                s3.get(&w.bucket, &key).map(|b| (sha(&b), b.len()))
            } else {
                None
            };
            let good = |x: &Option<([u8; 32], usize)>| x.is_some_and(|(h, _)| h == f.sha);
            for (place, copy) in [("root", &local), ("archive", &archived), ("S3", &object)] {
                if let Some((_, len)) = copy
                    && !good(copy)
                {
                    bad.push(format!(
                        "{}: the copy in {place} is corrupt ({len} bytes, want {})",
                        f.rel, f.len
                    ));
                }
            }
            let safe = good(&local) || (good(&object) && good(&archived));
            if !safe {
                self.lost += 1;
                bad.push(format!(
                    "{}: LOST (root: {}, archive: {}, S3: {})",
                    f.rel,
                    local.is_some(),
                    archived.is_some(),
                    object.is_some()
                ));
            }
            if phase == Phase::Final {
                let migrated = local.is_none() && good(&object) && good(&archived);
                if stays.contains(&f.rel) {
                    if !good(&local) {
                        bad.push(format!("{}: should have stayed local", f.rel));
                    }
                } else if !migrated {
                    bad.push(format!(
                        "{}: not migrated at the end (root: {}, archive: {}, S3: {})",
                        f.rel,
                        local.is_some(),
                        archived.is_some(),
                        object.is_some()
                    ));
                }
            }
        }
        if phase == Phase::Final {
            let wanted: BTreeSet<String> = w
                .files
                .iter()
                .map(|f| format!("{KEY_PREFIX}{}", f.rel))
                .collect();
            for k in keys.difference(&wanted) {
                bad.push(format!("garbage object s3://{}/{k}", w.bucket));
            }
            for t in temp_files(&w.archive) {
                bad.push(format!("garbage temp file {}", t.display()));
            }
        }
        assert!(
            bad.is_empty(),
            "oracle ({phase:?}) found {} problem(s):\n{}",
            bad.len(),
            bad.join("\n")
        );
    }

    fn report(&self, case: &str) {
        let faults: u64 = self.faults.values().sum();
        eprintln!(
            "FAULTS {case}: {faults} faults injected {:?}; {} oracle checks, {} files checked, {} lost",
            self.faults, self.checks, self.files_checked, self.lost
        );
        assert_eq!(self.lost, 0);
    }
}

/// Small additions to the harness's S3 server.
trait S3Ext {
    fn bucket_exists(&self, bucket: &str) -> bool;
}

impl S3Ext for S3Server {
    fn bucket_exists(&self, bucket: &str) -> bool {
        self.data.join(bucket).is_dir()
    }
}

/// Starts `stowaway serve` like [`Stowaway::start_with`], optionally under a wrapper command
/// (`setpriv …`), without waiting for it when `wait` is false.
fn spawn_serve(
    dir: &Path,
    config: &str,
    wrapper: &[&str],
    env: &[(&str, &str)],
    wait: bool,
) -> Stowaway {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let path = dir.join(format!("stowaway-{}.toml", addr.port()));
    std::fs::write(&path, config.replace("@LISTEN@", &addr.to_string())).unwrap();
    let log = dir.join(format!("stowaway-{}.log", addr.port()));
    let mut cmd = match wrapper.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(env!("CARGO_BIN_EXE_stowaway"));
            aws_env(&mut c);
            c
        }
        None => stowaway_cmd(),
    };
    cmd.arg("serve").arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = cmd.spawn().expect("spawn stowaway");
    let mut st = Stowaway {
        proc: Proc {
            child,
            name: "stowaway".into(),
        },
        addr,
        sock: None,
        config: path,
        log,
    };
    if wait {
        let up = wait_until(Duration::from_secs(30), || {
            matches!(st.proc.child.try_wait(), Ok(Some(_)))
                || (std::net::TcpStream::connect(addr).is_ok()
                    && get(addr, "/healthz").status == 200)
        });
        assert!(
            up && st.proc.child.try_wait().unwrap().is_none(),
            "stowaway did not come up: {}",
            st.log_text()
        );
    }
    st
}

fn assert_no_panic(st: &Stowaway) {
    let log = st.log_text();
    assert!(!log.contains("panicked"), "stowaway panicked:\n{log}");
}

/// Waits until every file is archived (or `deadline`), then kills stowaway and applies the
/// final oracle.
fn finish(o: &mut Oracle, s3: &S3Server, w: &World, mut st: Stowaway, deadline: Duration) {
    let done = wait_until(deadline, || w.all_archived());
    assert!(
        done,
        "not finished: {}/{} archived\n{}",
        w.archived(),
        w.files.len(),
        st.log_text()
    );
    assert_no_panic(&st);
    st.proc.kill();
    o.check(s3, w, Phase::Final, &BTreeSet::new());
}

// ---- S3 stopped and restarted ---------------------------------------------------------------

#[test]
fn s3_stopped_and_restarted_mid_run() {
    let _g = serial();
    seed("s3_stopped_and_restarted_mid_run");
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "outage-bkt", true);
    let n = if thorough() { 60 } else { 20 };
    w.write_files("o0", n, 8 << 10, 64 << 10, 1);
    let mut o = Oracle::default();
    let st = spawn_serve(
        w.path(),
        &w.config(&s3.endpoint, "concurrency = 2", ""),
        &[],
        &[],
        true,
    );
    let mut mid_run = 0;
    for round in 1..=3 {
        // Stop S3 once part of the pending work is done.
        let target = (w.archived() + 3).min(w.files.len());
        assert!(
            wait_until(Duration::from_secs(60), || w.archived() >= target),
            "{}",
            st.log_text()
        );
        s3.pause();
        o.fault("s3 stopped", 1);
        // More work arrives while S3 is down, so the outage is always mid-run.
        let big = usize::from(round == 2);
        w.write_files(&format!("o{round}"), n, 8 << 10, 64 << 10, big);
        if !w.all_archived() {
            mid_run += 1;
        }
        // Down for a random while: sometimes shorter than the retries, sometimes long enough
        // for the circuit breaker.
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(..1500)));
        s3.resume();
        // (The oracle reads S3 itself, so it looks once S3 is back.)
        o.check(&s3, &w, Phase::During, &BTreeSet::new());
    }
    assert!(mid_run == 3, "S3 went down mid-run only {mid_run} times");
    finish(&mut o, &s3, &w, st, Duration::from_secs(90));
    o.report("s3 stopped and restarted");
}

// ---- S3 misbehaving behind the fault proxy ----------------------------------------------------

/// Runs `w`'s files through a proxy that injects `faults` with `probability` until at least
/// `min_faults` were injected and part of the work is done, checks mid-run, then turns the
/// faults off and lets the run finish.
fn proxy_case(case: &str, faults: &[Fault], probability: f64, slow: Duration) {
    let _g = serial();
    seed(case);
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(&s3.endpoint);
    proxy.set_slow(slow);
    let mut w = World::new(&s3, "faulty-bkt", true);
    let (n, min_faults) = if thorough() { (120, 150) } else { (30, 25) };
    w.write_files("p", n, 1 << 10, 48 << 10, 1);
    let mut o = Oracle::default();
    proxy.set(probability, faults, &[]);
    let st = spawn_serve(w.path(), &w.config(&proxy.endpoint, "", ""), &[], &[], true);
    let deadline = Duration::from_secs(if thorough() { 300 } else { 60 });
    let injected_enough = wait_until(deadline, || {
        proxy.injected() >= min_faults || w.all_archived()
    });
    assert!(injected_enough, "{}", st.log_text());
    o.check(&s3, &w, Phase::During, &BTreeSet::new());
    // Keep going until everything is done or the faults have had a fair share of the run.
    let _ = wait_until(Duration::from_secs(20), || {
        w.all_archived() || proxy.injected() >= 2 * min_faults
    });
    o.check(&s3, &w, Phase::During, &BTreeSet::new());
    proxy.off();
    for (f, k) in proxy.by_fault() {
        o.fault(&format!("{f:?}"), k);
    }
    assert!(
        proxy.injected() > 0,
        "no fault was injected ({} requests)",
        proxy.requests()
    );
    finish(&mut o, &s3, &w, st, Duration::from_secs(90));
    eprintln!(
        "FAULTS {case}: proxy saw {} requests, {} open multipart uploads left in S3",
        proxy.requests(),
        open_multipart_uploads(&s3)
    );
    o.report(case);
}

#[test]
fn s3_answering_500_and_503() {
    proxy_case(
        "500/503",
        &[Fault::Status500, Fault::Status503],
        if thorough() { 0.5 } else { 0.35 },
        Duration::ZERO,
    );
}

#[test]
fn s3_resetting_connections_and_cutting_answers() {
    proxy_case(
        "resets",
        &[Fault::ResetBefore, Fault::ResetAfter, Fault::Truncate],
        if thorough() { 0.5 } else { 0.3 },
        Duration::ZERO,
    );
}

#[test]
fn s3_answering_very_slowly_and_everything_at_once() {
    proxy_case(
        "slow",
        &[Fault::Slow],
        0.5,
        Duration::from_millis(if thorough() { 800 } else { 250 }),
    );
    proxy_case(
        "mixed",
        &[
            Fault::Status500,
            Fault::Status503,
            Fault::ResetBefore,
            Fault::ResetAfter,
            Fault::Truncate,
            Fault::Slow,
        ],
        0.3,
        Duration::from_millis(150),
    );
}

#[test]
fn access_denied_keeps_files_local_until_granted() {
    let _g = serial();
    seed("access_denied");
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(&s3.endpoint);
    let mut w = World::new(&s3, "denied-bkt", true);
    w.write_files("a", 8, 1 << 10, 16 << 10, 0);
    let mut o = Oracle::default();
    // A bucket policy that denies writes: every PUT and POST is refused.
    proxy.set(1.0, &[Fault::AccessDenied], &["PUT", "POST"]);
    let st = spawn_serve(w.path(), &w.config(&proxy.endpoint, "", ""), &[], &[], true);
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .matches("AccessDenied")
            .count()
            >= 8),
        "{}",
        st.log_text()
    );
    // Two more rescans (every file refused twice more): all still local, nothing in the
    // bucket, each failure logged once.
    let logged = |l: &str| l.matches("AccessDenied").count();
    let before = logged(&st.log_text());
    let refused = proxy.injected();
    let n = w.files.len() as u64;
    assert!(
        wait_until(Duration::from_secs(20), || proxy.injected()
            >= refused + 2 * n),
        "{}",
        st.log_text()
    );
    let all: BTreeSet<String> = w.files.iter().map(|f| f.rel.clone()).collect();
    o.check(&s3, &w, Phase::Final, &all);
    assert!(s3.list(&w.bucket).is_empty());
    assert_eq!(
        logged(&st.log_text()),
        before,
        "a permanent failure is logged once per file, not on every rescan"
    );
    o.fault("AccessDenied", proxy.injected());
    proxy.off();
    finish(&mut o, &s3, &w, st, Duration::from_secs(30));
    o.report("access denied");
}

// ---- bucket and credentials ------------------------------------------------------------------

#[test]
fn missing_bucket_then_created_and_unknown_credentials_then_fixed() {
    let _g = serial();
    seed("missing_bucket");
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "late-bkt", false);
    w.write_files("m", 10, 1 << 10, 16 << 10, 0);
    let all: BTreeSet<String> = w.files.iter().map(|f| f.rel.clone()).collect();
    let mut o = Oracle::default();
    let st = spawn_serve(w.path(), &w.config(&s3.endpoint, "", ""), &[], &[], true);
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .matches("paused until the next rescan")
            .count()
            >= 2),
        "{}",
        st.log_text()
    );
    o.fault("bucket missing", 1);
    o.check(&s3, &w, Phase::Final, &all);
    assert!(st.log_text().contains("NoSuchBucket"), "{}", st.log_text());
    // Someone creates the bucket: the next rescan finds it.
    s3.create_bucket(&w.bucket);
    finish(&mut o, &s3, &w, st, Duration::from_secs(30));

    // An access key id S3 does not know: the mount pauses, nothing moves; fixed, it finishes.
    let mut w = World::new(&s3, "creds-bkt", true);
    w.write_files("c", 6, 1 << 10, 8 << 10, 0);
    let all: BTreeSet<String> = w.files.iter().map(|f| f.rel.clone()).collect();
    let cfg = w.config(&s3.endpoint, "", "");
    let mut st = spawn_serve(
        w.path(),
        &cfg,
        &[],
        &[("AWS_ACCESS_KEY_ID", "AKIDUNKNOWNTOTHESERVER")],
        true,
    );
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .contains("paused until the next rescan")),
        "{}",
        st.log_text()
    );
    o.fault("unknown access key", 1);
    o.check(&s3, &w, Phase::Final, &all);
    assert_no_panic(&st);
    st.proc.kill();
    let st = spawn_serve(w.path(), &cfg, &[], &[], true);
    finish(&mut o, &s3, &w, st, Duration::from_secs(30));
    o.report("bucket missing / unknown credentials");
}

// ---- kill -9 ---------------------------------------------------------------------------------

#[test]
fn kill_9_at_random_points_many_times() {
    let _g = serial();
    seed("kill_9");
    let runs = if thorough() { 200 } else { 20 };
    let max_delay_ms = if thorough() { 1000 } else { 700 };
    let s3 = S3Server::start();
    let mut o = Oracle::default();
    // Half of the runs archive onto another file system (copy, fsync, rename, temp files).
    let tmp = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&tmp.path().join("tmpfs"), "256m");
    if tmpfs.is_none() {
        eprintln!("kill_9: cannot mount a tmpfs here; every run archives on the same file system");
    }
    let mut at_kill = BTreeMap::<&str, usize>::new();
    let t0 = std::time::Instant::now();
    for run in 0..runs {
        let mut w = World::new(&s3, &format!("kill-{run}"), true);
        if let (Some(t), true) = (&tmpfs, run % 2 == 1) {
            w.archive = t.0.join(format!("archive-{run}"));
            std::fs::create_dir_all(&w.archive).unwrap();
        }
        let big = usize::from(run % 4 == 0);
        w.write_files("k", 6 + fastrand::usize(..10), 512, 32 << 10, big);
        let cfg = w.config(&s3.endpoint, "", "");
        // One to three kills per run, at random moments: start-up, scan, upload, verify,
        // archive copy, or after everything.
        let kills = 1 + fastrand::usize(..2);
        for _ in 0..kills {
            let use_migrate = fastrand::usize(..4) == 0;
            let mut child = if use_migrate {
                let p = w.path().join("migrate.toml");
                std::fs::write(&p, cfg.replace("@LISTEN@", "127.0.0.1:1")).unwrap();
                let mut c = stowaway_cmd();
                c.arg("migrate")
                    .arg("--config")
                    .arg(&p)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                Proc {
                    child: c.spawn().unwrap(),
                    name: "migrate".into(),
                }
            } else {
                spawn_serve(w.path(), &cfg, &[], &[], false).proc
            };
            std::thread::sleep(Duration::from_millis(fastrand::u64(..max_delay_ms)));
            let exited = matches!(child.child.try_wait(), Ok(Some(_)));
            child.kill();
            o.fault("kill -9", 1);
            let done = w.archived();
            let when = if exited {
                "after it exited"
            } else if done == 0 {
                "before any file was archived"
            } else if done < w.files.len() {
                "mid-run"
            } else {
                "after all were archived"
            };
            *at_kill.entry(when).or_default() += 1;
            o.check(&s3, &w, Phase::During, &BTreeSet::new());
        }
        let st = spawn_serve(w.path(), &cfg, &[], &[], true);
        finish(&mut o, &s3, &w, st, Duration::from_secs(60));
        if run == 0 {
            eprintln!("kill_9: first run took {:?}", t0.elapsed());
        }
    }
    eprintln!(
        "FAULTS kill -9: {runs} runs in {:.1}s; kills by moment: {at_kill:?}",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        at_kill.get("mid-run").copied().unwrap_or(0) > 0,
        "no kill landed mid-run: {at_kill:?}"
    );
    o.report("kill -9");
}

// ---- crash leftovers: incomplete multipart uploads ----------------------------------------------

/// Whether s3s-fs still holds incomplete multipart upload `id`.
fn upload_held(s3: &S3Server, id: &str) -> bool {
    s3.data.join(format!(".upload-{id}.json")).exists()
}

/// The value of an unlabelled sample on `/metrics`.
fn metric(st: &Stowaway, name: &str) -> Option<u64> {
    let r = get(st.addr, "/metrics");
    let body = String::from_utf8_lossy(&r.body).into_owned();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn multipart_upload_left_by_kill_9_is_aborted_at_the_next_start() {
    let _g = serial();
    seed("leftovers");
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(&s3.endpoint);
    // s3s-fs cannot list multipart uploads: the proxy answers, two a page.
    proxy.answer_list_multipart_uploads(2);
    let mut w = World::new(&s3, "leftover-bkt", true);
    w.write_files("m", 0, 0, 1, 1);
    let big_key = format!("{KEY_PREFIX}{}", w.files[0].rel);
    let cfg = w.config(&proxy.endpoint, "abandoned_upload_age = \"1h\"", "");
    // Parts are answered slowly, so the kill lands mid-upload.
    proxy.set_slow(Duration::from_millis(1500));
    proxy.set(1.0, &[Fault::Slow], &["PUT"]);
    let mut st = spawn_serve(w.path(), &cfg, &[], &[], true);
    let started = wait_until(Duration::from_secs(30), || {
        proxy.open_uploads().iter().any(|u| u.key == big_key)
    });
    assert!(started, "no multipart upload started: {}", st.log_text());
    st.proc.kill();
    let first_log = st.log_text();
    let stale = proxy
        .open_uploads()
        .into_iter()
        .find(|u| u.key == big_key)
        .unwrap()
        .upload_id;
    assert!(upload_held(&s3, &stale), "the kill left no upload behind");
    // Beside it, real uploads that are not abandoned ones of ours: a fresh one under the
    // mount's key prefix, an old one outside it (another application's).
    let c = s3.client_via(&proxy.endpoint);
    let create = |key: &str| {
        s3.rt
            .block_on(
                c.create_multipart_upload()
                    .bucket(&w.bucket)
                    .key(key)
                    .send(),
            )
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string()
    };
    let fresh = create(&format!("{KEY_PREFIX}m/fresh.bin"));
    let foreign = create("other-app/old.bin");
    let foreign_too = create("static-not-ours/old.bin");
    proxy.backdate(&stale, 2 * HOUR);
    proxy.backdate(&foreign, 2 * HOUR);
    proxy.backdate(&foreign_too, 2 * HOUR);
    proxy.off();

    let st = spawn_serve(w.path(), &cfg, &[], &[], true);
    let aborted = wait_until(Duration::from_secs(30), || proxy.aborts().contains(&stale));
    assert!(
        aborted,
        "the stale upload was not aborted: {}",
        st.log_text()
    );
    // The proxy records the abort as it forwards it; s3s-fs finishes it a moment later.
    let gone = wait_until(Duration::from_secs(10), || !upload_held(&s3, &stale));
    assert!(gone, "s3s-fs still holds {stale}");
    let counted = wait_until(Duration::from_secs(10), || {
        metric(&st, "stowaway_abandoned_uploads_aborted_total") == Some(1)
    });
    assert!(
        counted,
        "{:?}",
        metric(&st, "stowaway_abandoned_uploads_aborted_total")
    );
    let log = st.log_text();
    assert!(
        log.contains("aborted an abandoned multipart upload"),
        "{log}"
    );
    assert!(!log.contains("ListMultipartUploads"), "{log}");
    assert!(!first_log.contains("ListMultipartUploads"), "{first_log}");
    let mut o = Oracle::default();
    o.fault("kill -9 mid-multipart", 1);
    finish(&mut o, &s3, &w, st, Duration::from_secs(60));
    assert_eq!(proxy.aborts(), vec![stale.clone()], "only the stale upload");
    for id in [&fresh, &foreign, &foreign_too] {
        assert!(upload_held(&s3, id), "{id} was removed");
    }
    assert!(proxy.list_requests() >= 2, "{}", proxy.list_requests());
    o.report("crash leftovers");
}

#[test]
fn an_upload_running_in_this_process_is_never_aborted() {
    let _g = serial();
    seed("leftovers_in_flight");
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(&s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    // Every upload looks two hours old the moment it starts, and takes seconds.
    proxy.backdate_new(2 * HOUR);
    proxy.set_slow(Duration::from_millis(700));
    proxy.set(1.0, &[Fault::Slow], &["PUT"]);
    let mut w = World::new(&s3, "inflight-bkt", true);
    w.write_files("m", 0, 0, 1, 1);
    let cfg = w.config(&proxy.endpoint, "abandoned_upload_age = \"1h\"", "");
    let st = spawn_serve(w.path(), &cfg, &[], &[], true);
    let open = || !proxy.open_uploads().is_empty();
    assert!(
        wait_until(Duration::from_secs(30), open),
        "{}",
        st.log_text()
    );
    // Rescans every second sweep while the upload runs.
    let lists = proxy.list_requests();
    let swept = wait_until(Duration::from_secs(30), || {
        proxy.list_requests() >= lists + 2 || !open()
    });
    assert_eq!(
        proxy.aborts(),
        Vec::<String>::new(),
        "an upload of this process was aborted: {}",
        st.log_text()
    );
    assert!(
        swept && open(),
        "too few sweeps during the upload: {}",
        st.log_text()
    );
    proxy.off();
    let mut o = Oracle::default();
    finish(&mut o, &s3, &w, st, Duration::from_secs(60));
    assert_eq!(proxy.aborts(), Vec::<String>::new());
}

#[test]
fn migrate_aborts_abandoned_uploads_and_a_dry_run_lists_none() {
    let _g = serial();
    seed("leftovers_migrate");
    let s3 = S3Server::start();
    let proxy = FaultProxy::start(&s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    let mut w = World::new(&s3, "migrate-bkt", true);
    w.write_files("g", 3, 512, 1024, 0);
    let c = s3.client_via(&proxy.endpoint);
    let stale: Vec<String> = (0..3)
        .map(|i| {
            let key = format!("{KEY_PREFIX}g/crashed-{i}.bin");
            let id = s3
                .rt
                .block_on(
                    c.create_multipart_upload()
                        .bucket(&w.bucket)
                        .key(key)
                        .send(),
                )
                .unwrap()
                .upload_id()
                .unwrap()
                .to_string();
            proxy.backdate(&id, 2 * HOUR);
            id
        })
        .collect();
    let p = w.path().join("migrate.toml");
    let cfg = w.config(&proxy.endpoint, "abandoned_upload_age = \"1h\"", "");
    std::fs::write(&p, cfg.replace("@LISTEN@", "127.0.0.1:1")).unwrap();
    let run = |args: &[&str]| {
        let out = stowaway_cmd()
            .arg("migrate")
            .arg("--config")
            .arg(&p)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{text}");
        text
    };
    let dry = run(&["--dry-run"]);
    assert_eq!(proxy.list_requests(), 0, "a dry run asked S3: {dry}");
    assert!(proxy.aborts().is_empty(), "{dry}");
    let log = run(&[]);
    let mut aborted = proxy.aborts();
    aborted.sort();
    let mut want = stale.clone();
    want.sort();
    assert_eq!(aborted, want, "{log}");
    assert!(stale.iter().all(|id| !upload_held(&s3, id)), "{log}");
    assert!(w.all_archived(), "{log}");
}

#[test]
fn without_list_multipart_uploads_the_lifecycle_rule_is_named_once() {
    let _g = serial();
    seed("leftovers_unsupported");
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "plain-bkt", true);
    w.write_files("p", 2, 512, 1024, 0);
    let cfg = w.config(&s3.endpoint, "abandoned_upload_age = \"1h\"", "");
    let st = spawn_serve(w.path(), &cfg, &[], &[], true);
    let rescans = wait_until(Duration::from_secs(30), || {
        metric(&st, "stowaway_rescans_total").unwrap_or(0) >= 4
    });
    assert!(rescans, "{}", st.log_text());
    let log = st.log_text();
    assert!(
        !log.contains("transient failure"),
        "an unsupported operation was retried: {log}"
    );
    assert_eq!(
        log.matches("AbortIncompleteMultipartUpload").count(),
        1,
        "{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("AbortIncompleteMultipartUpload"))
        .unwrap();
    for part in [
        "WARN",
        "does not implement ListMultipartUploads",
        "DaysAfterInitiation",
        "plain-bkt",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    let mut o = Oracle::default();
    finish(&mut o, &s3, &w, st, Duration::from_secs(60));
}

// ---- local trouble: a full archive, unreadable files -----------------------------------------

#[test]
fn archive_file_system_full() {
    let _g = serial();
    seed("archive_full");
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "full-bkt", true);
    let Some(tmpfs) = Tmpfs::mount(&w.path().join("small"), "1m") else {
        eprintln!(
            "SKIPPED archive_file_system_full: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)"
        );
        return;
    };
    w.archive = tmpfs.0.clone();
    // 12 × 200 KiB into 1 MiB: most cannot be archived.
    for i in 0..12u64 {
        w.add(&format!("full/f{i}.bin"), &bytes(i + 4242, 200 << 10));
    }
    let mut o = Oracle::default();
    let cfg = w.config(&s3.endpoint, "", "");
    let st = spawn_serve(w.path(), &cfg, &[], &[], true);
    assert!(
        wait_until(Duration::from_secs(30), || st
            .log_text()
            .matches("No space left on device")
            .count()
            >= 2),
        "{}",
        st.log_text()
    );
    o.fault(
        "ENOSPC",
        st.log_text().matches("No space left on device").count() as u64,
    );
    // Between copy attempts (no temp file), every file is whole in exactly one place.
    assert!(wait_until(Duration::from_secs(10), || temp_files(
        &w.archive
    )
    .is_empty()));
    o.check(&s3, &w, Phase::During, &BTreeSet::new());
    let stayed = w.files.iter().filter(|f| w.in_root(&f.rel)).count();
    assert!(stayed > 0, "the archive was never full");
    tmpfs.resize("32m");
    finish(&mut o, &s3, &w, st, Duration::from_secs(30));
    o.report("archive full");
    drop(tmpfs);
}

#[test]
fn unreadable_files_stay_until_readable() {
    let _g = serial();
    seed("unreadable");
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "unreadable-bkt", true);
    w.write_files("u", 6, 1 << 10, 8 << 10, 0);
    use std::os::unix::fs::PermissionsExt;
    let locked: Vec<String> = w.files.iter().take(2).map(|f| f.rel.clone()).collect();
    for rel in &locked {
        std::fs::set_permissions(w.root.join(rel), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    // Tests run as root, which reads mode-000 files anyway: drop the capabilities that allow it.
    let wrapper = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        "--",
    ];
    let probe = Command::new("setpriv")
        .args(&wrapper[1..4])
        .arg("cat")
        .arg(w.root.join(&locked[0]))
        .output();
    if !matches!(&probe, Ok(p) if !p.status.success()) {
        eprintln!(
            "SKIPPED unreadable_files_stay_until_readable: cannot make a file unreadable here (setpriv missing or no CAP_SETPCAP)"
        );
        return;
    }
    let mut o = Oracle::default();
    let st = spawn_serve(
        w.path(),
        &w.config(&s3.endpoint, "", ""),
        &wrapper,
        &[],
        true,
    );
    let readable: Vec<&Original> = w
        .files
        .iter()
        .filter(|f| !locked.contains(&f.rel))
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || readable
            .iter()
            .all(|f| !w.in_root(&f.rel))
            && st.log_text().matches("Permission denied").count() >= 2),
        "{}",
        st.log_text()
    );
    o.fault("unreadable file", locked.len() as u64);
    let stays: BTreeSet<String> = locked.iter().cloned().collect();
    o.check(&s3, &w, Phase::Final, &stays);
    for rel in &locked {
        std::fs::set_permissions(w.root.join(rel), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    finish(&mut o, &s3, &w, st, Duration::from_secs(30));
    o.report("unreadable files");
}

// ---- the clock --------------------------------------------------------------------------------

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// `X-Amz-Date` of a presigned URL, as Unix seconds.
fn amz_date(url: &str) -> u64 {
    let v = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Date="))
        .unwrap_or_else(|| panic!("no X-Amz-Date in {url}"));
    let n = |r: std::ops::Range<usize>| v[r].parse::<u64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days as u64 * 86_400 + hh * 3600 + mm * 60 + ss
}

/// stowaway's wall clock jumps forward by hours, back across a day boundary, and back to the
/// truth (libfaketime, changed while it runs; monotonic time is left alone). Every redirect is
/// signed for the clock stowaway has at that moment; once the clock is right again the URLs
/// work (no signing key of another day is reused), and the uploader loses nothing while S3
/// refuses its skewed requests.
#[test]
fn clock_jumps_keep_signing_windows_valid_and_lose_nothing() {
    let _g = serial();
    seed("clock_jumps");
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!(
            "SKIPPED clock_jumps_keep_signing_windows_valid_and_lose_nothing: libfaketime is not installed (apt-get install faketime); the signer's property test below still covers clock jumps"
        );
        return;
    }
    let s3 = S3Server::start();
    let mut w = World::new(&s3, "clock-bkt", true);
    w.write_files("t0", 4, 1 << 10, 4 << 10, 0);
    let clock = w.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let mut o = Oracle::default();
    let st = spawn_serve(w.path(), &w.config(&s3.endpoint, "", ""), &[], &env, true);
    assert!(
        wait_until(Duration::from_secs(30), || w.all_archived()),
        "{}",
        st.log_text()
    );
    o.check(&s3, &w, Phase::During, &BTreeSet::new());
    let probe = w.files[0].rel.clone();
    let want = std::fs::read(w.archive.join(&probe)).unwrap();
    let redirect = |st: &Stowaway| {
        let r = get(st.addr, &format!("/static/{probe}"));
        assert_eq!(r.status, 302, "{}", r.raw_head);
        r.header("location").unwrap().to_string()
    };
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    for (offset, secs, tag) in [
        ("+3h", 3 * 3600i64, "t1"),
        ("-1d", -86_400, "t2"),
        ("+0", 0, "t3"),
    ] {
        std::fs::write(&clock, format!("{offset}\n")).unwrap();
        o.fault(&format!("clock {offset}"), 1);
        // The signer follows the clock it has now (window 0s: X-Amz-Date is "now").
        let url = redirect(&st);
        let signed = amz_date(&url) as i64;
        let fake_now = now() as i64 + secs;
        assert!(
            (signed - fake_now).abs() <= 5,
            "{offset}: signed at {signed}, stowaway's clock says {fake_now}: {url}"
        );
        // New files keep arriving while the clock is off; S3 refuses skewed requests.
        w.write_files(tag, 3, 1 << 10, 4 << 10, 0);
        let _ = wait_until(Duration::from_secs(4), || w.all_archived());
        o.check(&s3, &w, Phase::During, &BTreeSet::new());
    }
    // The clock is right again: a fresh redirect downloads the object.
    let url = redirect(&st);
    let r = fetch_url("GET", &url);
    assert_eq!(
        (r.status, r.body == want),
        (200, true),
        "{url}: {}",
        r.raw_head
    );
    let skewed = st.log_text().matches("RequestTimeTooSkewed").count();
    eprintln!(
        "FAULTS clock jumps: {skewed} log lines with RequestTimeTooSkewed while the clock was off"
    );
    finish(&mut o, &s3, &w, st, Duration::from_secs(60));
    o.report("clock jumps");
}

mod signer {
    //! The presign signer with explicit times, jumping back and forth on one instance (its
    //! per-day signing-key cache must follow): every URL equals aws-sigv4's reference signature
    //! for that time, and is valid from at most `window` before the request until at least
    //! `expires` after it.
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::common::sigv4::{Presign, reference_presign};
    use proptest::prelude::*;
    use stowaway::config::{
        AddressingStyle, Finalize, Mount, S3Settings, Secret, UrlKind, UrlSettings,
    };
    use stowaway::paths::MountPrefix;
    use stowaway::url::{MountUrls, Signer, SigningCredentials};

    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn urls(window: u64, expires: u64) -> MountUrls {
        let s3 = S3Settings {
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            addressing_style: AddressingStyle::Path,
            access_key_id: None,
            secret_access_key: None,
        };
        let m = Mount {
            prefix: MountPrefix::parse("/static/").unwrap(),
            root: PathBuf::from("/tmp"),
            bucket: "bkt".into(),
            key_prefix: "p/".into(),
            url: UrlSettings {
                kind: UrlKind::Presigned,
                public_base_url: None,
                expires: Duration::from_secs(expires),
                window: Duration::from_secs(window),
                redirect_max_age: Duration::from_secs(60),
                response_content_disposition: None,
                response_content_type: None,
                response_cache_control: None,
            },
            upload: false,
            finalize: Finalize::Keep,
            archive_root: None,
            finalize_grace: Duration::ZERO,
            archive_retention: Duration::ZERO,
            ignore: vec![],
            serve_ignored: false,
            serve_archive_when_s3_down: true,
            tombstone_ttl: std::time::Duration::ZERO,
            tombstone_status: 404,
        };
        MountUrls::new(&s3, &m)
    }

    fn reference(urls: &MountUrls, method: &str, key: &str, at: u64, expires: u64) -> String {
        reference_presign(
            &urls.public_url(key),
            &Presign {
                access_key_id: "AKIDCLOCK",
                secret_access_key: SK,
                region: "eu-west-1",
                method,
                at: UNIX_EPOCH + Duration::from_secs(at),
                expires: Duration::from_secs(expires),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn signer_follows_clock_jumps(
            window in prop_oneof![Just(0u64), Just(60), Just(300), Just(3600)],
            expires in 1u64..86_400,
            // 2001 … 2100, in any order: jumps of seconds, days and decades, both ways.
            times in proptest::collection::vec(978_307_200u64..4_102_444_800, 1..12),
            method in prop_oneof![Just("GET"), Just("HEAD")],
        ) {
            let u = urls(window, expires);
            let signer = Signer::new("eu-west-1");
            signer.set_credentials(SigningCredentials {
                access_key_id: "AKIDCLOCK".into(),
                secret_access_key: Secret::new(SK),
                session_token: None,
                expires_at: None,
            });
            let mut times = times;
            // Revisit the first time after the others: a day's key must come back right.
            times.push(times[0]);
            for t in times {
                let got = signer.presign(&u, method, "a b/ü.jpg", UNIX_EPOCH + Duration::from_secs(t)).unwrap();
                let start = if window > 0 { t - t % window } else { t };
                let valid_for = window + expires;
                prop_assert_eq!(&got.url, &reference(&u, method, "a b/ü.jpg", start, valid_for));
                // Valid from the window start (≤ now) until at least now + expires.
                prop_assert!(start <= t && t - start <= window);
                prop_assert!(start + valid_for >= t + expires);
            }
        }
    }
}
