//! What happens to a local file once its object is verified: `archive` (move it under
//! `archive_root`, same relative path), `delete`, or `keep`.
//!
//! Every step works on directory handles resolved beneath the mount root and the archive root
//! (see [`crate::beneath`]), never on paths: a directory swapped for a symlink at any instant is
//! refused by the kernel, so nothing outside the roots is ever moved, copied or removed.
//!
//! The file first leaves its name atomically: it is renamed to a private name in its own
//! directory (`.stowaway-rm.<pid>.<n>.<name>`), and only if the inode found there is the one
//! that was verified does it go on (into the archive, or unlinked). If the app replaced the
//! file in between, the new content is what was renamed: it is put back (no replace) and the
//! file is uploaded again. So a replacing writer can never lose its bytes to a delete.
//!
//! Within one file system the archive move is a `renameat` of the detached file. Across file
//! systems the verified descriptor is copied to a hidden temp name in the archive directory,
//! `fsync`ed, and only after the source was detached and checked is the copy renamed into place
//! (`fsync` of the directory) and the source unlinked; any failure removes the temp file and
//! puts the source back. Temp files of a crashed run are removed at start-up
//! ([`clean_temp_files`]), detached files of a crashed run are put back
//! ([`restore_detached`]).
//!
//! Directories the finalize left empty in the root are removed ([`prune_empty_dirs`]), deepest
//! first, up to but never including the root itself. Each `rmdir` is relative to a parent
//! handle resolved beneath the root, and the kernel only removes an empty directory, so a
//! directory that got a new file meanwhile stays.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::beneath::{self, DirHandle, FileStamp, OpenFile, fd};
use crate::config::{Finalize, Mount};
use crate::store::hash::{Digests, Layout, hash_reader};
use crate::store::verify::Verified;

/// Prefix of archive temp files: `.stowaway-tmp.<pid>.<run>.<n>` (defined in config, whose
/// write probe uses it too).
use crate::config::TEMP_PREFIX;
/// Prefix of a file detached from its name on its way out: `.stowaway-rm.<pid>.<n>.<name>`.
pub const DETACHED_PREFIX: &str = ".stowaway-rm.";

/// Why a file could not be finalized. The local file is always still there (or, for a
/// finished archive move, complete at its archive path).
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// The file is not the one that was verified any more.
    #[error("{0} changed after it was verified; it will be uploaded again")]
    Changed(PathBuf),
    /// A file system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `finalize = "archive"` without an archive directory (config validation prevents it).
    #[error("finalize = \"archive\" but the mount has no archive_root")]
    NoArchiveRoot,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FinalizeError + 'a {
    move |source| FinalizeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalized {
    /// Moved; `copied` when it had to be copied across file systems.
    Archived {
        to: PathBuf,
        copied: bool,
    },
    Deleted,
    Kept,
}

/// How log lines show it: `archived to /path`, `archived to /path (copied)`, `deleted`, `kept`.
impl std::fmt::Display for Finalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finalized::Archived { to, copied } => {
                write!(f, "archived to {}", to.display())?;
                if *copied {
                    f.write_str(" (copied)")?;
                }
                Ok(())
            }
            Finalized::Deleted => f.write_str("deleted"),
            Finalized::Kept => f.write_str("kept"),
        }
    }
}

/// Names temp files uniquely per process and run, so a start-up clean-up never takes the temp
/// file of another live stowaway (e.g. `migrate` next to `serve`).
#[derive(Debug)]
pub struct TempNamer {
    pid: u32,
    run: String,
    n: AtomicU64,
}

impl Default for TempNamer {
    fn default() -> Self {
        TempNamer {
            pid: std::process::id(),
            run: format!("{:08x}", fastrand::u32(..)),
            n: AtomicU64::new(0),
        }
    }
}

