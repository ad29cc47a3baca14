//! Where a migrated object is answered from: the URL a redirect (or nginx's fallback) carries,
//! how long it stays valid, and how long an answer naming it may be kept.
//!
//! [`ObjectUrl`] is a mount's kind of URL, built once at start-up; [`ObjectUrl::mint`] gives a
//! [`MintedUrl`] per request. Everything downstream (the redirect's `Cache-Control`, the
//! lifetime of an nginx auth verdict) is derived from the minted value's `valid_until` and
//! [`CachePolicy`], never by reading the URL back. A new kind of URL (CloudFront signed URLs, a
//! cluster peer, the hot-object cache) is one more [`ObjectUrl`] variant: the exhaustive
//! `match`es point at every place that has to decide about it.
//!
//! * [`location`]: scheme, host and path of a mount's objects ([`MountUrls`]);
//! * [`sigv4`]: SigV4 query-string presigning ([`Signer`]);
//! * [`cache`]: the URLs of the current signing window, so a repeat is not signed again
//!   ([`UrlCache`]).

pub mod cache;
pub mod location;
pub mod sigv4;

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::{HeaderValue, InvalidHeaderValue};

use crate::config::{Mount, S3Settings, UrlKind};

pub use cache::{Lookup, UrlCache};
pub use location::MountUrls;
pub use sigv4::{PresignError, Signer, SigningCredentials, amz_dates};

/// A mount's kind of object URL.
#[derive(Debug)]
pub enum ObjectUrl {
    /// Unsigned (public bucket or CDN): the same URL for every request, forever.
    Public {
        location: MountUrls,
        /// What every redirect to it may be cached as (`url.redirect_max_age`).
        cache: CachePolicy,
    },
    /// SigV4 query-string presigned for the client's method; `None` until credentials exist
    /// (every mint then fails with [`PresignError::NoCredentials`]).
    Presigned {
        location: MountUrls,
        signer: Option<Arc<Signer>>,
        /// The current window's URLs; `None` without a window (a URL per request, never
        /// the same twice) or with `server.url_cache_entries = 0`.
        cache: Option<UrlCache>,
    },
}

/// One URL for one request.
#[derive(Debug, Clone)]
pub struct MintedUrl {
    pub url: String,
    /// Unix seconds after which the URL no longer works; `None`: it does not expire.
    pub valid_until: Option<u64>,
    /// How long an answer naming it may be kept.
    pub cache: CachePolicy,
    /// `url` already parsed as a header value (the URL cache keeps it parsed), so a cached
    /// redirect skips the parse; always the same bytes as `url`.
    header: Option<HeaderValue>,
}

/// Equal URLs are equal answers: `header` is only a parsed copy of `url`.
impl PartialEq for MintedUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.valid_until == other.valid_until && self.cache == other.cache
    }
}

impl Eq for MintedUrl {}

/// How long an answer naming a URL may be kept, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachePolicy {
    /// Anyone, `max_age` seconds: an unsigned URL is the same for everybody.
    Shared {
        max_age: u64,
        /// `public, max-age=<max_age>`, rendered once per mount.
        cache_control: HeaderValue,
    },
    /// Only the client, `max_age` seconds: a signed URL is identical for a whole signing
    /// window and is trusted until shortly before it expires.
    Private { max_age: u64 },
    /// Minted for this one request (no signing window): not cached.
    NoStore,
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

impl CachePolicy {
    /// For a redirect to a public URL: `redirect_max_age` seconds, for anyone.
    pub fn shared(max_age: u64) -> Self {
        CachePolicy::Shared {
            max_age,
            cache_control: HeaderValue::try_from(format!("public, max-age={max_age}"))
                .unwrap_or(NO_STORE),
        }
    }

    /// For a URL signed at `now` (Unix seconds) and valid until `valid_until`, in a mount with
    /// a signing window of `window` seconds and `url.expires` of `grace` seconds.
    pub fn signed(window: u64, grace: u64, valid_until: u64, now: u64) -> Self {
        if window == 0 {
            return CachePolicy::NoStore;
        }
        // Margin for clock skew and the client's own latency before it reaches S3.
        let margin = (grace / 2).min(60);
        match valid_until.saturating_sub(now).saturating_sub(margin) {
            0 => CachePolicy::NoStore,
            max_age => CachePolicy::Private { max_age },
        }
    }
}

impl MintedUrl {
    /// An URL not yet parsed as a header value.
    pub(crate) fn new(url: String, valid_until: Option<u64>, cache: CachePolicy) -> Self {
        MintedUrl {
            url,
            valid_until,
            cache,
            header: None,
        }
    }

    /// The URL as a `Location` / `X-S3-Location` value: the parsed copy when the URL cache
    /// had one, parsed now otherwise.
    pub fn into_header(self) -> Result<HeaderValue, InvalidHeaderValue> {
        match self.header {
            Some(h) => Ok(h),
            None => HeaderValue::try_from(self.url),
        }
    }

    /// How long an answer that names this URL may be reused (nginx's auth verdict cache): its
    /// cacheable age; for a URL minted per request, half of what it has left, so a reused
    /// answer still leaves the client time to follow it; `None`: no limit from the URL.
    pub fn reusable_for(&self, now: u64) -> Option<u64> {
        match &self.cache {
            CachePolicy::Shared { .. } => None,
            CachePolicy::Private { max_age } => Some(*max_age),
            CachePolicy::NoStore => self.valid_until.map(|v| v.saturating_sub(now) / 2),
        }
    }

