//! The HTTP handler's rules in process (actix_web::test: no binary, no network): what it
//! answers the front server for a local, a migrated, an ignored and a hostile path, for signed
//! links it must refuse, and on the nginx `auth_request` endpoint. The binary-level tests
//! (decision_http, nginx_*, lighttpd, access) check the same against the real processes.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use base64::Engine;
use common::sigv4::{Presign, amz_date, query_param, reference_presign};
use common::{AK, REGION, SK, fixture, write_file, write_private};
use hmac::{KeyInit, Mac};
use stowaway::config::{CliOverrides, FsChecks, Secret, load_settings};
use stowaway::http::{AppState, Live, configure};
use stowaway::url::{Signer, SigningCredentials};

const ENDPOINT: &str = "http://127.0.0.1:9";
const LINK_SECRET: &str = "k1-secret-0123456789abcdef0123456789";

/// A temporary set of mount roots with a few files, and the settings of `handler.toml`.
struct Roots {
    tmp: tempfile::TempDir,
}

impl Roots {
    fn new() -> Roots {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write_file(&d.join("static"), "a b/ü.jpg", b"local");
        write_file(&d.join("static"), ".env", b"DB_PASSWORD=x");
        write_file(&d.join("static"), "up/photo.jpg.part", b"half");
        write_file(&d.join("pub"), "here.txt", b"local");
        write_file(&d.join("private"), "mine.txt", b"local");
        write_file(d, "outside.txt", b"SECRET");
        write_private(&d.join("k1.key"), format!("{LINK_SECRET}\n"));
        Roots { tmp }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn settings(&self, front: &str) -> stowaway::config::Settings {
        let d = self.root();
        let path = d.join(format!("handler-{front}.toml"));
        let text = fixture(
            "handler.toml",
            &[
                ("front", front),
                ("root", &d.join("static").display().to_string()),
                ("pub_root", &d.join("pub").display().to_string()),
                ("private_root", &d.join("private").display().to_string()),
                ("key_file", &d.join("k1.key").display().to_string()),
            ],
        );
        write_private(&path, text);
        let cli = CliOverrides {
            listen: None,
            log_format: None,
            log_level: None,
        };
        load_settings(Some(&path), &cli, FsChecks::Check).unwrap().0
    }
}

fn signer() -> Arc<Signer> {
    let s = Signer::new(REGION);
    s.set_credentials(SigningCredentials {
        access_key_id: AK.into(),
        secret_access_key: Secret::new(SK),
        session_token: None,
        expires_at: None,
    });
    Arc::new(s)
}

/// The handler as the server mounts it, for front server `front` (a macro: the service type
/// names `actix_http::Request`, a crate this package does not depend on directly).
macro_rules! app {
    ($roots:expr, $front:expr) => {{
        let state = AppState::new(Arc::new($roots.settings($front)), Some(signer()));
        test::init_service(
            App::new()
                .app_data(web::Data::new(Live::new(state)))
                .configure(configure),
        )
        .await
    }};
}

fn header<'a>(r: &'a ServiceResponse, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signed link to `path` (decoded URL path), minted independently of stowaway from the
/// documented scheme: HMAC-SHA256 over version, key id, expiry, method, address and path.
fn link(path: &str, expires: u64, secret: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("stowaway-link-v1\nk1\n{expires}\n\n\n{path}").as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{path}?expires={expires}&kid=k1&signature={sig}")
}

/// Checks a presigned redirect against aws-sigv4's signature for the same time and lifetime.
fn assert_presigned(location: &str, base: &str, method: &str) {
    assert!(location.starts_with(&format!("{base}?")), "{location}");
    let expires: u64 = query_param(location, "X-Amz-Expires")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires, 600, "{location}");
    let want = reference_presign(
        base,
        &Presign {
            access_key_id: AK,
            secret_access_key: SK,
            region: REGION,
            method,
            at: amz_date(location),
            expires: Duration::from_secs(expires),
        },
    );
    assert_eq!(location, want);
}

