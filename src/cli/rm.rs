//! `stowaway rm URL-PATH…` on the command line: removes each file everywhere it lives and
//! records its tombstone, reporting every place on its own line; exits non-zero if any place
//! failed. Running it again is safe and finishes what a failed run left.
//!
//! Per path, in this order:
//! 1. the tombstone in the bucket (first: from then on no node uploads or serves a copy that
//!    turns up, and an upload already running takes its object back down, see
//!    [`crate::uploader::pipeline`]);
//! 2. the file under the mount root;
//! 3. its copy under `archive_root`;
//! 4. the object in S3 (plain DeleteObject; in a versioned bucket that leaves a delete marker
//!    and the old versions).

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::beneath::{self, DirHandle};
use crate::config::{Mount, Settings};
use crate::paths::{MapResult, encode_path, is_file_key, map_request, object_key};
use crate::store::ObjectStore;
use crate::store::tombstone::Deleted;

/// Exit code when some place could not be cleared.
pub const EXIT_FAILED: u8 = 1;

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
#[derive(Debug)]
pub enum Step {
    Done(String),
    Failed(String),
}

impl Step {
    fn failed(&self) -> bool {
        match self {
            Step::Done(_) => false,
            Step::Failed(_) => true,
        }
    }
}

/// The report of one path: each place with what happened there.
#[derive(Debug)]
pub struct Report {
    pub path: String,
    pub steps: Vec<(&'static str, Step)>,
}

/// Maps a URL path (not percent-encoded) to its mount and key, as the decision would.
pub fn locate(settings: &Settings, path: &str) -> Result<(usize, String), RmError> {
    let encoded = encode_path(path);
    let prefixes: Vec<&str> = settings.mounts.iter().map(|m| m.prefix.as_str()).collect();
    match map_request(&prefixes, &encoded) {
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

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// Removes one mapped path everywhere and reports each place.
pub async fn remove(store: &ObjectStore, m: &Mount, key: &str, path: &str) -> Report {
    let mut steps = Vec::with_capacity(4);
    let object = object_key(&m.key_prefix, key);
    if m.tombstone_ttl.is_zero() {
        steps.push((
            "tombstone",
            Step::Done("none (mount.tombstone_ttl = 0s)".into()),
        ));
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let until = now.saturating_add(m.tombstone_ttl.as_secs());
        let step = match store
            .put_tombstone(&m.bucket, &m.key_prefix, key, until)
            .await
        {
            Ok(()) => Step::Done(format!("recorded until {}", rfc3339(until))),
            Err(e) => Step::Failed(format!("cannot record it: {e}")),
        };
        steps.push(("tombstone", step));
    }
    let (root, k) = (m.root.clone(), key.to_string());
    steps.push((
        "root",
        tokio::task::spawn_blocking(move || local_step(&root, &k))
            .await
            .unwrap_or_else(|e| Step::Failed(format!("internal error: {e}"))),
    ));
    if let Some(a) = m.archive_root.clone() {
        let k = key.to_string();
        steps.push((
            "archive",
            tokio::task::spawn_blocking(move || local_step(&a, &k))
                .await
                .unwrap_or_else(|e| Step::Failed(format!("internal error: {e}"))),
        ));
    }
    let s3 = match store.delete_object(&m.bucket, &object).await {
        Ok(Deleted::Removed) => Step::Done(format!("deleted s3://{}/{object}", m.bucket)),
        Ok(Deleted::Absent) => Step::Done("not there".into()),
        Err(e) => Step::Failed(format!("cannot delete s3://{}/{object}: {e}", m.bucket)),
    };
    steps.push(("s3", s3));
    Report {
        path: path.to_string(),
        steps,
    }
}

/// The report as lines: `rm <path>: <place>: <what happened>`.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for (place, step) in &r.steps {
        let (mark, text) = match step {
            Step::Done(t) => ("", t.as_str()),
            Step::Failed(t) => ("FAILED: ", t.as_str()),
        };
        out.push_str(&format!("rm {}: {place}: {mark}{text}\n", r.path));
    }
    out
}

/// The `rm` command: logging, runtime, one report per path, exit code.
pub fn main(settings: Settings, paths: &[String]) -> ExitCode {
    super::init_logging_to(&settings, "warn", "warn", std::io::stderr);
    // Every path is checked before anything is removed: a typo in the fifth must not leave
    // the first four half-done.
    let mut located = Vec::with_capacity(paths.len());
    for p in paths {
        match locate(&settings, p) {
            Ok(l) => located.push((p, l)),
            Err(e) => {
                eprintln!("stowaway: rm: {e}; nothing was removed");
                return ExitCode::from(super::EXIT_CONFIG);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stowaway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = rt.block_on(async {
        let store = crate::tombstone::connect(&settings).await;
        let mut failed = 0usize;
        for (p, (mount, key)) in &located {
            let r = remove(&store, &settings.mounts[*mount], key, p).await;
            print!("{}", render(&r));
            if r.steps.iter().any(|(_, s)| s.failed()) {
                failed += 1;
            }
        }
        failed
    });
    if failed > 0 {
        eprintln!(
            "stowaway: rm: {failed} of {} path(s) not removed everywhere (see FAILED above); run the same command again once the cause is fixed: what is done stays done",
            located.len()
        );
        return ExitCode::from(EXIT_FAILED);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_name_each_place() {
        let r = Report {
            path: "/static/a b.jpg".into(),
            steps: vec![
                (
                    "tombstone",
                    Step::Done("recorded until 2026-01-08T00:00:00Z".into()),
                ),
                ("root", Step::Done("not there".into())),
                (
                    "s3",
                    Step::Failed("cannot delete s3://b/a b.jpg: down".into()),
                ),
            ],
        };
        assert_eq!(
            render(&r),
            "rm /static/a b.jpg: tombstone: recorded until 2026-01-08T00:00:00Z\n\
             rm /static/a b.jpg: root: not there\n\
             rm /static/a b.jpg: s3: FAILED: cannot delete s3://b/a b.jpg: down\n"
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
