//! The coordinator: one task that owns all uploader state and reacts to scan results, file
//! events, settle ticks, rescan timers and finished workers. Workers (bounded by a semaphore of
//! `uploader.concurrency` permits) process one file each and report back. Its state is split
//! by concern (discovery, settling, dispatch, bookkeeping); what differs between `serve`,
//! `migrate` and `migrate --dry-run` is the [`Mode`] it runs with.
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
use super::leftovers::Sweeper;
use super::mode::{AfterChange, BucketCheck, Leftovers, Lifetime, Mode, Seen, Summary, Take, Wake};
use super::pipeline::{Job, Outcome, Pipeline};
use super::scan::{FileStamp, Found, ScanMsg, WalkTarget, full_scan, stat_beneath, walk};
use super::settle::{SettleMap, tick_interval};
use super::watch::Watch;
use crate::beneath::Lookup;
use crate::config::Finalize;
use crate::ignore::Ignore;
use crate::paths::key_for_local;
use crate::store::retry::Class;

/// Files queued for a worker before walks are made to wait.
const READY_CAP: usize = 256;
/// Consecutive files failing transiently (after retries) that pause a mount until the next
/// rescan.
const BREAKER_STREAK: u32 = 3;
/// Scan results buffered between a walker thread and the coordinator.
const SCAN_CHANNEL: usize = 1024;

fn path_hash(p: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// 64 bits of a stamp: enough to notice a change, a quarter of the memory.
fn stamp_hash(s: &FileStamp) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Discovery: the upload mounts' walk targets and the scans running over them.
struct Discovery {
    /// Upload mounts, indexed like `settings.mounts` (non-upload mounts are `None`).
    targets: Vec<Option<WalkTarget>>,
    /// Whether a file watcher is running (set by `run`).
    watching: bool,
    full_running: bool,
    full_pending: bool,
    full_scans_done: u64,
    subtree_walks: usize,
    scan_tx: mpsc::Sender<ScanMsg>,
    /// Aborts the multipart uploads a crash left behind, at the start of full passes.
    sweeper: Arc<Sweeper>,
}

impl Discovery {
    fn walk_targets(&self) -> Vec<WalkTarget> {
        self.targets.iter().flatten().cloned().collect()
    }

    fn target(&self, mount: usize) -> Option<&WalkTarget> {
        self.targets.get(mount).and_then(|t| t.as_ref())
    }

    /// Whether the first full scan is through and no walk is running.
    fn quiet(&self) -> bool {
        self.full_scans_done > 0 && !self.full_running && self.subtree_walks == 0
    }

    fn mount_for(&self, path: &Path) -> Option<usize> {
        self.targets
            .iter()
            .flatten()
            .filter(|t| path.starts_with(&t.root) && path != t.root)
            .max_by_key(|t| t.root.as_os_str().len())
            .map(|t| t.mount)
    }

    /// Walks a directory an event named (a new or moved-in one: its files produce no events of
    /// their own), and once more after [`SUBTREE_REWALK_DELAY`]. The second walk is for the
    /// race of `mkdir -p a/b/c && write a/b/c/f`: notify adds the watches of subdirectories
    /// created before it watched their parent by walking them, which reports nothing, so a
    /// file written into such a directory after the first walk passed it and before its watch
    /// was in place has no event and would wait for the next full rescan.
    fn start_subtree_walk(&mut self, mount: usize, dir: PathBuf) {
        let Some(t) = self.targets.get(mount).cloned().flatten() else {
            return;
        };
        self.subtree_walks += 2;
        let tx = self.scan_tx.clone();
        tokio::spawn(async move {
            for delay in [std::time::Duration::ZERO, SUBTREE_REWALK_DELAY] {
                tokio::time::sleep(delay).await;
                let (t, dir, tx) = (t.clone(), dir.clone(), tx.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    let started = Instant::now();
                    if let Some(dirs) = walk(&t, &dir, false, &tx) {
                        let _ = tx.blocking_send(ScanMsg::Done {
                            dirs,
                            full: false,
                            started,
                            completed: true,
                        });
                    }
                })
                .await;
            }
        });
    }
}

