//! The cache directory on disk: `<dir>/<key>`, the same key space as the mount, so a front
//! server finds `<dir>/$key` itself. Everything else stowaway keeps there starts with
//! [`OWN_PREFIX`] (never a served key): fill temp files in the top directory, the journal and
//! the stats file. Every path below the directory is resolved beneath its handle in the kernel
//! (no symlink followed, no escape), as for mount roots.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::beneath::{self, DirHandle, Lookup};
pub use crate::config::validate::cache::CACHE_OWN_PREFIX as OWN_PREFIX;

/// Fill temp files: `.stowaway-cache-tmp.<pid>.<n>`; a dead pid's are removed by the scan.
pub const TEMP_PREFIX: &str = ".stowaway-cache-tmp.";
/// Which files stowaway wrote (see [`super::index`]).
pub const JOURNAL: &str = ".stowaway-cache.journal";
/// Counters the serving process leaves for `stowaway status` (another process).
pub const STATS: &str = ".stowaway-cache.stats";

/// Why the cache directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cache directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("cache file {key:?}: {source}")]
    File { key: String, source: io::Error },
}

/// The cache directory of one mount.
pub struct Layout {
    path: PathBuf,
    handle: ArcSwap<DirHandle>,
}

/// Per process, not per [`Layout`]: after a reload the old set's fills still hold their temp
/// names in the same directory.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

