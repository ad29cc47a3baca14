//! What differs between the three ways the coordinator runs, one type each: [`Service`]
//! (inside `serve`: settle, rescan, run until shutdown), [`Migrate`] (`migrate`: one pass,
//! recently changed files skipped) and [`DryRun`] (`migrate --dry-run`: one pass, nothing
//! touched). The coordinator asks its [`Mode`] at each point where they differ; what a
//! one-shot run did reaches its caller as events ([`Progress`], [`Plan`]) and a [`Summary`],
//! and the command line decides how to show them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pipeline::{Job, Outcome};
use super::scan::FileStamp;
use super::settle::{Settle, SettleMap};
use crate::config::{Finalize, Mount, UploaderSettings};
use crate::paths::object_key;

/// Receives progress of a one-shot run (the progress bar or periodic log lines).
pub trait Progress: Send + Sync {
    /// A file was queued for upload.
    fn queued(&self, bytes: u64);
    /// A queued file finished, successfully or not.
    fn finished(&self, bytes: u64, ok: bool);
    /// The scan has found everything there is.
    fn scan_complete(&self);
}

/// Receives what a dry run would do, file by file.
pub trait Plan: Send + Sync {
    /// This file would be uploaded, then finalized as `upload.then` says.
    fn would_upload(&self, upload: &PlannedUpload);
    /// This file changed `changed_ago` ago, within `settle`, and would be skipped.
    fn would_skip(&self, file: &Path, changed_ago: Duration, settle: Duration);
}

/// One upload a dry run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpload {
    pub file: PathBuf,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub then: Then,
}

/// What would become of the local file after a verified upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Moved into the archive, here (`None` if the mount has no archive root).
    Archive(Option<PathBuf>),
    Delete,
    Keep,
}

/// What a one-shot run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Verified in S3 and finalized.
    pub done: u64,
    pub done_bytes: u64,
    /// Of those, already present in S3 (not uploaded again).
    pub already_present: u64,
    /// Failed (they stay local).
    pub failed: u64,
    /// Not attempted because their mount was paused after a bucket or credentials error.
    pub not_attempted: u64,
    /// Changed within the settle time: left for a later run.
    pub skipped_recent: u64,
    /// Changed while being uploaded: left for a later run.
    pub changed: u64,
    /// Dry run: files that would be uploaded, and their bytes.
    pub would_upload: u64,
    pub would_bytes: u64,
}

impl Summary {
    /// Whether the run should exit non-zero.
    pub fn has_failures(&self) -> bool {
        self.failed > 0 || self.not_attempted > 0
    }

    fn record(&mut self, out: &Outcome) {
        match out {
            Outcome::Done { size, uploaded, .. } => {
                self.done += 1;
                self.done_bytes += size;
                if !uploaded {
                    self.already_present += 1;
                }
            }
            Outcome::Changed => self.changed += 1,
            Outcome::Vanished => {}
            Outcome::Failed(_) => self.failed += 1,
        }
    }
}

/// How long the coordinator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until shutdown: rescans and events keep coming.
    UntilShutdown,
    /// Until the first full scan and every file it found are through.
    UntilIdle,
}

/// Whether full scans first ask S3 whether each bucket exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketCheck {
    /// A missing bucket pauses its mount before any of its files is looked at.
    First,
    /// Nothing asks S3 (a dry run touches nothing).
    Never,
}

/// Whether full passes clean up abandoned multipart uploads (crash leftovers), and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Before the walk: a one-shot run has finished this when it reports.
    BeforeWalk,
    /// Beside the walk, so a slow listing never delays uploads.
    AlongsideWalk,
    /// Never (a dry run touches nothing).
    Never,
}

/// A ready file: queued for a worker, or fully handled by the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Queue,
    Handled,
}

/// A file that changed while being uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterChange {
    /// Settle it again (it is uploaded once it stops changing).
    SettleAgain,
    /// Leave it local for a later run.
    Leave,
}

/// A file whose settle decision is due.
pub struct Seen<'a> {
    pub mount: usize,
    pub path: &'a Path,
    pub stamp: FileStamp,
    /// Since its last change.
    pub age: Duration,
}

