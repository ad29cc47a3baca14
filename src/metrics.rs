//! Prometheus metrics, rendered from our own `/metrics` route.
//!
//! Decision counters and the latency histogram are registered once per mount and outcome at
//! start-up, so the request path only bumps atomics (no label allocation, no map lookup).
//! Uploader figures are copied from its [`Stats`](crate::uploader::stats::Stats) when
//! `/metrics` is scraped.

use std::sync::Arc;

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::config::Settings;
use crate::uploader::stats::Stats;

/// What a decision ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from local disk by the front server.
    Local = 0,
    /// Redirected to S3.
    Remote = 1,
    /// Refused by access control.
    Denied = 2,
    /// 400: a hostile or malformed path.
    BadRequest = 3,
    /// 404: outside every mount, a directory or a symlink.
    NotFound = 4,
    /// 503: no URL could be signed.
    Unavailable = 5,
}

const OUTCOMES: [&str; 6] = [
    "local",
    "remote",
    "denied",
    "bad_request",
    "not_found",
    "unavailable",
];

/// Decision latency buckets, seconds: the interesting range is microseconds.
const LATENCY_BUCKETS: [f64; 10] = [
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 2.5e-2,
];

struct UploaderGauges {
    uploaded_files: Counter,
    uploaded_bytes: Counter,
    already_present: Counter,
    finalized: Counter,
    failures: Counter,
    retries: Counter,
    verify_failures: Counter,
    aborted_uploads: Counter,
    rescans: Counter,
    last_rescan: Gauge,
    last_rescan_duration: Gauge,
    watch_events: Counter,
    watch_overflows: Counter,
    watches: Gauge,
    archive_pruned: Counter,
    archive_pruned_bytes: Counter,
    archive_kept_unverified: Counter,
    backlog_files: Vec<Gauge>,
    backlog_bytes: Vec<Gauge>,
}

