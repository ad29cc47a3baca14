//! The file system is hostile: while `stowaway serve` watches, walks, hashes, uploads and
//! archives, attacker threads swap every component of the paths it works on for symlinks out
//! of the root — the file, its parent, its grandparent, the archive directory — and swap FIFOs
//! in for files. Outside the root lie canary files with the same relative names. Their bytes
//! must never reach S3, the archive or any response, and they must never move; the outside
//! archive target must stay empty; stowaway must not hang. Races attempted and escapes are
//! counted and printed (escapes must be 0).
//!
//! 60 s by default (CI); `STOWAWAY_THOROUGH=1` runs 300 s, `STOWAWAY_ADV_SECS=N` sets it.

mod common;

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;

const BUCKET: &str = "adversarial-bkt";
const CANARY: &[u8] = b"CANARY-OUTSIDE-THE-ROOT-5e1f0b";

fn run_for() -> Duration {
    if let Some(n) = std::env::var("STOWAWAY_ADV_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_secs(n);
    }
    let thorough = std::env::var("STOWAWAY_THOROUGH").is_ok_and(|v| v != "0" && !v.is_empty());
    Duration::from_secs(if thorough { 300 } else { 60 })
}

/// Every regular file below `dir` (not following symlinks) and whether it holds the canary.
fn files_with_canary(dir: &Path) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file()
                && std::fs::read(e.path())
                    .is_ok_and(|b| b.windows(CANARY.len()).any(|w| w == CANARY))
            {
                hits.push(e.path());
            }
        }
    }
    hits
}

/// Canary files outside the root, at the relative names the attackers use inside it.
const CANARY_NAMES: &[&str] = &[
    "file.txt",
    "sub/file.txt",
    "deep/x/sub/file.txt",
    "keys/id_rsa",
];

