//! Client access control: links signed with HMAC-SHA256 that expire, optionally bound to a
//! request method and a client-IP prefix. The algorithm is specified in `docs/signed-links.md`;
//! this module is its reference implementation.
//!
//! ```text
//! string_to_sign = "stowaway-link-v1" LF kid LF expires LF method LF ip LF path
//! signature      = base64url_nopad(HMAC-SHA256(secret, string_to_sign))
//! link           = encode(path) "?expires=" expires "&kid=" kid ["&method=" method]
//!                  ["&ip=" encode(ip)] "&signature=" signature
//! ```
//!
//! `path` is the decoded, normalised URL path (mount prefix + file key, UTF-8), `method` and
//! `ip` are empty when the link is not bound to them. Verification costs one clone of a keyed
//! HMAC state, one HMAC over ~100 bytes and a constant-time comparison; it does not allocate.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::{AccessSettings, Settings};
use crate::config::{MIN_SECRET_BYTES, valid_key_id};
use crate::ipprefix::IpPrefix;
use crate::paths::{
    MapResult, encode_path, is_file_key, map_request, push_encoded_path, push_encoded_query,
};

/// First line of every string to sign; a new algorithm gets a new version.
pub const VERSION: &str = "stowaway-link-v1";
/// Length of a signature: 32 bytes in unpadded base64url.
pub const SIGNATURE_LEN: usize = 43;
/// Longest accepted value of a link parameter (after percent-decoding).
pub const MAX_PARAM_BYTES: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a link cannot be minted or a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("key id {0:?} must be 1-64 characters of letters, digits, `.`, `_` or `-`")]
    BadKeyId(String),
    #[error("the secret of key {0:?} is shorter than {MIN_SECRET_BYTES} bytes")]
    ShortSecret(String),
    #[error("no key with id {0:?}")]
    UnknownKey(String),
    #[error("method {0:?} must be an upper-case HTTP method token such as GET or HEAD")]
    BadMethod(String),
    #[error("{0:?} is not an IP address or prefix (e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)")]
    BadIpPrefix(String),
    #[error("{0}")]
    BadPath(String),
    #[error(
        "the link would stay valid for {asked}, longer than this mount's access.max_link_ttl of {max} (fix: use a shorter --ttl, or raise max_link_ttl in [mount.access])"
    )]
    TooLong { asked: String, max: String },
}

/// Why a request was refused. [`Denial::status`] gives the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the link carries no signature")]
    Missing,
    #[error("malformed link parameters")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("signature does not match")]
    BadSignature,
    #[error("the link is bound to another method")]
    WrongMethod,
    #[error("the link is bound to another client address")]
    WrongClient,
    #[error("the link has expired")]
    Expired,
    /// Authentic, but valid for longer than the mount's `max_link_ttl` allows: minted before
    /// the limit was lowered, or by someone holding a key who should not mint such links.
    #[error("the link stays valid for longer than max_link_ttl")]
    TooLong,
}

impl Denial {
    /// `410 Gone` for an authentic link past its expiry, `403 Forbidden` for everything else
    /// (a link that lives too long is refused like a forged one: it is not one this mount
    /// issues).
    pub fn status(self) -> u16 {
        match self {
            Denial::Expired => 410,
            _ => 403,
        }
    }
}

/// A request the link allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Unix time (seconds) the link is valid through.
    pub expires: u64,
    /// Whether the decision depended on the client address.
    pub ip_bound: bool,
}