impl TempNamer {
    /// A fresh detached name for `name` (no directory), or `None` when it would be too long
    /// for a file name (then the file stays: it is reported, never removed unchecked).
    pub fn detached(&self, name: &OsStr) -> Option<OsString> {
        let mut n = OsString::from(format!(
            "{DETACHED_PREFIX}{}.{}.",
            self.pid,
            self.n.fetch_add(1, Relaxed)
        ));
        n.push(name);
        (n.len() <= 255).then_some(n)
    }

    /// A fresh temp file name (no directory).
    pub fn next(&self) -> String {
        format!(
            "{TEMP_PREFIX}{}.{}.{}",
            self.pid,
            self.run,
            self.n.fetch_add(1, Relaxed)
        )
    }
}

/// Where a file to finalize lives: its root handle, its relative key, the descriptor it was
/// hashed and uploaded from, and the stamp that was verified.
pub struct Source<'a> {
    pub root: &'a DirHandle,
    pub rel: &'a str,
    pub open: &'a OpenFile,
    pub stamp: &'a FileStamp,
}

impl Source<'_> {
    fn path(&self) -> PathBuf {
        self.root.path().join(self.rel)
    }
}

/// Finalizes `src` of `mount`, provided it still is the verified file. Blocking. Takes the
/// [`Verified`] proof, not bare digests: no local copy is removed for an unverified upload.
pub fn finalize(
    mount: &Mount,
    src: &Source<'_>,
    verified: &Verified,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    let d = verified.digests();
    match mount.finalize {
        Finalize::Keep => Ok(Finalized::Kept),
        Finalize::Delete => {
            let (dir, name) = open_parent(src)?;
            let detached = detach(src, &dir, name, names)?;
            beneath::unlink_at(fd(&dir), &detached).map_err(io_err("remove", &src.path()))?;
            let _ = beneath::sync_dir(fd(&dir));
            drop(dir);
            prune_empty_dirs(src.root, Path::new(src.rel));
            Ok(Finalized::Deleted)
        }
        Finalize::Archive => {
            let archive = mount
                .archive_root
                .as_deref()
                .ok_or(FinalizeError::NoArchiveRoot)?;
            let done = archive_file(src, archive, d, names)?;
            prune_empty_dirs(src.root, Path::new(src.rel));
            Ok(done)
        }
    }
}

/// Removes `src` (a file beneath its root handle, e.g. an archived copy) whose content
/// `verified` proves stored in S3: detached from its name first and checked to be the very
/// inode that was hashed, then unlinked; directories it leaves empty go too. Anything swapped
/// in meanwhile (another file, a symlink, a symlinked directory) is `Changed` and stays.
pub fn remove_verified(
    src: &Source<'_>,
    verified: &Verified,
    names: &TempNamer,
) -> Result<(), FinalizeError> {
    if verified.digests().size != src.stamp.size {
        return Err(FinalizeError::Changed(src.path()));
    }
    let (dir, name) = open_parent(src)?;
    let detached = detach(src, &dir, name, names)?;
    beneath::unlink_at(fd(&dir), &detached).map_err(io_err("remove", &src.path()))?;
    let _ = beneath::sync_dir(fd(&dir));
    drop(dir);
    prune_empty_dirs(src.root, Path::new(src.rel));
    Ok(())
}

/// Removes the directories above `rel` (a file that just left the root) that are now empty,
/// deepest first, stopping at the first one that is not empty and never touching the root.
///
/// Race-safe by construction: `rmdir` fails on a directory that is not empty, so a file the app
/// writes meanwhile keeps its directory; the parent is opened beneath the root without
/// following symlinks, so nothing outside the root is ever removed. Best effort: any failure
/// just stops the walk (the directory stays, as it did before).
pub fn prune_empty_dirs(root: &DirHandle, rel: &Path) {
    let mut dir = rel.parent();
    while let Some(d) = dir {
        if d.as_os_str().is_empty() {
            break;
        }
        let Ok((parent, name)) = root.parent(d) else {
            break;
        };
        // Our own private names are never in a directory being pruned: the finalize is done.
        match beneath::rmdir_at(fd(&parent), name) {
            Ok(()) => {
                tracing::debug!(dir = %root.path().join(d).display(), "removed an empty directory left by the finalize");
            }
            Err(_) => break,
        }
        dir = d.parent();
    }
}

