//! What an operator reads: global flags before the command, debug logs about stowaway (not the
//! AWS SDK's plumbing), no Rust `Debug` syntax in log lines, each error once, and no empty
//! directories left in the root by the uploader.

mod common;
#[path = "common/fronts.rs"]
mod fronts;

use common::*;
use fronts::*;

use std::path::Path;
use std::time::Duration;

/// A config with the uploader on (fast settle), `finalize` as given, logging as given.
fn uploader_config(s3: &S3Server, dir: &Path, root: &Path, finalize: &str, log: &str) -> String {
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let mount = match finalize {
        "archive" => format!(
            "finalize = \"archive\"\narchive_root = \"{}\"",
            archive.display()
        ),
        other => format!("finalize = \"{other}\""),
    };
    config(s3, root, "", &mount).replace(
        "enabled = false",
        &format!("enabled = true\nsettle = \"200ms\"\nrescan_interval = \"1s\"\n[log]\n{log}"),
    )
}

#[test]
fn global_flags_are_accepted_before_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = tmp.path().join("stowaway.toml");
    write_private(
        &cfg,
        config(&s3, &root, "", "").replace("@LISTEN@", "127.0.0.1:1"),
    );
    let out = stowaway_cmd()
        .args(["--config"])
        .arg(&cfg)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "print-config",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("format = \"json\""), "{stdout}");
    assert!(stdout.contains("level = \"debug\""), "{stdout}");
    // After the command wins over before it.
    let out = stowaway_cmd()
        .args([
            "--log-level",
            "warn",
            "print-config",
            "--log-level",
            "error",
        ])
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("level = \"error\""));
}

/// Lines of an SDK/HTTP-stack crate at DEBUG or TRACE in a text log.
fn sdk_debug_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" DEBUG ") || l.contains(" TRACE "))
        .filter(|l| {
            ["aws_", "hyper", "h2::", "rustls", "tower"]
                .iter()
                .any(|t| l.contains(&format!(" {t}")))
        })
        .collect()
}

#[test]
fn debug_logs_are_stowaways_own_without_debug_syntax_and_empty_dirs_go() {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = uploader_config(&s3, tmp.path(), &root, "archive", "format = \"text\"");
    let mut st = Stowaway::start_with(tmp.path(), &cfg, &[]);
    // Restart with --log-level debug given before the command (the test harness passes the
    // config after it).
    st.proc.kill();
    let log = tmp.path().join("debug.log");
    let mut child = Proc {
        child: stowaway_cmd()
            .args(["--log-level", "debug", "serve", "--config"])
            .arg(&st.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        name: "stowaway".into(),
    };
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    write_file(&root, "a/b/c/deep.jpg", b"deep");
    write_file(&root, "keep/one.jpg", b"one");
    write_file(&root, "keep/sub/two.jpg", b"two");
    assert!(
        wait_until(Duration::from_secs(60), || read()
            .matches("file migrated")
            .count()
            >= 3),
        "{}",
        read()
    );
    child.signal(15);
    let _ = child.child.wait();
    let text = read();
    assert!(text.contains(" DEBUG "), "no debug lines at all:\n{text}");
    let sdk = sdk_debug_lines(&text);
    assert!(
        sdk.is_empty(),
        "SDK internals at debug:\n{}",
        sdk.join("\n")
    );
    // stowaway's own lines (the SDK's warnings are its own business).
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(" stowaway")).collect();
    for bad in ["Archived {", "copied: false", "Some(", "None"] {
        let hits: Vec<&&str> = ours.iter().filter(|l| l.contains(bad)).collect();
        assert!(hits.is_empty(), "Debug syntax {bad:?} in: {hits:#?}");
    }
    assert!(text.contains("finalized=archived to "), "{text}");
    // The directories the archive emptied are gone, the root stays.
    assert!(root.is_dir());
    assert!(!root.join("a").exists(), "empty a/b/c left behind");
    assert!(!root.join("keep").exists(), "empty keep/sub left behind");
    assert!(tmp.path().join("archive/a/b/c/deep.jpg").is_file());
    assert!(tmp.path().join("archive/keep/sub/two.jpg").is_file());
}

#[test]
fn sdk_debug_lines_only_when_asked_and_json_has_no_debug_syntax() {
    let s3 = S3Server::start();
    s3.create_bucket("site-media");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = uploader_config(
        &s3,
        tmp.path(),
        &root,
        "delete",
        "format = \"text\"\nlevel = \"debug,aws=debug\"",
    );
    let st = Stowaway::start(tmp.path(), &cfg);
    write_file(&root, "x/y.jpg", b"y");
    write_file(&root, "x/z.tmp", b"ignored: keeps x/");
    assert!(wait_until(Duration::from_secs(60), || st
        .log_text()
        .contains("file migrated")));
    let text = st.log_text();
    assert!(
        !sdk_debug_lines(&text).is_empty(),
        "aws=debug asked for the SDK's debug lines:\n{text}"
    );
    assert!(text.contains("finalized=deleted"), "{text}");
    // x/ still holds an (ignored) file: it stays.
    assert!(root.join("x/z.tmp").is_file());
    drop(st);

    let cfg = config(&s3, &root, "", "").replace(
        "enabled = false",
        "enabled = false\n[log]\nformat = \"json\"",
    );
    let st = Stowaway::start(tmp.path(), &cfg);
    let text = st.log_text();
    assert!(text.contains("stowaway serving"), "{text}");
    for bad in ["\"None\"", "Some("] {
        assert!(!text.contains(bad), "{bad} in the JSON log:\n{text}");
    }
}

#[test]
fn a_fatal_error_is_printed_once() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = tmp.path().join("stowaway.toml");
    write_private(
        &cfg,
        config(&s3, &root, "", "").replace("@LISTEN@", &taken.local_addr().unwrap().to_string()),
    );
    for format in ["text", "json"] {
        let out = stowaway_cmd()
            .args(["--log-format", format, "serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("cannot listen on").count(),
            1,
            "{format}: the error is not printed exactly once:\n{err}"
        );
        if format == "text" {
            assert!(err.contains("stowaway: cannot listen on"), "{err}");
        } else {
            assert!(err.contains("\"level\":\"ERROR\""), "{err}");
        }
    }
}