    /// The `Cache-Control` of a redirect to this URL. A signed URL reached through a signed
    /// link (`link_expires`, Unix seconds) is not kept beyond the link's expiry.
    pub fn cache_control(&self, link_expires: Option<u64>, now: u64) -> HeaderValue {
        match &self.cache {
            CachePolicy::Shared { cache_control, .. } => cache_control.clone(),
            CachePolicy::Private { max_age } => {
                match link_expires.map_or(*max_age, |e| (*max_age).min(e.saturating_sub(now))) {
                    0 => NO_STORE,
                    n => HeaderValue::try_from(format!("private, max-age={n}")).unwrap_or(NO_STORE),
                }
            }
            CachePolicy::NoStore => NO_STORE,
        }
    }
}

impl ObjectUrl {
    /// The URL kind of mount `m`. `signer` must be set when the mount presigns; a presigning
    /// mount with a window keeps up to `cache_entries` URLs of the current window.
    pub fn new(
        s3: &S3Settings,
        m: &Mount,
        signer: Option<&Arc<Signer>>,
        cache_entries: usize,
    ) -> Self {
        let location = MountUrls::new(s3, m);
        match m.url.kind {
            UrlKind::Public => ObjectUrl::Public {
                location,
                cache: CachePolicy::shared(m.url.redirect_max_age.as_secs()),
            },
            UrlKind::Presigned => ObjectUrl::Presigned {
                cache: if m.url.window.is_zero() {
                    None
                } else {
                    UrlCache::new(cache_entries)
                },
                location,
                signer: signer.cloned(),
            },
        }
    }

    /// Where the mount's objects are addressed.
    pub fn location(&self) -> &MountUrls {
        match self {
            ObjectUrl::Public { location, .. } | ObjectUrl::Presigned { location, .. } => location,
        }
    }

    /// The URL of `key` (relative, not yet encoded) for `method` (`GET` or `HEAD`) at `now`,
    /// and whether the URL cache answered.
    pub fn mint(
        &self,
        method: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<(MintedUrl, Lookup), PresignError> {
        match self {
            ObjectUrl::Public { location, cache } => Ok((
                MintedUrl::new(location.public_url(key), None, cache.clone()),
                Lookup::Uncached,
            )),
            ObjectUrl::Presigned {
                location,
                signer,
                cache,
            } => {
                let signer = signer.as_ref().ok_or(PresignError::NoCredentials)?;
                match cache {
                    Some(c) => signer.presign_cached(location, c, method, key, now),
                    None => signer
                        .presign(location, method, key, now)
                        .map(|u| (u, Lookup::Uncached)),
                }
            }
        }
    }

    /// The URL cache of a presigning mount with a window, if it is on.
    pub fn cache(&self) -> Option<&UrlCache> {
        match self {
            ObjectUrl::Public { .. } => None,
            ObjectUrl::Presigned { cache, .. } => cache.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(max_age: u64) -> MintedUrl {
        MintedUrl::new("u".into(), Some(10_000), CachePolicy::Private { max_age })
    }

    #[test]
    fn signed_policy_follows_the_window_and_keeps_a_margin() {
        // No window: a URL per request, never cached.
        assert_eq!(
            CachePolicy::signed(0, 600, 1600, 1000),
            CachePolicy::NoStore
        );
        // Margin min(600/2, 60) = 60.
        assert_eq!(
            CachePolicy::signed(300, 600, 1900, 1000),
            CachePolicy::Private { max_age: 840 }
        );
        // Margin min(20/2, 60) = 10.
        assert_eq!(
            CachePolicy::signed(300, 20, 1100, 1000),
            CachePolicy::Private { max_age: 90 }
        );
        // Nothing left after the margin (credentials about to expire).
        assert_eq!(
            CachePolicy::signed(300, 600, 1060, 1000),
            CachePolicy::NoStore
        );
        assert_eq!(
            CachePolicy::signed(300, 600, 900, 1000),
            CachePolicy::NoStore
        );
    }

    #[test]
    fn redirect_cache_control_per_policy_and_link() {
        assert_eq!(
            CachePolicy::shared(300),
            CachePolicy::Shared {
                max_age: 300,
                cache_control: HeaderValue::from_static("public, max-age=300")
            }
        );
        let public = MintedUrl::new("u".into(), None, CachePolicy::shared(300));
        // A public URL's redirect is the same for everybody, link or not.
        assert_eq!(
            public.cache_control(Some(1001), 1000),
            "public, max-age=300"
        );
        assert_eq!(
            signed(200).cache_control(None, 1000),
            "private, max-age=200"
        );
        assert_eq!(
            signed(200).cache_control(Some(1050), 1000),
            "private, max-age=50"
        );
        assert_eq!(signed(200).cache_control(Some(1000), 1000), "no-store");
        assert_eq!(signed(200).cache_control(Some(999), 1000), "no-store");
        let once = MintedUrl {
            cache: CachePolicy::NoStore,
            ..signed(0)
        };
        assert_eq!(once.cache_control(None, 1000), "no-store");
    }

    #[test]
    fn reuse_is_bounded_by_what_the_url_has_left() {
        assert_eq!(signed(200).reusable_for(1000), Some(200));
        let once = MintedUrl {
            cache: CachePolicy::NoStore,
            ..signed(0)
        };
        // valid until 10_000: half of the 9_000 s left.
        assert_eq!(once.reusable_for(1000), Some(4500));
        assert_eq!(once.reusable_for(20_000), Some(0));
        let public = MintedUrl::new("u".into(), None, CachePolicy::shared(300));
        assert_eq!(public.reusable_for(1000), None);
    }
}
