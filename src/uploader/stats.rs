//! Counters the uploader keeps for the status and metrics endpoints (wired up later). Plain
//! atomics behind an `Arc`: cheap to update from every worker, readable at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

/// Backlog of one mount as of its last full scan (minus what was finalized since).
#[derive(Debug, Default)]
pub struct MountStats {
    /// Files still local and not yet in S3.
    pub backlog_files: AtomicU64,
    /// Their total size in bytes.
    pub backlog_bytes: AtomicU64,
}

/// Uploader counters; all monotonic except the backlog gauges and the last-rescan values.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files uploaded (and verified) by this process.
    pub uploaded_files: AtomicU64,
    /// Bytes of those files.
    pub uploaded_bytes: AtomicU64,
    /// Files found already in S3 with the same content, so not uploaded again.
    pub already_present: AtomicU64,
    /// Files finalized (archived, deleted, or recorded as kept).
    pub finalized_files: AtomicU64,
    /// Files whose processing failed (they stay local and are retried later).
    pub failures: AtomicU64,
    /// Retries of single S3 requests after transient errors.
    pub retries: AtomicU64,
    /// Objects whose size or integrity value did not match the local file after upload.
    pub verify_failures: AtomicU64,
    /// Files that changed while being uploaded and went back to settling.
    pub changed_during_upload: AtomicU64,
    /// Completed full rescans.
    pub rescans: AtomicU64,
    /// End of the last full rescan, milliseconds since the Unix epoch (0 = none yet).
    pub last_rescan_unix_ms: AtomicU64,
    /// Duration of the last full rescan in milliseconds.
    pub last_rescan_duration_ms: AtomicU64,
    /// File-system events received from the watcher.
    pub watch_events: AtomicU64,
    /// Watcher overflows and errors (each one triggers a full rescan).
    pub watch_overflows: AtomicU64,
    /// Directories currently watched.
    pub watches: AtomicU64,
    /// Archived files removed by `archive_retention` (their object was verified first).
    pub archive_pruned_files: AtomicU64,
    /// Bytes of those files.
    pub archive_pruned_bytes: AtomicU64,
    /// Archived files past their retention kept because their object could not be verified
    /// (missing, different, unprovable, forbidden); counted once per pass that found them.
    pub archive_kept_unverified: AtomicU64,
    /// Abandoned multipart uploads (crash leftovers) aborted.
    pub aborted_uploads: AtomicU64,
    /// One entry per configured mount, in configuration order.
    pub mounts: Vec<MountStats>,
}

/// A point-in-time copy of [`Stats`], for display and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub already_present: u64,
    pub finalized_files: u64,
    pub failures: u64,
    pub retries: u64,
    pub verify_failures: u64,
    pub changed_during_upload: u64,
    pub rescans: u64,
    pub last_rescan_unix_ms: u64,
    pub last_rescan_duration_ms: u64,
    pub watch_events: u64,
    pub watch_overflows: u64,
    pub watches: u64,
    pub aborted_uploads: u64,
    /// (files, bytes) per mount.
    pub backlog: Vec<(u64, u64)>,
}

impl Stats {
    /// Counters for `mounts` mounts, all zero.
    pub fn new(mounts: usize) -> Self {
        Stats {
            mounts: (0..mounts).map(|_| MountStats::default()).collect(),
            ..Default::default()
        }
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            uploaded_files: self.uploaded_files.load(Relaxed),
            uploaded_bytes: self.uploaded_bytes.load(Relaxed),
            already_present: self.already_present.load(Relaxed),
            finalized_files: self.finalized_files.load(Relaxed),
            failures: self.failures.load(Relaxed),
            retries: self.retries.load(Relaxed),
            verify_failures: self.verify_failures.load(Relaxed),
            changed_during_upload: self.changed_during_upload.load(Relaxed),
            rescans: self.rescans.load(Relaxed),
            last_rescan_unix_ms: self.last_rescan_unix_ms.load(Relaxed),
            last_rescan_duration_ms: self.last_rescan_duration_ms.load(Relaxed),
            watch_events: self.watch_events.load(Relaxed),
            watch_overflows: self.watch_overflows.load(Relaxed),
            watches: self.watches.load(Relaxed),
            aborted_uploads: self.aborted_uploads.load(Relaxed),
            backlog: self
                .mounts
                .iter()
                .map(|m| (m.backlog_files.load(Relaxed), m.backlog_bytes.load(Relaxed)))
                .collect(),
        }
    }

    /// Records the end of a full rescan.
    pub(crate) fn rescan_done(&self, ended: SystemTime, took: Duration) {
        let ms = ended
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.rescans.fetch_add(1, Relaxed);
        self.last_rescan_unix_ms.store(ms, Relaxed);
        self.last_rescan_duration_ms
            .store(took.as_millis() as u64, Relaxed);
    }

    /// Sets a mount's backlog gauge.
    pub(crate) fn set_backlog(&self, mount: usize, files: u64, bytes: u64) {
        if let Some(m) = self.mounts.get(mount) {
            m.backlog_files.store(files, Relaxed);
            m.backlog_bytes.store(bytes, Relaxed);
        }
    }

    /// Takes one finalized file off a mount's backlog gauge.
    pub(crate) fn backlog_done(&self, mount: usize, bytes: u64) {
        if let Some(m) = self.mounts.get(mount) {
            let _ = m
                .backlog_files
                .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
            let _ = m
                .backlog_bytes
                .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(bytes)));
        }
    }
}

impl crate::store::retry::RetryObserver for Stats {
    fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
}
