//! `[mount.access]`: signed-link keys (docs/signed-links.md) and the longest link lifetime.

use std::time::Duration;

use super::super::types::{AccessSettings, LinkKey, UrlKind};
use super::super::units::{HumanDuration, duration_or};
use super::super::{ConfigError, DEFAULT_MAX_LINK_TTL, RawAccess, invalid, read_secret_file};

/// Shortest accepted link-signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Whether `id` is a usable key id.
pub fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Validates the enabled `[mount.access]` of `mount[i]` (whose prefix is `prefix`).
pub fn validate(
    i: usize,
    prefix: &str,
    a: &RawAccess,
    kind: UrlKind,
) -> Result<AccessSettings, ConfigError> {
    let k = |f: &str| format!("mount[{i}].access.{f}");
    if kind != UrlKind::Presigned {
        return Err(invalid(
            format!("mount[{i}].url"),
            "public",
            "signed-link access control is pointless when the bucket URL is public",
            "set url = \"presigned\" for this mount, or remove its [mount.access] section",
        ));
    }
    if a.keys.is_empty() {
        return Err(invalid(
            k("keys"),
            "[]",
            "access control needs at least one key",
            "add a [[mount.access.keys]] table with id and secret_file",
        ));
    }
    let mut keys: Vec<LinkKey> = Vec::with_capacity(a.keys.len());
    for (j, rk) in a.keys.iter().enumerate() {
        let kk = |f: &str| k(&format!("keys[{j}].{f}"));
        let id = rk.id.clone().ok_or_else(|| {
            invalid(
                kk("id"),
                "<unset>",
                "missing",
                "give every key an id, e.g. \"2026-11\"",
            )
        })?;
        if !valid_key_id(&id) {
            return Err(invalid(
                kk("id"),
                &id,
                "not a key id",
                "use 1-64 letters, digits, `.`, `_` or `-`",
            ));
        }
        if keys.iter().any(|x| x.id == id) {
            return Err(invalid(
                kk("id"),
                &id,
                "duplicate key id",
                "give every key its own id",
            ));
        }
        let secret = match (&rk.secret, &rk.secret_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    kk("secret_file"),
                    "<set>",
                    "both secret and secret_file are set",
                    "keep only one of them",
                ));
            }
            (Some(s), None) => s.clone(),
            (None, Some(f)) => read_secret_file(&kk("secret_file"), f)?,
            (None, None) => {
                return Err(invalid(
                    kk("secret_file"),
                    "<unset>",
                    "the key has no secret",
                    "set secret_file (mode 0600) or secret",
                ));
            }
        };
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(invalid(
                kk("secret"),
                "<redacted>",
                format!("shorter than {} bytes", MIN_SECRET_BYTES),
                "use a random secret, e.g. the output of `openssl rand -base64 33`",
            ));
        }
        keys.push(LinkKey { id, secret });
    }
    let sign_with = a.sign_with.clone().unwrap_or_else(|| keys[0].id.clone());
    if !keys.iter().any(|x| x.id == sign_with) {
        return Err(invalid(
            k("sign_with"),
            &sign_with,
            "no key has this id",
            "name one of the [[mount.access.keys]] ids",
        ));
    }
    let max_link_ttl = duration_or(&k("max_link_ttl"), &a.max_link_ttl, DEFAULT_MAX_LINK_TTL)?;
    if max_link_ttl < Duration::from_secs(1) {
        return Err(invalid(
            k("max_link_ttl"),
            a.max_link_ttl.as_ref().map_or("", HumanDuration::text),
            "must be at least 1s (a shorter limit refuses every link)",
            "use e.g. \"7d\", or \"1h\" for short-lived links",
        ));
    }
    Ok(AccessSettings {
        mount: i,
        prefix: prefix.to_string(),
        sign_with,
        max_link_ttl,
        keys,
    })
}
