//! Filesystem access beneath a trusted directory, resolved by the kernel.
//!
//! Everything under a mount root (and an archive root) belongs to the site's users: any
//! component of a path may be swapped for a symlink between two system calls. So nothing here
//! checks a path and then opens it. A [`DirHandle`] is opened once, from the configured (and
//! trusted) path; every later access is `openat2(handle, relative, …, RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`: the kernel refuses a symlink anywhere on the way (`ELOOP`) and any
//! escape from the handle (`EXDEV`), atomically with the lookup.
//!
//! Files are first opened with `O_PATH` (which reads nothing and has no side effects, even on a
//! FIFO or a device) and `fstat`ed; only a regular file is then reopened for reading, through
//! its own descriptor (`/proc/self/fd/N`), so the readable descriptor is the very inode that was
//! checked. Callers hash, upload and copy from that one descriptor and compare `fstat` stamps
//! before and after; they never reopen by path. Renames and unlinks name a single component
//! relative to a parent directory handle that was itself resolved beneath the root.
//!
//! `rustix` is used (not `cap-std`) because it exposes exactly `openat2` and the `*at` calls
//! with safe wrappers, is maintained by the Bytecode Alliance, and is already in our dependency
//! tree; `cap-std` would add a second abstraction that emulates `openat2` per component on
//! kernels without it, which this Linux-only service does not need (`openat2` is Linux ≥ 5.6).

use std::ffi::{CStr, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat, openat2, renameat,
    renameat_with, statat, unlinkat,
};

/// No symlink anywhere on the path (also not the last component), no escape from the handle.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

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
    /// The stamp of `lstat`/`fstat` metadata.
    pub fn from_meta(m: &Metadata) -> Self {
        FileStamp {
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
        }
    }

    /// The stamp of a raw `stat` (field widths differ per architecture, hence the casts).
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(s: &Stat) -> Self {
        FileStamp {
            size: s.st_size.max(0) as u64,
            mtime_ns: s.st_mtime as i128 * 1_000_000_000 + s.st_mtime_nsec as i128,
            ctime_ns: s.st_ctime as i128 * 1_000_000_000 + s.st_ctime_nsec as i128,
            ino: s.st_ino as u64,
            dev: s.st_dev as u64,
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

/// What a path beneath a handle is, without following anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A regular file reached without symlinks.
    File(FileStamp),
    /// A directory reached without symlinks.
    Dir,
    /// Nothing there (or a parent is not a directory).
    Missing,
    /// Something never to touch: a symlink on the way or at the end, an escape, a FIFO,
    /// a socket, a device.
    Refused,
}

/// A regular file opened for reading through a descriptor checked before it was readable.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    /// The stamp at open time.
    pub stamp: FileStamp,
}

impl OpenFile {
    /// The stamp of the open inode now (`fstat`).
    pub fn restat(&self) -> io::Result<FileStamp> {
        Ok(FileStamp::from_meta(&self.file.metadata()?))
    }
}

/// `ENOENT` / `ENOTDIR`: the thing is not there.
pub fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

/// `ELOOP` (a symlink on the path) or `EXDEV` (an escape): refused by the kernel.
pub fn is_refused(e: &io::Error) -> bool {
    let raw = e.raw_os_error();
    raw == Some(rustix::io::Errno::LOOP.raw_os_error())
        || raw == Some(rustix::io::Errno::XDEV.raw_os_error())
}

fn kind(s: &Stat) -> FileType {
    FileType::from_raw_mode(s.st_mode as _)
}

/// `"."` for the handle itself, else the relative path. Absolute paths are refused by
/// `RESOLVE_BENEATH` in the kernel anyway.
fn rel_or_dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// A trusted directory (a mount root, an archive root) that relative paths are resolved in.
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    path: PathBuf,
}

