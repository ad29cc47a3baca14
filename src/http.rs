//! The HTTP face: the decision endpoint the front server proxies to, nginx's auth endpoint,
//! and health checks. Both endpoints share one skeleton (front check, request, access check,
//! verdict, metrics); the headers that differ per front server are written by
//! [`crate::front`], the URLs and their lifetimes come from [`crate::url`].
//!
//! Answers, in nginx `proxy_pass` mode:
//! * local file → `200`, `X-Accel-Redirect: <internal prefix><mount>/<encoded key>`, the object's
//!   URL in `X-S3-Location` (nginx's fallback if the file vanishes before it opens it),
//!   `Content-Length: 0` and no body (a body costs nginx its keep-alive upstream connection);
//! * lighttpd: the same with `X-Sendfile: <encoded absolute path>` instead;
//! * not local → `302` to the object's URL with a deliberate `Cache-Control` (for nginx also
//!   `X-Accel-Expires`, how long its local-first redirect cache may keep it:
//!   [`front::redirect_expires`]); but while the
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

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::access::{Denial, Grant, LinkKeys};
use crate::beneath::DirHandle;
use crate::cache::Caches;
use crate::config::Settings;
use crate::decision::{LocalState, Verdict, decide_mapped, local_state};
use crate::front::{self, LocalFile, Place, nginx_auth};
use crate::frontauth::{FrontAuth, Trust};
use crate::health::Health;
use crate::ignore::{Ignore, OWN_PREFIX};
use crate::metrics::{Metrics, Outcome};
use crate::paths::{MapResult, is_file_key, map_request, strip_query};
use crate::storage_class::{self, StorageClasses};
use crate::tombstone::Tombstones;
use crate::url::{MintedUrl, ObjectUrl, PresignError, Signer};

use crate::front::nginx_auth::{AUTH_PATH, X_ORIGINAL_METHOD};