impl Layout {
    /// Opens (creating it if needed) the configured directory.
    pub fn open(path: &Path) -> Result<Layout, LayoutError> {
        let handle = open_or_create(path)?;
        Ok(Layout {
            path: path.to_path_buf(),
            handle: ArcSwap::from_pointee(handle),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn handle(&self) -> Arc<DirHandle> {
        self.handle.load_full()
    }

    /// Whether `key` is a regular file reached without symlinks: one `openat2` + `fstat`.
    #[cfg(test)]
    pub fn is_file(&self, key: &str) -> bool {
        matches!(self.file_len(key), Ok(Some(_)))
    }

    /// The length of `key` if it is a regular file reached without symlinks; `Ok(None)` when it
    /// is known not to be one. An error (out of descriptors, say) says nothing either way.
    pub fn file_len(&self, key: &str) -> io::Result<Option<u64>> {
        Ok(match self.handle.load().lookup(Path::new(key))? {
            Lookup::File(stamp) => Some(stamp.size),
            _ => None,
        })
    }

    /// Whether the front server read `key` since the last call: the kernel's access-time bit
    /// (see [`Access`]). A read found is taken back (access time set to the modification time
    /// again, through a descriptor opened beneath the handle), so the next read counts anew.
    ///
    /// `Gone` only when the file is known not to be there: the round then forgets the entry,
    /// and a file left behind would be served by the front server unchecked (no revalidation)
    /// and outside `max_size` until a restart. A lookup that fails (out of descriptors, say)
    /// tells nothing, and counts as unread.
    pub fn take_read(&self, key: &str) -> Access {
        let handle = self.handle.load();
        let (pfd, st) = match handle.regular_path(Path::new(key)) {
            Ok(Some(found)) => found,
            Ok(None) => return Access::Gone,
            Err(_) => return Access::Unread,
        };
        if !read_since_reset(&st) {
            return Access::Unread;
        }
        let len = st.st_size.max(0) as u64;
        // Reopened from the descriptor just looked at, not by path again: a file renamed in
        // meanwhile (a refill) must not get the old one's access time.
        let Ok(Some(f)) = handle.reopen(&pfd, &st, Path::new(key)) else {
            // It was read all the same; taken back at a later round.
            return Access::Read(len);
        };
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
        };
        // Not taken back (not our file any more?): counted once more next round at most.
        let _ = rustix::fs::futimens(&f.file, &times);
        Access::Read(len)
    }

    /// Whether the directory's file system records reads at all (`noatime` mounts do not).
    pub fn records_reads(&self) -> bool {
        self.root_fd()
            .and_then(|fd| Ok(rustix::fs::fstatvfs(&fd)?))
            .is_ok_and(|v| !v.f_flag.contains(rustix::fs::StatVfsMountFlags::NOATIME))
    }

    /// Disk usage of `key` in bytes (`st_blocks * 512`), if it is one of the cache's files.
    pub fn disk_bytes(&self, key: &str) -> Option<u64> {
        let f = self.handle.load().open_file(Path::new(key)).ok()??;
        Some(f.file.metadata().ok()?.blocks() * 512)
    }

    /// When the directory was deleted (or replaced) under us: creates it again and swaps the
    /// handle. `true` when it did (everything cached before is gone).
    pub fn recreate_if_gone(&self) -> Result<bool, LayoutError> {
        let cur = self.handle.load();
        let root = cur
            .open_dir(Path::new(""))
            .map_err(|source| LayoutError::Dir {
                dir: self.path.clone(),
                source,
            })?;
        let here = rustix::fs::fstat(&root).map_err(|e| LayoutError::Dir {
            dir: self.path.clone(),
            source: e.into(),
        })?;
        let same = match std::fs::metadata(&self.path) {
            Ok(m) => m.ino() == here.st_ino && m.dev() == here.st_dev as u64 && here.st_nlink > 0,
            Err(_) => false,
        };
        if same {
            return Ok(false);
        }
        tracing::warn!(dir = %self.path.display(), "the cache directory was deleted or replaced: creating it again, the cache starts empty");
        self.handle.store(Arc::new(open_or_create(&self.path)?));
        Ok(true)
    }

    /// A new temp file in the top directory, for one fill.
    pub fn temp(&self) -> Result<(File, String), LayoutError> {
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEMP_PREFIX}{}.{n}", std::process::id());
        let err = |source| LayoutError::Dir {
            dir: self.path.clone(),
            source,
        };
        let root = self.handle.load().open_dir(Path::new("")).map_err(err)?;
        let f = beneath::create_new_at(root.as_fd(), OsStr::new(&name), 0o644).map_err(err)?;
        Ok((f, name))
    }

    /// Where `key` goes: its directory (created beneath the handle) and name, ready for the
    /// rename that puts a finished temp file in place ([`Slot::fill_with`]).
    pub fn slot(&self, key: &str) -> Result<Slot, LayoutError> {
        let err = |source| LayoutError::File {
            key: key.to_string(),
            source,
        };
        let h = self.handle.load();
        let root = h.open_dir(Path::new("")).map_err(err)?;
        let rel = Path::new(key);
        let name = rel
            .file_name()
            .ok_or_else(|| err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?
            .to_os_string();
        let parent = match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => h.create_dirs(p).map_err(err)?,
            None => root.try_clone().map_err(err)?,
        };
        Ok(Slot {
            root,
            parent,
            name,
            key: key.to_string(),
        })
    }

    /// Moves the finished temp file `temp` to `key` and makes the rename durable.
    pub fn install(&self, temp: &str, key: &str) -> Result<(), LayoutError> {
        let slot = self.slot(key)?;
        slot.fill_with(temp)?;
        slot.sync()
    }

    /// Renames the finished temp file into `slot` unless its key was purged in this process
    /// at or after `since` (the fill began before the object was replaced): `Ok(false)`, and
    /// nothing stays in place. Checked after the rename: a purge notes itself before it
    /// unlinks, so one that ran before the rename is seen here, and one after it unlinks the
    /// new file itself. A check before the rename would leave a window for the old bytes.
    pub fn place(&self, slot: &Slot, temp: &str, since: Instant) -> Result<bool, LayoutError> {
        slot.fill_with(temp)?;
        if !purged_since(&self.path, &slot.key, since) {
            return Ok(true);
        }
        remove_beneath(&self.handle.load(), &slot.key).map_err(|e| slot.err(e))?;
        Ok(false)
    }

    /// Removes a temp file (a fill that failed).
    pub fn discard(&self, temp: &str) {
        if let Ok(root) = self.handle.load().open_dir(Path::new("")) {
            let _ = beneath::unlink_at(root.as_fd(), OsStr::new(temp));
        }
    }

    /// Deletes the cached file of `key`; `Ok(false)` when there was none.
    pub fn remove(&self, key: &str) -> io::Result<bool> {
        remove_beneath(&self.handle.load(), key)
    }

    /// The top directory, opened for `*at` calls (journal, stats, scan).
    pub fn root_fd(&self) -> io::Result<OwnedFd> {
        self.handle.load().open_dir(Path::new(""))
    }
}

/// What [`Layout::take_read`] found. Under the default `relatime` (and `strictatime`) the
/// kernel moves a file's access time on a read whenever it is not newer than the modification
/// time; a fill leaves it older (the temp file is written after it is created). So "access
/// time after modification time" means "read since the fill or since we set it back", and
/// setting it back re-arms the bit: one metadata write per file read, per round, whatever the
/// number of reads. This is how stowaway learns of the hits nginx and lighttpd answer from the
/// cache themselves in local-first mode (`sendfile` and `read` both count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not a regular file of ours any more (deleted, replaced by something else).
    Gone,
    /// Not read since the last look.
    Unread,
    /// Read at least once since the last look; the file's length.
    Read(u64),
}