/// How long after a new directory's first walk it is walked again (see
/// `Discovery::start_subtree_walk`): far longer than notify takes to watch it.
const SUBTREE_REWALK_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Dispatch: the ready queue, the files in flight, the workers, and the per-mount pause.
struct Dispatch {
    ready: VecDeque<Job>,
    in_flight: HashSet<PathBuf>,
    sem: Arc<Semaphore>,
    running: usize,
    done_tx: mpsc::UnboundedSender<(Job, Outcome)>,
    /// Mounts paused until the next full rescan after a bucket or credentials error.
    blocked: Vec<bool>,
    /// Files in a row per mount that failed transiently even after their retries.
    transient_streak: Vec<u32>,
}

impl Dispatch {
    fn idle(&self) -> bool {
        self.ready.is_empty() && self.running == 0
    }

    fn queue(&mut self, job: Job) {
        self.in_flight.insert(job.path.clone());
        self.ready.push_back(job);
    }
}

/// Bookkeeping: what must not be uploaded again, what was logged already, and the backlog the
/// running full scan counts.
#[derive(Default)]
struct Books {
    /// finalize = "keep": what was uploaded (path hash → stamp hash), so rescans do not upload
    /// it again; 64-bit hashes keep this small for large roots.
    kept: HashMap<u64, u64>,
    /// Last failure message logged per file, so a file failing every rescan logs once.
    logged: HashMap<u64, String>,
    /// Files whose names cannot be keys, warned about once.
    rejected: HashSet<u64>,
    /// Backlog counted by the running full scan, and what was finalized while it ran.
    scan_backlog: Vec<(u64, u64)>,
    scan_finalized: Vec<(u64, u64)>,
}

/// The coordinator state: the pipeline the workers run, the way it runs (`M`), and one part
/// per concern.
pub struct Coordinator<M: Mode> {
    pipeline: Arc<Pipeline>,
    mode: M,
    discovery: Discovery,
    /// Settling: recently changed files and when to look at them again.
    settle: SettleMap,
    dispatch: Dispatch,
    books: Books,
}

/// Channels the coordinator reads; kept outside the struct so `select!` can borrow them
/// while handlers borrow the coordinator.
pub struct Inputs {
    scan_rx: mpsc::Receiver<ScanMsg>,
    done_rx: mpsc::UnboundedReceiver<(Job, Outcome)>,
}

