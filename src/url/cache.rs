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
//! so workers rarely meet); a full shard drops an arbitrary entry for the new one. A sharded
//! map was chosen over `moka` by measured cost (10 000 entries, same run: hit 48 ns with
//! foldhash, 91 ns with SipHash, 258 ns with moka, which also needs an owned key per lookup;
//! insert 0.27 µs vs 2.5 µs): the whole cache is dropped every window anyway, so an admission
//! policy has little to work with. Entries are kept parsed as header values, so a cached
//! redirect also skips the `Location` parse.

use std::collections::HashMap;
use std::hash::BuildHasher;

use actix_web::http::header::HeaderValue;
use foldhash::fast::RandomState;
use std::sync::{Mutex, MutexGuard};

use super::{CachePolicy, MintedUrl, MountUrls};

/// What every URL of one signing window shares, computed before signing (and before a URL
/// cache lookup, which is keyed by it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// The credentials generation (bumped by every `Signer::set_credentials`).
    pub(super) generation: u64,
    /// Unix seconds the URL is signed at: `now` rounded down to the window.
    pub(super) start: u64,
    /// Unix seconds after which the URL no longer works.
    pub(super) valid_until: u64,
    /// `now` in Unix seconds.
    pub(super) now: u64,
}

impl Window {
    /// The minted URL for `url` signed in this window.
    pub(super) fn minted(&self, url: String, urls: &MountUrls) -> MintedUrl {
        MintedUrl::new(
            url,
            Some(self.valid_until),
            CachePolicy::signed(urls.window, urls.grace, self.valid_until, self.now),
        )
    }
}

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
    /// `[GET, HEAD]`: key → URL, parsed as a header value once (the redirect needs one;
    /// cloning it is a reference count).
    maps: [HashMap<Box<str>, HeaderValue, RandomState>; 2],
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
    /// Seeded per cache (foldhash: half the cost of SipHash per lookup, measured): keys come
    /// from clients, so an unseeded hash would let them aim at one bucket; the per-shard bound
    /// caps what colliding keys could cost anyway.
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
        let hasher = RandomState::default();
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

    /// The URL of `method` on `key` in window `w`, and the same parsed as a header value when
    /// the cache holds it: the cached one, or `sign()`'s, kept.
    pub(super) fn get_or_sign(
        &self,
        w: &Window,
        method: &str,
        key: &str,
        sign: impl FnOnce() -> String,
    ) -> (String, Option<HeaderValue>, Lookup) {
        let Some(slot) = method_slot(method) else {
            return (sign(), None, Lookup::Uncached);
        };
        let tag = (w.generation, w.start);
        let shard = self.shard(key);
        {
            let g = lock(shard);
            if g.tag == tag
                && let Some(h) = g.maps[slot].get(key)
                && let Ok(url) = std::str::from_utf8(h.as_bytes())
            {
                return (url.to_owned(), Some(h.clone()), Lookup::Hit);
            }
        }
        // Signed and parsed outside the lock: other keys of this shard stay servable meanwhile.
        let url = sign();
        let Ok(header) = HeaderValue::from_str(&url) else {
            // Not a header value: the caller's parse will say so; nothing worth keeping.
            return (url, None, Lookup::Uncached);
        };
        let mut g = lock(shard);
        if g.tag < tag {
            for m in &mut g.maps {
                m.clear();
            }
            g.tag = tag;
        }
        if g.tag != tag {
            // Signed for a window or credentials the shard has already moved past.
            return (url, Some(header), Lookup::Uncached);
        }
        if g.maps[slot].contains_key(key) {
            // Another worker signed it meanwhile: the same bytes.
            return (url, Some(header), Lookup::Miss);
        }
        if g.len() >= self.per_shard {
            // Full: drop whichever entry comes first in table order, an arbitrary one.
            let victim = if g.maps[slot].is_empty() {
                1 - slot
            } else {
                slot
            };
            let old = g.maps[victim].keys().next().cloned();
            if let Some(old) = old {
                g.maps[victim].remove(&old);
            }
        }
        g.maps[slot].insert(key.into(), header.clone());
        (url, Some(header), Lookup::Miss)
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A poisoned shard only means a thread panicked mid-insert; its entries are still whole URLs.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::super::sigv4::tests::{creds, mount, s3};
    use super::super::{MintedUrl, ObjectUrl, PresignError, Signer};
    use super::*;
    use crate::config::{AddressingStyle, Secret, UrlKind};

    /// A window start (1_764_084_600 is a multiple of 300).
    const T0: u64 = 1_764_084_600;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    /// A presigning mount with a 5-minute window and response overrides, its cache holding
    /// `entries`, and its signer (to sign the same URL uncached).
    fn setup(entries: usize, window: u64) -> (ObjectUrl, Arc<Signer>) {
        let st = s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path);
        let mut m = mount(UrlKind::Presigned, window, None);
        m.url.response_content_disposition = Some("attachment; filename=\"x y.bin\"".into());
        let signer = Arc::new(Signer::new("us-east-1"));
        signer.set_credentials(creds());
        (ObjectUrl::new(&st, &m, Some(&signer), entries), signer)
    }

    /// The URL as an uncached signer mints it.
    fn fresh(u: &ObjectUrl, signer: &Signer, method: &str, key: &str, t: u64) -> MintedUrl {
        signer.presign(u.location(), method, key, at(t)).unwrap()
    }

    fn mint(u: &ObjectUrl, method: &str, key: &str, t: u64) -> (MintedUrl, Lookup) {
        u.mint(method, key, at(t)).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the key, method and moment in the window: the cached answer (URL, validity
        /// and cache policy) is exactly what signing afresh gives, the first time and again.
        #[test]
        fn cached_urls_are_byte_identical_to_fresh_ones(
            key in "\\PC{1,40}",
            head in any::<bool>(),
            first in 0u64..300,
            again in 0u64..300,
        ) {
            let (u, signer) = setup(1000, 300);
            let method = if head { "HEAD" } else { "GET" };
            let (a, la) = mint(&u, method, &key, T0 + first);
            prop_assert_eq!(la, Lookup::Miss);
            prop_assert_eq!(&a, &fresh(&u, &signer, method, &key, T0 + first));
            let (b, lb) = mint(&u, method, &key, T0 + again);
            prop_assert_eq!(lb, Lookup::Hit);
            prop_assert_eq!(&b, &fresh(&u, &signer, method, &key, T0 + again));
            // The header value a redirect is built from: the same bytes as well.
            let h = b.into_header().unwrap();
            prop_assert_eq!(h.as_bytes(), a.url.as_bytes());
        }
    }

    /// Many keys, both methods, one window: every answer equals the fresh one, and once all
    /// were signed, all are hits.
    #[test]
    fn many_keys_and_methods_hit_with_the_same_bytes() {
        let (u, signer) = setup(10_000, 300);
        let keys: Vec<String> = (0..500)
            .map(|i| format!("dir {}/ü+(é)=&%{i}?#.jpg", i % 7))
            .collect();
        for round in 0..2 {
            for k in &keys {
                for method in ["GET", "HEAD"] {
                    let t = T0 + 17 + round * 100;
                    let (got, lookup) = mint(&u, method, k, t);
                    let signed = fresh(&u, &signer, method, k, t);
                    assert_eq!(got, signed, "{method} {k}");
                    assert_eq!(
                        got.into_header().unwrap().as_bytes(),
                        signed.url.as_bytes(),
                        "{method} {k}"
                    );
                    let want = if round == 0 {
                        Lookup::Miss
                    } else {
                        Lookup::Hit
                    };
                    assert_eq!(lookup, want, "{method} {k} round {round}");
                }
            }
        }
        assert_eq!(u.cache().map(UrlCache::len), Some(1000));
    }

    #[test]
    fn a_window_roll_gives_a_new_url_and_a_late_request_bypasses() {
        let (u, signer) = setup(100, 300);
        let (a, _) = mint(&u, "GET", "k.jpg", T0 + 10);
        let (b, lb) = mint(&u, "GET", "k.jpg", T0 + 299);
        assert_eq!((a.url.as_str(), lb), (b.url.as_str(), Lookup::Hit));
        let (c, lc) = mint(&u, "GET", "k.jpg", T0 + 300);
        assert_eq!(lc, Lookup::Miss);
        assert_ne!(c.url, a.url);
        assert_eq!(c, fresh(&u, &signer, "GET", "k.jpg", T0 + 300));
        // A request that read the clock before the roll gets its own window's URL, signed,
        // and leaves the new window's entries alone.
        let (d, ld) = mint(&u, "GET", "k.jpg", T0 + 299);
        assert_eq!((d.url.as_str(), ld), (a.url.as_str(), Lookup::Uncached));
        assert_eq!(mint(&u, "GET", "k.jpg", T0 + 301).1, Lookup::Hit);
    }

    #[test]
    fn the_bound_holds() {
        for (entries, capacity) in [(1, 1), (5, 4), (16, 16), (100, 96), (10_000, 10_000)] {
            let (u, _) = setup(entries, 300);
            let cache = u.cache().unwrap();
            assert_eq!(cache.capacity(), capacity, "{entries}");
            for i in 0..(3 * entries).max(50) {
                let method = if i % 3 == 0 { "HEAD" } else { "GET" };
                mint(&u, method, &format!("k{i}"), T0);
                assert!(cache.len() <= capacity, "{entries}: {}", cache.len());
            }
            assert!(cache.len() >= capacity / 2, "{entries}: {}", cache.len());
        }
    }

    #[test]
    fn new_credentials_are_never_answered_with_old_urls() {
        let (u, signer) = setup(100, 300);
        let (old, _) = mint(&u, "GET", "k.jpg", T0);
        assert_eq!(mint(&u, "GET", "k.jpg", T0 + 1).1, Lookup::Hit);
        // A refresh: same key id, new secret and session token, an expiry.
        let mut c = creds();
        c.secret_access_key = Secret::new("rotated/secret+KEY");
        c.session_token = Some(Secret::new("tok"));
        c.expires_at = Some(at(T0 + 3600));
        signer.set_credentials(c.clone());
        let (new, lookup) = mint(&u, "GET", "k.jpg", T0 + 2);
        assert_eq!(lookup, Lookup::Miss);
        assert_ne!(new.url, old.url);
        assert_eq!(new, fresh(&u, &signer, "GET", "k.jpg", T0 + 2));
        // The same credentials again (a refresh that changes nothing) still start afresh:
        // only the expiry may differ, and it is in the URL.
        c.expires_at = Some(at(T0 + 700));
        signer.set_credentials(c);
        let (shorter, lookup) = mint(&u, "GET", "k.jpg", T0 + 3);
        assert_eq!(lookup, Lookup::Miss);
        assert!(
            shorter.url.contains("X-Amz-Expires=700&"),
            "{}",
            shorter.url
        );
        assert_eq!(shorter.valid_until, Some(T0 + 700));
        // Expired credentials fail even though a URL is cached.
        assert_eq!(
            u.mint("GET", "k.jpg", at(T0 + 699)),
            Err(PresignError::CredentialsExpired)
        );
    }

    #[test]
    fn only_windowed_get_and_head_are_cached() {
        let (u, signer) = setup(100, 300);
        assert_eq!(mint(&u, "GET", "k", T0).1, Lookup::Miss);
        assert_eq!(mint(&u, "HEAD", "k", T0).1, Lookup::Miss);
        assert_ne!(mint(&u, "GET", "k", T0).0, mint(&u, "HEAD", "k", T0).0);
        let (put, lookup) = mint(&u, "PUT", "k", T0);
        assert_eq!(lookup, Lookup::Uncached);
        assert_eq!(put, fresh(&u, &signer, "PUT", "k", T0));
        // No window: a URL per second, nothing kept.
        let (u, _) = setup(100, 0);
        assert!(u.cache().is_none());
        assert_eq!(mint(&u, "GET", "k", T0).1, Lookup::Uncached);
        // Cache off.
        let (u, _) = setup(0, 300);
        assert!(u.cache().is_none());
        assert_eq!(mint(&u, "GET", "k", T0).1, Lookup::Uncached);
        // Public URLs are not signed, not cached.
        let st = s3(None, AddressingStyle::Virtual);
        let p = ObjectUrl::new(&st, &mount(UrlKind::Public, 300, None), None, 100);
        assert!(p.cache().is_none());
        assert_eq!(mint(&p, "GET", "k", T0).1, Lookup::Uncached);
    }
}
