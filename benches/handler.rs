//! Per-request work of the decision handler without the network: `stowaway::http::decision`
//! called on a prepared request, against a handler that builds the same response from constants
//! (what examples/ceiling.rs does), and the pieces in between (path mapping, the `lstat`,
//! presigning, the metrics update). Explains the gap between stowaway and the actix ceiling in
//! BENCHMARKS.md (case 4). Run: `cargo bench --bench handler`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, test::TestRequest, web};
use criterion::{Criterion, criterion_group, criterion_main};
use stowaway::config::{CliOverrides, FsChecks, Settings, load_settings};
use stowaway::decision::local_state;
use stowaway::health::Health;
use stowaway::http::{AppState, Live, decision};
use stowaway::metrics::{Metrics, Outcome};
use stowaway::paths::map_request;
use stowaway::url::{MountUrls, ObjectUrl, Signer, SigningCredentials};

const AK: &str = "AKIDSTOWAWAYBENCH";
const SK: &str = "stowaway/bench+secret/KEY0123456789";

/// The serving configuration of benches/run.sh: /static/ presigned (1h, window 5m), /pub/
/// public; the /static/ root holds `bench10k.jpg`. Mounts may not share a root or key prefix
/// (config refuses overlaps), so /pub/ has its own, empty one: it only answers redirects here.
fn settings(root: &Path, server: &str) -> Settings {
    let dir = root.parent().unwrap();
    let path = dir.join("handler-bench.toml");
    let pub_root = dir.join("pub");
    std::fs::create_dir_all(&pub_root).unwrap();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n{server}\n[uploader]\nenabled = false\n\
             [s3]\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:18014\"\naddressing_style = \"path\"\n\
             [[mount]]\nprefix = \"/static/\"\nroot = \"{r}\"\nbucket = \"site-media\"\nkey_prefix = \"static/\"\n\
             url = \"presigned\"\nexpires = \"1h\"\nwindow = \"5m\"\nupload = false\n\
             [[mount]]\nprefix = \"/pub/\"\nroot = \"{p}\"\nbucket = \"site-media\"\nkey_prefix = \"pub/\"\n\
             url = \"public\"\nupload = false\n",
            r = root.display(),
            p = pub_root.display()
        ),
    )
    .unwrap();
    let cli = CliOverrides {
        listen: None,
        log_format: None,
        log_level: None,
    };
    load_settings(Some(&path), &cli, FsChecks::Check).unwrap().0
}

/// The same with the URL cache off.
fn settings_uncached(root: &Path) -> Settings {
    settings(root, "url_cache_entries = 0")
}

