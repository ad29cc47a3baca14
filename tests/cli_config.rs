//! The command line and configuration: layering, validation messages, unknown keys, redaction.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = stowaway_cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("c.toml");
    write_private(&p, body);
    p.display().to_string()
}

fn base(root: &Path, mount_extra: &str) -> String {
    format!(
        "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n[[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"my-bucket\"\n{mount_extra}\n",
        root.display()
    )
}

#[test]
fn valid_config_passes_check() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &base(d.path(), ""));
    let o = run(&["check-config", "--config", &cfg], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("configuration OK"));
}

#[test]
fn bad_values_exit_2_naming_key_value_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let cases: Vec<(String, &str)> = vec![
        (
            base(root, "expires = \"8d\"\nwindow = \"0s\""),
            "mount[0].expires",
        ),
        (base(root, "expires = \"7d\"\nwindow = \"5m\""), "7-day"),
        (base(root, "expires = \"soon\""), "mount[0].expires"),
        (base(root, "url = \"signed\""), "mount[0].url"),
        (
            format!("[server]\nlisten = \"localhost\"\n{}", base(root, "")),
            "server.listen",
        ),
        (
            format!("[log]\nformat = \"xml\"\n{}", base(root, "")),
            "log.format",
        ),
        (
            base(root, "").replace(&root.display().to_string(), "/nonexistent/stowaway/root"),
            "mount[0].root",
        ),
        (
            base(root, "").replace(&root.display().to_string(), "relative/dir"),
            "absolute",
        ),
        (
            format!(
                "[uploader]\npart_size = \"1MiB\"\n{}",
                base(root, "").replace("[uploader]\nenabled = false\n", "")
            ),
            "uploader.part_size",
        ),
        (
            base(root, "finalize = \"archive\"").replace("enabled = false", "enabled = true"),
            "mount[0].archive_root",
        ),
        ("[s3]\nregion = \"eu-west-1\"\n".to_string(), "mount"),
        (
            "this is = = not toml".to_string(),
            "cannot load configuration",
        ),
        (
            format!("[server]\nworkers = \"many\"\n{}", base(root, "")),
            "cannot load configuration",
        ),
        (
            base(root, "public_base_url = \"https://cdn.example.com/\""),
            "mount[0].public_base_url",
        ),
    ];
    for (cfg, needle) in cases {
        let p = write_config(d.path(), &cfg);
        let o = run(&["check-config", "--config", &p], &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "config:\n{cfg}\nstderr: {err}");
        assert!(
            err.contains(needle),
            "expected {needle:?} in: {err}\nconfig:\n{cfg}"
        );
        assert!(
            err.contains("fix") || err.contains("cannot load"),
            "no fix in: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bad_bucket_and_prefix_name_their_keys() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(
        d.path(),
        &base(d.path(), "").replace("my-bucket", "No_Such"),
    );
    let o = run(&["check-config", "--config", &p], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("mount[0].bucket"), "{}", stderr(&o));
    let p = write_config(
        d.path(),
        &base(d.path(), "").replace("\"/static/\"", "\"static\""),
    );
    let o = run(&["check-config", "--config", &p], &[]);
    assert!(stderr(&o).contains("mount[0].prefix"), "{}", stderr(&o));
}

#[test]
fn unknown_keys_are_reported_and_strict_fails() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(
        d.path(),
        &format!(
            "[server]\nlisen = \"127.0.0.1:1\"\n{}",
            base(d.path(), "expirse = \"1h\"")
        ),
    );
    // Unknown keys are errors by default; --lenient makes them warnings.
    let o = run(&["check-config", "--lenient", "--config", &p], &[]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("server.lisen") && err.contains("expirse"),
        "{err}"
    );
    let o = run(&["check-config", "--config", &p], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["check-config", "--strict", "--config", &p], &[]);
    assert_eq!(o.status.code(), Some(2));
    // Unknown environment keys are reported too.
    let p = write_config(d.path(), &base(d.path(), ""));
    let o = run(
        &["check-config", "--lenient", "--config", &p],
        &[("STOWAWAY__SERVER__LISTN", "x")],
    );
    assert!(stderr(&o).contains("server.listn"), "{}", stderr(&o));
}

