//! The start-up scan: rebuilds the index from the cache directory, in the background (serving
//! goes on; fills wait for it). Files the journal vouches for (same key, inode and size) are
//! kept; every other file, symlink or special file is counted and removed; temp files of
//! processes that are gone are removed; the journal is rewritten with what was kept.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType};

use super::index::{self, Record};
use super::layout::{JOURNAL, Layout, OWN_PREFIX, STATS, TEMP_PREFIX};
use crate::beneath;

/// What a scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Our files: record and disk bytes.
    pub kept: Vec<(Record, u64)>,
    /// Files stowaway did not write (removed).
    pub foreign: u64,
    /// Temp files of dead processes (removed).
    pub stale_temps: u64,
}

/// Scans `layout`'s directory. Blocking: run it off the request workers.
pub fn scan(layout: &Layout) -> std::io::Result<Scanned> {
    let root = layout.root_fd()?;
    let journal = index::read(root.as_fd())?;
    let mut out = Scanned::default();
    walk(&root, PathBuf::new(), &journal, &mut out, 0)?;
    let records: Vec<Record> = out.kept.iter().map(|(r, _)| r.clone()).collect();
    // A failed rewrite (full disk) is not a failed scan: the old journal stays and still
    // vouches for every file kept; failing here would leave them all untracked.
    if let Err(e) = index::rewrite(root.as_fd(), &records) {
        tracing::warn!(error = %e, "cache: cannot rewrite the journal, the old one stays");
    }
    Ok(out)
}

/// How deep the scan walks (no loop: nothing is followed anyway). Keys may be deeper (1 KiB
/// of `a/`), so [`super::MountCache::miss`] never caches one with this many `/`.
pub const MAX_DEPTH: usize = 64;

