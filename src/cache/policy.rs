//! Which objects the hot cache keeps. Pure bookkeeping, no I/O: the caller reports misses, hits,
//! finished fills and removals; the policy answers whether to fill and what to evict.
//!
//! PLACEHOLDER implementation (exact counts per window, least-recently-used eviction): the API
//! is what the rest of the cache builds on; the internals are replaced by a frequency sketch
//! with aging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The limits of one mount's cache, from `[mount.cache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes on disk (filesystem blocks), never exceeded.
    pub max_bytes: u64,
    /// Files in the cache, never exceeded.
    pub max_files: u64,
    /// Evict when usage goes above this share of `max_bytes` / `max_files` (percent, 1..=100).
    pub high_percent: u8,
    /// …down to this share (percent, below `high_percent`).
    pub low_percent: u8,
    /// Requests within `window` before an object may enter.
    pub min_hits: u32,
    /// The popularity window.
    pub window: Duration,
    /// Larger objects are never cached.
    pub max_object_size: u64,
}

/// The answer to a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Fill it now (the caller single-flights fills per key).
    Fill,
    /// Already cached (or being inserted): nothing to do.
    Cached,
    /// Not popular enough (yet).
    TooFewHits,
    /// Larger than `max_object_size` or than the whole cache.
    TooLarge,
    /// Popular, but less so than what it would have to evict.
    Rejected,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// The new entry was kept (false: the caller deletes the file it just filled).
    pub kept: bool,
    /// Entries the caller must delete from disk (already forgotten by the policy).
    pub evict: Vec<Box<str>>,
}

/// Bytes and files the policy counts as cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
}

struct Seen {
    hits: u32,
    since: Instant,
}

struct Entry {
    bytes: u64,
    last_used: Instant,
}

/// One mount's cache policy. Not thread-safe by itself: the caller wraps it in a lock.
pub struct Policy {
    limits: Limits,
    seen: HashMap<Box<str>, Seen>,
    entries: HashMap<Box<str>, Entry>,
    usage: Usage,
}

impl Policy {
    pub fn new(limits: Limits) -> Self {
        Policy {
            limits,
            seen: HashMap::new(),
            entries: HashMap::new(),
            usage: Usage::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A request for `key` that the cache did not answer. `size` is the object's length when
    /// known (from the uploader's records or a HEAD); an unknown size is admitted on popularity
    /// and checked again at insert.
    pub fn record_miss(&mut self, key: &str, size: Option<u64>, now: Instant) -> Admission {
        if self.entries.contains_key(key) {
            return Admission::Cached;
        }
        if size.is_some_and(|s| s > self.limits.max_object_size || s > self.limits.max_bytes) {
            return Admission::TooLarge;
        }
        let window = self.limits.window;
        let seen = self.seen.entry(key.into()).or_insert(Seen {
            hits: 0,
            since: now,
        });
        if now.duration_since(seen.since) > window {
            *seen = Seen {
                hits: 0,
                since: now,
            };
        }
        seen.hits += 1;
        if seen.hits >= self.limits.min_hits {
            Admission::Fill
        } else {
            Admission::TooFewHits
        }
    }

    /// A request answered from the cache (only modes where the request reaches stowaway).
    pub fn record_hit(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.last_used = now;
        }
    }

    /// A fill of `key` finished; its file takes `disk_bytes` on disk.
    pub fn insert(&mut self, key: &str, disk_bytes: u64, now: Instant) -> Placement {
        if disk_bytes > self.limits.max_bytes || self.limits.max_files == 0 {
            return Placement::default();
        }
        if let Some(old) = self.entries.remove(key) {
            self.usage.bytes -= old.bytes;
            self.usage.files -= 1;
        }
        self.seen.remove(key);
        self.entries.insert(
            key.into(),
            Entry {
                bytes: disk_bytes,
                last_used: now,
            },
        );
        self.usage.bytes += disk_bytes;
        self.usage.files += 1;
        let mut evict = Vec::new();
        if self.over(self.limits.high_percent) {
            while self.over(self.limits.low_percent) {
                let Some(victim) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.remove(&victim);
                evict.push(victim);
            }
        }
        let kept = self.entries.contains_key(key);
        Placement { kept, evict }
    }

    /// The entry is gone (deleted, replaced, failed revalidation, evicted outside the policy).
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.usage.bytes -= old.bytes;
            self.usage.files -= 1;
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn over(&self, percent: u8) -> bool {
        let p = u128::from(percent);
        u128::from(self.usage.bytes) * 100 > u128::from(self.limits.max_bytes) * p
            || u128::from(self.usage.files) * 100 > u128::from(self.limits.max_files) * p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_bytes: 1000,
            max_files: 10,
            high_percent: 90,
            low_percent: 75,
            min_hits: 2,
            window: Duration::from_secs(60),
            max_object_size: 500,
        }
    }

    #[test]
    fn admits_after_min_hits_and_evicts_down_to_low() {
        let mut p = Policy::new(limits());
        let t = Instant::now();
        assert_eq!(p.record_miss("a", Some(400), t), Admission::TooFewHits);
        assert_eq!(p.record_miss("a", Some(400), t), Admission::Fill);
        assert_eq!(p.record_miss("big", Some(501), t), Admission::TooLarge);
        assert!(p.insert("a", 400, t).kept);
        assert!(p.insert("b", 400, t + Duration::from_secs(1)).kept);
        let placed = p.insert("c", 400, t + Duration::from_secs(2));
        assert!(placed.kept);
        assert!(p.usage().bytes <= 750);
        assert!(!placed.evict.is_empty());
    }
}