#[test]
fn layering_defaults_file_env_cli() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(
        d.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:7001\"\n[log]\nlevel = \"warn\"\n{}",
            base(d.path(), "")
        ),
    );
    let show = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["print-config", "--config", &p];
        args.extend_from_slice(extra);
        let o = run(&args, env);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let out = show(&[], &[]);
    assert!(out.contains("listen = \"127.0.0.1:7001\""), "{out}");
    assert!(
        out.contains("internal_prefix = \"/_stowaway_local/\""),
        "defaults shown: {out}"
    );
    assert!(out.contains("level = \"warn\""));
    let out = show(&[("STOWAWAY__SERVER__LISTEN", "127.0.0.1:7002")], &[]);
    assert!(
        out.contains("listen = \"127.0.0.1:7002\""),
        "env wins over file: {out}"
    );
    let out = show(
        &[("STOWAWAY__SERVER__LISTEN", "127.0.0.1:7002")],
        &["--listen", "127.0.0.1:7003"],
    );
    assert!(
        out.contains("listen = \"127.0.0.1:7003\""),
        "flag wins over env: {out}"
    );
    let out = show(&[("STOWAWAY__UPLOADER__SETTLE", "45s")], &[]);
    assert!(
        out.contains("settle = \"45s\""),
        "human units from env: {out}"
    );
}

#[test]
fn secrets_are_redacted_in_print_config_and_errors() {
    let d = tempfile::tempdir().unwrap();
    let secret = "Sup3rS3cretValue/ForTests+xyz";
    let p = write_config(
        d.path(),
        &base(d.path(), "").replace(
            "[s3]\n",
            &format!("[s3]\naccess_key_id = \"AKIDX\"\nsecret_access_key = \"{secret}\"\n"),
        ),
    );
    let o = run(&["print-config", "--config", &p], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(out.contains("<redacted>") && !out.contains(secret), "{out}");
    // A failing config does not echo the secret either.
    let p = write_config(
        d.path(),
        &base(d.path(), "expires = \"9d\"").replace(
            "[s3]\n",
            &format!("[s3]\naccess_key_id = \"AKIDX\"\nsecret_access_key = \"{secret}\"\n"),
        ),
    );
    let o = run(&["check-config", "--config", &p], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains(secret));
    // Secret files must not be readable by others.
    let f = d.path().join("secret");
    std::fs::write(&f, secret).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let p = write_config(
        d.path(),
        &base(d.path(), "").replace(
            "[s3]\n",
            &format!(
                "[s3]\naccess_key_id = \"AKIDX\"\nsecret_access_key_file = \"{}\"\n",
                f.display()
            ),
        ),
    );
    let o = run(&["check-config", "--config", &p], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let o = run(&["print-config", "--config", &p], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let o = run(
        &["check-config", "--config", "/nonexistent/stowaway.toml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/stowaway.toml"));
}

#[test]
fn serve_fails_clearly_without_credentials() {
    let d = tempfile::tempdir().unwrap();
    let p = write_config(
        d.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n{}",
            free_port(),
            base(d.path(), "")
        ),
    );
    let o = stowaway_cmd()
        .args(["serve", "--config", &p])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("cannot load AWS credentials"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "names the fix: {err}");
}

#[test]
fn example_config_generates_the_shipped_nginx_config() {
    // Every mount of the example is open: the default is local-first.
    for (mode, file) in [
        (None, "nginx/stowaway-local.conf"),
        (Some("local-first"), "nginx/stowaway-local.conf"),
        (Some("proxy"), "nginx/stowaway-proxy.conf"),
    ] {
        let mut args = vec!["gen-config", "nginx"];
        if let Some(m) = mode {
            args.extend(["--mode", m]);
        }
        args.extend([
            "--config",
            "examples/stowaway.toml",
            "--front-listen",
            "80",
            "--server-name",
            "www.example.com",
        ]);
        let out = run(&args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let shipped = std::fs::read_to_string(file).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            shipped,
            "{file} drifted: regenerate it"
        );
    }
}

#[test]
fn print_config_output_is_a_valid_config_again() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let archive = d.path().join("archive");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    let p = write_config(
        d.path(),
        &base(
            &root,
            &format!(
                "archive_root = \"{}\"\nwindow = \"2m\"\nresponse_content_type = \"image/png\"",
                archive.display()
            ),
        )
        .replace(
            "enabled = false",
            "enabled = true\nmultipart_threshold = \"96MiB\"\nsettle = \"1m 30s\"",
        ),
    );
    let first = run(&["print-config", "--config", &p], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = d.path().join("again.toml");
    std::fs::write(&again, &first.stdout).unwrap();
    let again = again.display().to_string();
    let o = run(&["check-config", "--strict", "--config", &again], &[]);
    assert!(
        o.status.success(),
        "print-config output is not a valid config: {}\n{}",
        stderr(&o),
        String::from_utf8_lossy(&first.stdout)
    );
    let second = run(&["print-config", "--config", &again], &[]);
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout)
    );
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains("multipart_threshold = \"96MiB\"") && text.contains("settle = \"1m 30s\""),
        "{text}"
    );
}

