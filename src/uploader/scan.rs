//! Discovery by walking: full scans of every upload mount and immediate walks of directories
//! that appear (their files produce no events of their own). Results are streamed through a
//! bounded channel, so a walk of a million-file root holds a handful of paths in memory and
//! simply waits while the uploader is busy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rustix::fs::FileType;
use tokio::sync::mpsc;

pub use crate::beneath::FileStamp;
use crate::beneath::{self, DirHandle, Lookup};
use crate::ignore::Ignore;

/// The stamp of the regular file `path` below `root`, resolved beneath the root handle:
/// `Ok(None)` when it is gone, outside the root, reached through a symlink, or not a regular
/// file (symlink, directory, FIFO…); `Err` for other I/O errors.
pub fn stat_beneath(root: &DirHandle, path: &Path) -> std::io::Result<Option<FileStamp>> {
    let Some(rel) = root.relative(path) else {
        return Ok(None);
    };
    match root.lookup(rel)? {
        Lookup::File(s) => Ok(Some(s)),
        _ => Ok(None),
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
    /// The root, opened once; every walk and lookup is resolved beneath it.
    pub dir: Arc<DirHandle>,
    pub ignore: Ignore,
}

impl WalkTarget {
    /// The mount's target, if its root can be opened.
    pub fn open(mount: usize, root: &Path, ignore: Ignore) -> std::io::Result<WalkTarget> {
        Ok(WalkTarget {
            mount,
            root: root.to_path_buf(),
            dir: Arc::new(DirHandle::open(root)?),
            ignore,
        })
    }
}

/// Walks `start` (the mount root, or a directory inside it) and sends every regular, not
/// ignored file. Every directory is opened beneath the root handle by its relative path
/// (`openat2`, no symlinks): a directory swapped for a symlink at any instant of the walk is
/// refused by the kernel, not entered. Returns the number of directories walked, or `None` if
/// the receiver is gone (shutdown).
pub fn walk(
    target: &WalkTarget,
    start: &Path,
    full: bool,
    tx: &mpsc::Sender<ScanMsg>,
) -> Option<u64> {
    let Some(start_rel) = target.dir.relative(start) else {
        return Some(0);
    };
    if target.ignore.path_ignored(&target.root, start) && !start_rel.as_os_str().is_empty() {
        return Some(0);
    }
    let mut dirs = 0;
    let mut pending: Vec<PathBuf> = vec![start_rel.to_path_buf()];
    while let Some(rel) = pending.pop() {
        let fd = match target.dir.open_dir(&rel) {
            Ok(fd) => fd,
            // Gone, or swapped for a symlink / a file since it was listed: nothing to walk.
            Err(e) if beneath::is_missing(&e) || beneath::is_refused(&e) => continue,
            Err(e) => {
                let msg = ScanMsg::Error {
                    mount: target.mount,
                    message: format!("cannot open {}: {e}", target.root.join(&rel).display()),
                };
                if tx.blocking_send(msg).is_err() {
                    return None;
                }
                continue;
            }
        };
        dirs += 1;
        let entries = match beneath::read_dir(&fd) {
            Ok(e) => e,
            Err(e) => {
                let msg = ScanMsg::Error {
                    mount: target.mount,
                    message: format!("cannot read {}: {e}", target.root.join(&rel).display()),
                };
                if tx.blocking_send(msg).is_err() {
                    return None;
                }
                continue;
            }
        };
        for (name, mut ft) in entries {
            let name = beneath::os(&name);
            if target.ignore.name_ignored(name) {
                continue;
            }
            if ft == FileType::Unknown {
                ft = match beneath::type_at(beneath::fd(&fd), name) {
                    Ok(Some(t)) => t,
                    _ => continue,
                };
            }
            match ft {
                FileType::Directory => pending.push(rel.join(name)),
                FileType::RegularFile => {
                    let msg = match beneath::stat_at(beneath::fd(&fd), name) {
                        Ok(Some(stamp)) => ScanMsg::File(Found {
                            mount: target.mount,
                            full,
                            stamp,
                            path: target.root.join(&rel).join(name),
                        }),
                        // Vanished or replaced since readdir: nothing to do.
                        Ok(None) => continue,
                        Err(e) => ScanMsg::Error {
                            mount: target.mount,
                            message: format!(
                                "cannot stat {}: {e}",
                                target.root.join(&rel).join(name).display()
                            ),
                        },
                    };
                    if tx.blocking_send(msg).is_err() {
                        return None;
                    }
                }
                // Symlinks, FIFOs, sockets, devices: never uploaded, never opened.
                _ => {}
            }
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
        if t.dir.open_dir(Path::new("")).is_err() {
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
        let t = WalkTarget::open(0, &root, Ignore::new(&[".*".into(), "*.tmp".into()])).unwrap();
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
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let h = DirHandle::open(dir.path()).unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let s = stat_beneath(&h, &p).unwrap().unwrap();
        assert_eq!(s.size, 3);
        assert!(s.age(SystemTime::now() + Duration::from_secs(10)) >= Duration::from_secs(9));
        assert_eq!(s.age(SystemTime::UNIX_EPOCH), Duration::ZERO);
        assert_eq!(stat_beneath(&h, &dir.path().join("nope")).unwrap(), None);
        assert_eq!(
            stat_beneath(&h, dir.path()).unwrap(),
            None,
            "a directory is not a candidate"
        );
        assert_eq!(stat_beneath(&h, &p.join("under-a-file")).unwrap(), None);
        assert_eq!(
            stat_beneath(&h, Path::new("/etc/passwd")).unwrap(),
            None,
            "outside the root"
        );
    }

    #[test]
    fn walk_of_a_directory_swapped_for_a_symlink_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(outside.join("keys")).unwrap();
        std::fs::write(outside.join("keys/id_rsa"), b"PRIVATE").unwrap();
        let t = WalkTarget::open(0, &root, Ignore::default()).unwrap();
        // The repro of the review: the watcher saw `d`, then it became a link out.
        std::fs::rename(root.join("d"), root.join("d.real")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d")).unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let start = root.join("d");
        std::thread::spawn(move || walk(&t, &start, false, &tx))
            .join()
            .unwrap();
        while let Ok(m) = rx.try_recv() {
            assert!(!matches!(m, ScanMsg::File(_)), "{m:?}");
        }
    }
}