fn signer() -> Arc<Signer> {
    let s = Signer::new("us-east-1");
    s.set_credentials(SigningCredentials {
        access_key_id: AK.into(),
        secret_access_key: stowaway::config::Secret::new(SK),
        session_token: None,
        expires_at: None,
    });
    Arc::new(s)
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("static");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("bench10k.jpg"), vec![7u8; 10 * 1024]).unwrap();
    let settings = Arc::new(settings(&root, ""));
    let uncached_settings = Arc::new(settings_uncached(&root));
    let with_metrics = web::Data::new(Live::new(
        AppState::new(settings.clone(), Some(signer())).with_observability(
            Some(Arc::new(Metrics::new(&settings, None))),
            Arc::new(Health::default()),
        ),
    ));
    let without_metrics =
        web::Data::new(Live::new(AppState::new(settings.clone(), Some(signer()))));
    let url_cache_off = web::Data::new(Live::new(
        AppState::new(uncached_settings.clone(), Some(signer())).with_observability(
            Some(Arc::new(Metrics::new(&uncached_settings, None))),
            Arc::new(Health::default()),
        ),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("handler");
    for (name, path) in [
        ("public_302", "/pub/missing.jpg"),
        ("presigned_302", "/static/missing.jpg"),
        ("local_xaccel", "/static/bench10k.jpg"),
    ] {
        for (m, state) in [("metrics", &with_metrics), ("no_metrics", &without_metrics)] {
            g.bench_function(format!("{name}/{m}"), |b| {
                b.iter_batched(
                    || TestRequest::get().uri(path).to_http_request(),
                    |req| rt.block_on(decision(req, state.clone())).status(),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    // The URL cache off (`server.url_cache_entries = 0`): every presigned 302 signs.
    g.bench_function("presigned_302/metrics/url_cache_off", |b| {
        b.iter_batched(
            || {
                TestRequest::get()
                    .uri("/static/missing.jpg")
                    .to_http_request()
            },
            |req| rt.block_on(decision(req, url_cache_off.clone())).status(),
            criterion::BatchSize::SmallInput,
        )
    });
    // The ceiling: the same kind of response from constants, and building the request alone.
    let loc = HeaderValue::from_static("http://127.0.0.1:18014/site-media/pub/missing.jpg");
    let cc = HeaderValue::from_static("public, max-age=300");
    g.bench_function("constant_302", |b| {
        b.iter_batched(
            || TestRequest::get().uri("/pub/missing.jpg").to_http_request(),
            |req| {
                rt.block_on(async {
                    let _ = &req;
                    HttpResponse::Found()
                        .insert_header((header::LOCATION, loc.clone()))
                        .insert_header((header::CACHE_CONTROL, cc.clone()))
                        .finish()
                })
                .status()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    // The pieces.
    let mut g = c.benchmark_group("pieces");
    let prefixes = ["/static/", "/pub/"];
    g.bench_function("map_request", |b| {
        b.iter(|| {
            matches!(
                map_request(&prefixes, std::hint::black_box("/static/bench10k.jpg")),
                stowaway::paths::MapResult::Mapped(_)
            )
        })
    });
    let handle = stowaway::beneath::DirHandle::open(&root).ok();
    g.bench_function("lstat_hit", |b| {
        b.iter(|| local_state(handle.as_ref(), std::hint::black_box("bench10k.jpg")))
    });
    g.bench_function("lstat_miss", |b| {
        b.iter(|| local_state(handle.as_ref(), std::hint::black_box("missing.jpg")))
    });
    let urls = MountUrls::new(&settings.s3, &settings.mounts[0]);
    let s = signer();
    g.bench_function("presign", |b| {
        b.iter(|| {
            s.presign(
                &urls,
                "GET",
                std::hint::black_box("missing.jpg"),
                SystemTime::now(),
            )
            .map(|u| u.url.len())
        })
    });
    g.bench_function("presigned_url_to_header_value", |b| {
        let u = s
            .presign(&urls, "GET", "missing.jpg", SystemTime::now())
            .unwrap()
            .url;
        b.iter(|| HeaderValue::try_from(std::hint::black_box(u.clone())).is_ok())
    });
    // Signing hex-encodes two SHA-256 digests per URL (the canonical request's hash, the
    // signature): hex::encode allocates a String each time; the signer now writes from a table
    // into a stack buffer (hex_table_32_stack, what src/url/sigv4.rs does).
    let digest = [0xa5u8; 32];
    g.bench_function("hex_encode_32", |b| {
        b.iter(|| hex::encode(std::hint::black_box(digest)))
    });
    g.bench_function("hex_table_32_stack", |b| {
        b.iter(|| {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut out = [0u8; 64];
            for (pair, &x) in out.chunks_exact_mut(2).zip(std::hint::black_box(&digest)) {
                pair[0] = HEX[usize::from(x >> 4)];
                pair[1] = HEX[usize::from(x & 15)];
            }
            out
        })
    });
    // A per-window URL cache hit: the window, a map lookup and a clone of the URL.
    let cached = ObjectUrl::new(&settings.s3, &settings.mounts[0], Some(&s), 10_000);
    g.bench_function("url_cache_hit", |b| {
        b.iter(|| {
            cached
                .mint(
                    "GET",
                    std::hint::black_box("missing.jpg"),
                    SystemTime::now(),
                )
                .map(|(u, _)| u.url.len())
        })
    });
    let metrics = Metrics::new(&settings, None);
    g.bench_function("metrics_decision", |b| {
        let start = Instant::now();
        b.iter(|| metrics.decision(Some(0), Outcome::Remote, start.elapsed().as_secs_f64()))
    });
    g.bench_function("clocks_instant_and_system", |b| {
        b.iter(|| (Instant::now(), SystemTime::now()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
