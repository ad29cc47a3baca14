//! SigV4 query-string presigned URLs, minted without the SDK's async orchestrator.
//!
//! The signing key (four HMACs) depends only on the secret, the UTC day, the region and the
//! service, so it is derived once per day with aws-sigv4's public
//! [`generate_signing_key`](aws_sigv4::sign::v4::generate_signing_key) and cached as a keyed
//! HMAC state; each URL then costs one SHA-256 pass and one HMAC over the string to sign. With a signing window, every URL for one object minted
//! inside the window is byte-identical, so browsers and CDNs can cache the redirect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::cache::{Lookup, UrlCache, Window};
use super::{MintedUrl, MountUrls};
use crate::config::Secret;
use crate::paths::{push_encoded_path, push_encoded_query};

/// Why a presigned URL could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("no AWS credentials are loaded")]
    NoCredentials,
    #[error("the AWS credentials have expired or expire within a second")]
    CredentialsExpired,
    #[error("the system clock is before 1970")]
    Clock,
}

/// Credentials used to sign; the secret and session token are redacted in `Debug`.
#[derive(Clone, Debug)]
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// When the credentials stop working; URLs never outlive it.
    pub expires_at: Option<SystemTime>,
}

struct SignerState {
    creds: SigningCredentials,
    /// Unique per `set_credentials` call, process-wide: tags what the URL cache holds so a
    /// URL signed with replaced credentials is never served again.
    generation: u64,
    /// `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<encoded key id>%2F`.
    credential_param: String,
    /// Pre-encoded `&X-Amz-Security-Token=…` (empty without a session token).
    token_param: String,
    /// The HMAC keyed with the day's signing key (UTC day number): cloning it skips the key
    /// schedule (two SHA-256 blocks) per URL.
    key: Mutex<Option<(u64, Hmac<Sha256>)>>,
}

/// Mints SigV4 presigned URLs for one region; credentials can be swapped at any time.
pub struct Signer {
    region: String,
    /// `%2F<encoded region>%2Fs3%2Faws4_request&X-Amz-Date=`.
    scope_param: String,
    state: ArcSwapOption<SignerState>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Where the next credentials generation number comes from.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Unix seconds → (`YYYYMMDD`, `YYYYMMDDTHHMMSSZ`) in UTC.
pub fn amz_dates(unix: u64) -> ([u8; 8], [u8; 16]) {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil-from-days (H. Hinnant): proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut date = [b'0'; 8];
    let put = |buf: &mut [u8], mut v: u64| {
        for slot in buf.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut date[0..4], y as u64);
    put(&mut date[4..6], m as u64);
    put(&mut date[6..8], d as u64);
    let mut dt = [b'0'; 16];
    dt[0..8].copy_from_slice(&date);
    dt[8] = b'T';
    put(&mut dt[9..11], secs / 3600);
    put(&mut dt[11..13], (secs / 60) % 60);
    put(&mut dt[13..15], secs % 60);
    dt[15] = b'Z';
    (date, dt)
}

fn ascii(b: &[u8]) -> &str {
    // amz_dates and hex_lower only write ASCII.
    std::str::from_utf8(b).unwrap_or("")
}

/// Lower-case hex of a SHA-256 digest, from a table into a stack buffer (no allocation).
fn hex_lower(digest: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    out
}

impl Signer {
    /// A signer for `region` with no credentials yet.
    pub fn new(region: impl Into<String>) -> Self {
        let region = region.into();
        let mut scope_param = String::from("%2F");
        push_encoded_query(&mut scope_param, &region);
        scope_param.push_str("%2Fs3%2Faws4_request&X-Amz-Date=");
        Signer {
            region,
            scope_param,
            state: ArcSwapOption::empty(),
        }
    }

