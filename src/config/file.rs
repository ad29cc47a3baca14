//! The file schema: the configuration as written (`Raw*`, every key optional), the names of
//! its keys for suggestions when one is misspelled, and load errors worded without the values
//! they quote (a value in the wrong place may be a secret).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::secrets::Secret;
use super::units::{HumanDuration, HumanSize};

// Raw form: what the file and the environment say, before any checking.

/// The configuration as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub server: RawServer,
    pub log: RawLog,
    pub s3: RawS3,
    pub uploader: RawUploader,
    #[serde(rename = "mount")]
    pub mounts: Vec<RawMount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: Option<String>,
    pub workers: Option<usize>,
    pub internal_prefix: Option<String>,
    pub front: Option<String>,
    pub fallback_header: Option<bool>,
    pub verdict_ttl: Option<HumanDuration>,
    pub metrics_listen: Option<String>,
    pub shutdown_timeout: Option<HumanDuration>,
    pub s3_probe_interval: Option<HumanDuration>,
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub front_secret_file: Option<PathBuf>,
    pub trusted_proxies: Option<Vec<String>>,
    pub url_cache_entries: Option<usize>,
    pub tombstone_refresh: Option<HumanDuration>,
    pub admin_listen: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    pub storage_class_refresh: Option<HumanDuration>,
    pub restore_days: Option<u32>,
    pub restore_tier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawS3 {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub addressing_style: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUploader {
    pub enabled: Option<bool>,
    pub settle: Option<HumanDuration>,
    pub rename_is_ready: Option<bool>,
    pub rescan_interval: Option<HumanDuration>,
    pub concurrency: Option<usize>,
    pub multipart_threshold: Option<HumanSize>,
    pub part_size: Option<HumanSize>,
    pub max_attempts: Option<usize>,
    pub retry_min_delay: Option<HumanDuration>,
    pub retry_max_delay: Option<HumanDuration>,
    pub cache_control: Option<String>,
    pub abandoned_upload_age: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMount {
    pub prefix: Option<String>,
    pub root: Option<PathBuf>,
    pub bucket: Option<String>,
    pub key_prefix: Option<String>,
    pub url: Option<String>,
    pub public_base_url: Option<String>,
    pub expires: Option<HumanDuration>,
    pub window: Option<HumanDuration>,
    pub redirect_max_age: Option<HumanDuration>,
    pub response_content_disposition: Option<String>,
    pub response_content_type: Option<String>,
    pub response_cache_control: Option<String>,
    pub finalize: Option<String>,
    pub archive_root: Option<PathBuf>,
    pub finalize_grace: Option<HumanDuration>,
    pub archive_retention: Option<HumanDuration>,
    pub ignore: Option<Vec<String>>,
    pub serve_ignored: Option<bool>,
    pub serve_archive_when_s3_down: Option<bool>,
    pub tombstone_ttl: Option<HumanDuration>,
    pub tombstone_status: Option<u16>,
    pub upload: Option<bool>,
    pub access: Option<RawAccess>,
    pub cache: Option<RawCache>,
}

/// `[mount.access]`: signed-link access control for one mount (docs/signed-links.md).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAccess {
    pub enabled: Option<bool>,
    pub sign_with: Option<String>,
    pub max_link_ttl: Option<HumanDuration>,
    pub keys: Vec<RawLinkKey>,
}

/// One `[[mount.access.keys]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLinkKey {
    pub id: Option<String>,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
}

/// `[mount.cache]`: the hot-object cache of one mount (docs/cache.md).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub dir: Option<PathBuf>,
    pub max_size: Option<HumanSize>,
    pub max_files: Option<u64>,
    pub min_hits: Option<u32>,
    pub window: Option<HumanDuration>,
    pub max_object_size: Option<HumanSize>,
    pub high_watermark: Option<String>,
    pub low_watermark: Option<String>,
    pub revalidate: Option<HumanDuration>,
    pub check_interval: Option<HumanDuration>,
    pub fill_concurrency: Option<usize>,
    pub fill_bandwidth: Option<HumanSize>,
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: a misspelled key (`keyprefix`) silently falls back to a default, so they are
// errors unless the operator asks for leniency; the message suggests the closest known key.

/// The field names a `Deserialize` struct accepts, as serde hands them to the deserializer:
/// taken from the types themselves so a key added later is suggested without a list to keep.
pub(super) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field names taken")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Grab {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut g = Grab(None);
    let _ = T::deserialize(&mut g);
    g.0.unwrap_or(&[])
}