/// All of stowaway's metrics.
pub struct Metrics {
    handle: PrometheusHandle,
    /// `[mount][outcome]`; the last row is for requests outside every mount.
    decisions: Vec<[Counter; 6]>,
    latency: Histogram,
    presigned: Counter,
    /// `[hits, misses]` of the per-window URL cache.
    url_cache: [Counter; 2],
    uploader: UploaderGauges,
    /// Swapped when a reload starts a new uploader.
    stats: arc_swap::ArcSwapOption<Stats>,
    /// `[live tombstones, expired tombstones deleted]`, from the current set.
    tombstone_gauges: (Gauge, Counter),
    /// Admin API DELETEs `[removed everywhere, some place failed]`.
    admin_deletes: [Counter; 2],
    tombstones: arc_swap::ArcSwapOption<crate::tombstone::Tombstones>,
    /// The hot-object caches, rendered from their own counters (swapped on reload).
    caches: arc_swap::ArcSwapOption<crate::cache::Caches>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

impl Metrics {
    /// Registers every metric for the configured mounts. `stats` is the uploader's, if it runs.
    pub fn new(settings: &Settings, stats: Option<Arc<Stats>>) -> Self {
        let recorder: PrometheusRecorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("stowaway_decision_duration_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let r = &recorder;
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str, kind: u8| {
            let (k, h) = (KeyName::from_const_str(name), SharedString::const_str(help));
            match kind {
                0 => r.describe_counter(k, unit, h),
                1 => r.describe_gauge(k, unit, h),
                _ => r.describe_histogram(k, unit, h),
            }
        };
        describe(
            "stowaway_decisions_total",
            None,
            "Decisions by outcome and mount.",
            0,
        );
        describe(
            "stowaway_decision_duration_seconds",
            Some(Unit::Seconds),
            "Time to decide one request.",
            2,
        );
        describe(
            "stowaway_presigned_urls_total",
            None,
            "Presigned URLs minted.",
            0,
        );
        describe(
            "stowaway_url_cache_hits_total",
            None,
            "Presigned URLs answered from the per-window URL cache.",
            0,
        );
        describe(
            "stowaway_url_cache_misses_total",
            None,
            "Presigned URLs signed and kept in the per-window URL cache.",
            0,
        );
        describe(
            "stowaway_uploads_total",
            None,
            "Files uploaded and verified.",
            0,
        );
        describe(
            "stowaway_uploaded_bytes_total",
            Some(Unit::Bytes),
            "Bytes uploaded and verified.",
            0,
        );
        describe(
            "stowaway_uploads_skipped_total",
            None,
            "Files already in S3 with the same content.",
            0,
        );
        describe(
            "stowaway_finalized_total",
            None,
            "Files archived, deleted or kept after verification.",
            0,
        );
        describe(
            "stowaway_upload_failures_total",
            None,
            "Files whose upload failed (they stay local).",
            0,
        );
        describe(
            "stowaway_upload_retries_total",
            None,
            "Retried S3 requests.",
            0,
        );
        describe(
            "stowaway_verify_failures_total",
            None,
            "Uploads whose stored object did not match.",
            0,
        );
        describe(
            "stowaway_abandoned_uploads_aborted_total",
            None,
            "Incomplete multipart uploads left by a crash, aborted.",
            0,
        );
        describe("stowaway_rescans_total", None, "Completed full rescans.", 0);
        describe(
            "stowaway_last_rescan_timestamp_seconds",
            Some(Unit::Seconds),
            "End of the last full rescan (Unix time).",
            1,
        );
        describe(
            "stowaway_last_rescan_duration_seconds",
            Some(Unit::Seconds),
            "Duration of the last full rescan.",
            1,
        );
        describe(
            "stowaway_watch_events_total",
            None,
            "File-system events received.",
            0,
        );
        describe(
            "stowaway_watch_overflows_total",
            None,
            "Watcher overflows or errors (each triggers a rescan).",
            0,
        );
        describe("stowaway_watches", None, "Directories watched.", 1);
        describe(
            "stowaway_archive_pruned_total",
            None,
            "Archived files removed by archive_retention after their object was verified.",
            0,
        );
        describe(
            "stowaway_archive_pruned_bytes_total",
            Some(Unit::Bytes),
            "Bytes of archived files removed by archive_retention.",
            0,
        );
        describe(
            "stowaway_archive_kept_unverified_total",
            None,
            "Archived files past archive_retention kept because their object could not be verified (per pass).",
            0,
        );
        describe(
            "stowaway_build_info",
            None,
            "Always 1; the labels say which build is running.",
            1,
        );
        describe(
            "stowaway_backlog_files",
            None,
            "Local files not yet in S3, per mount.",
            1,
        );
        describe(
            "stowaway_backlog_bytes",
            Some(Unit::Bytes),
            "Bytes of local files not yet in S3, per mount.",
            1,
        );

        let counter = |name: &'static str, labels: Vec<Label>| {
            r.register_counter(&Key::from_parts(name, labels), &meta())
        };
        let gauge = |name: &'static str, labels: Vec<Label>| {
            r.register_gauge(&Key::from_parts(name, labels), &meta())
        };
        let mut decisions = Vec::with_capacity(settings.mounts.len() + 1);
        let mount_names: Vec<String> = settings
            .mounts
            .iter()
            .map(|m| m.prefix.as_str().to_string())
            .chain(std::iter::once(String::new()))
            .collect();
        for name in &mount_names {
            decisions.push(OUTCOMES.map(|o| {
                counter(
                    "stowaway_decisions_total",
                    vec![Label::new("outcome", o), Label::new("mount", name.clone())],
                )
            }));
        }
        let latency = r.register_histogram(
            &Key::from_name("stowaway_decision_duration_seconds"),
            &meta(),
        );
        // Set once: a gauge that is never touched again keeps its value for every scrape.
        gauge(
            "stowaway_build_info",
            vec![
                Label::new("version", crate::VERSION),
                Label::new("commit", crate::GIT_COMMIT),
            ],
        )
        .set(1.0);
        let presigned = counter("stowaway_presigned_urls_total", vec![]);
        let url_cache = [
            counter("stowaway_url_cache_hits_total", vec![]),
            counter("stowaway_url_cache_misses_total", vec![]),
        ];
        let uploader = UploaderGauges {
            uploaded_files: counter("stowaway_uploads_total", vec![]),
            uploaded_bytes: counter("stowaway_uploaded_bytes_total", vec![]),
            already_present: counter("stowaway_uploads_skipped_total", vec![]),
            finalized: counter("stowaway_finalized_total", vec![]),
            failures: counter("stowaway_upload_failures_total", vec![]),
            retries: counter("stowaway_upload_retries_total", vec![]),
            verify_failures: counter("stowaway_verify_failures_total", vec![]),
            aborted_uploads: counter("stowaway_abandoned_uploads_aborted_total", vec![]),
            rescans: counter("stowaway_rescans_total", vec![]),
            last_rescan: gauge("stowaway_last_rescan_timestamp_seconds", vec![]),
            last_rescan_duration: gauge("stowaway_last_rescan_duration_seconds", vec![]),
            watch_events: counter("stowaway_watch_events_total", vec![]),
            watch_overflows: counter("stowaway_watch_overflows_total", vec![]),
            watches: gauge("stowaway_watches", vec![]),
            archive_pruned: counter("stowaway_archive_pruned_total", vec![]),
            archive_pruned_bytes: counter("stowaway_archive_pruned_bytes_total", vec![]),
            archive_kept_unverified: counter("stowaway_archive_kept_unverified_total", vec![]),
            backlog_files: mount_names[..settings.mounts.len()]
                .iter()
                .map(|n| {
                    gauge(
                        "stowaway_backlog_files",
                        vec![Label::new("mount", n.clone())],
                    )
                })
                .collect(),
            backlog_bytes: mount_names[..settings.mounts.len()]
                .iter()
                .map(|n| {
                    gauge(
                        "stowaway_backlog_bytes",
                        vec![Label::new("mount", n.clone())],
                    )
                })
                .collect(),
        };
        describe(
            "stowaway_tombstones",
            None,
            "Live tombstones of `stowaway rm` loaded (paths refused until they expire).",
            1,
        );
        describe(
            "stowaway_tombstones_expired_deleted_total",
            None,
            "Expired tombstones deleted from the bucket by this process.",
            0,
        );
        let tombstone_gauges = (
            gauge("stowaway_tombstones", vec![]),
            counter("stowaway_tombstones_expired_deleted_total", vec![]),
        );
        describe(
            "stowaway_admin_deletes_total",
            None,
            "Admin API DELETEs that got past authentication, by result (removed, failed: some place failed).",
            0,
        );
        let admin_deletes = ["removed", "failed"].map(|r| {
            counter(
                "stowaway_admin_deletes_total",
                vec![Label::new("result", r)],
            )
        });
        Metrics {
            admin_deletes,
            tombstone_gauges,
            tombstones: arc_swap::ArcSwapOption::empty(),
            handle,
            decisions,
            latency,
            presigned,
            url_cache,
            uploader,
            stats: arc_swap::ArcSwapOption::new(stats),
            caches: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Reports the counters of these caches (at start-up and after a reload).
    pub fn set_caches(&self, caches: Option<Arc<crate::cache::Caches>>) {
        self.caches.store(caches);
    }

    /// Reports the counters of a new uploader (after a reload), or none.
    pub fn set_uploader_stats(&self, stats: Option<Arc<Stats>>) {
        self.stats.store(stats);
    }

    /// Counts one admin DELETE: removed everywhere, or some place failed.
    pub fn admin_delete(&self, removed: bool) {
        self.admin_deletes[usize::from(!removed)].increment(1);
    }

    /// Reports the tombstones of a new set (start-up and each reload).
    pub fn set_tombstones(&self, t: Arc<crate::tombstone::Tombstones>) {
        self.tombstones.store(Some(t));
    }

    /// Counts one decision; `mount` is `None` for requests outside every mount.
    #[inline]
    pub fn decision(&self, mount: Option<usize>, outcome: Outcome, seconds: f64) {
        let row = mount
            .unwrap_or(self.decisions.len() - 1)
            .min(self.decisions.len() - 1);
        self.decisions[row][outcome as usize].increment(1);
        self.latency.record(seconds);
    }

    /// Folds recorded histogram samples into their buckets every few seconds. Without it the
    /// exporter keeps every decision-latency sample until the next scrape, so memory grows
    /// with traffic when nobody scrapes `/metrics`.
    pub fn spawn_upkeep(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let m = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                m.handle.run_upkeep();
            }
        })
    }

    /// Counts one presigned URL, and how the URL cache took part.
    #[inline]
    pub fn presigned(&self, lookup: crate::url::Lookup) {
        self.presigned.increment(1);
        match lookup {
            crate::url::Lookup::Hit => self.url_cache[0].increment(1),
            crate::url::Lookup::Miss => self.url_cache[1].increment(1),
            crate::url::Lookup::Uncached => {}
        }
    }

    /// The Prometheus text exposition of everything, uploader figures refreshed first.
    pub fn render(&self) -> String {
        if let Some(stats) = &*self.stats.load() {
            let s = stats.snapshot();
            let u = &self.uploader;
            u.uploaded_files.absolute(s.uploaded_files);
            u.uploaded_bytes.absolute(s.uploaded_bytes);
            u.already_present.absolute(s.already_present);
            u.finalized.absolute(s.finalized_files);
            u.failures.absolute(s.failures);
            u.retries.absolute(s.retries);
            u.verify_failures.absolute(s.verify_failures);
            u.aborted_uploads.absolute(s.aborted_uploads);
            u.rescans.absolute(s.rescans);
            u.last_rescan.set(s.last_rescan_unix_ms as f64 / 1000.0);
            u.last_rescan_duration
                .set(s.last_rescan_duration_ms as f64 / 1000.0);
            u.watch_events.absolute(
                stats
                    .watch_events
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            u.watch_overflows.absolute(
                stats
                    .watch_overflows
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            u.watches
                .set(stats.watches.load(std::sync::atomic::Ordering::Relaxed) as f64);
            let load =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            u.archive_pruned.absolute(load(&stats.archive_pruned_files));
            u.archive_pruned_bytes
                .absolute(load(&stats.archive_pruned_bytes));
            u.archive_kept_unverified
                .absolute(load(&stats.archive_kept_unverified));
            for (i, (files, bytes)) in s.backlog.iter().enumerate() {
                if let (Some(f), Some(b)) = (u.backlog_files.get(i), u.backlog_bytes.get(i)) {
                    f.set(*files as f64);
                    b.set(*bytes as f64);
                }
            }
        }
        if let Some(t) = &*self.tombstones.load() {
            self.tombstone_gauges.0.set(t.len() as f64);
            self.tombstone_gauges.1.absolute(t.expired_deleted());
        }
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        if let Some(c) = &*self.caches.load() {
            c.render_metrics(&mut text);
        }
        text
    }
}