#[actix_web::test]
async fn local_file_is_handed_to_nginx_with_accel_redirect_and_a_fallback_url() {
    let roots = Roots::new();
    let app = app!(&roots, "nginx");
    for method in ["GET", "HEAD"] {
        let req = TestRequest::default()
            .method(method.parse().unwrap())
            .uri("/static/a%20b/%C3%BC.jpg")
            .to_request();
        let r = test::call_service(&app, req).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "x-accel-redirect"),
            Some("/_stowaway_local/static/a%20b/%C3%BC.jpg")
        );
        assert_eq!(header(&r, "x-sendfile"), None);
        assert_presigned(
            header(&r, "x-s3-location").unwrap(),
            &format!("{ENDPOINT}/site-media/static/a%20b/%C3%BC.jpg"),
            method,
        );
        assert!(test::read_body(r).await.is_empty());
    }
}

#[actix_web::test]
async fn local_file_is_handed_to_lighttpd_with_x_sendfile() {
    let roots = Roots::new();
    let app = app!(&roots, "lighttpd");
    let r = test::call_service(&app, TestRequest::get().uri("/pub/here.txt").to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "x-sendfile").unwrap(),
        format!("{}/pub/here.txt", roots.root().display())
    );
    assert_eq!(header(&r, "x-accel-redirect"), None);
    // The fallback URL is an nginx feature.
    assert_eq!(header(&r, "x-s3-location"), None);
}

#[actix_web::test]
async fn missing_file_redirects_to_a_public_or_presigned_url_with_cache_control() {
    let roots = Roots::new();
    for front in ["nginx", "lighttpd"] {
        let app = app!(&roots, front);
        let r =
            test::call_service(&app, TestRequest::get().uri("/pub/gone.jpg").to_request()).await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            header(&r, "location"),
            Some(format!("{ENDPOINT}/site-media/pub/gone.jpg").as_str())
        );
        assert_eq!(header(&r, "cache-control"), Some("public, max-age=120"));
        // How long nginx's local-first redirect cache may keep it: only for nginx (lighttpd
        // would pass the header on to the client).
        let accel = |r: &ServiceResponse| match front {
            "nginx" => header(r, "x-accel-expires").map(|v| v.parse::<u64>().unwrap()),
            _ => {
                assert!(header(r, "x-accel-expires").is_none(), "lighttpd");
                None
            }
        };
        if front == "nginx" {
            assert_eq!(accel(&r), Some(120));
        }

        for method in ["GET", "HEAD"] {
            let req = TestRequest::default()
                .method(method.parse().unwrap())
                .uri("/static/gone%20now.jpg")
                .to_request();
            let r = test::call_service(&app, req).await;
            assert_eq!(r.status(), StatusCode::FOUND);
            assert_presigned(
                header(&r, "location").unwrap(),
                &format!("{ENDPOINT}/site-media/static/gone%20now.jpg"),
                method,
            );
            // Minted per request (no window): a shared cache must not keep it.
            assert_eq!(header(&r, "cache-control"), Some("no-store"));
            // nginx may reuse it for half of its 600 s.
            if let Some(secs) = accel(&r) {
                assert!((299..=300).contains(&secs), "{secs}");
            }
        }
    }
}

