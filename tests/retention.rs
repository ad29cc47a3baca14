//! Issue 16, item 3: `archive_retention` prunes archived files older than the retention whose
//! object is still verified in S3 — never one whose object is missing, different or cannot be
//! asked (S3 stopped), never through a symlink. Files are archived by the real `migrate` (so
//! the objects carry what the uploader stores), pruned by the real `prune-archive` and by
//! `serve`, against s3s-fs.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

const BUCKET: &str = "retention-bucket";
/// Content of a file outside the archive that a symlink in it points at.
const OUTSIDE: &[u8] = b"outside the archive, never to be removed";

/// The config with `retention`, written for the one-shot commands.
fn write_cfg(w: &World, retention: &str) -> PathBuf {
    let p = w.path().join(format!("retention-{retention}.toml"));
    let text = w
        .config("retention.toml", &[("retention", retention)])
        .replace("@LISTEN@", "127.0.0.1:1");
    std::fs::write(&p, text).unwrap();
    p
}

fn run(cfg: &Path, args: &[&str]) -> Output {
    stowaway_cmd()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Every file below `dir` (not following symlinks), relative, with what identifies its state.
fn tree(dir: &Path) -> BTreeMap<String, (u64, u64, i64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                pending.push(e.path());
            }
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.insert(
                rel,
                (m.ino(), m.size(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()),
            );
        }
    }
    out
}

/// Waits until every entry below `dir` last changed more than `age` ago (by its ctime, the
/// clock retention uses).
fn wait_older(dir: &Path, age: Duration) {
    let ok = wait_until(Duration::from_secs(20), || {
        tree(dir).keys().all(|rel| {
            let m = std::fs::symlink_metadata(dir.join(rel)).unwrap();
            let changed =
                std::time::UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32);
            changed.elapsed().is_ok_and(|e| e > age)
        })
    });
    assert!(ok, "files below {} never got {age:?} old", dir.display());
}

/// A world whose root files were migrated (uploaded, verified, archived) by `migrate`.
fn migrated(files: &[(&str, Vec<u8>)]) -> (World, PathBuf) {
    let w = World::new(BUCKET);
    for (rel, body) in files {
        write_file(&w.root, rel, body);
    }
    let cfg = write_cfg(&w, "1s");
    wait_older(&w.root, Duration::from_millis(150));
    let o = run(&cfg, &["migrate"]);
    assert!(o.status.success(), "migrate: {}", text(&o.stderr));
    for (rel, _) in files {
        assert!(w.in_archive(rel), "{rel} archived: {}", text(&o.stderr));
    }
    (w, cfg)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)))
}

