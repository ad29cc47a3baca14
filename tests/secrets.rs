//! Secrets never leave: the AWS secret access key (from the environment, the config file, a
//! secret file, or a wrong one) and the HMAC link keys (inline and from files) appear in no log
//! line — at level `trace`, in text and JSON — in no error message, and not in the output of
//! any command (`print-config`, `check-config`, `sign`, `status`, `gen-config`, `migrate`,
//! `healthcheck`). The runs go through every path: local answers, presigned redirects, signed
//! links good, bad, expired and of unknown keys, the auth endpoint, the recheck, hostile URLs,
//! uploads, an S3 outage, wrong credentials, a missing bucket, shutdown.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use common::*;

/// An S3 secret written inline into the config file (the env one is the harness's `SK`).
const INLINE_SK: &str = "Inline/S3+Secret=0123456789abcdefXYZ";
/// An S3 secret in a 0600 file.
const FILE_SK: &str = "File/S3+Secret=fedcba9876543210QRS";
/// A wrong S3 secret (still a secret).
const WRONG_SK: &str = "Wrong/S3+Secret=00112233445566778899";
/// Link keys: k1 inline, k2 in a file.
const LINK_K1: &str = "link-key-one-inline-0123456789abcdefghij";
const LINK_K2: &str = "link-key-two-in-a-file-abcdefghij0123456789";

/// A link key too short to be accepted (refused, but still not to be echoed).
const SHORT_K: &str = "short-link-key-4321";

const ALL: &[&str] = &[SK, INLINE_SK, FILE_SK, WRONG_SK, LINK_K1, LINK_K2, SHORT_K];

/// Fails if any secret appears in `text`, raw or in the encodings a log might use.
fn assert_clean(text: &str, what: &str) -> usize {
    for s in ALL {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s);
        let mut pct = String::new();
        stowaway::paths::push_encoded_query(&mut pct, s);
        let json = serde_json::to_string(s).unwrap();
        for (form, needle) in [
            ("raw", s.to_string()),
            ("base64", b64),
            ("percent-encoded", pct),
            ("JSON-escaped", json.trim_matches('"').to_string()),
            // Half of it is enough to give too much away.
            ("half", s[s.len() / 2..].to_string()),
        ] {
            if let Some(i) = text.find(&needle) {
                let b = text.as_bytes();
                let around = &b[i.saturating_sub(300)..(i + needle.len() + 300).min(b.len())];
                panic!(
                    "{what}: the secret {s:?} appears ({form}):\n{}",
                    String::from_utf8_lossy(around)
                );
            }
        }
    }
    text.len()
}

fn out_text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Site {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    archive: PathBuf,
    s3: S3Server,
}

