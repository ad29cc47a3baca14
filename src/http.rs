//! The HTTP face: the decision endpoint the front server proxies to, and health checks.
//!
//! Answers, in nginx `proxy_pass` mode:
//! * local file → `200`, `X-Accel-Redirect: <internal prefix><mount>/<encoded key>`, the object's
//!   URL in `X-S3-Location` (nginx's fallback if the file vanishes before it opens it),
//!   `Content-Length: 0` and no body (a body costs nginx its keep-alive upstream connection);
//! * lighttpd: the same with `X-Sendfile: <encoded absolute path>` instead;
//! * not local → `302` to the object's URL with a deliberate `Cache-Control`; but while the
//!   background S3 probe reports S3 unreachable, a file whose archived copy is still under the
//!   mount's `archive_root` is answered like a local file, pointing at the archive (nginx: the
//!   internal location [`archive_location`]; lighttpd: its absolute path), unless the mount
//!   sets `serve_archive_when_s3_down = false`;
//! * hostile path → `400`; outside every mount, a directory or a symlink → `404`;
//! * on a mount with access control (`[mount.access]`), a link without a valid signature →
//!   `403`, an authentic but expired link → `410` (see `docs/signed-links.md`).
//!
//! With `server.front_secret_file`, a decision or auth request without the front server's secret
//! gets a bare `403` before anything else ([`crate::frontauth`]); forwarded-address headers
//! count only from the authenticated front.
//!
//! In nginx `auth_request` mode ([`auth`], `GET /_stowaway/auth`, original target in
//! `X-Original-URI`, method in `X-Original-Method`) nginx accepts only 2xx, 401 and 403:
//! * local file → `200` (plus `X-S3-Location`, nginx's fallback if the file vanishes);
//! * not local → `401` + `X-S3-Location` (presigned for the original method);
//! * anything else → `403` + `X-Stowaway-Status: 400|403|404|405|410|503`, which the generated
//!   nginx config turns back into that status, so clients see the same answers in every mode;
//! * every answer carries `X-Accel-Expires: <seconds>`, the verdict's lifetime in nginx's
//!   cache: at most `server.verdict_ttl`, never longer than the URL in `X-S3-Location` or the
//!   signed link stays valid. No `Cache-Control` is sent (nginx 1.22 lets a `Cache-Control`
//!   that precedes `X-Accel-Expires` veto caching, and actix does not keep header order).
//!
//! The handlers read the request state through [`Live`]: a SIGHUP reload swaps in a new
//! [`AppState`] atomically, and a request already running finishes on the one it started with.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::access::{Denial, Grant, LinkKeys};
use crate::beneath::DirHandle;
use crate::config::{FrontServer, Settings};
use crate::decision::{LocalState, Verdict, decide_mapped, local_state};
use crate::frontauth::{FrontAuth, Trust};
use crate::health::Health;
use crate::ignore::Ignore;
use crate::metrics::{Metrics, Outcome};
use crate::paths::{
    MapResult, accel_target, is_file_key, map_request, sendfile_target, strip_query,
};
use crate::presign::{MountUrls, ObjectUrl, Signer};

/// Header carrying the object URL next to a local answer, and the URL in auth mode.
pub const X_S3_LOCATION: HeaderName = HeaderName::from_static("x-s3-location");
/// Set by the front server when it asks again because the local file vanished.
pub const X_RECHECK: HeaderName = HeaderName::from_static("x-sidecar-recheck");
/// The original request target, when the request line is an error-handler URL (lighttpd).
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The client's method, in nginx `auth_request` mode.
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// In auth mode: the status nginx should answer instead of the `403` it is given.
pub const X_STOWAWAY_STATUS: HeaderName = HeaderName::from_static("x-stowaway-status");
/// Path of the nginx `auth_request` endpoint.
pub const AUTH_PATH: &str = "/_stowaway/auth";
const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
const X_ACCEL_EXPIRES: HeaderName = HeaderName::from_static("x-accel-expires");
const X_SENDFILE: HeaderName = HeaderName::from_static("x-sendfile");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// How a mount admits clients.
enum Gate {
    /// No access control.
    Open,
    /// Signed links only.
    Signed(LinkKeys),
    /// Access control is configured but its keys are unusable: refuse everything.
    Closed,
}