/// What the coordinator asks of the way it runs.
pub trait Mode: Send + 'static {
    /// How long the coordinator runs.
    fn lifetime(&self) -> Lifetime;

    /// Whether full scans check the buckets first.
    fn bucket_check(&self) -> BucketCheck;

    /// Whether full passes abort abandoned multipart uploads first, alongside, or never.
    fn leftovers(&self) -> Leftovers;

    /// Timers and signals that start another full pass (taken once, when the run starts).
    fn wakeups(&mut self) -> Option<Wakeups>;

    /// Whether a file is ready to upload: settled (service) or old enough (one-shot runs).
    fn is_ready(&mut self, settle: &mut SettleMap, file: &Seen<'_>, settle_time: Duration) -> bool;

    /// A ready file of `mount` (`rel` its key inside the mount).
    fn take(&mut self, mount: &Mount, rel: &str, file: &Path, stamp: &FileStamp) -> Take;

    /// A file not ready yet.
    fn too_recent(&mut self, file: &Path, age: Duration, settle_time: Duration);

    /// A file of a paused mount was found (`queued`: it had been queued already).
    fn not_attempted(&mut self, size: u64, queued: bool);

    /// A file changed while being uploaded.
    fn changed(&mut self, file: &Path) -> AfterChange;

    /// The end of "upload failed; …": when the file is tried again.
    fn next_attempt(&self) -> String;

    /// A worker finished `job` with `out` (after the coordinator's own bookkeeping).
    fn finished(&mut self, job: &Job, out: &Outcome);

    /// A full scan has found everything there is.
    fn scan_complete(&mut self);

    /// What the run did.
    fn into_summary(self) -> Summary;
}

/// Why another full pass starts.
pub enum Wake {
    /// The periodic rescan.
    Rescan,
    /// S3 is reachable again after an outage.
    S3Back,
}

/// The service's rescan timer and its "S3 is back" signal.
pub struct Wakeups {
    rescan: tokio::time::Interval,
    s3_back: Option<Arc<tokio::sync::Notify>>,
}

impl Wakeups {
    /// The next reason for a full pass.
    pub async fn next(&mut self) -> Wake {
        let s3_back = async {
            match self.s3_back.as_ref() {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.rescan.tick() => Wake::Rescan,
            _ = s3_back => Wake::S3Back,
        }
    }
}

/// Inside `serve`: watch, settle, rescan forever.
pub struct Service {
    rescan_interval: Duration,
    s3_back: Option<Arc<tokio::sync::Notify>>,
}

impl Service {
    /// A service that rescans every `uploader.rescan_interval`, and at once when `s3_back` is
    /// signalled (a full pass also lifts paused mounts).
    pub fn new(u: &UploaderSettings, s3_back: Option<Arc<tokio::sync::Notify>>) -> Self {
        Service {
            rescan_interval: u.rescan_interval,
            s3_back,
        }
    }
}

impl Mode for Service {
    fn leftovers(&self) -> Leftovers {
        Leftovers::AlongsideWalk
    }
    fn lifetime(&self) -> Lifetime {
        Lifetime::UntilShutdown
    }
    fn bucket_check(&self) -> BucketCheck {
        BucketCheck::First
    }
    fn wakeups(&mut self) -> Option<Wakeups> {
        let every = self.rescan_interval;
        let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Wakeups {
            rescan,
            s3_back: self.s3_back.take(),
        })
    }
    fn is_ready(&mut self, settle: &mut SettleMap, f: &Seen<'_>, _: Duration) -> bool {
        matches!(
            settle.observe(f.mount, f.path, f.stamp, f.age, Instant::now()),
            Settle::Ready
        )
    }
    fn take(&mut self, _: &Mount, _: &str, _: &Path, _: &FileStamp) -> Take {
        Take::Queue
    }
    fn too_recent(&mut self, _: &Path, _: Duration, _: Duration) {}
    fn not_attempted(&mut self, _: u64, _: bool) {}
    fn changed(&mut self, file: &Path) -> AfterChange {
        tracing::info!(file = %file.display(), "changed while being uploaded; settling again");
        AfterChange::SettleAgain
    }
    fn next_attempt(&self) -> String {
        format!(
            "the file stays local; next attempt at the next rescan (every {})",
            humantime::format_duration(self.rescan_interval)
        )
    }
    fn finished(&mut self, _: &Job, _: &Outcome) {}
    fn scan_complete(&mut self) {}
    fn into_summary(self) -> Summary {
        Summary::default()
    }
}

fn changed_ago(age: Duration) -> Duration {
    Duration::from_millis(age.as_millis() as u64)
}

/// `migrate`: one full scan, files changed within `settle` are skipped, then exit.
pub struct Migrate {
    progress: Option<Arc<dyn Progress>>,
    summary: Summary,
}

impl Migrate {
    /// A one-shot run reporting to `progress`.
    pub fn new(progress: Option<Arc<dyn Progress>>) -> Self {
        Migrate {
            progress,
            summary: Summary::default(),
        }
    }
}

