//! A mount's redirect URL (`url`, `public_base_url`, `expires`, `window`, `redirect_max_age`,
//! `response_*`): what kind, how long it lives, and what S3 needs to build it.

use std::time::Duration;

use super::super::types::{S3Settings, UrlKind, UrlSettings};
use super::super::units::{HumanDuration, duration_or};
use super::super::{ConfigError, MAX_PRESIGN_EXPIRY, RawMount, invalid};

/// Validates the URL keys of `mount[i]`; `s3` is the validated `[s3]` (the region decides
/// whether a bucket URL can be built at all).
pub fn validate(i: usize, m: &RawMount, s3: &S3Settings) -> Result<UrlSettings, ConfigError> {
    let k = |f: &str| format!("mount[{i}].{f}");
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
    // A signed URL is S3's own; a public one may come from a CDN in front of the bucket.
    let signed = match kind {
        UrlKind::Presigned => true,
        UrlKind::Public => false,
    };
    if public_base_url.is_some() && signed {
        return Err(invalid(
            k("public_base_url"),
            m.public_base_url.as_deref().unwrap_or(""),
            "a public base URL cannot carry a SigV4 signature",
            "set url = \"public\" or remove public_base_url",
        ));
    }
    let expires = duration_or(&k("expires"), &m.expires, Duration::from_secs(3600))?;
    let window = duration_or(&k("window"), &m.window, Duration::from_secs(300))?;
    if signed {
        if expires < Duration::from_secs(1) {
            return Err(invalid(
                k("expires"),
                m.expires.as_ref().map_or("", HumanDuration::text),
                "must be at least 1s",
                "use e.g. \"1h\"",
            ));
        }
        if expires + window > MAX_PRESIGN_EXPIRY {
            return Err(invalid(
                k("expires"),
                m.expires.as_ref().map_or("1h", HumanDuration::text),
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
    let redirect_max_age = duration_or(
        &k("redirect_max_age"),
        &m.redirect_max_age,
        Duration::from_secs(300),
    )?;
    let hv = |f: &str, v: &Option<String>| {
        v.as_deref()
            .map(|x| super::header_value_ok(&k(f), x))
            .transpose()
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
    if !signed
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
    Ok(url)
}

/// `public_base_url`: an http(s) URL, returned with a trailing `/`.
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

#[cfg(test)]
mod tests {
    use super::super::testing::{Cfg, mount};
    use super::*;

    const PUBLIC: &str = "url = \"public\"";

    #[test]
    fn kind_is_presigned_or_public() {
        assert_eq!(mount("").accepted().mounts[0].url.kind, UrlKind::Presigned);
        assert_eq!(mount(PUBLIC).accepted().mounts[0].url.kind, UrlKind::Public);
        mount("url = \"signed\"").refused("mount[0].url");
    }

    #[test]
    fn public_base_url_is_an_http_url_for_public_mounts() {
        let s = mount(&format!(
            "{PUBLIC}\npublic_base_url = \"https://cdn.example.com\""
        ))
        .accepted();
        let base = s.mounts[0].url.public_base_url.as_deref();
        assert_eq!(base, Some("https://cdn.example.com/"));
        for bad in [
            "cdn.example.com",
            "https://",
            "https://c/?x",
            "https://c/#x",
            "https://a b/",
        ] {
            mount(&format!("{PUBLIC}\npublic_base_url = \"{bad}\""))
                .refused("mount[0].public_base_url");
        }
        let e = mount("public_base_url = \"https://cdn.example.com/\"")
            .refused("mount[0].public_base_url");
        assert!(e.contains("SigV4"), "{e}");
    }

    #[test]
    fn lifetimes_are_durations() {
        let u = mount("expires = \"2h\"\nwindow = \"0s\"\nredirect_max_age = \"1m\"")
            .accepted()
            .mounts
            .remove(0)
            .url;
        assert_eq!(
            (u.expires, u.window, u.redirect_max_age),
            (
                Duration::from_secs(7200),
                Duration::ZERO,
                Duration::from_secs(60)
            )
        );
        for key in ["expires", "window", "redirect_max_age"] {
            let e = mount(&format!("{key} = \"a while\"")).refused(&format!("mount[0].{key}"));
            assert!(e.contains("not a duration"), "{e}");
        }
    }

    #[test]
    fn presigned_urls_live_at_least_a_second() {
        mount("expires = \"1s\"").accepted();
        mount("expires = \"0s\"").refused("mount[0].expires");
        // A public URL does not expire: the key is not used.
        mount(&format!("{PUBLIC}\nexpires = \"0s\"")).accepted();
    }

    #[test]
    fn presigned_urls_live_at_most_seven_days_with_the_window() {
        mount("expires = \"6d 23h 55m\"\nwindow = \"5m\"").accepted();
        let e = mount("expires = \"7d\"\nwindow = \"1s\"").refused("mount[0].expires");
        assert!(e.contains("7-day"), "{e}");
        mount(&format!("{PUBLIC}\nexpires = \"30d\"")).accepted();
    }

    #[test]
    fn presigned_urls_need_the_region() {
        let no_region = Cfg {
            s3: "endpoint = \"http://127.0.0.1:9\"".into(),
            ..mount("")
        };
        let e = no_region.refused("s3.region");
        assert!(e.contains("mount[0] signs its redirects"), "{e}");
        Cfg {
            s3: "endpoint = \"http://127.0.0.1:9\"".into(),
            ..mount(PUBLIC)
        }
        .accepted();
    }

    #[test]
    fn a_bucket_url_needs_a_region_an_endpoint_or_a_base_url() {
        let e = Cfg {
            s3: String::new(),
            ..mount(PUBLIC)
        }
        .refused("s3.region");
        assert!(e.contains("needs a bucket URL"), "{e}");
        Cfg {
            s3: String::new(),
            ..mount(&format!(
                "{PUBLIC}\npublic_base_url = \"https://cdn.example.com/\""
            ))
        }
        .accepted();
    }

    #[test]
    fn response_overrides_are_header_values_inside_a_signature() {
        for key in [
            "response_content_disposition",
            "response_content_type",
            "response_cache_control",
        ] {
            let s = mount(&format!("{key} = \"x/y\"")).accepted();
            assert!(format!("{:?}", s.mounts[0].url).contains("\"x/y\""));
            mount(&format!("{key} = \"\"")).refused(&format!("mount[0].{key}"));
            mount(&format!("{key} = \"a\\r\\nSet-Cookie: x\"")).refused(&format!("mount[0].{key}"));
            // Only a presigned URL carries them; the error names one key for all three.
            mount(&format!("{PUBLIC}\n{key} = \"x/y\"")).refused("mount[0].response_content_type");
        }
    }
}
