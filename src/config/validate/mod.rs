//! Validation: one validator per section turns the raw form into [`Settings`]. Each names the
//! key, the bad value and the fix in its errors; sections are checked in file order (server,
//! log, s3, uploader, then each mount with its URL and access keys), the first error wins.

pub mod access;
pub mod log;
pub mod mount;
pub mod s3;
pub mod server;
pub mod uploader;
pub mod url;

use std::path::{Path, PathBuf};

use super::types::Settings;
use super::{ConfigError, FsChecks, RawConfig, invalid};

/// Checks a loaded raw config and turns it into [`Settings`].
pub fn validate(raw: &RawConfig) -> Result<Settings, ConfigError> {
    validate_with(raw, FsChecks::Check)
}

/// [`validate`], optionally without touching the file system.
pub fn validate_with(raw: &RawConfig, fs: FsChecks) -> Result<Settings, ConfigError> {
    let server = server::validate(&raw.server, fs)?;
    let log = log::validate(&raw.log)?;
    let s3 = s3::validate(&raw.s3)?;
    let uploader = uploader::validate(&raw.uploader)?;
    let (mounts, access) =
        mount::validate_all(&raw.mounts, &server.internal_prefix, &s3, &uploader, fs)?;
    Ok(Settings {
        server,
        log,
        s3,
        uploader,
        mounts,
        access,
    })
}

/// A header value stowaway passes on (`cache_control`, `response_*`).
pub(super) fn header_value_ok(key: &str, v: &str) -> Result<String, ConfigError> {
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

/// An absolute directory, canonicalised unless `fs` skips the file system.
pub(super) fn canonical_dir(
    key: &str,
    p: &Path,
    what: &str,
    fs: FsChecks,
) -> Result<PathBuf, ConfigError> {
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