/// A canary's inode, mtime (ns) and bytes; `None` when it is gone.
type CanaryState = Option<(u64, i64, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot(Vec<(String, CanaryState)>);

fn snapshot(outside: &Path) -> Snapshot {
    Snapshot(
        CANARY_NAMES
            .iter()
            .map(|n| {
                let p = outside.join(n);
                // `None`: the canary is gone (moved into the archive, or deleted).
                let state = std::fs::symlink_metadata(&p).ok().map(|m| {
                    (
                        m.ino(),
                        m.mtime_nsec() + m.mtime() * 1_000_000_000,
                        std::fs::read(&p).unwrap_or_default(),
                    )
                });
                (n.to_string(), state)
            })
            .collect(),
    )
}

/// Replaces `path` (a directory or file) by a symlink to `target`, atomically for a directory
/// via rename-away; returns where the original went.
fn swap_dir_for_link(path: &Path, target: &Path, n: u64) -> Option<PathBuf> {
    let away = path.with_file_name(format!(
        "{}.real-{n}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::rename(path, &away).ok()?;
    symlink(target, path).ok()?;
    Some(away)
}

fn jitter(max_ms: u64) {
    std::thread::sleep(Duration::from_millis(fastrand_ms(max_ms)));
}

fn fastrand_ms(max: u64) -> u64 {
    // No extra dependency: the low bits of the clock are random enough for jitter.
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    n % (max + 1)
}

#[test]
fn symlink_swaps_never_let_outside_bytes_out() {
    let w = World::new(BUCKET);
    let (s3, dir, root, archive) = (&w.s3, w.path(), &w.root, &w.archive);
    let outside = dir.join("outside");
    let outside_archive = dir.join("outside-archive");
    for d in [&outside, &outside_archive] {
        std::fs::create_dir_all(d).unwrap();
    }
    for n in CANARY_NAMES {
        let mut body = CANARY.to_vec();
        body.extend_from_slice(format!(" {n}").as_bytes());
        write_file(&outside, n, &body);
    }
    let before = snapshot(&outside);

    let config = w.config(
        "uploading.toml",
        &[("settle", "100ms"), ("finalize", "archive")],
    );
    let st = Stowaway::start(dir, &config);

    let stop = Arc::new(AtomicBool::new(false));
    let races = Arc::new(AtomicU64::new(0));
    let escapes = Arc::new(AtomicU64::new(0));
    let probes = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    // The attackers: each loop creates legitimate files, lets the watcher see them, then swaps
    // one component of their path for a link out of the root, and back.
    type Attack = fn(&Path, &Path, &Path, &Path, usize, u64) -> Vec<String>;
    let attacks: Vec<(&str, Attack)> = vec![
        ("parent", |root, outside, _, _, i, n| {
            let d = root.join(format!("p{i}"));
            write_file(
                &d,
                "sub/file.txt",
                format!("LEGIT parent {i} {n}").as_bytes(),
            );
            write_file(&d, "keys/id_rsa", format!("LEGIT key {i} {n}").as_bytes());
            jitter(15);
            if let Some(away) = swap_dir_for_link(&d, outside, n) {
                jitter(25);
                let _ = std::fs::remove_file(&d);
                let _ = std::fs::rename(&away, &d);
            }
            vec![
                format!("/static/p{i}/sub/file.txt"),
                format!("/static/p{i}/keys/id_rsa"),
            ]
        }),
        ("grandparent", |root, outside, _, _, i, n| {
            let d = root.join(format!("g{i}"));
            write_file(&d, "x/sub/file.txt", format!("LEGIT gp {i} {n}").as_bytes());
            jitter(15);
            if let Some(away) = swap_dir_for_link(&d, &outside.join("deep"), n) {
                jitter(25);
                let _ = std::fs::remove_file(&d);
                let _ = std::fs::rename(&away, &d);
            }
            vec![format!("/static/g{i}/x/sub/file.txt")]
        }),
        ("file", |root, outside, _, _, i, n| {
            let d = root.join(format!("f{i}"));
            let f = write_file(&d, "file.txt", format!("LEGIT file {i} {n}").as_bytes());
            jitter(15);
            let link = d.join(format!(".link-{n}"));
            if symlink(outside.join("file.txt"), &link).is_ok() {
                let _ = std::fs::rename(&link, &f);
            }
            jitter(25);
            let _ = std::fs::remove_file(&f);
            vec![format!("/static/f{i}/file.txt")]
        }),
        ("fifo", |root, _, _, _, i, n| {
            let d = root.join(format!("q{i}"));
            let f = write_file(&d, "file.txt", format!("LEGIT fifo {i} {n}").as_bytes());
            jitter(15);
            let tmp = d.join(format!("fifo-{n}"));
            if std::process::Command::new("mkfifo")
                .arg(&tmp)
                .status()
                .is_ok_and(|s| s.success())
            {
                let _ = std::fs::rename(&tmp, &f);
            }
            jitter(25);
            let _ = std::fs::remove_file(&f);
            vec![format!("/static/q{i}/file.txt")]
        }),
        ("archive-side", |root, _, archive, outside_archive, i, n| {
            // The archive directory of these files is a link out at times.
            let a = archive.join(format!("a{i}"));
            let _ = std::fs::remove_dir_all(&a);
            let _ = std::fs::remove_file(&a);
            let _ = symlink(outside_archive, &a);
            write_file(
                &root.join(format!("a{i}")),
                &format!("file-{}.txt", n % 8),
                format!("LEGIT archive {i} {n}").as_bytes(),
            );
            jitter(40);
            let _ = std::fs::remove_file(&a);
            jitter(20);
            vec![format!("/static/a{i}/file-{}.txt", n % 8)]
        }),
    ];
    let deadline = Instant::now() + run_for();
    for (name, attack) in attacks {
        for i in 0..2usize {
            let (root, outside, archive, oa) = (
                root.clone(),
                outside.clone(),
                archive.clone(),
                outside_archive.clone(),
            );
            let (stop, races, escapes, probes) =
                (stop.clone(), races.clone(), escapes.clone(), probes.clone());
            let addr = st.addr;
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Relaxed) && Instant::now() < deadline {
                    let targets = attack(&root, &outside, &archive, &oa, i, n);
                    races.fetch_add(1, Relaxed);
                    // Ask for the paths in whatever state they are now: a redirect must never
                    // lead to canary bytes, no answer may carry them.
                    for t in targets {
                        let r = request(addr, "GET", &t, &[]);
                        probes.fetch_add(1, Relaxed);
                        let mut leaked = r
                            .raw_head
                            .as_bytes()
                            .windows(CANARY.len())
                            .any(|w| w == CANARY)
                            || r.body.windows(CANARY.len()).any(|w| w == CANARY);
                        if r.status == 302
                            && let Some(loc) = r.header("location")
                        {
                            let o = fetch_url("GET", loc);
                            leaked |= o.body.windows(CANARY.len()).any(|w| w == CANARY);
                        }
                        if leaked {
                            eprintln!("ESCAPE ({name}): a response for {t} carried canary bytes");
                            escapes.fetch_add(1, Relaxed);
                        }
                    }
                    n += 1;
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    // Leave everything legitimate behind and let the uploader finish: every remaining regular
    // file in the root must be migrated (the links are gone, nothing is refused any more).
    let leftover_links = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if !ft.is_file() {
                    v.push(e.path());
                }
            }
        }
        v
    };
    for p in leftover_links(root) {
        let _ = std::fs::remove_file(p);
    }
    for p in leftover_links(archive) {
        let _ = std::fs::remove_file(p);
    }
    let regular_files = |root: &Path| {
        let mut n = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file()
                    && !e.file_name().to_string_lossy().starts_with(".stowaway-rm.")
                {
                    // (A file the app replaced twice within one finalize step is kept under a
                    // private name by design, unverified; it is never an escape.)
                    n.push(e.path());
                }
            }
        }
        n
    };
    let drain_start = Instant::now();
    let left_at_start = regular_files(root).len();
    let drained = wait_until(Duration::from_secs(90), || regular_files(root).is_empty());
    eprintln!(
        "adversarial fs: {left_at_start} files left when the races stopped, drained in {:?}",
        drain_start.elapsed()
    );

    // The verdicts.
    let mut problems = Vec::new();
    for hit in files_with_canary(&s3.data) {
        problems.push(format!("canary bytes reached S3: {}", hit.display()));
    }
    for hit in files_with_canary(archive) {
        problems.push(format!(
            "canary bytes reached the archive: {}",
            hit.display()
        ));
    }
    for hit in files_with_canary(root) {
        problems.push(format!("canary bytes inside the root: {}", hit.display()));
    }
    let after = snapshot(&outside);
    for ((name, was), (_, now)) in before.0.iter().zip(after.0.iter()) {
        if was != now {
            problems.push(format!(
                "the canary file outside the root {name} was {}",
                if now.is_none() {
                    "moved away"
                } else {
                    "changed"
                }
            ));
        }
    }
    let extra: Vec<_> = std::fs::read_dir(&outside_archive)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "files were archived outside the archive root: {extra:?}"
        ));
    }
    escapes.fetch_add(problems.len() as u64, Relaxed);
    let uploaded = s3.list(BUCKET).len();
    eprintln!(
        "adversarial fs: {} races attempted, {} requests probed, {} objects uploaded, {} escapes",
        races.load(Relaxed),
        probes.load(Relaxed),
        uploaded,
        escapes.load(Relaxed)
    );
    let alive = get(st.addr, "/healthz").status == 200;
    assert!(alive, "stowaway stopped answering: {}", st.log_text());
    assert!(
        problems.is_empty() && escapes.load(Relaxed) == 0,
        "escapes: {problems:#?}"
    );
    assert!(
        uploaded > 0,
        "nothing was uploaded: the races did not exercise the pipeline"
    );
    if !drained {
        let left = regular_files(root);
        let log = st.log_text();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "legitimate files were not all migrated after the races ({} left, e.g. {:?}); log tail: {tail:#?}",
            left.len(),
            &left[..left.len().min(10)]
        );
    }
    assert!(
        !st.log_text().contains("panicked"),
        "stowaway panicked: {}",
        st.log_text()
    );
}

