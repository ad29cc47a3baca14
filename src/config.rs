//! Configuration: defaults, then a TOML file, then `STOWAWAY__SECTION__KEY` environment
//! variables, then CLI overrides — parsed into [`RawConfig`] and validated into [`Settings`].
//!
//! Every validation error names the key, the bad value and the fix.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::frontauth::{FrontAuthSettings, Listen};
use crate::paths::MountPrefix;

/// The environment variable prefix: `STOWAWAY__SERVER__LISTEN=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "STOWAWAY";

/// Where the configuration is read from when `--config` (or `STOWAWAY_CONFIG`) is absent: the
/// path the Debian package installs and the shipped unit uses.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/stowaway/stowaway.toml";

/// S3 refuses presigned URLs that live longer than seven days.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `access.max_link_ttl`: a link outlives its sharing for at most a week, so a leaked
/// or mistakenly long link (and one minted with a key later found stolen) stops working
/// within the usual key-rotation period.
pub const DEFAULT_MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why the configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or parsed.
    #[error("cannot load configuration: {0}")]
    Load(String),
    /// A value is present but wrong.
    #[error("invalid config: `{key}` = {value}: {problem}\n  fix: {fix}")]
    Invalid {
        key: String,
        value: String,
        problem: String,
        fix: String,
    },
}

pub(crate) fn invalid(
    key: impl Into<String>,
    value: impl fmt::Debug,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: format!("{value:?}"),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// A secret string: never shown by `Debug`, `Display` or `print-config`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

// ---------------------------------------------------------------------------------------------
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
    pub verdict_ttl: Option<String>,
    pub metrics_listen: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub s3_probe_interval: Option<String>,
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub front_secret_file: Option<PathBuf>,
    pub trusted_proxies: Option<Vec<String>>,
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
    pub settle: Option<String>,
    pub rename_is_ready: Option<bool>,
    pub rescan_interval: Option<String>,
    pub concurrency: Option<usize>,
    pub multipart_threshold: Option<String>,
    pub part_size: Option<String>,
    pub max_attempts: Option<usize>,
    pub retry_min_delay: Option<String>,
    pub retry_max_delay: Option<String>,
    pub cache_control: Option<String>,
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
    pub expires: Option<String>,
    pub window: Option<String>,
    pub redirect_max_age: Option<String>,
    pub response_content_disposition: Option<String>,
    pub response_content_type: Option<String>,
    pub response_cache_control: Option<String>,
    pub finalize: Option<String>,
    pub archive_root: Option<PathBuf>,
    pub finalize_grace: Option<String>,
    pub ignore: Option<Vec<String>>,
    pub serve_ignored: Option<bool>,
    pub serve_archive_when_s3_down: Option<bool>,
    pub upload: Option<bool>,
    pub access: Option<RawAccess>,
}