// Stat field widths differ per architecture, hence the casts.
#[allow(clippy::unnecessary_cast)]
fn walk(
    dir: &OwnedFd,
    rel: PathBuf,
    journal: &std::collections::HashMap<String, Record>,
    out: &mut Scanned,
    depth: usize,
) -> std::io::Result<()> {
    for (name, kind) in beneath::read_dir(dir)? {
        let os = beneath::os(&name);
        let Ok(st) = rustix::fs::statat(dir.as_fd(), os, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let kind = match kind {
            FileType::Unknown => FileType::from_raw_mode(st.st_mode),
            k => k,
        };
        let top = depth == 0;
        if top && name.starts_with(TEMP_PREFIX.as_bytes()) {
            if temp_is_stale(&name) || older_than_a_day(&st) {
                let _ = beneath::unlink_at(dir.as_fd(), os);
                out.stale_temps += 1;
            }
            continue;
        }
        // Ours only as regular files: anything else under these names was planted, and a
        // directory there would make the journal's rewrite (a rename onto it) fail the scan.
        if top
            && (name == JOURNAL.as_bytes() || name == STATS.as_bytes())
            && kind == FileType::RegularFile
        {
            continue;
        }
        let path = rel.join(os);
        match kind {
            FileType::Directory if depth < MAX_DEPTH => {
                let sub = rustix::fs::openat(
                    dir.as_fd(),
                    os,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                );
                // Gone or swapped for a link since the stat: skipped, not fatal. A failed scan
                // would leave every file on disk untracked, which one entry must not cause.
                let walked = match sub {
                    Ok(sub) => walk(&sub, path.clone(), journal, out, depth + 1),
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = walked {
                    tracing::warn!(entry = %path.display(), error = %e, "cache: skipping a directory the scan cannot walk");
                    continue;
                }
                // Emptied (or always empty) directories go too; a non-empty one stays.
                let _ = beneath::rmdir_at(dir.as_fd(), os);
            }
            FileType::RegularFile => {
                let key = path.to_str().map(str::to_string);
                let ours = key.as_deref().and_then(|k| journal.get(k)).filter(|r| {
                    r.ino == st.st_ino as u64
                        && r.size == st.st_size.max(0) as u64
                        && r.mtime_ns == mtime_ns(&st)
                });
                // Our own names are never cached keys.
                let own = name.starts_with(OWN_PREFIX.as_bytes());
                match ours {
                    Some(r) if !own => {
                        let bytes = st.st_blocks as u64 * 512;
                        out.kept.push((r.clone(), bytes));
                    }
                    _ => {
                        tracing::info!(file = %path.display(), "cache: removing a file stowaway did not write");
                        let _ = beneath::unlink_at(dir.as_fd(), os);
                        out.foreign += 1;
                    }
                }
            }
            _ => {
                tracing::info!(entry = %path.display(), "cache: removing an entry that is not a cached file");
                let _ = beneath::unlink_at(dir.as_fd(), os);
                out.foreign += 1;
            }
        }
    }
    Ok(())
}

/// Modification time in nanoseconds: with the inode and size, what tells our file from one
/// that reused its inode number.
#[allow(clippy::unnecessary_cast)]
pub fn mtime_ns(st: &rustix::fs::Stat) -> i64 {
    (st.st_mtime as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

/// No fill lasts a day: a temp file that old is left over even if its pid was reused since.
fn older_than_a_day(st: &rustix::fs::Stat) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    #[allow(clippy::unnecessary_cast)]
    let mtime = (st.st_mtime as i64).max(0) as u64;
    now.saturating_sub(mtime) > 86_400
}

/// A temp file whose process is gone: `.stowaway-cache-tmp.<pid>.<n>` with no `/proc/<pid>`
/// (or a name that carries no pid).
fn temp_is_stale(name: &[u8]) -> bool {
    let rest = &name[TEMP_PREFIX.len()..];
    let pid = std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.split('.').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(p) if p == std::process::id() => false,
        Some(p) => !Path::new(&format!("/proc/{p}")).exists(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn keeps_ours_removes_foreign_and_dead_temps() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"ours").unwrap();
        l.install(&t, "a/ours.jpg").unwrap();
        let st = rustix::fs::stat(dir.join("a/ours.jpg")).unwrap();
        let root = l.root_fd().unwrap();
        index::append(
            root.as_fd(),
            &Record {
                key: "a/ours.jpg".into(),
                ino: st.st_ino as u64,
                size: 4,
                mtime_ns: mtime_ns(&st),
                etag: "e".into(),
            },
        )
        .unwrap();
        std::fs::write(dir.join("a/foreign.jpg"), b"x").unwrap();
        std::fs::create_dir_all(dir.join("empty/deeper")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        // A temp of a live process (ours) stays, one of a dead pid goes.
        let (_f2, live) = l.temp().unwrap();
        std::fs::write(dir.join(format!("{TEMP_PREFIX}999999999.0")), b"half").unwrap();
        // …and so does one of a live pid (reused since) that is days old.
        let (old, old_name) = l.temp().unwrap();
        old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400))
            .unwrap();
        let s = scan(&l).unwrap();
        assert_eq!(s.kept.len(), 1);
        assert_eq!(s.kept[0].0.key, "a/ours.jpg");
        assert!(s.kept[0].1 > 0);
        assert_eq!(s.foreign, 2, "{s:?}");
        assert_eq!(s.stale_temps, 2);
        assert!(!dir.join(&old_name).exists());
        assert!(dir.join("a/ours.jpg").exists());
        assert!(!dir.join("a/foreign.jpg").exists());
        assert!(!dir.join("empty").exists());
        assert!(dir.join(&live).exists());
        // Same name, other inode: not ours any more.
        std::fs::remove_file(dir.join("a/ours.jpg")).unwrap();
        std::fs::write(dir.join("a/ours.jpg"), b"evil").unwrap();
        let s = scan(&l).unwrap();
        assert!(s.kept.is_empty());
        assert!(!dir.join("a/ours.jpg").exists());
    }

    /// A journal line torn inside a multi-byte character (a full disk mid-append) must not
    /// fail the scan: the index would start empty while every file stays on disk, sent by the
    /// front server and never revalidated, evicted or counted.
    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn a_journal_torn_mid_character_still_scans() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"ours").unwrap();
        l.install(&t, "фото.jpg").unwrap();
        let st = rustix::fs::stat(dir.join("фото.jpg")).unwrap();
        let root = l.root_fd().unwrap();
        let rec = |key: &str| Record {
            key: key.into(),
            ino: st.st_ino as u64,
            size: 4,
            mtime_ns: mtime_ns(&st),
            etag: "e".into(),
        };
        index::append(root.as_fd(), &rec("фото.jpg")).unwrap();
        let torn = serde_json::to_vec(&rec("снимок.jpg")).unwrap();
        let cut = torn.iter().position(|&b| b >= 0x80).unwrap() + 1;
        std::io::Write::write_all(
            &mut std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join(JOURNAL))
                .unwrap(),
            &torn[..cut],
        )
        .unwrap();
        let s = scan(&l).unwrap();
        assert_eq!(s.kept.len(), 1, "{s:?}");
        assert!(dir.join("фото.jpg").exists());
        // …and a journal that is not a file at all (planted link): everything is a stranger's.
        std::fs::remove_file(dir.join(JOURNAL)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join(JOURNAL)).unwrap();
        let s = scan(&l).unwrap();
        assert!(s.kept.is_empty());
        assert!(!dir.join("фото.jpg").exists());
        assert!(dir.join(JOURNAL).is_file() && !dir.join(JOURNAL).is_symlink());
    }

    /// A FIFO planted as the journal: the scan must not block on it (the index would never be
    /// rebuilt and fills never start); it is replaced like any unreadable journal.
    #[test]
    fn a_fifo_planted_as_the_journal_never_blocks_the_scan() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(dir.join(JOURNAL))
            .status()
            .unwrap();
        assert!(st.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(scan(&l).map(|s| s.kept.len()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert!(matches!(got, Ok(Ok(0))), "{got:?}");
        assert!(dir.join(JOURNAL).is_file());
    }

    /// A directory swapped for a symlink between the scan's stat and its open: that entry is
    /// skipped, the scan goes on (a failed scan leaves every file on disk untracked).
    #[test]
    fn a_directory_swapped_during_the_scan_does_not_fail_it() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        std::fs::create_dir_all(dir.join("d/e")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::fs::create_dir_all(dir.join("d/e"));
                    let _ = std::fs::rename(dir.join("d"), dir.join("d.real"));
                    let _ = std::os::unix::fs::symlink("/tmp", dir.join("d"));
                    std::thread::sleep(std::time::Duration::from_micros(50));
                    let _ = std::fs::remove_file(dir.join("d"));
                    let _ = std::fs::rename(dir.join("d.real"), dir.join("d"));
                }
            })
        };
        let end = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let mut failed = None;
        while std::time::Instant::now() < end && failed.is_none() {
            failed = scan(&l).err();
        }
        stop.store(true, Ordering::Relaxed);
        attacker.join().unwrap();
        assert!(failed.is_none(), "{failed:?}");
    }

    /// A directory planted as the journal: the scan removes it like any stranger's entry and
    /// writes a new journal (it failed instead, leaving every cached file untracked).
    #[test]
    fn a_directory_planted_as_the_journal_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"old").unwrap();
        l.install(&t, "cached.jpg").unwrap();
        std::fs::create_dir(dir.join(JOURNAL)).unwrap();
        std::fs::write(dir.join(JOURNAL).join("x"), b"x").unwrap();
        let s = scan(&l).unwrap();
        assert!(s.kept.is_empty());
        assert!(!dir.join("cached.jpg").exists());
        assert!(dir.join(JOURNAL).is_file());
    }

    /// The journal cannot be rewritten (a full disk; here its temp name is taken): the scan
    /// still returns what it kept, vouched for by the old journal, which stays.
    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn a_failed_journal_rewrite_keeps_the_scan() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"ours").unwrap();
        l.install(&t, "k.jpg").unwrap();
        let st = rustix::fs::stat(dir.join("k.jpg")).unwrap();
        let root = l.root_fd().unwrap();
        let rec = Record {
            key: "k.jpg".into(),
            ino: st.st_ino as u64,
            size: 4,
            mtime_ns: mtime_ns(&st),
            etag: "e".into(),
        };
        index::append(root.as_fd(), &rec).unwrap();
        let blocker = dir.join(format!("{TEMP_PREFIX}{}.journal", std::process::id()));
        std::fs::create_dir_all(blocker.join("x")).unwrap();
        let s = scan(&l).unwrap();
        assert_eq!(s.kept.len(), 1);
        assert!(index::read(root.as_fd()).unwrap().contains_key("k.jpg"));
    }
}