/// Set by the front server when it asks again because the local file vanished.
pub const X_RECHECK: HeaderName = HeaderName::from_static("x-sidecar-recheck");
/// The original request target, when the request line is an error-handler URL (lighttpd), and
/// in nginx `auth_request` mode.
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

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
    /// Per mount: where its migrated objects are answered from.
    urls: Vec<ObjectUrl>,
    signer: Option<Arc<Signer>>,
    gates: Vec<Gate>,
    any_access: bool,
    metrics: Option<Arc<Metrics>>,
    health: Arc<Health>,
    front: FrontAuth,
    /// Paths removed by `stowaway rm`, refused until their tombstones expire.
    tombstones: Arc<Tombstones>,
    /// Objects in GLACIER / DEEP_ARCHIVE: 503 (or the archived copy) until restored.
    storage_classes: Arc<StorageClasses>,
    /// The mounts' hot-object caches (docs/cache.md).
    caches: Arc<Caches>,
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
            .map(|m| {
                ObjectUrl::new(
                    &settings.s3,
                    m,
                    signer.as_ref(),
                    settings.server.url_cache_entries,
                )
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
            signer,
            gates,
            any_access,
            metrics: None,
            health: Arc::new(Health::default()),
            front,
            tombstones: Arc::new(Tombstones::empty()),
            storage_classes: Arc::default(),
            caches: Arc::new(Caches::none()),
        }
    }

    /// Answers cached objects from `caches` (shared with their background tasks).
    pub fn with_caches(mut self, caches: Arc<Caches>) -> Self {
        self.caches = caches;
        self
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

    /// Refuses the paths of `tombstones` (shared with the refresher and the uploader).
    pub fn with_tombstones(mut self, tombstones: Arc<Tombstones>) -> Self {
        if let Some(m) = &self.metrics {
            m.set_tombstones(tombstones.clone());
        }
        self.tombstones = tombstones;
        self
    }

    /// The tombstones this state refuses (the admin API adds the ones it writes).
    pub fn tombstones(&self) -> &Arc<Tombstones> {
        &self.tombstones
    }

    /// Knows which objects are in an archived storage class (shared with its refresher).
    pub fn with_storage_classes(mut self, classes: Arc<StorageClasses>) -> Self {
        self.storage_classes = classes;
        self
    }

    /// The URL of `key` of mount `mount` for `method`.
    pub fn mint_url(
        &self,
        mount: usize,
        method: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<MintedUrl, PresignError> {
        let url = &self.urls[mount];
        let (minted, lookup) = url.mint(method, key, now)?;
        if let Some(m) = &self.metrics {
            match url {
                ObjectUrl::Presigned { .. } => m.presigned(lookup),
                ObjectUrl::Public { .. } => {}
            }
        }
        Ok(minted)
    }

    /// How long nginx may cache an auth verdict: `server.verdict_ttl`, but never longer than
    /// an answer naming the redirect URL may be reused, nor past a signed link's expiry.
    pub fn verdict_ttl(&self, url: Option<&MintedUrl>, grant: Option<Grant>, now: u64) -> u64 {
        let mut ttl = self.settings.server.verdict_ttl.as_secs();
        if let Some(n) = url.and_then(|u| u.reusable_for(now)) {
            ttl = ttl.min(n);
        }
        if let Some(g) = grant {
            ttl = ttl.min(g.expires.saturating_sub(now));
        }
        ttl
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

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The query of a raw request target, if any.
fn query_of(target: &str) -> Option<&str> {
    let (_, q) = target.split_once('?')?;
    Some(q.split_once('#').map_or(q, |(q, _)| q))
}

/// The outcome of the access check and the decision for one request.
enum Judged<'a> {
    Decided(Verdict<'a>, Option<Grant>),
    Denied(Denial, usize),
    /// Removed by `stowaway rm`; its tombstone is alive.
    Tombstoned(usize),
}

/// Access check (mounts with `[mount.access]`), then the local-or-remote decision.
fn judge<'a>(
    state: &AppState,
    req: &HttpRequest,
    trust: Trust,
    ask: &Ask<'a>,
    now: u64,
) -> Judged<'a> {
    let m = match map_request(&state.prefixes, ask.target) {
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
                    query_of(ask.target),
                    ask.method,
                    || front::client_ip(front, req, trust),
                    now,
                ) {
                    Ok(g) => grant = Some(g),
                    Err(d) => return Judged::Denied(d, m.mount),
                }
            }
        }
    }
    // Files the uploader ignores (`.env`, `*.part`, dotfiles…) are private to the machine.
    // stowaway's own names (tombstones live under `.stowaway-tombstones/` in the bucket) are
    // never served, not even on a mount with `serve_ignored`.
    let private = match &state.ignores[m.mount] {
        Some(ig) => ig.key_ignored(&m.key),
        None => m.key.split('/').any(|c| c.starts_with(OWN_PREFIX)),
    };
    if private {
        return Judged::Decided(Verdict::NotFound, grant);
    }
    // Before the disk: a copy that came back after `rm` is refused like the object.
    if state.tombstones.live_until(m.mount, &m.key, now).is_some() {
        return Judged::Tombstoned(m.mount);
    }
    Judged::Decided(decide_mapped(&state.roots, m, ask.recheck), grant)
}

/// The two endpoints share one skeleton (front check, request, access check, verdict); they
/// differ in how they read the request and how they write each answer.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// nginx `proxy_pass`, lighttpd `mod_proxy`: the client's own request, answered for it.
    Decision,
    /// nginx `auth_request`: a subrequest describing the client's, answered for nginx
    /// ([`crate::front::nginx_auth`]).
    Auth,
}

/// What one request asks about.
struct Ask<'r> {
    method: &'static str,
    /// The raw request target (path and query) of the client's request.
    target: &'r str,
    /// The front server asks again because the file it was sent to vanished.
    recheck: bool,
}