/// Everything a request handler needs, built once at start-up.
pub struct AppState {
    pub settings: Arc<Settings>,
    prefixes: Vec<String>,
    /// Handles of the mount roots, opened once: every lookup is resolved beneath them.
    roots: Vec<Option<DirHandle>>,
    /// Per mount: what is never served (`None` when the mount sets `serve_ignored`).
    ignores: Vec<Option<Ignore>>,
    /// Handles of the archive directories of mounts that serve their archive while S3 is
    /// down: a fallback is resolved beneath them like any local file.
    archives: Vec<Option<DirHandle>>,
    urls: Vec<MountUrls>,
    public_cache_control: Vec<HeaderValue>,
    signer: Option<Arc<Signer>>,
    gates: Vec<Gate>,
    any_access: bool,
    metrics: Option<Arc<Metrics>>,
    health: Arc<Health>,
    front: FrontAuth,
}

impl AppState {
    /// Precomputes per-mount data. `signer` must be set when a mount presigns.
    pub fn new(settings: Arc<Settings>, signer: Option<Arc<Signer>>) -> Self {
        let prefixes = settings
            .mounts
            .iter()
            .map(|m| m.prefix.as_str().to_string())
            .collect();
        let roots = settings
            .mounts
            .iter()
            .map(|m| match DirHandle::open(&m.root) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(mount = %m.prefix.as_str(), root = %m.root.display(), error = %e, "cannot open the mount root: nothing is served from local disk for this mount until stowaway restarts");
                    None
                }
            })
            .collect();
        let ignores = settings
            .mounts
            .iter()
            .map(|m| (!m.serve_ignored).then(|| Ignore::new(&m.ignore)))
            .collect();
        let archives = settings
            .mounts
            .iter()
            .map(|m| {
                let a = m.archive_root.as_ref().filter(|_| m.serve_archive_when_s3_down)?;
                match DirHandle::open(a) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::warn!(mount = %m.prefix.as_str(), archive = %a.display(), error = %e, "cannot open the archive directory: while S3 is down this mount redirects to S3 anyway");
                        None
                    }
                }
            })
            .collect();
        let urls = settings
            .mounts
            .iter()
            .map(|m| MountUrls::new(&settings.s3, m))
            .collect();
        let public_cache_control = settings
            .mounts
            .iter()
            .map(|m| {
                HeaderValue::try_from(format!(
                    "public, max-age={}",
                    m.url.redirect_max_age.as_secs()
                ))
                .unwrap_or(HeaderValue::from_static("no-store"))
            })
            .collect();
        let mut gates: Vec<Gate> = settings.mounts.iter().map(|_| Gate::Open).collect();
        for a in &settings.access {
            gates[a.mount] = match LinkKeys::new(a) {
                Ok(k) => Gate::Signed(k),
                Err(e) => {
                    tracing::error!(mount = %a.prefix, error = %e, "unusable link keys: refusing every request for this mount");
                    Gate::Closed
                }
            };
        }
        let any_access = !settings.access.is_empty();
        let front = FrontAuth::new(&settings.server.listen, &settings.server.front_auth);
        AppState {
            settings,
            prefixes,
            roots,
            ignores,
            archives,
            urls,
            public_cache_control,
            signer,
            gates,
            any_access,
            metrics: None,
            health: Arc::new(Health::default()),
            front,
        }
    }

    /// The health state this request state reads (shared across reloads).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The metrics this request state counts into.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Adds metrics and the readiness state shared with the background probes.
    pub fn with_observability(
        mut self,
        metrics: Option<Arc<Metrics>>,
        health: Arc<Health>,
    ) -> Self {
        self.metrics = metrics;
        self.health = health;
        self
    }

    /// Counts a finished decision by the status it produced.
    fn observe(&self, mount: Option<usize>, resp: &HttpResponse, start: Instant) {
        let Some(m) = &self.metrics else { return };
        let status = match resp.headers().get(X_STOWAWAY_STATUS) {
            Some(v) => v.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(403),
            None => resp.status().as_u16(),
        };
        let outcome = match status {
            200..=299 => Outcome::Local,
            301..=303 | 307 | 401 => Outcome::Remote,
            403 | 410 => Outcome::Denied,
            404 => Outcome::NotFound,
            503 => Outcome::Unavailable,
            _ => Outcome::BadRequest,
        };
        m.decision(mount, outcome, start.elapsed().as_secs_f64());
    }

    /// The redirect URL for `key` of mount `mount`, signed for `method` when the mount presigns.
    pub fn object_url(
        &self,
        mount: usize,
        method: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<ObjectUrl, crate::presign::PresignError> {
        let urls = &self.urls[mount];
        if urls.is_presigned() {
            let signer = self
                .signer
                .as_ref()
                .ok_or(crate::presign::PresignError::NoCredentials)?;
            let u = signer.presign(urls, method, key, now)?;
            if let Some(m) = &self.metrics {
                m.presigned();
            }
            Ok(u)
        } else {
            Ok(ObjectUrl {
                url: urls.public_url(key),
                max_age: None,
            })
        }
    }

    /// Readiness: every root is a readable directory, credentials (when signing) are valid,
    /// and the background probes (S3 reachable, uploader not stuck) last reported success.
    pub fn readiness(&self) -> Result<(), String> {
        for m in &self.settings.mounts {
            if std::fs::read_dir(&m.root).is_err() {
                return Err(format!("root {} is not readable", m.root.display()));
            }
        }
        if self.settings.needs_signing() {
            match &self.signer {
                Some(s) if s.has_valid_credentials(SystemTime::now()) => {}
                _ => return Err("no valid AWS credentials for presigning".into()),
            }
        }
        self.health.check()
    }
}

