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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::testing::s3;
    use super::*;

    const REGION: &str = "region = \"eu-west-1\"\n";

    #[test]
    fn region_is_a_region_name() {
        let s = s3("region = \"us-east-2\"").accepted();
        assert_eq!(s.s3.region.as_deref(), Some("us-east-2"));
        for bad in ["eu west 1", "eu_west_1", "eu-west-1/"] {
            s3(&format!("region = \"{bad}\"")).refused("s3.region");
        }
    }

    #[test]
    fn endpoint_is_an_http_url_without_query() {
        let s = s3(&format!("{REGION}endpoint = \"http://127.0.0.1:8014/\"")).accepted();
        assert_eq!(s.s3.endpoint.as_deref(), Some("http://127.0.0.1:8014"));
        for bad in [
            "127.0.0.1:8014",
            "ftp://x",
            "http://",
            "http://a?b",
            "http://u@h",
        ] {
            s3(&format!("{REGION}endpoint = \"{bad}\"")).refused("s3.endpoint");
        }
    }

    #[test]
    fn addressing_style_is_virtual_or_path_and_defaults_by_endpoint() {
        let style = |lines: &str| {
            s3(&format!("{REGION}{lines}"))
                .accepted()
                .s3
                .addressing_style
        };
        assert_eq!(style(""), AddressingStyle::Virtual);
        assert_eq!(style("endpoint = \"http://h:1\""), AddressingStyle::Path);
        assert_eq!(style("addressing_style = \"path\""), AddressingStyle::Path);
        assert_eq!(
            style("endpoint = \"http://h:1\"\naddressing_style = \"virtual\""),
            AddressingStyle::Virtual
        );
        s3(&format!("{REGION}addressing_style = \"dns\"")).refused("s3.addressing_style");
    }

    #[test]
    fn static_credentials_come_in_pairs_from_one_source() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sk");
        std::fs::write(&f, "file-secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = format!("secret_access_key_file = \"{}\"", f.display());
        let s = s3(&format!("{REGION}access_key_id = \"AKID\"\n{file}")).accepted();
        assert_eq!(s.s3.secret_access_key.unwrap().expose(), "file-secret");
        s3(&format!(
            "{REGION}access_key_id = \"AKID\"\nsecret_access_key = \"x\""
        ))
        .accepted();
        s3(REGION).accepted();
        s3(&format!(
            "{REGION}access_key_id = \"AKID\"\nsecret_access_key = \"x\"\n{file}"
        ))
        .refused("s3.secret_access_key_file");
        s3(&format!("{REGION}access_key_id = \"AKID\"")).refused("s3.access_key_id");
        s3(&format!("{REGION}secret_access_key = \"x\"")).refused("s3.access_key_id");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = s3(&format!("{REGION}access_key_id = \"AKID\"\n{file}"))
            .refused("s3.secret_access_key_file");
        assert!(e.contains("chmod 600"), "{e}");
    }
}