#[allow(clippy::unnecessary_cast)]
fn read_since_reset(st: &rustix::fs::Stat) -> bool {
    (st.st_atime as i64, st.st_atime_nsec as i64) > (st.st_mtime as i64, st.st_mtime_nsec as i64)
}

/// The place of one key in the cache directory, resolved beneath its handle.
pub struct Slot {
    root: OwnedFd,
    parent: OwnedFd,
    name: std::ffi::OsString,
    key: String,
}

impl Slot {
    fn err(&self, source: io::Error) -> LayoutError {
        LayoutError::File {
            key: self.key.clone(),
            source,
        }
    }

    /// Renames the temp file `temp` (in the top directory) into this slot: one `renameat`.
    pub fn fill_with(&self, temp: &str) -> Result<(), LayoutError> {
        beneath::rename_at(
            self.root.as_fd(),
            OsStr::new(temp),
            self.parent.as_fd(),
            &self.name,
        )
        .map_err(|e| self.err(e))
    }

    /// Makes the rename durable.
    pub fn sync(&self) -> Result<(), LayoutError> {
        beneath::sync_dir(self.parent.as_fd()).map_err(|e| self.err(e))
    }
}

fn open_or_create(path: &Path) -> Result<DirHandle, LayoutError> {
    let err = |source| LayoutError::Dir {
        dir: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    // The configured path is symlink-free (the config check resolved it): a link there now
    // was planted, possibly for a deleted directory, and would carry fills and purges out.
    DirHandle::open_no_symlinks(path).map_err(err)
}

fn remove_beneath(h: &DirHandle, key: &str) -> io::Result<bool> {
    let (dir, name) = match h.parent(Path::new(key)) {
        Ok(p) => p,
        Err(e) if beneath::is_missing(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    // Only a regular file: a directory or symlink of that name is not a cached object.
    match beneath::stat_at(dir.as_fd(), name)? {
        Some(_) => {}
        None => return Ok(false),
    }
    match beneath::unlink_at(dir.as_fd(), name) {
        Ok(()) => Ok(true),
        Err(e) if beneath::is_missing(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Purges that happened in this process, so a fill that started before one does not put the
/// old bytes back afterwards. Short-lived: a fill older than this has failed anyway.
static RECENT_PURGES: Mutex<Vec<(PathBuf, Box<str>, Instant)>> = Mutex::new(Vec::new());
const PURGE_MEMORY: Duration = Duration::from_secs(3600);

fn note_purge(dir: &Path, key: &str) {
    let now = Instant::now();
    let mut p = RECENT_PURGES.lock().unwrap_or_else(|e| e.into_inner());
    p.retain(|(_, _, at)| now.duration_since(*at) < PURGE_MEMORY);
    p.push((dir.to_path_buf(), key.into(), now));
}

/// Whether `key` of the cache in `dir` was purged at or after `since` (in this process).
pub fn purged_since(dir: &Path, key: &str, since: Instant) -> bool {
    let p = RECENT_PURGES.lock().unwrap_or_else(|e| e.into_inner());
    p.iter()
        .any(|(d, k, at)| *at >= since && &**k == key && d == dir)
}

/// Removes `key` (mount-relative, as in the URL) from the cache directory `dir`, resolved
/// beneath it without following symlinks. For `stowaway rm`, `stowaway migrate` and the
/// uploader when it replaces an object: works from any process (a running `serve` notices the
/// missing file at its next lookup or revalidation, and a front server never finds it again).
/// `Ok(false)` when nothing was cached (or the directory does not exist).
pub fn purge(dir: &Path, key: &str) -> io::Result<bool> {
    note_purge(dir, key);
    let h = match DirHandle::open_no_symlinks(dir) {
        Ok(h) => h,
        Err(e) if beneath::is_missing(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    remove_beneath(&h, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_remove_and_purge_stay_beneath() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"abc").unwrap();
        l.install(&t, "a/b/c.jpg").unwrap();
        assert!(l.is_file("a/b/c.jpg"));
        assert_eq!(std::fs::read(dir.join("a/b/c.jpg")).unwrap(), b"abc");
        assert!(l.disk_bytes("a/b/c.jpg").is_some());
        // A symlinked directory is never followed.
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("x.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("ln")).unwrap();
        assert!(!l.is_file("ln/x.jpg"));
        assert!(!purge(&dir, "ln/x.jpg").unwrap());
        assert!(outside.join("x.jpg").exists());
        let before = Instant::now();
        assert!(purge(&dir, "a/b/c.jpg").unwrap());
        assert!(purged_since(&dir, "a/b/c.jpg", before));
        assert!(!l.is_file("a/b/c.jpg"));
        assert!(!purge(&d.path().join("none"), "a.jpg").unwrap());
    }

    /// A cache in `<d>/cache` holding `a/b.jpg` ("abc"), written a minute ago as a fill is
    /// (file times are kernel-tick coarse: a read right after the write could leave the access
    /// time equal to the modification time); `None` on a noatime mount (skipped, said so).
    fn cache_with_one_file(d: &Path) -> Option<(PathBuf, Layout, std::time::SystemTime)> {
        let dir = d.join("cache");
        let l = Layout::open(&dir).unwrap();
        if !l.records_reads() {
            eprintln!("SKIPPED: {} is on a noatime mount", dir.display());
            return None;
        }
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"abc").unwrap();
        let then = std::time::SystemTime::now() - Duration::from_secs(60);
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(then)
                .set_modified(then),
        )
        .unwrap();
        drop(f);
        l.install(&t, "a/b.jpg").unwrap();
        Some((dir, l, then))
    }

    /// A read of a cached file is found once (the access time is set back, the modification
    /// time left alone: the journal and nginx's ETag use it), a file not read is not, and a
    /// symlink is never looked through.
    #[test]
    fn take_read_finds_each_read_once() {
        let d = tempfile::tempdir().unwrap();
        let Some((dir, l, then)) = cache_with_one_file(d.path()) else {
            return;
        };
        let mtime = || {
            std::fs::metadata(dir.join("a/b.jpg"))
                .unwrap()
                .modified()
                .unwrap()
        };
        assert_eq!(l.take_read("a/b.jpg"), Access::Unread, "a fill is no read");
        for _ in 0..2 {
            assert_eq!(std::fs::read(dir.join("a/b.jpg")).unwrap(), b"abc");
            std::fs::read(dir.join("a/b.jpg")).unwrap();
            assert_eq!(l.take_read("a/b.jpg"), Access::Read(3));
            assert_eq!(l.take_read("a/b.jpg"), Access::Unread, "taken back");
            assert_eq!(mtime(), then);
        }
        assert_eq!(l.take_read("a/none.jpg"), Access::Gone);
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("x.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("ln")).unwrap();
        assert_eq!(l.take_read("ln/x.jpg"), Access::Gone);
    }

    /// Out of descriptors (a busy server): a round that cannot look at a file learns nothing
    /// about whether it is there. `Gone` made the round forget the entry while its file stayed:
    /// the front server then served it unchecked by revalidation and outside `max_size` until
    /// a restart. Run in a child process: the descriptor limit is the whole process's.
    #[test]
    fn take_read_out_of_descriptors_keeps_the_entry() {
        const CHILD: &str = "STOWAWAY_TEST_TAKE_READ_EMFILE";
        const NAME: &str = "cache::layout::tests::take_read_out_of_descriptors_keeps_the_entry";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--test-threads=1", "--nocapture"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "the child ran nothing: {text}");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let Some((dir, l, _)) = cache_with_one_file(d.path()) else {
            return;
        };
        std::fs::read(dir.join("a/b.jpg")).unwrap();
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let old = getrlimit(Resource::Nofile);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(256),
                maximum: old.maximum,
            },
        )
        .unwrap();
        let mut held = Vec::new();
        while let Ok(fd) = rustix::io::dup(std::io::stdin()) {
            held.push(fd);
        }
        assert_eq!(
            l.take_read("a/b.jpg"),
            Access::Unread,
            "no descriptor at all"
        );
        // The request path's lookup learns nothing either (it must not forget the entry).
        assert!(l.file_len("a/b.jpg").is_err());
        // One free: the lookup works, the reopen to set the access time back does not. The
        // read is still a read (taken back at a later round).
        held.pop();
        assert_eq!(
            l.take_read("a/b.jpg"),
            Access::Read(3),
            "no second descriptor"
        );
        held.clear();
        assert_eq!(
            l.take_read("a/b.jpg"),
            Access::Read(3),
            "not taken back before"
        );
        assert_eq!(l.take_read("a/b.jpg"), Access::Unread);
    }

    /// The uploader purges a key after a fill's early check but before its rename (while the
    /// journal line is synced): the old bytes must not stay in place.
    #[test]
    fn a_purge_just_before_the_rename_wins() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let l = Layout::open(&dir).unwrap();
        let (mut f, t) = l.temp().unwrap();
        std::io::Write::write_all(&mut f, b"old").unwrap();
        let since = Instant::now();
        let slot = l.slot("p/old.jpg").unwrap();
        assert!(!purge(&dir, "p/old.jpg").unwrap(), "nothing cached yet");
        assert!(!l.place(&slot, &t, since).unwrap());
        assert!(!dir.join("p/old.jpg").exists());
        // Not purged since: placed.
        let (_, t) = l.temp().unwrap();
        let slot = l.slot("p/old.jpg").unwrap();
        assert!(l.place(&slot, &t, Instant::now()).unwrap());
        assert!(dir.join("p/old.jpg").is_file());
    }

    /// The directory deleted and a symlink planted in its place: recreating it, filling and
    /// purging never follow the link (the configured path is symlink-free, resolved by the
    /// config check).
    #[test]
    fn a_symlink_planted_for_a_deleted_directory_is_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim.jpg"), b"keep").unwrap();
        let l = Layout::open(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, &dir).unwrap();
        assert!(l.recreate_if_gone().is_err(), "a link is not the directory");
        if let Ok((_, t)) = l.temp() {
            let _ = l.install(&t, "k.jpg");
        }
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing written"
        );
        assert!(purge(&dir, "victim.jpg").is_err());
        assert!(outside.join("victim.jpg").exists());
        assert!(Layout::open(&dir).is_err());
    }

    /// A race loop: while fills install, purge and remove `a/x.jpg`, another thread keeps
    /// swapping `a` for a symlink out of the directory. Nothing is ever written, renamed or
    /// unlinked outside.
    #[test]
    fn swapping_a_directory_for_a_symlink_never_lets_a_fill_purge_or_round_out() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("x.jpg"), b"canary").unwrap();
        // The canary looks read (access after modification): a round that reached it through
        // the link would set its access time back.
        let (old, read) = (
            std::time::SystemTime::now() - Duration::from_secs(120),
            std::time::SystemTime::now() - Duration::from_secs(60),
        );
        std::fs::File::options()
            .write(true)
            .open(outside.join("x.jpg"))
            .unwrap()
            .set_times(
                std::fs::FileTimes::new()
                    .set_accessed(read)
                    .set_modified(old),
            )
            .unwrap();
        let l = Layout::open(&dir).unwrap();
        std::fs::create_dir(dir.join("a")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let attacker = {
            let (dir, outside, stop, swaps) =
                (dir.clone(), outside.clone(), stop.clone(), swaps.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if std::fs::rename(dir.join("a"), dir.join("a.real")).is_ok() {
                        let _ = std::os::unix::fs::symlink(&outside, dir.join("a"));
                        std::thread::sleep(Duration::from_micros(100));
                        let _ = std::fs::remove_file(dir.join("a"));
                        // A fill may have made a new `a` meanwhile (not empty: the rename
                        // back fails): clear it, or the swapping stops for good.
                        if std::fs::rename(dir.join("a.real"), dir.join("a")).is_err() {
                            let _ = std::fs::remove_dir_all(dir.join("a"));
                            let _ = std::fs::rename(dir.join("a.real"), dir.join("a"));
                        }
                        swaps.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(100));
                    } else {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            })
        };
        // At least 1.5 s of racing, and on until both sides made progress (a loaded machine
        // may starve either thread for a while), within a bound.
        let start = Instant::now();
        let mut installed = 0;
        while start.elapsed() < Duration::from_secs(30)
            && (start.elapsed() < Duration::from_millis(1500)
                || swaps.load(Ordering::Relaxed) <= 10
                || installed <= 10)
        {
            let Ok((mut f, t)) = l.temp() else { continue };
            let _ = std::io::Write::write_all(&mut f, b"filled");
            match l.install(&t, "a/x.jpg") {
                Ok(()) => installed += 1,
                Err(_) => l.discard(&t),
            }
            let _ = l.is_file("a/x.jpg");
            let _ = l.take_read("a/x.jpg");
            let _ = purge(&dir, "a/x.jpg");
            let _ = l.remove("a/x.jpg");
        }
        stop.store(true, Ordering::Relaxed);
        attacker.join().unwrap();
        let swapped = swaps.load(Ordering::Relaxed);
        assert!(
            swapped > 10 && installed > 10,
            "{swapped} swaps, {installed} installs"
        );
        let names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["x.jpg"]);
        let canary = std::fs::metadata(outside.join("x.jpg")).unwrap();
        assert_eq!(
            canary.accessed().unwrap(),
            read,
            "times set through the link"
        );
        assert_eq!(std::fs::read(outside.join("x.jpg")).unwrap(), b"canary");
    }

    #[test]
    fn a_deleted_directory_is_created_again() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cache");
        let l = Layout::open(&dir).unwrap();
        assert!(!l.recreate_if_gone().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            l.temp().is_err(),
            "nothing can be created in a deleted directory"
        );
        assert!(l.recreate_if_gone().unwrap());
        let (_, t) = l.temp().unwrap();
        l.install(&t, "k.jpg").unwrap();
        assert!(dir.join("k.jpg").exists());
    }
}
