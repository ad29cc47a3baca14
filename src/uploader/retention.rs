//! Archive retention (`archive_retention`): archived files older than the retention whose
//! object S3 still holds, verified, are removed from `archive_root`. Never a file whose object
//! is missing, different or cannot be proven equal, and nothing at all while S3 cannot be
//! asked: the archive may be the only good copy left.
//!
//! Age is the archive file's status-change time (ctime), which the archive move sets (a
//! `rename` and the copy across file systems both move it) and nobody can set back, so it is
//! the time the file was archived or last touched. mtime is the app's: the archive move keeps
//! it, so a photo uploaded years ago and archived yesterday would look years old. A file
//! changed in the archive is thereby young again, which only delays its pruning.
//!
//! Every access is beneath the archive root handle ([`crate::beneath`]): the walk opens each
//! directory relative to it without following symlinks, the file is opened once and hashed
//! through that descriptor, and the removal ([`finalize::remove_verified`]) detaches the very
//! inode that was hashed, so a symlink or another file swapped in meanwhile is never removed.
//!
//! The walk is depth-first in byte order of names, so a pass that stops at its budget (inside
//! `serve`, [`Budget::PASS`]) leaves a cursor and the next pass goes on after it; the hashing
//! work per pass is bounded, and memory is one directory listing per level.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use rustix::fs::FileType;
use serde::Serialize;

use super::finalize::{self, DETACHED_PREFIX, FinalizeError, ReadAt, Source, TempNamer};
use super::stats::Stats;
use crate::beneath::{self, DirHandle, FileStamp, fd};
use crate::config::{Mount, Settings, TEMP_PREFIX, UploaderSettings};
use crate::paths::{key_for_local, object_key};
use crate::store::ObjectStore;
use crate::store::hash::{Digests, HashError, Layout, hash_reader};
use crate::store::stop::Stop;
use crate::store::verify::{Mismatch, Verified, VerifyError};

/// Why an archived file past its retention stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// No object under its key.
    ObjectMissing,
    /// The object differs from the archived file (size, checksum, ETag or sha256 metadata).
    ObjectDifferent(String),
    /// The object cannot be proven equal (no comparable integrity value, HeadObject forbidden).
    Unverifiable(String),
    /// The archived file could not be read or removed.
    LocalError(String),
    /// The file changed, vanished or was replaced while it was checked.
    Changed,
    /// A symlink, FIFO, socket or device: never followed, never removed.
    NotRegular,
    /// Its path is not one the uploader gives an object key (not UTF-8, control characters…).
    NoKey,
    /// Removed by `stowaway rm` (its tombstone lives): removing it is `rm`'s job, which
    /// reports it, never retention's "pruned as verified" (the object may be gone already, or
    /// about to be).
    Tombstoned,
}

impl KeepReason {
    /// Short machine-readable name (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            KeepReason::ObjectMissing => "object_missing",
            KeepReason::ObjectDifferent(_) => "object_different",
            KeepReason::Unverifiable(_) => "unverifiable",
            KeepReason::LocalError(_) => "local_error",
            KeepReason::Changed => "changed",
            KeepReason::NotRegular => "not_regular",
            KeepReason::NoKey => "no_key",
            KeepReason::Tombstoned => "tombstoned",
        }
    }

    /// Whether S3 did not vouch for the file: the finding an operator must look at (the
    /// archive may be the only good copy).
    pub fn unverified(&self) -> bool {
        match self {
            KeepReason::ObjectMissing
            | KeepReason::ObjectDifferent(_)
            | KeepReason::Unverifiable(_) => true,
            KeepReason::LocalError(_)
            | KeepReason::Changed
            | KeepReason::NotRegular
            | KeepReason::NoKey
            | KeepReason::Tombstoned => false,
        }
    }
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::ObjectMissing => f.write_str("the object is missing in S3"),
            KeepReason::ObjectDifferent(m) => write!(f, "the object differs: {m}"),
            KeepReason::Unverifiable(m) => write!(f, "the object cannot be verified: {m}"),
            KeepReason::LocalError(m) => f.write_str(m),
            KeepReason::Changed => f.write_str("the file changed while it was checked"),
            KeepReason::NotRegular => f.write_str("not a regular file (never followed)"),
            KeepReason::NoKey => f.write_str("its name is not one the uploader stores in S3"),
            KeepReason::Tombstoned => f.write_str(
                "removed by `stowaway rm` (its tombstone lives): run the same `stowaway rm` again to remove this copy",
            ),
        }
    }
}

