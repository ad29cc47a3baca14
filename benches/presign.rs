//! Presign cost: stowaway's signer (cached signing key, hand-built canonical request) against
//! aws-sigv4's `http_request::sign` and aws-sdk-s3's `presigned()`, in the same run; the
//! per-window URL cache (a hit on one hot key, hits spread over 10 000 keys) against signing
//! and against cloning a constant URL (the floor of any answer that owns its URL).
//! Also the pure path mapping of a request. Run: `cargo bench --bench presign`.

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use stowaway::config::{
    AddressingStyle, Finalize, Mount, S3Settings, Secret, UrlKind, UrlSettings,
};
use stowaway::paths::{MountPrefix, map_request};
use stowaway::url::{Lookup, MountUrls, ObjectUrl, Signer, SigningCredentials};

const AK: &str = "AKIDEXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const KEY: &str = "photos/2026/11/holiday picture 0042.jpg";

fn settings() -> (S3Settings, Mount) {
    let s3 = S3Settings {
        region: Some("eu-west-1".into()),
        endpoint: None,
        addressing_style: AddressingStyle::Virtual,
        access_key_id: None,
        secret_access_key: None,
    };
    let m = Mount {
        prefix: MountPrefix::parse("/static/").unwrap(),
        root: "/srv/site/static".into(),
        bucket: "example-site-media".into(),
        key_prefix: "static/".into(),
        url: UrlSettings {
            kind: UrlKind::Presigned,
            public_base_url: None,
            expires: Duration::from_secs(3600),
            window: Duration::from_secs(300),
            redirect_max_age: Duration::from_secs(300),
            response_content_disposition: None,
            response_content_type: None,
            response_cache_control: None,
        },
        upload: true,
        finalize: Finalize::Keep,
        archive_root: None,
        finalize_grace: Duration::ZERO,
        archive_retention: Duration::ZERO,
        ignore: vec![],
        serve_ignored: false,
        serve_archive_when_s3_down: true,
        tombstone_ttl: std::time::Duration::ZERO,
        tombstone_status: 404,
    };
    (s3, m)
}

fn bench(c: &mut Criterion) {
    let (s3, m) = settings();
    let urls = MountUrls::new(&s3, &m);
    let signer = std::sync::Arc::new(Signer::new("eu-west-1"));
    signer.set_credentials(SigningCredentials {
        access_key_id: AK.into(),
        secret_access_key: Secret::new(SK),
        session_token: None,
        expires_at: None,
    });
    let mut g = c.benchmark_group("presign");
    g.bench_function("stowaway_signer", |b| {
        b.iter(|| {
            signer
                .presign(&urls, "GET", std::hint::black_box(KEY), SystemTime::now())
                .map(|u| u.url.len())
        })
    });

    // The per-window URL cache (10 000 entries, the default), through ObjectUrl::mint as the
    // handler calls it. A window roll during the run costs one miss per key, not measurable.
    let cached = ObjectUrl::new(&s3, &m, Some(&signer), 10_000);
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("photos/2026/11/holiday picture {i:04}.jpg"))
        .collect();
    for k in &keys {
        let _ = cached.mint("GET", k, SystemTime::now());
    }
    g.bench_function("url_cache_hit", |b| {
        b.iter(|| {
            cached
                .mint("GET", std::hint::black_box(KEY), SystemTime::now())
                .map(|(u, l)| (u.url.len(), matches!(l, Lookup::Hit)))
        })
    });
    let mut i = 0usize;
    g.bench_function("url_cache_hit_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            cached
                .mint("GET", std::hint::black_box(&keys[i]), SystemTime::now())
                .map(|(u, l)| (u.url.len(), matches!(l, Lookup::Hit)))
        })
    });
    let off = ObjectUrl::new(&s3, &m, Some(&signer), 0);
    g.bench_function("url_cache_off", |b| {
        b.iter(|| {
            off.mint("GET", std::hint::black_box(KEY), SystemTime::now())
                .map(|(u, _)| u.url.len())
        })
    });
    let constant = signer
        .presign(&urls, "GET", KEY, SystemTime::now())
        .map(|u| u.url)
        .unwrap_or_default();
    g.bench_function("constant_url_clone", |b| {
        b.iter(|| (std::hint::black_box(&constant).clone(), SystemTime::now()))
    });

    // aws-sigv4 http_request::sign (derives the signing key on every call).
    g.bench_function("aws_sigv4_http_request_sign", |b| {
        use aws_sigv4::http_request::{
            PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
            UriPathNormalizationMode, sign,
        };
        let identity = aws_credential_types::Credentials::new(AK, SK, None, None, "bench").into();
        let url = urls.public_url(KEY);
        b.iter(|| {
            let mut settings = SigningSettings::default();
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(3600));
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("eu-west-1")
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let req = SignableRequest::new(
                "GET",
                url.as_str(),
                std::iter::empty(),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instr, _) = sign(req, &params).unwrap().into_parts();
            instr.params().len()
        })
    });

    // The SDK's presigned(): full orchestrator per URL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                AK, SK, None, None, "bench",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    };
    g.bench_function("aws_sdk_s3_presigned", |b| {
        let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(3600))
            .unwrap();
        b.iter(|| {
            rt.block_on(async {
                let p = client
                    .get_object()
                    .bucket("example-site-media")
                    .key(KEY)
                    .presigned(cfg.clone())
                    .await
                    .unwrap();
                p.uri().len()
            })
        })
    });
    g.finish();

    // The final HMAC over a string to sign: aws-sigv4's calculate_signature (keys an HMAC per
    // call, builds the string to sign and the hex String) against what the signer does now
    // (clones an HMAC keyed once per day, feeds the pieces, hex from a table on the stack).
    let mut g = c.benchmark_group("final_hmac");
    let key = [0x5au8; 32];
    let sts = "AWS4-HMAC-SHA256\n20261125T153000Z\n20261125/eu-west-1/s3/aws4_request\n\
               0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    g.bench_function("aws_sigv4_calculate_signature", |b| {
        b.iter(|| {
            let mut s = String::with_capacity(160);
            s.push_str(std::hint::black_box(sts));
            aws_sigv4::sign::v4::calculate_signature(key, s.as_bytes())
        })
    });
    {
        use hmac::{Hmac, KeyInit, Mac};
        let keyed = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        g.bench_function("keyed_hmac_clone_stack_hex", |b| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(std::hint::black_box(sts).as_bytes());
                let d = mac.finalize().into_bytes();
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut out = [0u8; 64];
                for (pair, &x) in out.chunks_exact_mut(2).zip(d.iter()) {
                    pair[0] = HEX[usize::from(x >> 4)];
                    pair[1] = HEX[usize::from(x & 15)];
                }
                out
            })
        });
    }
    g.finish();

    c.bench_function("map_request", |b| {
        let prefixes = ["/static/", "/media/"];
        b.iter(|| {
            matches!(
                map_request(
                    &prefixes,
                    std::hint::black_box("/static/photos/2026/11/holiday%20picture%200042.jpg?v=3")
                ),
                stowaway::paths::MapResult::Mapped(_)
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