impl<M: Mode> Coordinator<M> {
    /// A coordinator over every mount with `upload = true`.
    pub fn new(pipeline: Arc<Pipeline>, mode: M) -> (Coordinator<M>, Inputs) {
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
            discovery: Discovery {
                targets,
                watching: false,
                full_running: false,
                full_pending: false,
                full_scans_done: 0,
                subtree_walks: 0,
                scan_tx,
                sweeper: Arc::new(Sweeper::default()),
            },
            settle: SettleMap::new(s.uploader.settle),
            dispatch: Dispatch {
                ready: VecDeque::new(),
                in_flight: HashSet::new(),
                sem: Arc::new(Semaphore::new(s.uploader.concurrency)),
                running: 0,
                done_tx,
                blocked: vec![false; n],
                transient_streak: vec![0; n],
            },
            books: Books {
                scan_backlog: vec![(0, 0); n],
                scan_finalized: vec![(0, 0); n],
                ..Books::default()
            },
            pipeline,
        };
        (c, Inputs { scan_rx, done_rx })
    }

    /// Runs until done (one-shot modes) or forever (service). `watch` must have been started
    /// before this is called, so nothing created during the first scan is missed.
    pub async fn run(mut self, mut inputs: Inputs, watch: Option<Watch>) -> Summary {
        // `_guard` keeps the watches alive for as long as this runs.
        let (_guard, mut events, rescan) = match watch.map(Watch::into_parts) {
            Some((g, e, r)) => (Some(g), Some(e), Some(r)),
            None => (None, None, None),
        };
        self.discovery.watching = events.is_some();
        self.start_full_scan();
        let mut tick = tokio::time::interval(tick_interval(self.pipeline.settings.uploader.settle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut wakeups = self.mode.wakeups();
        let pipeline = self.pipeline.clone();
        // On shutdown: no new files; the running ones finish (or are aborted by the caller).
        let mut draining = false;
        loop {
            if !draining {
                self.dispatch();
            } else if self.dispatch.running == 0 {
                break;
            }
            match self.mode.lifetime() {
                Lifetime::UntilIdle if self.discovery.quiet() && self.dispatch.idle() => break,
                Lifetime::UntilIdle | Lifetime::UntilShutdown => {}
            }
            let scan_open = self.dispatch.ready.len() < READY_CAP && !draining;
            let live = !draining;
            tokio::select! {
                _ = pipeline.store.stop().drained(), if live => {
                    draining = true;
                    for job in self.dispatch.ready.drain(..) {
                        self.dispatch.in_flight.remove(&job.path);
                    }
                    tracing::info!(running = self.dispatch.running, "uploader draining: no new files, waiting for the running uploads");
                }
                Some(msg) = inputs.scan_rx.recv(), if scan_open => self.on_scan(msg),
                Some((job, out)) = inputs.done_rx.recv() => self.on_done(job, out),
                Some(ev) = async { match events.as_mut() { Some(e) => e.recv().await, None => None } }, if events.is_some() && live => self.on_event(ev),
                _ = async { match rescan.as_ref() { Some(n) => n.notified().await, None => std::future::pending().await } }, if rescan.is_some() && live => {
                    tracing::info!("file events were lost (queue overflow or watcher error); full rescan");
                    self.request_full_scan();
                }
                _ = tick.tick(), if live => self.on_tick(),
                wake = async { match wakeups.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } }, if wakeups.is_some() && live => {
                    match wake {
                        Wake::Rescan => {}
                        Wake::S3Back => tracing::info!("S3 is reachable again: retrying the files that failed, now"),
                    }
                    self.request_full_scan();
                }
            }
        }
        self.mode.into_summary()
    }

    fn request_full_scan(&mut self) {
        if self.discovery.full_running {
            self.discovery.full_pending = true;
        } else {
            self.start_full_scan();
        }
    }

    fn start_full_scan(&mut self) {
        self.discovery.full_running = true;
        self.discovery.full_pending = false;
        // A new pass gives paused mounts another chance (someone may have fixed the bucket).
        self.dispatch.blocked.iter_mut().for_each(|b| *b = false);
        self.books.scan_backlog.iter_mut().for_each(|b| *b = (0, 0));
        self.books
            .scan_finalized
            .iter_mut()
            .for_each(|b| *b = (0, 0));
        let targets = self.discovery.walk_targets();
        let tx = self.discovery.scan_tx.clone();
        let bucket_check = self.mode.bucket_check();
        let leftovers = self.mode.leftovers();
        let sweeper = self.discovery.sweeper.clone();
        let pipeline = self.pipeline.clone();
        tokio::spawn(async move {
            // A missing bucket pauses its mount before any of its files is looked at; the
            // channel keeps this message ahead of the walk's.
            match bucket_check {
                BucketCheck::First => {
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
                BucketCheck::Never => {}
            }
            // At start-up and on every later pass: leftovers of a crash, and uploads whose
            // abort failed while S3 was unreachable, are aborted once they are old enough.
            let sweep = {
                let pipeline = pipeline.clone();
                async move {
                    let p = &pipeline;
                    sweeper.sweep(&p.settings, &p.store, &p.stats).await;
                }
            };
            match leftovers {
                Leftovers::BeforeWalk => sweep.await,
                Leftovers::AlongsideWalk => {
                    tokio::spawn(sweep);
                }
                Leftovers::Never => {}
            }
            let _ = tokio::task::spawn_blocking(move || full_scan(&targets, &tx)).await;
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
                self.discovery.subtree_walks = self.discovery.subtree_walks.saturating_sub(1)
            }
            ScanMsg::Done {
                full: true,
                started,
                completed,
                dirs,
            } => {
                self.discovery.full_running = false;
                self.discovery.full_scans_done += 1;
                let took = started.elapsed();
                let stats = &self.pipeline.stats;
                stats.rescan_done(SystemTime::now(), took);
                if self.discovery.watching {
                    // notify keeps no count; the directories of a full walk come closest
                    // (it also watches ignored directories, which the walk skips).
                    stats.watches.store(dirs, Relaxed);
                }
                if completed {
                    let books = &self.books;
                    for (i, ((f, b), (ff, fb))) in books
                        .scan_backlog
                        .iter()
                        .zip(&books.scan_finalized)
                        .enumerate()
                    {
                        stats.set_backlog(i, f.saturating_sub(*ff), b.saturating_sub(*fb));
                    }
                }
                tracing::debug!(
                    ms = took.as_millis() as u64,
                    settling = self.settle.len(),
                    "full scan finished"
                );
                self.mode.scan_complete();
                // Only the service's rescans can be pending: one-shot runs have no timer,
                // events or S3 signal to ask for one.
                if self.discovery.full_pending {
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
        stamp: FileStamp,
        renamed: bool,
        count_backlog: bool,
    ) {
        let Some((root, dir)) = self
            .discovery
            .target(mount)
            .map(|t| (t.root.clone(), t.dir.clone()))
        else {
            return;
        };
        let h = path_hash(&path);
        let Some(rel) = key_for_local(&root, &path) else {
            if self.books.rejected.insert(h) {
                tracing::warn!(file = %path.display(), "skipped: the name cannot be an object key (not UTF-8, a control character, a backslash, or too long)");
            }
            return;
        };
        let m = &self.pipeline.settings.mounts[mount];
        match m.finalize {
            Finalize::Keep if self.books.kept.get(&h) == Some(&stamp_hash(&stamp)) => return,
            Finalize::Keep | Finalize::Archive | Finalize::Delete => {}
        }
        if count_backlog {
            let b = &mut self.books.scan_backlog[mount];
            b.0 += 1;
            b.1 += stamp.size;
        }
        if self.dispatch.in_flight.contains(&path) {
            return;
        }
        if self.dispatch.blocked[mount] {
            self.mode.not_attempted(stamp.size, false);
            return;
        }
        let age = stamp.age(SystemTime::now());
        let u = &self.pipeline.settings.uploader;
        let ready = if renamed && u.rename_is_ready {
            self.settle.forget(&path);
            true
        } else {
            let seen = Seen {
                mount,
                path: &path,
                stamp,
                age,
            };
            self.mode.is_ready(&mut self.settle, &seen, u.settle)
        };
        if !ready {
            self.mode.too_recent(&path, age, u.settle);
            return;
        }
        match self.mode.take(m, &rel, &path, &stamp) {
            Take::Queue => self.dispatch.queue(Job {
                mount,
                root: dir,
                path,
                key: rel,
                stamp,
            }),
            Take::Handled => {}
        }
    }

    fn dispatch(&mut self) {
        let d = &mut self.dispatch;
        while !d.ready.is_empty() {
            let Ok(permit) = d.sem.clone().try_acquire_owned() else {
                break;
            };
            let Some(job) = d.ready.pop_front() else {
                break;
            };
            if d.blocked[job.mount] {
                d.in_flight.remove(&job.path);
                self.mode.not_attempted(job.stamp.size, true);
                continue;
            }
            d.running += 1;
            let pipeline = self.pipeline.clone();
            let tx = d.done_tx.clone();
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
        self.dispatch.running = self.dispatch.running.saturating_sub(1);
        self.dispatch.in_flight.remove(&job.path);
        let stats = self.pipeline.stats.clone();
        let h = path_hash(&job.path);
        match &out {
            Outcome::Done {
                finalized,
                size,
                uploaded,
                proof: _,
            } => {
                let size = *size;
                if *uploaded {
                    stats.uploaded_files.fetch_add(1, Relaxed);
                    stats.uploaded_bytes.fetch_add(size, Relaxed);
                } else {
                    stats.already_present.fetch_add(1, Relaxed);
                }
                stats.finalized_files.fetch_add(1, Relaxed);
                stats.backlog_done(job.mount, size);
                if self.discovery.full_running {
                    let f = &mut self.books.scan_finalized[job.mount];
                    f.0 += 1;
                    f.1 += size;
                }
                match finalized {
                    Finalized::Kept => {
                        self.books.kept.insert(h, stamp_hash(&job.stamp));
                    }
                    Finalized::Archived { .. } | Finalized::Deleted => {}
                }
                if self.books.logged.remove(&h).is_some() {
                    tracing::info!(file = %job.path.display(), "uploaded after earlier failures");
                }
                self.dispatch.transient_streak[job.mount] = 0;
            }
            Outcome::Changed => {
                stats.changed_during_upload.fetch_add(1, Relaxed);
                match self.mode.changed(&job.path) {
                    AfterChange::SettleAgain => {
                        if let Ok(Some(s)) = stat_beneath(&job.root, &job.path) {
                            self.consider(job.mount, job.path.clone(), s, false, false);
                        }
                    }
                    AfterChange::Leave => {}
                }
            }
            Outcome::Vanished => {
                self.books.logged.remove(&h);
                tracing::debug!(file = %job.path.display(), "vanished before it was migrated");
            }
            Outcome::Failed(f) => {
                stats.failures.fetch_add(1, Relaxed);
                let first = self.books.logged.get(&h) != Some(&f.message);
                if first {
                    let next = self.mode.next_attempt();
                    match f.class {
                        Class::Transient => {
                            tracing::warn!(file = %job.path.display(), error = %f.message, "upload failed after retries; {next}")
                        }
                        Class::Permanent | Class::MountWide => {
                            tracing::error!(file = %job.path.display(), error = %f.message, "upload failed; {next}")
                        }
                    }
                    self.books.logged.insert(h, f.message.clone());
                } else {
                    tracing::debug!(file = %job.path.display(), error = %f.message, "upload failed again");
                }
                match f.class {
                    Class::MountWide => self.pause_mount(job.mount, &f.message),
                    Class::Transient => {
                        // A circuit breaker: when file after file exhausts its retries, S3 is
                        // down or unreachable, and grinding through the rest of the backlog at
                        // one retry budget per file would only delay the next rescan.
                        let streak = &mut self.dispatch.transient_streak[job.mount];
                        *streak += 1;
                        if *streak >= BREAKER_STREAK {
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
        self.mode.finished(&job, &out);
    }

    /// Pauses a mount until the next full rescan after a bucket or credentials error.
    fn pause_mount(&mut self, mount: usize, message: &str) {
        if self.dispatch.blocked[mount] {
            return;
        }
        self.dispatch.blocked[mount] = true;
        self.dispatch.transient_streak[mount] = 0;
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
            if self.dispatch.in_flight.contains(&path) {
                continue;
            }
            let Some(t) = self.discovery.target(mount) else {
                continue;
            };
            match stat_beneath(&t.dir, &path) {
                Ok(Some(s)) if s == seen => {
                    // Unchanged for the whole settle time.
                    if let Some(rel) = key_for_local(&t.root, &path) {
                        let root = t.dir.clone();
                        self.dispatch.queue(Job {
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
        let Some(mount) = self.discovery.mount_for(path) else {
            return;
        };
        let Some(t) = self.discovery.target(mount) else {
            return;
        };
        if t.ignore.path_ignored(&t.root, path) || self.dispatch.in_flight.contains(path) {
            return;
        }
        // Resolved beneath the root with no symlink anywhere on the way: a directory or file
        // reached through a link is neither walked nor considered.
        let Some(rel) = t.dir.relative(path) else {
            return;
        };
        match t.dir.lookup(rel) {
            // Files in a new or moved-in directory produce no events of their own.
            Ok(Lookup::Dir) => self.discovery.start_subtree_walk(mount, path.to_path_buf()),
            Ok(Lookup::File(stamp)) => {
                self.consider(mount, path.to_path_buf(), stamp, renamed, false)
            }
            Ok(Lookup::Missing | Lookup::Refused) | Err(_) => self.settle.forget(path),
        }
    }
}
