//! Secrets: [`Secret`] (never shown), secret files (only their owner may read them), and the
//! same rule for a config file that holds a secret inline.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

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
pub(super) fn check_inline_secrets(path: &Path, table: &toml::Table) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> std::path::PathBuf {
        let f = dir.join(name);
        std::fs::write(&f, body).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn a_secret_never_shows() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "\"<redacted>\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn secret_files_are_private_and_not_empty() {
        let d = tempfile::tempdir().unwrap();
        let ok = write(d.path(), "ok", "s3cret\r\n", 0o600);
        assert_eq!(
            read_secret_file("k.secret_file", &ok).unwrap().expose(),
            "s3cret"
        );
        let cases = [
            (d.path().join("missing"), "cannot read it"),
            (
                write(d.path(), "group", "s3cret", 0o640),
                "readable by group or others",
            ),
            (
                write(d.path(), "other", "s3cret", 0o604),
                "readable by group or others",
            ),
            (write(d.path(), "empty", "\n", 0o600), "empty"),
        ];
        for (path, needle) in cases {
            let e = read_secret_file("k.secret_file", &path)
                .unwrap_err()
                .to_string();
            assert!(e.contains("`k.secret_file`") && e.contains(needle), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn inline_secrets_are_found_by_key() {
        let t: toml::Table = toml::from_str(
            "[s3]\nsecret_access_key = \"x\"\n[[mount]]\n[[mount]]\n[mount.access]\n[[mount.access.keys]]\nsecret_file = \"/f\"\n[[mount.access.keys]]\nsecret = \"y\"\n",
        )
        .unwrap();
        assert_eq!(
            inline_secret_keys(&t),
            ["s3.secret_access_key", "mount[1].access.keys[1].secret"]
        );
        let none: toml::Table = toml::from_str("[s3]\nsecret_access_key_file = \"/f\"\n").unwrap();
        assert!(inline_secret_keys(&none).is_empty());
    }
}
