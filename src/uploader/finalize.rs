//! What happens to a local file once its object is verified: `archive` (move it under
//! `archive_root`, same relative path), `delete`, or `keep`.
//!
//! A move within one file system is a single `rename(2)`: the file is at one of its two
//! paths at every instant. Across file systems it is a copy to a hidden temp name in the
//! destination directory, `fsync`, `rename` into place, `fsync` of the directory, and only
//! then removal of the source; any failure (a full disk…) removes the temp file and leaves the
//! source alone. Temp files of a crashed run are removed at start-up ([`clean_temp_files`]);
//! a destination that already holds identical content (crash after the rename) only needs the
//! source removed. Directories in the root are never removed.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::hash::{Digests, Layout, hash_file};
use super::scan::{FileStamp, stat_file};
use crate::config::{Finalize, Mount};

/// Prefix of archive temp files: `.stowaway-tmp.<pid>.<run>.<n>`.
pub const TEMP_PREFIX: &str = ".stowaway-tmp.";

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

/// Fails with `Changed` unless `path` still has exactly `stamp`.
fn ensure_unchanged(path: &Path, stamp: &FileStamp) -> Result<(), FinalizeError> {
    match stat_file(path).map_err(io_err("stat", path))? {
        Some(s) if s == *stamp => Ok(()),
        _ => Err(FinalizeError::Changed(path.to_path_buf())),
    }
}

/// Finalizes `path` (relative key `rel`) of `mount`, provided it still has `stamp`, the state
/// that was hashed to `d` and verified in S3. Blocking.
pub fn finalize(
    mount: &Mount,
    path: &Path,
    rel: &str,
    stamp: &FileStamp,
    d: &Digests,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    match mount.finalize {
        Finalize::Keep => Ok(Finalized::Kept),
        Finalize::Delete => {
            ensure_unchanged(path, stamp)?;
            fs::remove_file(path).map_err(io_err("remove", path))?;
            Ok(Finalized::Deleted)
        }
        Finalize::Archive => {
            let archive = mount
                .archive_root
                .as_deref()
                .ok_or(FinalizeError::NoArchiveRoot)?;
            archive_file(path, &archive.join(rel), stamp, d, names)
        }
    }
}

