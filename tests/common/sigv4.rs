//! The reference SigV4 presigner: the official `aws-sigv4` crate, so stowaway's own signer is
//! checked against AWS's implementation rather than against itself.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// SigV4's query encoding: everything but the unreserved characters (`/` included).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a presigned URL is signed with.
pub struct Presign<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub method: &'a str,
    /// The signing time (`X-Amz-Date`).
    pub at: SystemTime,
    /// `X-Amz-Expires`.
    pub expires: Duration,
}

/// `base` (the object's plain URL, path already percent-encoded) presigned by aws-sigv4 with
/// an unsigned payload and the host header only, as S3 presigned GET/HEAD URLs are.
pub fn reference_presign(base: &str, p: &Presign<'_>) -> String {
    let identity = Credentials::new(p.access_key_id, p.secret_access_key, None, None, "t").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(p.expires);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(p.region)
        .name("s3")
        .time(p.at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let req = SignableRequest::new(
        p.method,
        base,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instr, _) = sign(req, &params).unwrap().into_parts();
    let mut out = base.to_string();
    out.push('?');
    for (i, (k, v)) in instr.params().iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY));
    }
    out
}

/// The value of query parameter `name` in `url`, as it stands (still encoded).
pub fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let (_, q) = url.split_once('?')?;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The `X-Amz-Date` of a presigned URL (`YYYYMMDDTHHMMSSZ`) as a time.
pub fn amz_date(url: &str) -> SystemTime {
    let d = query_param(url, "X-Amz-Date").expect("X-Amz-Date");
    let n = |r: std::ops::Range<usize>| -> i64 { d[r].parse().unwrap() };
    let (y, m, day) = (n(0..4), n(4..6), n(6..8));
    let (hh, mm, ss) = (n(9..11), n(11..13), n(13..15));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}