/// Two mounts: `/static/` (open, public URLs) and `/private/` (presigned), with the given
/// roots, key prefixes and extra lines, on bucket `my-bucket` unless `second_extra` says else.
fn two_mounts(first: (&Path, &str, &str), second: (&Path, &str, &str)) -> String {
    format!(
        "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n\
         [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"my-bucket\"\nkey_prefix = \"{}\"\nurl = \"public\"\n{}\n\
         [[mount]]\nprefix = \"/private/\"\nroot = \"{}\"\nbucket = \"my-bucket\"\nkey_prefix = \"{}\"\n{}\n",
        first.0.display(),
        first.1,
        first.2,
        second.0.display(),
        second.1,
        second.2
    )
}

/// check-config exits 2 naming the key and both mounts, with a fix.
fn assert_overlap_refused(dir: &Path, cfg: &str, key: &str) {
    let p = write_config(dir, cfg);
    let o = run(&["check-config", "--config", &p], &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "accepted:\n{cfg}\nstderr: {err}");
    assert!(
        err.contains(&format!("`{key}`"))
            && err.contains("mount \"/static/\"")
            && err.contains("mount \"/private/\"")
            && err.contains("fix:"),
        "expected {key} and both mounts in: {err}\nconfig:\n{cfg}"
    );
}

fn mkdirs(base: &Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        })
        .collect()
}