/// What happened to one archived file past its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Pruned,
    /// `--dry-run`: verified, would be removed.
    WouldPrune,
    Kept(KeepReason),
}

/// One archived file past its retention.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The mount's prefix.
    pub mount: String,
    pub path: PathBuf,
    /// `s3://bucket/key`, empty when the file has no key.
    pub object: String,
    pub size: u64,
    /// `pruned`, `would_prune` or `kept`.
    pub action: &'static str,
    /// Why it was kept ([`KeepReason::code`]), or what proved the object.
    pub reason: String,
    /// The reason in words.
    pub detail: String,
    #[serde(skip)]
    pub kept: Option<KeepReason>,
}

impl Entry {
    fn new(m: &Mount, path: PathBuf, object: String, size: u64, action: Action) -> Entry {
        let (a, reason, detail, kept) = match action {
            Action::Pruned => ("pruned", "verified".into(), String::new(), None),
            Action::WouldPrune => ("would_prune", "verified".into(), String::new(), None),
            Action::Kept(r) => ("kept", r.code().to_string(), r.to_string(), Some(r)),
        };
        Entry {
            mount: m.prefix.as_str().to_string(),
            path,
            object,
            size,
            action: a,
            reason,
            detail,
            kept,
        }
    }
}

/// What one pass did on one mount.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MountReport {
    pub mount: String,
    pub archive: PathBuf,
    /// As humantime writes it.
    pub retention: String,
    pub pruned_files: u64,
    pub pruned_bytes: u64,
    pub would_prune_files: u64,
    pub would_prune_bytes: u64,
    /// Files younger than the retention (not checked).
    pub young: u64,
    /// Past the retention, kept because S3 does not vouch for them.
    pub kept_unverified: u64,
    /// Past the retention, kept for another reason (changed, unreadable, not a file, no key).
    pub kept_other: u64,
    /// The pass stopped here: S3 could not be asked (nothing more was pruned).
    pub s3_error: Option<String>,
    /// The archive could not be walked (or a directory in it could not be read).
    pub local_errors: Vec<String>,
    /// The pass stopped at its budget; the next one goes on from there.
    pub incomplete: bool,
}

impl MountReport {
    /// Anything an operator must look at: unverified files, S3 unreachable, local errors.
    pub fn needs_attention(&self) -> bool {
        self.kept_unverified > 0 || self.s3_error.is_some() || !self.local_errors.is_empty()
    }
}

/// How much one pass may hash before it stops (the next pass goes on after the cursor).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub files: u64,
    pub bytes: u64,
}

impl Budget {
    /// The command: the whole archive.
    pub const UNLIMITED: Budget = Budget {
        files: u64::MAX,
        bytes: u64::MAX,
    };
    /// One pass inside `serve`: a bounded share of disk reads and HEAD requests, so pruning a
    /// large archive never starves uploads or the front server.
    pub const PASS: Budget = Budget {
        files: 1000,
        bytes: 4 << 30,
    };
}

/// One pass over one mount's archive.
pub struct Pass<'a> {
    pub mount: &'a Mount,
    pub uploader: &'a UploaderSettings,
    pub dry_run: bool,
    pub now: SystemTime,
    pub budget: Budget,
    pub names: &'a TempNamer,
    /// Shutdown: the pass stops between files.
    pub stop: Option<&'a Stop>,
    /// Whether a key of this mount has a live tombstone (`stowaway rm`).
    pub tombstoned: &'a (dyn Fn(&str) -> bool + Sync),
}

/// Checks `key` against the digests: [`ObjectStore::verify`] in practice.
pub type VerifyFn<'a> = dyn FnMut(&str, &Digests) -> Result<Verified, VerifyError> + 'a;

/// Sorted entries of a directory opened beneath the archive handle.
struct Level {
    rel: PathBuf,
    dir: std::os::fd::OwnedFd,
    entries: std::vec::IntoIter<(Vec<u8>, FileType)>,
}

