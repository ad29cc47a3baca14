//! The coordinator: one task that owns all uploader state and reacts to scan results, file
//! events, settle ticks, rescan timers and finished workers. Workers (bounded by a semaphore of
//! `uploader.concurrency` permits) process one file each and report back.
//!
//! Memory stays bounded whatever the tree size: walks feed a bounded channel that is only read
//! while the ready queue is short, the settle map holds recently changed files only, and the
//! in-flight set holds at most the ready queue plus the running workers.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use tokio::sync::{Semaphore, mpsc};

use super::finalize::Finalized;
use super::pipeline::{Job, Outcome, Pipeline};
use super::scan::{Found, ScanMsg, WalkTarget, full_scan, stat_beneath, walk};
use super::settle::{Settle, SettleMap, tick_interval};
use super::watch::Watch;
use crate::beneath::Lookup;
use crate::config::Finalize;
use crate::ignore::Ignore;
use crate::paths::{key_for_local, object_key};
use crate::store::retry::Class;

/// Files queued for a worker before walks are made to wait.
const READY_CAP: usize = 256;
/// Consecutive files failing transiently (after retries) that pause a mount until the next
/// rescan.
const BREAKER_STREAK: u32 = 3;
/// Scan results buffered between a walker thread and the coordinator.
const SCAN_CHANNEL: usize = 1024;

/// How the coordinator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inside `serve`: watch, settle, rescan forever.
    Service,
    /// `migrate`: one full scan, files changed within `settle` are skipped, then exit.
    Once,
    /// `migrate --dry-run`: one full scan, print what would be done, touch nothing.
    DryRun,
}

/// Receives progress of a one-shot run (the progress bar or periodic log lines).
pub trait Progress: Send + Sync {
    /// A file was queued for upload.
    fn queued(&self, bytes: u64);
    /// A queued file finished, successfully or not.
    fn finished(&self, bytes: u64, ok: bool);
    /// The scan has found everything there is.
    fn scan_complete(&self);
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
}

