//! Which migrated objects sit in an archived storage class (GLACIER, DEEP_ARCHIVE — a bucket
//! lifecycle rule moved them), so a redirect to one is not answered by S3 with 403
//! InvalidObjectState. GLACIER_IR is readable at once and is not archived here.
//!
//! A request never waits for S3 and `serve` never HEADs per request: every
//! `server.storage_class_refresh` a background task lists each mount's objects (ListObjectsV2
//! reports the class of every key, a thousand a request) and keeps only the archived keys,
//! swapped in whole. The decision costs one atomic load, plus one hash lookup on a mount that
//! has archived objects. Only for a key known archived does anything more happen, off the
//! request: a HeadObject (is a restored copy readable? `x-amz-restore: ongoing-request="false"`)
//! and, with `server.restore_days`, one RestoreObject per key. Until a restored copy is seen
//! the decision answers 503 with `Retry-After` (or the archived local copy, if the mount still
//! has it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::config::{RestoreTier, Settings};
use crate::store::ObjectStore;
use crate::store::list::is_archived_class;
use crate::store::restore::Coldness;

/// Most archived keys kept per mount (about 100 bytes each); the rest of a larger listing is
/// not loaded (those objects are redirected as before, and S3 answers 403), said in the log.
pub const MAX_PER_MOUNT: usize = 500_000;

/// How long what a HeadObject said about one key is trusted: a running restore is looked at
/// again after `server.storage_class_refresh` but at least every minute (restores take minutes
/// to hours), a restored copy (readable for `restore_days`) after an hour.
const MAX_RECHECK: Duration = Duration::from_secs(60);
const RESTORED_RECHECK: Duration = Duration::from_secs(3600);

/// Keys waiting for a look, at most this many (more are dropped: asked again next request).
const QUEUE: usize = 1024;

/// What the decision does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Redirect as usual.
    Readable,
    /// Not readable in S3 yet: 503, `Retry-After` this long (or the local archived copy).
    Unavailable(Duration),
}

/// What was learned about one archived key since the listing.
#[derive(Debug, Clone, Copy)]
struct Known {
    state: Coldness,
    at: Instant,
    /// A restore was asked for by this process.
    restore_asked: bool,
}

#[derive(Debug, Default)]
struct Set {
    mounts: Vec<HashSet<Box<str>>>,
}

/// The archived keys of every mount and what is known about each.
#[derive(Debug)]
pub struct StorageClasses {
    set: ArcSwap<Set>,
    known: Mutex<HashMap<(usize, Box<str>), Known>>,
    tier: RestoreTier,
    /// How long a running restore is not looked at again.
    recheck: Duration,
    ask: Option<mpsc::Sender<(usize, Box<str>)>>,
    /// The refresher and the looker, stopped with the last reference.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for StorageClasses {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            t.abort();
        }
    }
}

impl Default for StorageClasses {
    fn default() -> Self {
        StorageClasses::empty(RestoreTier::Standard)
    }
}

impl StorageClasses {
    /// Nothing known archived, and nobody to ask.
    pub fn empty(tier: RestoreTier) -> Self {
        StorageClasses {
            set: ArcSwap::from_pointee(Set::default()),
            known: Mutex::default(),
            tier,
            recheck: MAX_RECHECK,
            ask: None,
            tasks: Mutex::default(),
        }
    }

    /// Puts `keys` (mount-relative) in place as `mount`'s archived keys; for tests and the
    /// refresher.
    pub fn replace(&self, mount: usize, keys: HashSet<Box<str>>) {
        self.set.rcu(|old| {
            let mut mounts = old.mounts.clone();
            if mounts.len() <= mount {
                mounts.resize_with(mount + 1, HashSet::new);
            }
            mounts[mount] = keys.clone();
            Set { mounts }
        });
    }

    /// How many archived keys are loaded, over all mounts.
    pub fn len(&self) -> usize {
        self.set.load().mounts.iter().map(HashSet::len).sum()
    }

    /// Whether no archived key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hot path: whether `key` of `mount` can be redirected to. Asks nothing of S3 for an
    /// unavailable key: [`StorageClasses::look_soon`] does, once the caller has no local copy
    /// to offer instead.
    pub fn check(&self, mount: usize, key: &str) -> Answer {
        let set = self.set.load();
        match set.mounts.get(mount) {
            Some(m) if !m.is_empty() && m.contains(key) => {}
            _ => return Answer::Readable,
        }
        let unavailable = Answer::Unavailable(self.tier.retry_after());
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(k) = known.get(&(mount, Box::from(key))).copied() else {
            return unavailable;
        };
        drop(known);
        match k.state {
            Coldness::Readable => Answer::Readable,
            Coldness::Restored => {
                if k.at.elapsed() > RESTORED_RECHECK {
                    self.look_soon(mount, key);
                }
                Answer::Readable
            }
            Coldness::Restoring | Coldness::Archived => unavailable,
        }
    }