/// The keys valid beside an unknown key, from its dotted path (`mount.0.access.keyz`).
fn known_siblings(path: &str) -> &'static [&'static str] {
    let sections: Vec<&str> = path
        .split('.')
        // `?` is how serde_ignored names the inside of an `Option` (`[mount.cache]`).
        .filter(|s| !s.is_empty() && *s != "?" && !s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let parents = &sections[..sections.len().saturating_sub(1)];
    match parents {
        [] => field_names::<RawConfig>(),
        ["server"] => field_names::<RawServer>(),
        ["log"] => field_names::<RawLog>(),
        ["s3"] => field_names::<RawS3>(),
        ["uploader"] => field_names::<RawUploader>(),
        ["mount"] => field_names::<RawMount>(),
        ["mount", "access"] => field_names::<RawAccess>(),
        ["mount", "access", "keys"] => field_names::<RawLinkKey>(),
        ["mount", "cache"] => field_names::<RawCache>(),
        _ => &[],
    }
}

/// Edit distance (insertions, deletions, substitutions) between two short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key an unknown one was probably meant to be: the same letters without `_`/`-`
/// or case, else the closest within a third of its length.
pub fn suggest_key(path: &str) -> Option<&'static str> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let known = known_siblings(path);
    if let Some(k) = known.iter().find(|k| norm(k) == norm(leaf)) {
        return Some(k);
    }
    let limit = (leaf.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&leaf.to_lowercase(), k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// How an unknown key is reported: the key, and the one it probably meant.
pub fn describe_unknown_key(path: &str) -> String {
    match suggest_key(path) {
        Some(k) => format!("unknown config key `{path}`: did you mean `{k}`?"),
        None => format!(
            "unknown config key `{path}` (check its spelling against examples/stowaway.toml)"
        ),
    }
}

/// Parses the file as TOML first: the `config` crate reports numbers out of range without a
/// line, and its syntax errors quote the offending line, which may hold a secret. This names
/// the line and column and never quotes the file.
pub(super) fn check_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Load(format!("cannot read {}: {e}", path.display())))?;
    let e = match toml::from_str::<toml::Table>(&text) {
        Ok(table) => return Ok(table),
        Err(e) => e,
    };
    let at = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(&text);
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            format!(" at line {line}, column {column}")
        }
        None => String::new(),
    };
    Err(ConfigError::Load(format!(
        "TOML parse error{at}: {} in {}",
        without_value(e.message().trim_end()),
        path.display()
    )))
}

/// The message of a load error without the offending value: type errors quote it (`string
/// "…"`, `` integer `…` ``), and the value may be a secret in the wrong place.
pub(super) fn describe_load_error(e: &::config::ConfigError) -> String {
    use ::config::ConfigError as E;
    let at = |key: &Option<String>, origin: &Option<String>| {
        let mut s = String::new();
        if let Some(k) = key {
            // The config crate joins `mount[0]` and `access` without the dot.
            let mut dotted = String::with_capacity(k.len() + 4);
            let mut after_index = false;
            for c in k.chars() {
                if after_index && c != '.' && c != '[' {
                    dotted.push('.');
                }
                after_index = c == ']';
                dotted.push(c);
            }
            s.push_str(&format!(" for key `{dotted}`"));
        }
        if let Some(o) = origin {
            s.push_str(&format!(" in {o}"));
        }
        s
    };
    match e {
        E::Type {
            origin,
            unexpected,
            expected,
            key,
        } => {
            // `Unexpected` prints its kind, then the value in quotes or backticks.
            let found = unexpected.to_string();
            let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
            format!(
                "invalid type: expected {expected}, found a {kind} (value not shown){}",
                at(key, origin)
            )
        }
        E::At { error, origin, key } => {
            format!("{}{}", describe_load_error(error), at(key, origin))
        }
        E::Message(m) => without_value(m),
        E::Foreign(f) => without_value(&f.to_string()),
        // Syntax errors are reported by `check_toml` first, with a line and no quote.
        E::FileParse { uri, .. } => format!(
            "the file is not valid TOML{}",
            uri.as_deref()
                .map(|u| format!(" in {u}"))
                .unwrap_or_default()
        ),
        other => without_value(&other.to_string()),
    }
}

/// Drops the value from serde's `invalid type: <kind> <value>, expected <what>` messages (and
/// `invalid value` / `unknown variant`). The real `, expected ` is the last one: the value
/// comes before it, the schema after.
pub(super) fn without_value(m: &str) -> String {
    for label in [
        "invalid type",
        "invalid value",
        "unknown variant",
        "invalid length",
    ] {
        if m.starts_with(label) {
            return match m.rsplit_once(", expected ") {
                Some((_, what)) => format!("{label}: expected {what} (value not shown)"),
                None => format!("{label} (value not shown)"),
            };
        }
    }
    m.to_string()
}