#[actix_web::test]
async fn ignored_files_are_not_found_even_when_present() {
    let roots = Roots::new();
    let app = app!(&roots, "nginx");
    for target in ["/static/.env", "/static/up/photo.jpg.part"] {
        let r = test::call_service(&app, TestRequest::get().uri(target).to_request()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{target}");
        assert_eq!(header(&r, "x-accel-redirect"), None, "{target}");
        assert_eq!(header(&r, "location"), None, "{target}");
    }
}

#[actix_web::test]
async fn hostile_paths_are_refused_without_a_file_or_a_redirect() {
    let roots = Roots::new();
    for front in ["nginx", "lighttpd"] {
        let app = app!(&roots, front);
        for target in [
            "/static/../outside.txt",
            "/static/%2e%2e/outside.txt",
            "/static/a/%2E%2E/%2e%2e/outside.txt",
            "/static/..%2foutside.txt",
            "/static/a%00b.jpg",
            "/static/a%2fb.jpg",
            "/static/%C0%AE%C0%AE/outside.txt",
            "/outside.txt",
        ] {
            let r = test::call_service(&app, TestRequest::get().uri(target).to_request()).await;
            assert!(
                matches!(r.status().as_u16(), 400 | 404),
                "{front} {target}: {}",
                r.status()
            );
            for h in [
                "x-accel-redirect",
                "x-sendfile",
                "location",
                "x-s3-location",
            ] {
                assert_eq!(header(&r, h), None, "{front} {target}: {h}");
            }
        }
        let r = test::call_service(
            &app,
            TestRequest::post()
                .uri("/static/a%20b/%C3%BC.jpg")
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }
}

#[actix_web::test]
async fn signed_links_are_checked_before_anything_is_served() {
    let roots = Roots::new();
    let app = app!(&roots, "nginx");
    let t = now();
    let get = |uri: String| TestRequest::get().uri(&uri).to_request();
    // A good link: the local file, and a redirect for a missing one.
    let r = test::call_service(&app, get(link("/private/mine.txt", t + 300, LINK_SECRET))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "x-accel-redirect"),
        Some("/_stowaway_local/private/mine.txt")
    );
    let r = test::call_service(&app, get(link("/private/gone.txt", t + 300, LINK_SECRET))).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    // Not cached beyond the link's own expiry.
    let cc = header(&r, "cache-control").unwrap();
    let n: u64 = cc
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0 && n <= 300, "{cc}");

    let refusals = [
        ("no link at all", "/private/mine.txt".to_string(), 403),
        (
            "expired",
            link("/private/mine.txt", t - 5, LINK_SECRET),
            410,
        ),
        (
            "bad mac",
            link(
                "/private/mine.txt",
                t + 300,
                "k1-secret-not-the-right-one-0123456",
            ),
            403,
        ),
        (
            "another file's mac",
            link("/private/mine.txt", t + 300, LINK_SECRET).replace("mine", "gone"),
            403,
        ),
        (
            "longer than max_link_ttl",
            link("/private/mine.txt", t + 7200, LINK_SECRET),
            403,
        ),
    ];
    for (what, uri, status) in refusals {
        let r = test::call_service(&app, get(uri)).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        for h in ["x-accel-redirect", "location", "x-s3-location"] {
            assert_eq!(header(&r, h), None, "{what}: {h}");
        }
    }
}

/// `GET /_stowaway/auth` as nginx's `auth_request` sends it.
fn auth(uri: &str) -> TestRequest {
    TestRequest::get()
        .uri("/_stowaway/auth")
        .insert_header(("X-Original-URI", uri))
}

#[actix_web::test]
async fn auth_endpoint_verdicts_carry_their_cache_lifetime() {
    let roots = Roots::new();
    let app = app!(&roots, "nginx");
    // Local: 200, cached for verdict_ttl.
    let r = test::call_service(&app, auth("/pub/here.txt").to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-accel-expires"), Some("30"));
    assert_eq!(
        header(&r, "x-s3-location"),
        Some(format!("{ENDPOINT}/site-media/pub/here.txt").as_str())
    );
    // Migrated: 401 with the URL to redirect to.
    let r = test::call_service(&app, auth("/static/gone.jpg").to_request()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "x-accel-expires"), Some("30"));
    assert_presigned(
        header(&r, "x-s3-location").unwrap(),
        &format!("{ENDPOINT}/site-media/static/gone.jpg"),
        "GET",
    );
    // Refusals: 403 carrying the real status.
    let t = now();
    for (what, uri, status, ttl) in [
        ("ignored", "/static/.env".to_string(), "404", "30"),
        (
            "hostile",
            "/static/%2e%2e/outside.txt".to_string(),
            "400",
            "30",
        ),
        ("no mount", "/elsewhere/x".to_string(), "404", "30"),
        (
            "expired link",
            link("/private/mine.txt", t - 5, LINK_SECRET),
            "410",
            "30",
        ),
        ("unsigned", "/private/mine.txt".to_string(), "403", "30"),
    ] {
        let r = test::call_service(&app, auth(&uri).to_request()).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(header(&r, "x-stowaway-status"), Some(status), "{what}");
        assert_eq!(header(&r, "x-accel-expires"), Some(ttl), "{what}");
        assert_eq!(header(&r, "x-s3-location"), None, "{what}");
    }
    // Not from the generated config: refused, never cached.
    let r = test::call_service(&app, TestRequest::get().uri("/_stowaway/auth").to_request()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&r, "x-stowaway-status"), Some("400"));
    assert_eq!(header(&r, "x-accel-expires"), Some("0"));
    // A signed link's verdict is not cached past the link's expiry.
    let r = test::call_service(
        &app,
        auth(&link("/private/mine.txt", t + 10, LINK_SECRET)).to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let ttl: u64 = header(&r, "x-accel-expires").unwrap().parse().unwrap();
    assert!(ttl <= 10, "{ttl}");
}