fn open_parent<'a>(src: &Source<'a>) -> Result<(OwnedFd, &'a OsStr), FinalizeError> {
    match src.root.parent(Path::new(src.rel)) {
        Ok(p) => Ok(p),
        // The directory vanished or became a symlink: not the file that was verified.
        Err(e) if beneath::is_missing(&e) || beneath::is_refused(&e) => {
            Err(FinalizeError::Changed(src.path()))
        }
        Err(e) => Err(FinalizeError::Io {
            op: "open the directory of",
            path: src.path(),
            source: e,
        }),
    }
}

/// Takes `name` in `dir` away from the app atomically: renames it to a private name and checks
/// that what was renamed is the verified inode. On a mismatch (the app replaced the file just
/// before) the file is put back and `Changed` returned. Returns the private name.
fn detach(
    src: &Source<'_>,
    dir: &OwnedFd,
    name: &OsStr,
    names: &TempNamer,
) -> Result<OsString, FinalizeError> {
    let path = src.path();
    // A cheap first look; the check that counts is the one after the rename.
    match beneath::stat_at(fd(dir), name).map_err(io_err("stat", &path))? {
        Some(s) if s == *src.stamp => {}
        _ => return Err(FinalizeError::Changed(path)),
    }
    let Some(private) = names.detached(name) else {
        return Err(FinalizeError::Io {
            op: "detach",
            path,
            source: io::Error::other("the name is too long for a private temp name"),
        });
    };
    match beneath::rename_noreplace(fd(dir), name, fd(dir), &private) {
        Ok(()) => {}
        Err(e) if beneath::is_missing(&e) => return Err(FinalizeError::Changed(path)),
        Err(e) => return Err(io_err("detach", &path)(e)),
    }
    let held = beneath::stat_at(fd(dir), &private).ok().flatten();
    let verified = src.open.restat().is_ok_and(|s| s.same_content(src.stamp));
    if verified && held.is_some_and(|s| s.same_content(src.stamp)) {
        return Ok(private);
    }
    reattach(dir, &private, name, &path);
    Err(FinalizeError::Changed(path))
}

/// Puts a detached file back under its name, never over a newer file of the app's.
fn reattach(dir: &OwnedFd, private: &OsStr, name: &OsStr, path: &Path) {
    if let Err(e) = beneath::rename_noreplace(fd(dir), private, fd(dir), name) {
        tracing::error!(file = %path.display(), kept_as = %Path::new(private).display(), error = %e, "a file replaced while it was being finalized could not be put back (the app wrote its name again); it is kept under the private name");
    }
}

/// After a verified detach, the next step failed: put the file back; if the app has written
/// its name again meanwhile, the detached file is the verified content S3 holds and the app
/// has replaced it, so it is removed rather than left under a private name.
fn undo_verified_detach(dir: &OwnedFd, private: &OsStr, name: &OsStr, path: &Path) {
    match beneath::rename_noreplace(fd(dir), private, fd(dir), name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tracing::info!(file = %path.display(), "the app wrote this name again while its previous content (verified in S3) was being finalized; that previous local copy is removed");
            let _ = beneath::unlink_at(fd(dir), private);
        }
        Err(e) => {
            tracing::error!(file = %path.display(), kept_as = %Path::new(private).display(), error = %e, "could not put a verified file back under its name; it is kept under the private name");
        }
    }
}