    /// Installs (or replaces) the credentials used from now on.
    pub fn set_credentials(&self, creds: SigningCredentials) {
        let mut credential_param =
            String::from("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        push_encoded_query(&mut credential_param, &creds.access_key_id);
        credential_param.push_str("%2F");
        let mut token_param = String::new();
        if let Some(t) = &creds.session_token {
            token_param.push_str("&X-Amz-Security-Token=");
            push_encoded_query(&mut token_param, t.expose());
        }
        self.state.store(Some(Arc::new(SignerState {
            creds,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            credential_param,
            token_param,
            key: Mutex::new(None),
        })));
    }

    /// When the current credentials expire, if they do.
    pub fn credentials_expiry(&self) -> Option<SystemTime> {
        self.state.load().as_ref().and_then(|s| s.creds.expires_at)
    }

    /// Whether credentials are loaded and not expired at `now`.
    pub fn has_valid_credentials(&self, now: SystemTime) -> bool {
        match self.state.load().as_ref() {
            None => false,
            Some(s) => s.creds.expires_at.is_none_or(|e| e > now),
        }
    }

    /// A presigned URL for `method` (`GET` or `HEAD`) on `key` of a mount, signed at `now`
    /// (rounded down to the mount's window), valid until the window ends plus `url.expires`
    /// (never past the credentials' expiry).
    pub fn presign(
        &self,
        urls: &MountUrls,
        method: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<MintedUrl, PresignError> {
        let guard = self.state.load();
        let st = guard.as_ref().ok_or(PresignError::NoCredentials)?;
        let w = window(st, urls, now)?;
        Ok(w.minted(self.sign(st, urls, method, key, &w), urls))
    }

    /// [`Signer::presign`] through `cache`: a URL already signed for the same method, key,
    /// window and credentials is returned as it was signed.
    pub(super) fn presign_cached(
        &self,
        urls: &MountUrls,
        cache: &UrlCache,
        method: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<(MintedUrl, Lookup), PresignError> {
        let guard = self.state.load();
        let st = guard.as_ref().ok_or(PresignError::NoCredentials)?;
        let w = window(st, urls, now)?;
        let (url, header, lookup) =
            cache.get_or_sign(&w, method, key, || self.sign(st, urls, method, key, &w));
        let mut minted = w.minted(url, urls);
        minted.header = header;
        Ok((minted, lookup))
    }

    /// The URL for `method` on `key`, signed at `w.start`, valid until `w.valid_until`.
    ///
    /// One `String` is the only allocation: the canonical request is hashed from slices of
    /// the URL as it is built, and the string to sign is fed to the HMAC piece by piece.
    fn sign(
        &self,
        st: &SignerState,
        urls: &MountUrls,
        method: &str,
        key: &str,
        w: &Window,
    ) -> String {
        let (date, amz_date) = amz_dates(w.start);
        let (date, amz_date) = (ascii(&date), ascii(&amz_date));
        // Worst case: every key byte percent-encoded; the rest is fixed-size or precomputed.
        let cap = urls.origin.len()
            + urls.path_base.len()
            + 3 * key.len()
            + st.credential_param.len()
            + self.scope_param.len()
            + st.token_param.len()
            + urls.overrides.len()
            + 200;
        let mut url = String::with_capacity(cap);
        url.push_str(&urls.origin);
        let path_start = url.len();
        url.push_str(&urls.path_base);
        push_encoded_path(&mut url, key);
        let path_end = url.len();
        url.push('?');
        url.push_str(&st.credential_param);
        url.push_str(date);
        url.push_str(&self.scope_param);
        url.push_str(amz_date);
        url.push_str("&X-Amz-Expires=");
        url.push_str(itoa_u64(w.valid_until - w.start, &mut [0u8; 20]));
        url.push_str(&st.token_param);
        url.push_str("&X-Amz-SignedHeaders=host");
        url.push_str(&urls.overrides);

        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b"\n");
        h.update(&url.as_bytes()[path_start..path_end]);
        h.update(b"\n");
        h.update(&url.as_bytes()[path_end + 1..]);
        h.update(b"\nhost:");
        h.update(urls.host.as_bytes());
        h.update(b"\n\nhost\nUNSIGNED-PAYLOAD");
        let creq_hash = hex_lower(&h.finalize());

        let mut mac = self.keyed_mac(st, w.start);
        mac.update(b"AWS4-HMAC-SHA256\n");
        mac.update(amz_date.as_bytes());
        mac.update(b"\n");
        mac.update(date.as_bytes());
        mac.update(b"/");
        mac.update(self.region.as_bytes());
        mac.update(b"/s3/aws4_request\n");
        mac.update(&creq_hash);
        let sig = hex_lower(&mac.finalize().into_bytes());

        url.push_str("&X-Amz-Signature=");
        url.push_str(ascii(&sig));
        url
    }

    /// The HMAC keyed with the signing key of the UTC day of `start`, derived once a day.
    fn keyed_mac(&self, st: &SignerState, start: u64) -> Hmac<Sha256> {
        let day = start / 86_400;
        // A poisoned lock only means another thread panicked mid-update; the cache is still usable.
        let mut g = st.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, mac)) = g.as_ref()
            && *d == day
        {
            return mac.clone();
        }
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            st.creds.secret_access_key.expose(),
            UNIX_EPOCH + Duration::from_secs(start),
            &self.region,
            "s3",
        );
        // HMAC takes a key of any length; the derived key is 32 bytes.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(derived.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        *g = Some((day, mac.clone()));
        mac
    }
}