impl Mode for Migrate {
    fn leftovers(&self) -> Leftovers {
        Leftovers::BeforeWalk
    }
    fn lifetime(&self) -> Lifetime {
        Lifetime::UntilIdle
    }
    fn bucket_check(&self) -> BucketCheck {
        BucketCheck::First
    }
    fn wakeups(&mut self) -> Option<Wakeups> {
        None
    }
    fn is_ready(&mut self, _: &mut SettleMap, f: &Seen<'_>, settle_time: Duration) -> bool {
        f.age >= settle_time
    }
    fn take(&mut self, _: &Mount, _: &str, _: &Path, stamp: &FileStamp) -> Take {
        if let Some(p) = &self.progress {
            p.queued(stamp.size);
        }
        Take::Queue
    }
    fn too_recent(&mut self, file: &Path, age: Duration, _: Duration) {
        self.summary.skipped_recent += 1;
        let ago = humantime::format_duration(changed_ago(age));
        tracing::info!(file = %file.display(), changed_ago = %ago, "skipped: changed within uploader.settle; run migrate again later (or let `serve` pick it up)");
    }
    fn not_attempted(&mut self, size: u64, queued: bool) {
        self.summary.not_attempted += 1;
        if let (true, Some(p)) = (queued, &self.progress) {
            p.finished(size, false);
        }
    }
    fn changed(&mut self, file: &Path) -> AfterChange {
        tracing::warn!(file = %file.display(), "changed while being uploaded; left local for a later run");
        AfterChange::Leave
    }
    fn next_attempt(&self) -> String {
        "the file stays local".to_string()
    }
    fn finished(&mut self, job: &Job, out: &Outcome) {
        self.summary.record(out);
        if let Some(p) = &self.progress {
            p.finished(job.stamp.size, matches!(out, Outcome::Done { .. }));
        }
    }
    fn scan_complete(&mut self) {
        if let Some(p) = &self.progress {
            p.scan_complete();
        }
    }
    fn into_summary(self) -> Summary {
        self.summary
    }
}

/// `migrate --dry-run`: one full scan, report what would be done, touch nothing.
pub struct DryRun {
    plan: Arc<dyn Plan>,
    summary: Summary,
}

impl DryRun {
    /// A dry run reporting to `plan`.
    pub fn new(plan: Arc<dyn Plan>) -> Self {
        DryRun {
            plan,
            summary: Summary::default(),
        }
    }
}

impl Mode for DryRun {
    fn leftovers(&self) -> Leftovers {
        Leftovers::Never
    }
    fn lifetime(&self) -> Lifetime {
        Lifetime::UntilIdle
    }
    fn bucket_check(&self) -> BucketCheck {
        BucketCheck::Never
    }
    fn wakeups(&mut self) -> Option<Wakeups> {
        None
    }
    fn is_ready(&mut self, _: &mut SettleMap, f: &Seen<'_>, settle_time: Duration) -> bool {
        f.age >= settle_time
    }
    fn take(&mut self, m: &Mount, rel: &str, file: &Path, stamp: &FileStamp) -> Take {
        let then = match m.finalize {
            Finalize::Archive => Then::Archive(m.archive_root.as_ref().map(|a| a.join(rel))),
            Finalize::Delete => Then::Delete,
            Finalize::Keep => Then::Keep,
        };
        self.plan.would_upload(&PlannedUpload {
            file: file.to_path_buf(),
            bucket: m.bucket.clone(),
            key: object_key(&m.key_prefix, rel),
            size: stamp.size,
            then,
        });
        self.summary.would_upload += 1;
        self.summary.would_bytes += stamp.size;
        Take::Handled
    }
    fn too_recent(&mut self, file: &Path, age: Duration, settle_time: Duration) {
        self.summary.skipped_recent += 1;
        self.plan.would_skip(file, changed_ago(age), settle_time);
    }
    // Nothing is queued and no bucket is checked, so no mount is ever paused.
    fn not_attempted(&mut self, _: u64, _: bool) {}
    fn changed(&mut self, _: &Path) -> AfterChange {
        AfterChange::Leave
    }
    fn next_attempt(&self) -> String {
        "the file stays local".to_string()
    }
    fn finished(&mut self, _: &Job, out: &Outcome) {
        self.summary.record(out);
    }
    fn scan_complete(&mut self) {}
    fn into_summary(self) -> Summary {
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CliOverrides, FsChecks, Settings, load_settings};
    use crate::store::retry::Class;
    use std::sync::Mutex;