fn level(h: &DirHandle, rel: PathBuf) -> std::io::Result<Level> {
    let dir = h.open_dir(&rel)?;
    let mut entries = beneath::read_dir(&dir)?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Level {
        rel,
        dir,
        entries: entries.into_iter(),
    })
}

/// Whether `rel` was dealt with by an earlier pass that stopped after `cursor` (a file). The
/// directories on the way to the cursor are entered again; everything before it is skipped.
fn done_before(rel: &Path, cursor: &Path) -> bool {
    rel == cursor || (rel < cursor && !cursor.starts_with(rel))
}

/// Prunes one mount's archive. `cursor` is where the previous pass stopped (`None`: from the
/// start); it is left where this one stopped, or `None` when it got to the end. Blocking.
pub fn prune_mount(
    p: &Pass<'_>,
    cursor: &mut Option<PathBuf>,
    verify: &mut VerifyFn<'_>,
    on_entry: &mut dyn FnMut(&Entry),
) -> MountReport {
    let m = p.mount;
    let mut r = MountReport {
        mount: m.prefix.as_str().to_string(),
        retention: humantime::format_duration(m.archive_retention).to_string(),
        ..Default::default()
    };
    let Some(archive) = m.archive_root.as_deref() else {
        return r;
    };
    r.archive = archive.to_path_buf();
    if m.archive_retention.is_zero() {
        return r;
    }
    if !p.dry_run {
        // A pass that crashed between detaching and unlinking left the file under a private
        // name: back under its own, it is looked at again.
        finalize::restore_detached(archive);
    }
    let h = match DirHandle::open(archive) {
        Ok(h) => h,
        Err(e) => {
            r.local_errors.push(format!(
                "cannot open the archive {}: {e}",
                archive.display()
            ));
            return r;
        }
    };
    let mut stack = match level(&h, PathBuf::new()) {
        Ok(l) => vec![l],
        Err(e) => {
            r.local_errors.push(format!(
                "cannot read the archive {}: {e}",
                archive.display()
            ));
            return r;
        }
    };
    let mut spent = Budget { files: 0, bytes: 0 };
    while let Some(top) = stack.last_mut() {
        let Some((name, ft)) = top.entries.next() else {
            stack.pop();
            continue;
        };
        if p.stop.is_some_and(Stop::is_draining) {
            r.incomplete = true;
            return r;
        }
        let name = beneath::os(&name).to_os_string();
        let rel = top.rel.join(&name);
        if let Some(c) = cursor.as_deref()
            && done_before(&rel, c)
        {
            continue;
        }
        // File systems that do not report types in readdir: ask, without following.
        let ft = if matches!(ft, FileType::Unknown) {
            match beneath::type_at(fd(&top.dir), &name) {
                Ok(Some(t)) => t,
                _ => continue,
            }
        } else {
            ft
        };
        let path = archive.join(&rel);
        match ft {
            FileType::Directory => match level(&h, rel) {
                Ok(l) => stack.push(l),
                Err(e) => r
                    .local_errors
                    .push(format!("cannot read {}: {e}", path.display())),
            },
            FileType::RegularFile => {
                let b = name.as_encoded_bytes();
                if b.starts_with(TEMP_PREFIX.as_bytes())
                    || b.starts_with(DETACHED_PREFIX.as_bytes())
                {
                    continue;
                }
                let Ok(Some(stamp)) = beneath::stat_at(fd(&top.dir), &name) else {
                    continue;
                };
                if stamp.age(p.now) < m.archive_retention {
                    r.young += 1;
                    continue;
                }
                if spent.files >= p.budget.files || spent.bytes >= p.budget.bytes {
                    r.incomplete = true;
                    return r;
                }
                spent.files += 1;
                spent.bytes = spent.bytes.saturating_add(stamp.size);
                let Some(key) = key_for_local(archive, &path) else {
                    note(
                        &mut r,
                        Entry::new(
                            m,
                            path,
                            String::new(),
                            stamp.size,
                            Action::Kept(KeepReason::NoKey),
                        ),
                        on_entry,
                    );
                    *cursor = Some(rel);
                    continue;
                };
                let object = format!("s3://{}/{}", m.bucket, object_key(&m.key_prefix, &key));
                if (p.tombstoned)(&key) {
                    let kept = Action::Kept(KeepReason::Tombstoned);
                    note(
                        &mut r,
                        Entry::new(m, path, object, stamp.size, kept),
                        on_entry,
                    );
                    *cursor = Some(rel);
                    continue;
                }
                match check_one(p, &h, &key, &stamp, verify) {
                    Err(s3) => {
                        // S3 cannot be asked: stop here, prune nothing more; this file is the
                        // first of the next pass.
                        r.s3_error = Some(s3);
                        return r;
                    }
                    Ok(action) => {
                        note(
                            &mut r,
                            Entry::new(m, path, object, stamp.size, action),
                            on_entry,
                        );
                        *cursor = Some(rel);
                    }
                }
            }
            FileType::Symlink
            | FileType::Fifo
            | FileType::Socket
            | FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Unknown => {
                // Never followed, never removed: reported once it is past the retention (a
                // symlink's own ctime says when it was made).
                if let Ok(st) = rustix::fs::statat(
                    fd(&top.dir),
                    name.as_os_str(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                ) && FileStamp::from_stat(&st).age(p.now) >= m.archive_retention
                {
                    note(
                        &mut r,
                        Entry::new(
                            m,
                            path,
                            String::new(),
                            0,
                            Action::Kept(KeepReason::NotRegular),
                        ),
                        on_entry,
                    );
                }
            }
        }
    }
    *cursor = None;
    r
}

fn note(r: &mut MountReport, e: Entry, on_entry: &mut dyn FnMut(&Entry)) {
    match (&e.kept, e.action) {
        (Some(k), _) if k.unverified() => r.kept_unverified += 1,
        (Some(_), _) => r.kept_other += 1,
        (None, "pruned") => {
            r.pruned_files += 1;
            r.pruned_bytes += e.size;
        }
        (None, _) => {
            r.would_prune_files += 1;
            r.would_prune_bytes += e.size;
        }
    }
    on_entry(&e);
}

/// Hashes, verifies and (unless a dry run) removes one archived file. `Err` only when S3
/// could not be asked (the message).
fn check_one(
    p: &Pass<'_>,
    h: &DirHandle,
    key: &str,
    stamp: &FileStamp,
    verify: &mut VerifyFn<'_>,
) -> Result<Action, String> {
    let kept = |r| Ok(Action::Kept(r));
    let open = match h.open_file(Path::new(key)) {
        Ok(Some(f)) if f.stamp == *stamp => f,
        Ok(_) => return kept(KeepReason::Changed),
        Err(e) => return kept(KeepReason::LocalError(format!("cannot open it: {e}"))),
    };
    let u = p.uploader;
    // The layout the uploader used for this size: the ETag of a multipart object can only be
    // recomputed with its part size (a changed part_size leaves it unprovable, so kept).
    let layout = Layout::for_size(stamp.size, u.multipart_threshold, u.part_size);
    let d = match hash_reader(&mut ReadAt::new(&open.file), stamp.size, layout) {
        Ok(d) => d,
        Err(HashError::SizeChanged { .. }) => return kept(KeepReason::Changed),
        Err(HashError::Io(e)) => {
            return kept(KeepReason::LocalError(format!("cannot read it: {e}")));
        }
    };
    let m = p.mount;
    let object_key = object_key(&m.key_prefix, key);
    let verified = match verify(&object_key, &d) {
        Ok(v) => v,
        Err(VerifyError::Missing { .. }) => return kept(KeepReason::ObjectMissing),
        Err(VerifyError::Mismatch {
            mismatch: mismatch @ Mismatch::Unprovable { .. },
            ..
        }) => return kept(KeepReason::Unverifiable(mismatch.to_string())),
        Err(VerifyError::Mismatch { mismatch, .. }) => {
            return kept(KeepReason::ObjectDifferent(mismatch.to_string()));
        }
        Err(e @ VerifyError::Forbidden { .. }) => {
            return kept(KeepReason::Unverifiable(e.to_string()));
        }
        Err(VerifyError::S3(f)) => return Err(f.message),
    };
    // The HEAD took a while: the bytes that were proven must still be the file's.
    if !open.restat().is_ok_and(|s| s == *stamp) {
        return kept(KeepReason::Changed);
    }
    if p.dry_run {
        return Ok(Action::WouldPrune);
    }
    let src = Source {
        root: h,
        rel: key,
        open: &open,
        stamp,
    };
    match finalize::remove_verified(&src, &verified, p.names) {
        Ok(()) => Ok(Action::Pruned),
        Err(FinalizeError::Changed(_)) => kept(KeepReason::Changed),
        Err(e) => kept(KeepReason::LocalError(e.to_string())),
    }
}

/// Whether any mount prunes its archive.
pub fn enabled(settings: &Settings) -> bool {
    settings
        .mounts
        .iter()
        .any(|m| m.archive_root.is_some() && !m.archive_retention.is_zero())
}

/// One pass over every mount with a retention, each in a blocking thread, S3 asked through
/// `store` (the caller's runtime). Returns the reports in mount order; `cursors` (one per
/// mount) carry over between passes.
pub async fn run_pass(
    settings: Arc<Settings>,
    store: ObjectStore,
    names: Arc<TempNamer>,
    dry_run: bool,
    budget: Budget,
    cursors: &mut [Option<PathBuf>],
    on_entry: Arc<dyn Fn(&Entry) + Send + Sync>,
) -> Vec<MountReport> {
    let mut out = Vec::new();
    // The bucket's tombstones, fresh for each pass (one listing per mount): a mount whose
    // listing fails prunes nothing this pass, as when S3 cannot verify.
    let tombstones = Arc::new(crate::tombstone::Tombstones::empty());
    let unlisted = if enabled(&settings) {
        tombstones.refresh(&settings, &store).await
    } else {
        Vec::new()
    };
    for (i, m) in settings.mounts.iter().enumerate() {
        if m.archive_root.is_none() || m.archive_retention.is_zero() {
            continue;
        }
        if let Some((_, e)) = unlisted.iter().find(|(j, _)| *j == i) {
            out.push(MountReport {
                mount: m.prefix.as_str().to_string(),
                s3_error: Some(format!("cannot load the tombstones of `stowaway rm`: {e}")),
                ..Default::default()
            });
            continue;
        }
        let (settings, store, names, on_entry, tombstones) = (
            settings.clone(),
            store.clone(),
            names.clone(),
            on_entry.clone(),
            tombstones.clone(),
        );
        let mut cursor = cursors.get_mut(i).and_then(Option::take);
        let rt = tokio::runtime::Handle::current();
        let res = tokio::task::spawn_blocking(move || {
            let m = &settings.mounts[i];
            let pass = Pass {
                mount: m,
                uploader: &settings.uploader,
                dry_run,
                now: SystemTime::now(),
                budget,
                names: &names,
                stop: Some(store.stop()),
                tombstoned: &|key: &str| {
                    tombstones
                        .live_until(i, key, crate::remove::now_secs())
                        .is_some()
                },
            };
            let mut verify = |key: &str, d: &Digests| rt.block_on(store.verify(&m.bucket, key, d));
            let r = prune_mount(&pass, &mut cursor, &mut verify, &mut |e| on_entry(e));
            (r, cursor)
        })
        .await;
        match res {
            Ok((r, c)) => {
                if let Some(slot) = cursors.get_mut(i) {
                    *slot = c;
                }
                out.push(r);
            }
            Err(e) => out.push(MountReport {
                mount: m.prefix.as_str().to_string(),
                local_errors: vec![format!("internal error: {e}")],
                ..Default::default()
            }),
        }
    }
    out
}

/// Inside `serve`: a bounded pass every `uploader.rescan_interval` (the first one right
/// away), logging what was pruned and what was kept unverified, counting into `stats`.
pub fn spawn(
    settings: Arc<Settings>,
    store: ObjectStore,
    stats: Arc<Stats>,
    names: Arc<TempNamer>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !enabled(&settings) {
        return None;
    }
    Some(tokio::spawn(async move {
        let every = settings
            .uploader
            .rescan_interval
            .max(Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cursors = vec![None; settings.mounts.len()];
        let log: Arc<dyn Fn(&Entry) + Send + Sync> = Arc::new(log_entry);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = store.stop().drained() => return,
            }
            let reports = run_pass(
                settings.clone(),
                store.clone(),
                names.clone(),
                false,
                Budget::PASS,
                &mut cursors,
                log.clone(),
            )
            .await;
            for r in reports {
                stats
                    .archive_pruned_files
                    .fetch_add(r.pruned_files, Relaxed);
                stats
                    .archive_pruned_bytes
                    .fetch_add(r.pruned_bytes, Relaxed);
                stats
                    .archive_kept_unverified
                    .fetch_add(r.kept_unverified, Relaxed);
                if let Some(e) = &r.s3_error {
                    tracing::warn!(mount = %r.mount, error = %e, "archive retention: S3 cannot be asked, nothing more is pruned until the next pass");
                }
                for e in &r.local_errors {
                    tracing::warn!(mount = %r.mount, error = %e, "archive retention");
                }
                if r.pruned_files > 0 || r.kept_unverified > 0 {
                    tracing::info!(
                        mount = %r.mount,
                        pruned = r.pruned_files,
                        pruned_bytes = r.pruned_bytes,
                        kept_unverified = r.kept_unverified,
                        young = r.young,
                        incomplete = r.incomplete,
                        "archive retention pass"
                    );
                }
            }
        }
    }))
}