/// Moves the verified file into `archive` (see the module docs).
pub fn archive_file(
    src: &Source<'_>,
    archive: &Path,
    d: &Digests,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    let rel = Path::new(src.rel);
    let dst_path = archive.join(rel);
    let archive_h = DirHandle::open(archive).map_err(io_err("open the archive", archive))?;
    let dst_rel_dir = rel.parent().unwrap_or(Path::new(""));
    let dst_dir = archive_h.create_dirs(dst_rel_dir).map_err(io_err(
        "create archive directory",
        &archive.join(dst_rel_dir),
    ))?;
    let (src_dir, name) = open_parent(src)?;
    let same_fs = rustix::fs::fstat(&src_dir)
        .ok()
        .zip(rustix::fs::fstat(&dst_dir).ok())
        .is_some_and(|(a, b)| a.st_dev == b.st_dev);
    if same_fs {
        let detached = detach(src, &src_dir, name, names)?;
        match beneath::rename_at(fd(&src_dir), &detached, fd(&dst_dir), name) {
            Ok(()) => {
                let _ = beneath::sync_dir(fd(&dst_dir));
                let _ = beneath::sync_dir(fd(&src_dir));
                return Ok(Finalized::Archived {
                    to: dst_path,
                    copied: false,
                });
            }
            Err(e) if e.kind() != io::ErrorKind::CrossesDevices => {
                undo_verified_detach(&src_dir, &detached, name, &src.path());
                return Err(io_err("move to the archive", &src.path())(e));
            }
            // A bind mount on the same device: copy after all.
            Err(_) => undo_verified_detach(&src_dir, &detached, name, &src.path()),
        }
    }
    copy_across(src, &src_dir, name, &dst_dir, &dst_path, d, names)
}

#[allow(clippy::too_many_arguments)]
fn copy_across(
    src: &Source<'_>,
    src_dir: &OwnedFd,
    name: &OsStr,
    dst_dir: &OwnedFd,
    dst_path: &Path,
    d: &Digests,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    if identical(dst_dir, name, d) {
        // Left by a crash after the rename into place: only the source is left to remove.
        let detached = detach(src, src_dir, name, names)?;
        beneath::unlink_at(fd(src_dir), &detached)
            .map_err(io_err("remove the archived source", &src.path()))?;
        let _ = beneath::sync_dir(fd(src_dir));
        return Ok(Finalized::Archived {
            to: dst_path.to_path_buf(),
            copied: true,
        });
    }
    let tmp = OsString::from(names.next());
    let res = copy_to_temp(src, dst_dir, &tmp, dst_path).and_then(|()| {
        // Still the verified file after the copy? Then the copy is that content.
        let detached = detach(src, src_dir, name, names)?;
        if let Err(e) = beneath::rename_at(fd(dst_dir), &tmp, fd(dst_dir), name) {
            undo_verified_detach(src_dir, &detached, name, &src.path());
            return Err(io_err("rename into place", dst_path)(e));
        }
        if let Err(e) = beneath::sync_dir(fd(dst_dir)) {
            tracing::warn!(dir = %dst_path.display(), error = %e, "fsync of the archive directory failed");
        }
        // The archive copy is complete and durable: now the source may go.
        beneath::unlink_at(fd(src_dir), &detached)
            .map_err(io_err("remove the archived source", &src.path()))?;
        let _ = beneath::sync_dir(fd(src_dir));
        Ok(())
    });
    if let Err(e) = res {
        let _ = beneath::unlink_at(fd(dst_dir), &tmp);
        return Err(e);
    }
    Ok(Finalized::Archived {
        to: dst_path.to_path_buf(),
        copied: true,
    })
}

