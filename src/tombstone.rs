//! The tombstones `stowaway rm` leaves, in memory: which paths are refused (and never
//! uploaded again) until when.
//!
//! The bucket holds the truth ([`crate::store::tombstone`]); `serve` loads every mount's
//! tombstones at start-up and then every `server.tombstone_refresh`, so every node and every
//! restart sees an `rm` done anywhere. A request never waits for S3: the decision reads the
//! set loaded last, one atomic load and, only when the mount has tombstones, one hash lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::config::Settings;
use crate::store::ObjectStore;

/// Most tombstones kept per mount (about 100 bytes each): the rest of a larger listing is
/// not loaded, and said so in the log. A deletion campaign that large wants a bucket lifecycle
/// rule, not a per-path set.
pub const MAX_PER_MOUNT: usize = 100_000;

/// Most expired tombstones deleted from the bucket per refresh: the rest go at the next one,
/// so a mass expiry never holds up the refresher for long.
pub const MAX_SWEPT_PER_PASS: usize = 1_000;

/// How long start-up waits for the first load before serving without it.
pub const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Set {
    /// Per mount: relative key → expiry (Unix seconds).
    mounts: Vec<HashMap<Box<str>, u64>>,
}

/// The live tombstones of every mount, swapped whole by each refresh.
#[derive(Debug)]
pub struct Tombstones {
    set: ArcSwap<Set>,
    /// Tombstones the last refresh found expired, still in the bucket: (mount, key, written).
    expired: std::sync::Mutex<Vec<(usize, String, SystemTime)>>,
    /// Expired tombstones this process deleted from the bucket.
    expired_deleted: std::sync::atomic::AtomicU64,
}

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones::empty()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tombstones {
    /// No tombstones.
    pub fn empty() -> Self {
        Tombstones {
            set: ArcSwap::from_pointee(Set::default()),
            expired: std::sync::Mutex::default(),
            expired_deleted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The expiry of `key`'s tombstone in `mount` if it is still alive at `now` (Unix seconds).
    pub fn live_until(&self, mount: usize, key: &str, now: u64) -> Option<u64> {
        let set = self.set.load();
        let m = set.mounts.get(mount)?;
        if m.is_empty() {
            return None;
        }
        m.get(key).copied().filter(|&until| until > now)
    }

    /// Records a tombstone this process just wrote (it is in the bucket too; the next refresh
    /// finds it there).
    pub fn insert(&self, mount: usize, key: &str, until: u64) {
        self.set.rcu(|old| {
            let mut mounts = old.mounts.clone();
            if mounts.len() <= mount {
                mounts.resize_with(mount + 1, HashMap::new);
            }
            mounts[mount].insert(key.into(), until);
            Set { mounts }
        });
    }

    /// How many live tombstones are loaded, over all mounts.
    pub fn len(&self) -> usize {
        self.set.load().mounts.iter().map(HashMap::len).sum()
    }

    /// Whether no tombstone is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lists every mount's tombstones and puts the live ones in place. A mount whose listing
    /// fails keeps what was loaded for it before; its error is returned, by mount index.
    pub async fn refresh(
        &self,
        settings: &Settings,
        store: &ObjectStore,
    ) -> Vec<(usize, crate::store::retry::S3Failure)> {
        let now = SystemTime::now();
        let old = self.set.load_full();
        let mut mounts = Vec::with_capacity(settings.mounts.len());
        let mut errors = Vec::new();
        let mut expired = Vec::new();
        for (i, m) in settings.mounts.iter().enumerate() {
            if m.tombstone_ttl.is_zero() {
                mounts.push(HashMap::new());
                continue;
            }
            match store
                .list_tombstones(&m.bucket, &m.key_prefix, MAX_PER_MOUNT)
                .await
            {
                Ok((listed, more)) => {
                    if more {
                        tracing::warn!(mount = %m.prefix.as_str(), loaded = MAX_PER_MOUNT, "more tombstones than stowaway keeps in memory: the rest are not enforced (expire them with a bucket lifecycle rule on the .stowaway-tombstones/ prefix)");
                    }
                    let mut map = HashMap::with_capacity(listed.len());
                    for t in listed {
                        let until = unix(t.written + m.tombstone_ttl);
                        if until > unix(now) {
                            map.insert(t.key.into_boxed_str(), until);
                        } else if expired.len() < MAX_SWEPT_PER_PASS {
                            expired.push((i, t.key, t.written));
                        }
                    }
                    mounts.push(map);
                }
                Err(e) => {
                    mounts.push(old.mounts.get(i).cloned().unwrap_or_default());
                    errors.push((i, e));
                }
            }
        }
        self.set.store(Arc::new(Set { mounts }));
        if let Ok(mut e) = self.expired.lock() {
            *e = expired;
        }
        errors
    }

    /// Expired tombstones deleted from the bucket by this process so far.
    pub fn expired_deleted(&self) -> u64 {
        self.expired_deleted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Deletes from the bucket the tombstones the last refresh found expired (only under the
    /// key prefixes of `settings`' own mounts: it listed nothing else), each only if no later
    /// `rm` renewed it since. Failures are left for the next pass; how many went is returned.
    pub async fn sweep_expired(&self, settings: &Settings, store: &ObjectStore) -> usize {
        let expired = match self.expired.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(_) => return 0,
        };
        let mut deleted = 0;
        for (i, key, written) in expired {
            let Some(m) = settings.mounts.get(i) else {
                continue;
            };
            match store
                .delete_tombstone_if_unchanged(&m.bucket, &m.key_prefix, &key, written)
                .await
            {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(mount = %m.prefix.as_str(), key = ?key, error = %e, "cannot delete an expired tombstone; trying again at the next refresh");
                    break;
                }
            }
        }
        if deleted > 0 {
            self.expired_deleted
                .fetch_add(deleted as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(deleted, "expired tombstones deleted from the bucket");
        }
        deleted
    }
}

/// Retries are not counted anywhere: the refresh is not an upload.
#[derive(Debug)]
struct Uncounted;

impl crate::store::retry::RetryObserver for Uncounted {
    fn retried(&self) {}
}

/// An object store for `rm` and the refresher, with the uploader's retry policy.
pub async fn connect(settings: &Settings) -> ObjectStore {
    let retrier = crate::store::retry::Retrier::new(
        &settings.uploader,
        Arc::new(Uncounted),
        Arc::new(crate::store::stop::Stop::default()),
    );
    ObjectStore::connect(&settings.s3, retrier).await
}

fn log_errors(settings: &Settings, errors: &[(usize, crate::store::retry::S3Failure)]) {
    for (i, e) in errors {
        tracing::warn!(mount = %settings.mounts[*i].prefix.as_str(), error = %e, "cannot load the tombstones of `stowaway rm`: enforcing the ones loaded before until S3 answers");
    }
}

/// The tombstones of `settings`, loaded once (waiting at most [`FIRST_LOAD_TIMEOUT`], so an
/// S3 outage cannot hold up start-up), and the task that refreshes them every
/// `server.tombstone_refresh` (none when that is zero or no mount keeps tombstones). Only a
/// `serve` that talks to S3 anyway (`with_s3`: it presigns or uploads) loads them: one that
/// only redirects to public URLs needs no credentials, and `rm` deleted the object it would
/// redirect to.
pub async fn start(
    settings: &Arc<Settings>,
    with_s3: bool,
) -> (Arc<Tombstones>, Option<tokio::task::JoinHandle<()>>) {
    let t = Arc::new(Tombstones::empty());
    if !with_s3 || settings.mounts.iter().all(|m| m.tombstone_ttl.is_zero()) {
        return (t, None);
    }
    let store = connect(settings).await;
    let failing = match tokio::time::timeout(FIRST_LOAD_TIMEOUT, t.refresh(settings, &store)).await
    {
        Ok(errors) => {
            log_errors(settings, &errors);
            !errors.is_empty()
        }
        Err(_) => {
            tracing::warn!(timeout = %humantime::format_duration(FIRST_LOAD_TIMEOUT), "the tombstones of `stowaway rm` did not load in time: serving without them until the next refresh");
            true
        }
    };
    tracing::info!(loaded = t.len(), "tombstones loaded");
    if settings.server.tombstone_refresh.is_zero() {
        // No refresher: the tombstones that had expired at start-up go once, in the background.
        let (s, tt) = (settings.clone(), t.clone());
        let sweep = tokio::spawn(async move {
            tt.sweep_expired(&s, &store).await;
        });
        return (t, Some(sweep));
    }
    let task = spawn_refresher(settings.clone(), store, t.clone(), failing);
    (t, Some(task))
}

/// Refreshes `tombstones` every `server.tombstone_refresh` (not zero) for as long as the task
/// runs; `failing`: the load before it failed (its recovery is logged).
fn spawn_refresher(
    settings: Arc<Settings>,
    store: ObjectStore,
    tombstones: Arc<Tombstones>,
    mut failing: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = settings.server.tombstone_refresh;
        loop {
            tombstones.sweep_expired(&settings, &store).await;
            tokio::time::sleep(every).await;
            let errors = tombstones.refresh(&settings, &store).await;
            match (errors.is_empty(), failing) {
                (true, true) => {
                    tracing::info!(loaded = tombstones.len(), "tombstones loaded again from S3");
                    failing = false;
                }
                (true, false) => {
                    tracing::debug!(loaded = tombstones.len(), "tombstones refreshed")
                }
                // Said once per outage: the refresh runs every few seconds.
                (false, false) => {
                    log_errors(&settings, &errors);
                    failing = true;
                }
                (false, true) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_until_expiry_only() {
        let t = Tombstones::empty();
        assert_eq!(t.live_until(0, "a.jpg", 100), None);
        t.insert(1, "a.jpg", 200);
        assert_eq!(t.live_until(1, "a.jpg", 100), Some(200));
        assert_eq!(t.live_until(1, "a.jpg", 200), None, "expired at its expiry");
        assert_eq!(t.live_until(0, "a.jpg", 100), None, "other mount");
        assert_eq!(t.live_until(1, "b.jpg", 100), None);
        assert_eq!(t.live_until(7, "a.jpg", 100), None);
        assert_eq!(t.len(), 1);
    }
}