    /// Has the background task look at `key` (HeadObject, maybe RestoreObject), unless it did
    /// so recently. Never waits: a full queue drops the request (the next one asks again).
    pub fn look_soon(&self, mount: usize, key: &str) {
        let Some(tx) = &self.ask else { return };
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let recheck = self.recheck;
        let fresh = |k: &Known| match k.state {
            Coldness::Restored => now.saturating_duration_since(k.at) <= RESTORED_RECHECK,
            _ => now.saturating_duration_since(k.at) <= recheck,
        };
        let entry = known.entry((mount, Box::from(key)));
        let e = match entry {
            std::collections::hash_map::Entry::Occupied(o) if fresh(o.get()) => return,
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Known {
                state: Coldness::Archived,
                at: now,
                restore_asked: false,
            }),
        };
        // Marked as looked at now, so a burst of requests asks once.
        e.at = now;
        let _ = tx.try_send((mount, Box::from(key)));
    }

    fn learn(&self, mount: usize, key: Box<str>, state: Coldness, restore_asked: bool) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let e = known.entry((mount, key)).or_insert(Known {
            state,
            at: Instant::now(),
            restore_asked,
        });
        e.state = state;
        e.at = Instant::now();
        // A restore that finished is no longer "asked": once its copy expires (`restore_days`)
        // the key is archived again and the next look may start one more.
        e.restore_asked = match state {
            Coldness::Restored | Coldness::Readable => restore_asked,
            Coldness::Restoring | Coldness::Archived => e.restore_asked || restore_asked,
        };
    }

    fn restore_asked(&self, mount: usize, key: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .get(&(mount, Box::from(key)))
            .is_some_and(|k| k.restore_asked)
    }

    /// Lists every mount's objects and puts its archived keys in place; a mount whose listing
    /// fails keeps the keys loaded before. What was learned about keys no longer archived is
    /// forgotten.
    pub async fn refresh(&self, settings: &Settings, store: &ObjectStore) {
        for (i, m) in settings.mounts.iter().enumerate() {
            let mut keys: HashSet<Box<str>> = HashSet::new();
            let mut pages = store.list_objects(&m.bucket, &m.key_prefix, None);
            let mut full = false;
            let done = loop {
                match pages.next_page().await {
                    Ok(Some(page)) => {
                        for o in page {
                            if !o.storage_class.as_deref().is_some_and(is_archived_class) {
                                continue;
                            }
                            let Some(rel) = o.key.strip_prefix(&m.key_prefix) else {
                                continue;
                            };
                            if keys.len() >= MAX_PER_MOUNT {
                                full = true;
                                continue;
                            }
                            keys.insert(rel.into());
                        }
                    }
                    Ok(None) => break true,
                    Err(e) => {
                        tracing::warn!(mount = %m.prefix.as_str(), error = %e, "cannot list the objects to learn their storage classes: keeping what was known");
                        break false;
                    }
                }
            };
            if !done {
                continue;
            }
            if full {
                tracing::warn!(mount = %m.prefix.as_str(), loaded = MAX_PER_MOUNT, "more archived (GLACIER/DEEP_ARCHIVE) objects than stowaway keeps in memory: the rest are redirected and S3 answers them 403 InvalidObjectState");
            }
            tracing::debug!(mount = %m.prefix.as_str(), archived = keys.len(), "storage classes refreshed");
            {
                let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
                known.retain(|(mi, k), _| *mi != i || keys.contains(k));
            }
            self.replace(i, keys);
        }
    }

    /// One key's look: HeadObject, and a restore if none runs and `restore_days` asks for one.
    async fn look(&self, settings: &Settings, store: &ObjectStore, mount: usize, key: Box<str>) {
        let Some(m) = settings.mounts.get(mount) else {
            return;
        };
        let object = crate::paths::object_key(&m.key_prefix, &key);
        let state = match store.coldness(&m.bucket, &object).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(bucket = %m.bucket, key = %object, error = %e, "cannot ask S3 whether an archived object is restored");
                return;
            }
        };
        let days = settings.server.restore_days;
        let (state, asked) = match state {
            Coldness::Archived if days > 0 && !self.restore_asked(mount, &key) => {
                match store.restore(&m.bucket, &object, days, self.tier).await {
                    Ok(s) => {
                        tracing::info!(bucket = %m.bucket, key = %object, days, tier = self.tier.as_str(), "started a restore of an archived object");
                        (s, true)
                    }
                    Err(e) => {
                        tracing::warn!(bucket = %m.bucket, key = %object, error = %e, "cannot start a restore of an archived object");
                        (Coldness::Archived, false)
                    }
                }
            }
            s => (s, false),
        };
        if state == Coldness::Restored {
            tracing::debug!(bucket = %m.bucket, key = %object, "archived object restored: redirecting again");
        }
        self.learn(mount, key, state, asked);
    }
}

