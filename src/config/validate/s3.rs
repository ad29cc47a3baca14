//! `[s3]`: region, endpoint, addressing style and static credentials.

use super::super::types::{AddressingStyle, S3Settings};
use super::super::{ConfigError, RawS3, invalid, read_secret_file};

/// Validates `[s3]`.
pub fn validate(r: &RawS3) -> Result<S3Settings, ConfigError> {
    let region = r.region.clone().filter(|x| !x.is_empty());
    if let Some(reg) = region
        .as_ref()
        .filter(|r| !r.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    {
        return Err(invalid(
            "s3.region",
            reg,
            "not a region name",
            "use e.g. \"eu-west-1\"",
        ));
    }
    let endpoint = r.endpoint.as_deref().map(validate_endpoint).transpose()?;
    let addressing_style = match r.addressing_style.as_deref() {
        None => {
            if endpoint.is_some() {
                AddressingStyle::Path
            } else {
                AddressingStyle::Virtual
            }
        }
        Some("virtual") => AddressingStyle::Virtual,
        Some("path") => AddressingStyle::Path,
        Some(other) => {
            return Err(invalid(
                "s3.addressing_style",
                other,
                "unknown addressing style",
                "use \"virtual\" or \"path\"",
            ));
        }
    };
    let secret = match (&r.secret_access_key, &r.secret_access_key_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "s3.secret_access_key_file",
                "<set>",
                "both s3.secret_access_key and s3.secret_access_key_file are set",
                "keep only one of them",
            ));
        }
        (Some(s), None) => Some(s.clone()),
        (None, Some(f)) => Some(read_secret_file("s3.secret_access_key_file", f)?),
        (None, None) => None,
    };
    if secret.is_some() != r.access_key_id.is_some() {
        return Err(invalid(
            "s3.access_key_id",
            r.access_key_id.as_deref().unwrap_or("<unset>"),
            "static credentials need both s3.access_key_id and s3.secret_access_key (or _file)",
            "set both, or neither to use the standard AWS credential chain",
        ));
    }
    Ok(S3Settings {
        region,
        endpoint,
        addressing_style,
        access_key_id: r.access_key_id.clone(),
        secret_access_key: secret,
    })
}

/// `s3.endpoint`: an S3-compatible server's base URL, without trailing slash.
fn validate_endpoint(e: &str) -> Result<String, ConfigError> {
    let t = e.trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(['?', '#', ' ', '@']) => Ok(t.to_string()),
        _ => Err(invalid(
            "s3.endpoint",
            e,
            "must be an http:// or https:// URL without query, e.g. \"http://127.0.0.1:8014\"",
            "set the S3-compatible server's base URL, or remove the key to use AWS",
        )),
    }
}
