//! The per-window URL cache of a presigning mount: inside one signing window every URL for one
//! object and method is byte-identical, so a repeat is a map lookup instead of a SHA-256 pass and
//! an HMAC.
//!
//! What the URL depends on, and where the cache keeps it:
//! * the mount (location, bucket, key prefix, `url.window`, `url.expires`, response overrides)
//!   and the signer's region: one cache per [`ObjectUrl`](super::ObjectUrl), built with the
//!   mount's [`MountUrls`](super::MountUrls) and signer and never used with others;
//! * the method and the key: the map key (only `GET` and `HEAD` are cached);
//! * the window start and the credentials (key id, secret, session token, expiry, hence
//!   `X-Amz-Expires`): the shard's tag, (credentials generation, window start). A lookup with
//!   a newer tag empties the shard first, so a window roll or a credential refresh is never
//!   answered from entries signed before it; a lookup with an older tag (a request that read
//!   the clock or the credentials just before the change) signs without touching the cache.
//!
//! Bounded by entries: `server.url_cache_entries` spread over up to 16 shards (each a mutex,
//! so workers rarely meet); a full shard drops an arbitrary entry for the new one. A simple
//! sharded map was chosen over `moka` by measured hit cost (see BENCHMARKS.md): the whole
//! cache is dropped every window anyway, so an admission policy has little to work with.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use super::sigv4::Window;

/// Most shards: enough that a few dozen workers rarely wait on the same lock.
const MAX_SHARDS: usize = 16;

/// How a URL was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from the cache, not signed.
    Hit,
    /// Signed and kept for the rest of the window.
    Miss,
    /// Not cacheable: public URL, no window, cache off, another method, or a request that
    /// raced a window roll or a credential refresh.
    Uncached,
}

/// (credentials generation, window start) of the entries of a shard.
type Tag = (u64, u64);

struct Shard {
    tag: Tag,
    /// `[GET, HEAD]`: key → URL.
    maps: [HashMap<Box<str>, Box<str>, RandomState>; 2],
}

impl Shard {
    fn len(&self) -> usize {
        self.maps[0].len() + self.maps[1].len()
    }
}

/// Presigned URLs of the current signing window, at most `capacity` of them.
pub struct UrlCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// Keyed SipHash: keys come from clients, so a fixed hash would let them aim at one bucket.
    hasher: RandomState,
}

impl std::fmt::Debug for UrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlCache")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

fn method_slot(method: &str) -> Option<usize> {
    match method {
        "GET" => Some(0),
        "HEAD" => Some(1),
        _ => None,
    }
}

impl UrlCache {
    /// A cache of at most `entries` URLs; `None` for 0 (cache off).
    pub fn new(entries: usize) -> Option<Self> {
        if entries == 0 {
            return None;
        }
        // The largest power of two ≤ min(entries, MAX_SHARDS): shards × per_shard ≤ entries.
        let shards = 1usize << entries.min(MAX_SHARDS).ilog2();
        let hasher = RandomState::new();
        Some(UrlCache {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        tag: (0, 0),
                        maps: [
                            HashMap::with_hasher(hasher.clone()),
                            HashMap::with_hasher(hasher.clone()),
                        ],
                    })
                })
                .collect(),
            per_shard: entries / shards,
            hasher,
        })
    }

    /// At most this many URLs are kept.
    pub fn capacity(&self) -> usize {
        self.shards.len() * self.per_shard
    }

    /// URLs kept now (all shards, any tag).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no URL is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> &Mutex<Shard> {
        // The high bits: the map inside uses the low ones (same hasher) to pick a bucket.
        let h = self.hasher.hash_one(key);
        &self.shards[(h >> 32) as usize & (self.shards.len() - 1)]
    }

    /// The URL of `method` on `key` in window `w`: the cached one, or `sign()`'s, kept.
    pub(super) fn get_or_sign(
        &self,
        w: &Window,
        method: &str,
        key: &str,
        sign: impl FnOnce() -> String,
    ) -> (String, Lookup) {
        let Some(slot) = method_slot(method) else {
            return (sign(), Lookup::Uncached);
        };
        let tag = (w.generation, w.start);
        let shard = self.shard(key);
        {
            let g = lock(shard);
            if g.tag == tag {
                if let Some(url) = g.maps[slot].get(key) {
                    return (String::from(&**url), Lookup::Hit);
                }
            } else if g.tag > tag {
                drop(g);
                return (sign(), Lookup::Uncached);
            }
        }
        // Signed outside the lock: other keys of this shard stay servable meanwhile.
        let url = sign();
        let mut g = lock(shard);
        if g.tag < tag {
            for m in &mut g.maps {
                m.clear();
            }
            g.tag = tag;
        }
        if g.tag != tag {
            return (url, Lookup::Uncached);
        }
        if g.maps[slot].contains_key(key) {
            // Another worker signed it meanwhile: the same bytes.
            return (url, Lookup::Miss);
        }
        if g.len() >= self.per_shard {
            // Full: drop whichever entry comes first in table order, an arbitrary one.
            let victim = if g.maps[slot].is_empty() { 1 - slot } else { slot };
            let old = g.maps[victim].keys().next().cloned();
            if let Some(old) = old {
                g.maps[victim].remove(&old);
            }
        }
        g.maps[slot].insert(key.into(), url.as_str().into());
        (url, Lookup::Miss)
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A poisoned shard only means a thread panicked mid-insert; its entries are still whole URLs.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
