//! The validated settings every part of stowaway runs on: the [`Settings`] tree, its enums,
//! and where the decision endpoints listen.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::secrets::Secret;
use super::units::{human_duration, human_size};
use crate::ipprefix::IpPrefix;
use crate::paths::MountPrefix;

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

/// S3's retrieval tiers for RestoreObject: how fast (and how expensive) a copy of a GLACIER /
/// DEEP_ARCHIVE object becomes readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RestoreTier {
    /// Minutes (GLACIER only; S3 refuses it for DEEP_ARCHIVE).
    Expedited,
    /// Hours: 3-5 (GLACIER), up to 12 (DEEP_ARCHIVE).
    Standard,
    /// The cheapest: 5-12 hours (GLACIER), up to 48 (DEEP_ARCHIVE).
    Bulk,
}

impl RestoreTier {
    /// As S3 spells it in a RestoreObject request.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreTier::Expedited => "Expedited",
            RestoreTier::Standard => "Standard",
            RestoreTier::Bulk => "Bulk",
        }
    }

    /// The `Retry-After` a client gets while a restore of this tier runs: when trying again
    /// is first worth it, not a promise.
    pub fn retry_after(self) -> Duration {
        match self {
            RestoreTier::Expedited => Duration::from_secs(5 * 60),
            RestoreTier::Standard => Duration::from_secs(3 * 3600),
            RestoreTier::Bulk => Duration::from_secs(5 * 3600),
        }
    }
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
    /// Per presigning mount: how many presigned URLs of the current signing window are kept
    /// (a repeat costs a lookup instead of an HMAC chain); zero disables the cache.
    pub url_cache_entries: usize,
    /// How often `serve` reloads the tombstones `stowaway rm` left in the buckets; zero: only
    /// at start-up and reload.
    #[serde(with = "human_duration")]
    pub tombstone_refresh: Duration,
    /// The admin API's own listener (loopback TCP or a Unix socket); `None`: no admin API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<Listen>,
    /// The file holding the admin API's bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// How often `serve` lists every mount's objects to learn which are in GLACIER or
    /// DEEP_ARCHIVE (answered 503 until restored); zero: never.
    #[serde(with = "human_duration")]
    pub storage_class_refresh: Duration,
    /// Days a restored copy of an archived object stays readable; zero: stowaway starts no
    /// RestoreObject (it only answers 503).
    pub restore_days: u32,
    /// The retrieval tier of the RestoreObject requests stowaway starts.
    pub restore_tier: RestoreTier,
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
    /// Incomplete multipart uploads under an upload mount's key prefix older than this, and
    /// not running in this process, are aborted at start-up and on rescans; zero: never.
    #[serde(with = "human_duration")]
    pub abandoned_upload_age: Duration,
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
    /// Archived files older than this whose object is still verified in S3 are removed from
    /// `archive_root`; zero keeps them forever.
    #[serde(with = "human_duration")]
    pub archive_retention: Duration,
    pub ignore: Vec<String>,
    /// Serve files the ignore patterns match (default: answer 404 for them).
    pub serve_ignored: bool,
    /// While the S3 probe reports S3 unreachable, answer a migrated file from its copy under
    /// `archive_root` (if it is still there) instead of redirecting to S3.
    pub serve_archive_when_s3_down: bool,
    /// How long a path removed by `stowaway rm` stays refused (and is not uploaded again);
    /// zero: `rm` leaves no tombstone.
    #[serde(with = "human_duration")]
    pub tombstone_ttl: Duration,
    /// What a tombstoned path is answered: 404 or 410.
    pub tombstone_status: u16,
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
    /// Hot-object caches, for the mounts that have a `[mount.cache]` section; rendered inside
    /// their mount (see [`super::render`]).
    #[serde(skip)]
    pub caches: Vec<CacheSettings>,
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
        self.mounts.iter().any(|m| match m.url.kind {
            UrlKind::Presigned => true,
            UrlKind::Public => false,
        })
    }
}

/// Where the decision endpoints listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix stream socket at this absolute path.
    Unix(PathBuf),
}

impl Listen {
    /// The TCP address, if this is a TCP listener.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Listen::Tcp(a) => Some(*a),
            Listen::Unix(_) => None,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Default `server.socket_mode`: the owner and the socket's group may connect.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Front authentication settings of `[server]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrontAuthSettings {
    /// Permissions of the Unix socket; `None` for a TCP listener.
    #[serde(serialize_with = "octal", skip_serializing_if = "Option::is_none")]
    pub socket_mode: Option<u32>,
    /// Group the Unix socket is given to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_group: Option<String>,
    /// Its id, resolved at validation (`None` without file-system checks).
    #[serde(skip)]
    pub socket_gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_secret_file: Option<PathBuf>,
    #[serde(skip)]
    pub front_secret: Option<Secret>,
    pub trusted_proxies: Vec<IpPrefix>,
}

fn octal<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:04o}", m.unwrap_or(DEFAULT_SOCKET_MODE)))
}

/// The hot-object cache of one mount (`[mount.cache]`, docs/cache.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheSettings {
    /// Index of the mount in [`Settings::mounts`].
    #[serde(skip)]
    pub mount: usize,
    /// Absolute directory holding `<dir>/<key>`; outside every root and archive root.
    pub dir: PathBuf,
    /// Bytes on disk (filesystem blocks).
    #[serde(with = "human_size")]
    pub max_size: u64,
    pub max_files: u64,
    /// Requests within `window` before an object is filled.
    pub min_hits: u32,
    #[serde(with = "human_duration")]
    pub window: Duration,
    #[serde(with = "human_size")]
    pub max_object_size: u64,
    /// Evict above this share of `max_size` / `max_files`…
    #[serde(serialize_with = "percent")]
    pub high_watermark: u8,
    /// …down to this one.
    #[serde(serialize_with = "percent")]
    pub low_watermark: u8,
    /// Longest an entry is served without a HEAD that shows its ETag unchanged.
    #[serde(with = "human_duration")]
    pub revalidate: Duration,
    /// How often the files are looked at (front-server reads, deleted files, due HEADs): every
    /// round runs after at most this long, and at least every `revalidate / 4`.
    #[serde(with = "human_duration")]
    pub check_interval: Duration,
    /// Fills running at once (per mount).
    pub fill_concurrency: usize,
    /// Bytes per second all fills of the mount together may read from S3.
    #[serde(with = "human_size")]
    pub fill_bandwidth: u64,
}

fn percent<S: serde::Serializer>(p: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{p}%"))
}