fn path_hash(p: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// 64 bits of a stamp: enough to notice a change, a quarter of the memory.
fn stamp_hash(s: &super::scan::FileStamp) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The coordinator state.
pub struct Coordinator {
    pipeline: Arc<Pipeline>,
    mode: Mode,
    progress: Option<Arc<dyn Progress>>,
    /// Upload mounts, indexed like `settings.mounts` (non-upload mounts are `None`).
    targets: Vec<Option<WalkTarget>>,
    settle: SettleMap,
    in_flight: HashSet<PathBuf>,
    ready: VecDeque<Job>,
    /// finalize = "keep": what was uploaded (path hash → stamp hash), so rescans do not upload
    /// it again; 64-bit hashes keep this small for large roots.
    kept: HashMap<u64, u64>,
    /// Last failure message logged per file, so a file failing every rescan logs once.
    logged: HashMap<u64, String>,
    /// Files whose names cannot be keys, warned about once.
    rejected: HashSet<u64>,
    /// Mounts paused until the next full rescan after a bucket or credentials error.
    blocked: Vec<bool>,
    /// Whether a file watcher is running (set by `run`).
    watching: bool,
    /// Files in a row per mount that failed transiently even after their retries.
    transient_streak: Vec<u32>,
    full_running: bool,
    full_pending: bool,
    full_scans_done: u64,
    subtree_walks: usize,
    /// Backlog counted by the running full scan, and what was finalized while it ran.
    scan_backlog: Vec<(u64, u64)>,
    scan_finalized: Vec<(u64, u64)>,
    sem: Arc<Semaphore>,
    running: usize,
    summary: Summary,
    scan_tx: mpsc::Sender<ScanMsg>,
    done_tx: mpsc::UnboundedSender<(Job, Outcome)>,
    /// Signalled when S3 is reachable again after an outage (service mode).
    s3_back: Option<Arc<tokio::sync::Notify>>,
}

/// Channels the coordinator reads; kept outside the struct so `select!` can borrow them
/// while handlers borrow the coordinator.
pub struct Inputs {
    scan_rx: mpsc::Receiver<ScanMsg>,
    done_rx: mpsc::UnboundedReceiver<(Job, Outcome)>,
}

impl Coordinator {
    /// A coordinator over every mount with `upload = true`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        mode: Mode,
        progress: Option<Arc<dyn Progress>>,
    ) -> (Coordinator, Inputs) {
        let s = &pipeline.settings;
        let targets = s
            .mounts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if !m.upload {
                    return None;
                }
                match WalkTarget::open(i, &m.root, Ignore::new(&m.ignore)) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(mount = %m.prefix.as_str(), root = %m.root.display(), error = %e, "cannot open the mount root: nothing is uploaded from this mount until stowaway restarts");
                        None
                    }
                }
            })
            .collect();
        let n = s.mounts.len();
        let (scan_tx, scan_rx) = mpsc::channel(SCAN_CHANNEL);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let c = Coordinator {
            mode,
            progress,
            targets,
            settle: SettleMap::new(s.uploader.settle),
            in_flight: HashSet::new(),
            ready: VecDeque::new(),
            kept: HashMap::new(),
            logged: HashMap::new(),
            rejected: HashSet::new(),
            blocked: vec![false; n],
            watching: false,
            transient_streak: vec![0; n],
            full_running: false,
            full_pending: false,
            full_scans_done: 0,
            subtree_walks: 0,
            scan_backlog: vec![(0, 0); n],
            scan_finalized: vec![(0, 0); n],
            sem: Arc::new(Semaphore::new(s.uploader.concurrency)),
            running: 0,
            summary: Summary::default(),
            scan_tx,
            done_tx,
            s3_back: None,
            pipeline,
        };
        (c, Inputs { scan_rx, done_rx })
    }

    /// Retry at once (a full pass, which also lifts paused mounts) when `s3_back` fires.
    pub fn with_s3_recovery(mut self, s3_back: Option<Arc<tokio::sync::Notify>>) -> Self {
        self.s3_back = s3_back;
        self
    }

    /// Runs until done (one-shot modes) or forever (service). `watch` must have been started
    /// before this is called, so nothing created during the first scan is missed.
    pub async fn run(mut self, mut inputs: Inputs, watch: Option<Watch>) -> Summary {
        // `_guard` keeps the watches alive for as long as this runs.
        let (_guard, mut events, rescan) = match watch.map(Watch::into_parts) {
            Some((g, e, r)) => (Some(g), Some(e), Some(r)),
            None => (None, None, None),
        };
        self.watching = events.is_some();
        self.start_full_scan();
        let u = &self.pipeline.settings.uploader;
        let mut tick = tokio::time::interval(tick_interval(u.settle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let every = u.rescan_interval;
        let mut rescan_timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        rescan_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let service = self.mode == Mode::Service;
        let pipeline = self.pipeline.clone();
        let s3_back = self.s3_back.clone();
        // On shutdown: no new files; the running ones finish (or are aborted by the caller).
        let mut draining = false;
        loop {
            if !draining {
                self.dispatch();
            } else if self.running == 0 {
                break;
            }
            if !service && self.finished() {
                break;
            }
            let scan_open = self.ready.len() < READY_CAP && !draining;
            let live = !draining;
            tokio::select! {
                _ = pipeline.store.stop().drained(), if live => {
                    draining = true;
                    for job in self.ready.drain(..) {
                        self.in_flight.remove(&job.path);
                    }
                    tracing::info!(running = self.running, "uploader draining: no new files, waiting for the running uploads");
                }
                Some(msg) = inputs.scan_rx.recv(), if scan_open => self.on_scan(msg),
                Some((job, out)) = inputs.done_rx.recv() => self.on_done(job, out),
                Some(ev) = async { match events.as_mut() { Some(e) => e.recv().await, None => None } }, if events.is_some() && live => self.on_event(ev),
                _ = async { match rescan.as_ref() { Some(n) => n.notified().await, None => std::future::pending().await } }, if rescan.is_some() && live => {
                    tracing::info!("file events were lost (queue overflow or watcher error); full rescan");
                    self.request_full_scan();
                }
                _ = tick.tick(), if live => self.on_tick(),
                _ = rescan_timer.tick(), if service && live => self.request_full_scan(),
                _ = async { match s3_back.as_ref() { Some(n) => n.notified().await, None => std::future::pending().await } }, if s3_back.is_some() && service && live => {
                    tracing::info!("S3 is reachable again: retrying the files that failed, now");
                    self.request_full_scan();
                }
            }
        }
        self.summary
    }

    fn finished(&self) -> bool {
        self.full_scans_done > 0
            && !self.full_running
            && self.subtree_walks == 0
            && self.ready.is_empty()
            && self.running == 0
    }

    fn walk_targets(&self) -> Vec<WalkTarget> {
        self.targets.iter().flatten().cloned().collect()
    }

    fn request_full_scan(&mut self) {
        if self.full_running {
            self.full_pending = true;
        } else {
            self.start_full_scan();
        }
    }

    fn start_full_scan(&mut self) {
        self.full_running = true;
        self.full_pending = false;
        // A new pass gives paused mounts another chance (someone may have fixed the bucket).
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.scan_backlog.iter_mut().for_each(|b| *b = (0, 0));
        self.scan_finalized.iter_mut().for_each(|b| *b = (0, 0));
        let targets = self.walk_targets();
        let tx = self.scan_tx.clone();
        let check_buckets = self.mode != Mode::DryRun;
        let pipeline = self.pipeline.clone();
        tokio::spawn(async move {
            // A missing bucket pauses its mount before any of its files is looked at; the
            // channel keeps this message ahead of the walk's.
            if check_buckets {
                for t in &targets {
                    let bucket = &pipeline.settings.mounts[t.mount].bucket;
                    if let Some(f) = pipeline.store.bucket_missing(bucket).await {
                        let msg = ScanMsg::MountUnusable {
                            mount: t.mount,
                            message: f.message,
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tokio::task::spawn_blocking(move || full_scan(&targets, &tx)).await;
        });
    }

    fn start_subtree_walk(&mut self, mount: usize, dir: PathBuf) {
        let Some(t) = self.targets.get(mount).cloned().flatten() else {
            return;
        };
        self.subtree_walks += 1;
        let tx = self.scan_tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            if let Some(dirs) = walk(&t, &dir, false, &tx) {
                let _ = tx.blocking_send(ScanMsg::Done {
                    dirs,
                    full: false,
                    started,
                    completed: true,
                });
            }
        });
    }

    fn on_scan(&mut self, msg: ScanMsg) {
        match msg {
            ScanMsg::File(Found {
                mount,
                path,
                stamp,
                full,
            }) => self.consider(mount, path, stamp, false, full),
            ScanMsg::Error { mount, message } => {
                tracing::warn!(mount = %self.pipeline.settings.mounts[mount].prefix.as_str(), error = %message, "scan: cannot read an entry");
            }
            ScanMsg::MountUnusable { mount, message } => self.pause_mount(mount, &message),
            ScanMsg::Done { full: false, .. } => {
                self.subtree_walks = self.subtree_walks.saturating_sub(1)
            }
            ScanMsg::Done {
                full: true,
                started,
                completed,
                dirs,
            } => {
                self.full_running = false;
                self.full_scans_done += 1;
                let took = started.elapsed();
                self.pipeline.stats.rescan_done(SystemTime::now(), took);
                if self.watching {
                    // notify keeps no count; the directories of a full walk come closest
                    // (it also watches ignored directories, which the walk skips).
                    self.pipeline.stats.watches.store(dirs, Relaxed);
                }
                if completed {
                    for (i, ((f, b), (ff, fb))) in self
                        .scan_backlog
                        .iter()
                        .zip(&self.scan_finalized)
                        .enumerate()
                    {
                        self.pipeline.stats.set_backlog(
                            i,
                            f.saturating_sub(*ff),
                            b.saturating_sub(*fb),
                        );
                    }
                }
                tracing::debug!(
                    ms = took.as_millis() as u64,
                    settling = self.settle.len(),
                    "full scan finished"
                );
                if let Some(p) = &self.progress {
                    p.scan_complete();
                }
                if self.full_pending && self.mode == Mode::Service {
                    self.start_full_scan();
                }
            }
        }
    }

    /// A regular file seen by a walk or an event: settle it, queue it, or skip it.
    fn consider(
        &mut self,
        mount: usize,
        path: PathBuf,
        stamp: super::scan::FileStamp,
        renamed: bool,
        count_backlog: bool,
    ) {
        let Some((root, dir)) = self
            .targets
            .get(mount)
            .and_then(|t| t.as_ref())
            .map(|t| (t.root.clone(), t.dir.clone()))
        else {
            return;
        };
        let h = path_hash(&path);
        let Some(rel) = key_for_local(&root, &path) else {
            if self.rejected.insert(h) {
                tracing::warn!(file = %path.display(), "skipped: the name cannot be an object key (not UTF-8, a control character, a backslash, or too long)");
            }
            return;
        };
        let m = &self.pipeline.settings.mounts[mount];
        if m.finalize == Finalize::Keep && self.kept.get(&h) == Some(&stamp_hash(&stamp)) {
            return;
        }
        if count_backlog {
            let b = &mut self.scan_backlog[mount];
            b.0 += 1;
            b.1 += stamp.size;
        }
        if self.in_flight.contains(&path) {
            return;
        }
        if self.blocked[mount] {
            if self.mode == Mode::Once {
                self.summary.not_attempted += 1;
            }
            return;
        }
        let age = stamp.age(SystemTime::now());
        let settle = self.pipeline.settings.uploader.settle;
        let ready = if renamed && self.pipeline.settings.uploader.rename_is_ready {
            self.settle.forget(&path);
            true
        } else if self.mode == Mode::Service {
            self.settle
                .observe(mount, &path, stamp, age, Instant::now())
                == Settle::Ready
        } else {
            age >= settle
        };
        match (ready, self.mode) {
            (true, Mode::DryRun) => {
                let key = object_key(&m.key_prefix, &rel);
                let then = match (m.finalize, &m.archive_root) {
                    (Finalize::Archive, Some(a)) => {
                        format!("then move it to {}", a.join(&rel).display())
                    }
                    (Finalize::Archive, None) => "then archive it".to_string(),
                    (Finalize::Delete, _) => "then delete it".to_string(),
                    (Finalize::Keep, _) => "and keep it".to_string(),
                };
                println!(
                    "would upload {} -> s3://{}/{key} ({} bytes) {then}",
                    path.display(),
                    m.bucket,
                    stamp.size
                );
                self.summary.would_upload += 1;
                self.summary.would_bytes += stamp.size;
            }
            (true, _) => {
                if let Some(p) = &self.progress {
                    p.queued(stamp.size);
                }
                self.in_flight.insert(path.clone());
                self.ready.push_back(Job {
                    mount,
                    root: dir,
                    path,
                    key: rel,
                    stamp,
                });
            }
            (false, Mode::Service) => {}
            (false, mode) => {
                self.summary.skipped_recent += 1;
                let ago = humantime::format_duration(std::time::Duration::from_millis(
                    age.as_millis() as u64,
                ));
                if mode == Mode::DryRun {
                    println!(
                        "would skip {}: changed {ago} ago, less than uploader.settle ({})",
                        path.display(),
                        humantime::format_duration(settle)
                    );
                } else {
                    tracing::info!(file = %path.display(), changed_ago = %ago, "skipped: changed within uploader.settle; run migrate again later (or let `serve` pick it up)");
                }
            }
        }
    }

    fn dispatch(&mut self) {
        while !self.ready.is_empty() {
            let Ok(permit) = self.sem.clone().try_acquire_owned() else {
                break;
            };
            let Some(job) = self.ready.pop_front() else {
                break;
            };
            if self.blocked[job.mount] {
                self.in_flight.remove(&job.path);
                if self.mode == Mode::Once {
                    self.summary.not_attempted += 1;
                    if let Some(p) = &self.progress {
                        p.finished(job.stamp.size, false);
                    }
                }
                continue;
            }
            self.running += 1;
            let pipeline = self.pipeline.clone();
            let tx = self.done_tx.clone();
            tokio::spawn(async move {
                let j = job.clone();
                // A panicking worker must still report back, or a one-shot run would wait forever.
                let out = match tokio::spawn(async move { pipeline.process(&j).await }).await {
                    Ok(o) => o,
                    Err(e) => Outcome::Failed(super::pipeline::Failure {
                        class: Class::Permanent,
                        message: format!("internal error: {e}"),
                    }),
                };
                drop(permit);
                let _ = tx.send((job, out));
            });
        }
    }

    fn on_done(&mut self, job: Job, out: Outcome) {
        self.running = self.running.saturating_sub(1);
        self.in_flight.remove(&job.path);
        let stats = &self.pipeline.stats;
        let h = path_hash(&job.path);
        let ok = matches!(out, Outcome::Done { .. });
        match out {
            Outcome::Done {
                finalized,
                size,
                uploaded,
                proof: _,
            } => {
                if uploaded {
                    stats.uploaded_files.fetch_add(1, Relaxed);
                    stats.uploaded_bytes.fetch_add(size, Relaxed);
                } else {
                    stats.already_present.fetch_add(1, Relaxed);
                    self.summary.already_present += 1;
                }
                stats.finalized_files.fetch_add(1, Relaxed);
                stats.backlog_done(job.mount, size);
                if self.full_running {
                    let f = &mut self.scan_finalized[job.mount];
                    f.0 += 1;
                    f.1 += size;
                }
                if finalized == Finalized::Kept {
                    self.kept.insert(h, stamp_hash(&job.stamp));
                }
                if self.logged.remove(&h).is_some() {
                    tracing::info!(file = %job.path.display(), "uploaded after earlier failures");
                }
                self.summary.done += 1;
                self.transient_streak[job.mount] = 0;
                self.summary.done_bytes += size;
            }
            Outcome::Changed => {
                stats.changed_during_upload.fetch_add(1, Relaxed);
                if self.mode == Mode::Service {
                    tracing::info!(file = %job.path.display(), "changed while being uploaded; settling again");
                    if let Ok(Some(s)) = stat_beneath(&job.root, &job.path) {
                        self.consider(job.mount, job.path.clone(), s, false, false);
                    }
                } else {
                    self.summary.changed += 1;
                    tracing::warn!(file = %job.path.display(), "changed while being uploaded; left local for a later run");
                }
            }
            Outcome::Vanished => {
                self.logged.remove(&h);
                tracing::debug!(file = %job.path.display(), "vanished before it was migrated");
            }
            Outcome::Failed(f) => {
                stats.failures.fetch_add(1, Relaxed);
                self.summary.failed += 1;
                let first = self.logged.get(&h) != Some(&f.message);
                if first {
                    let next = match self.mode {
                        Mode::Service => format!(
                            "the file stays local; next attempt at the next rescan (every {})",
                            humantime::format_duration(
                                self.pipeline.settings.uploader.rescan_interval
                            )
                        ),
                        _ => "the file stays local".to_string(),
                    };
                    match f.class {
                        Class::Transient => {
                            tracing::warn!(file = %job.path.display(), error = %f.message, "upload failed after retries; {next}")
                        }
                        _ => {
                            tracing::error!(file = %job.path.display(), error = %f.message, "upload failed; {next}")
                        }
                    }
                    self.logged.insert(h, f.message.clone());
                } else {
                    tracing::debug!(file = %job.path.display(), error = %f.message, "upload failed again");
                }
                match f.class {
                    Class::MountWide => self.pause_mount(job.mount, &f.message),
                    Class::Transient => {
                        // A circuit breaker: when file after file exhausts its retries, S3 is
                        // down or unreachable, and grinding through the rest of the backlog at
                        // one retry budget per file would only delay the next rescan.
                        self.transient_streak[job.mount] += 1;
                        if self.transient_streak[job.mount] >= BREAKER_STREAK {
                            let why = format!(
                                "{BREAKER_STREAK} files in a row failed after all retries; last error: {}",
                                f.message
                            );
                            self.pause_mount(job.mount, &why);
                        }
                    }
                    Class::Permanent => {}
                }
            }
        }
        if let Some(p) = &self.progress {
            p.finished(job.stamp.size, ok);
        }
    }

    /// Pauses a mount until the next full rescan after a bucket or credentials error.
    fn pause_mount(&mut self, mount: usize, message: &str) {
        if self.blocked[mount] {
            return;
        }
        self.blocked[mount] = true;
        self.transient_streak[mount] = 0;
        let m = &self.pipeline.settings.mounts[mount];
        tracing::error!(
            mount = %m.prefix.as_str(),
            bucket = %m.bucket,
            error = %message,
            "uploads for this mount are paused until the next rescan; its files stay local and are still served"
        );
    }

    fn on_tick(&mut self) {
        if self.settle.is_empty() {
            return;
        }
        for (mount, path, seen) in self.settle.take_due(Instant::now()) {
            if self.in_flight.contains(&path) {
                continue;
            }
            let Some(t) = self.targets.get(mount).and_then(|t| t.as_ref()) else {
                continue;
            };
            match stat_beneath(&t.dir, &path) {
                Ok(Some(s)) if s == seen => {
                    // Unchanged for the whole settle time.
                    if let Some(rel) = key_for_local(&t.root, &path) {
                        let root = t.dir.clone();
                        self.in_flight.insert(path.clone());
                        self.ready.push_back(Job {
                            mount,
                            root,
                            path,
                            key: rel,
                            stamp: s,
                        });
                    }
                }
                Ok(Some(s)) => self.consider(mount, path, s, false, false),
                _ => {}
            }
        }
    }

    fn mount_for(&self, path: &Path) -> Option<usize> {
        self.targets
            .iter()
            .flatten()
            .filter(|t| path.starts_with(&t.root) && path != t.root)
            .max_by_key(|t| t.root.as_os_str().len())
            .map(|t| t.mount)
    }

    fn on_event(&mut self, ev: notify::Event) {
        match ev.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                ev.paths.iter().for_each(|p| self.look_at(p, false))
            }
            // Our own reads (and anybody else's) are of no interest.
            EventKind::Access(_) => {}
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                ev.paths.iter().for_each(|p| self.settle.forget(p))
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                ev.paths.iter().for_each(|p| self.look_at(p, true))
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = ev.paths.as_slice() {
                    self.settle.forget(from);
                    self.look_at(to, true);
                }
            }
            _ => ev.paths.iter().for_each(|p| self.look_at(p, false)),
        }
    }

    /// A path an event named: walk it if it is a new directory, consider it if it is a file.
    fn look_at(&mut self, path: &Path, renamed: bool) {
        let Some(mount) = self.mount_for(path) else {
            return;
        };
        let Some(t) = self.targets[mount].as_ref() else {
            return;
        };
        if t.ignore.path_ignored(&t.root, path) || self.in_flight.contains(path) {
            return;
        }
        // Resolved beneath the root with no symlink anywhere on the way: a directory or file
        // reached through a link is neither walked nor considered.
        let Some(rel) = t.dir.relative(path) else {
            return;
        };
        match t.dir.lookup(rel) {
            // Files in a new or moved-in directory produce no events of their own.
            Ok(Lookup::Dir) => self.start_subtree_walk(mount, path.to_path_buf()),
            Ok(Lookup::File(stamp)) => {
                self.consider(mount, path.to_path_buf(), stamp, renamed, false)
            }
            Ok(Lookup::Missing | Lookup::Refused) | Err(_) => self.settle.forget(path),
        }
    }
}
