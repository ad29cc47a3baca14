//! Removing one file everywhere it lives, for `stowaway rm` and the admin API alike: the
//! tombstone in the bucket, the file under the mount root, its archive copy, the object in S3
//! (a delete marker in a versioned bucket, or every version) and the hot cache. Each place is
//! reported on its own; running it again is safe and finishes what a failed run left.
//!
//! Per path, in this order:
//! 1. the tombstone (first: from then on no node uploads or serves a copy that turns up, and an
//!    upload already running takes its object back down, see [`crate::uploader::pipeline`]);
//! 2. the file under the mount root;
//! 3. its copy under `archive_root`;
//! 4. the object in S3: a plain DeleteObject (in a versioned bucket that leaves a delete marker
//!    and the old versions), or with [`Options::all_versions`] every version and delete marker
//!    of the key;
//! 5. the hot cache.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::beneath::{self, DirHandle};
use crate::config::{Mount, Settings};
use crate::ignore::OWN_PREFIX;
use crate::paths::{MapResult, encode_path, is_file_key, map_request, object_key};
use crate::store::ObjectStore;
use crate::store::tombstone::Deleted;

/// Why a path cannot be removed at all.
#[derive(Debug, thiserror::Error)]
pub enum RmError {
    #[error("{0:?} is not a file under any mount prefix")]
    NoMount(String),
    #[error("{0:?}: {1}")]
    BadPath(String, String),
    #[error("{0:?} names a directory, not a file")]
    Directory(String),
}

/// What happened in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done(String),
    Failed(String),
}

impl Step {
    pub fn failed(&self) -> bool {
        match self {
            Step::Done(_) => false,
            Step::Failed(_) => true,
        }
    }

    fn text(&self) -> &str {
        match self {
            Step::Done(t) | Step::Failed(t) => t,
        }
    }
}

/// How to remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete every version and delete marker of the object (ListObjectVersions, then
    /// DeleteObject with each VersionId) instead of one plain DeleteObject.
    pub all_versions: bool,
}

/// The report of one path: each place with what happened there.
#[derive(Debug)]
pub struct Report {
    pub path: String,
    pub steps: Vec<(&'static str, Step)>,
}

impl Report {
    /// Whether some place could not be cleared (running it again may finish the job).
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|(_, s)| s.failed())
    }

    /// The report as JSON, in this order: `{"path", "ok", "results": [{"location", "ok",
    /// "detail"}]}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Location<'a> {
            location: &'a str,
            ok: bool,
            detail: &'a str,
        }
        #[derive(Serialize)]
        struct Out<'a> {
            path: &'a str,
            ok: bool,
            results: Vec<Location<'a>>,
        }
        let out = Out {
            path: &self.path,
            ok: !self.failed(),
            results: self
                .steps
                .iter()
                .map(|(place, s)| Location {
                    location: place,
                    ok: !s.failed(),
                    detail: s.text(),
                })
                .collect(),
        };
        // Strings, bools and lists only: serialising cannot fail.
        serde_json::to_string(&out).unwrap_or_else(|_| "{}".into())
    }
}

/// Maps a URL path (not percent-encoded) to its mount and key, as the decision would.
pub fn locate(settings: &Settings, path: &str) -> Result<(usize, String), RmError> {
    let encoded = encode_path(path);
    let prefixes: Vec<&str> = settings.mounts.iter().map(|m| m.prefix.as_str()).collect();
    match map_request(&prefixes, &encoded) {
        // stowaway's own names (tombstones, archive temp copies, files detached on their way
        // to the archive) are never user files: removing one would bring a removed path back
        // or break a move in flight.
        MapResult::Mapped(m) if m.key.split('/').any(|c| c.starts_with(OWN_PREFIX)) => {
            Err(RmError::BadPath(
                path.to_string(),
                format!("names stowaway's own {OWN_PREFIX}… files, not a file to remove"),
            ))
        }
        MapResult::Mapped(m) if is_file_key(&m.key) => Ok((m.mount, m.key.into_owned())),
        MapResult::Mapped(_) => Err(RmError::Directory(path.to_string())),
        MapResult::NoMount => Err(RmError::NoMount(path.to_string())),
        MapResult::Bad(e) => Err(RmError::BadPath(path.to_string(), e.to_string())),
    }
}

/// Removes the regular file `key` beneath `dir`, never following a symlink on the way.
fn unlink_beneath(dir: &Path, key: &str) -> Result<bool, String> {
    let shown = || dir.join(key).display().to_string();
    let h = match DirHandle::open(dir) {
        Ok(h) => h,
        Err(e) => return Err(format!("cannot open {}: {e}", dir.display())),
    };
    let (parent, name): (_, &OsStr) = match h.parent(Path::new(key)) {
        Ok(p) => p,
        Err(e) if beneath::is_missing(&e) => return Ok(false),
        Err(e) if beneath::is_refused(&e) => {
            return Err(format!(
                "{}: a directory on the way is a symlink; left alone",
                shown()
            ));
        }
        Err(e) => return Err(format!("{}: {e}", shown())),
    };
    match beneath::type_at(beneath::fd(&parent), name) {
        Ok(None) => Ok(false),
        Ok(Some(rustix::fs::FileType::RegularFile)) => {
            match beneath::unlink_at(beneath::fd(&parent), name) {
                Ok(()) => Ok(true),
                Err(e) if beneath::is_missing(&e) => Ok(false),
                Err(e) => Err(format!("cannot remove {}: {e}", shown())),
            }
        }
        Ok(Some(_)) => Err(format!(
            "{} is not a regular file (a directory or symlink); left alone",
            shown()
        )),
        Err(e) => Err(format!("{}: {e}", shown())),
    }
}