/// The signing window of a URL minted at `now` with credentials `st`.
fn window(st: &SignerState, urls: &MountUrls, now: SystemTime) -> Result<Window, PresignError> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PresignError::Clock)?
        .as_secs();
    let start = if urls.window > 0 {
        now_s - now_s % urls.window
    } else {
        now_s
    };
    let mut valid_until = start + urls.window + urls.grace;
    if let Some(exp) = st.creds.expires_at {
        let exp_s = exp
            .duration_since(UNIX_EPOCH)
            .map_err(|_| PresignError::Clock)?
            .as_secs();
        if exp_s <= now_s + 1 {
            return Err(PresignError::CredentialsExpired);
        }
        valid_until = valid_until.min(exp_s);
    }
    Ok(Window {
        generation: st.generation,
        start,
        valid_until,
        now: now_s,
    })
}

fn itoa_u64(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::{AddressingStyle, Finalize, Mount, S3Settings, UrlKind, UrlSettings};
    use crate::paths::MountPrefix;
    use crate::url::CachePolicy;

    pub(crate) fn s3(endpoint: Option<&str>, style: AddressingStyle) -> S3Settings {
        S3Settings {
            region: Some("us-east-1".into()),
            endpoint: endpoint.map(Into::into),
            addressing_style: style,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    pub(crate) fn mount(kind: UrlKind, window: u64, base: Option<&str>) -> Mount {
        Mount {
            prefix: MountPrefix::parse("/static/").unwrap(),
            root: "/tmp".into(),
            bucket: "my-bucket".into(),
            key_prefix: "media/".into(),
            url: UrlSettings {
                kind,
                public_base_url: base.map(Into::into),
                expires: Duration::from_secs(600),
                window: Duration::from_secs(window),
                redirect_max_age: Duration::from_secs(60),
                response_content_disposition: None,
                response_content_type: None,
                response_cache_control: None,
            },
            upload: true,
            finalize: Finalize::Keep,
            archive_root: None,
            finalize_grace: Duration::ZERO,
            archive_retention: Duration::ZERO,
            ignore: vec![],
            serve_ignored: false,
            serve_archive_when_s3_down: true,
            tombstone_ttl: std::time::Duration::ZERO,
            tombstone_status: 404,
        }
    }

    pub(crate) fn creds() -> SigningCredentials {
        SigningCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            expires_at: None,
        }
    }

    #[test]
    fn dates() {
        let (d, dt) = amz_dates(1_764_084_600); // 2025-11-25T15:30:00Z
        assert_eq!(ascii(&d), "20251125");
        assert_eq!(ascii(&dt), "20251125T153000Z");
        assert_eq!(ascii(&amz_dates(0).1), "19700101T000000Z");
        assert_eq!(ascii(&amz_dates(951_782_400).0), "20000229");
    }

    #[test]
    fn public_urls_per_style() {
        let m = mount(UrlKind::Public, 0, None);
        assert_eq!(
            MountUrls::new(&s3(None, AddressingStyle::Virtual), &m).public_url("a b.jpg"),
            "https://my-bucket.s3.us-east-1.amazonaws.com/media/a%20b.jpg"
        );
        assert_eq!(
            MountUrls::new(
                &s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path),
                &m
            )
            .public_url("€.jpg"),
            "http://127.0.0.1:8014/my-bucket/media/%E2%82%AC.jpg"
        );
        assert_eq!(
            MountUrls::new(
                &s3(Some("https://s3.example.com:443"), AddressingStyle::Path),
                &m
            )
            .public_url("x"),
            "https://s3.example.com/my-bucket/media/x"
        );
        let cdn = mount(UrlKind::Public, 0, Some("https://cdn.example.com/files/"));
        assert_eq!(
            MountUrls::new(&s3(None, AddressingStyle::Virtual), &cdn).public_url("q?x#.jpg"),
            "https://cdn.example.com/files/media/q%3Fx%23.jpg"
        );
    }

    /// Our hand-built URL must equal aws-sigv4's own `http_request::sign` output.
    #[test]
    fn matches_aws_sigv4_reference_signer() {
        use aws_credential_types::Credentials;
        use aws_sigv4::http_request::{
            PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
            UriPathNormalizationMode, sign,
        };
        use aws_sigv4::sign::v4;

        let st = s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path);
        let m = mount(UrlKind::Presigned, 0, None);
        let urls = MountUrls::new(&st, &m);
        let signer = Signer::new("us-east-1");
        signer.set_credentials(creds());
        let t = UNIX_EPOCH + Duration::from_secs(1_764_084_600);
        for (method, key) in [
            ("GET", "dir/hello world ü+(1)=&.txt"),
            ("HEAD", "a%b?c#d.jpg"),
        ] {
            let ours = signer.presign(&urls, method, key, t).unwrap().url;

            let identity = Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "t",
            )
            .into();
            let mut settings = SigningSettings::default();
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(600));
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("s3")
                .time(t)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let base = urls.public_url(key);
            let req = SignableRequest::new(
                method,
                base.as_str(),
                std::iter::empty(),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instr, _) = sign(req, &params).unwrap().into_parts();
            let mut theirs = base.clone();
            theirs.push('?');
            for (i, (k, v)) in instr.params().iter().enumerate() {
                if i > 0 {
                    theirs.push('&');
                }
                theirs.push_str(k);
                theirs.push('=');
                push_encoded_query(&mut theirs, v);
            }
            assert_eq!(ours, theirs, "{method} {key}");
        }
    }

    #[test]
    fn windows_give_identical_urls_and_bounded_max_age() {
        let st = s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path);
        let urls = MountUrls::new(&st, &mount(UrlKind::Presigned, 300, None));
        let signer = Signer::new("us-east-1");
        signer.set_credentials(creds());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_764_084_600); // window start
        let a = signer
            .presign(&urls, "GET", "k.jpg", t0 + Duration::from_secs(10))
            .unwrap();
        let b = signer
            .presign(&urls, "GET", "k.jpg", t0 + Duration::from_secs(299))
            .unwrap();
        let c = signer
            .presign(&urls, "GET", "k.jpg", t0 + Duration::from_secs(300))
            .unwrap();
        assert_eq!(a.url, b.url);
        assert_ne!(a.url, c.url);
        assert!(a.url.contains("X-Amz-Expires=900&"));
        // valid until t0+900; margin min(600/2, 60) = 60
        assert_eq!(
            a.cache,
            CachePolicy::Private {
                max_age: 900 - 10 - 60
            }
        );
        assert_eq!(
            b.cache,
            CachePolicy::Private {
                max_age: 900 - 299 - 60
            }
        );
        assert_eq!(a.valid_until, Some(1_764_084_600 + 900));
        let head = signer.presign(&urls, "HEAD", "k.jpg", t0).unwrap();
        assert_ne!(
            head.url,
            signer.presign(&urls, "GET", "k.jpg", t0).unwrap().url
        );
    }

    #[test]
    fn never_outlives_credentials() {
        let st = s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path);
        let urls = MountUrls::new(&st, &mount(UrlKind::Presigned, 0, None));
        let signer = Signer::new("us-east-1");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_084_600);
        assert_eq!(
            signer.presign(&urls, "GET", "k", t),
            Err(PresignError::NoCredentials)
        );
        let mut c = creds();
        c.session_token = Some(Secret::new("tok/en+=="));
        c.expires_at = Some(t + Duration::from_secs(120));
        signer.set_credentials(c.clone());
        let u = signer.presign(&urls, "GET", "k", t).unwrap();
        assert!(u.url.contains("X-Amz-Expires=120&"), "{}", u.url);
        assert!(
            u.url
                .contains("X-Amz-Security-Token=tok%2Fen%2B%3D%3D&X-Amz-SignedHeaders")
        );
        c.expires_at = Some(t);
        signer.set_credentials(c);
        assert_eq!(
            signer.presign(&urls, "GET", "k", t),
            Err(PresignError::CredentialsExpired)
        );
        assert!(!signer.has_valid_credentials(t));
    }

    #[test]
    fn response_overrides_are_signed_in_order() {
        let st = s3(Some("http://127.0.0.1:8014"), AddressingStyle::Path);
        let mut m = mount(UrlKind::Presigned, 0, None);
        m.url.response_content_type = Some("image/png".into());
        m.url.response_content_disposition = Some("attachment; filename=\"x.png\"".into());
        let urls = MountUrls::new(&st, &m);
        let signer = Signer::new("us-east-1");
        signer.set_credentials(creds());
        let u = signer
            .presign(
                &urls,
                "GET",
                "k",
                UNIX_EPOCH + Duration::from_secs(1_764_084_600),
            )
            .unwrap()
            .url;
        let i = u
            .find("response-content-disposition=attachment%3B%20filename%3D%22x.png%22")
            .unwrap();
        let j = u.find("response-content-type=image%2Fpng").unwrap();
        assert!(u.find("X-Amz-SignedHeaders").unwrap() < i && i < j);
    }
}