/// Reads a file from its start through positional reads (the descriptor's offset is left
/// alone, so the same descriptor can be read again).
pub struct ReadAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl<'a> ReadAt<'a> {
    pub fn new(file: &'a std::fs::File) -> Self {
        ReadAt { file, pos: 0 }
    }
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether `name` in `dir` already holds exactly the verified content (left by a crash after
/// the rename into place and before the source was removed).
fn identical(dir: &OwnedFd, name: &OsStr, d: &Digests) -> bool {
    let Ok(Some(s)) = beneath::stat_at(fd(dir), name) else {
        return false;
    };
    if s.size != d.size {
        return false;
    }
    let Ok(h) = DirHandle::from_fd(dir) else {
        return false;
    };
    match h.open_file(Path::new(name)) {
        Ok(Some(f)) => hash_reader(&mut ReadAt::new(&f.file), s.size, Layout::Single)
            .is_ok_and(|h| h.sha256 == d.sha256),
        _ => false,
    }
}

/// Copies the verified descriptor into the new file `tmp` in `dst_dir`; errors name `dst`
/// (the temp name changes with every attempt, and a stable message is logged once instead of
/// on every rescan).
fn copy_to_temp(
    src: &Source<'_>,
    dst_dir: &OwnedFd,
    tmp: &OsStr,
    dst: &Path,
) -> Result<(), FinalizeError> {
    let meta = src
        .open
        .file
        .metadata()
        .map_err(io_err("stat", &src.path()))?;
    if !FileStamp::from_meta(&meta).same_content(src.stamp) {
        return Err(FinalizeError::Changed(src.path()));
    }
    let mut to = beneath::create_new_at(fd(dst_dir), tmp, 0o600)
        .map_err(io_err("create a temp file for", dst))?;
    let n = io::copy(&mut ReadAt::new(&src.open.file), &mut to).map_err(io_err("copy to", dst))?;
    if n != src.stamp.size {
        return Err(FinalizeError::Changed(src.path()));
    }
    to.set_permissions(meta.permissions())
        .map_err(io_err("set permissions of", dst))?;
    if let Ok(m) = meta.modified() {
        to.set_modified(m).map_err(io_err("set mtime of", dst))?;
    }
    to.sync_all().map_err(io_err("fsync the copy of", dst))
}

/// Visits every file whose name starts with `prefix` below `top` (resolved beneath it, never
/// through a symlink), with the handle of its directory.
fn visit_own_files(top: &Path, prefix: &str, mut f: impl FnMut(&OwnedFd, &OsStr, &Path)) {
    let Ok(h) = DirHandle::open(top) else {
        return;
    };
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let Ok(dir) = h.open_dir(&rel) else {
            continue;
        };
        let Ok(entries) = beneath::read_dir(&dir) else {
            continue;
        };
        for (name, ft) in entries {
            let name = beneath::os(&name);
            let ft = if ft == rustix::fs::FileType::Unknown {
                match beneath::type_at(fd(&dir), name) {
                    Ok(Some(t)) => t,
                    _ => continue,
                }
            } else {
                ft
            };
            match ft {
                rustix::fs::FileType::Directory => pending.push(rel.join(name)),
                rustix::fs::FileType::RegularFile
                    if name.as_bytes().starts_with(prefix.as_bytes()) =>
                {
                    f(&dir, name, &top.join(&rel).join(name))
                }
                _ => {}
            }
        }
    }
}

/// The pid in `<prefix><pid>.…`, and whether that process is alive (or is us).
pub(crate) fn owner_alive(name: &OsStr, prefix: &str) -> bool {
    let rest = &name.as_bytes()[prefix.len()..];
    let pid: Option<u32> = rest
        .split(|&b| b == b'.')
        .next()
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse().ok());
    let me = std::process::id();
    pid.is_some_and(|p| p == me || Path::new(&format!("/proc/{p}")).exists())
}

/// Removes temp files of interrupted archive copies of dead processes below `archive_root`.
pub fn clean_temp_files(archive_root: &Path) -> usize {
    let mut removed = 0;
    visit_own_files(archive_root, TEMP_PREFIX, |dir, name, path| {
        if owner_alive(name, TEMP_PREFIX) {
            return;
        }
        match beneath::unlink_at(fd(dir), name) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the temp file of an interrupted archive copy");
                removed += 1;
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove a stale archive temp file")
            }
        }
    });
    removed
}

