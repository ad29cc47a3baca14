//! The uploader: finds settled files in the upload mounts, puts them into S3, verifies them,
//! and only then archives, deletes or keeps the local copy. Its one promise: at every instant
//! each file is local, or verified in S3, or both — whatever crashes, outages, full disks or
//! writers still writing.
//!
//! Runs as a task inside `serve` ([`spawn`]) and as the one-shot `migrate` command
//! ([`migrate`]; its presentation is the command line's, `cli::migrate`). The S3 side
//! (clients, retries, hashing, upload, verification) is the [`store`](crate::store). One
//! concern per module:
//! * [`scan`]: walking roots (full rescans, new directories), file stamps;
//! * [`watch`]: the `notify` watcher, never blocking its thread;
//! * [`settle`]: "unchanged for `uploader.settle`";
//! * [`leftovers`]: aborting multipart uploads a crash left incomplete in the bucket;
//! * [`finalize`]: archive (rename, or copy + fsync + rename across file systems), delete, keep;
//! * [`pipeline`]: one file through hashing, upload and verification (the
//!   [`ObjectStore`](crate::store::ObjectStore)), then finalize;
//! * [`service`]: the coordinator that owns the state and bounds the concurrency;
//! * [`mode`]: what differs between `serve`, `migrate` and `migrate --dry-run`, and the
//!   events and summary a one-shot run reports;
//! * [`migrate`]: the one-shot runs;
//! * [`retention`]: `archive_retention`, pruning archived files whose object is verified;
//! * [`stats`]: counters for status and metrics.

pub mod finalize;
pub mod leftovers;
pub mod migrate;
pub mod mode;
pub mod pipeline;
pub mod retention;
pub mod scan;
pub mod service;
pub mod settle;
pub mod stats;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use stats::{Stats, StatsSnapshot};

use crate::config::Settings;
use crate::store::ObjectStore;
use crate::store::retry::Retrier;
use crate::store::stop::Stop;
use crate::tombstone::Tombstones;
use mode::Service;
use pipeline::Pipeline;
use service::Coordinator;

/// Why the uploader cannot run at all.
#[derive(Debug, thiserror::Error)]
pub enum UploaderError {
    /// Every mount has `upload = false`.
    #[error("no mount has upload = true, so there is nothing to migrate")]
    NoUploadMounts,
    /// The async runtime could not be created.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

async fn pipeline(
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    stop: Arc<Stop>,
    tombstones: Arc<Tombstones>,
) -> Arc<Pipeline> {
    let retrier = Retrier::new(&settings.uploader, stats.clone(), stop);
    let store = ObjectStore::connect(&settings.s3, retrier).await;
    Arc::new(Pipeline {
        settings,
        store,
        stats,
        names: Arc::new(finalize::TempNamer::default()),
        tombstones,
    })
}

fn upload_roots(settings: &Settings) -> Vec<PathBuf> {
    settings
        .mounts
        .iter()
        .filter(|m| m.upload)
        .map(|m| m.root.clone())
        .collect()
}

/// Removes temp files of interrupted archive copies in every archive directory, and puts
/// files an interrupted run had detached back under their names. Blocking.
fn clean_archives(settings: &Settings) {
    for m in settings.mounts.iter().filter(|m| m.upload) {
        let n = finalize::restore_detached(&m.root);
        if n > 0 {
            tracing::info!(root = %m.root.display(), restored = n, "put back files an interrupted run had taken off their names");
        }
        if let Some(a) = &m.archive_root {
            let n = finalize::clean_temp_files(a);
            if n > 0 {
                tracing::info!(archive = %a.display(), removed = n, "cleaned up after an interrupted archive copy");
            }
        }
    }
}

/// A running background uploader.
pub struct Uploader {
    /// Live counters.
    pub stats: Arc<Stats>,
    /// The coordinator task (runs until [`Uploader::shutdown`]).
    pub task: tokio::task::JoinHandle<()>,
    /// Shutdown flags shared with the workers.
    pub stop: Arc<Stop>,
}

impl Uploader {
    /// Stops taking new files and waits up to `timeout` for the running ones; then aborts
    /// them (multipart uploads are aborted between parts) and waits a little longer. Files
    /// not finished stay local and are picked up by the next start.
    pub async fn shutdown(mut self, timeout: Duration) {
        self.stop.drain();
        if tokio::time::timeout(timeout, &mut self.task).await.is_ok() {
            tracing::info!("uploader stopped: in-flight uploads finished");
            return;
        }
        tracing::warn!(timeout = %humantime::format_duration(timeout), "uploads still running at the shutdown deadline: aborting them");
        self.stop.abort();
        if tokio::time::timeout(ABORT_GRACE, &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("uploads did not stop in time; their files stay local");
            self.task.abort();
        } else {
            tracing::info!("uploader stopped: in-flight uploads aborted, their files stay local");
        }
    }
}

/// After an abort: time for workers to notice and abort their multipart uploads.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// Starts the uploader inside `serve`: watches first, then the initial full scan, then
/// events, settle checks and periodic rescans for as long as the process runs.
pub async fn spawn(settings: Arc<Settings>) -> Uploader {
    spawn_with(settings, None, Arc::new(Tombstones::empty())).await
}

/// [`spawn`], plus a full pass each time `s3_back` is signalled (S3 reachable again), so
/// files that failed during an outage are retried at once rather than at the next rescan;
/// paths in `tombstones` (kept current by `serve`) are not uploaded.
pub async fn spawn_with(
    settings: Arc<Settings>,
    s3_back: Option<Arc<tokio::sync::Notify>>,
    tombstones: Arc<Tombstones>,
) -> Uploader {
    let stats = Arc::new(Stats::new(settings.mounts.len()));
    let stop = Arc::new(Stop::default());
    let pipeline = pipeline(settings.clone(), stats.clone(), stop.clone(), tombstones).await;
    let stats_task = stats.clone();
    let task = tokio::spawn(async move {
        let stats = stats_task;
        let s = settings.clone();
        tokio::task::spawn_blocking(move || clean_archives(&s));
        let roots = upload_roots(&settings);
        let st = stats.clone();
        let watch = match tokio::task::spawn_blocking(move || watch::start(&roots, st)).await {
            Ok(Ok(w)) => Some(w),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "running without file events; new files are found by the periodic rescans");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watcher set-up failed; relying on rescans");
                None
            }
        };
        let u = &settings.uploader;
        tracing::info!(
            mounts = upload_roots(&settings).len(),
            settle = %humantime::format_duration(u.settle),
            rescan_interval = %humantime::format_duration(u.rescan_interval),
            concurrency = u.concurrency,
            "uploader started"
        );
        let prune = retention::spawn(
            settings.clone(),
            pipeline.store.clone(),
            stats.clone(),
            pipeline.names.clone(),
        );
        let (c, inputs) = Coordinator::new(pipeline, Service::new(u, s3_back));
        c.run(inputs, watch).await;
        if let Some(p) = prune {
            p.abort();
        }
    });
    Uploader { stats, task, stop }
}