/// Whether `m` is a usable method token for a link.
pub fn valid_method(m: &str) -> bool {
    (1..=16).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------------
// Query parsing (no allocation)

/// A percent-decoded parameter value, inline.
#[derive(Clone, Copy)]
struct Value {
    buf: [u8; MAX_PARAM_BYTES],
    len: usize,
}

impl Value {
    fn decode(raw: &str) -> Result<Value, Denial> {
        let mut v = Value {
            buf: [0; MAX_PARAM_BYTES],
            len: 0,
        };
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = if b[i] == b'%' {
                let h = b.get(i + 1).and_then(|&x| (x as char).to_digit(16));
                let l = b.get(i + 2).and_then(|&x| (x as char).to_digit(16));
                let (Some(h), Some(l)) = (h, l) else {
                    return Err(Denial::Malformed);
                };
                i += 3;
                (h * 16 + l) as u8
            } else {
                i += 1;
                b[i - 1]
            };
            if v.len == MAX_PARAM_BYTES || !(0x21..=0x7e).contains(&c) {
                return Err(Denial::Malformed);
            }
            v.buf[v.len] = c;
            v.len += 1;
        }
        Ok(v)
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        std::str::from_utf8(self.bytes()).unwrap_or("")
    }
}

#[derive(Default)]
struct Params {
    expires: Option<Value>,
    kid: Option<Value>,
    method: Option<Value>,
    ip: Option<Value>,
    signature: Option<Value>,
}

fn parse_query(query: &str) -> Result<Params, Denial> {
    let mut p = Params::default();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "expires" => &mut p.expires,
            "kid" => &mut p.kid,
            "method" => &mut p.method,
            "ip" => &mut p.ip,
            "signature" => &mut p.signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Denial::Malformed);
        }
        *slot = Some(Value::decode(value)?);
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Keys, signing, verification

fn feed(mac: &mut HmacSha256, kid: &str, expires: &str, method: &str, ip: &str, path: &[&str]) {
    for part in [
        VERSION, "\n", kid, "\n", expires, "\n", method, "\n", ip, "\n",
    ] {
        mac.update(part.as_bytes());
    }
    for part in path {
        mac.update(part.as_bytes());
    }
}

/// The signature of a link, computed from scratch (for tools and tests; the server keeps keyed
/// states in [`LinkKeys`]).
pub fn signature(
    secret: &[u8],
    kid: &str,
    expires: &str,
    method: &str,
    ip: &str,
    path: &str,
) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    feed(&mut mac, kid, expires, method, ip, &[path]);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The link keys of one mount, keyed once at start-up.
#[derive(Clone)]
pub struct LinkKeys {
    keys: Vec<(Box<str>, HmacSha256)>,
    sign_with: usize,
    /// `max_link_ttl` in seconds.
    max_ttl: u64,
}

impl fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| &**id).collect();
        f.debug_struct("LinkKeys")
            .field("ids", &ids)
            .field("sign_with", &ids[self.sign_with])
            .finish_non_exhaustive()
    }
}

