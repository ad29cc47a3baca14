//! Installing and operating like a daemon, with the real binary: `--version` and the build-info
//! metric, the default config path, `healthcheck` with only `--listen`, unknown keys refused
//! (and `--lenient`), the region from the AWS variables, `check-config --online` against the
//! local S3 server, `migrate` without credentials, and the retry at once when S3 comes back.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("c.toml");
    write_private(&p, body);
    p.display().to_string()
}

/// One upload mount on the local S3 server, key prefix `site/`.
fn upload_config(s3: &S3Server, root: &Path, bucket: &str, extra_uploader: &str) -> String {
    format!(
        "[server]\nlisten = \"@LISTEN@\"\ns3_probe_interval = \"200ms\"\n\
         [uploader]\nenabled = true\nsettle = \"50ms\"\nrescan_interval = \"1h\"\n\
         retry_min_delay = \"20ms\"\nretry_max_delay = \"50ms\"\nmax_attempts = 1\n{extra_uploader}\n\
         {}\n[[mount]]\nprefix = \"/static/\"\nroot = {:?}\nbucket = \"{bucket}\"\n\
         key_prefix = \"site/\"\nurl = \"presigned\"\nfinalize = \"keep\"\n",
        s3.s3_section(),
        root.display().to_string(),
    )
}

#[test]
fn version_names_the_commit_and_metrics_carry_build_info() {
    let o = stowaway_cmd().arg("--version").output().unwrap();
    assert!(o.status.success());
    let v = stdout(&o);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string());
    let expected = commit.as_deref().unwrap_or("unknown");
    assert_eq!(
        v.trim(),
        format!("stowaway {} (commit {expected})", env!("CARGO_PKG_VERSION"))
    );

    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(
        d.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\n[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n\
             [[mount]]\nprefix = \"/static/\"\nroot = {:?}\nbucket = \"my-bucket\"\nurl = \"public\"\n",
            root.display().to_string()
        ),
    );
    let text = String::from_utf8_lossy(&get(st.addr, "/metrics").body).to_string();
    let line = format!(
        "stowaway_build_info{{version=\"{}\",commit=\"{expected}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    assert!(text.contains("# TYPE stowaway_build_info gauge"), "{text}");
    // The first log line names the file that was read.
    let log = st.log_text();
    let first = log.lines().next().unwrap_or("");
    assert!(
        first.contains("configuration read") && first.contains(&st.config.display().to_string()),
        "first log line: {first}"
    );
}

#[test]
fn default_config_path_and_a_missing_file_are_named() {
    let o = stowaway_cmd()
        .arg("check-config")
        .env_remove("STOWAWAY_CONFIG")
        .output()
        .unwrap();
    let err = stderr(&o);
    if Path::new("/etc/stowaway/stowaway.toml").exists() {
        // A machine with stowaway installed: the default file is the one read.
        eprintln!("/etc/stowaway/stowaway.toml exists; checking that it is the file read");
        assert!(!err.contains("no config file at"), "{err}");
    } else {
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("no config file at /etc/stowaway/stowaway.toml"),
            "{err}"
        );
        assert!(!err.contains("no mounts are configured"), "{err}");
    }
    // An explicit path that is missing gets the same message, naming that path.
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope.toml");
    for cmd in [
        "check-config",
        "serve",
        "migrate",
        "status",
        "prune-archive",
    ] {
        let o = stowaway_cmd()
            .arg(cmd)
            .arg("--config")
            .arg(&missing)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("no config file at {}", missing.display())),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn healthcheck_needs_only_listen() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(
        d.path(),
        &format!(
            "[server]\nlisten = \"@LISTEN@\"\n[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n\
             [[mount]]\nprefix = \"/static/\"\nroot = {:?}\nbucket = \"my-bucket\"\nurl = \"public\"\n",
            root.display().to_string()
        ),
    );
    let o = stowaway_cmd()
        .current_dir(d.path())
        .env_remove("STOWAWAY_CONFIG")
        .args(["healthcheck", "--listen", &st.addr.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("healthz ok"));
    let o = stowaway_cmd()
        .env_remove("STOWAWAY_CONFIG")
        .args([
            "healthcheck",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));
}

