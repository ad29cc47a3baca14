//! Keeping entries honest in the background: each entry is HEAD-checked against S3 at most
//! every `revalidate` and dropped when its ETag changed, the object is gone or S3 cannot say
//! (in local-first mode the front server serves hits without asking stowaway, so this cannot
//! wait for a request). A few HEADs per round, one at a time: it never competes with fills or
//! the uploader. Each round also notices a deleted cache directory (recreated empty), files
//! deleted under the index (`stowaway rm`/`migrate`), tells the policy which entries the front
//! server read on its own since the last round (access times, [`super::layout::Access`]: in
//! local-first mode that is the only word of a hit stowaway gets), and leaves the counters for
//! `status`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::MountCache;
use super::layout::Access;

/// HEADs per round at most.
const PER_ROUND: usize = 32;

/// Runs forever (the task is aborted with its [`super::Caches`]).
pub async fn run(cache: Arc<MountCache>) {
    let every = (cache.settings.revalidate / 4)
        .min(cache.settings.check_interval)
        .max(Duration::from_millis(250));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        round(&cache).await;
    }
}

/// One round (also called by tests through [`MountCache::revalidate_now`]).
pub async fn round(cache: &Arc<MountCache>) {
    let c = cache.clone();
    let recreated = tokio::task::spawn_blocking(move || c.layout.recreate_if_gone()).await;
    match recreated {
        Ok(Ok(true)) => cache.index().clear(),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cache: directory unusable"),
        Err(_) => {}
    }
    // Files deleted under the index (another process purged them), and files the front
    // server read on its own since the last round (local-first hits, by access time).
    let c = cache.clone();
    let _ = tokio::task::spawn_blocking(move || {
        // The key list first: a guard in the `for` expression would live through the loop,
        // and locking the index again inside it would wait for ever.
        let keys = c.index().keys();
        let mut read = Vec::new();
        for k in keys {
            match c.layout.take_read(&k) {
                Access::Gone => c.index().remove(&k),
                Access::Unread => {}
                Access::Read(len) => read.push((k, len)),
            }
        }
        let (files, bytes) = c.index().record_reads(&read, Instant::now());
        c.stats.front_reads.add(files);
        c.stats.front_read_bytes.add(bytes);
        c.write_stats();
    })
    .await;
    let Some(before) = Instant::now().checked_sub(cache.settings.revalidate) else {
        return;
    };
    let due = cache.index().due(before, PER_ROUND);
    for (key, etag) in due {
        let object = format!("{}{key}", cache.key_prefix);
        let head = cache
            .client
            .head_object()
            .bucket(&cache.bucket)
            .key(&object)
            .send()
            .await;
        let current = match &head {
            Ok(h) => h.e_tag().map(|e| e.trim_matches('"')) == Some(&*etag),
            Err(_) => false,
        };
        if current {
            cache.index().confirm(&key, Instant::now());
            continue;
        }
        let why = match head {
            Ok(_) => "its ETag changed".to_string(),
            Err(e) => format!("S3 could not confirm it: {}", crate::store::error_chain(&e)),
        };
        tracing::info!(key = %key, reason = %why, "cache: entry dropped at revalidation");
        cache.drop_entry(&key);
    }
}
