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
use stowaway::url::{MountUrls, Signer, SigningCredentials};

const AK: &str = "AKIDSTOWAWAYBENCH";
const SK: &str = "stowaway/bench+secret/KEY0123456789";

/// The serving configuration of benches/run.sh: /static/ presigned (1h, window 5m), /pub/
/// public; the /static/ root holds `bench10k.jpg`. Mounts may not share a root or key prefix
/// (config refuses overlaps), so /pub/ has its own, empty one: it only answers redirects here.
fn settings(root: &Path) -> Settings {
    let dir = root.parent().unwrap();
    let path = dir.join("handler-bench.toml");
    let pub_root = dir.join("pub");
    std::fs::create_dir_all(&pub_root).unwrap();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[uploader]\nenabled = false\n\
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
    let settings = Arc::new(settings(&root));
    let with_metrics = web::Data::new(Live::new(
        AppState::new(settings.clone(), Some(signer())).with_observability(
            Some(Arc::new(Metrics::new(&settings, None))),
            Arc::new(Health::default()),
        ),
    ));
    let without_metrics =
        web::Data::new(Live::new(AppState::new(settings.clone(), Some(signer()))));
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
    // Signing hex-encodes two SHA-256 digests per URL (the canonical request's hash here, the
    // signature inside aws_sigv4::sign::v4::calculate_signature), both with hex::encode.
    let digest = [0xa5u8; 32];
    g.bench_function("hex_encode_32", |b| {
        b.iter(|| hex::encode(std::hint::black_box(digest)))
    });
    g.bench_function("hex_table_32", |b| {
        b.iter(|| {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut out = String::with_capacity(64);
            for &x in std::hint::black_box(&digest) {
                out.push(HEX[(x >> 4) as usize] as char);
                out.push(HEX[(x & 15) as usize] as char);
            }
            out
        })
    });
    // What a per-window URL cache would cost per hit: a map lookup and a clone of the URL.
    let url = s
        .presign(&urls, "GET", "missing.jpg", SystemTime::now())
        .unwrap()
        .url;
    let mut cache = std::collections::HashMap::new();
    for i in 0..1000 {
        cache.insert((0usize, format!("file-{i}.jpg"), 1u64), url.clone());
    }
    cache.insert((0usize, "missing.jpg".to_string(), 1u64), url.clone());
    g.bench_function("url_cache_hit", |b| {
        b.iter(|| {
            let k = (
                0usize,
                std::hint::black_box("missing.jpg").to_string(),
                1u64,
            );
            cache.get(&k).cloned()
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