#[test]
fn unknown_keys_are_errors_unless_lenient() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n[[mount]]\nprefix = \"/static/\"\n\
             root = {:?}\nbucket = \"my-bucket\"\nkeyprefix = \"site/\"\n",
            d.path().display().to_string()
        ),
    );
    for cmd in ["check-config", "print-config", "serve", "status"] {
        let o = stowaway_cmd()
            .args([cmd, "--config", &cfg])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("unknown config key `mount.0.keyprefix`: did you mean `key_prefix`?")
                && err.contains("--lenient"),
            "{cmd}: {err}"
        );
    }
    let o = stowaway_cmd()
        .args(["check-config", "--lenient", "--config", &cfg])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: unknown config key `mount.0.keyprefix`"));
    // --strict wins over --lenient (the unit's ExecStartPre uses --strict).
    let o = stowaway_cmd()
        .args(["check-config", "--strict", "--lenient", "--config", &cfg])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn region_comes_from_the_aws_variables_when_unset() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "[uploader]\nenabled = false\n[[mount]]\nprefix = \"/static/\"\nroot = {:?}\n\
             bucket = \"my-bucket\"\nurl = \"presigned\"\n",
            d.path().display().to_string()
        ),
    );
    let run = |env: &[(&str, &str)]| {
        let mut c = stowaway_cmd();
        c.args(["print-config", "--config", &cfg])
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("s3.region") && stderr(&o).contains("AWS_REGION"));
    let o = run(&[("AWS_DEFAULT_REGION", "eu-central-1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("region = \"eu-central-1\""),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        ("AWS_REGION", "ap-south-1"),
        ("AWS_DEFAULT_REGION", "eu-central-1"),
    ]);
    assert!(
        stdout(&o).contains("region = \"ap-south-1\""),
        "{}",
        stdout(&o)
    );
    // The file wins over the environment.
    std::fs::write(
        &cfg,
        format!(
            "[s3]\nregion = \"us-west-2\"\n{}",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    )
    .unwrap();
    let o = run(&[("AWS_REGION", "ap-south-1")]);
    assert!(
        stdout(&o).contains("region = \"us-west-2\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_config_online_against_the_local_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("online-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let good = upload_config(&s3, &root, "online-bucket", "").replace("@LISTEN@", "127.0.0.1:1");
    let cfg = write_config(d.path(), &good);
    let online = |env: &[(&str, &str)]| {
        let mut c = stowaway_cmd();
        c.args(["check-config", "--online", "--config", &cfg]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = online(&[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("ok: AWS credentials resolve"), "{out}");
    assert!(out.contains("ok: bucket online-bucket exists"), "{out}");
    assert!(
        out.contains("ok: wrote and deleted a probe under s3://online-bucket/site/"),
        "{out}"
    );
    // The probe left nothing behind.
    assert!(
        s3.list("online-bucket").is_empty(),
        "{:?}",
        s3.list("online-bucket")
    );

    // A missing bucket.
    write_private(
        Path::new(&cfg),
        good.replace("online-bucket", "no-such-bucket"),
    );
    let o = online(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("mount[0].bucket = \"no-such-bucket\"")
            && err.contains("bucket no-such-bucket does not exist")
            && err.contains("fix: create it"),
        "{err}"
    );

    // Wrong credentials: an unknown key id, then a wrong secret.
    write_private(Path::new(&cfg), &good);
    let o = online(&[("AWS_ACCESS_KEY_ID", "AKIDWRONGWRONGWRONG")]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("fix: check AWS_ACCESS_KEY_ID"), "{err}");
    let o = online(&[("AWS_SECRET_ACCESS_KEY", "not/the/secret")]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("fix: check AWS_SECRET_ACCESS_KEY") && !err.contains("not/the/secret"),
        "{err}"
    );

    // No credentials at all.
    let o = stowaway_cmd()
        .args(["check-config", "--online", "--config", &cfg])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("cannot load AWS credentials") && stderr(&o).contains("fix:"),
        "{}",
        stderr(&o)
    );

    // S3 down.
    s3.pause();
    let o = online(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no answer from S3") && stderr(&o).contains("fix: check s3.endpoint")
    );
}

#[test]
fn migrate_without_credentials_stops_at_once() {
    let s3 = S3Server::start();
    s3.create_bucket("migrate-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    for i in 0..5 {
        write_file(&root, &format!("f{i}.txt"), b"hello");
    }
    let cfg = write_config(
        d.path(),
        &upload_config(&s3, &root, "migrate-bucket", "")
            .replace("@LISTEN@", "127.0.0.1:1")
            .replace("max_attempts = 1", "max_attempts = 5")
            .replace("retry_min_delay = \"20ms\"", "retry_min_delay = \"1s\"")
            .replace("retry_max_delay = \"50ms\"", "retry_max_delay = \"5s\""),
    );
    // Files must look settled.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let o = stowaway_cmd()
        .args(["migrate", "--config", &cfg])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot load AWS credentials") && err.contains("fix: set AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    // One message, not one per file.
    assert_eq!(
        err.matches("cannot load AWS credentials").count(),
        1,
        "{err}"
    );
    assert!(s3.list("migrate-bucket").is_empty());
}

#[test]
fn files_that_failed_while_s3_was_down_are_retried_when_it_returns() {
    let s3 = S3Server::start();
    s3.create_bucket("back-bucket");
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let st = Stowaway::start(d.path(), &upload_config(&s3, &root, "back-bucket", ""));
    write_file(&root, "first.txt", b"first");
    assert!(
        wait_until(Duration::from_secs(20), || s3
            .get("back-bucket", "site/first.txt")
            .is_some()),
        "first file never uploaded: {}",
        st.log_text()
    );
    s3.pause();
    assert!(
        wait_until(Duration::from_secs(20), || get(st.addr, "/readyz").status
            == 503),
        "S3 outage not noticed"
    );
    write_file(&root, "during.txt", b"written during the outage");
    assert!(
        wait_until(Duration::from_secs(20), || st
            .log_text()
            .contains("during.txt")),
        "the upload of during.txt was never attempted: {}",
        st.log_text()
    );
    s3.resume();
    // rescan_interval is an hour: only the recovery signal can bring the file up in time.
    assert!(
        wait_until(Duration::from_secs(20), || s3
            .get("back-bucket", "site/during.txt")
            .is_some()),
        "not retried after S3 returned: {}",
        st.log_text()
    );
    assert!(st.log_text().contains("S3 is reachable again: retrying"));
}