fn log_entry(e: &Entry) {
    match &e.kept {
        None => {
            tracing::info!(file = %e.path.display(), object = %e.object, bytes = e.size, "archived file pruned: past archive_retention and verified in S3");
        }
        Some(k) if k.unverified() => {
            tracing::warn!(file = %e.path.display(), object = %e.object, reason = %k, "archived file past archive_retention kept: S3 does not vouch for it");
        }
        Some(k) => {
            tracing::info!(file = %e.path.display(), reason = %k, "archived file past archive_retention kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    use crate::store::verify::Verified;

    struct Fx {
        dir: tempfile::TempDir,
        settings: Settings,
    }

    impl Fx {
        /// As validation resolved it (the paths reports name).
        fn archive(&self) -> PathBuf {
            self.settings.mounts[0].archive_root.clone().unwrap()
        }
    }

    fn setup(retention: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        for d in ["root", "archive", "outside"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let text = format!(
            "[s3]\nregion = \"us-east-1\"\n[uploader]\nenabled = false\n[[mount]]\nprefix = \"/s/\"\nroot = \"{0}/root\"\nbucket = \"bkt\"\nkey_prefix = \"k/\"\narchive_root = \"{0}/archive\"\narchive_retention = \"{retention}\"\n",
            dir.path().display()
        );
        let raw: crate::config::RawConfig = toml::from_str(&text).unwrap();
        let settings = crate::config::validate(&raw).unwrap();
        Fx { dir, settings }
    }

    /// Runs a pass with `verify` answering for S3, a clock `ahead` of now.
    fn pass(
        fx: &Fx,
        dry_run: bool,
        ahead: Duration,
        verify: &mut VerifyFn<'_>,
    ) -> (MountReport, Vec<Entry>) {
        let names = TempNamer::default();
        let p = Pass {
            mount: &fx.settings.mounts[0],
            uploader: &fx.settings.uploader,
            dry_run,
            now: SystemTime::now() + ahead,
            budget: Budget::UNLIMITED,
            names: &names,
            stop: None,
            tombstoned: &|_: &str| false,
        };
        let mut seen = Vec::new();
        let r = prune_mount(&p, &mut None, verify, &mut |e| seen.push(e.clone()));
        (r, seen)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// A tombstoned key's archive copy is never "pruned as verified", even when S3 vouches for
    /// it (rm's S3 step failed): it stays for `stowaway rm` to finish, not as an alarm.
    #[test]
    fn tombstoned_keys_are_left_to_rm() {
        let fx = setup("1d");
        let a = fx.archive();
        fs::create_dir_all(a.join("x")).unwrap();
        fs::write(a.join("x/dead.jpg"), b"removed by rm").unwrap();
        fs::write(a.join("x/ok.jpg"), b"verified").unwrap();
        let names = TempNamer::default();
        let p = Pass {
            mount: &fx.settings.mounts[0],
            uploader: &fx.settings.uploader,
            dry_run: false,
            now: SystemTime::now() + 2 * DAY,
            budget: Budget::UNLIMITED,
            names: &names,
            stop: None,
            tombstoned: &|k: &str| k == "x/dead.jpg",
        };
        let mut vouch = |_: &str, d: &Digests| Ok(Verified::assumed(d.clone()));
        let mut seen = Vec::new();
        let r = prune_mount(&p, &mut None, &mut vouch, &mut |e| seen.push(e.clone()));
        assert_eq!((r.pruned_files, r.kept_unverified, r.kept_other), (1, 0, 1));
        assert!(a.join("x/dead.jpg").exists() && !a.join("x/ok.jpg").exists());
        let dead = seen
            .iter()
            .find(|e| e.path.ends_with("x/dead.jpg"))
            .unwrap();
        assert_eq!(dead.kept, Some(KeepReason::Tombstoned));
        assert!(!r.needs_attention());
    }

    #[test]
    fn only_old_verified_files_go_and_s3_vouches_by_key() {
        let fx = setup("1d");
        let a = fx.archive();
        fs::create_dir_all(a.join("x/y")).unwrap();
        fs::write(a.join("x/y/ok.jpg"), b"verified").unwrap();
        fs::write(a.join("x/missing.jpg"), b"gone").unwrap();
        fs::write(a.join(".stowaway-tmp.1.a.1"), b"temp").unwrap();
        let mut keys = Vec::new();
        let mut verify = |k: &str, d: &Digests| {
            keys.push(k.to_string());
            match k {
                "k/x/y/ok.jpg" => Ok(Verified::assumed(d.clone())),
                _ => Err(VerifyError::Missing {
                    bucket: "bkt".into(),
                    key: k.into(),
                }),
            }
        };
        // Young: nothing checked, nothing removed.
        let (r, seen) = pass(&fx, false, Duration::ZERO, &mut verify);
        assert_eq!((r.young, r.pruned_files), (2, 0));
        assert!(seen.is_empty());
        let (r, seen) = pass(&fx, false, 2 * DAY, &mut verify);
        assert_eq!(keys, ["k/x/missing.jpg", "k/x/y/ok.jpg"]);
        assert_eq!(
            (r.pruned_files, r.pruned_bytes, r.kept_unverified),
            (1, 8, 1)
        );
        assert!(!a.join("x/y").exists(), "the emptied directories go");
        assert!(a.join("x/missing.jpg").exists());
        assert!(
            a.join(".stowaway-tmp.1.a.1").exists(),
            "temp files are not ours to prune"
        );
        assert!(a.is_dir());
        assert_eq!(seen[0].reason, "object_missing");
        assert!(r.needs_attention());
    }

    #[test]
    fn s3_down_prunes_nothing_and_dry_run_touches_nothing() {
        let fx = setup("1d");
        let a = fx.archive();
        fs::write(a.join("a.jpg"), b"a").unwrap();
        fs::write(a.join("b.jpg"), b"b").unwrap();
        let mut down = |k: &str, _: &Digests| {
            Err(VerifyError::S3(crate::store::retry::S3Failure {
                class: crate::store::retry::Class::Transient,
                status: None,
                code: None,
                message: format!("S3 HeadObject {k}: connection refused"),
            }))
        };
        let (r, seen) = pass(&fx, false, 2 * DAY, &mut down);
        assert!(
            r.s3_error
                .as_deref()
                .unwrap()
                .contains("connection refused")
        );
        assert!(seen.is_empty());
        assert!(a.join("a.jpg").exists() && a.join("b.jpg").exists());
        let mut ok = |_: &str, d: &Digests| Ok(Verified::assumed(d.clone()));
        let (r, seen) = pass(&fx, true, 2 * DAY, &mut ok);
        assert_eq!((r.would_prune_files, r.pruned_files), (2, 0));
        assert_eq!(seen.len(), 2);
        assert!(a.join("a.jpg").exists() && a.join("b.jpg").exists());
    }

    #[test]
    fn symlinks_are_never_followed_nor_removed() {
        let fx = setup("1d");
        let (a, outside) = (fx.archive(), fx.dir.path().join("outside"));
        fs::write(outside.join("secret.jpg"), b"secret").unwrap();
        symlink(outside.join("secret.jpg"), a.join("link.jpg")).unwrap();
        symlink(&outside, a.join("linkdir")).unwrap();
        let mut keys = Vec::new();
        let mut ok = |k: &str, d: &Digests| {
            keys.push(k.to_string());
            Ok(Verified::assumed(d.clone()))
        };
        let (r, seen) = pass(&fx, false, 2 * DAY, &mut ok);
        assert!(
            keys.is_empty(),
            "nothing behind a symlink was hashed: {keys:?}"
        );
        assert_eq!((r.pruned_files, r.kept_other), (0, 2));
        assert!(seen.iter().all(|e| e.reason == "not_regular"));
        assert!(outside.join("secret.jpg").exists());
        assert!(fs::symlink_metadata(a.join("link.jpg")).is_ok());
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_after_the_hash_is_not_followed() {
        // The race: the file is hashed and verified, then its directory is replaced by a
        // symlink to a directory holding a file of the same name and content. The removal
        // resolves beneath the archive handle without following symlinks: nothing goes.
        let fx = setup("1d");
        let (a, outside) = (fx.archive(), fx.dir.path().join("outside"));
        fs::create_dir_all(a.join("d")).unwrap();
        fs::write(a.join("d/f.jpg"), b"same").unwrap();
        fs::write(outside.join("f.jpg"), b"same").unwrap();
        let moved = fx.dir.path().join("moved");
        let mut swap = |_: &str, d: &Digests| {
            fs::rename(a.join("d"), &moved).unwrap();
            symlink(&outside, a.join("d")).unwrap();
            Ok(Verified::assumed(d.clone()))
        };
        let (r, seen) = pass(&fx, false, 2 * DAY, &mut swap);
        assert_eq!(r.pruned_files, 0, "{seen:?}");
        assert_eq!(seen[0].reason, "changed");
        assert_eq!(fs::read(outside.join("f.jpg")).unwrap(), b"same");
        assert_eq!(fs::read(moved.join("f.jpg")).unwrap(), b"same");
        assert!(
            fs::symlink_metadata(a.join("d"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_file_replaced_after_the_hash_stays() {
        let fx = setup("1d");
        let a = fx.archive();
        fs::write(a.join("f.jpg"), b"old").unwrap();
        let mut replace = |_: &str, d: &Digests| {
            fs::write(a.join(".n"), b"new").unwrap();
            fs::rename(a.join(".n"), a.join("f.jpg")).unwrap();
            Ok(Verified::assumed(d.clone()))
        };
        let (r, _) = pass(&fx, false, 2 * DAY, &mut replace);
        assert_eq!((r.pruned_files, r.kept_other), (0, 1));
        assert_eq!(fs::read(a.join("f.jpg")).unwrap(), b"new");
    }

    #[test]
    fn a_stopped_pass_goes_on_after_its_cursor() {
        let fx = setup("1d");
        let a = fx.archive();
        for n in ["a/1", "a/2", "b", "c/d/3"] {
            let p = a.join(n);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, n).unwrap();
        }
        let names = TempNamer::default();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut keep_all = |k: &str, _: &Digests| {
            Err(VerifyError::Missing {
                bucket: "bkt".into(),
                key: k.into(),
            })
        };
        // The first pass stops at its budget, the second goes on after its cursor to the end.
        for first in [true, false] {
            let p = Pass {
                mount: &fx.settings.mounts[0],
                uploader: &fx.settings.uploader,
                dry_run: true,
                now: SystemTime::now() + 2 * DAY,
                budget: Budget {
                    files: 2,
                    bytes: u64::MAX,
                },
                names: &names,
                stop: None,
                tombstoned: &|_: &str| false,
            };
            let r = prune_mount(&p, &mut cursor, &mut keep_all, &mut |e| {
                seen.push(e.path.strip_prefix(&a).unwrap().display().to_string())
            });
            assert_eq!(r.incomplete, first);
            assert_eq!(cursor.is_some(), first);
        }
        // Every file once, in order, although each one is kept every time.
        assert_eq!(seen, ["a/1", "a/2", "b", "c/d/3"]);
        assert!(cursor.is_none());
        assert!(done_before(Path::new("a"), Path::new("b")));
        assert!(!done_before(Path::new("c"), Path::new("c/d/3")));
        assert!(done_before(Path::new("c/d/3"), Path::new("c/d/3")));
    }
}