/// `path → (action, reason)` of a `--json` report.
fn entries(v: &serde_json::Value, archive: &Path) -> BTreeMap<String, (String, String)> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let p = PathBuf::from(e["path"].as_str().unwrap());
            (
                p.strip_prefix(archive).unwrap().display().to_string(),
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn only_old_files_still_verified_in_s3_are_pruned() {
    let files = [
        ("keep-verified.jpg", bytes(1, 3000)),
        ("sub/deeper/two.jpg", bytes(2, 70_000)),
        ("corrupt.jpg", bytes(3, 4000)),
        ("deleted.jpg", bytes(4, 5000)),
        ("changed.jpg", bytes(5, 6000)),
    ];
    let (w, cfg) = migrated(&files);
    let archive = w.archive.clone();
    // The object now holds other bytes of the same size; another object is gone; an archived
    // file was changed (its object is still the old content).
    w.s3.put(BUCKET, "static/corrupt.jpg", &bytes(33, 4000));
    w.s3.delete(BUCKET, "static/deleted.jpg");
    std::fs::write(archive.join("changed.jpg"), bytes(55, 6000)).unwrap();
    // Symlinks in the archive, each pointing at a file whose content S3 holds under the
    // symlink's key: never followed, never removed.
    let outside = write_file(w.path(), "outside/secret.jpg", OUTSIDE);
    std::os::unix::fs::symlink(&outside, archive.join("link.jpg")).unwrap();
    std::os::unix::fs::symlink(outside.parent().unwrap(), archive.join("linkdir")).unwrap();
    w.s3.put(BUCKET, "static/link.jpg", OUTSIDE);
    w.s3.put(BUCKET, "static/linkdir/secret.jpg", OUTSIDE);
    wait_older(&archive, Duration::from_millis(1100));

    // A dry run verifies and reports, and changes nothing at all.
    let before = tree(&archive);
    let o = run(&cfg, &["prune-archive", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let v = json(&o);
    let expected = |verified: &str| {
        BTreeMap::from(
            [
                ("keep-verified.jpg", (verified, "verified")),
                ("sub/deeper/two.jpg", (verified, "verified")),
                ("corrupt.jpg", ("kept", "object_different")),
                ("deleted.jpg", ("kept", "object_missing")),
                ("changed.jpg", ("kept", "object_different")),
                ("link.jpg", ("kept", "not_regular")),
                ("linkdir", ("kept", "not_regular")),
            ]
            .map(|(p, (a, r))| (p.to_string(), (a.to_string(), r.to_string()))),
        )
    };
    assert_eq!(entries(&v, &archive), expected("would_prune"), "{v:#}");
    assert_eq!(v["mounts"][0]["would_prune_files"], 2, "{v:#}");
    assert_eq!(v["mounts"][0]["kept_unverified"], 3, "{v:#}");
    assert_eq!(v["dry_run"], true);
    assert_eq!(tree(&archive), before, "the dry run touched nothing");

    let o = run(&cfg, &["prune-archive", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let v = json(&o);
    assert_eq!(entries(&v, &archive), expected("pruned"), "{v:#}");
    assert_eq!(v["mounts"][0]["pruned_files"], 2);
    assert_eq!(v["mounts"][0]["pruned_bytes"], 73_000);
    assert!(!w.in_archive("keep-verified.jpg"));
    assert!(!w.in_archive("sub"), "emptied directories go");
    for kept in ["corrupt.jpg", "deleted.jpg", "changed.jpg"] {
        assert!(w.in_archive(kept), "{kept}");
    }
    assert_eq!(
        std::fs::read(archive.join("changed.jpg")).unwrap(),
        bytes(55, 6000)
    );
    assert!(std::fs::symlink_metadata(archive.join("link.jpg")).is_ok());
    assert!(std::fs::symlink_metadata(archive.join("linkdir")).is_ok());
    assert_eq!(std::fs::read(&outside).unwrap(), OUTSIDE);
    // Pruning never touches S3.
    assert_eq!(
        w.s3.get(BUCKET, "static/keep-verified.jpg").unwrap(),
        bytes(1, 3000)
    );
    assert!(archive.is_dir());

    // In words, on a pipe: one line per kept file with the reason, a summary per mount.
    let o = run(&cfg, &["prune-archive"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!(
            "kept {}: the object is missing in S3 (s3://{BUCKET}/static/deleted.jpg)",
            archive.join("deleted.jpg").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("kept") && out.contains("the object differs: "),
        "{out}"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("prune-archive /static/ (older than 1s): 0 file(s) pruned (0 B); 3 kept unverified; 2 kept (other); 0 younger"),
        "{err}"
    );
}

#[test]
fn young_files_are_kept() {
    // An app's file from 2019 (its mtime), archived just now: young, by the time it was
    // archived, not by the app's mtime, which the archive move keeps.
    let w = World::new(BUCKET);
    write_file(&w.root, "a.jpg", &bytes(7, 100));
    write_file(&w.root, "b/c.jpg", &bytes(8, 200));
    let y2019 = std::time::UNIX_EPOCH + Duration::from_secs(1_560_000_000);
    for f in ["a.jpg", "b/c.jpg"] {
        let file = std::fs::File::options()
            .write(true)
            .open(w.root.join(f))
            .unwrap();
        file.set_modified(y2019).unwrap();
    }
    wait_older(&w.root, Duration::from_millis(150));
    let o = run(&write_cfg(&w, "1s"), &["migrate"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let archived = std::fs::metadata(w.archive.join("a.jpg")).unwrap();
    assert_eq!(
        archived.modified().unwrap(),
        y2019,
        "the archive keeps the mtime"
    );
    let cfg = write_cfg(&w, "30d");
    let before = tree(&w.archive);
    let o = run(&cfg, &["prune-archive"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("0 file(s) pruned (0 B); 0 kept unverified; 0 kept (other); 2 younger"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(tree(&w.archive), before);
}

#[test]
fn nothing_is_pruned_while_s3_is_down() {
    let (w, cfg) = migrated(&[("a.jpg", bytes(9, 100)), ("b.jpg", bytes(10, 200))]);
    wait_older(&w.archive, Duration::from_millis(1100));
    let before = tree(&w.archive);
    w.s3.pause();
    let o = run(&cfg, &["prune-archive"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("stopped: S3 cannot be asked"), "{err}");
    assert_eq!(tree(&w.archive), before, "nothing pruned");
    // Back: pruned.
    w.s3.resume();
    let o = run(&cfg, &["prune-archive"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!w.in_archive("a.jpg") && !w.in_archive("b.jpg"));
}

#[test]
fn serve_prunes_after_migrating_and_counts() {
    let w = World::new(BUCKET);
    // An archived file nobody uploaded: kept, counted as unverified.
    write_file(&w.archive, "orphan.jpg", b"no object");
    let cfg = w.config("retention.toml", &[("retention", "1s")]);
    let st = w.start(&cfg);
    write_file(&w.root, "photos/new.jpg", &bytes(11, 9000));
    assert!(
        wait_until(Duration::from_secs(30), || w.in_archive("photos/new.jpg")),
        "archived: {}",
        st.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || !w.in_archive("photos/new.jpg")),
        "pruned: {}",
        st.log_text()
    );
    assert_eq!(
        w.s3.get(BUCKET, "static/photos/new.jpg").unwrap(),
        bytes(11, 9000)
    );
    assert!(w.in_archive("orphan.jpg"));
    let metrics = || text(&get(st.addr, "/metrics").body);
    let value = |m: &str, name: &str| -> Option<f64> {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = metrics();
            value(&m, "stowaway_archive_pruned_total") == Some(1.0)
                && value(&m, "stowaway_archive_pruned_bytes_total") == Some(9000.0)
                && value(&m, "stowaway_archive_kept_unverified_total").is_some_and(|v| v >= 1.0)
        }),
        "{}",
        metrics()
    );
    let log = st.log_text();
    assert!(log.contains("archived file pruned"), "{log}");
    assert!(
        log.contains("kept: S3 does not vouch for it") && log.contains("orphan.jpg"),
        "{log}"
    );
}