/// `[mount.access]`: signed-link access control for one mount (docs/signed-links.md).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAccess {
    pub enabled: Option<bool>,
    pub sign_with: Option<String>,
    pub max_link_ttl: Option<String>,
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

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct CliOverrides {
    pub listen: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

/// The result of loading: the raw config plus the keys nobody understood.
#[derive(Debug)]
pub struct Loaded {
    pub raw: RawConfig,
    /// Dotted paths of keys present in the file or environment that stowaway does not know.
    pub unknown_keys: Vec<String>,
}

/// Reads defaults, the TOML file (if any), `STOWAWAY__*` variables and CLI overrides.
pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<Loaded, ConfigError> {
    let mut b = config::Config::builder();
    if let Some(path) = file {
        if !path.is_file() {
            let what = if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            return Err(ConfigError::Load(format!(
                "no config file at {} ({what})\n  fix: create it from examples/stowaway.toml (the Debian package installs one), or pass --config PATH",
                path.display()
            )));
        }
        let table = check_toml(path)?;
        check_inline_secrets(path, &table)?;
        b = b.add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    b = b.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__"),
    );
    let set = |b: config::ConfigBuilder<config::builder::DefaultState>,
               k: &str,
               v: &Option<String>| match v {
        Some(v) => b.set_override(k, v.as_str()),
        None => Ok(b),
    };
    b = set(b, "server.listen", &cli.listen).map_err(|e| ConfigError::Load(e.to_string()))?;
    b = set(b, "log.format", &cli.log_format).map_err(|e| ConfigError::Load(e.to_string()))?;
    b = set(b, "log.level", &cli.log_level).map_err(|e| ConfigError::Load(e.to_string()))?;
    let cfg = b
        .build()
        .map_err(|e| ConfigError::Load(describe_load_error(&e)))?;
    let mut unknown_keys = Vec::new();
    let mut raw: RawConfig = serde_ignored::deserialize(cfg, |p| unknown_keys.push(p.to_string()))
        .map_err(|e| ConfigError::Load(describe_load_error(&e)))?;
    // The AWS tools' own variables name the region too; an operator who set them for the
    // CLI expects stowaway to follow. Only an absent s3.region is filled.
    if raw.s3.region.as_deref().is_none_or(str::is_empty) {
        raw.s3.region = region_from_env(|k| std::env::var(k).ok());
    }
    Ok(Loaded { raw, unknown_keys })
}

/// `AWS_REGION`, else `AWS_DEFAULT_REGION` (empty values count as unset).
pub fn region_from_env(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| get(k))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: a misspelled key (`keyprefix`) silently falls back to a default, so they are
// errors unless the operator asks for leniency; the message suggests the closest known key.

/// The field names a `Deserialize` struct accepts, as serde hands them to the deserializer:
/// taken from the types themselves so a key added later is suggested without a list to keep.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
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
        .filter(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
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
fn check_toml(path: &Path) -> Result<toml::Table, ConfigError> {
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

/// The dotted keys of secrets written inline in the file (not in a `*_file`).
fn inline_secret_keys(table: &toml::Table) -> Vec<String> {
    let mut keys = Vec::new();
    if table
        .get("s3")
        .and_then(|s| s.get("secret_access_key"))
        .is_some()
    {
        keys.push("s3.secret_access_key".to_string());
    }
    let mounts = table.get("mount").and_then(toml::Value::as_array);
    for (i, m) in mounts.into_iter().flatten().enumerate() {
        let link_keys = m
            .get("access")
            .and_then(|a| a.get("keys"))
            .and_then(toml::Value::as_array);
        for (j, k) in link_keys.into_iter().flatten().enumerate() {
            if k.get("secret").is_some() {
                keys.push(format!("mount[{i}].access.keys[{j}].secret"));
            }
        }
    }
    keys
}

/// An inline secret is exactly as private as the file holding it, so a config file with one
/// is held to the rule of [`read_secret_file`]: nobody but its owner may read it. Secrets from
/// the environment have no file and are not checked here.
fn check_inline_secrets(path: &Path, table: &toml::Table) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let keys = inline_secret_keys(table);
    let Some(key) = keys.first() else {
        return Ok(());
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::Load(format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    Err(invalid(
        key,
        "<redacted>",
        format!(
            "the secret is written inline in the config file {}, which is readable by group or others",
            path.display()
        ),
        format!(
            "run: chmod 600 {}, or move the secret into {key}_file (mode 0600)",
            path.display()
        ),
    ))
}

/// The message of a load error without the offending value: type errors quote it (`string
/// "…"`, `` integer `…` ``), and the value may be a secret in the wrong place.
fn describe_load_error(e: &config::ConfigError) -> String {
    use config::ConfigError as E;
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
fn without_value(m: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// Checked form.

/// Which front server stowaway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontServer {
    /// nginx: local files are answered with `X-Accel-Redirect`.
    Nginx,
    /// lighttpd: local files are answered with `X-Sendfile`.
    Lighttpd,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How bucket URLs are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressingStyle {
    /// `https://bucket.s3.region.amazonaws.com/key`
    Virtual,
    /// `https://s3.region.amazonaws.com/bucket/key`
    Path,
}

/// What kind of URL a redirect carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlKind {
    /// Unsigned URL (public bucket or CDN).
    Public,
    /// SigV4 query-string presigned URL.
    Presigned,
}

/// What happens to a local file once its object is verified in S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Finalize {
    /// Move it under `archive_root`, same relative path.
    Archive,
    /// Remove it.
    Delete,
    /// Leave it in place (upload only).
    Keep,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSettings {
    /// `IP:port`, or `unix:/path` for a Unix socket.
    pub listen: Listen,
    pub workers: usize,
    pub internal_prefix: String,
    pub front: FrontServer,
    /// Send `X-S3-Location` with local answers so nginx can fall back without a second request.
    pub fallback_header: bool,
    /// Longest time nginx may cache an auth_request verdict (`X-Accel-Expires`); zero disables.
    #[serde(with = "human_duration")]
    pub verdict_ttl: Duration,
    /// Separate listener for `/metrics`; `None` serves it on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// On SIGTERM/SIGINT: how long in-flight requests and uploads get to finish.
    #[serde(with = "human_duration")]
    pub shutdown_timeout: Duration,
    /// How often readiness probes S3 (HeadBucket per bucket); zero disables the probe.
    #[serde(with = "human_duration")]
    pub s3_probe_interval: Duration,
    /// Who counts as the front server (`socket_mode`, `socket_group`, `front_secret_file`,
    /// `trusted_proxies`).
    #[serde(flatten)]
    pub front_auth: FrontAuthSettings,
}

/// Log settings.
#[derive(Debug, Clone, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// Where objects live and how to reach them.
#[derive(Debug, Clone, Serialize)]
pub struct S3Settings {
    pub region: Option<String>,
    /// Scheme + authority (+ optional path), without trailing slash, e.g. `http://127.0.0.1:8014`.
    pub endpoint: Option<String>,
    pub addressing_style: AddressingStyle,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
}

/// Background migration settings.
#[derive(Debug, Clone, Serialize)]
pub struct UploaderSettings {
    pub enabled: bool,
    #[serde(with = "human_duration")]
    pub settle: Duration,
    pub rename_is_ready: bool,
    #[serde(with = "human_duration")]
    pub rescan_interval: Duration,
    pub concurrency: usize,
    #[serde(with = "human_size")]
    pub multipart_threshold: u64,
    #[serde(with = "human_size")]
    pub part_size: u64,
    pub max_attempts: usize,
    #[serde(with = "human_duration")]
    pub retry_min_delay: Duration,
    #[serde(with = "human_duration")]
    pub retry_max_delay: Duration,
    pub cache_control: Option<String>,
}

/// How the 302 URL for a mount is built.
#[derive(Debug, Clone, Serialize)]
pub struct UrlSettings {
    #[serde(rename = "url")]
    pub kind: UrlKind,
    /// For public URLs: a CDN or custom domain that replaces the bucket URL.
    pub public_base_url: Option<String>,
    /// Validity a client is guaranteed after it receives a presigned URL.
    #[serde(with = "human_duration")]
    pub expires: Duration,
    /// Signing-time window for byte-identical URLs; zero disables.
    #[serde(with = "human_duration")]
    pub window: Duration,
    /// `Cache-Control: max-age` for redirects to unsigned URLs.
    #[serde(with = "human_duration")]
    pub redirect_max_age: Duration,
    pub response_content_disposition: Option<String>,
    pub response_content_type: Option<String>,
    pub response_cache_control: Option<String>,
}

/// One URL prefix mapped to a local root and a bucket location.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub prefix: MountPrefix,
    /// Canonical (symlink-free) absolute root directory.
    pub root: PathBuf,
    pub bucket: String,
    /// Prepended to the relative key; empty or ending in `/`.
    pub key_prefix: String,
    /// Shown flat, as it is written in the file.
    #[serde(flatten)]
    pub url: UrlSettings,
    pub upload: bool,
    pub finalize: Finalize,
    pub archive_root: Option<PathBuf>,
    #[serde(with = "human_duration")]
    pub finalize_grace: Duration,
    pub ignore: Vec<String>,
    /// Serve files the ignore patterns match (default: answer 404 for them).
    pub serve_ignored: bool,
    /// While the S3 probe reports S3 unreachable, answer a migrated file from its copy under
    /// `archive_root` (if it is still there) instead of redirecting to S3.
    pub serve_archive_when_s3_down: bool,
}

/// The validated configuration every part of stowaway runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub s3: S3Settings,
    pub uploader: UploaderSettings,
    #[serde(rename = "mount")]
    pub mounts: Vec<Mount>,
    /// Signed-link access control, for the mounts that have a `[mount.access]` section.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessSettings>,
}

/// Signed-link access control of one mount (`[mount.access]`).
#[derive(Debug, Clone, Serialize)]
pub struct AccessSettings {
    /// Index of the mount in [`Settings::mounts`].
    pub mount: usize,
    /// The mount's prefix, for humans reading `print-config`.
    pub prefix: String,
    /// Id of the key `stowaway sign` uses.
    pub sign_with: String,
    /// Longest a link may still be valid: `sign` refuses to mint and verification refuses
    /// links whose expiry lies further in the future.
    #[serde(with = "human_duration")]
    pub max_link_ttl: Duration,
    /// Every accepted key (the signing key and those still being rotated out).
    pub keys: Vec<LinkKey>,
}

/// A link-signing key; the secret is redacted everywhere.
#[derive(Debug, Clone, Serialize)]
pub struct LinkKey {
    pub id: String,
    pub secret: Secret,
}

impl Settings {
    /// Whether any mount redirects to presigned URLs (and so needs credentials at start-up).
    pub fn needs_signing(&self) -> bool {
        self.mounts.iter().any(|m| m.url.kind == UrlKind::Presigned)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml_string(self)
    }
}

fn toml_string(s: &Settings) -> String {
    // serde_json -> a TOML-ish rendering would lose structure; render via serde_json Value into TOML by hand.
    let v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    let mut out = String::new();
    render_toml(&mut out, "", &v);
    out
}

fn render_toml(out: &mut String, path: &str, v: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = v else { return };
    // scalars first, then tables, then arrays of tables
    for (k, val) in map {
        match val {
            Value::Object(_) => {}
            Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {}
            Value::Null => {}
            other => out.push_str(&format!("{k} = {}\n", toml_scalar(other))),
        }
    }
    for (k, val) in map {
        let sub = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match val {
            Value::Object(_) => {
                out.push_str(&format!("\n[{sub}]\n"));
                render_toml(out, &sub, val);
            }
            Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {
                for item in a {
                    out.push_str(&format!("\n[[{sub}]]\n"));
                    render_toml(out, &sub, item);
                }
            }
            _ => {}
        }
    }
}

fn toml_scalar(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_scalar).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

mod human_size {
    /// Exact, and readable back by `parse_size`: "64MiB", "1GiB", "1000B".
    pub fn serialize<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        let units = [
            (1u64 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        let text = units
            .iter()
            .find(|(u, _)| *n > 0 && n.is_multiple_of(*u))
            .map_or_else(|| format!("{n}B"), |(u, name)| format!("{}{name}", n / u));
        s.serialize_str(&text)
    }
}

mod human_duration {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"7d"`; a bare number is seconds.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(t).map_err(|e| {
        invalid(
            key,
            s,
            format!("not a duration ({e})"),
            "write a number with a unit, e.g. \"30s\", \"5m\", \"1h\"",
        )
    })
}

/// Parses `"64MiB"`, `"8 MB"`, `"1048576"`.
pub fn parse_size(key: &str, s: &str) -> Result<u64, ConfigError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            invalid(
                key,
                s,
                format!("not a size ({e})"),
                "write a number with a unit, e.g. \"64MiB\", \"8MB\"",
            )
        })
}

fn dur(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        Some(s) => parse_duration(key, s),
        None => Ok(default),
    }
}

fn size(key: &str, v: &Option<String>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(s) => parse_size(key, s),
        None => Ok(default),
    }
}

fn validate_internal_prefix(p: &str) -> Result<String, ConfigError> {
    let ok = p.starts_with('/')
        && p.ends_with('/')
        && p.len() > 2
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b))
        && !p.contains("//")
        && !p.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(p.to_string())
    } else {
        Err(invalid(
            "server.internal_prefix",
            p,
            "must be an absolute URL path of letters, digits, `_`, `-`, `.`, starting and ending with `/`",
            "use e.g. \"/_stowaway_local/\" and the same value in the nginx `internal` location",
        ))
    }
}

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

fn validate_bucket(key: &str, b: &str) -> Result<String, ConfigError> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(b.to_string())
    } else {
        Err(invalid(
            key,
            b,
            "not a valid S3 bucket name",
            "use 3-63 lower-case letters, digits, `-` or `.`, starting and ending with a letter or digit",
        ))
    }
}

fn validate_key_prefix(key: &str, p: &str) -> Result<String, ConfigError> {
    if p.is_empty() {
        return Ok(String::new());
    }
    let bad = p.starts_with('/')
        || !p.ends_with('/')
        || p.contains("//")
        || p.split('/').any(|s| s == "." || s == "..")
        || p.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        return Err(invalid(
            key,
            p,
            "must be empty or a relative prefix ending in `/` without `.`/`..` segments",
            "use e.g. \"static/\"",
        ));
    }
    Ok(p.to_string())
}

fn validate_base_url(key: &str, u: &str) -> Result<String, ConfigError> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !u.contains(['?', '#', ' '])
                && !u.chars().any(char::is_control) =>
        {
            let mut s = u.to_string();
            if !s.ends_with('/') {
                s.push('/');
            }
            Ok(s)
        }
        _ => Err(invalid(
            key,
            u,
            "must be an http(s) URL",
            "use e.g. \"https://cdn.example.com/\"",
        )),
    }
}

fn header_value_ok(key: &str, v: &str) -> Result<String, ConfigError> {
    if v.chars().any(|c| c.is_control()) || v.is_empty() {
        return Err(invalid(
            key,
            v,
            "must be a non-empty single-line value",
            "remove line breaks and control characters",
        ));
    }
    Ok(v.to_string())
}

fn canonical_dir(key: &str, p: &Path, what: &str, fs: FsChecks) -> Result<PathBuf, ConfigError> {
    if !p.is_absolute() {
        return Err(invalid(
            key,
            p,
            "must be an absolute path",
            format!("write the full path of the {what}"),
        ));
    }
    if fs == FsChecks::Skip {
        return Ok(p.components().collect());
    }
    let c = std::fs::canonicalize(p).map_err(|e| {
        invalid(
            key,
            p,
            format!("cannot open it ({e})"),
            format!("create the {what} or fix the path"),
        )
    })?;
    if !c.is_dir() {
        return Err(invalid(
            key,
            p,
            "is not a directory",
            format!("point it at the {what}"),
        ));
    }
    Ok(c)
}

/// Whether files can be created in `dir`, by trying: permission bits do not tell for root, nor
/// for a read-only mount. The probe is named like an archive temp file, so if it is ever left
/// behind the uploader's start-up clean-up removes it.
fn check_writable(key: &str, dir: &Path) -> Result<(), ConfigError> {
    let probe = dir.join(format!(
        "{}{}.{:08x}.check",
        crate::uploader::finalize::TEMP_PREFIX,
        std::process::id(),
        fastrand::u32(..)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(invalid(
            key,
            dir,
            format!("the uploader cannot create files in it ({e})"),
            "make it writable for the user stowaway runs as (and not a read-only mount), or use finalize = \"delete\" / \"keep\"",
        )),
    }
}

/// Whether validation looks at the file system (roots exist, are directories; paths are
/// canonicalised). Generating a front-server config on another machine skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsChecks {
    Check,
    Skip,
}

/// Checks a loaded raw config and turns it into [`Settings`].
pub fn validate(raw: &RawConfig) -> Result<Settings, ConfigError> {
    validate_with(raw, FsChecks::Check)
}

/// [`validate`], optionally without touching the file system.
pub fn validate_with(raw: &RawConfig, fs: FsChecks) -> Result<Settings, ConfigError> {
    let s = &raw.server;
    let listen_s = s.listen.clone().unwrap_or_else(|| "127.0.0.1:8700".into());
    let listen = crate::frontauth::parse_listen(&listen_s, fs)?;
    let front_auth = crate::frontauth::validate(s, &listen, fs)?;
    let metrics_listen = match s.metrics_listen.as_deref() {
        None | Some("") => None,
        Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "server.metrics_listen",
                a,
                "not an IP:port address",
                "use e.g. \"127.0.0.1:9700\", or remove it to serve /metrics on server.listen",
            )
        })?),
    };
    if metrics_listen.is_some() && metrics_listen == listen.tcp() {
        return Err(invalid(
            "server.metrics_listen",
            listen.to_string(),
            "the same address as server.listen",
            "use another port, or remove it to serve /metrics on server.listen",
        ));
    }
    let workers = s.workers.unwrap_or(0);
    if workers > 256 {
        return Err(invalid(
            "server.workers",
            workers,
            "too many workers",
            "use 0 (one per core) or a small number",
        ));
    }
    let internal_prefix =
        validate_internal_prefix(s.internal_prefix.as_deref().unwrap_or("/_stowaway_local/"))?;
    let front = match s.front.as_deref().unwrap_or("nginx") {
        "nginx" => FrontServer::Nginx,
        "lighttpd" => FrontServer::Lighttpd,
        other => {
            return Err(invalid(
                "server.front",
                other,
                "unknown front server",
                "use \"nginx\" or \"lighttpd\"",
            ));
        }
    };

    let log = LogSettings {
        format: match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    other,
                    "unknown log format",
                    "use \"text\" or \"json\"",
                ));
            }
        },
        level: raw.log.level.clone().unwrap_or_else(|| "info".into()),
    };
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        return Err(invalid(
            "log.level",
            &log.level,
            "not a log filter",
            "use \"error\", \"warn\", \"info\", \"debug\" or a RUST_LOG-style filter",
        ));
    }

    let r = &raw.s3;
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
    let s3 = S3Settings {
        region,
        endpoint,
        addressing_style,
        access_key_id: r.access_key_id.clone(),
        secret_access_key: secret,
    };

    let u = &raw.uploader;
    let uploader = UploaderSettings {
        enabled: u.enabled.unwrap_or(true),
        settle: dur("uploader.settle", &u.settle, Duration::from_secs(5))?,
        rename_is_ready: u.rename_is_ready.unwrap_or(false),
        rescan_interval: dur(
            "uploader.rescan_interval",
            &u.rescan_interval,
            Duration::from_secs(600),
        )?,
        concurrency: u.concurrency.unwrap_or(4),
        multipart_threshold: size(
            "uploader.multipart_threshold",
            &u.multipart_threshold,
            64 << 20,
        )?,
        part_size: size("uploader.part_size", &u.part_size, 16 << 20)?,
        max_attempts: u.max_attempts.unwrap_or(5),
        retry_min_delay: dur(
            "uploader.retry_min_delay",
            &u.retry_min_delay,
            Duration::from_millis(500),
        )?,
        retry_max_delay: dur(
            "uploader.retry_max_delay",
            &u.retry_max_delay,
            Duration::from_secs(30),
        )?,
        cache_control: u
            .cache_control
            .as_deref()
            .map(|v| header_value_ok("uploader.cache_control", v))
            .transpose()?,
    };
    if uploader.concurrency == 0 || uploader.concurrency > 256 {
        return Err(invalid(
            "uploader.concurrency",
            uploader.concurrency,
            "must be between 1 and 256",
            "use e.g. 4",
        ));
    }
    if uploader.max_attempts == 0 {
        return Err(invalid(
            "uploader.max_attempts",
            0,
            "must be at least 1",
            "use e.g. 5",
        ));
    }
    if uploader.part_size < (5 << 20) || uploader.part_size > (5 << 30) {
        return Err(invalid(
            "uploader.part_size",
            uploader.part_size,
            "S3 parts must be 5 MiB to 5 GiB",
            "use e.g. \"16MiB\"",
        ));
    }
    if uploader.multipart_threshold < uploader.part_size {
        return Err(invalid(
            "uploader.multipart_threshold",
            uploader.multipart_threshold,
            "smaller than uploader.part_size",
            "make the threshold at least the part size",
        ));
    }
    if uploader.rescan_interval < Duration::from_secs(1) {
        return Err(invalid(
            "uploader.rescan_interval",
            "<1s",
            "too short",
            "use at least \"1s\" (minutes in production)",
        ));
    }

    if raw.mounts.is_empty() {
        return Err(invalid(
            "mount",
            "[]",
            "no mounts are configured",
            "add a [[mount]] table with prefix, root and bucket (see examples/stowaway.toml)",
        ));
    }
    let mut mounts: Vec<Mount> = Vec::with_capacity(raw.mounts.len());
    let mut access: Vec<AccessSettings> = Vec::new();
    for (i, m) in raw.mounts.iter().enumerate() {
        let k = |f: &str| format!("mount[{i}].{f}");
        let prefix_s = m.prefix.as_deref().ok_or_else(|| {
            invalid(
                k("prefix"),
                "<unset>",
                "missing",
                "set the public URL prefix, e.g. \"/static/\"",
            )
        })?;
        let prefix = MountPrefix::parse(prefix_s).map_err(|problem| {
            invalid(
                k("prefix"),
                prefix_s,
                problem,
                "use an absolute path of plain segments ending in `/`, e.g. \"/static/\"",
            )
        })?;
        if prefix.as_str().starts_with(internal_prefix.as_str())
            || internal_prefix.starts_with(prefix.as_str())
        {
            return Err(invalid(
                k("prefix"),
                prefix_s,
                "overlaps server.internal_prefix",
                "use distinct prefixes",
            ));
        }
        for (j, other) in mounts.iter().enumerate() {
            if other.prefix.as_str().starts_with(prefix.as_str())
                || prefix.as_str().starts_with(other.prefix.as_str())
            {
                return Err(invalid(
                    k("prefix"),
                    prefix_s,
                    format!("overlaps mount[{j}].prefix {:?}", other.prefix.as_str()),
                    "give every mount its own, non-nested prefix",
                ));
            }
        }
        let root_raw = m.root.as_deref().ok_or_else(|| {
            invalid(
                k("root"),
                "<unset>",
                "missing",
                "set the local directory the web app writes to",
            )
        })?;
        let root = canonical_dir(&k("root"), root_raw, "local root directory", fs)?;
        let bucket_s = m
            .bucket
            .as_deref()
            .ok_or_else(|| invalid(k("bucket"), "<unset>", "missing", "set the S3 bucket name"))?;
        let bucket = validate_bucket(&k("bucket"), bucket_s)?;
        let key_prefix =
            validate_key_prefix(&k("key_prefix"), m.key_prefix.as_deref().unwrap_or(""))?;
        let kind = match m.url.as_deref().unwrap_or("presigned") {
            "presigned" => UrlKind::Presigned,
            "public" => UrlKind::Public,
            other => {
                return Err(invalid(
                    k("url"),
                    other,
                    "unknown URL kind",
                    "use \"presigned\" or \"public\"",
                ));
            }
        };
        let public_base_url = m
            .public_base_url
            .as_deref()
            .map(|u| validate_base_url(&k("public_base_url"), u))
            .transpose()?;
        if public_base_url.is_some() && kind == UrlKind::Presigned {
            return Err(invalid(
                k("public_base_url"),
                m.public_base_url.as_deref().unwrap_or(""),
                "a public base URL cannot carry a SigV4 signature",
                "set url = \"public\" or remove public_base_url",
            ));
        }
        let expires = dur(&k("expires"), &m.expires, Duration::from_secs(3600))?;
        let window = dur(&k("window"), &m.window, Duration::from_secs(300))?;
        if kind == UrlKind::Presigned {
            if expires < Duration::from_secs(1) {
                return Err(invalid(
                    k("expires"),
                    m.expires.as_deref().unwrap_or(""),
                    "must be at least 1s",
                    "use e.g. \"1h\"",
                ));
            }
            if expires + window > MAX_PRESIGN_EXPIRY {
                return Err(invalid(
                    k("expires"),
                    m.expires.as_deref().unwrap_or("1h"),
                    format!(
                        "expires + window = {} is longer than S3's 7-day limit for presigned URLs",
                        humantime::format_duration(expires + window)
                    ),
                    "use at most \"7d\" in total, e.g. expires = \"1h\", window = \"5m\"",
                ));
            }
            if s3.region.is_none() {
                return Err(invalid(
                    "s3.region",
                    "<unset>",
                    format!(
                        "mount[{i}] signs its redirects (url = \"presigned\"), which needs the bucket's region"
                    ),
                    "set s3.region (e.g. \"eu-west-1\"), STOWAWAY__S3__REGION or AWS_REGION",
                ));
            }
        }
        let redirect_max_age = dur(
            &k("redirect_max_age"),
            &m.redirect_max_age,
            Duration::from_secs(300),
        )?;
        let hv = |f: &str, v: &Option<String>| {
            v.as_deref().map(|x| header_value_ok(&k(f), x)).transpose()
        };
        let url = UrlSettings {
            kind,
            public_base_url,
            expires,
            window,
            redirect_max_age,
            response_content_disposition: hv(
                "response_content_disposition",
                &m.response_content_disposition,
            )?,
            response_content_type: hv("response_content_type", &m.response_content_type)?,
            response_cache_control: hv("response_cache_control", &m.response_cache_control)?,
        };
        if kind == UrlKind::Public
            && (url.response_content_disposition.is_some()
                || url.response_content_type.is_some()
                || url.response_cache_control.is_some())
        {
            return Err(invalid(
                k("response_content_type"),
                "<set>",
                "response overrides only work inside a signature",
                "set url = \"presigned\" or remove the response_* keys",
            ));
        }
        if s3.region.is_none() && s3.endpoint.is_none() && url.public_base_url.is_none() {
            return Err(invalid(
                "s3.region",
                "<unset>",
                format!(
                    "mount[{i}] needs a bucket URL, which needs the region (or s3.endpoint, or public_base_url)"
                ),
                "set s3.region (e.g. \"eu-west-1\") or AWS_REGION",
            ));
        }
        let finalize = match m.finalize.as_deref().unwrap_or("archive") {
            "archive" => Finalize::Archive,
            "delete" => Finalize::Delete,
            "keep" => Finalize::Keep,
            other => {
                return Err(invalid(
                    k("finalize"),
                    other,
                    "unknown finalize action",
                    "use \"archive\", \"delete\" or \"keep\"",
                ));
            }
        };
        if let Some(a) = m.access.as_ref().filter(|a| a.enabled != Some(false)) {
            access.push(validate_access(i, prefix.as_str(), a, kind)?);
        }
        let upload = m.upload.unwrap_or(true);
        let archive_root = match (&m.archive_root, finalize, upload && uploader.enabled) {
            (Some(a), _, _) => {
                let c = canonical_dir(&k("archive_root"), a, "archive directory", fs)?;
                if c.starts_with(&root) || root.starts_with(&c) {
                    return Err(invalid(
                        k("archive_root"),
                        a,
                        "is inside the root (or contains it)",
                        "put the archive outside the served root, e.g. /srv/site/archive/static",
                    ));
                }
                if fs == FsChecks::Check
                    && finalize == Finalize::Archive
                    && upload
                    && uploader.enabled
                {
                    check_writable(&k("archive_root"), &c)?;
                }
                Some(c)
            }
            (None, Finalize::Archive, true) => {
                return Err(invalid(
                    k("archive_root"),
                    "<unset>",
                    "finalize = \"archive\" needs an archive directory",
                    "set archive_root, or finalize = \"delete\" / \"keep\"",
                ));
            }
            (None, _, _) => None,
        };
        let ignore = m
            .ignore
            .clone()
            .unwrap_or_else(|| vec![".*".into(), "*.tmp".into(), "*.part".into()]);
        for pat in &ignore {
            if pat.is_empty() || pat.contains('/') {
                return Err(invalid(
                    k("ignore"),
                    pat,
                    "patterns match file names, not paths",
                    "use e.g. \".*\", \"*.tmp\"",
                ));
            }
        }
        mounts.push(Mount {
            prefix,
            root,
            bucket,
            key_prefix,
            url,
            upload,
            finalize,
            archive_root,
            finalize_grace: dur(&k("finalize_grace"), &m.finalize_grace, Duration::ZERO)?,
            ignore,
            serve_ignored: m.serve_ignored.unwrap_or(false),
            serve_archive_when_s3_down: m.serve_archive_when_s3_down.unwrap_or(true),
        });
    }
    check_mount_overlaps(&mounts)?;
    Ok(Settings {
        server: ServerSettings {
            listen,
            workers,
            internal_prefix,
            front,
            fallback_header: s.fallback_header.unwrap_or(true),
            verdict_ttl: dur("server.verdict_ttl", &s.verdict_ttl, Duration::from_secs(5))?,
            metrics_listen,
            shutdown_timeout: dur(
                "server.shutdown_timeout",
                &s.shutdown_timeout,
                Duration::from_secs(30),
            )?,
            s3_probe_interval: dur(
                "server.s3_probe_interval",
                &s.s3_probe_interval,
                Duration::from_secs(15),
            )?,
            front_auth,
        },
        log,
        s3,
        uploader,
        mounts,
        access,
    })
}

/// Where a directory really is, for comparing mounts: the longest existing ancestor is
/// canonicalised (so a symlink cannot hide that two paths are one) and the rest, which does
/// not exist and so holds no symlinks, is normalised lexically.
fn resolved_location(p: &Path) -> PathBuf {
    use std::path::Component;
    let comps: Vec<Component<'_>> = p.components().collect();
    let (mut out, rest) = (1..=comps.len())
        .rev()
        .find_map(|n| {
            let head: PathBuf = comps[..n].iter().collect();
            std::fs::canonicalize(head).ok().map(|c| (c, &comps[n..]))
        })
        .unwrap_or_else(|| (PathBuf::new(), &comps[..]));
    for c in rest {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Refuses mounts that reach each other's objects or files: on one bucket, a key prefix that
/// starts with another's lets one mount's URLs (and uploads) reach the other's objects, so an
/// open mount would bypass a signed one; a root or archive root inside (or equal to) another
/// mount's root or archive root serves, uploads or archives the other mount's files.
fn check_mount_overlaps(mounts: &[Mount]) -> Result<(), ConfigError> {
    let name = |m: &Mount| format!("mount {:?}", m.prefix.as_str());
    for (j, b) in mounts.iter().enumerate() {
        for a in &mounts[..j] {
            if a.bucket == b.bucket
                && (a.key_prefix.starts_with(&b.key_prefix)
                    || b.key_prefix.starts_with(&a.key_prefix))
            {
                return Err(invalid(
                    format!("mount[{j}].key_prefix"),
                    &b.key_prefix,
                    format!(
                        "{} and {} overlap: both use bucket {:?}, and key prefix {:?} and key prefix {:?} are equal or one starts with the other (\"\" covers the whole bucket), so URLs and uploads of one mount reach the objects of the other",
                        name(a),
                        name(b),
                        b.bucket,
                        a.key_prefix,
                        b.key_prefix
                    ),
                    format!(
                        "give {} and {} key prefixes where neither starts with the other, e.g. \"static/\" and \"private/\", or separate buckets",
                        name(a),
                        name(b)
                    ),
                ));
            }
        }
    }
    // Every directory a mount owns, resolved once.
    let dirs: Vec<(usize, &str, &Path, PathBuf)> = mounts
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            std::iter::once((i, "root", m.root.as_path()))
                .chain(m.archive_root.as_deref().map(|a| (i, "archive_root", a)))
        })
        .map(|(i, what, p)| (i, what, p, resolved_location(p)))
        .collect();
    for (n, (j, what_b, path_b, real_b)) in dirs.iter().enumerate() {
        for (i, what_a, path_a, real_a) in &dirs[..n] {
            let relation = if real_a == real_b {
                "is the same directory as"
            } else if real_b.starts_with(real_a) {
                "is inside"
            } else if real_a.starts_with(real_b) {
                "contains"
            } else {
                continue;
            };
            let show = |p: &Path, real: &Path| {
                if p == real {
                    format!("{}", p.display())
                } else {
                    format!("{} (really {})", p.display(), real.display())
                }
            };
            let (ma, mb) = (&mounts[*i], &mounts[*j]);
            let fix = if i == j {
                "put the archive outside the served root, e.g. /srv/site/archive/static".to_string()
            } else {
                format!(
                    "give {} and {} separate directories, none inside another: e.g. roots /srv/site/static and /srv/site/private, archives /srv/site/archive/static and /srv/site/archive/private",
                    name(ma),
                    name(mb)
                )
            };
            return Err(invalid(
                format!("mount[{j}].{what_b}"),
                path_b,
                format!(
                    "{} {what_b} {} {relation} {} {what_a} {}, so files of one are served, uploaded or archived through the other",
                    name(mb),
                    show(path_b, real_b),
                    name(ma),
                    show(path_a, real_a),
                ),
                fix,
            ));
        }
    }
    Ok(())
}

fn validate_access(
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
        if !crate::access::valid_key_id(&id) {
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
        if secret.expose().len() < crate::access::MIN_SECRET_BYTES {
            return Err(invalid(
                kk("secret"),
                "<redacted>",
                format!("shorter than {} bytes", crate::access::MIN_SECRET_BYTES),
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
    let max_link_ttl = dur(&k("max_link_ttl"), &a.max_link_ttl, DEFAULT_MAX_LINK_TTL)?;
    if max_link_ttl < Duration::from_secs(1) {
        return Err(invalid(
            k("max_link_ttl"),
            a.max_link_ttl.as_deref().unwrap_or(""),
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

/// Reads a secret from a file, refusing files other users can read.
pub fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        invalid(
            key,
            path,
            format!("cannot read it ({e})"),
            "create the file or fix the path",
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(
            key,
            path,
            "the secret file is readable by group or others",
            format!("run: chmod 600 {}", path.display()),
        ));
    }
    let s = std::fs::read_to_string(path).map_err(|e| {
        invalid(
            key,
            path,
            format!("cannot read it ({e})"),
            "make the file readable by stowaway's user",
        )
    })?;
    let t = s.trim_end_matches(['\n', '\r']);
    if t.is_empty() {
        return Err(invalid(
            key,
            path,
            "the secret file is empty",
            "write the secret into it",
        ));
    }
    Ok(Secret(t.to_string()))
}

/// Loads and validates in one go; unknown keys are returned for the caller to report.
pub fn load_settings(
    file: Option<&Path>,
    cli: &CliOverrides,
    fs: FsChecks,
) -> Result<(Settings, Vec<String>), ConfigError> {
    let loaded = load(file, cli)?;
    let settings = validate_with(&loaded.raw, fs)?;
    Ok((settings, loaded.unknown_keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn raw(text: &str) -> RawConfig {
        toml::from_str(text).unwrap()
    }

    /// `[[mount]]` lines: root, bucket, key prefix and any extra lines.
    fn mount(prefix: &str, root: &Path, bucket: &str, key_prefix: &str, extra: &str) -> String {
        format!(
            "[[mount]]\nprefix = \"{prefix}\"\nroot = \"{}\"\nbucket = \"{bucket}\"\nkey_prefix = \"{key_prefix}\"\n{extra}\n",
            root.display()
        )
    }

    fn config(mounts: &[String]) -> String {
        format!(
            "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n{}",
            mounts.concat()
        )
    }

    fn dirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| {
                let p = base.join(n);
                std::fs::create_dir_all(&p).unwrap();
                p
            })
            .collect()
    }

    /// The error names the key and both mounts (by prefix).
    fn assert_overlap(text: &str, fs: FsChecks, key: &str) {
        let e = validate_with(&raw(text), fs)
            .expect_err(&format!("accepted:\n{text}"))
            .to_string();
        assert!(
            e.contains(&format!("`{key}`"))
                && e.contains("mount \"/static/\"")
                && e.contains("mount \"/private/\"")
                && e.contains("fix: "),
            "{e}"
        );
    }

    #[test]
    fn key_prefixes_on_one_bucket_may_not_nest() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s", "p"]);
        let pair = |b1: &str, k1: &str, b2: &str, k2: &str| {
            config(&[
                mount("/static/", &d[0], b1, k1, "url = \"public\""),
                mount("/private/", &d[1], b2, k2, ""),
            ])
        };
        // The review's case: an open mount over the whole bucket and a signed one inside it.
        for (k1, k2) in [
            ("", "private/"),
            ("private/", ""),
            ("a/", "a/"),
            ("a/", "a/b/"),
            ("a/b/", "a/"),
            ("", ""),
        ] {
            assert_overlap(
                &pair("media", k1, "media", k2),
                FsChecks::Check,
                "mount[1].key_prefix",
            );
        }
        // Siblings, or the same prefix on another bucket, are fine.
        for (b2, k1, k2) in [
            ("media", "a/", "ab/"),
            ("media", "static/", "private/"),
            ("other", "", ""),
        ] {
            let text = pair("media", k1, b2, k2);
            assert!(validate(&raw(&text)).is_ok(), "{text}");
        }
    }

    #[test]
    fn roots_and_archives_may_not_nest_across_mounts() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s", "s/inner", "p", "arch", "arch2", "ab", "a"]);
        let (s, inner, p, arch, arch2, ab, a) = (&d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &d[6]);
        let archive = |dir: &Path| format!("archive_root = \"{}\"", dir.display());
        let cases = [
            // A root inside another mount's root.
            (
                mount("/static/", s, "media", "s/", ""),
                mount("/private/", inner, "media", "p/", ""),
                "mount[1].root",
            ),
            // The same root twice.
            (
                mount("/static/", s, "media", "s/", ""),
                mount("/private/", s, "media", "p/", ""),
                "mount[1].root",
            ),
            // A root containing another mount's root.
            (
                mount("/static/", inner, "media", "s/", ""),
                mount("/private/", s, "media", "p/", ""),
                "mount[1].root",
            ),
            // A signed mount's archive inside an open mount's root.
            (
                mount("/static/", s, "media", "s/", ""),
                mount("/private/", p, "media", "p/", &archive(inner)),
                "mount[1].archive_root",
            ),
            // Two mounts sharing an archive root.
            (
                mount("/static/", s, "media", "s/", &archive(arch)),
                mount("/private/", p, "media", "p/", &archive(arch)),
                "mount[1].archive_root",
            ),
            // A root inside (here: equal to) another mount's archive root.
            (
                mount("/static/", s, "media", "s/", &archive(arch)),
                mount("/private/", arch, "media", "p/", &archive(arch2)),
                "mount[1].root",
            ),
        ];
        for (m0, m1, key) in cases {
            assert_overlap(&config(&[m0, m1]), FsChecks::Check, key);
        }
        // Component-wise, not a string prefix: /x/a and /x/ab are siblings.
        let ok = config(&[
            mount("/static/", a, "media", "s/", &archive(arch)),
            mount("/private/", ab, "media", "p/", &archive(arch2)),
        ]);
        assert!(validate(&raw(&ok)).is_ok(), "{ok}");
    }

    #[test]
    fn a_symlink_cannot_hide_an_overlap() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["site/static/private", "elsewhere"]);
        let link = t.path().join("elsewhere/private-link");
        std::os::unix::fs::symlink(&d[0], &link).unwrap();
        let text = config(&[
            mount("/static/", &t.path().join("site/static"), "media", "s/", ""),
            mount("/private/", &link, "media", "p/", ""),
        ]);
        for fs in [FsChecks::Check, FsChecks::Skip] {
            assert_overlap(&text, fs, "mount[1].root");
        }
        // Unchecked paths are shown as written, plus where they really lead.
        let e = validate_with(&raw(&text), FsChecks::Skip)
            .unwrap_err()
            .to_string();
        assert!(e.contains("really"), "shows where the link leads: {e}");
    }

    #[test]
    fn paths_that_do_not_exist_are_compared_lexically() {
        // gen-config checks a config for another machine: nothing exists here.
        let text = config(&[
            mount(
                "/static/",
                Path::new("/nonexistent-x/site/static"),
                "media",
                "s/",
                "",
            ),
            mount(
                "/private/",
                Path::new("/nonexistent-x/site/private/../static/./p"),
                "media",
                "p/",
                "",
            ),
        ]);
        assert_overlap(&text, FsChecks::Skip, "mount[1].root");
        let ok = config(&[
            mount(
                "/static/",
                Path::new("/nonexistent-x/site/a"),
                "media",
                "s/",
                "",
            ),
            mount(
                "/private/",
                Path::new("/nonexistent-x/site/ab"),
                "media",
                "p/",
                "",
            ),
        ]);
        assert!(validate_with(&raw(&ok), FsChecks::Skip).is_ok());
        assert_eq!(
            resolved_location(Path::new("/nonexistent-x/a/../b/./c")),
            PathBuf::from("/nonexistent-x/b/c")
        );
    }

    #[test]
    fn own_archive_inside_own_root_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s", "s/archive"]);
        let text = config(&[mount(
            "/static/",
            &d[0],
            "media",
            "",
            &format!("archive_root = \"{}\"", d[1].display()),
        )]);
        let e = validate(&raw(&text)).unwrap_err().to_string();
        assert!(e.contains("`mount[0].archive_root`"), "{e}");
        // Also when only the resolved paths show it (a link to inside the root).
        let link = t.path().join("archive-link");
        std::os::unix::fs::symlink(&d[1], &link).unwrap();
        let text = config(&[mount(
            "/static/",
            &d[0],
            "media",
            "",
            &format!("archive_root = \"{}\"", link.display()),
        )]);
        for fs in [FsChecks::Check, FsChecks::Skip] {
            let e = validate_with(&raw(&text), fs).unwrap_err().to_string();
            assert!(e.contains("`mount[0].archive_root`"), "{fs:?}: {e}");
        }
    }

    const LINK_SECRET: &str = "inline-link-secret-0123456789abcdefXYZ";
    const S3_SECRET: &str = "Inline/S3/Secret+0123456789abcdefXYZ";

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn inline_secrets_in_a_readable_file_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s"]);
        let s3 = format!(
            "[s3]\nregion = \"eu-west-1\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"{S3_SECRET}\"\n[uploader]\nenabled = false\n{}",
            mount("/static/", &d[0], "media", "", "")
        );
        let link = config(&[mount(
            "/static/",
            &d[0],
            "media",
            "",
            &format!(
                "[mount.access]\n[[mount.access.keys]]\nid = \"k0\"\nsecret_file = \"/x\"\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{LINK_SECRET}\"\n"
            ),
        )]);
        let cli = CliOverrides::default();
        for (text, key) in [
            (&s3, "s3.secret_access_key"),
            (&link, "mount[0].access.keys[1].secret"),
        ] {
            for mode in [0o644, 0o640, 0o604] {
                let p = write(t.path(), text, mode);
                let e = load(Some(&p), &cli).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("`{key}`"))
                        && e.contains(&format!("chmod 600 {}", p.display()))
                        && e.contains(&format!("{key}_file"))
                        && !e.contains(S3_SECRET)
                        && !e.contains(LINK_SECRET),
                    "{mode:o}: {e}"
                );
            }
            let p = write(t.path(), text, 0o600);
            assert!(load(Some(&p), &cli).is_ok());
        }
        // Secrets only in files: the config file's mode does not matter.
        let p = write(
            t.path(),
            &config(&[mount("/static/", &d[0], "media", "", "")]),
            0o644,
        );
        assert!(load(Some(&p), &cli).is_ok());
    }

    #[test]
    fn type_errors_never_show_the_value() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s"]);
        let base = config(&[mount("/static/", &d[0], "media", "", "")]);
        let cli = CliOverrides::default();
        for (text, key) in [
            (
                base.replace(
                    "[s3]\n",
                    &format!(
                        "[s3]\naccess_key_id = \"AKID\"\nsecret_access_key = [\"{S3_SECRET}\"]\n"
                    ),
                ),
                "s3.secret_access_key",
            ),
            (
                format!(
                    "{base}[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = [\"{LINK_SECRET}\"]\n"
                ),
                "mount[0].access.keys[0].secret",
            ),
            (
                format!("{base}[mount.access]\nkeys = \"{LINK_SECRET}\"\n"),
                "mount[0].access.keys",
            ),
            (
                base.replace(
                    "[uploader]\n",
                    &format!("[uploader]\nconcurrency = \"{S3_SECRET}\"\n"),
                ),
                "uploader.concurrency",
            ),
            (
                base.replace(
                    "[uploader]\n",
                    &format!("[uploader]\nrename_is_ready = \"{S3_SECRET}\"\n"),
                ),
                "uploader.rename_is_ready",
            ),
            (
                base.replace(
                    "[uploader]\n",
                    "[uploader]\nconcurrency = 123456789012345678901234567890123\n",
                ),
                "line 4",
            ),
        ] {
            let p = write(t.path(), &text, 0o600);
            let e = load(Some(&p), &cli).unwrap_err().to_string();
            assert!(e.contains(key), "names {key}: {e}");
            for secret in [S3_SECRET, LINK_SECRET, "123456789012345678901234567890123"] {
                assert!(!e.contains(secret), "value shown: {e}");
            }
        }
        assert_eq!(
            without_value("invalid type: string \"a, expected b\", expected usize"),
            "invalid type: expected usize (value not shown)"
        );
    }

    #[test]
    fn max_link_ttl_defaults_to_a_week_and_must_be_positive() {
        let t = tempfile::tempdir().unwrap();
        let d = dirs(t.path(), &["s"]);
        let with = |extra: &str| {
            config(&[mount(
                "/static/",
                &d[0],
                "media",
                "",
                &format!(
                    "[mount.access]\n{extra}\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{LINK_SECRET}\"\n"
                ),
            )])
        };
        let s = validate(&raw(&with(""))).unwrap();
        assert_eq!(s.access[0].max_link_ttl, DEFAULT_MAX_LINK_TTL);
        assert_eq!(DEFAULT_MAX_LINK_TTL, Duration::from_secs(7 * 86400));
        let s = validate(&raw(&with("max_link_ttl = \"36h\""))).unwrap();
        assert_eq!(s.access[0].max_link_ttl, Duration::from_secs(36 * 3600));
        for bad in ["0s", "soon"] {
            let e = validate(&raw(&with(&format!("max_link_ttl = \"{bad}\""))))
                .unwrap_err()
                .to_string();
            assert!(e.contains("`mount[0].access.max_link_ttl`"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_get_the_closest_known_key() {
        assert_eq!(suggest_key("mount.0.keyprefix"), Some("key_prefix"));
        assert_eq!(suggest_key("mount.0.expirse"), Some("expires"));
        assert_eq!(suggest_key("server.lisen"), Some("listen"));
        assert_eq!(suggest_key("s3.Region"), Some("region"));
        assert_eq!(suggest_key("mount.0.access.keys.1.secert"), Some("secret"));
        assert_eq!(suggest_key("mount.1.access.sign-with"), Some("sign_with"));
        assert_eq!(suggest_key("uploadr"), Some("uploader"));
        assert_eq!(suggest_key("server.completely_different"), None);
        assert_eq!(suggest_key("nosuchsection.key"), None);
        let m = describe_unknown_key("mount.0.keyprefix");
        assert!(m.contains("`mount.0.keyprefix`") && m.contains("did you mean `key_prefix`"));
        // The candidates come from the structs themselves.
        assert!(field_names::<RawMount>().contains(&"archive_root"));
        assert!(field_names::<RawConfig>().contains(&"mount"));
    }

    #[test]
    fn region_falls_back_to_the_aws_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(region_from_env(env(&[])), None);
        assert_eq!(
            region_from_env(env(&[("AWS_DEFAULT_REGION", "eu-central-1")])),
            Some("eu-central-1".into())
        );
        assert_eq!(
            region_from_env(env(&[
                ("AWS_REGION", "us-west-2"),
                ("AWS_DEFAULT_REGION", "eu-central-1")
            ])),
            Some("us-west-2".into())
        );
        assert_eq!(
            region_from_env(env(&[
                ("AWS_REGION", " "),
                ("AWS_DEFAULT_REGION", "ap-south-1")
            ])),
            Some("ap-south-1".into())
        );
    }
}