/// The request state the handlers read, swapped whole by a reload ([`crate::reload`]).
pub struct Live(arc_swap::ArcSwap<AppState>);

impl Live {
    pub fn new(state: AppState) -> Self {
        Live(arc_swap::ArcSwap::from_pointee(state))
    }

    /// The current state; a request keeps the one it loaded until it finishes.
    pub fn load(&self) -> arc_swap::Guard<Arc<AppState>> {
        self.0.load()
    }

    /// The current state, owned.
    pub fn load_full(&self) -> Arc<AppState> {
        self.0.load_full()
    }

    /// Puts `state` in place for every request that starts from now on.
    pub fn store(&self, state: AppState) {
        self.0.store(Arc::new(state));
    }
}

/// The nginx internal location of mount `mount_prefix`'s archive (`X-Accel-Redirect` target
/// while S3 is down). `@` cannot occur in a mount prefix, so it never equals a mount's own
/// internal location.
pub fn archive_location(internal_prefix: &str, mount_prefix: &str) -> String {
    format!("{internal_prefix}@archive/{}", &mount_prefix[1..])
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn redirect_response(
    state: &AppState,
    mount: usize,
    u: ObjectUrl,
    grant: Option<Grant>,
    now: u64,
) -> HttpResponse {
    let Ok(loc) = HeaderValue::try_from(u.url) else {
        return text(StatusCode::BAD_REQUEST, "bad request\n");
    };
    // A redirect reached through a signed link is not cached beyond the link's expiry.
    let max_age = match grant {
        Some(g) => u
            .max_age
            .map(|n| n.min(g.expires.saturating_sub(now)))
            .filter(|&n| n > 0),
        None => u.max_age,
    };
    let cc = match (state.urls[mount].is_presigned(), max_age) {
        (true, Some(n)) => HeaderValue::try_from(format!("private, max-age={n}"))
            .unwrap_or(HeaderValue::from_static("no-store")),
        (true, None) => HeaderValue::from_static("no-store"),
        (false, _) => state.public_cache_control[mount].clone(),
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, loc))
        .insert_header((header::CACHE_CONTROL, cc))
        .finish()
}

