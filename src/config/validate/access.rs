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
    match kind {
        UrlKind::Presigned => {}
        UrlKind::Public => {
            return Err(invalid(
                format!("mount[{i}].url"),
                "public",
                "signed-link access control is pointless when the bucket URL is public",
                "set url = \"presigned\" for this mount, or remove its [mount.access] section",
            ));
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::testing::mount;
    use super::*;

    const SECRET: &str = "link-secret-0123456789abcdef-0123456789";

    /// A mount with a `[mount.access]` section: its lines, then these keys.
    fn access(lines: &str, keys: &[&str]) -> super::super::testing::Cfg {
        let keys: String = keys
            .iter()
            .map(|k| format!("[[mount.access.keys]]\n{k}\n"))
            .collect();
        mount(&format!("[mount.access]\n{lines}\n{keys}"))
    }

    fn key(id: &str) -> String {
        format!("id = \"{id}\"\nsecret = \"{SECRET}\"")
    }

    #[test]
    fn key_ids_and_secret_length() {
        assert!(valid_key_id("2026-11.a_b") && valid_key_id(&"k".repeat(64)));
        for bad in ["", "k 1", "k/1", "ключ", &"k".repeat(65)] {
            assert!(!valid_key_id(bad), "{bad:?}");
        }
        assert_eq!(MIN_SECRET_BYTES, 32);
    }

    #[test]
    fn a_section_with_one_key_is_enough() {
        let s = access("", &[&key("k1")]).accepted();
        let a = &s.access[0];
        assert_eq!(
            (a.mount, a.prefix.as_str(), a.sign_with.as_str()),
            (0, "/static/", "k1")
        );
        assert_eq!(a.max_link_ttl, DEFAULT_MAX_LINK_TTL);
        // A disabled section is not checked and not used.
        let s = access("enabled = false", &[]).accepted();
        assert!(s.access.is_empty());
    }

    #[test]
    fn only_presigned_mounts_take_access_control() {
        let e = mount(&format!(
            "url = \"public\"\n[mount.access]\n[[mount.access.keys]]\n{}",
            key("k1")
        ))
        .refused("mount[0].url");
        assert!(e.contains("pointless"), "{e}");
    }

    #[test]
    fn at_least_one_key() {
        access("", &[]).refused("mount[0].access.keys");
    }

    #[test]
    fn every_key_has_a_valid_unique_id() {
        access("", &[&format!("secret = \"{SECRET}\"")]).refused("mount[0].access.keys[0].id");
        access("", &[&key("k 1")]).refused("mount[0].access.keys[0].id");
        access("", &[&key("k1"), &key("k2")]).accepted();
        let e = access("", &[&key("k1"), &key("k1")]).refused("mount[0].access.keys[1].id");
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn every_key_has_one_long_enough_secret() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k");
        std::fs::write(&f, format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = format!("id = \"k1\"\nsecret_file = \"{}\"", f.display());
        let s = access("", &[&file]).accepted();
        assert_eq!(s.access[0].keys[0].secret.expose(), SECRET);
        access("", &[&format!("{file}\nsecret = \"{SECRET}\"")])
            .refused("mount[0].access.keys[0].secret_file");
        access("", &["id = \"k1\""]).refused("mount[0].access.keys[0].secret_file");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        access("", &[&file]).refused("mount[0].access.keys[0].secret_file");
        let short = format!(
            "id = \"k1\"\nsecret = \"{}\"",
            &SECRET[..MIN_SECRET_BYTES - 1]
        );
        let e = access("", &[&short]).refused("mount[0].access.keys[0].secret");
        assert!(
            e.contains("shorter than 32 bytes") && !e.contains(&SECRET[..20]),
            "{e}"
        );
        let exact = format!("id = \"k1\"\nsecret = \"{}\"", &SECRET[..MIN_SECRET_BYTES]);
        access("", &[&exact]).accepted();
    }

    #[test]
    fn sign_with_names_a_key() {
        let s = access("sign_with = \"k2\"", &[&key("k1"), &key("k2")]).accepted();
        assert_eq!(s.access[0].sign_with, "k2");
        access("sign_with = \"k3\"", &[&key("k1"), &key("k2")])
            .refused("mount[0].access.sign_with");
    }

    #[test]
    fn max_link_ttl_is_a_positive_duration() {
        let s = access("max_link_ttl = \"1s\"", &[&key("k1")]).accepted();
        assert_eq!(s.access[0].max_link_ttl, Duration::from_secs(1));
        access("max_link_ttl = \"0s\"", &[&key("k1")]).refused("mount[0].access.max_link_ttl");
        access("max_link_ttl = \"forever\"", &[&key("k1")]).refused("mount[0].access.max_link_ttl");
    }
}
