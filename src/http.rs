//! The HTTP face: the decision endpoint the front server proxies to, and health checks.
//!
//! Answers, in nginx `proxy_pass` mode:
//! * local file → `200`, `X-Accel-Redirect: <internal prefix><mount>/<encoded key>`, the object's
//!   URL in `X-S3-Location` (nginx's fallback if the file vanishes before it opens it),
//!   `Content-Length: 0` and no body (a body costs nginx its keep-alive upstream connection);
//! * lighttpd: the same with `X-Sendfile: <encoded absolute path>` instead;
//! * not local → `302` to the object's URL with a deliberate `Cache-Control`;
//! * hostile path → `400`; outside every mount, a directory or a symlink → `404`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::config::{FrontServer, Settings};
use crate::decision::{Verdict, decide};
use crate::paths::{accel_target, sendfile_target};
use crate::presign::{MountUrls, ObjectUrl, Signer};

/// Header carrying the object URL next to a local answer, and the URL in auth mode.
pub const X_S3_LOCATION: HeaderName = HeaderName::from_static("x-s3-location");
/// Set by the front server when it asks again because the local file vanished.
pub const X_RECHECK: HeaderName = HeaderName::from_static("x-sidecar-recheck");
/// The original request target, when the request line is an error-handler URL (lighttpd).
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
const X_SENDFILE: HeaderName = HeaderName::from_static("x-sendfile");

/// Everything a request handler needs, built once at start-up.
pub struct AppState {
    pub settings: Arc<Settings>,
    prefixes: Vec<String>,
    roots: Vec<PathBuf>,
    urls: Vec<MountUrls>,
    public_cache_control: Vec<HeaderValue>,
    signer: Option<Arc<Signer>>,
}

impl AppState {
    /// Precomputes per-mount data. `signer` must be set when a mount presigns.
    pub fn new(settings: Arc<Settings>, signer: Option<Arc<Signer>>) -> Self {
        let prefixes = settings.mounts.iter().map(|m| m.prefix.as_str().to_string()).collect();
        let roots = settings.mounts.iter().map(|m| m.root.clone()).collect();
        let urls = settings.mounts.iter().map(|m| MountUrls::new(&settings.s3, m)).collect();
        let public_cache_control = settings
            .mounts
            .iter()
            .map(|m| {
                HeaderValue::try_from(format!("public, max-age={}", m.url.redirect_max_age.as_secs()))
                    .unwrap_or(HeaderValue::from_static("no-store"))
            })
            .collect();
        AppState { settings, prefixes, roots, urls, public_cache_control, signer }
    }

    /// The redirect URL for `key` of mount `mount`, signed for `method` when the mount presigns.
    pub fn object_url(&self, mount: usize, method: &str, key: &str, now: SystemTime) -> Result<ObjectUrl, crate::presign::PresignError> {
        let urls = &self.urls[mount];
        if urls.is_presigned() {
            let signer = self.signer.as_ref().ok_or(crate::presign::PresignError::NoCredentials)?;
            signer.presign(urls, method, key, now)
        } else {
            Ok(ObjectUrl { url: urls.public_url(key), max_age: None })
        }
    }

    fn roots(&self) -> Vec<&std::path::Path> {
        self.roots.iter().map(PathBuf::as_path).collect()
    }

    /// Readiness: every root is a readable directory and, when signing, credentials are valid.
    pub fn readiness(&self) -> Result<(), String> {
        for r in &self.roots {
            if std::fs::read_dir(r).is_err() {
                return Err(format!("root {} is not readable", r.display()));
            }
        }
        if self.settings.needs_signing() {
            match &self.signer {
                Some(s) if s.has_valid_credentials(SystemTime::now()) => {}
                _ => return Err("no valid AWS credentials for presigning".into()),
            }
        }
        Ok(())
    }
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn redirect_response(state: &AppState, mount: usize, u: ObjectUrl) -> HttpResponse {
    let Ok(loc) = HeaderValue::try_from(u.url) else {
        return text(StatusCode::BAD_REQUEST, "bad request\n");
    };
    let cc = match (state.urls[mount].is_presigned(), u.max_age) {
        (true, Some(n)) => HeaderValue::try_from(format!("private, max-age={n}")).unwrap_or(HeaderValue::from_static("no-store")),
        (true, None) => HeaderValue::from_static("no-store"),
        (false, _) => state.public_cache_control[mount].clone(),
    };
    HttpResponse::Found().insert_header((header::LOCATION, loc)).insert_header((header::CACHE_CONTROL, cc)).finish()
}

fn signing_failed(e: crate::presign::PresignError) -> HttpResponse {
    tracing::error!(error = %e, "cannot presign a redirect");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("storage credentials unavailable\n")
}

/// The decision endpoint (nginx `proxy_pass` and lighttpd `mod_proxy` mode).
pub async fn decision(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let method = if req.method() == Method::GET {
        "GET"
    } else if req.method() == Method::HEAD {
        "HEAD"
    } else {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, HEAD"))
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("method not allowed\n");
    };
    let recheck = req.headers().contains_key(X_RECHECK);
    let target = if recheck {
        match req.headers().get(X_ORIGINAL_URI).map(HeaderValue::to_str) {
            Some(Ok(t)) => t,
            Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "bad request\n"),
            None => req.uri().path(),
        }
    } else {
        req.uri().path()
    };
    let roots = state.roots();
    let verdict = decide(&state.prefixes, &roots, target, recheck);
    tracing::debug!(method, target, recheck, ?verdict, "decision");
    let now = SystemTime::now();
    match verdict {
        Verdict::BadRequest(_) => text(StatusCode::BAD_REQUEST, "bad request\n"),
        Verdict::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        Verdict::Remote { mount, key } => match state.object_url(mount, method, &key, now) {
            Ok(u) => redirect_response(&state, mount, u),
            Err(e) => signing_failed(e),
        },
        Verdict::Local { mount, key } => {
            let m = &state.settings.mounts[mount];
            let target = match state.settings.server.front {
                FrontServer::Nginx => accel_target(&state.settings.server.internal_prefix, m.prefix.as_str(), &key),
                FrontServer::Lighttpd => sendfile_target(&m.root, &key),
            };
            let Ok(target) = HeaderValue::try_from(target) else {
                return text(StatusCode::BAD_REQUEST, "bad request\n");
            };
            let name = match state.settings.server.front {
                FrontServer::Nginx => X_ACCEL_REDIRECT,
                FrontServer::Lighttpd => X_SENDFILE,
            };
            let mut resp = HttpResponse::Ok();
            resp.insert_header((name, target));
            if state.settings.server.fallback_header && state.settings.server.front == FrontServer::Nginx {
                if let Ok(u) = state.object_url(mount, method, &key, now) {
                    if let Ok(v) = HeaderValue::try_from(u.url) {
                        resp.insert_header((X_S3_LOCATION, v));
                    }
                }
            }
            resp.finish()
        }
    }
}

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> HttpResponse {
    text(StatusCode::OK, "ok\n")
}

/// `GET /readyz`: roots readable and, when signing, credentials valid.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body(format!("not ready: {why}\n"))
        }
    }
}

/// Registers all routes on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .default_service(web::to(decision));
}