/// Issue 11 item 2: an open mount whose key prefix covers a signed mount's objects on the
/// same bucket would redirect unsigned requests to them (and upload over them).
#[test]
fn mounts_with_nested_key_prefixes_on_one_bucket_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let r = mkdirs(d.path(), &["static", "private"]);
    let access = "[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"0123456789abcdef0123456789abcdef-k1\"\n";
    for (k1, k2) in [("", "private/"), ("p/", "p/"), ("p/", "p/q/")] {
        assert_overlap_refused(
            d.path(),
            &two_mounts((&r[0], k1, ""), (&r[1], k2, access)),
            "mount[1].key_prefix",
        );
    }
    // Separate prefixes (or buckets) are fine.
    let ok = two_mounts((&r[0], "static/", ""), (&r[1], "private/", access));
    let o = run(
        &["check-config", "--config", &write_config(d.path(), &ok)],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let other_bucket = two_mounts((&r[0], "", ""), (&r[1], "", access)).replacen(
        "bucket = \"my-bucket\"",
        "bucket = \"other-bucket\"",
        1,
    );
    let o = run(
        &[
            "check-config",
            "--config",
            &write_config(d.path(), &other_bucket),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Issue 11 item 2: a root or archive root equal to or inside another mount's root or
/// archive root, including through a symlink.
#[test]
fn mounts_with_nested_roots_or_archives_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let r = mkdirs(
        d.path(),
        &[
            "site/static",
            "site/static/private",
            "site/private",
            "archive",
            "archive2",
            "site/staticx",
        ],
    );
    let (stat, inner, private, arch, arch2, sibling) = (&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]);
    let archive = |p: &Path| format!("archive_root = \"{}\"", p.display());
    let link = d.path().join("private-link");
    std::os::unix::fs::symlink(inner, &link).unwrap();
    let cases = [
        // A root inside another mount's root.
        (
            (stat.as_path(), "s/", String::new()),
            (inner.as_path(), "p/", String::new()),
            "mount[1].root",
        ),
        // The same, hidden behind a symlink.
        (
            (stat, "s/", String::new()),
            (link.as_path(), "p/", String::new()),
            "mount[1].root",
        ),
        // One root for both.
        (
            (stat, "s/", String::new()),
            (stat, "p/", String::new()),
            "mount[1].root",
        ),
        // The signed mount's archive inside the open mount's root.
        (
            (stat, "s/", String::new()),
            (private.as_path(), "p/", archive(inner)),
            "mount[1].archive_root",
        ),
        // A shared archive root.
        (
            (stat, "s/", archive(arch)),
            (private, "p/", archive(arch)),
            "mount[1].archive_root",
        ),
        // A root inside another mount's archive root.
        (
            (stat, "s/", archive(arch)),
            (arch.as_path(), "p/", archive(arch2)),
            "mount[1].root",
        ),
    ];
    for ((r1, k1, e1), (r2, k2, e2), key) in &cases {
        assert_overlap_refused(d.path(), &two_mounts((r1, k1, e1), (r2, k2, e2)), key);
    }
    // /site/static and /site/staticx are siblings, not nested.
    let ok = two_mounts(
        (stat, "s/", &archive(arch)),
        (sibling, "p/", &archive(arch2)),
    );
    let o = run(
        &["check-config", "--config", &write_config(d.path(), &ok)],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Issue 11 item 10: an inline secret in a config file others can read is refused like a
/// readable secret_file; at mode 0600 it is accepted.
#[test]
fn inline_secrets_in_a_group_or_world_readable_config_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let secret = "Inline/Secret+Value0123456789abcdefXYZ";
    let s3 = base(d.path(), "").replace(
        "[s3]\n",
        &format!("[s3]\naccess_key_id = \"AKIDX\"\nsecret_access_key = \"{secret}\"\n"),
    );
    let link = base(
        d.path(),
        &format!("[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{secret}\"\n"),
    );
    for (cfg, key) in [
        (&s3, "s3.secret_access_key"),
        (&link, "mount[0].access.keys[0].secret"),
    ] {
        let p = write_config(d.path(), cfg);
        for mode in [0o644, 0o640] {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
            for cmd in ["check-config", "serve", "print-config"] {
                let o = run(&[cmd, "--config", &p], &[]);
                let err = stderr(&o);
                assert_eq!(o.status.code(), Some(2), "{cmd} {mode:o}: {err}");
                assert!(
                    err.contains(&format!("`{key}`"))
                        && err.contains("readable by group or others")
                        && err.contains(&format!("chmod 600 {p}")),
                    "{cmd} {mode:o}: {err}"
                );
                assert!(!err.contains(secret) && o.stdout.is_empty(), "{err}");
            }
        }
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let o = run(&["check-config", "--config", &p], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // The same secret from the environment: there is no file to protect.
    let p = write_config(
        d.path(),
        &base(d.path(), "").replace("[s3]\n", "[s3]\naccess_key_id = \"AKIDX\"\n"),
    );
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = run(
        &["check-config", "--config", &p],
        &[("STOWAWAY__S3__SECRET_ACCESS_KEY", secret)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Issue 11 item 10: a value of the wrong type is named by key (or line), never shown.
#[test]
fn type_errors_name_the_key_but_never_show_the_value() {
    let d = tempfile::tempdir().unwrap();
    let secret = "Typo/Secret+Value0123456789abcdefXYZ";
    let big = "123456789012345678901234567890123456789";
    let cases = [
        (
            format!("[server]\nworkers = \"{secret}\"\n{}", base(d.path(), "")),
            "server.workers",
        ),
        (
            format!("[server]\nworkers = {big}\n{}", base(d.path(), "")),
            "line 2",
        ),
        (
            base(d.path(), "").replace(
                "[s3]\n",
                &format!("[s3]\naccess_key_id = \"AKIDX\"\nsecret_access_key = [\"{secret}\"]\n"),
            ),
            "s3.secret_access_key",
        ),
        (
            base(
                d.path(),
                &format!(
                    "[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = [ \"{secret}\" ]\n"
                ),
            ),
            "mount[0].access.keys[0].secret",
        ),
    ];
    for (cfg, needle) in &cases {
        let p = write_config(d.path(), cfg);
        let o = run(&["check-config", "--config", &p], &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert!(
            !err.contains(secret) && !err.contains(big),
            "value shown: {err}"
        );
    }
}