/// The name a detached file had (`.stowaway-rm.<pid>.<n>.<name>`: what follows the second
/// dot after the prefix), or `None` for any other name.
pub fn detached_original(name: &[u8]) -> Option<&[u8]> {
    let rest = name.strip_prefix(DETACHED_PREFIX.as_bytes())?;
    let mut parts = rest.splitn(3, |&b| b == b'.');
    let (Some(_), Some(_), Some(orig)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    (!orig.is_empty()).then_some(orig)
}

/// Puts files that a crashed process had detached (renamed to a private name on their way to
/// the archive or to deletion) back under their names, so they are looked at again. Never
/// over a file the app wrote since.
pub fn restore_detached(root: &Path) -> usize {
    let mut restored = 0;
    visit_own_files(root, DETACHED_PREFIX, |dir, name, path| {
        if owner_alive(name, DETACHED_PREFIX) {
            return;
        }
        let Some(orig) = detached_original(name.as_bytes()) else {
            return;
        };
        match beneath::rename_noreplace(fd(dir), name, fd(dir), OsStr::from_bytes(orig)) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "put back a file an interrupted run had taken off its name");
                restored += 1;
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot put back a file an interrupted run had taken off its name (the app wrote the name again?); it is left as it is")
            }
        }
    });
    restored
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Fx {
        dir: tempfile::TempDir,
        root: DirHandle,
        src: PathBuf,
        open: OpenFile,
        d: Digests,
    }

    impl Fx {
        fn source(&self) -> Source<'_> {
            Source {
                root: &self.root,
                rel: "a/b.txt",
                open: &self.open,
                stamp: &self.open.stamp,
            }
        }
        fn archive(&self) -> PathBuf {
            self.dir.path().join("archive")
        }
        fn verified(&self) -> Verified {
            Verified::assumed(self.d.clone())
        }
    }

    fn setup(content: &[u8]) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("root/a/b.txt");
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::create_dir_all(dir.path().join("archive")).unwrap();
        fs::write(&src, content).unwrap();
        let root = DirHandle::open(&dir.path().join("root")).unwrap();
        let open = root.open_file(Path::new("a/b.txt")).unwrap().unwrap();
        let d = hash_reader(
            &mut ReadAt::new(&open.file),
            open.stamp.size,
            Layout::Single,
        )
        .unwrap();
        Fx {
            dir,
            root,
            src,
            open,
            d,
        }
    }

    /// Files in `dir` (names), to check that no private or temp name is left behind.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn finalized_displays_without_debug_syntax() {
        let a = Finalized::Archived {
            to: PathBuf::from("/a/b.txt"),
            copied: false,
        };
        assert_eq!(a.to_string(), "archived to /a/b.txt");
        let c = Finalized::Archived {
            to: PathBuf::from("/a/b.txt"),
            copied: true,
        };
        assert_eq!(c.to_string(), "archived to /a/b.txt (copied)");
        assert_eq!(Finalized::Deleted.to_string(), "deleted");
        assert_eq!(Finalized::Kept.to_string(), "kept");
    }

    #[test]
    fn prune_removes_empty_parents_but_never_the_root_nor_a_non_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("x/y/z")).unwrap();
        fs::create_dir_all(root.join("keep/deep")).unwrap();
        fs::write(root.join("keep/other.txt"), b"o").unwrap();
        let h = DirHandle::open(&root).unwrap();
        prune_empty_dirs(&h, Path::new("x/y/z/gone.txt"));
        assert!(!root.join("x").exists());
        assert!(root.is_dir());
        // `keep/deep` is empty and goes; `keep` still holds a file and stays.
        prune_empty_dirs(&h, Path::new("keep/deep/gone.txt"));
        assert!(!root.join("keep/deep").exists());
        assert!(root.join("keep/other.txt").exists());
        // A file directly in the root: nothing to prune, the root stays.
        prune_empty_dirs(&h, Path::new("top.txt"));
        assert!(root.is_dir());
    }

    #[test]
    fn prune_never_follows_a_symlinked_directory_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(outside.join("empty")).unwrap();
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let h = DirHandle::open(&root).unwrap();
        prune_empty_dirs(&h, Path::new("link/empty/gone.txt"));
        assert!(outside.join("empty").is_dir());
        assert!(root.join("link").exists());
    }

    #[test]
    fn same_fs_archive_is_a_rename() {
        let fx = setup(b"data");
        let r = archive_file(&fx.source(), &fx.archive(), &fx.d, &TempNamer::default()).unwrap();
        let dst = fx.archive().join("a/b.txt");
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: false
            }
        );
        assert!(!fx.src.exists());
        assert_eq!(fs::read(&dst).unwrap(), b"data");
        assert!(
            fx.src.parent().unwrap().is_dir(),
            "directories in the root stay"
        );
        assert!(names_in(fx.src.parent().unwrap()).is_empty());
    }

    #[test]
    fn changed_file_is_not_archived() {
        let fx = setup(b"data");
        fs::write(&fx.src, b"new data").unwrap();
        assert!(matches!(
            archive_file(&fx.source(), &fx.archive(), &fx.d, &TempNamer::default()),
            Err(FinalizeError::Changed(_))
        ));
        assert_eq!(fs::read(&fx.src).unwrap(), b"new data");
        assert!(!fx.archive().join("a/b.txt").exists());
    }

    #[test]
    fn replaced_file_is_neither_deleted_nor_archived() {
        // The app replaces the file (new inode, same size, same mtime even) after the upload
        // was verified: the detach step sees another inode and puts it back.
        for mode in [Finalize::Delete, Finalize::Archive] {
            let fx = setup(b"old!");
            let tmp = fx.dir.path().join("root/a/.new");
            fs::write(&tmp, b"new!").unwrap();
            fs::rename(&tmp, &fx.src).unwrap();
            let mut m = test_mount(fx.dir.path());
            m.finalize = mode;
            m.archive_root = Some(fx.archive());
            let r = finalize(&m, &fx.source(), &fx.verified(), &TempNamer::default());
            assert!(
                matches!(r, Err(FinalizeError::Changed(_))),
                "{mode:?}: {r:?}"
            );
            assert_eq!(fs::read(&fx.src).unwrap(), b"new!", "{mode:?}");
            assert_eq!(names_in(fx.src.parent().unwrap()), vec!["b.txt"]);
        }
    }

    #[test]
    fn detach_puts_back_a_file_replaced_between_check_and_rename() {
        // The window the old check-then-remove had: the name is replaced after the stat.
        let fx = setup(b"verified");
        let (dir, name) = fx.root.parent(Path::new("a/b.txt")).unwrap();
        let names = TempNamer::default();
        let src = fx.source();
        // Simulate the race by replacing right after the first look inside `detach`: do the
        // rename ourselves and check what `detach` would find.
        let private = names.detached(name).unwrap();
        fs::write(fx.dir.path().join("root/a/.n"), b"replaced").unwrap();
        fs::rename(fx.dir.path().join("root/a/.n"), &fx.src).unwrap();
        beneath::rename_noreplace(fd(&dir), name, fd(&dir), &private).unwrap();
        let held = beneath::stat_at(fd(&dir), &private).unwrap().unwrap();
        assert!(!held.same_content(src.stamp));
        reattach(&dir, &private, name, &fx.src);
        assert_eq!(fs::read(&fx.src).unwrap(), b"replaced");
    }

    #[test]
    fn cross_fs_copy_and_identical_destination() {
        let fx = setup(b"payload");
        let names = TempNamer::default();
        let archive = DirHandle::open(&fx.archive()).unwrap();
        let dst_dir = archive.create_dirs(Path::new("a")).unwrap();
        let dst = fx.archive().join("a/b.txt");
        let (src_dir, name) = fx.root.parent(Path::new("a/b.txt")).unwrap();
        // The copy path, called directly (a second file system is not needed for it).
        let r = copy_across(&fx.source(), &src_dir, name, &dst_dir, &dst, &fx.d, &names).unwrap();
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: true
            }
        );
        assert_eq!(fs::read(&dst).unwrap(), b"payload");
        assert!(!fx.src.exists());
        assert_eq!(
            names_in(dst.parent().unwrap()),
            vec!["b.txt"],
            "no temp file left"
        );
        assert!(names_in(fx.src.parent().unwrap()).is_empty());
        // Crash after the rename, before the source was removed: the source comes back.
        fs::write(&fx.src, b"payload").unwrap();
        let open2 = fx.root.open_file(Path::new("a/b.txt")).unwrap().unwrap();
        let src2 = Source {
            root: &fx.root,
            rel: "a/b.txt",
            open: &open2,
            stamp: &open2.stamp,
        };
        let r = copy_across(&src2, &src_dir, name, &dst_dir, &dst, &fx.d, &names).unwrap();
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: true
            }
        );
        assert!(!fx.src.exists());
    }

    #[test]
    fn delete_and_keep() {
        let fx = setup(b"x");
        let mut m = test_mount(fx.dir.path());
        m.finalize = Finalize::Keep;
        assert_eq!(
            finalize(&m, &fx.source(), &fx.verified(), &TempNamer::default()).unwrap(),
            Finalized::Kept
        );
        assert!(fx.src.exists());
        m.finalize = Finalize::Delete;
        assert_eq!(
            finalize(&m, &fx.source(), &fx.verified(), &TempNamer::default()).unwrap(),
            Finalized::Deleted
        );
        assert!(!fx.src.exists());
        // The emptied directory `a/` goes (no private name was left in it), the root stays.
        assert!(!fx.src.parent().unwrap().exists());
        assert!(fx.root.path().is_dir());
    }

    #[test]
    fn archive_through_a_symlinked_archive_directory_is_refused() {
        let fx = setup(b"data");
        let outside = fx.dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, fx.archive().join("a")).unwrap();
        let r = archive_file(&fx.source(), &fx.archive(), &fx.d, &TempNamer::default());
        assert!(r.is_err(), "{r:?}");
        assert!(fx.src.exists(), "the source stays");
        assert!(names_in(&outside).is_empty(), "nothing written outside");
    }

    #[test]
    fn stale_temp_files_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x/y");
        fs::create_dir_all(&sub).unwrap();
        // pid 0 never names a live process in /proc.
        fs::write(sub.join(".stowaway-tmp.0.abc.1"), b"half").unwrap();
        let mine = sub.join(format!(".stowaway-tmp.{}.abc.2", std::process::id()));
        fs::write(&mine, b"in progress").unwrap();
        fs::write(sub.join("real.jpg"), b"r").unwrap();
        assert_eq!(clean_temp_files(dir.path()), 1);
        assert!(mine.exists());
        assert!(sub.join("real.jpg").exists());
    }

    #[test]
    fn detached_files_of_a_dead_run_are_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(".stowaway-rm.0.7.photo.v2.jpg"), b"p").unwrap();
        fs::write(sub.join(".stowaway-rm.0.8.taken.jpg"), b"old").unwrap();
        fs::write(sub.join("taken.jpg"), b"newer, by the app").unwrap();
        assert_eq!(restore_detached(dir.path()), 1);
        assert_eq!(fs::read(sub.join("photo.v2.jpg")).unwrap(), b"p");
        assert_eq!(
            fs::read(sub.join("taken.jpg")).unwrap(),
            b"newer, by the app"
        );
    }

    fn test_mount(root: &Path) -> Mount {
        let raw: crate::config::RawConfig = toml_mount(root);
        crate::config::validate(&raw).unwrap().mounts.remove(0)
    }

    fn toml_mount(root: &Path) -> crate::config::RawConfig {
        crate::config::RawConfig {
            s3: crate::config::RawS3 {
                region: Some("us-east-1".into()),
                ..Default::default()
            },
            mounts: vec![crate::config::RawMount {
                prefix: Some("/s/".into()),
                root: Some(root.join("root")),
                bucket: Some("bkt".into()),
                finalize: Some("keep".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}