impl LinkKeys {
    /// Keys the secrets of a mount's access section.
    pub fn new(a: &AccessSettings) -> Result<LinkKeys, LinkError> {
        let mut keys = Vec::with_capacity(a.keys.len());
        for k in &a.keys {
            if !valid_key_id(&k.id) {
                return Err(LinkError::BadKeyId(k.id.clone()));
            }
            let secret = k.secret.expose().as_bytes();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(LinkError::ShortSecret(k.id.clone()));
            }
            let mac = HmacSha256::new_from_slice(secret)
                .map_err(|_| LinkError::ShortSecret(k.id.clone()))?;
            keys.push((k.id.clone().into_boxed_str(), mac));
        }
        let sign_with = keys
            .iter()
            .position(|(id, _)| **id == *a.sign_with)
            .ok_or_else(|| LinkError::UnknownKey(a.sign_with.clone()))?;
        Ok(LinkKeys {
            keys,
            sign_with,
            max_ttl: a.max_link_ttl.as_secs(),
        })
    }

    /// Id of the key new links are signed with.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[self.sign_with].0
    }

    /// Mints a link for `path`: the decoded, normalised URL path (mount prefix + key). The
    /// result is the percent-encoded path plus the query. `kid` picks another accepted key.
    pub fn mint(
        &self,
        path: &str,
        expires: u64,
        method: Option<&str>,
        ip: Option<IpPrefix>,
        kid: Option<&str>,
    ) -> Result<String, LinkError> {
        let (id, key) = match kid {
            None => &self.keys[self.sign_with],
            Some(want) => self
                .keys
                .iter()
                .find(|(id, _)| **id == *want)
                .ok_or_else(|| LinkError::UnknownKey(want.to_string()))?,
        };
        let method = method.unwrap_or("");
        if !method.is_empty() && !valid_method(method) {
            return Err(LinkError::BadMethod(method.to_string()));
        }
        let ip = ip.map(|p| p.to_string()).unwrap_or_default();
        let expires = expires.to_string();
        let mut mac = key.clone();
        feed(&mut mac, id, &expires, method, &ip, &[path]);
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let mut link = String::with_capacity(path.len() * 3 + 128);
        push_encoded_path(&mut link, path);
        link.push_str("?expires=");
        link.push_str(&expires);
        link.push_str("&kid=");
        link.push_str(id);
        if !method.is_empty() {
            link.push_str("&method=");
            link.push_str(method);
        }
        if !ip.is_empty() {
            link.push_str("&ip=");
            push_encoded_query(&mut link, &ip);
        }
        link.push_str("&signature=");
        link.push_str(&sig);
        Ok(link)
    }

    /// Checks the link parameters in `query` for the file `prefix` + `key` (decoded,
    /// normalised), requested with `method` (`GET`/`HEAD`) at Unix time `now`. `client` is
    /// asked for the client address only when the link is bound to one.
    ///
    /// Order: parameters, key id, signature (constant time), method, client address, expiry,
    /// then `max_link_ttl`: an expiry further than that from `now` is refused.
    pub fn verify(
        &self,
        prefix: &str,
        key: &str,
        query: Option<&str>,
        method: &str,
        client: impl FnOnce() -> Option<IpAddr>,
        now: u64,
    ) -> Result<Grant, Denial> {
        let p = parse_query(query.unwrap_or(""))?;
        let Some(sig) = p.signature else {
            return Err(Denial::Missing);
        };
        let (Some(expires), Some(kid)) = (p.expires, p.kid) else {
            return Err(Denial::Malformed);
        };
        if expires.len == 0 || expires.len > 20 || !expires.bytes().iter().all(u8::is_ascii_digit) {
            return Err(Denial::Malformed);
        }
        let Some((_, state)) = self
            .keys
            .iter()
            .find(|(id, _)| id.as_bytes() == kid.bytes())
        else {
            return Err(Denial::UnknownKey);
        };
        if sig.len != SIGNATURE_LEN {
            return Err(Denial::BadSignature);
        }
        let mut tag = [0u8; 33];
        match URL_SAFE_NO_PAD.decode_slice(sig.bytes(), &mut tag) {
            Ok(32) => {}
            _ => return Err(Denial::BadSignature),
        }
        let method_v = p.method.as_ref().map_or("", Value::as_str);
        let ip_v = p.ip.as_ref().map_or("", Value::as_str);
        let mut mac = state.clone();
        feed(
            &mut mac,
            kid.as_str(),
            expires.as_str(),
            method_v,
            ip_v,
            &[prefix, key],
        );
        mac.verify_slice(&tag[..32])
            .map_err(|_| Denial::BadSignature)?;
        // Authentic from here on.
        if !method_v.is_empty() && method_v != method && !(method_v == "GET" && method == "HEAD") {
            return Err(Denial::WrongMethod);
        }
        if !ip_v.is_empty() {
            let prefix = IpPrefix::parse(ip_v).ok_or(Denial::Malformed)?;
            match client() {
                Some(ip) if prefix.contains(ip) => {}
                _ => return Err(Denial::WrongClient),
            }
        }
        let exp: u64 = expires.as_str().parse().map_err(|_| Denial::Malformed)?;
        if now > exp {
            return Err(Denial::Expired);
        }
        if exp > now.saturating_add(self.max_ttl) {
            return Err(Denial::TooLong);
        }
        Ok(Grant {
            expires: exp,
            ip_bound: !ip_v.is_empty(),
        })
    }
}

