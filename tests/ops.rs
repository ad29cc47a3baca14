//! Operating stowaway: /metrics (parsed as Prometheus text format), /readyz following S3,
//! `stowaway healthcheck` and `stowaway status`.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::Duration;

/// A strict parser for the Prometheus text exposition format (0.0.4): returns
/// `name{labels}` → value, and checks TYPE lines, label syntax, values and histograms.
fn parse_prometheus(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    for (no, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", no + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| err("TYPE without name"))?;
                    let ty = parts.next().ok_or_else(|| err("TYPE without type"))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(err("unknown type"));
                    }
                    if types.insert(name.to_string(), ty.to_string()).is_some() {
                        return Err(err("second TYPE line"));
                    }
                }
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| err("HELP without name"))?;
                    if !valid_name(name) {
                        return Err(err("bad metric name"));
                    }
                }
                _ => {}
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        let (name, labels) = match series.find('{') {
            Some(i) => {
                let l = series[i..]
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .ok_or_else(|| err("unclosed labels"))?;
                // label="value" pairs, values with \\, \" and \n escapes only.
                let mut rest = l;
                while !rest.is_empty() {
                    let eq = rest.find("=\"").ok_or_else(|| err("label without =\""))?;
                    if !valid_name(&rest[..eq]) {
                        return Err(err("bad label name"));
                    }
                    let mut chars = rest[eq + 2..].char_indices();
                    let mut end = None;
                    while let Some((j, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some((_, '\\' | '"' | 'n')) => {}
                                _ => return Err(err("bad escape")),
                            },
                            '"' => {
                                end = Some(eq + 2 + j);
                                break;
                            }
                            _ => {}
                        }
                    }
                    let end = end.ok_or_else(|| err("unterminated label value"))?;
                    rest = rest[end + 1..]
                        .strip_prefix(',')
                        .unwrap_or(&rest[end + 1..]);
                }
                (&series[..i], &series[i..])
            }
            None => (series, ""),
        };
        if !valid_name(name) {
            return Err(err("bad metric name"));
        }
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        if !types.contains_key(name) && !types.contains_key(base) {
            return Err(err("sample before its TYPE"));
        }
        if name.ends_with("_bucket") && !labels.contains("le=\"") {
            return Err(err("bucket without le"));
        }
        samples.insert(format!("{name}{labels}"), v);
    }
    for (name, ty) in &types {
        if ty == "histogram"
            && !samples
                .keys()
                .any(|k| k.starts_with(&format!("{name}_bucket")) && k.contains("le=\"+Inf\""))
        {
            return Err(format!("histogram {name} has no +Inf bucket"));
        }
    }
    Ok(samples)
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key}; have: {:#?}", m.keys().collect::<Vec<_>>()))
}

fn scrape(st: &Stowaway) -> BTreeMap<String, f64> {
    let r = get(st.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    parse_prometheus(&String::from_utf8(r.body).unwrap())
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}"))
}

#[test]
fn the_parser_rejects_malformed_exposition() {
    assert!(parse_prometheus("# TYPE a counter\na 1\n").is_ok());
    assert!(parse_prometheus("a 1\n").is_err(), "sample without TYPE");
    assert!(parse_prometheus("# TYPE a counter\na{x=\"1} 1\n").is_err());
    assert!(parse_prometheus("# TYPE a counter\na one\n").is_err());
    assert!(
        parse_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").is_err(),
        "no +Inf"
    );
}