fn signing_failed(e: crate::presign::PresignError) -> HttpResponse {
    tracing::error!(error = %e, "cannot presign a redirect");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("storage credentials unavailable\n")
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The query of a raw request target, if any.
fn query_of(target: &str) -> Option<&str> {
    let (_, q) = target.split_once('?')?;
    Some(q.split_once('#').map_or(q, |(q, _)| q))
}

/// The client address for IP-bound links. From the front server (see [`crate::frontauth`]):
/// what it says (nginx: `X-Real-IP`, which the generated configs always overwrite; lighttpd:
/// the last `X-Forwarded-For` entry, which mod_proxy appends), or the peer address when the
/// header is absent. From anyone else the peer address, whatever headers they send: a spoofed
/// `X-Real-IP` must never satisfy an IP-bound link.
fn client_ip(req: &HttpRequest, front: FrontServer, trust: Trust) -> Option<IpAddr> {
    if trust != Trust::Front {
        return req.peer_addr().map(|a| a.ip());
    }
    let value = match front {
        FrontServer::Nginx => req.headers().get(X_REAL_IP),
        FrontServer::Lighttpd => req.headers().get_all(X_FORWARDED_FOR).last(),
    };
    match value {
        Some(v) => {
            let s = v.to_str().ok()?;
            s.rsplit(',').next()?.trim().parse().ok()
        }
        None => req.peer_addr().map(|a| a.ip()),
    }
}

/// The outcome of the access check and the decision for one request.
enum Judged<'a> {
    Decided(Verdict<'a>, Option<Grant>),
    Denied(Denial, usize),
}

/// Access check (mounts with `[mount.access]`), then the local-or-remote decision.
fn judge<'a>(
    state: &AppState,
    req: &HttpRequest,
    trust: Trust,
    target: &'a str,
    method: &str,
    recheck: bool,
    now: u64,
) -> Judged<'a> {
    let m = match map_request(&state.prefixes, target) {
        MapResult::Bad(e) => return Judged::Decided(Verdict::BadRequest(e), None),
        MapResult::NoMount => return Judged::Decided(Verdict::NotFound, None),
        MapResult::Mapped(m) => m,
    };
    let mut grant = None;
    if state.any_access && is_file_key(&m.key) {
        match &state.gates[m.mount] {
            Gate::Open => {}
            Gate::Closed => return Judged::Denied(Denial::UnknownKey, m.mount),
            Gate::Signed(keys) => {
                let front = state.settings.server.front;
                match keys.verify(
                    &state.prefixes[m.mount],
                    &m.key,
                    query_of(target),
                    method,
                    || client_ip(req, front, trust),
                    now,
                ) {
                    Ok(g) => grant = Some(g),
                    Err(d) => return Judged::Denied(d, m.mount),
                }
            }
        }
    }
    // Files the uploader ignores (`.env`, `*.part`, dotfiles…) are private to the machine.
    if let Some(ig) = &state.ignores[m.mount]
        && ig.key_ignored(&m.key)
    {
        return Judged::Decided(Verdict::NotFound, grant);
    }
    Judged::Decided(decide_mapped(&state.roots, m, recheck), grant)
}

fn denied_response(d: Denial) -> HttpResponse {
    match d {
        Denial::Expired => text(StatusCode::GONE, "link expired\n"),
        _ => text(StatusCode::FORBIDDEN, "forbidden\n"),
    }
}

/// The decision endpoint (nginx `proxy_pass` and lighttpd `mod_proxy` mode).
pub async fn decision(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    let state = live.load();
    let start = Instant::now();
    let mut mount = None;
    let resp = decision_response(&req, &state, &mut mount);
    state.observe(mount, &resp, start);
    resp
}

/// A request that should have come from the authenticated front server and did not: no
/// verdict, no internal header, nothing about the file.
fn not_from_front(req: &HttpRequest) -> HttpResponse {
    tracing::warn!(
        peer = ?req.peer_addr(),
        path = req.uri().path(),
        "refused: request without the front server's secret (server.front_secret_file)"
    );
    text(StatusCode::FORBIDDEN, "forbidden\n")
}

