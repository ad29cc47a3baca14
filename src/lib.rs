//! stowaway: a sidecar for nginx and lighttpd that answers, per request, whether a user file is
//! still on local disk (the front server sends it) or already in S3 (a redirect), and that
//! migrates files to S3 in the background without ever losing one.
//!
//! Modules, one per concern:
//! * [`access`]: signed, expiring client links (HMAC-SHA256);
//! * [`config`]: TOML + env + CLI → validated [`config::Settings`] (schema, units, secrets,
//!   one validator per section, rendering);
//! * [`ipprefix`]: IP address prefixes (signed-link IP binding, trusted proxies);
//! * [`cache`]: the hot-object cache (popular migrated objects kept on local disk);
//! * [`beneath`]: kernel-resolved file access beneath a root (no symlink, no escape, no races);
//! * [`paths`]: pure request-path → key → local path / object key / header mapping;
//! * [`ignore`]: per-mount ignore patterns (never uploaded, never served);
//! * [`decision`]: local, remote or refused, for one request;
//! * [`url`]: where a migrated object is answered from (public or SigV4-presigned URLs), how
//!   long each URL and an answer naming it may be kept;
//! * [`store`]: the object store — S3 clients, credentials, retries, hashing, upload and
//!   verification — for the uploader (and later the cache and lifecycle commands);
//! * [`http`]: the actix-web endpoints;
//! * [`frontauth`]: who counts as the front server (Unix socket, shared secret, trusted proxies);
//! * [`front`]: one module per front server and mode (nginx proxy / auth, lighttpd, lighttpd
//!   magnet): its answer headers, its client-address header and its generated configuration;
//! * [`uploader`]: watch, settle, upload, verify, then archive — the background migration;
//! * [`storage_class`]: which objects are in GLACIER / DEEP_ARCHIVE (503 until restored);
//! * [`metrics`], [`health`], [`status`]: Prometheus metrics, readiness, backlog report;
//! * [`reload`]: SIGHUP reloads and systemd notifications;
//! * [`logfmt`]: log lines outsiders cannot forge;
//! * [`remove`]: removing a file everywhere it lives (`stowaway rm` and the admin API);
//! * [`admin`]: the admin HTTP API on its own listener (`DELETE /_stowaway/objects/…`);
//! * [`cli`]: the command line.

#![forbid(unsafe_code)]

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (short hash), or `unknown` outside a checkout;
/// set by build.rs.
pub const GIT_COMMIT: &str = env!("STOWAWAY_GIT_COMMIT");
/// What `stowaway --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("STOWAWAY_GIT_COMMIT"),
    ")"
);

pub mod access;
pub mod admin;
pub mod beneath;
pub mod cache;
pub mod cli;
pub mod config;
pub mod decision;
pub mod front;
pub mod frontauth;
pub mod health;
pub mod http;
pub mod ignore;
pub mod ipprefix;
pub mod logfmt;
pub mod metrics;
pub mod paths;
pub mod reload;
pub mod remove;
pub mod status;
pub mod storage_class;
pub mod store;
pub mod tombstone;
pub mod uploader;
pub mod url;