/// The storage classes of `settings`' mounts, and the tasks that keep them (none when
/// `server.storage_class_refresh` is zero, or `serve` does not talk to S3: `with_s3`). The
/// first listing runs in the background: until it is done nothing is known archived.
pub async fn start(settings: &Arc<Settings>, with_s3: bool) -> Arc<StorageClasses> {
    let tier = settings.server.restore_tier;
    let every = settings.server.storage_class_refresh;
    if !with_s3 || every.is_zero() {
        return Arc::new(StorageClasses::empty(tier));
    }
    let store = crate::tombstone::connect(settings).await;
    let (tx, mut rx) = mpsc::channel::<(usize, Box<str>)>(QUEUE);
    let me = Arc::new(StorageClasses {
        set: ArcSwap::from_pointee(Set::default()),
        known: Mutex::default(),
        tier,
        recheck: every.min(MAX_RECHECK),
        ask: Some(tx),
        tasks: Mutex::default(),
    });
    // The tasks hold weak references: dropping the last state (a reload) stops them.
    let (w, s, st) = (Arc::downgrade(&me), settings.clone(), store.clone());
    let refresher = tokio::spawn(async move {
        loop {
            let Some(me) = w.upgrade() else { return };
            me.refresh(&s, &st).await;
            tracing::info!(archived = me.len(), "storage classes loaded");
            drop(me);
            tokio::time::sleep(every).await;
        }
    });
    let (w, s) = (Arc::downgrade(&me), settings.clone());
    let looker = tokio::spawn(async move {
        while let Some((mount, key)) = rx.recv().await {
            let Some(me) = w.upgrade() else { return };
            me.look(&s, &store, mount, key).await;
        }
    });
    me.tasks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend([refresher, looker]);
    me
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> HashSet<Box<str>> {
        k.iter().map(|s| Box::from(*s)).collect()
    }

    #[test]
    fn only_keys_known_archived_are_unavailable() {
        let s = StorageClasses::empty(RestoreTier::Bulk);
        assert_eq!(s.check(0, "a.jpg"), Answer::Readable);
        s.replace(1, keys(&["cold.jpg"]));
        assert_eq!(s.check(0, "cold.jpg"), Answer::Readable, "other mount");
        assert_eq!(s.check(1, "warm.jpg"), Answer::Readable);
        assert_eq!(
            s.check(1, "cold.jpg"),
            Answer::Unavailable(RestoreTier::Bulk.retry_after())
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_restored_copy_is_readable_a_running_restore_is_not() {
        let s = StorageClasses::empty(RestoreTier::Expedited);
        s.replace(0, keys(&["a", "b", "c"]));
        s.learn(0, "a".into(), Coldness::Restored, false);
        s.learn(0, "b".into(), Coldness::Restoring, true);
        s.learn(0, "c".into(), Coldness::Readable, false);
        assert_eq!(s.check(0, "a"), Answer::Readable);
        assert_eq!(
            s.check(0, "b"),
            Answer::Unavailable(Duration::from_secs(300))
        );
        assert!(s.restore_asked(0, "b"));
        assert_eq!(s.check(0, "c"), Answer::Readable, "moved back to STANDARD");
    }

    /// One restore per key while it runs, but not one per process lifetime: once the restored
    /// copy was seen, its expiry (after `restore_days`) lets the next look start another.
    /// Before, the key answered 503 for good once its first restored copy expired.
    #[test]
    fn a_restored_copy_that_expired_may_be_restored_again() {
        let s = StorageClasses::empty(RestoreTier::Standard);
        s.replace(0, keys(&["a"]));
        s.learn(0, "a".into(), Coldness::Restoring, true);
        s.learn(0, "a".into(), Coldness::Restoring, false);
        assert!(s.restore_asked(0, "a"), "still running: not asked again");
        s.learn(0, "a".into(), Coldness::Restored, false);
        assert_eq!(s.check(0, "a"), Answer::Readable);
        s.learn(0, "a".into(), Coldness::Archived, false);
        assert!(
            !s.restore_asked(0, "a"),
            "the restored copy expired: a new restore may start"
        );
    }
}
