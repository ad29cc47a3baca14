//! The admin HTTP API, on its own listener (`server.admin_listen`: loopback TCP or a Unix
//! socket; off by default): `DELETE /_stowaway/objects/<mount-path>` removes a file
//! everywhere it lives, exactly as `stowaway rm` does ([`crate::remove`]), and answers with
//! one JSON result per place.
//!
//! * Auth: `Authorization: Bearer <token>`, the token read from `server.admin_token_file`
//!   (owner-only, like every secret file). The comparison is of SHA-256 digests in constant
//!   time, so neither the token's bytes nor its length leak through timing. The token is
//!   never logged; a reload (SIGHUP) picks up a new one.
//! * `?all_versions=true`: every version and delete marker of the object goes (versioned
//!   buckets), not just a delete marker.
//! * Answers: 200 removed everywhere (also when nothing was left: repeating a DELETE is
//!   safe); 503 with `Retry-After` when some place failed (what was done stays done: send the
//!   same DELETE again); 400 for a path that cannot be a file; 404 outside every mount; 401
//!   without the right token.
//!
//! The decision of this process stops serving the path at once (its tombstone goes into the
//! loaded set); other nodes follow at their next `server.tombstone_refresh`.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::http::Live;
use crate::remove::{Options, RmError, locate, remove};
use crate::store::ObjectStore;

/// The admin API's URL prefix; the rest of the path is the URL path of the file.
pub const OBJECTS: &str = "/_stowaway/objects";

/// Seconds a client is told to wait before repeating a DELETE that partly failed.
pub const RETRY_AFTER_SECS: u64 = 10;

/// What the admin listener shares between requests.
pub struct Admin {
    live: web::Data<Live>,
    /// The S3 client of the settings it was made for (a reload may change `[s3]`).
    store: tokio::sync::Mutex<Option<(Arc<Settings>, Arc<ObjectStore>)>>,
}

impl Admin {
    /// The admin API over the request state of `serve` (shared, so reloads reach it).
    pub fn new(live: web::Data<Live>) -> Self {
        Admin {
            live,
            store: tokio::sync::Mutex::new(None),
        }
    }

    async fn store_for(&self, settings: &Arc<Settings>) -> Arc<ObjectStore> {
        let mut slot = self.store.lock().await;
        if let Some((s, store)) = &*slot
            && Arc::ptr_eq(s, settings)
        {
            return store.clone();
        }
        let store = Arc::new(crate::tombstone::connect(settings).await);
        *slot = Some((settings.clone(), store.clone()));
        store
    }
}

/// Whether `presented` is `expected`, in time independent of both.
fn same_token(presented: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether the request carries the configured bearer token.
fn authorized(req: &HttpRequest, settings: &Settings) -> bool {
    let Some(expected) = &settings.server.admin_token else {
        return false;
    };
    // The scheme's name is case-insensitive (RFC 9110, 11.1).
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
        .map(|v| &v[7..]);
    match presented {
        Some(p) => same_token(p, expected.expose().as_bytes()),
        None => false,
    }
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(body)
}

fn error(status: StatusCode, text: impl Into<String>) -> HttpResponse {
    json(
        status,
        serde_json::json!({ "error": text.into() }).to_string(),
    )
}

/// `all_versions=true|false` is the one parameter.
fn options(query: &str) -> Result<Options, String> {
    let mut opts = Options::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("all_versions", "true" | "1") => opts.all_versions = true,
            ("all_versions", "false" | "0") => opts.all_versions = false,
            (k, _) => {
                return Err(format!(
                    "unknown parameter {k:?}: the only one is all_versions=true"
                ));
            }
        }
    }
    Ok(opts)
}

/// `DELETE /_stowaway/objects/<mount-path>`.
async fn delete(req: HttpRequest, admin: web::Data<Admin>) -> HttpResponse {
    let state = admin.live.load_full();
    let settings = &state.settings;
    if !authorized(&req, settings) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .json(serde_json::json!({ "error": "missing or wrong bearer token (server.admin_token_file)" }));
    }
    let raw = req.uri().path().strip_prefix(OBJECTS).unwrap_or("");
    let path = match percent_encoding::percent_decode_str(raw).decode_utf8() {
        Ok(p) => p.into_owned(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "the path is not UTF-8"),
    };
    let opts = match options(req.query_string()) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (mount, key) = match locate(settings, &path) {
        Ok(l) => l,
        Err(e @ RmError::NoMount(_)) => return error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ (RmError::BadPath(..) | RmError::Directory(_))) => {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let m = &settings.mounts[mount];
    let store = admin.store_for(settings).await;
    // Refused here at once, before the local file goes: the front server's next request for
    // it must not find it missing locally and be redirected to an object being deleted.
    if let Some(until) = crate::remove::tombstone_until(m) {
        state.tombstones().insert(mount, &key, until);
    }
    let cache_dir = crate::remove::cache_dir(settings, mount);
    let report = remove(&store, m, cache_dir, &key, &path, opts).await;
    if let Some(m) = state.metrics() {
        m.admin_delete(!report.failed());
    }
    let failed: Vec<&str> = report
        .steps
        .iter()
        .filter(|(_, s)| s.failed())
        .map(|(p, _)| *p)
        .collect();
    if failed.is_empty() {
        tracing::info!(path = ?path, all_versions = opts.all_versions, "admin: removed everywhere");
        json(StatusCode::OK, report.to_json())
    } else {
        tracing::warn!(path = ?path, failed = ?failed, "admin: not removed everywhere; the client is told to retry");
        let mut r = json(StatusCode::SERVICE_UNAVAILABLE, report.to_json());
        if let Ok(v) = header::HeaderValue::from_str(&RETRY_AFTER_SECS.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "the admin API answers DELETE /_stowaway/objects/<URL path>",
    )
}

/// Registers the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(format!("{OBJECTS}/{{tail:.*}}"))
            .route(web::delete().to(delete))
            .default_service(web::to(|| async {
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, "DELETE"))
                    .finish()
            })),
    )
    .default_service(web::to(not_found));
}

/// Where the admin API listens, bound by the caller (a Unix socket gets its mode first).
pub enum Bind {
    Tcp(std::net::SocketAddr),
    Unix(std::os::unix::net::UnixListener),
}

/// The admin HTTP server on `bind`, one worker (deletes are rare and wait on S3, not CPU).
pub fn server(admin: web::Data<Admin>, bind: Bind) -> std::io::Result<actix_web::dev::Server> {
    let s = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(admin.clone())
            .configure(configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5);
    Ok(match bind {
        Bind::Tcp(a) => s.bind(a)?.run(),
        Bind::Unix(l) => s.listen_uds(l)?.run(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd"));
        assert!(!same_token(b"ab", b"abc"));
        assert!(!same_token(b"", b"abc"));
    }

    #[test]
    fn all_versions_is_the_only_parameter() {
        assert!(!options("").unwrap().all_versions);
        assert!(options("all_versions=true").unwrap().all_versions);
        assert!(options("all_versions=1").unwrap().all_versions);
        assert!(!options("all_versions=false").unwrap().all_versions);
        assert!(options("all_versions=yes").is_err());
        assert!(options("force=1").unwrap_err().contains("\"force\""));
    }
}