    fn settings(dir: &Path) -> Settings {
        let p = dir.join("s.toml");
        let mount = |name: &str, extra: &str| {
            format!(
                "[[mount]]\nprefix = \"/{name}/\"\nroot = \"{}\"\nbucket = \"media\"\nkey_prefix = \"{name}/\"\nurl = \"public\"\nupload = true\n{extra}\n",
                dir.join(name).display()
            )
        };
        let toml = format!(
            "[uploader]\nenabled = true\n[s3]\nregion = \"us-east-1\"\n{}{}{}",
            mount(
                "a",
                &format!(
                    "finalize = \"archive\"\narchive_root = \"{}\"",
                    dir.join("arch").display()
                )
            ),
            mount("d", "finalize = \"delete\""),
            mount("k", "finalize = \"keep\""),
        );
        std::fs::write(&p, toml).unwrap();
        load_settings(Some(&p), &CliOverrides::default(), FsChecks::Skip)
            .unwrap()
            .0
    }

    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Plan for Recorded {
        fn would_upload(&self, u: &PlannedUpload) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {} {:?}", u.key, u.size, u.then));
        }
        fn would_skip(&self, file: &Path, ago: Duration, settle: Duration) {
            self.0
                .lock()
                .unwrap()
                .push(format!("skip {} {ago:?} {settle:?}", file.display()));
        }
    }

    impl Progress for Recorded {
        fn queued(&self, bytes: u64) {
            self.0.lock().unwrap().push(format!("queued {bytes}"));
        }
        fn finished(&self, bytes: u64, ok: bool) {
            self.0
                .lock()
                .unwrap()
                .push(format!("finished {bytes} {ok}"));
        }
        fn scan_complete(&self) {
            self.0.lock().unwrap().push("scanned".into());
        }
    }

    fn stamp(size: u64) -> FileStamp {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), vec![0u8; size as usize]).unwrap();
        let root = crate::beneath::DirHandle::open(d.path()).unwrap();
        match root.lookup(Path::new("f")).unwrap() {
            crate::beneath::Lookup::File(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_dry_run_plans_uploads_and_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let plan = Arc::new(Recorded::default());
        let mut m = DryRun::new(plan.clone());
        let st = stamp(7);
        for mount in &s.mounts {
            let file = mount.root.join("x/y.txt");
            assert_eq!(m.take(mount, "x/y.txt", &file, &st), Take::Handled);
        }
        m.too_recent(
            Path::new("/r/fresh"),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        assert!(matches!(m.bucket_check(), BucketCheck::Never));
        let seen = plan.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                format!(
                    "a/x/y.txt 7 Archive(Some({:?}))",
                    s.mounts[0].archive_root.as_ref().unwrap().join("x/y.txt")
                ),
                "d/x/y.txt 7 Delete".to_string(),
                "k/x/y.txt 7 Keep".to_string(),
                "skip /r/fresh 1s 2s".to_string(),
            ]
        );
        let sum = m.into_summary();
        assert_eq!(
            (sum.would_upload, sum.would_bytes, sum.skipped_recent),
            (3, 21, 1)
        );
    }

    #[test]
    fn migrate_counts_outcomes_and_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let progress = Arc::new(Recorded::default());
        let mut m = Migrate::new(Some(progress.clone()));
        let st = stamp(5);
        assert_eq!(m.take(&s.mounts[0], "f", Path::new("/f"), &st), Take::Queue);
        let job = Job {
            mount: 0,
            root: Arc::new(crate::beneath::DirHandle::open(dir.path()).unwrap()),
            path: PathBuf::from("/f"),
            key: "f".into(),
            stamp: st,
        };
        let done = |uploaded| Outcome::Done {
            finalized: super::super::finalize::Finalized::Kept,
            size: 5,
            uploaded,
            proof: crate::store::verify::Proof::Etag,
        };
        m.finished(&job, &done(true));
        m.finished(&job, &done(false));
        m.finished(&job, &Outcome::Changed);
        m.finished(
            &job,
            &Outcome::Failed(super::super::pipeline::Failure {
                class: Class::Permanent,
                message: "no".into(),
            }),
        );
        // Found in a paused mount: counted, but only a queued file was shown as started.
        m.not_attempted(5, false);
        m.not_attempted(5, true);
        m.scan_complete();
        assert!(matches!(m.changed(Path::new("/f")), AfterChange::Leave));
        assert_eq!(
            progress.0.lock().unwrap().clone(),
            [
                "queued 5",
                "finished 5 true",
                "finished 5 true",
                "finished 5 false",
                "finished 5 false",
                "finished 5 false",
                "scanned"
            ]
        );
        let sum = m.into_summary();
        assert_eq!(
            sum,
            Summary {
                done: 2,
                done_bytes: 10,
                already_present: 1,
                failed: 1,
                not_attempted: 2,
                changed: 1,
                ..Summary::default()
            }
        );
        assert!(sum.has_failures());
    }
}