/// Why a request gets no file and no redirect.
enum Refusal {
    /// Neither GET nor HEAD.
    Method,
    /// A request the generated front config would not send (an unreadable target header).
    Unreadable,
    /// A hostile or malformed path, or an answer that cannot be put into a header.
    BadPath,
    Denied(Denial),
    NotFound,
    /// Removed by `stowaway rm`: `mount.tombstone_status` (404 or 410).
    Removed(u16),
    /// No URL could be minted.
    Unavailable(PresignError),
    /// The object is in GLACIER / DEEP_ARCHIVE and no restored copy is known: try again after.
    Archived(Duration),
}

impl Refusal {
    fn outcome(&self) -> Outcome {
        match self {
            Refusal::Method | Refusal::Unreadable | Refusal::BadPath => Outcome::BadRequest,
            Refusal::Denied(_) => Outcome::Denied,
            Refusal::NotFound | Refusal::Removed(_) => Outcome::NotFound,
            Refusal::Unavailable(_) | Refusal::Archived(_) => Outcome::Unavailable,
        }
    }
}

/// A finished answer, with what the metrics count it as.
struct Reply {
    resp: HttpResponse,
    outcome: Outcome,
}

impl Endpoint {
    /// The method and target the request asks about.
    fn read<'r>(self, req: &'r HttpRequest) -> Result<Ask<'r>, Refusal> {
        match self {
            Endpoint::Decision => {
                let method = if req.method() == Method::GET {
                    "GET"
                } else if req.method() == Method::HEAD {
                    "HEAD"
                } else {
                    return Err(Refusal::Method);
                };
                let recheck = req.headers().contains_key(X_RECHECK);
                let own = req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().path(), |p| p.as_str());
                let target = match (recheck, req.headers().get(X_ORIGINAL_URI)) {
                    (true, Some(v)) => v.to_str().map_err(|_| Refusal::Unreadable)?,
                    (true, None) | (false, _) => own,
                };
                Ok(Ask {
                    method,
                    target,
                    recheck,
                })
            }
            Endpoint::Auth => {
                let method = match req
                    .headers()
                    .get(X_ORIGINAL_METHOD)
                    .map(HeaderValue::as_bytes)
                {
                    None | Some(b"GET") => "GET",
                    Some(b"HEAD") => "HEAD",
                    Some(_) => return Err(Refusal::Method),
                };
                // Missing: not a request from the generated config (or a non-ASCII target).
                let target = req
                    .headers()
                    .get(X_ORIGINAL_URI)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(Refusal::Unreadable)?;
                Ok(Ask {
                    method,
                    target,
                    recheck: false,
                })
            }
        }
    }

    fn refuse(self, state: &AppState, r: Refusal) -> Reply {
        if let Refusal::Unavailable(e) = &r {
            tracing::error!(error = %e, "cannot presign a redirect");
        }
        let outcome = r.outcome();
        let resp = match self {
            Endpoint::Decision => match r {
                Refusal::Method => HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, "GET, HEAD"))
                    .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                    .body("method not allowed\n"),
                Refusal::Unreadable | Refusal::BadPath => {
                    text(StatusCode::BAD_REQUEST, "bad request\n")
                }
                Refusal::Denied(Denial::Expired) => text(StatusCode::GONE, "link expired\n"),
                Refusal::Denied(_) => text(StatusCode::FORBIDDEN, "forbidden\n"),
                Refusal::NotFound | Refusal::Removed(404) => {
                    text(StatusCode::NOT_FOUND, "not found\n")
                }
                Refusal::Removed(_) => text(StatusCode::GONE, "gone\n"),
                Refusal::Unavailable(_) => HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, "5"))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                    .body("storage credentials unavailable\n"),
                Refusal::Archived(after) => HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, after.as_secs().to_string()))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                    .body("archived in S3 (GLACIER/DEEP_ARCHIVE), not readable until restored; try again later\n"),
            },
            Endpoint::Auth => {
                let ttl = state.settings.server.verdict_ttl.as_secs();
                match r {
                    Refusal::Method => nginx_auth::refused(405, ttl),
                    // Never cached: the next request may well be readable.
                    Refusal::Unreadable => nginx_auth::refused(400, 0),
                    Refusal::BadPath => nginx_auth::refused(400, ttl),
                    Refusal::Denied(d) => nginx_auth::refused(d.status(), ttl),
                    Refusal::NotFound => nginx_auth::refused(404, ttl),
                    Refusal::Removed(status) => nginx_auth::refused(status, ttl),
                    Refusal::Unavailable(_) | Refusal::Archived(_) => nginx_auth::refused(503, 0),
                }
            }
        };
        Reply { resp, outcome }
    }

    /// Not local: a redirect to the object (decision endpoint: first the archived copy while
    /// S3 is unreachable).
    fn remote(
        self,
        state: &AppState,
        ask: &Ask<'_>,
        mount: usize,
        key: &str,
        grant: Option<Grant>,
        now: SystemTime,
    ) -> Reply {
        let now_s = unix_secs(now);
        if let storage_class::Answer::Unavailable(after) = state.storage_classes.check(mount, key) {
            // The archived copy, still local, beats a 503 (decision endpoint, as below).
            if let Endpoint::Decision = self
                && !ask.recheck
                && let Some(resp) = archive_answer(state, mount, key, ask.method, now)
            {
                return Reply {
                    resp,
                    outcome: Outcome::Local,
                };
            }
            state.storage_classes.look_soon(mount, key);
            tracing::debug!(
                method = ask.method,
                path = strip_query(ask.target),
                "archived storage class: not readable until restored"
            );
            return self.refuse(state, Refusal::Archived(after));
        }
        // A recheck is never answered from the archive either: the front server asks again
        // only after a file it was sent to vanished, and must not loop.
        if let Endpoint::Decision = self
            && !ask.recheck
            && state.health.s3_unreachable()
            && let Some(resp) = archive_answer(state, mount, key, ask.method, now)
        {
            return Reply {
                resp,
                outcome: Outcome::Local,
            };
        }
        let u = match state.mint_url(mount, ask.method, key, now) {
            Ok(u) => u,
            Err(e) => return self.refuse(state, Refusal::Unavailable(e)),
        };
        let resp = match self {
            Endpoint::Decision => {
                let cc = u.cache_control(grant.map(|g| g.expires), now_s);
                let expires = front::redirect_expires(
                    state.settings.server.front,
                    &u,
                    grant.is_some(),
                    now_s,
                );
                let Ok(loc) = u.into_header() else {
                    return self.refuse(state, Refusal::BadPath);
                };
                let mut resp = HttpResponse::Found();
                // First: nginx 1.22 lets a preceding Cache-Control veto caching (the generated
                // config also ignores Cache-Control for caching).
                if let Some(h) = expires {
                    resp.insert_header(h);
                }
                resp.insert_header((header::LOCATION, loc))
                    .insert_header((header::CACHE_CONTROL, cc))
                    .finish()
            }
            Endpoint::Auth => {
                let ttl = state.verdict_ttl(Some(&u), grant, now_s);
                let Ok(loc) = u.into_header() else {
                    // Like an unreadable request: a 400 that is never cached.
                    return self.refuse(state, Refusal::Unreadable);
                };
                nginx_auth::remote(ttl, loc)
            }
        };
        Reply {
            resp,
            outcome: Outcome::Remote,
        }
    }

    /// A file the front server sends itself: a local one, or one in the hot-object cache
    /// (auth mode: the same 200; nginx's try_files looks into the cache after the root).
    #[allow(clippy::too_many_arguments)]
    fn local_in(
        self,
        state: &AppState,
        ask: &Ask<'_>,
        mount: usize,
        key: &str,
        grant: Option<Grant>,
        now: SystemTime,
        place: Place<'_>,
    ) -> Reply {
        let server = &state.settings.server;
        let resp = match self {
            Endpoint::Decision => {
                let m = &state.settings.mounts[mount];
                let file = LocalFile {
                    mount_prefix: m.prefix.as_str(),
                    root: &m.root,
                    key,
                    place,
                };
                let fallback = || {
                    state
                        .mint_url(mount, ask.method, key, now)
                        .ok()
                        .map(|u| u.url)
                };
                match front::send_local(server.front, server, &file, fallback) {
                    Some(resp) => resp,
                    None => return self.refuse(state, Refusal::BadPath),
                }
            }
            Endpoint::Auth => {
                let now_s = unix_secs(now);
                let (ttl, fallback) = if server.fallback_header {
                    match state
                        .mint_url(mount, ask.method, key, now)
                        .map(|u| (state.verdict_ttl(Some(&u), grant, now_s), u.into_header()))
                    {
                        Ok((ttl, Ok(v))) => (ttl, Some(v)),
                        // Serve the local file, but do not cache a verdict without its fallback.
                        Ok((_, Err(_))) | Err(_) => (0, None),
                    }
                } else {
                    (state.verdict_ttl(None, grant, now_s), None)
                };
                nginx_auth::local(ttl, fallback)
            }
        };
        Reply {
            resp,
            outcome: Outcome::Local,
        }
    }

    /// The whole answer to `req`, and the mount it concerned (for the metrics).
    fn answer(self, req: &HttpRequest, state: &AppState) -> (Reply, Option<usize>) {
        let trust = state.front.check(req);
        match trust {
            Trust::Refused => {
                let resp = not_from_front(req);
                let outcome = Outcome::Denied;
                return (Reply { resp, outcome }, None);
            }
            Trust::Direct | Trust::Front => {}
        }
        let ask = match self.read(req) {
            Ok(ask) => ask,
            Err(r) => return (self.refuse(state, r), None),
        };
        let now = SystemTime::now();
        let (verdict, grant) = match judge(state, req, trust, &ask, unix_secs(now)) {
            Judged::Denied(d, mount) => {
                self.log_refused(&ask, d);
                return (self.refuse(state, Refusal::Denied(d)), Some(mount));
            }
            Judged::Decided(v, g) => (v, g),
            Judged::Tombstoned(mount) => {
                let status = state.settings.mounts[mount].tombstone_status;
                tracing::debug!(
                    method = ask.method,
                    path = strip_query(ask.target),
                    status,
                    "removed by stowaway rm: tombstone alive"
                );
                return (self.refuse(state, Refusal::Removed(status)), Some(mount));
            }
        };
        self.log_verdict(&ask, &verdict);
        match verdict {
            Verdict::BadRequest(_) => (self.refuse(state, Refusal::BadPath), None),
            Verdict::NotFound => (self.refuse(state, Refusal::NotFound), None),
            Verdict::Remote { mount, key } => match state.caches.mount(mount) {
                // A recheck follows a file that vanished: never the cache either.
                Some(c) if !ask.recheck && c.lookup(&key) => (
                    self.local_in(state, &ask, mount, &key, grant, now, Place::Cache(c.dir())),
                    Some(mount),
                ),
                Some(c) => {
                    let reply = self.remote(state, &ask, mount, &key, grant, now);
                    if reply.outcome == Outcome::Remote {
                        c.miss(&key);
                    }
                    (reply, Some(mount))
                }
                None => (
                    self.remote(state, &ask, mount, &key, grant, now),
                    Some(mount),
                ),
            },
            Verdict::Local { mount, key } => (
                self.local_in(state, &ask, mount, &key, grant, now, Place::Root),
                Some(mount),
            ),
        }
    }

    // The path only: a signed link's query is a credential.
    fn log_refused(self, ask: &Ask<'_>, denial: Denial) {
        let (method, path) = (ask.method, strip_query(ask.target));
        match self {
            Endpoint::Decision => {
                tracing::debug!(method, path, recheck = ask.recheck, denial = %denial, "refused")
            }
            Endpoint::Auth => tracing::debug!(method, path, denial = %denial, "auth: refused"),
        }
    }

    fn log_verdict(self, ask: &Ask<'_>, verdict: &Verdict<'_>) {
        let (method, path) = (ask.method, strip_query(ask.target));
        match self {
            Endpoint::Decision => {
                tracing::debug!(method, path, recheck = ask.recheck, ?verdict, "decision")
            }
            Endpoint::Auth => tracing::debug!(method, path, ?verdict, "auth: decision"),
        }
    }

    /// Answers `req` and counts the answer.
    fn serve(self, req: &HttpRequest, state: &AppState) -> HttpResponse {
        let start = Instant::now();
        let (reply, mount) = self.answer(req, state);
        if let Some(m) = &state.metrics {
            m.decision(mount, reply.outcome, start.elapsed().as_secs_f64());
        }
        reply.resp
    }
}