fn local_step(dir: &Path, key: &str) -> Step {
    match unlink_beneath(dir, key) {
        Ok(true) => Step::Done(format!("removed {}", dir.join(key).display())),
        Ok(false) => Step::Done("not there".into()),
        Err(e) => Step::Failed(e),
    }
}

async fn local_step_blocking(dir: std::path::PathBuf, key: &str) -> Step {
    let k = key.to_string();
    tokio::task::spawn_blocking(move || local_step(&dir, &k))
        .await
        .unwrap_or_else(|e| Step::Failed(format!("internal error: {e}")))
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// Now, in Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The expiry (Unix seconds) a tombstone written now gets in mount `m`; `None` when the mount
/// keeps no tombstones.
pub fn tombstone_until(m: &Mount) -> Option<u64> {
    (!m.tombstone_ttl.is_zero()).then(|| now_secs().saturating_add(m.tombstone_ttl.as_secs()))
}

async fn s3_step(store: &ObjectStore, m: &Mount, object: &str, opts: Options) -> Step {
    let shown = format!("s3://{}/{object}", m.bucket);
    if opts.all_versions {
        return match store.delete_all_versions(&m.bucket, object).await {
            Ok(0) => Step::Done("not there (no versions)".into()),
            Ok(n) => Step::Done(format!("deleted {n} version(s) of {shown}")),
            Err(e) => Step::Failed(format!("cannot delete the versions of {shown}: {e}")),
        };
    }
    match store.delete_object(&m.bucket, object).await {
        Ok(Deleted::Removed) => Step::Done(format!("deleted {shown}")),
        Ok(Deleted::Absent) => Step::Done("not there".into()),
        Err(e) => Step::Failed(format!("cannot delete {shown}: {e}")),
    }
}

/// The hot cache's copy of `key`.
///
/// The hot-object cache's copy, beneath the cache directory's handle (never through a
/// symlink). A running serve that has the entry in its index forgets it at its next lookup.
fn purge_cache(cache_dir: Option<&Path>, key: &str) -> Step {
    let Some(dir) = cache_dir else {
        return Step::Done("not configured".into());
    };
    match crate::cache::purge(dir, key) {
        Ok(true) => Step::Done("removed".into()),
        Ok(false) => Step::Done("not there".into()),
        Err(e) => Step::Failed(format!("cannot remove it: {e}")),
    }
}

/// The cache directory of mount `mount`, if it has a hot-object cache.
pub fn cache_dir(settings: &Settings, mount: usize) -> Option<&Path> {
    settings
        .caches
        .iter()
        .find(|c| c.mount == mount)
        .map(|c| c.dir.as_path())
}

/// Removes one mapped path everywhere and reports each place.
pub async fn remove(
    store: &ObjectStore,
    m: &Mount,
    cache_dir: Option<&Path>,
    key: &str,
    path: &str,
    opts: Options,
) -> Report {
    let mut steps = Vec::with_capacity(5);
    let object = object_key(&m.key_prefix, key);
    let tombstone = match tombstone_until(m) {
        None => Step::Done("none (mount.tombstone_ttl = 0s)".into()),
        Some(until) => match store
            .put_tombstone(&m.bucket, &m.key_prefix, key, until)
            .await
        {
            Ok(()) => Step::Done(format!("recorded until {}", rfc3339(until))),
            Err(e) => Step::Failed(format!("cannot record it: {e}")),
        },
    };
    steps.push(("tombstone", tombstone));
    steps.push(("root", local_step_blocking(m.root.clone(), key).await));
    if let Some(a) = m.archive_root.clone() {
        steps.push(("archive", local_step_blocking(a, key).await));
    }
    steps.push(("s3", s3_step(store, m, &object, opts).await));
    steps.push(("cache", purge_cache(cache_dir, key)));
    Report {
        path: path.to_string(),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_each_location() {
        let r = Report {
            path: "/static/a.jpg".into(),
            steps: vec![
                ("root", Step::Done("removed /r/a.jpg".into())),
                (
                    "s3",
                    Step::Failed("cannot delete s3://b/a.jpg: down".into()),
                ),
            ],
        };
        assert!(r.failed());
        assert_eq!(
            r.to_json(),
            r#"{"path":"/static/a.jpg","ok":false,"results":[{"location":"root","ok":true,"detail":"removed /r/a.jpg"},{"location":"s3","ok":false,"detail":"cannot delete s3://b/a.jpg: down"}]}"#
        );
    }

    #[test]
    fn unlink_never_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("sub/a.jpg"), b"a").unwrap();
        std::fs::write(outside.join("b.jpg"), b"b").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("b.jpg"), root.join("link.jpg")).unwrap();
        assert_eq!(unlink_beneath(&root, "sub/a.jpg"), Ok(true));
        assert!(!root.join("sub/a.jpg").exists());
        assert_eq!(unlink_beneath(&root, "sub/a.jpg"), Ok(false), "twice");
        assert_eq!(unlink_beneath(&root, "nope/a.jpg"), Ok(false));
        // A symlinked directory is refused or looks empty, depending on the kernel's order of
        // checks: either way nothing behind it is removed.
        assert_ne!(unlink_beneath(&root, "out/b.jpg"), Ok(true));
        assert!(unlink_beneath(&root, "link.jpg").is_err());
        assert!(unlink_beneath(&root, "sub").is_err());
        assert!(
            outside.join("b.jpg").exists(),
            "nothing outside the root is touched"
        );
    }
}