impl DirHandle {
    /// Opens the configured directory. Its own path is trusted (it comes from the config, and
    /// may legitimately be reached through symlinks such as `/var/www/current`); everything
    /// below it is not.
    pub fn open(path: &Path) -> io::Result<DirHandle> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirHandle {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Like [`DirHandle::open`], but no component of `path` may be a symlink (`ELOOP`): for a
    /// path the config check resolved already, where a link found later was planted.
    pub fn open_no_symlinks(path: &Path) -> io::Result<DirHandle> {
        let fd = openat2(
            rustix::fs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?;
        Ok(DirHandle {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A second handle on an already resolved directory (its path is unknown: messages only).
    pub fn from_fd(dir: &OwnedFd) -> io::Result<DirHandle> {
        Ok(DirHandle {
            fd: dir.try_clone()?,
            path: PathBuf::new(),
        })
    }

    /// The configured path (for messages and for paths given to the front server).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` relative to this handle, if it lies below it (lexically).
    pub fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.path).ok()
    }

    fn open_path(&self, rel: &Path) -> io::Result<OwnedFd> {
        Ok(openat2(
            &self.fd,
            rel_or_dot(rel),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// What `rel` is, looked up beneath this handle. One `openat2(O_PATH)` and one `fstat`:
    /// nothing is read and nothing is followed.
    pub fn lookup(&self, rel: &Path) -> io::Result<Lookup> {
        let fd = match self.open_path(rel) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Ok(Lookup::Missing),
            Err(e) if is_refused(&e) => return Ok(Lookup::Refused),
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd)?;
        Ok(match kind(&st) {
            FileType::RegularFile => Lookup::File(FileStamp::from_stat(&st)),
            FileType::Directory => Lookup::Dir,
            _ => Lookup::Refused,
        })
    }

    /// An `O_PATH` descriptor of the regular file `rel` and its raw `fstat` (all its times),
    /// looked up like [`Self::lookup`]; `Ok(None)` when it is missing or anything but a regular
    /// file reached without symlinks. [`Self::reopen`] opens that very inode for reading.
    pub fn regular_path(&self, rel: &Path) -> io::Result<Option<(OwnedFd, Stat)>> {
        let fd = match self.open_path(rel) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) || is_refused(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd)?;
        Ok((kind(&st) == FileType::RegularFile).then_some((fd, st)))
    }

    /// Opens the regular file `rel` for reading. `Ok(None)` when it is missing or anything but
    /// a regular file reached without symlinks; a special file is never opened for reading.
    pub fn open_file(&self, rel: &Path) -> io::Result<Option<OpenFile>> {
        let Some((pfd, st)) = self.regular_path(rel)? else {
            return Ok(None);
        };
        self.reopen(&pfd, &st, rel)
    }

    /// The file `pfd` and `st` (from [`Self::regular_path`] of `rel`) name, opened for reading:
    /// the same inode, not whatever `rel` names by now. `Ok(None)` if something else was
    /// swapped in (only possible on the fallback path without /proc).
    pub fn reopen(&self, pfd: &OwnedFd, st: &Stat, rel: &Path) -> io::Result<Option<OpenFile>> {
        let checked = FileStamp::from_stat(st);
        let file = File::from(reopen_readable(pfd, &self.fd, rel)?);
        let stamp = FileStamp::from_meta(&file.metadata()?);
        if stamp.ino != checked.ino || stamp.dev != checked.dev {
            return Ok(None);
        }
        Ok(Some(OpenFile { file, stamp }))
    }

    /// Opens the directory `rel` for reading its entries.
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        Ok(openat2(
            &self.fd,
            rel_or_dot(rel),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// The directory that holds `rel` and `rel`'s last component, for `*at` calls on it.
    pub fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = rel.parent().unwrap_or(Path::new(""));
        Ok((self.open_dir(dir)?, name))
    }

    /// Creates the directory `rel` and its missing parents beneath this handle, one component
    /// at a time (`mkdirat` relative to the parent just resolved), and returns it opened.
    pub fn create_dirs(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut cur = self.open_dir(Path::new(""))?;
        for comp in rel.components() {
            let name = comp.as_os_str();
            match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            // Relative to the parent handle: a symlink swapped in meanwhile is refused.
            cur = openat2(
                &cur,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )?;
        }
        Ok(cur)
    }
}

/// A readable descriptor for the inode `pfd` (an `O_PATH` descriptor) refers to. Through
/// `/proc/self/fd`, which names that inode and no path; where `/proc` is not mounted, the path
/// is resolved beneath `dir` again (non-blocking, so a FIFO swapped in cannot hang us, and the
/// caller compares inode numbers).
fn reopen_readable(pfd: &OwnedFd, dir: &OwnedFd, rel: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let proc_path = format!("/proc/self/fd/{}", pfd.as_raw_fd());
    match rustix::fs::open(proc_path.as_str(), flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) => Ok(openat2(
            dir,
            rel_or_dot(rel),
            flags | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE,
        )?),
        Err(e) => Err(e.into()),
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` as a stamp, if `name` is a regular file.
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileStamp>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if kind(&st) == FileType::RegularFile => Ok(Some(FileStamp::from_stat(&st))),
        Ok(_) => Ok(None),
        Err(e) => {
            let e = io::Error::from(e);
            if is_missing(&e) { Ok(None) } else { Err(e) }
        }
    }
}

/// The kind of `name` in `dir`, without following it.
pub fn type_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileType>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(kind(&st))),
        Err(e) => {
            let e = io::Error::from(e);
            if is_missing(&e) { Ok(None) } else { Err(e) }
        }
    }
}

/// `renameat(from_dir, from, to_dir, to)`, replacing `to`.
pub fn rename_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    Ok(renameat(from_dir, from, to_dir, to)?)
}

/// `renameat2(…, RENAME_NOREPLACE)`: fails with `EEXIST` rather than replace `to`.
pub fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    Ok(renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        RenameFlags::NOREPLACE,
    )?)
}

/// `unlinkat(dir, name, 0)`.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(unlinkat(dir, name, AtFlags::empty())?)
}

/// `unlinkat(dir, name, AT_REMOVEDIR)`: removes an empty directory.
pub fn rmdir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Creates `name` in `dir` for writing; fails if anything (also a symlink) is there.
pub fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode as _),
    )?;
    Ok(File::from(fd))
}

/// `fsync` of a directory handle (makes renames in it durable).
pub fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}

/// The entries of the directory `fd` (without `.` and `..`), with their types as `readdir`
/// reports them (`Unknown` on file systems that do not say).
pub fn read_dir(fd: &OwnedFd) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let e = e?;
        let name: &CStr = e.file_name();
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        out.push((b.to_vec(), e.file_type()));
    }
    Ok(out)
}

/// Borrowed handle of an owned descriptor (shorthand for the `*at` helpers).
pub fn fd(f: &OwnedFd) -> BorrowedFd<'_> {
    f.as_fd()
}

/// A name from `read_dir` as an `OsStr`.
pub fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub/deeper/a.txt"), b"inside").unwrap();
        std::fs::write(outside.join("secret.txt"), b"SECRET").unwrap();
        symlink(&outside, root.join("linkdir")).unwrap();
        symlink(outside.join("secret.txt"), root.join("link.txt")).unwrap();
        symlink("sub", root.join("relative-link")).unwrap();
        (dir, root, outside)
    }

    #[test]
    fn lookup_refuses_every_symlink_and_escape() {
        let (_d, root, _o) = tree();
        let h = DirHandle::open(&root).unwrap();
        assert!(matches!(
            h.lookup(Path::new("sub/deeper/a.txt")).unwrap(),
            Lookup::File(s) if s.size == 6
        ));
        assert_eq!(h.lookup(Path::new("sub")).unwrap(), Lookup::Dir);
        assert_eq!(h.lookup(Path::new("")).unwrap(), Lookup::Dir);
        assert_eq!(h.lookup(Path::new("nope")).unwrap(), Lookup::Missing);
        assert_eq!(
            h.lookup(Path::new("sub/deeper/a.txt/x")).unwrap(),
            Lookup::Missing
        );
        for refused in [
            "link.txt",
            "linkdir",
            "linkdir/secret.txt",
            "relative-link/deeper/a.txt",
            "../outside/secret.txt",
            "sub/../../outside/secret.txt",
            "/etc/passwd",
        ] {
            assert_eq!(
                h.lookup(Path::new(refused)).unwrap(),
                Lookup::Refused,
                "{refused}"
            );
            assert!(
                h.open_file(Path::new(refused)).unwrap().is_none(),
                "{refused}"
            );
        }
    }

    #[test]
    fn open_file_reads_the_checked_inode_and_skips_specials() {
        let (_d, root, _o) = tree();
        let h = DirHandle::open(&root).unwrap();
        let mut f = h.open_file(Path::new("sub/deeper/a.txt")).unwrap().unwrap();
        let mut s = String::new();
        f.file.read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        assert_eq!(f.restat().unwrap(), f.stamp);
        // A FIFO must not be opened for reading (that would block, or release a writer).
        rustix::fs::mknodat(
            h.open_dir(Path::new("")).unwrap(),
            "fifo",
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(h.lookup(Path::new("fifo")).unwrap(), Lookup::Refused);
        assert!(h.open_file(Path::new("fifo")).unwrap().is_none());
        assert!(h.open_file(Path::new("sub")).unwrap().is_none());
    }

    #[test]
    fn create_dirs_refuses_a_symlinked_component() {
        let (_d, root, outside) = tree();
        let h = DirHandle::open(&root).unwrap();
        h.create_dirs(Path::new("new/a/b")).unwrap();
        assert!(root.join("new/a/b").is_dir());
        assert!(h.create_dirs(Path::new("linkdir/x")).is_err());
        assert!(!outside.join("x").exists());
        let (p, name) = h.parent(Path::new("sub/deeper/a.txt")).unwrap();
        assert_eq!(name, "a.txt");
        assert!(stat_at(fd(&p), name).unwrap().is_some());
        assert!(h.parent(Path::new("linkdir/secret.txt")).is_err());
    }
}