#[test]
fn metrics_move_for_local_remote_denied_bad_and_uploaded() {
    let s3 = S3Server::start();
    s3.create_bucket("ops-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let archive = d.path().join("archive");
    let private = d.path().join("private");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    write_file(&root, "local.jpg", b"here");
    let secret = "0123456789abcdef0123456789abcdef-ops";
    let st = Stowaway::start(
        d.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\ns3_probe_interval = \"1s\"\n[uploader]\nenabled = true\nsettle = \"300ms\"\nrescan_interval = \"1s\"\n{}\n\
             [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"ops-bucket\"\nkey_prefix = \"static/\"\nurl = \"presigned\"\nfinalize = \"archive\"\narchive_root = \"{}\"\n\n\
             [[mount]]\nprefix = \"/private/\"\nroot = \"{}\"\nbucket = \"ops-bucket\"\nkey_prefix = \"private/\"\nurl = \"presigned\"\nupload = false\n\
             [mount.access]\nsign_with = \"k1\"\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{secret}\"\n",
            s3.s3_section(),
            root.display(),
            archive.display(),
            private.display()
        ),
    );
    let before = scrape(&st);
    assert_eq!(get(st.addr, "/static/local.jpg").status, 200);
    assert_eq!(get(st.addr, "/static/missing.jpg").status, 302);
    assert_eq!(get(st.addr, "/static/missing2.jpg").status, 302);
    // The same redirect again inside the signing window: the URL cache answers.
    assert_eq!(get(st.addr, "/static/missing.jpg").status, 302);
    assert_eq!(get(st.addr, "/static/missing.jpg").status, 302);
    assert_eq!(get(st.addr, "/private/x.jpg").status, 403);
    assert_eq!(get(st.addr, "/static/%2e%2e/x").status, 400);
    assert_eq!(get(st.addr, "/nowhere").status, 404);
    let m = scrape(&st);
    let k = |o: &str, mount: &str| {
        format!("stowaway_decisions_total{{outcome=\"{o}\",mount=\"{mount}\"}}")
    };
    let delta = |key: &str| value(&m, key) - before.get(key).copied().unwrap_or(0.0);
    // The local file may already have been migrated by the uploader; together they are one.
    assert_eq!(
        delta(&k("local", "/static/")) + delta(&k("remote", "/static/")),
        5.0
    );
    assert_eq!(delta(&k("denied", "/private/")), 1.0);
    assert_eq!(delta(&k("bad_request", "")), 1.0);
    assert_eq!(delta(&k("not_found", "")), 1.0);
    assert!(value(&m, "stowaway_presigned_urls_total") >= 4.0);
    // A window rolls at most once between the three asks for missing.jpg: one of the later
    // two is a hit. Every presigned URL of the windowed mount went through the cache.
    let (hits, misses) = (
        delta("stowaway_url_cache_hits_total"),
        delta("stowaway_url_cache_misses_total"),
    );
    assert!(hits >= 1.0 && misses >= 2.0, "hits {hits}, misses {misses}");
    assert_eq!(hits + misses, delta("stowaway_presigned_urls_total"));
    assert!(value(&m, "stowaway_decision_duration_seconds_count") >= 6.0);

    // Upload a file and watch the uploader counters move.
    write_file(&root, "new/upload.bin", &vec![9u8; 70_000]);
    assert!(
        wait_until(Duration::from_secs(30), || value(
            &scrape(&st),
            "stowaway_uploads_total"
        ) >= 2.0),
        "uploads never counted: {}",
        st.log_text()
    );
    let m = scrape(&st);
    assert!(value(&m, "stowaway_uploaded_bytes_total") >= 70_004.0);
    assert!(value(&m, "stowaway_rescans_total") >= 1.0);
    assert!(value(&m, "stowaway_last_rescan_timestamp_seconds") > 1.7e9);
    assert!(m.contains_key("stowaway_backlog_files{mount=\"/static/\"}"));
}

#[test]
fn readiness_follows_s3_and_healthcheck_reports_it() {
    let s3 = S3Server::start();
    s3.create_bucket("ready-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(
        d.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\ns3_probe_interval = \"200ms\"\n[uploader]\nenabled = false\n{}\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"ready-bucket\"\nurl = \"presigned\"\n",
            s3.s3_section(),
            root.display()
        ),
    );
    let healthcheck = |ready: bool| {
        let mut c = stowaway_cmd();
        c.arg("healthcheck").arg("--config").arg(&st.config);
        if ready {
            c.arg("--ready");
        }
        c.output().unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(10), || get(st.addr, "/readyz").status
            == 200),
        "never ready"
    );
    assert!(healthcheck(true).status.success());
    s3.pause();
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, "/readyz").status
            == 503),
        "still ready without S3"
    );
    let r = get(st.addr, "/readyz");
    assert!(
        String::from_utf8_lossy(&r.body).contains("S3"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let o = healthcheck(true);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not ready"));
    // Liveness does not depend on S3, and redirects are still minted (no request waits on S3).
    assert!(healthcheck(false).status.success());
    assert_eq!(get(st.addr, "/static/a.jpg").status, 302);
    s3.resume();
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, "/readyz").status
            == 200),
        "not ready again after S3 returned"
    );
}

#[test]
fn metrics_on_a_separate_listener() {
    let s3 = S3Server::start();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let st = Stowaway::start(
        d.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\nmetrics_listen = \"127.0.0.1:{port}\"\n[uploader]\nenabled = false\n{}\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"sep-bucket\"\nurl = \"public\"\n",
            s3.s3_section(),
            root.display()
        ),
    );
    assert_eq!(
        get(st.addr, "/metrics").status,
        404,
        "not on the main listener"
    );
    get(st.addr, "/static/x.jpg");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    let m = parse_prometheus(&String::from_utf8(r.body).unwrap()).unwrap();
    assert_eq!(
        value(
            &m,
            "stowaway_decisions_total{outcome=\"remote\",mount=\"/static/\"}"
        ),
        1.0
    );
}

#[test]
fn status_reports_backlog_and_archive() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let archive = d.path().join("archive");
    write_file(&root, "a.txt", &[1u8; 1000]);
    write_file(&root, "sub/b.txt", &[2u8; 500]);
    write_file(&root, "sub/.hidden", &[3u8; 50]);
    write_file(&root, "c.part", &[4u8; 70]);
    write_file(&archive, "old/z.txt", &[5u8; 4000]);
    let cfg = d.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[s3]\nregion = \"us-east-1\"\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"st-bucket\"\narchive_root = \"{}\"\n",
            root.display(),
            archive.display()
        ),
    )
    .unwrap();
    let o = stowaway_cmd()
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &v["mounts"][0];
    assert_eq!(m["prefix"], "/static/");
    assert_eq!(m["backlog_files"], 2);
    assert_eq!(m["backlog_bytes"], 1500);
    assert_eq!(m["archive_files"], 1);
    assert_eq!(m["archive_bytes"], 4000);
    assert!(m["oldest_backlog_age_seconds"].as_u64().is_some());
    let o = stowaway_cmd()
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/static/") && text.contains("2 files"),
        "{text}"
    );
}
