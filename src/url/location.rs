//! Where a mount's objects are addressed: scheme, host and path of the bucket (virtual-hosted
//! or path style) or of a public base URL (CDN), plus the signing window and the response
//! overrides a presigned URL carries. Pure string work, computed once per mount.

use crate::config::{AddressingStyle, Mount, S3Settings};
use crate::paths::{push_encoded_path, push_encoded_query};

/// How a mount's URLs are put together; computed once at start-up.
#[derive(Debug, Clone)]
pub struct MountUrls {
    /// `scheme://host[:port]` the client will contact.
    pub(super) origin: String,
    /// `host[:port]` exactly as a client sends it in `Host` (default ports dropped).
    pub(super) host: String,
    /// Encoded path up to the relative key, e.g. `/bucket/static/` or `/static/`.
    pub(super) path_base: String,
    /// `url.window` in seconds: URLs minted inside one window are identical.
    pub(super) window: u64,
    /// `url.expires` in seconds: how long a URL stays valid after its window.
    pub(super) grace: u64,
    /// Pre-encoded `&response-…=…` parameters, sorted (they sort after `X-Amz-*`).
    pub(super) overrides: String,
}

fn split_endpoint(endpoint: &str) -> (&str, &str, &str) {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    match rest.find('/') {
        Some(i) => (scheme, &rest[..i], rest[i..].trim_end_matches('/')),
        None => (scheme, rest, ""),
    }
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    match (scheme, authority.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h,
        _ => authority,
    }
}

impl MountUrls {
    /// Precomputes the URL pieces for a mount.
    pub fn new(s3: &S3Settings, m: &Mount) -> Self {
        let mut path_base = String::new();
        let (origin, host);
        if let Some(base) = &m.url.public_base_url {
            let (scheme, authority, path) = split_endpoint(base);
            host = strip_default_port(scheme, authority).to_string();
            origin = format!("{scheme}://{host}");
            path_base.push_str(path);
            path_base.push('/');
        } else {
            let region = s3.region.as_deref().unwrap_or("us-east-1");
            let default_ep = format!("https://s3.{region}.amazonaws.com");
            let ep = s3.endpoint.as_deref().unwrap_or(&default_ep);
            let (scheme, authority, path) = split_endpoint(ep);
            let authority = strip_default_port(scheme, authority);
            match s3.addressing_style {
                AddressingStyle::Virtual => {
                    host = format!("{}.{authority}", m.bucket);
                    path_base.push_str(path);
                    path_base.push('/');
                }
                AddressingStyle::Path => {
                    host = authority.to_string();
                    path_base.push_str(path);
                    path_base.push('/');
                    push_encoded_path(&mut path_base, &m.bucket);
                    path_base.push('/');
                }
            }
            origin = format!("{scheme}://{host}");
        }
        push_encoded_path(&mut path_base, &m.key_prefix);
        let mut overrides = String::new();
        for (name, v) in [
            ("response-cache-control", &m.url.response_cache_control),
            (
                "response-content-disposition",
                &m.url.response_content_disposition,
            ),
            ("response-content-type", &m.url.response_content_type),
        ] {
            if let Some(v) = v {
                overrides.push('&');
                overrides.push_str(name);
                overrides.push('=');
                push_encoded_query(&mut overrides, v);
            }
        }
        let window = m.url.window.as_secs();
        MountUrls {
            origin,
            host,
            path_base,
            window,
            grace: m.url.expires.as_secs(),
            overrides,
        }
    }

    /// The unsigned URL of `key` (relative key, not yet encoded).
    pub fn public_url(&self, key: &str) -> String {
        let mut s =
            String::with_capacity(self.origin.len() + self.path_base.len() + key.len() + 16);
        s.push_str(&self.origin);
        s.push_str(&self.path_base);
        push_encoded_path(&mut s, key);
        s
    }
}