/// While S3 is unreachable: the archived copy of `key`, if the mount serves its archive and the
/// copy is a regular file reached beneath the archive handle without symlinks; the front
/// server sends it like a local file. `None` otherwise (the caller redirects to S3 as usual).
fn archive_answer(
    state: &AppState,
    mount: usize,
    key: &str,
    method: &str,
    now: SystemTime,
) -> Option<HttpResponse> {
    let archive = state.archives.get(mount)?.as_ref()?;
    match local_state(Some(archive), key) {
        LocalState::File => {}
        LocalState::Missing | LocalState::Refused => return None,
    }
    let m = &state.settings.mounts[mount];
    let file = LocalFile {
        mount_prefix: m.prefix.as_str(),
        root: &m.root,
        key,
        place: Place::Archive(archive.path()),
    };
    let server = &state.settings.server;
    // nginx's fallback if the archived copy vanishes before it opens it, as for local files.
    let fallback = || state.mint_url(mount, method, key, now).ok().map(|u| u.url);
    let resp = front::send_local(server.front, server, &file, fallback)?;
    tracing::debug!(mount = %m.prefix.as_str(), "S3 is unreachable: serving the archived copy");
    Some(resp)
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

/// The decision endpoint (nginx `proxy_pass` and lighttpd `mod_proxy` mode).
pub async fn decision(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    Endpoint::Decision.serve(&req, &live.load())
}

/// The nginx `auth_request` endpoint ([`AUTH_PATH`]).
pub async fn auth(req: HttpRequest, live: web::Data<Live>) -> HttpResponse {
    Endpoint::Auth.serve(&req, &live.load())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CliOverrides, FsChecks, load_settings};
    use actix_web::App;
    use actix_web::test::{TestRequest, call_service, init_service};

    fn settings(dir: &std::path::Path) -> Arc<Settings> {
        let root = dir.join("static");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.jpg"), b"a").unwrap();
        let p = dir.join("s.toml");
        std::fs::write(
            &p,
            format!(
                "[server]\nlisten = \"127.0.0.1:1\"\n[uploader]\nenabled = false\n\
                 [s3]\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\n\
                 addressing_style = \"path\"\n\
                 [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"site-media\"\n\
                 key_prefix = \"static/\"\nurl = \"public\"\nupload = false\n",
                root.display()
            ),
        )
        .unwrap();
        Arc::new(
            load_settings(Some(&p), &CliOverrides::default(), FsChecks::Check)
                .unwrap()
                .0,
        )
    }

    /// A tombstoned path is refused by both endpoints even though its file is on disk; other
    /// paths and other mounts are untouched, and the tombstone's own name is never served.
    #[actix_web::test]
    async fn a_tombstone_refuses_even_a_local_file() {
        let d = tempfile::tempdir().unwrap();
        let settings = settings(d.path());
        std::fs::write(d.path().join("static/b.jpg"), b"b").unwrap();
        let tombstones = Arc::new(Tombstones::empty());
        let now = unix_secs(SystemTime::now());
        tombstones.insert(0, "a.jpg", now + 3600);
        tombstones.insert(0, "gone.jpg", now + 3600);
        tombstones.insert(0, "old.jpg", now.saturating_sub(1));
        let state = AppState::new(settings, None).with_tombstones(tombstones);
        let app = init_service(
            App::new()
                .app_data(web::Data::new(Live::new(state)))
                .configure(configure),
        )
        .await;
        let status = |uri: &'static str| {
            let app = &app;
            async move {
                let r = call_service(app, TestRequest::get().uri(uri).to_request()).await;
                r.status().as_u16()
            }
        };
        assert_eq!(status("/static/a.jpg").await, 404, "local, but removed");
        assert_eq!(status("/static/gone.jpg").await, 404, "migrated, removed");
        assert_eq!(status("/static/b.jpg").await, 200);
        assert_eq!(status("/static/old.jpg").await, 302, "expired tombstone");
        assert_eq!(status("/static/.stowaway-tombstones/a.jpg").await, 404);
        let r = call_service(
            &app,
            TestRequest::get()
                .uri(AUTH_PATH)
                .insert_header((X_ORIGINAL_URI, "/static/a.jpg"))
                .to_request(),
        )
        .await;
        assert_eq!(r.status().as_u16(), 403);
        assert_eq!(
            r.headers()
                .get("x-stowaway-status")
                .and_then(|v| v.to_str().ok()),
            Some("404")
        );
    }

    /// Every answer of both endpoints is counted as what it was, including the auth endpoint's
    /// refusals (a `403` standing for another status).
    #[actix_web::test]
    async fn both_endpoints_count_the_outcome_they_answered() {
        let d = tempfile::tempdir().unwrap();
        let settings = settings(d.path());
        let metrics = Arc::new(Metrics::new(&settings, None));
        let state = AppState::new(settings, None)
            .with_observability(Some(metrics.clone()), Arc::new(Health::default()));
        let app = init_service(
            App::new()
                .app_data(web::Data::new(Live::new(state)))
                .configure(configure),
        )
        .await;
        let auth = |uri: &str| {
            TestRequest::get()
                .uri(AUTH_PATH)
                .insert_header((X_ORIGINAL_URI, uri.to_string()))
        };
        let cases = [
            (TestRequest::get().uri("/static/a.jpg"), 200),
            (TestRequest::get().uri("/static/gone.jpg"), 302),
            (TestRequest::post().uri("/static/a.jpg"), 405),
            (TestRequest::get().uri("/static/%2e%2e/x"), 400),
            (TestRequest::get().uri("/elsewhere/x"), 404),
            (auth("/static/a.jpg"), 200),
            (auth("/static/gone.jpg"), 401),
            (
                auth("/static/a.jpg").insert_header((X_ORIGINAL_METHOD, "PUT")),
                403,
            ),
            (TestRequest::get().uri(AUTH_PATH), 403),
            (auth("/elsewhere/x"), 403),
        ];
        for (req, status) in cases {
            let resp = call_service(&app, req.to_request()).await;
            assert_eq!(resp.status().as_u16(), status);
        }
        let text = metrics.render();
        let count = |outcome: &str, mount: &str| {
            let key =
                format!("stowaway_decisions_total{{outcome=\"{outcome}\",mount=\"{mount}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap())
        };
        assert_eq!(count("local", "/static/"), 2, "{text}");
        assert_eq!(count("remote", "/static/"), 2, "{text}");
        // 405 in both endpoints, the auth request without X-Original-URI, the `..` path.
        assert_eq!(count("bad_request", ""), 4, "{text}");
        assert_eq!(count("not_found", ""), 2, "{text}");
    }
}