/// What `stowaway sign` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The file's URL path, not percent-encoded, e.g. `/static/a b.jpg`.
    pub path: &'a str,
    /// Unix time (seconds) the link is valid through.
    pub expires: u64,
    /// Method binding (upper case), if any.
    pub method: Option<&'a str>,
    /// Client-address binding, if any (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
    pub ip_prefix: Option<&'a str>,
    /// Another accepted key than the mount's `sign_with`.
    pub kid: Option<&'a str>,
    /// Unix time (seconds) of signing: the link may not outlive it by more than the mount's
    /// `max_link_ttl`.
    pub now: u64,
}

/// Mints a link for `req.path` on whichever mount it belongs to; the path is normalised
/// exactly as stowaway normalises requests, so the link verifies.
pub fn sign_link(settings: &Settings, req: &SignRequest<'_>) -> Result<String, LinkError> {
    let encoded = encode_path(req.path);
    let prefixes: Vec<&str> = settings.mounts.iter().map(|m| m.prefix.as_str()).collect();
    let m = match map_request(&prefixes, &encoded) {
        MapResult::Mapped(m) => m,
        MapResult::NoMount => {
            return Err(LinkError::BadPath(format!(
                "{:?} is not a file under any mount prefix",
                req.path
            )));
        }
        MapResult::Bad(e) => return Err(LinkError::BadPath(format!("{:?}: {e}", req.path))),
    };
    if !is_file_key(&m.key) {
        return Err(LinkError::BadPath(format!(
            "{:?} names a directory, not a file",
            req.path
        )));
    }
    let prefix = prefixes[m.mount];
    let access = settings
        .access
        .iter()
        .find(|a| a.mount == m.mount)
        .ok_or_else(|| {
            LinkError::BadPath(format!(
                "mount {prefix:?} has no [mount.access] section: its files need no signed link"
            ))
        })?;
    if req.expires > req.now.saturating_add(access.max_link_ttl.as_secs()) {
        let secs =
            |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
        return Err(LinkError::TooLong {
            asked: secs(req.expires - req.now),
            max: secs(access.max_link_ttl.as_secs()),
        });
    }
    let keys = LinkKeys::new(access)?;
    let ip = match req.ip_prefix {
        Some(s) => Some(IpPrefix::parse(s).ok_or_else(|| LinkError::BadIpPrefix(s.to_string()))?),
        None => None,
    };
    let mut full = String::with_capacity(prefix.len() + m.key.len());
    full.push_str(prefix);
    full.push_str(&m.key);
    keys.mint(&full, req.expires, req.method, ip, req.kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LinkKey, Secret};

    const S1: &str = "0123456789abcdef0123456789abcdef";
    const S2: &str = "another-secret-that-is-long-enough!!";
    /// `max_link_ttl` of the test keys; the tests verify at small `now` values.
    const MAX_TTL: u64 = 7 * 24 * 3600;

    fn access(sign_with: &str, keys: &[(&str, &str)]) -> AccessSettings {
        AccessSettings {
            mount: 0,
            prefix: "/static/".into(),
            sign_with: sign_with.into(),
            max_link_ttl: std::time::Duration::from_secs(MAX_TTL),
            keys: keys
                .iter()
                .map(|(id, s)| LinkKey {
                    id: (*id).into(),
                    secret: Secret::new(*s),
                })
                .collect(),
        }
    }

    fn keys(sign_with: &str) -> LinkKeys {
        LinkKeys::new(&access(sign_with, &[("k2", S2), ("k1", S1)])).unwrap()
    }

    fn query(link: &str) -> &str {
        link.split_once('?').unwrap().1
    }

    /// Vectors computed independently with Python's `hmac` (see docs/signed-links.md).
    #[test]
    fn known_vectors() {
        assert_eq!(
            signature(
                S1.as_bytes(),
                "k1",
                "1700000000",
                "",
                "",
                "/static/photo.jpg"
            ),
            "WsCv0WeHKZwCkgLaZp4tg8NbvbelUXJ5nwC2KnNn014"
        );
        assert_eq!(
            signature(
                S1.as_bytes(),
                "k1",
                "1700000000",
                "GET",
                "10.0.0.0/8",
                "/static/a b/€.jpg"
            ),
            "l509duTxBfcTYoEr-FoqP_pvzXQxWO_c__t-MuXgzpk"
        );
        let k = keys("k1");
        assert_eq!(
            k.mint("/static/photo.jpg", 1_700_000_000, None, None, None)
                .unwrap(),
            "/static/photo.jpg?expires=1700000000&kid=k1&signature=WsCv0WeHKZwCkgLaZp4tg8NbvbelUXJ5nwC2KnNn014"
        );
        assert_eq!(
            k.mint(
                "/static/a b/€.jpg",
                1_700_000_000,
                Some("GET"),
                IpPrefix::parse("10.1.2.3/8"),
                None
            )
            .unwrap(),
            "/static/a%20b/%E2%82%AC.jpg?expires=1700000000&kid=k1&method=GET&ip=10.0.0.0%2F8&signature=l509duTxBfcTYoEr-FoqP_pvzXQxWO_c__t-MuXgzpk"
        );
    }

    #[test]
    fn valid_links_verify_until_they_expire() {
        let k = keys("k1");
        let link = k.mint("/static/a.jpg", 1000, None, None, None).unwrap();
        let v = |q: &str, now| k.verify("/static/", "a.jpg", Some(q), "GET", || None, now);
        assert_eq!(
            v(query(&link), 999),
            Ok(Grant {
                expires: 1000,
                ip_bound: false
            })
        );
        assert_eq!(
            v(query(&link), 1000),
            Ok(Grant {
                expires: 1000,
                ip_bound: false
            }),
            "valid through its last second"
        );
        assert_eq!(v(query(&link), 1001), Err(Denial::Expired));
        assert_eq!(Denial::Expired.status(), 410);
        // Parameter order and extra parameters do not matter; percent-encoding is decoded.
        let sig = query(&link).rsplit_once("signature=").unwrap().1;
        assert!(
            v(
                &format!("x=1&signature={sig}&kid=%6B1&expires=1000&utm=a"),
                5
            )
            .is_ok()
        );
    }

    #[test]
    fn tampering_is_refused() {
        let k = keys("k1");
        let link = k
            .mint("/static/a.jpg", 1000, Some("HEAD"), None, None)
            .unwrap();
        let q = query(&link);
        let v = |key: &str, q: &str, m: &str| k.verify("/static/", key, Some(q), m, || None, 5);
        assert!(v("a.jpg", q, "HEAD").is_ok());
        assert_eq!(
            v("b.jpg", q, "HEAD"),
            Err(Denial::BadSignature),
            "another path"
        );
        assert_eq!(
            v("a.jpg", q, "GET"),
            Err(Denial::WrongMethod),
            "another method"
        );
        assert_eq!(
            v("a.jpg", &q.replace("expires=1000", "expires=2000"), "HEAD"),
            Err(Denial::BadSignature)
        );
        assert_eq!(
            v("a.jpg", &q.replace("&method=HEAD", ""), "HEAD"),
            Err(Denial::BadSignature),
            "dropping a binding"
        );
        assert_eq!(
            v("a.jpg", &q.replace("kid=k1", "kid=k2"), "HEAD"),
            Err(Denial::BadSignature)
        );
        assert_eq!(
            v("a.jpg", &q.replace("kid=k1", "kid=k9"), "HEAD"),
            Err(Denial::UnknownKey)
        );
        let sig = q.rsplit_once('=').unwrap().1;
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let with_char = |i: usize, f: fn(usize) -> usize| {
            let c = ALPHABET.find(&sig[i..i + 1]).unwrap();
            format!(
                "{}{}{}",
                &sig[..i],
                &ALPHABET[f(c)..f(c) + 1],
                &sig[i + 1..]
            )
        };
        assert_eq!(
            v(
                "a.jpg",
                &q.replace(sig, &with_char(10, |c| (c + 1) % 64)),
                "HEAD"
            ),
            Err(Denial::BadSignature)
        );
        // The last character carries two padding bits; a non-zero one is not a second spelling.
        assert_eq!(
            v("a.jpg", &q.replace(sig, &with_char(42, |c| c ^ 1)), "HEAD"),
            Err(Denial::BadSignature)
        );
        assert_eq!(
            v("a.jpg", &q.replace(sig, &sig[..40]), "HEAD"),
            Err(Denial::BadSignature)
        );
        assert_eq!(v("a.jpg", "", "HEAD"), Err(Denial::Missing));
        assert_eq!(
            v("a.jpg", "expires=1000&kid=k1", "HEAD"),
            Err(Denial::Missing)
        );
        assert_eq!(
            v("a.jpg", &format!("{q}&expires=1000"), "HEAD"),
            Err(Denial::Malformed),
            "duplicate parameter"
        );
        assert_eq!(
            v("a.jpg", &q.replace("expires=1000", "expires=-1000"), "HEAD"),
            Err(Denial::Malformed)
        );
        assert_eq!(
            v("a.jpg", &q.replace("kid=k1", "kid=k%1"), "HEAD"),
            Err(Denial::Malformed)
        );
        assert_eq!(
            v(
                "a.jpg",
                &q.replace("kid=k1", &format!("kid={}", "k".repeat(65))),
                "HEAD"
            ),
            Err(Denial::Malformed)
        );
        assert_eq!(Denial::BadSignature.status(), 403);
    }

    #[test]
    fn rotation_accepts_every_configured_key() {
        let old = keys("k1")
            .mint("/static/a.jpg", 1000, None, None, None)
            .unwrap();
        let new = keys("k2")
            .mint("/static/a.jpg", 1000, None, None, None)
            .unwrap();
        assert!(new.contains("kid=k2"));
        assert_eq!(keys("k2").signing_key_id(), "k2");
        for k in [keys("k1"), keys("k2")] {
            for link in [&old, &new] {
                assert!(
                    k.verify("/static/", "a.jpg", Some(query(link)), "GET", || None, 1)
                        .is_ok()
                );
            }
        }
        // A retired key no longer verifies.
        let only_k2 = LinkKeys::new(&access("k2", &[("k2", S2)])).unwrap();
        assert_eq!(
            only_k2.verify("/static/", "a.jpg", Some(query(&old)), "GET", || None, 1),
            Err(Denial::UnknownKey)
        );
        // Minting with an explicit accepted key.
        assert!(
            keys("k2")
                .mint("/static/a.jpg", 1, None, None, Some("k1"))
                .unwrap()
                .contains("kid=k1")
        );
        assert_eq!(
            keys("k2").mint("/static/a.jpg", 1, None, None, Some("k3")),
            Err(LinkError::UnknownKey("k3".into()))
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        let mk = |id: &str, s: &str| LinkKeys::new(&access(id, &[(id, s)]));
        assert_eq!(
            mk("k1", "short").unwrap_err(),
            LinkError::ShortSecret("k1".into())
        );
        assert_eq!(
            mk("k 1", S1).unwrap_err(),
            LinkError::BadKeyId("k 1".into())
        );
        assert!(format!("{:?}", mk("k1", S1).unwrap()).contains("k1"));
        assert!(
            !format!("{:?}", mk("k1", S1).unwrap()).contains(S1),
            "Debug must not show the secret"
        );
    }

    #[test]
    fn ip_binding_and_prefix_matching() {
        let p = |s: &str| IpPrefix::parse(s).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!p("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(
            p("10.0.0.0/8").contains(ip("::ffff:10.1.1.1")),
            "IPv4-mapped client"
        );
        assert!(
            p("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")),
            "IPv4-mapped prefix"
        );
        assert_eq!(p("::ffff:10.0.0.0/104"), p("10.0.0.0/8"));
        assert!(p("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!p("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(p("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(
            !p("0.0.0.0/0").contains(ip("2001:db8::1")),
            "families never mix"
        );
        assert!(p("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!p("2001:db8::/32").contains(ip("2001:db9::1")));
        assert_eq!(
            p("10.1.2.3/8").to_string(),
            "10.0.0.0/8",
            "host bits are cleared"
        );
        assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0/8",
            "::/129",
            "x",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "::ffff:10.0.0.0/95",
        ] {
            assert!(IpPrefix::parse(bad).is_none(), "{bad}");
        }

        let k = keys("k1");
        let link = k
            .mint("/static/a.jpg", 1000, None, Some(p("10.0.0.0/8")), None)
            .unwrap();
        let v = |client: Option<&str>| {
            k.verify(
                "/static/",
                "a.jpg",
                Some(query(&link)),
                "GET",
                || client.map(ip),
                1,
            )
        };
        assert_eq!(
            v(Some("10.2.3.4")),
            Ok(Grant {
                expires: 1000,
                ip_bound: true
            })
        );
        assert_eq!(v(Some("192.168.0.1")), Err(Denial::WrongClient));
        assert_eq!(v(None), Err(Denial::WrongClient));
        // The literal encoded form and the raw slash both verify.
        let raw = query(&link).replace("%2F", "/");
        assert!(
            k.verify(
                "/static/",
                "a.jpg",
                Some(&raw),
                "GET",
                || Some(ip("10.0.0.1")),
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn links_valid_longer_than_max_link_ttl_are_refused() {
        let k = keys("k1");
        let now = 1_700_000_000;
        let v =
            |link: &str, now| k.verify("/static/", "a.jpg", Some(query(link)), "GET", || None, now);
        let mint = |expires| k.mint("/static/a.jpg", expires, None, None, None).unwrap();
        assert!(v(&mint(now + MAX_TTL), now).is_ok(), "exactly at the limit");
        let long = mint(now + MAX_TTL + 1);
        assert_eq!(v(&long, now), Err(Denial::TooLong));
        assert_eq!(Denial::TooLong.status(), 403);
        assert_eq!(
            v(&mint(u64::MAX), u64::MAX - 1),
            Ok(Grant {
                expires: u64::MAX,
                ip_bound: false
            }),
            "no overflow near the end of time"
        );
        assert_eq!(v(&mint(u64::MAX), now), Err(Denial::TooLong));
        // The limit bounds the validity left at each moment (a link carries no issue time).
        assert!(v(&long, now + 1).is_ok());
        // A forged long link is still a bad signature first.
        let forged = query(&long).replace(&(now + MAX_TTL + 1).to_string(), "99999999999");
        assert_eq!(
            k.verify("/static/", "a.jpg", Some(&forged), "GET", || None, now),
            Err(Denial::BadSignature)
        );
    }

    #[test]
    fn sign_refuses_links_longer_than_max_link_ttl() {
        let text = format!(
            "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n\
             [[mount]]\nprefix = \"/static/\"\nroot = \"/nonexistent/root\"\nbucket = \"media\"\n\
             [mount.access]\nmax_link_ttl = \"1h\"\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{S1}\"\n"
        );
        let raw: crate::config::RawConfig = toml::from_str(&text).unwrap();
        let settings = crate::config::validate_with(&raw, crate::config::FsChecks::Skip).unwrap();
        let req = |expires| SignRequest {
            path: "/static/a.jpg",
            expires,
            method: None,
            ip_prefix: None,
            kid: None,
            now: 1000,
        };
        assert!(sign_link(&settings, &req(1000 + 3600)).is_ok());
        let e = sign_link(&settings, &req(1000 + 3601)).unwrap_err();
        assert_eq!(
            e,
            LinkError::TooLong {
                asked: "1h 1s".into(),
                max: "1h".into()
            }
        );
        assert!(e.to_string().contains("max_link_ttl"), "{e}");
    }

    #[test]
    fn get_links_also_allow_head_but_not_the_reverse() {
        let k = keys("k1");
        let get = k
            .mint("/static/a.jpg", 1000, Some("GET"), None, None)
            .unwrap();
        assert!(
            k.verify("/static/", "a.jpg", Some(query(&get)), "HEAD", || None, 1)
                .is_ok()
        );
        assert!(
            k.mint("/static/a.jpg", 1000, Some("get"), None, None)
                .is_err()
        );
    }
}