fn decision_response(
    req: &HttpRequest,
    state: &AppState,
    mount_seen: &mut Option<usize>,
) -> HttpResponse {
    let trust = state.front.check(req);
    if trust == Trust::Refused {
        return not_from_front(req);
    }
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
    let own_target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |p| p.as_str());
    let target = if recheck {
        match req.headers().get(X_ORIGINAL_URI).map(HeaderValue::to_str) {
            Some(Ok(t)) => t,
            Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "bad request\n"),
            None => own_target,
        }
    } else {
        own_target
    };
    let now = SystemTime::now();
    let now_s = unix_secs(now);
    let judged = judge(state, req, trust, target, method, recheck, now_s);
    let (verdict, grant) = match judged {
        Judged::Denied(d, mount) => {
            *mount_seen = Some(mount);
            tracing::debug!(method, path = strip_query(target), recheck, denial = %d, "refused");
            return denied_response(d);
        }
        Judged::Decided(v, g) => (v, g),
    };
    // The path only: a signed link's query is a credential.
    tracing::debug!(
        method,
        path = strip_query(target),
        recheck,
        ?verdict,
        "decision"
    );
    match verdict {
        Verdict::BadRequest(_) => text(StatusCode::BAD_REQUEST, "bad request\n"),
        Verdict::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        Verdict::Remote { mount, key } => {
            *mount_seen = Some(mount);
            // A recheck is never answered from the archive either: the front server asks
            // again only after a file it was sent to vanished, and must not loop.
            if !recheck
                && state.health.s3_unreachable()
                && let Some(resp) = archive_response(state, mount, &key, method, now)
            {
                return resp;
            }
            match state.object_url(mount, method, &key, now) {
                Ok(u) => redirect_response(state, mount, u, grant, now_s),
                Err(e) => signing_failed(e),
            }
        }
        Verdict::Local { mount, key } => {
            *mount_seen = Some(mount);
            let m = &state.settings.mounts[mount];
            let target = match state.settings.server.front {
                FrontServer::Nginx => accel_target(
                    &state.settings.server.internal_prefix,
                    m.prefix.as_str(),
                    &key,
                ),
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
            if state.settings.server.fallback_header
                && state.settings.server.front == FrontServer::Nginx
                && let Ok(u) = state.object_url(mount, method, &key, now)
                && let Ok(v) = HeaderValue::try_from(u.url)
            {
                resp.insert_header((X_S3_LOCATION, v));
            }
            resp.finish()
        }
    }
}

/// While S3 is unreachable: the archived copy of `key`, if the mount serves its archive and the
/// copy is a regular file reached beneath the archive handle without symlinks; the front
/// server sends it like a local file. `None` otherwise (the caller redirects to S3 as usual).
fn archive_response(
    state: &AppState,
    mount: usize,
    key: &str,
    method: &str,
    now: SystemTime,
) -> Option<HttpResponse> {
    let archive = state.archives.get(mount)?.as_ref()?;
    if local_state(Some(archive), key) != LocalState::File {
        return None;
    }
    let m = &state.settings.mounts[mount];
    let (name, target) = match state.settings.server.front {
        FrontServer::Nginx => (
            X_ACCEL_REDIRECT,
            accel_target(
                &archive_location(&state.settings.server.internal_prefix, "/"),
                m.prefix.as_str(),
                key,
            ),
        ),
        FrontServer::Lighttpd => (X_SENDFILE, sendfile_target(archive.path(), key)),
    };
    let target = HeaderValue::try_from(target).ok()?;
    tracing::debug!(mount = %m.prefix.as_str(), "S3 is unreachable: serving the archived copy");
    let mut resp = HttpResponse::Ok();
    resp.insert_header((name, target));
    // nginx's fallback if the archived copy vanishes before it opens it, as for local files.
    if state.settings.server.fallback_header
        && state.settings.server.front == FrontServer::Nginx
        && let Ok(u) = state.object_url(mount, method, key, now)
        && let Ok(v) = HeaderValue::try_from(u.url)
    {
        resp.insert_header((X_S3_LOCATION, v));
    }
    Some(resp.finish())
}