fn site() -> Site {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    s3.put("site-media", "static/remote.jpg", b"remote bytes");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("root");
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    write_file(&root, "here.jpg", b"local bytes");
    write_file(&root, "up/one.txt", b"to be uploaded");
    let f = dir.join("k2.secret");
    std::fs::write(&f, format!("{LINK_K2}\n")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let f = dir.join("s3.secret");
    std::fs::write(&f, format!("{FILE_SK}\n")).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    Site {
        _tmp: tmp,
        dir,
        root,
        archive,
        s3,
    }
}

impl Site {
    /// `format`: text or json; `s3_creds`: extra `[s3]` lines (static credentials) or "".
    fn config(&self, format: &str, s3_creds: &str, bucket: &str) -> String {
        format!(
            "[server]\nlisten = \"@LISTEN@\"\nshutdown_timeout = \"2s\"\ns3_probe_interval = \"1s\"\n\
             [log]\nlevel = \"trace\"\nformat = \"{format}\"\n\
             [uploader]\nsettle = \"0s\"\nrescan_interval = \"1s\"\nretry_min_delay = \"10ms\"\nretry_max_delay = \"50ms\"\nmax_attempts = 2\n\
             [s3]\nregion = \"{REGION}\"\nendpoint = \"{}\"\naddressing_style = \"path\"\n{s3_creds}\n\
             [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"{bucket}\"\nkey_prefix = \"static/\"\n\
             url = \"presigned\"\nexpires = \"10m\"\nwindow = \"5m\"\nfinalize = \"archive\"\narchive_root = \"{}\"\n\
             ignore = [\".*\", \"here.jpg\"]\nserve_ignored = true\n\
             [mount.access]\nsign_with = \"k1\"\n\
             [[mount.access.keys]]\nid = \"k1\"\nsecret = \"{LINK_K1}\"\n\
             [[mount.access.keys]]\nid = \"k2\"\nsecret_file = \"{}\"\n",
            self.s3.endpoint,
            self.root.display(),
            self.archive.display(),
            self.dir.join("k2.secret").display()
        )
    }
}

fn sign(config: &Path, path: &str, args: &[&str]) -> String {
    let o = stowaway_cmd()
        .arg("sign")
        .arg(path)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    assert_clean(&out_text(&o), "sign");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Every request path of a running stowaway.
fn exercise(st: &Stowaway) {
    let good = sign(&st.config, "/static/here.jpg", &["--ttl", "10m"]);
    let remote = sign(&st.config, "/static/remote.jpg", &["--ttl", "10m"]);
    let expired = sign(&st.config, "/static/here.jpg", &["--ttl", "1s"]);
    let r = get(st.addr, &good);
    assert_eq!(r.status, 200, "{}", r.raw_head);
    let r = get(st.addr, &remote);
    assert_eq!(r.status, 302, "{}", r.raw_head);
    assert!(wait_until(Duration::from_secs(5), || get(
        st.addr, &expired
    )
    .status
        == 410));
    for bad in [
        good.replace("kid=k1", "kid=k2"),
        good.replace("kid=k1", "kid=k9"),
        good.replace("signature=", "signature=AAAA"),
        "/static/here.jpg".to_string(),
        "/static/here.jpg?expires=1&kid=k1&signature=x".to_string(),
        "/static/%2e%2e/secret".to_string(),
        "/static/a%0d%0aX-Injected:%20yes".to_string(),
    ] {
        let r = get(st.addr, &bad);
        assert!(matches!(r.status, 400 | 403 | 410), "{bad}: {}", r.raw_head);
    }
    for (uri, method) in [(&good, "GET"), (&remote, "HEAD"), (&good, "POST")] {
        let r = request(
            st.addr,
            "GET",
            "/_stowaway/auth",
            &[
                ("X-Original-URI", uri.as_str()),
                ("X-Original-Method", method),
            ],
        );
        assert!(matches!(r.status, 200 | 401 | 403), "{}", r.raw_head);
    }
    let r = request(st.addr, "GET", &good, &[("X-Sidecar-Recheck", "1")]);
    assert!(r.status < 500, "{}", r.raw_head);
    for p in ["/healthz", "/readyz", "/metrics"] {
        let _ = get(st.addr, p);
    }
}

#[test]
fn logs_at_trace_in_text_and_json_never_show_a_secret() {
    let s = site();
    let mut logged = 0;
    for (format, creds) in [
        ("text", String::new()),
        (
            "json",
            format!("access_key_id = \"{AK}\"\nsecret_access_key = \"{INLINE_SK}\""),
        ),
        (
            "text",
            format!(
                "access_key_id = \"{AK}\"\nsecret_access_key_file = \"{}\"",
                s.dir.join("s3.secret").display()
            ),
        ),
    ] {
        // The S3 server only knows the harness's secret: the inline and file ones are "wrong
        // credentials" runs, which log their failures.
        let cfg = s.config(format, &creds, "site-media");
        let mut st = Stowaway::start_with(&s.dir, &cfg, &[("RUST_LOG", "trace")]);
        write_file(
            &s.root,
            &format!("up/{format}-{}.txt", creds.len()),
            b"more",
        );
        exercise(&st);
        // An S3 outage while the uploader and the readiness probe run.
        assert!(
            wait_until(Duration::from_secs(10), || st
                .log_text()
                .contains("full scan finished")),
            "{}",
            st.log_text()
        );
        s.s3.pause();
        write_file(
            &s.root,
            &format!("up/outage-{format}-{}.txt", creds.len()),
            b"x",
        );
        assert!(
            wait_until(Duration::from_secs(10), || st
                .log_text()
                .contains("retrying")
                || st.log_text().contains("not ready")),
            "{}",
            st.log_text()
        );
        let _ = get(st.addr, "/readyz");
        s.s3.resume();
        // SIGTERM: the shutdown path logs too.
        st.proc.signal(15);
        assert!(wait_until(Duration::from_secs(10), || matches!(
            st.proc.child.try_wait(),
            Ok(Some(_))
        )));
        let log = st.log_text();
        assert!(
            log.contains("TRACE") || log.contains("\"level\":\"TRACE\""),
            "trace logging is on"
        );
        logged += assert_clean(&log, &format!("serve log ({format}, {creds:?})"));
        st.proc.kill();
    }
    // A wrong secret from the environment, and a missing bucket.
    let st = Stowaway::start_with(
        &s.dir,
        &s.config("json", "", "no-such-bucket"),
        &[("RUST_LOG", "trace"), ("AWS_SECRET_ACCESS_KEY", WRONG_SK)],
    );
    exercise(&st);
    assert!(
        wait_until(Duration::from_secs(15), || st
            .log_text()
            .contains("SignatureDoesNotMatch")),
        "{}",
        st.log_text()
    );
    logged += assert_clean(&st.log_text(), "serve log (wrong secret)");
    eprintln!("SECRETS: {logged} bytes of trace logs checked, no secret in them");
}

#[test]
fn commands_and_errors_never_show_a_secret() {
    let s = site();
    let cfg_path = s.dir.join("inline.toml");
    let inline = s
        .config(
            "text",
            &format!("access_key_id = \"{AK}\"\nsecret_access_key = \"{INLINE_SK}\""),
            "site-media",
        )
        .replace("@LISTEN@", &format!("127.0.0.1:{}", free_port()));
    write_private(&cfg_path, &inline);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = stowaway_cmd();
        c.args(args).arg("--config").arg(&cfg_path);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let mut outputs = Vec::new();
    let o = run(&["print-config"], &[]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(out_text(&o).contains("<redacted>"));
    outputs.push(("print-config", o));
    outputs.push((
        "print-config (env secret)",
        run(
            &["print-config"],
            &[("STOWAWAY__S3__SECRET_ACCESS_KEY", WRONG_SK)],
        ),
    ));
    outputs.push(("check-config", run(&["check-config", "--strict"], &[])));
    outputs.push(("gen-config", run(&["gen-config", "nginx"], &[])));
    outputs.push(("status", run(&["status", "--json"], &[])));
    outputs.push(("healthcheck", run(&["healthcheck", "--ready"], &[])));
    outputs.push((
        "migrate (inline secret, refused by S3)",
        run(
            &["migrate", "--log-level", "trace"],
            &[("RUST_LOG", "trace")],
        ),
    ));
    outputs.push((
        "sign",
        run(&["sign", "/static/here.jpg", "--ttl", "1h"], &[]),
    ));
    // Config errors on every secret-bearing key.
    let broken: Vec<(&str, String)> = vec![
        ("secret too short", inline.replace(LINK_K1, SHORT_K)),
        (
            "secret on a broken line",
            inline.replace(&format!("\"{INLINE_SK}\""), &format!("\"{INLINE_SK}")),
        ),
        (
            "secret as a number",
            inline.replace(&format!("\"{LINK_K1}\""), "12345"),
        ),
        (
            "secret and secret_file",
            inline.replace(
                &format!("secret = \"{LINK_K1}\""),
                &format!("secret = \"{LINK_K1}\"\nsecret_file = \"/nonexistent\""),
            ),
        ),
        (
            "secret key without key id",
            inline.replace(&format!("access_key_id = \"{AK}\"\n"), ""),
        ),
        (
            "another error elsewhere",
            inline.replace("expires = \"10m\"", "expires = \"9d\""),
        ),
        (
            "unknown key next to a secret",
            inline.replace(
                &format!("secret_access_key = \"{INLINE_SK}\""),
                &format!("secret_access_key = \"{INLINE_SK}\"\nsecret_acces_key = \"{WRONG_SK}\""),
            ),
        ),
    ];
    for (what, cfg) in &broken {
        write_private(&cfg_path, cfg);
        for cmd in ["check-config", "print-config", "serve"] {
            // Not an error without --strict: serve would start and run.
            if cmd == "serve" && what.starts_with("unknown key") {
                continue;
            }
            let mut args = vec![cmd];
            if cmd == "check-config" {
                args.push("--strict");
            }
            let o = run(&args, &[]);
            if cmd != "print-config" {
                assert!(!o.status.success(), "{what}: {cmd} accepted it");
            }
            outputs.push((what, o));
        }
    }
    // A secret file readable by others is refused by name, not by content.
    let leaky = s.dir.join("leaky.secret");
    std::fs::write(&leaky, FILE_SK).unwrap();
    std::fs::set_permissions(&leaky, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    write_private(
        &cfg_path,
        inline.replace(
            &format!("secret_access_key = \"{INLINE_SK}\""),
            &format!("secret_access_key_file = \"{}\"", leaky.display()),
        ),
    );
    let o = run(&["check-config"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out_text(&o).contains("chmod 600"), "{}", out_text(&o));
    outputs.push(("secret file readable by others", o));
    let n = outputs.len();
    for (what, o) in &outputs {
        let t = out_text(o);
        assert!(!t.contains("panicked"), "{what}: {t}");
        assert_clean(&t, what);
    }
    eprintln!("SECRETS: {n} command outputs checked, no secret in them");
}
