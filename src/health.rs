//! Readiness: what `/readyz` and `stowaway healthcheck --ready` report besides the per-call
//! checks in [`crate::http::AppState::readiness`]. S3 reachability is probed in the background
//! and cached here, so no request ever waits on S3; the uploader counts as stuck when its full
//! rescans stop completing.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::uploader::stats::Stats;

const NOT_PROBED: &str = "S3 not probed yet";

/// Cached results of the background checks.
#[derive(Debug)]
pub struct Health {
    /// `None`: S3 is not probed; `Some(Err)`: the last probe failed (or none ran yet).
    s3: Mutex<Option<Result<(), String>>>,
    uploader: OnceLock<(Arc<Stats>, Duration)>,
    started: Instant,
    /// Signalled when a probe succeeds after a failed one, so the uploader retries the files
    /// that failed during the outage at once instead of at its next rescan.
    s3_back: Arc<tokio::sync::Notify>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            s3: Mutex::new(None),
            uploader: OnceLock::new(),
            started: Instant::now(),
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
        *g = Some(r);
    }

    /// Signalled (one stored permit) each time S3 becomes reachable after a failed probe.
    pub fn s3_recovered(&self) -> Arc<tokio::sync::Notify> {
        self.s3_back.clone()
    }

    /// Lets readiness watch the uploader's rescans.
    pub fn watch_uploader(&self, stats: Arc<Stats>, rescan_interval: Duration) {
        let _ = self.uploader.set((stats, rescan_interval));
    }

    /// `Ok` when every background check last succeeded.
    pub fn check(&self) -> Result<(), String> {
        if let Some(Err(e)) = &*self.lock() {
            return Err(format!("S3: {e}"));
        }
        if let Some((stats, interval)) = self.uploader.get() {
            // A rescan must complete at least every few intervals (plus a minute of slack
            // for a large tree); otherwise the uploader's loop is stuck.
            let limit = *interval * 3 + Duration::from_secs(60);
            let last_ms = stats
                .last_rescan_unix_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            let since = if last_ms == 0 {
                self.started.elapsed()
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

/// Probes every bucket with HeadBucket every `interval` and records the result.
pub fn spawn_s3_probe(
    health: Arc<Health>,
    client: aws_sdk_s3::Client,
    buckets: Vec<String>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    health.expect_s3_probe();
    tokio::spawn(async move {
        loop {
            let mut result = Ok(());
            for b in &buckets {
                let probe = client.head_bucket().bucket(b).send();
                match tokio::time::timeout(Duration::from_secs(5), probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        result = Err(format!("bucket {b}: {}", crate::s3::error_chain(&e)));
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