/// `finalize = "delete"` and `"archive"` against an app that keeps replacing its files
/// (write a temp file, rename it over the name) while they are uploaded, verified and
/// finalized: the newest bytes the app wrote must survive, locally or in S3 (and in the archive
/// when archiving), for every file, every time.
#[test]
fn a_replacing_writer_never_loses_its_newest_bytes() {
    for finalize in ["delete", "archive"] {
        let w = World::new(BUCKET);
        let (s3, dir, root, archive) = (&w.s3, w.path(), &w.root, &w.archive);
        let config = w.config(
            "uploading.toml",
            &[("settle", "20ms"), ("finalize", finalize)],
        );
        let _st = Stowaway::start(dir, &config);
        let names: Vec<String> = (0..6).map(|i| format!("w/{i}/photo.jpg")).collect();
        let deadline = Instant::now() + run_for() / 4;
        let mut last: Vec<Vec<u8>> = vec![Vec::new(); names.len()];
        let mut versions = 0u64;
        let mut n = 0u64;
        while Instant::now() < deadline {
            for (i, name) in names.iter().enumerate() {
                let body = format!("{name} version {n} ").repeat(50).into_bytes();
                let p = root.join(name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let tmp = p.with_file_name(format!(".new-{n}"));
                std::fs::write(&tmp, &body).unwrap();
                std::fs::rename(&tmp, &p).unwrap();
                last[i] = body;
                versions += 1;
            }
            n += 1;
            jitter(30);
        }
        // Every name ends with its newest version local, or migrated (and archived).
        let settled = |i: usize| {
            let p = root.join(&names[i]);
            match std::fs::read(&p) {
                Ok(b) => b == last[i],
                Err(_) => {
                    s3.get(BUCKET, &names[i]).as_deref() == Some(&last[i][..])
                        && (finalize != "archive"
                            || std::fs::read(archive.join(&names[i])).ok().as_deref()
                                == Some(&last[i][..]))
                }
            }
        };
        let ok = wait_until(Duration::from_secs(30), || {
            (0..names.len()).all(|i| !root.join(&names[i]).exists() && settled(i))
        });
        let lost: Vec<&String> = (0..names.len())
            .filter(|&i| !settled(i))
            .map(|i| &names[i])
            .collect();
        eprintln!(
            "replacing writer ({finalize}): {versions} versions written, {} names lost their newest bytes",
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "{finalize}: newest bytes lost for {lost:?}"
        );
        assert!(ok, "{finalize}: not every file was migrated in the end");
    }
}
