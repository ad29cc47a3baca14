//! Discovery by walking: full scans of every upload mount and immediate walks of directories
//! that appear (their files produce no events of their own). Results are streamed through a
//! bounded channel, so a walk of a million-file root holds a handful of paths in memory and
//! simply waits while the uploader is busy.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::ignore::Ignore;

/// What identifies a file's content at one instant without reading it: if any of these
/// changed, the file may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time: also moves on `utimes`, `rename`, `chmod`, which mtime alone misses.
    pub ctime_ns: i128,
    pub ino: u64,
    pub dev: u64,
}

impl FileStamp {
    /// The stamp of `lstat` metadata.
    pub fn from_meta(m: &Metadata) -> Self {
        FileStamp {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    /// Same inode, size and mtime; ctime is left out because a `rename` moves it.
    pub fn same_content(&self, other: &FileStamp) -> bool {
        self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.ino == other.ino
            && self.dev == other.dev
    }

    /// How long ago the file last changed (newest of mtime and ctime), by the wall clock;
    /// zero if that lies in the future.
    pub fn age(&self, now: SystemTime) -> Duration {
        let now_ns = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let changed = self.mtime_ns.max(self.ctime_ns);
        let age = now_ns - changed;
        if age <= 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(u64::try_from(age).unwrap_or(u64::MAX))
        }
    }
}

/// `lstat` of `path`: `Ok(Some)` for a regular file, `Ok(None)` when it is gone or is not a
/// regular file (symlink, directory, FIFO…), `Err` for other I/O errors.
pub fn stat_file(path: &Path) -> std::io::Result<Option<FileStamp>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(Some(FileStamp::from_meta(&m))),
        Ok(_) => Ok(None),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(20 /* ENOTDIR */) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A regular file found by a walk.
#[derive(Debug, Clone)]
pub struct Found {
    pub mount: usize,
    pub path: PathBuf,
    pub stamp: FileStamp,
    /// Found by a full scan (counts towards the backlog figures), not a subtree walk.
    pub full: bool,
}

/// What walkers send to the coordinator.
#[derive(Debug)]
pub enum ScanMsg {
    /// A regular, not ignored file.
    File(Found),
    /// A directory or entry that could not be read.
    Error { mount: usize, message: String },
    /// Nothing in this mount can be uploaded (checked before its walk starts).
    MountUnusable { mount: usize, message: String },
    /// A walk finished. `full` walks cover every mount; `dirs` is how many directories it
    /// walked (for a full scan with a recursive watch: about the number of watches).
    Done {
        dirs: u64,
        full: bool,
        started: Instant,
        completed: bool,
    },
}

/// One mount to walk.
#[derive(Debug, Clone)]
pub struct WalkTarget {
    pub mount: usize,
    pub root: PathBuf,
    pub ignore: Ignore,
}

/// Walks `start` (the mount root, or a directory inside it) without following symlinks and
/// sends every regular, not ignored file. Returns the number of directories walked, or
/// `None` if the receiver is gone (shutdown).
pub fn walk(
    target: &WalkTarget,
    start: &Path,
    full: bool,
    tx: &mpsc::Sender<ScanMsg>,
) -> Option<u64> {
    if start != target.root && target.ignore.path_ignored(&target.root, start) {
        return Some(0);
    }
    let mut dirs = 0;
    let it = walkdir::WalkDir::new(start)
        .follow_links(false)
        // A directory that is itself a symlink is not walked either.
        .follow_root_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !target.ignore.name_ignored(e.file_name()));
    for entry in it {
        let msg = match entry {
            Ok(e) if e.file_type().is_file() => match e.metadata() {
                Ok(m) => ScanMsg::File(Found {
                    mount: target.mount,
                    full,
                    stamp: FileStamp::from_meta(&m),
                    path: e.into_path(),
                }),
                // Vanished between readdir and lstat: nothing to do.
                Err(err)
                    if err.io_error().map(|i| i.kind()) == Some(std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(err) => ScanMsg::Error {
                    mount: target.mount,
                    message: err.to_string(),
                },
            },
            Ok(e) => {
                if e.file_type().is_dir() {
                    dirs += 1;
                }
                continue;
            }
            Err(err) => {
                if err.io_error().map(|i| i.kind()) == Some(std::io::ErrorKind::NotFound) {
                    continue;
                }
                ScanMsg::Error {
                    mount: target.mount,
                    message: err.to_string(),
                }
            }
        };
        if tx.blocking_send(msg).is_err() {
            return None;
        }
    }
    Some(dirs)
}

/// Walks every target in turn, then sends `Done`.
pub fn full_scan(targets: &[WalkTarget], tx: &mpsc::Sender<ScanMsg>) {
    let started = Instant::now();
    let mut completed = true;
    let mut dirs = 0;
    for t in targets {
        let Some(n) = walk(t, &t.root, true, tx) else {
            return;
        };
        dirs += n;
        // A root that cannot be read at all makes the scan incomplete (no backlog figures).
        if std::fs::read_dir(&t.root).is_err() {
            completed = false;
        }
    }
    let _ = tx.blocking_send(ScanMsg::Done {
        dirs,
        full: true,
        started,
        completed,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_skips_ignored_symlinks_and_specials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a/b/one.jpg"), b"1").unwrap();
        std::fs::write(root.join("two.txt"), b"22").unwrap();
        std::fs::write(root.join("x.tmp"), b"t").unwrap();
        std::fs::write(root.join(".hidden/secret.jpg"), b"s").unwrap();
        std::fs::write(outside.join("o.jpg"), b"o").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linkdir")).unwrap();
        std::os::unix::fs::symlink(outside.join("o.jpg"), root.join("link.jpg")).unwrap();
        let t = WalkTarget {
            mount: 0,
            root: root.clone(),
            ignore: Ignore::new(&[".*".into(), "*.tmp".into()]),
        };
        let (tx, mut rx) = mpsc::channel(64);
        std::thread::spawn(move || full_scan(&[t], &tx))
            .join()
            .unwrap();
        let mut files = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let ScanMsg::File(f) = m {
                files.push(
                    f.path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
        files.sort();
        assert_eq!(files, vec!["a/b/one.jpg", "two.txt"]);
    }

    #[test]
    fn stamps_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let s = stat_file(&p).unwrap().unwrap();
        assert_eq!(s.size, 3);
        assert!(s.age(SystemTime::now() + Duration::from_secs(10)) >= Duration::from_secs(9));
        assert_eq!(s.age(SystemTime::UNIX_EPOCH), Duration::ZERO);
        assert_eq!(stat_file(&dir.path().join("nope")).unwrap(), None);
        assert_eq!(
            stat_file(dir.path()).unwrap(),
            None,
            "a directory is not a candidate"
        );
        assert_eq!(stat_file(&p.join("under-a-file")).unwrap(), None);
    }
}
