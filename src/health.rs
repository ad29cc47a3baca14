//! Readiness: what `/readyz` and `stowaway healthcheck --ready` report besides the per-call
//! checks in [`crate::http::AppState::readiness`]. S3 reachability is probed in the background
//! and cached here, so no request ever waits on S3; the uploader counts as stuck when its full
//! rescans stop completing. The probe's verdict also decides whether a migrated file is
//! served from its archived copy ([`Health::s3_unreachable`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::uploader::stats::Stats;

const NOT_PROBED: &str = "S3 not probed yet";

/// Cached results of the background checks.
#[derive(Debug)]
pub struct Health {
    /// `None`: S3 is not probed; `Some(Err)`: the last probe failed (or none ran yet).
    s3: Mutex<Option<Result<(), String>>>,
    /// Set only by a probe that failed (not by "not probed yet"): read on the request path,
    /// where a mutex would be wasted.
    s3_down: AtomicBool,
    /// The running uploader's counters, its rescan interval, and when it started (a reload
    /// starts a new one, whose first rescan is timed from then, not from process start).
    uploader: Mutex<Option<(Arc<Stats>, Duration, Instant)>>,
    /// Signalled when a probe succeeds after a failed one, so the uploader retries the files
    /// that failed during the outage at once instead of at its next rescan.
    s3_back: Arc<tokio::sync::Notify>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            s3: Mutex::new(None),
            s3_down: AtomicBool::new(false),
            uploader: Mutex::new(None),
            s3_back: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl Health {
    /// Marks S3 as probed but not yet known to be reachable.
    pub fn expect_s3_probe(&self) {
        *self.lock() = Some(Err(NOT_PROBED.into()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Result<(), String>>> {
        self.s3.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the outcome of an S3 probe, logging transitions.
    pub fn set_s3(&self, r: Result<(), String>) {
        let mut g = self.lock();
        match (&*g, &r) {
            (Some(Ok(())), Err(e)) => tracing::warn!(error = %e, "S3 is unreachable: not ready"),
            (Some(Err(e)), Ok(())) => {
                tracing::info!("S3 is reachable again: ready");
                // Not after the first probe: nothing failed for want of S3 before it.
                if e != NOT_PROBED {
                    self.s3_back.notify_one();
                }
            }
            _ => {}
        }
        self.s3_down.store(r.is_err(), Ordering::Relaxed);
        *g = Some(r);
    }

    /// Signalled (one stored permit) each time S3 becomes reachable after a failed probe.
    pub fn s3_recovered(&self) -> Arc<tokio::sync::Notify> {
        self.s3_back.clone()
    }

    /// Whether the last S3 probe failed. `false` before the first probe and when S3 is not
    /// probed at all: without evidence of an outage, the object store answers.
    pub fn s3_unreachable(&self) -> bool {
        self.s3_down.load(Ordering::Relaxed)
    }

    /// Lets readiness watch the uploader's rescans; `None` when no uploader runs. Replaces the
    /// previous uploader's (after a reload).
    pub fn watch_uploader(&self, uploader: Option<(Arc<Stats>, Duration)>) {
        *self.uploader.lock().unwrap_or_else(|p| p.into_inner()) =
            uploader.map(|(s, i)| (s, i, Instant::now()));
    }

    /// `Ok` when every background check last succeeded.
    pub fn check(&self) -> Result<(), String> {
        if let Some(Err(e)) = &*self.lock() {
            return Err(format!("S3: {e}"));
        }
        let uploader = self
            .uploader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((stats, interval, started)) = uploader {
            // A rescan must complete at least every few intervals (plus a minute of slack
            // for a large tree); otherwise the uploader's loop is stuck.
            let limit = interval * 3 + Duration::from_secs(60);
            let last_ms = stats
                .last_rescan_unix_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            let since = if last_ms == 0 {
                started.elapsed()
            } else {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                Duration::from_millis(now_ms.saturating_sub(last_ms))
            };
            if since > limit {
                return Err(format!(
                    "uploader: no full rescan completed for {}s",
                    since.as_secs()
                ));
            }
        }
        Ok(())
    }
}

/// Probes every bucket with HeadBucket every `interval` and records the result. On the first
/// start (`first`) readiness waits for the first probe; after a reload the previous verdict
/// stands until the new probe reports, so `/readyz` does not flap.
pub fn spawn_s3_probe(
    health: Arc<Health>,
    client: aws_sdk_s3::Client,
    buckets: Vec<String>,
    interval: Duration,
    first: bool,
) -> tokio::task::JoinHandle<()> {
    if first {
        health.expect_s3_probe();
    }
    tokio::spawn(async move {
        loop {
            let mut result = Ok(());
            for b in &buckets {
                let probe = client.head_bucket().bucket(b).send();
                match tokio::time::timeout(Duration::from_secs(5), probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        result = Err(format!("bucket {b}: {}", crate::store::error_chain(&e)));
                        break;
                    }
                    Err(_) => {
                        result = Err(format!("bucket {b}: no answer within 5s"));
                        break;
                    }
                }
            }
            health.set_s3(result);
            tokio::time::sleep(interval).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_counts_as_down_only_after_a_failed_probe() {
        let h = Health::default();
        assert!(!h.s3_unreachable(), "not probed: S3 answers");
        h.expect_s3_probe();
        assert!(
            !h.s3_unreachable(),
            "not probed yet is no evidence of an outage"
        );
        assert!(h.check().is_err(), "but not ready either");
        h.set_s3(Err("bucket b: connection refused".into()));
        assert!(h.s3_unreachable());
        h.set_s3(Ok(()));
        assert!(!h.s3_unreachable());
        assert!(h.check().is_ok());
    }

    #[test]
    fn a_new_uploader_is_timed_from_its_own_start() {
        let h = Health::default();
        let stats = Arc::new(Stats::new(1));
        h.watch_uploader(Some((stats, Duration::from_secs(60))));
        assert!(h.check().is_ok());
        h.watch_uploader(None);
        assert!(h.check().is_ok());
    }
}
