//! The hot-object cache: popular migrated objects brought back to local disk so the front
//! server sends them itself instead of redirecting every client to S3 (docs/cache.md).
//!
//! * [`policy`]: which objects are kept — admission by popularity, eviction by size (pure, no
//!   I/O; driven by the request path and by the trace benchmark alike);
//! * [`layout`]: the directory on disk (`<dir>/<key>`), resolved beneath its handle; [`purge`];
//! * [`index`]: the policy plus ETags under one lock, and the journal of the files we wrote;
//! * [`fill`]: one fill, streamed from S3, verified, renamed into place; bandwidth bound;
//! * [`scan`]: the background start-up scan that rebuilds the index;
//! * [`revalidate`]: background HEAD checks, a deleted directory recreated, `status` counters.
//!
//! The request path ([`MountCache::lookup`], [`MountCache::miss`]) takes one short lock and
//! at most one `openat2` + `fstat`; a fill is spawned on the main runtime and never awaited by
//! a request (single-flight per key: meanwhile requests still get the 302).

pub mod fill;
pub mod index;
pub mod layout;
pub mod policy;
pub mod revalidate;
pub mod scan;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::{CacheSettings, Settings};
use index::{Index, Meta};
pub use layout::purge;
use layout::{Layout, STATS};
use policy::{Admission, Limits};

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a mount's cache did since start-up.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests stowaway answered from the cache (local-first hits never reach it).
    pub hits: Count,
    /// Requests for migrated objects the cache did not answer.
    pub misses: Count,
    /// Misses that started a fill.
    pub admissions: Count,
    /// Misses the policy turned away (too large, less popular than what it would evict).
    pub rejections: Count,
    pub fills: Count,
    pub fill_bytes: Count,
    pub fill_millis: Count,
    pub fill_failures: Count,
    pub evictions: Count,
    /// Files found in the directory that stowaway did not write (removed).
    pub foreign_removed: Count,
    /// Bytes the cache answered instead of S3 (hits × object size).
    pub hit_bytes: Count,
    /// Cached files the front server was found to have read on its own (local-first hits),
    /// at most once per file per revalidation round: usually fewer than those hits (a transfer
    /// that spans rounds counts in each).
    pub front_reads: Count,
    /// Their lengths.
    pub front_read_bytes: Count,
}

/// The counters `serve` leaves in `<dir>/.stowaway-cache.stats` for `stowaway status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsFile {
    pub hits: u64,
    pub misses: u64,
    pub admissions: u64,
    pub rejections: u64,
    pub fills: u64,
    pub fill_bytes: u64,
    pub fill_failures: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub files: u64,
    /// S3 GETs the cache saved: hits stowaway answered, plus the front server's own reads
    /// (local-first hits, counted at most once per file per round: usually a lower bound).
    pub s3_gets_avoided: u64,
    /// Egress bytes saved (the same requests × size).
    pub egress_bytes_avoided: u64,
    /// Of those, the front server's own reads.
    #[serde(default)]
    pub front_reads: u64,
}

/// Reads the counters a running `serve` left in the cache directory `dir`.
pub fn read_stats(dir: &Path) -> Option<StatsFile> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // serve writes it by rename: a link or FIFO under the name was planted (never followed,
    // never waited on).
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(dir.join(STATS))
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// One mount's cache.
pub struct MountCache {
    pub settings: CacheSettings,
    mount_prefix: String,
    bucket: String,
    key_prefix: String,
    layout: Layout,
    index: Mutex<Index>,
    /// Keys being filled (single flight).
    filling: Mutex<HashSet<Box<str>>>,
    permits: Arc<Semaphore>,
    limiter: fill::Bandwidth,
    client: aws_sdk_s3::Client,
    /// Set once the start-up scan has rebuilt the index; no fill starts before.
    ready: AtomicBool,
    /// Set (under the index lock) when a reload replaces this cache: a fill still running
    /// must not put a file in place that the new set's scan has already missed.
    retired: AtomicBool,
    pub stats: Stats,
    runtime: tokio::runtime::Handle,
}