/// Moves `src` to `dst` (see the module docs).
pub fn archive_file(
    src: &Path,
    dst: &Path,
    stamp: &FileStamp,
    d: &Digests,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    ensure_unchanged(src, stamp)?;
    let dir = dst.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io_err("create archive directory", dir))?;
    match fs::rename(src, dst) {
        Ok(()) => {
            // A writer could have replaced the file between the check and the rename; then the
            // archive holds content S3 does not have. Put it back to be uploaded again.
            match stat_file(dst) {
                Ok(Some(s)) if s.same_content(stamp) => Ok(Finalized::Archived {
                    to: dst.to_path_buf(),
                    copied: false,
                }),
                _ => {
                    if !src.exists()
                        && let Err(e) = fs::rename(dst, src)
                    {
                        tracing::error!(from = %dst.display(), to = %src.display(), error = %e, "file changed while being archived and could not be moved back; it is only in the archive");
                    }
                    Err(FinalizeError::Changed(src.to_path_buf()))
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            copy_across(src, dst, dir, stamp, d, names)
        }
        Err(e) => Err(FinalizeError::Io {
            op: "move to the archive",
            path: src.to_path_buf(),
            source: e,
        }),
    }
}

fn copy_across(
    src: &Path,
    dst: &Path,
    dir: &Path,
    stamp: &FileStamp,
    d: &Digests,
    names: &TempNamer,
) -> Result<Finalized, FinalizeError> {
    if !identical(dst, d) {
        let tmp = dir.join(names.next());
        let res = copy_to_temp(src, &tmp, dst, stamp).and_then(|()| {
            // Still the verified file after the copy? Then the copy is that content.
            ensure_unchanged(src, stamp)?;
            fs::rename(&tmp, dst).map_err(io_err("rename into place", dst))?;
            fsync_dir(dir).map_err(io_err("fsync", dir))
        });
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    }
    // The archive copy is complete and durable: now the source may go.
    fs::remove_file(src).map_err(io_err("remove the archived source", src))?;
    if let Some(p) = src.parent() {
        let _ = fsync_dir(p);
    }
    Ok(Finalized::Archived {
        to: dst.to_path_buf(),
        copied: true,
    })
}

/// Whether `dst` already holds exactly the verified content (left by a crash after the
/// rename into place and before the source was removed).
fn identical(dst: &Path, d: &Digests) -> bool {
    match stat_file(dst) {
        Ok(Some(s)) if s.size == d.size => {
            hash_file(dst, s.size, Layout::Single).is_ok_and(|h| h.sha256 == d.sha256)
        }
        _ => false,
    }
}

/// Copies `src` into the new file `tmp`; errors name `dst` (the temp name changes with every
/// attempt, and a stable message is logged once instead of on every rescan).
fn copy_to_temp(
    src: &Path,
    tmp: &Path,
    dst: &Path,
    stamp: &FileStamp,
) -> Result<(), FinalizeError> {
    let mut from = fs::File::open(src).map_err(io_err("open", src))?;
    let meta = from.metadata().map_err(io_err("stat", src))?;
    // Copy the inode that was verified, not whatever the path names now.
    if !FileStamp::from_meta(&meta).same_content(stamp) {
        return Err(FinalizeError::Changed(src.to_path_buf()));
    }
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_err("create a temp file for", dst))?;
    let n = io::copy(&mut from, &mut to).map_err(io_err("copy to", dst))?;
    if n != stamp.size {
        return Err(FinalizeError::Changed(src.to_path_buf()));
    }
    to.set_permissions(meta.permissions())
        .map_err(io_err("set permissions of", dst))?;
    if let Ok(m) = meta.modified() {
        to.set_modified(m).map_err(io_err("set mtime of", dst))?;
    }
    to.sync_all().map_err(io_err("fsync the copy of", dst))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes temp files left in `archive_root` by stowaway processes that are gone (crashed
/// mid-copy). Returns how many were removed. Blocking; walks the whole archive.
pub fn clean_temp_files(archive_root: &Path) -> usize {
    let me = std::process::id();
    let mut removed = 0;
    for e in walkdir::WalkDir::new(archive_root)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        let name = e.file_name().to_string_lossy();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        if !e.file_type().is_file() {
            continue;
        }
        let pid: Option<u32> = rest.split('.').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|p| p == me || Path::new(&format!("/proc/{p}")).exists());
        if alive {
            continue;
        }
        match fs::remove_file(e.path()) {
            Ok(()) => {
                tracing::info!(path = %e.path().display(), "removed the temp file of an interrupted archive copy");
                removed += 1;
            }
            Err(err) => {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a stale archive temp file")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::super::hash::hash_file;
    use super::*;

    fn setup(content: &[u8]) -> (tempfile::TempDir, PathBuf, FileStamp, Digests) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("root/a/b.txt");
        fs::create_dir_all(src.parent().unwrap()).unwrap();
        fs::write(&src, content).unwrap();
        let stamp = stat_file(&src).unwrap().unwrap();
        let d = hash_file(&src, stamp.size, Layout::Single).unwrap();
        (dir, src, stamp, d)
    }

    #[test]
    fn same_fs_archive_is_a_rename() {
        let (dir, src, stamp, d) = setup(b"data");
        let dst = dir.path().join("archive/a/b.txt");
        let r = archive_file(&src, &dst, &stamp, &d, &TempNamer::default()).unwrap();
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: false
            }
        );
        assert!(!src.exists());
        assert_eq!(fs::read(&dst).unwrap(), b"data");
        assert!(
            src.parent().unwrap().is_dir(),
            "directories in the root stay"
        );
    }

    #[test]
    fn changed_file_is_not_archived() {
        let (dir, src, stamp, d) = setup(b"data");
        fs::write(&src, b"new data").unwrap();
        let dst = dir.path().join("archive/a/b.txt");
        assert!(matches!(
            archive_file(&src, &dst, &stamp, &d, &TempNamer::default()),
            Err(FinalizeError::Changed(_))
        ));
        assert_eq!(fs::read(&src).unwrap(), b"new data");
        assert!(!dst.exists());
    }

    #[test]
    fn cross_fs_copy_and_identical_destination() {
        let (dir, src, stamp, d) = setup(b"payload");
        let dst = dir.path().join("archive/a/b.txt");
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let names = TempNamer::default();
        // The copy path, called directly (a second file system is not needed for it).
        let r = copy_across(&src, &dst, dst.parent().unwrap(), &stamp, &d, &names).unwrap();
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: true
            }
        );
        assert_eq!(fs::read(&dst).unwrap(), b"payload");
        assert!(!src.exists());
        let leftovers: Vec<_> = fs::read_dir(dst.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
        // Crash after the rename, before the source was removed: the source comes back.
        fs::write(&src, b"payload").unwrap();
        let stamp2 = stat_file(&src).unwrap().unwrap();
        let r = copy_across(&src, &dst, dst.parent().unwrap(), &stamp2, &d, &names).unwrap();
        assert_eq!(
            r,
            Finalized::Archived {
                to: dst.clone(),
                copied: true
            }
        );
        assert!(!src.exists());
    }

    #[test]
    fn delete_and_keep() {
        let (dir, src, stamp, d) = setup(b"x");
        let mut m = test_mount(dir.path());
        m.finalize = Finalize::Keep;
        assert_eq!(
            finalize(&m, &src, "a/b.txt", &stamp, &d, &TempNamer::default()).unwrap(),
            Finalized::Kept
        );
        assert!(src.exists());
        m.finalize = Finalize::Delete;
        assert_eq!(
            finalize(&m, &src, "a/b.txt", &stamp, &d, &TempNamer::default()).unwrap(),
            Finalized::Deleted
        );
        assert!(!src.exists());
        assert!(src.parent().unwrap().is_dir());
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