/// `X-Amz-Expires` of a presigned URL, 0 if absent.
fn amz_expires(url: &str) -> u64 {
    url.split_once("X-Amz-Expires=")
        .and_then(|(_, r)| r.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl AppState {
    /// How long nginx may cache an auth verdict: `server.verdict_ttl`, but never longer than
    /// the redirect URL stays usable (a presigned URL's cacheable age, or half its validity
    /// when it is minted per request) nor past a signed link's expiry.
    pub fn verdict_ttl(
        &self,
        mount: usize,
        url: Option<&ObjectUrl>,
        grant: Option<Grant>,
        now: u64,
    ) -> u64 {
        let mut ttl = self.settings.server.verdict_ttl.as_secs();
        if let Some(u) = url
            && self.urls[mount].is_presigned()
        {
            ttl = ttl.min(u.max_age.unwrap_or_else(|| amz_expires(&u.url) / 2));
        }
        if let Some(g) = grant {
            ttl = ttl.min(g.expires.saturating_sub(now));
        }
        ttl
    }
}

fn ttl_value(ttl: u64) -> HeaderValue {
    HeaderValue::from(ttl)
}

/// An auth-mode refusal: `403` carrying the status nginx should really answer.
fn auth_refused(status: u16, ttl: u64) -> HttpResponse {
    HttpResponse::Forbidden()
        .insert_header((X_ACCEL_EXPIRES, ttl_value(ttl)))
        .insert_header((X_STOWAWAY_STATUS, HeaderValue::from(status)))
        .finish()
}

/// The nginx `auth_request` endpoint (`GET /_stowaway/auth`).
pub async fn auth(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    let state = live.load();
    let start = Instant::now();
    let mut mount = None;
    let resp = auth_response(&req, &state, &mut mount);
    state.observe(mount, &resp, start);
    resp
}

fn auth_response(
    req: &HttpRequest,
    state: &AppState,
    mount_seen: &mut Option<usize>,
) -> HttpResponse {
    let trust = state.front.check(req);
    if trust == Trust::Refused {
        return not_from_front(req);
    }
    let base_ttl = state.settings.server.verdict_ttl.as_secs();
    let method = match req
        .headers()
        .get(X_ORIGINAL_METHOD)
        .map(HeaderValue::as_bytes)
    {
        None | Some(b"GET") => "GET",
        Some(b"HEAD") => "HEAD",
        Some(_) => return auth_refused(405, base_ttl),
    };
    let Some(target) = req
        .headers()
        .get(X_ORIGINAL_URI)
        .and_then(|v| v.to_str().ok())
    else {
        // Not a request from the generated config (or a non-ASCII target): never cached.
        return auth_refused(400, 0);
    };
    let now = SystemTime::now();
    let now_s = unix_secs(now);
    let (verdict, grant) = match judge(state, req, trust, target, method, false, now_s) {
        Judged::Denied(d, mount) => {
            *mount_seen = Some(mount);
            tracing::debug!(method, path = strip_query(target), denial = %d, "auth: refused");
            return auth_refused(d.status(), base_ttl);
        }
        Judged::Decided(v, g) => (v, g),
    };
    tracing::debug!(
        method,
        path = strip_query(target),
        ?verdict,
        "auth: decision"
    );
    match verdict {
        Verdict::BadRequest(_) => auth_refused(400, base_ttl),
        Verdict::NotFound => auth_refused(404, base_ttl),
        Verdict::Remote { mount, key } => match state.object_url(mount, method, &key, now) {
            Ok(u) => {
                *mount_seen = Some(mount);
                let ttl = state.verdict_ttl(mount, Some(&u), grant, now_s);
                let Ok(loc) = HeaderValue::try_from(u.url) else {
                    return auth_refused(400, 0);
                };
                HttpResponse::Unauthorized()
                    .insert_header((X_ACCEL_EXPIRES, ttl_value(ttl)))
                    .insert_header((X_S3_LOCATION, loc))
                    .finish()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot presign a redirect");
                auth_refused(503, 0)
            }
        },
        Verdict::Local { mount, key } => {
            *mount_seen = Some(mount);
            let mut resp = HttpResponse::Ok();
            let ttl = if state.settings.server.fallback_header {
                match state.object_url(mount, method, &key, now).map(|u| {
                    (
                        state.verdict_ttl(mount, Some(&u), grant, now_s),
                        HeaderValue::try_from(u.url),
                    )
                }) {
                    Ok((ttl, Ok(v))) => {
                        resp.insert_header((X_S3_LOCATION, v));
                        ttl
                    }
                    // Serve the local file, but do not cache a verdict without its fallback.
                    _ => 0,
                }
            } else {
                state.verdict_ttl(mount, None, grant, now_s)
            };
            resp.insert_header((X_ACCEL_EXPIRES, ttl_value(ttl)));
            resp.finish()
        }
    }
}

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> HttpResponse {
    text(StatusCode::OK, "ok\n")
}

/// `GET /readyz`: roots readable and, when signing, credentials valid.
pub async fn readyz(live: web::Data<Live>) -> HttpResponse {
    match live.load().readiness() {
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

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(live: web::Data<Live>) -> HttpResponse {
    match &live.load().metrics {
        Some(m) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(m.render()),
        None => text(
            StatusCode::NOT_FOUND,
            "metrics are served on server.metrics_listen\n",
        ),
    }
}

/// Routes of a separate metrics listener (`server.metrics_listen`).
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Registers all routes on an actix `App`; `/metrics` only when `with_metrics`.
pub fn configure_with(cfg: &mut web::ServiceConfig, with_metrics: bool) {
    if with_metrics {
        cfg.route("/metrics", web::get().to(metrics));
    }
    configure(cfg);
}

/// Registers all routes on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route(AUTH_PATH, web::to(auth))
        .default_service(web::to(decision));
}