impl MountCache {
    /// The cache of mount `c.mount` (validation made sure its directory exists; one deleted
    /// since is created again).
    pub fn new(
        settings: &Settings,
        c: &CacheSettings,
        client: aws_sdk_s3::Client,
        runtime: tokio::runtime::Handle,
    ) -> Result<MountCache, layout::LayoutError> {
        let m = &settings.mounts[c.mount];
        Ok(MountCache {
            settings: c.clone(),
            mount_prefix: m.prefix.as_str().to_string(),
            bucket: m.bucket.clone(),
            key_prefix: m.key_prefix.clone(),
            layout: Layout::open(&c.dir)?,
            index: Mutex::new(Index::new(limits(c))),
            filling: Mutex::new(HashSet::new()),
            permits: Arc::new(Semaphore::new(c.fill_concurrency)),
            limiter: fill::Bandwidth::new(c.fill_bandwidth),
            client,
            ready: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            stats: Stats::default(),
            runtime,
        })
    }

    pub fn dir(&self) -> &Path {
        self.layout.path()
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` is cached (and its file is there): the request is answered from the
    /// cache. Counts the hit. A file gone from under the index is forgotten.
    pub fn lookup(&self, key: &str) -> bool {
        if !self.index().contains(key) {
            return false;
        }
        match self.layout.file_len(key) {
            Ok(Some(len)) => {
                self.index().record_hit(key, Instant::now());
                self.stats.hits.inc();
                self.stats.hit_bytes.add(len);
                true
            }
            Ok(None) => {
                self.index().remove(key);
                false
            }
            // Out of descriptors or the like: the redirect this time, the entry stays (its
            // file would otherwise be served by the front server untracked).
            Err(_) => false,
        }
    }

    /// `key` was answered with a redirect: tell the policy, and start a fill if it says so.
    pub fn miss(self: &Arc<Self>, key: &str) {
        self.stats.misses.inc();
        if !self.ready.load(Ordering::Acquire) || self.retired.load(Ordering::Acquire) {
            return;
        }
        // Keys may have hundreds of segments; the restart scan walks only MAX_DEPTH levels, and
        // a deeper file would outlive its journal line unseen (sent, never revalidated).
        if key.bytes().filter(|&b| b == b'/').count() >= scan::MAX_DEPTH {
            self.stats.rejections.inc();
            return;
        }
        let admission = self.index().record_miss(key, Instant::now());
        match admission {
            Admission::Fill => self.start_fill(key),
            Admission::Cached | Admission::TooFewHits => {}
            Admission::TooLarge | Admission::Rejected => self.stats.rejections.inc(),
        }
    }

    fn start_fill(self: &Arc<Self>, key: &str) {
        {
            let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
            // Queued fills are bounded too: past this, the next miss asks again.
            if filling.len() >= self.settings.fill_concurrency * 4 || !filling.insert(key.into()) {
                return;
            }
        }
        self.stats.admissions.inc();
        let this = self.clone();
        let key: Box<str> = key.into();
        self.runtime.spawn(async move {
            let started = Instant::now();
            let result = match this.permits.clone().acquire_owned().await {
                Ok(_permit) => fill::fill(&this, &key).await,
                Err(_) => Err(fill::FillError::Purged),
            };
            this.filling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            match result {
                Ok(bytes) => {
                    this.stats.fills.inc();
                    this.stats.fill_bytes.add(bytes);
                    this.stats
                        .fill_millis
                        .add(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                    tracing::debug!(mount = %this.mount_prefix, key = %key, bytes, "cache: filled");
                }
                Err(e) => {
                    this.stats.fill_failures.inc();
                    tracing::warn!(mount = %this.mount_prefix, key = %key, error = %e, "cache: fill failed, nothing cached");
                }
            }
        });
    }

    /// Drops `key` from index and disk (replaced, removed, failed revalidation). A fill of it
    /// running now is discarded when it finishes.
    pub fn drop_entry(&self, key: &str) {
        self.index().remove(key);
        if let Err(e) = purge(self.layout.path(), key) {
            tracing::warn!(key, error = %e, "cache: cannot delete a dropped entry");
        }
    }

    /// The start-up scan, then fills may start.
    async fn rebuild(self: &Arc<Self>) {
        if !self.layout.records_reads() {
            tracing::warn!(mount = %self.mount_prefix, dir = %self.dir().display(), "cache: the directory's file system is mounted noatime, so the reads the front server answers from the cache itself (local-first) are not seen and popular entries look idle; mount it with relatime (the default) or strictatime");
        }
        let this = self.clone();
        let scanned = tokio::task::spawn_blocking(move || scan::scan(&this.layout)).await;
        match scanned {
            Ok(Ok(s)) => {
                self.stats.foreign_removed.add(s.foreign);
                if s.foreign > 0 || s.stale_temps > 0 {
                    tracing::warn!(mount = %self.mount_prefix, foreign = s.foreign, temps = s.stale_temps, "cache: removed files stowaway did not write and temp files of dead processes");
                }
                let now = Instant::now();
                let mut evicted = Vec::new();
                {
                    let mut ix = self.index();
                    for (r, bytes) in &s.kept {
                        let meta = Meta {
                            etag: r.etag.as_str().into(),
                            // Unknown since when: checked again at the first round.
                            validated: now.checked_sub(self.settings.revalidate).unwrap_or(now),
                            hit_round: 0,
                        };
                        evicted.extend(ix.insert(&r.key, *bytes, meta, now).evict);
                    }
                }
                for k in evicted {
                    self.stats.evictions.inc();
                    let _ = self.layout.remove(&k);
                }
                tracing::info!(mount = %self.mount_prefix, files = s.kept.len(), "cache: index rebuilt");
            }
            Ok(Err(e)) => {
                tracing::error!(mount = %self.mount_prefix, dir = %self.dir().display(), error = %e, "cache: scan failed, the cache stays off for this mount")
            }
            Err(_) => {}
        }
        self.ready.store(true, Ordering::Release);
    }

    /// The counters as `status` reads them.
    pub fn stats_file(&self) -> StatsFile {
        let u = self.index().usage();
        let s = &self.stats;
        StatsFile {
            hits: s.hits.get(),
            misses: s.misses.get(),
            admissions: s.admissions.get(),
            rejections: s.rejections.get(),
            fills: s.fills.get(),
            fill_bytes: s.fill_bytes.get(),
            fill_failures: s.fill_failures.get(),
            evictions: s.evictions.get(),
            bytes: u.bytes,
            files: u.files,
            s3_gets_avoided: s.hits.get() + s.front_reads.get(),
            egress_bytes_avoided: s.hit_bytes.get() + s.front_read_bytes.get(),
            front_reads: s.front_reads.get(),
        }
    }

    /// Best effort: a report, not state. Written beneath the directory handle like
    /// everything else there (a name planted as a symlink is replaced, never followed).
    fn write_stats(&self) {
        use std::ffi::OsStr;
        use std::io::Write;
        use std::os::fd::AsFd;
        let Ok(text) = serde_json::to_vec(&self.stats_file()) else {
            return;
        };
        let Ok(root) = self.layout.root_fd() else {
            return;
        };
        let tmp = format!("{}stats.{}", layout::TEMP_PREFIX, std::process::id());
        let tmp = OsStr::new(&tmp);
        let _ = crate::beneath::unlink_at(root.as_fd(), tmp);
        let written = crate::beneath::create_new_at(root.as_fd(), tmp, 0o644)
            .and_then(|mut f| f.write_all(&text));
        if written.is_ok() {
            let _ = crate::beneath::rename_at(root.as_fd(), tmp, root.as_fd(), OsStr::new(STATS));
        }
    }

    /// Whether the start-up scan has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn limits(c: &CacheSettings) -> Limits {
    Limits {
        max_bytes: c.max_size,
        max_files: c.max_files,
        high_percent: c.high_watermark,
        low_percent: c.low_watermark,
        min_hits: c.min_hits,
        window: c.window,
        max_object_size: c.max_object_size,
    }
}

/// Every mount's cache (`None` where it has none), and their background tasks, which stop
/// when this is dropped (a reload starts a new set).
#[derive(Default)]
pub struct Caches {
    mounts: Vec<Option<Arc<MountCache>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Caches {
    /// No cache anywhere.
    pub fn none() -> Caches {
        Caches::default()
    }

    /// Opens the caches of `settings` and starts their scans and revalidation. A cache whose
    /// directory cannot be used is logged and left off (its mount redirects as before).
    pub async fn start(settings: &Settings) -> Caches {
        let mut mounts: Vec<Option<Arc<MountCache>>> =
            settings.mounts.iter().map(|_| None).collect();
        let mut tasks = Vec::new();
        if settings.caches.is_empty() {
            return Caches { mounts, tasks };
        }
        let client = crate::store::aws::transfer_client(&settings.s3).await;
        let runtime = tokio::runtime::Handle::current();
        for c in &settings.caches {
            match MountCache::new(settings, c, client.clone(), runtime.clone()) {
                Ok(mc) => {
                    let mc = Arc::new(mc);
                    let task = mc.clone();
                    tasks.push(tokio::spawn(async move {
                        task.rebuild().await;
                        revalidate::run(task).await;
                    }));
                    mounts[c.mount] = Some(mc);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cache: cannot open the cache directory, this mount redirects every migrated file");
                }
            }
        }
        Caches { mounts, tasks }
    }

    /// Before a reload opens a new set on the same directories: stops the background tasks
    /// and makes every fill still running discard its file. Once this returns, no fill of
    /// this set renames anything into place (the flag is set under each index lock, which
    /// a fill holds from its check to its rename), so the new set's scan sees every file.
    pub fn retire(&self) {
        for t in &self.tasks {
            t.abort();
        }
        for c in self.mounts.iter().flatten() {
            let _ix = c.index();
            c.retired.store(true, Ordering::Release);
        }
    }

    /// The cache of mount `i`.
    #[inline]
    pub fn mount(&self, i: usize) -> Option<&Arc<MountCache>> {
        self.mounts.get(i).and_then(Option::as_ref)
    }

    /// Prometheus text for every cache (appended to `/metrics`).
    pub fn render_metrics(&self, out: &mut String) {
        let all: Vec<&Arc<MountCache>> = self.mounts.iter().flatten().collect();
        if all.is_empty() {
            return;
        }
        type Getter = fn(&MountCache) -> f64;
        let rows: [(&str, &str, &str, Getter); 13] = [
            (
                "stowaway_cache_hits_total",
                "counter",
                "Requests stowaway answered from the hot-object cache (local-first hits are served by the front server without it).",
                |c| c.stats.hits.get() as f64,
            ),
            (
                "stowaway_cache_front_reads_total",
                "counter",
                "Cached files the front server read on its own (local-first hits), found by access time at most once per file per revalidation round.",
                |c| c.stats.front_reads.get() as f64,
            ),
            (
                "stowaway_cache_misses_total",
                "counter",
                "Requests for migrated objects the cache did not answer.",
                |c| c.stats.misses.get() as f64,
            ),
            (
                "stowaway_cache_admissions_total",
                "counter",
                "Misses that started a fill.",
                |c| c.stats.admissions.get() as f64,
            ),
            (
                "stowaway_cache_rejections_total",
                "counter",
                "Misses the policy turned away (too large, or less popular than what it would evict).",
                |c| c.stats.rejections.get() as f64,
            ),
            (
                "stowaway_cache_fills_total",
                "counter",
                "Objects filled into the cache.",
                |c| c.stats.fills.get() as f64,
            ),
            (
                "stowaway_cache_fill_bytes_total",
                "counter",
                "Bytes filled into the cache.",
                |c| c.stats.fill_bytes.get() as f64,
            ),
            (
                "stowaway_cache_fill_seconds_total",
                "counter",
                "Seconds spent filling (millisecond resolution).",
                |c| c.stats.fill_millis.get() as f64 / 1000.0,
            ),
            (
                "stowaway_cache_fill_failures_total",
                "counter",
                "Fills that failed and left nothing behind.",
                |c| c.stats.fill_failures.get() as f64,
            ),
            (
                "stowaway_cache_evictions_total",
                "counter",
                "Entries evicted to stay below the watermarks.",
                |c| c.stats.evictions.get() as f64,
            ),
            (
                "stowaway_cache_foreign_removed_total",
                "counter",
                "Files found in the cache directory that stowaway did not write (removed).",
                |c| c.stats.foreign_removed.get() as f64,
            ),
            (
                "stowaway_cache_bytes",
                "gauge",
                "Bytes on disk in the cache (filesystem blocks).",
                |c| c.index().usage().bytes as f64,
            ),
            (
                "stowaway_cache_files",
                "gauge",
                "Files in the cache.",
                |c| c.index().usage().files as f64,
            ),
        ];
        for (name, kind, help, get) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for c in &all {
                let _ = writeln!(out, "{name}{{mount=\"{}\"}} {}", c.mount_prefix, get(c));
            }
        }
    }
}

impl Drop for Caches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl MountCache {
    /// Runs one revalidation round now (tests, and `SIGHUP`-free checks).
    pub async fn revalidate_now(self: &Arc<Self>) {
        revalidate::round(self).await;
    }

    /// Purges `key` in this process (index, disk, and any fill of it running now).
    pub fn purge(&self, key: &str) {
        self.drop_entry(key);
    }
}

/// Purges `key` of mount `mount` from its cache directory, if the mount has a cache: what the
/// uploader calls before it announces a new object under a cached key (and what `stowaway rm`
/// can call). Works without a running cache (another process): the file goes, a running serve
/// forgets the entry at its next lookup.
/// Returns whether a cached file was removed (then wait [`DESCRIPTOR_GRACE`] before the object
/// becomes reachable another way).
pub fn purge_mount_key(settings: &Settings, mount: usize, key: &str) -> bool {
    let mut removed = false;
    for c in settings.caches.iter().filter(|c| c.mount == mount) {
        match purge(&c.dir, key) {
            Ok(true) => {
                removed = true;
                tracing::info!(key, dir = %c.dir.display(), "cache: entry purged")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(key, dir = %c.dir.display(), error = %e, "cache: cannot purge an entry")
            }
        }
    }
    removed
}

/// How long a front server may go on sending a cache file after it was purged, from a
/// descriptor it keeps: the generated nginx configs keep descriptors of cache files
/// (`open_file_cache`) and look at the path again after `open_file_cache_valid` (2 s). The
/// uploader waits this long after purging a replaced object's cached copy before it removes the
/// local file (which serves the new bytes meanwhile), so no client gets the old bytes once the
/// new object is announced.
pub const DESCRIPTOR_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    /// `stowaway status` reads the stats file: a FIFO or a link planted under its name must
    /// neither hang it nor be followed.
    #[test]
    fn read_stats_never_blocks_or_follows() {
        let d = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(d.path().join(STATS))
            .status()
            .unwrap();
        assert!(st.success());
        let dir = d.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_stats(&dir));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert!(matches!(got, Ok(None)), "{got:?}");
        std::fs::remove_file(d.path().join(STATS)).unwrap();
        let elsewhere = d.path().join("elsewhere.json");
        std::fs::write(
            &elsewhere,
            serde_json::to_vec(&StatsFile::default()).unwrap(),
        )
        .unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.path().join(STATS)).unwrap();
        assert_eq!(read_stats(d.path()), None);
    }
}
