//! Configuration: defaults, then a TOML file, then `STOWAWAY__SECTION__KEY` environment
//! variables, then CLI overrides — parsed into [`RawConfig`] and validated into [`Settings`].
//!
//! Every validation error names the key, the bad value and the fix.
//!
//! * [`file`](mod@file): the file schema (`Raw*`), unknown-key suggestions, load-error wording;
//! * [`units`]: human durations and sizes (`"30s"`, `"64MiB"`), parsed as they are read;
//! * [`secrets`]: [`Secret`], secret files, inline secrets in readable files;
//! * [`types`]: the validated settings every other module runs on;
//! * [`validate`](mod@validate): one validator per section, turning the raw form into [`Settings`];
//! * [`render`]: [`Settings`] back to TOML (`print-config`).
//!
//! This is the lowest layer: it imports only [`crate::paths`] and [`crate::ipprefix`], so every
//! other module may import it.

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub mod file;
pub mod render;
pub mod secrets;
pub mod types;
pub mod units;
pub mod validate;

#[cfg(test)]
mod tests;

pub use file::{
    RawAccess, RawCache, RawConfig, RawLinkKey, RawLog, RawMount, RawS3, RawServer, RawUploader,
    describe_unknown_key, suggest_key,
};
pub use secrets::{Secret, read_secret_file};
pub use types::*;
pub use units::{HumanDuration, HumanSize, parse_duration, parse_size};
pub use validate::access::{MIN_SECRET_BYTES, valid_key_id};
pub use validate::server::{
    MIN_FRONT_SECRET_BYTES, check_front_secret, lookup_group, parse_listen, parse_socket_mode,
};
pub use validate::{validate, validate_with};

/// The environment variable prefix: `STOWAWAY__SERVER__LISTEN=127.0.0.1:9000`.
pub const ENV_PREFIX: &str = "STOWAWAY";
/// The largest `mount.cache.min_hits`: the cache policy's popularity counters saturate at 15,
/// and a full cache asks for one sighting more than `min_hits`.
pub const MAX_CACHE_MIN_HITS: u32 = 14;

/// Where the configuration is read from when `--config` (or `STOWAWAY_CONFIG`) is absent: the
/// path the Debian package installs and the shipped unit uses.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/stowaway/stowaway.toml";

/// S3 refuses presigned URLs that live longer than seven days.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default `access.max_link_ttl`: a link outlives its sharing for at most a week, so a leaked
/// or mistakenly long link (and one minted with a key later found stolen) stops working
/// within the usual key-rotation period.
pub const DEFAULT_MAX_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Name prefix of the uploader's temporary files in archive directories
/// (`.stowaway-tmp.<pid>.<run>.<n>`). Here, below the uploader, because validation's write
/// probe carries it too: a probe left behind is removed by the uploader's start-up clean-up
/// like any other temp file.
pub const TEMP_PREFIX: &str = ".stowaway-tmp.";

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

/// Whether validation looks at the file system (roots exist, are directories; paths are
/// canonicalised). Generating a front-server config on another machine skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsChecks {
    Check,
    Skip,
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
    let mut b = ::config::Config::builder();
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
        let table = file::check_toml(path)?;
        secrets::check_inline_secrets(path, &table)?;
        b = b.add_source(
            ::config::File::from(path)
                .format(::config::FileFormat::Toml)
                .required(true),
        );
    }
    b = b.add_source(
        ::config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__"),
    );
    let set = |b: ::config::ConfigBuilder<::config::builder::DefaultState>,
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
        .map_err(|e| ConfigError::Load(file::describe_load_error(&e)))?;
    let mut unknown_keys = Vec::new();
    let mut raw: RawConfig = serde_ignored::deserialize(cfg, |p| unknown_keys.push(p.to_string()))
        .map_err(|e| ConfigError::Load(file::describe_load_error(&e)))?;
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
