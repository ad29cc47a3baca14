//! Validation: one validator per section turns the raw form into [`Settings`]. Each names the
//! key, the bad value and the fix in its errors; sections are checked in file order (server,
//! log, s3, uploader, then each mount with its URL and access keys), the first error wins.

pub mod access;
pub mod cache;
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
    let caches = cache::validate_all(&raw.mounts, &mounts, fs)?;
    Ok(Settings {
        server,
        log,
        s3,
        uploader,
        mounts,
        access,
        caches,
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
    match fs {
        FsChecks::Skip => return Ok(p.components().collect()),
        FsChecks::Check => {}
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

/// A small valid configuration to vary one key at a time, for the validators' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::super::{ConfigError, FsChecks, RawConfig, Settings};

    /// The keys every mount needs; paths are not looked at with [`FsChecks::Skip`].
    pub const MOUNT: &str =
        "prefix = \"/static/\"\nroot = \"/srv/site/static\"\nbucket = \"media\"";

    /// One TOML section per field, written out by [`Cfg::text`].
    #[derive(Clone)]
    pub struct Cfg {
        pub server: String,
        pub log: String,
        pub s3: String,
        pub uploader: String,
        pub mounts: Vec<String>,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Cfg {
                server: String::new(),
                log: String::new(),
                s3: "region = \"eu-west-1\"".into(),
                uploader: "enabled = false".into(),
                mounts: vec![MOUNT.into()],
            }
        }
    }

    /// The default configuration with these `[server]` lines.
    pub fn server(lines: &str) -> Cfg {
        Cfg {
            server: lines.into(),
            ..Cfg::default()
        }
    }

    /// The default configuration with these `[log]` lines.
    pub fn log(lines: &str) -> Cfg {
        Cfg {
            log: lines.into(),
            ..Cfg::default()
        }
    }

    /// The default configuration with exactly these `[s3]` lines.
    pub fn s3(lines: &str) -> Cfg {
        Cfg {
            s3: lines.into(),
            ..Cfg::default()
        }
    }

    /// The default configuration with these `[uploader]` lines added.
    pub fn uploader(lines: &str) -> Cfg {
        Cfg {
            uploader: format!("enabled = false\n{lines}"),
            ..Cfg::default()
        }
    }

    /// The default configuration with these lines added to its one mount.
    pub fn mount(lines: &str) -> Cfg {
        Cfg {
            mounts: vec![format!("{MOUNT}\n{lines}")],
            ..Cfg::default()
        }
    }

    impl Cfg {
        pub fn text(&self) -> String {
            let mut t = format!(
                "[server]\n{}\n[log]\n{}\n[s3]\n{}\n[uploader]\n{}\n",
                self.server, self.log, self.s3, self.uploader
            );
            for m in &self.mounts {
                t.push_str(&format!("[[mount]]\n{m}\n"));
            }
            t
        }

        pub fn check(&self, fs: FsChecks) -> Result<Settings, ConfigError> {
            let raw: RawConfig = toml::from_str(&self.text()).unwrap();
            super::validate_with(&raw, fs)
        }

        /// Valid without looking at the file system.
        #[track_caller]
        pub fn accepted(&self) -> Settings {
            self.check(FsChecks::Skip)
                .unwrap_or_else(|e| panic!("refused:\n{}\n{e}", self.text()))
        }

        /// Refused, and the error names `key`; returns the message.
        #[track_caller]
        pub fn refused(&self, key: &str) -> String {
            self.refused_with(FsChecks::Skip, key)
        }

        #[track_caller]
        pub fn refused_with(&self, fs: FsChecks, key: &str) -> String {
            let e = match self.check(fs) {
                Ok(_) => panic!("accepted, expected `{key}` refused:\n{}", self.text()),
                Err(e) => e,
            };
            let msg = e.to_string();
            match &e {
                ConfigError::Invalid { key: k, .. } => assert_eq!(k, key, "{msg}"),
                ConfigError::Load(_) => panic!("not a validation error: {msg}"),
            }
            assert!(msg.contains(&format!("`{key}`")), "{msg}");
            assert!(msg.contains("fix: "), "{msg}");
            msg
        }
    }

    #[test]
    fn the_base_configuration_is_valid() {
        let s = Cfg::default().accepted();
        assert_eq!(s.mounts.len(), 1);
    }
}
