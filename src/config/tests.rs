//! Tests over the whole configuration: mounts that reach each other, secrets in readable
//! files, load errors that never show a value, key suggestions. The rules of one section are
//! tested beside their validator in `validate/`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{field_names, without_value};
use super::validate::mount::resolved_location;
use super::*;

fn raw(text: &str) -> RawConfig {
    toml::from_str(text).unwrap()
}

/// `[[mount]]` lines: root, bucket, key prefix and any extra lines.
fn mount(prefix: &str, root: &Path, bucket: &str, key_prefix: &str, extra: &str) -> String {
    format!(
        "[[mount]]\nprefix = \"{prefix}\"\nroot = \"{}\"\nbucket = \"{bucket}\"\nkey_prefix = \"{key_prefix}\"\n{extra}\n",
        root.display()
    )
}

fn config(mounts: &[String]) -> String {
    format!(
        "[s3]\nregion = \"eu-west-1\"\n[uploader]\nenabled = false\n{}",
        mounts.concat()
    )
}

fn dirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        })
        .collect()
}

/// The error names the key and both mounts (by prefix).
fn assert_overlap(text: &str, fs: FsChecks, key: &str) {
    let e = validate_with(&raw(text), fs)
        .expect_err(&format!("accepted:\n{text}"))
        .to_string();
    assert!(
        e.contains(&format!("`{key}`"))
            && e.contains("mount \"/static/\"")
            && e.contains("mount \"/private/\"")
            && e.contains("fix: "),
        "{e}"
    );
}

#[test]
fn key_prefixes_on_one_bucket_may_not_nest() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s", "p"]);
    let pair = |b1: &str, k1: &str, b2: &str, k2: &str| {
        config(&[
            mount("/static/", &d[0], b1, k1, "url = \"public\""),
            mount("/private/", &d[1], b2, k2, ""),
        ])
    };
    // The review's case: an open mount over the whole bucket and a signed one inside it.
    for (k1, k2) in [
        ("", "private/"),
        ("private/", ""),
        ("a/", "a/"),
        ("a/", "a/b/"),
        ("a/b/", "a/"),
        ("", ""),
    ] {
        assert_overlap(
            &pair("media", k1, "media", k2),
            FsChecks::Check,
            "mount[1].key_prefix",
        );
    }
    // Siblings, or the same prefix on another bucket, are fine.
    for (b2, k1, k2) in [
        ("media", "a/", "ab/"),
        ("media", "static/", "private/"),
        ("other", "", ""),
    ] {
        let text = pair("media", k1, b2, k2);
        assert!(validate(&raw(&text)).is_ok(), "{text}");
    }
}

#[test]
fn roots_and_archives_may_not_nest_across_mounts() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s", "s/inner", "p", "arch", "arch2", "ab", "a"]);
    let (s, inner, p, arch, arch2, ab, a) = (&d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &d[6]);
    let archive = |dir: &Path| format!("archive_root = \"{}\"", dir.display());
    let cases = [
        // A root inside another mount's root.
        (
            mount("/static/", s, "media", "s/", ""),
            mount("/private/", inner, "media", "p/", ""),
            "mount[1].root",
        ),
        // The same root twice.
        (
            mount("/static/", s, "media", "s/", ""),
            mount("/private/", s, "media", "p/", ""),
            "mount[1].root",
        ),
        // A root containing another mount's root.
        (
            mount("/static/", inner, "media", "s/", ""),
            mount("/private/", s, "media", "p/", ""),
            "mount[1].root",
        ),
        // A signed mount's archive inside an open mount's root.
        (
            mount("/static/", s, "media", "s/", ""),
            mount("/private/", p, "media", "p/", &archive(inner)),
            "mount[1].archive_root",
        ),
        // Two mounts sharing an archive root.
        (
            mount("/static/", s, "media", "s/", &archive(arch)),
            mount("/private/", p, "media", "p/", &archive(arch)),
            "mount[1].archive_root",
        ),
        // A root inside (here: equal to) another mount's archive root.
        (
            mount("/static/", s, "media", "s/", &archive(arch)),
            mount("/private/", arch, "media", "p/", &archive(arch2)),
            "mount[1].root",
        ),
    ];
    for (m0, m1, key) in cases {
        assert_overlap(&config(&[m0, m1]), FsChecks::Check, key);
    }
    // Component-wise, not a string prefix: /x/a and /x/ab are siblings.
    let ok = config(&[
        mount("/static/", a, "media", "s/", &archive(arch)),
        mount("/private/", ab, "media", "p/", &archive(arch2)),
    ]);
    assert!(validate(&raw(&ok)).is_ok(), "{ok}");
}

#[test]
fn a_symlink_cannot_hide_an_overlap() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["site/static/private", "elsewhere"]);
    let link = t.path().join("elsewhere/private-link");
    std::os::unix::fs::symlink(&d[0], &link).unwrap();
    let text = config(&[
        mount("/static/", &t.path().join("site/static"), "media", "s/", ""),
        mount("/private/", &link, "media", "p/", ""),
    ]);
    for fs in [FsChecks::Check, FsChecks::Skip] {
        assert_overlap(&text, fs, "mount[1].root");
    }
    // Unchecked paths are shown as written, plus where they really lead.
    let e = validate_with(&raw(&text), FsChecks::Skip)
        .unwrap_err()
        .to_string();
    assert!(e.contains("really"), "shows where the link leads: {e}");
}

#[test]
fn paths_that_do_not_exist_are_compared_lexically() {
    // gen-config checks a config for another machine: nothing exists here.
    let text = config(&[
        mount(
            "/static/",
            Path::new("/nonexistent-x/site/static"),
            "media",
            "s/",
            "",
        ),
        mount(
            "/private/",
            Path::new("/nonexistent-x/site/private/../static/./p"),
            "media",
            "p/",
            "",
        ),
    ]);
    assert_overlap(&text, FsChecks::Skip, "mount[1].root");
    let ok = config(&[
        mount(
            "/static/",
            Path::new("/nonexistent-x/site/a"),
            "media",
            "s/",
            "",
        ),
        mount(
            "/private/",
            Path::new("/nonexistent-x/site/ab"),
            "media",
            "p/",
            "",
        ),
    ]);
    assert!(validate_with(&raw(&ok), FsChecks::Skip).is_ok());
    assert_eq!(
        resolved_location(Path::new("/nonexistent-x/a/../b/./c")),
        PathBuf::from("/nonexistent-x/b/c")
    );
}

#[test]
fn own_archive_inside_own_root_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s", "s/archive"]);
    let text = config(&[mount(
        "/static/",
        &d[0],
        "media",
        "",
        &format!("archive_root = \"{}\"", d[1].display()),
    )]);
    let e = validate(&raw(&text)).unwrap_err().to_string();
    assert!(e.contains("`mount[0].archive_root`"), "{e}");
    // Also when only the resolved paths show it (a link to inside the root).
    let link = t.path().join("archive-link");
    std::os::unix::fs::symlink(&d[1], &link).unwrap();
    let text = config(&[mount(
        "/static/",
        &d[0],
        "media",
        "",
        &format!("archive_root = \"{}\"", link.display()),
    )]);
    for fs in [FsChecks::Check, FsChecks::Skip] {
        let e = validate_with(&raw(&text), fs).unwrap_err().to_string();
        assert!(e.contains("`mount[0].archive_root`"), "{fs:?}: {e}");
    }
}

const LINK_SECRET: &str = "inline-link-secret-0123456789abcdefXYZ";
const S3_SECRET: &str = "Inline/S3/Secret+0123456789abcdefXYZ";

fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn inline_secrets_in_a_readable_file_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s"]);
    let s3 = format!(
        "[s3]\nregion = \"eu-west-1\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"{S3_SECRET}\"\n[uploader]\nenabled = false\n{}",
        mount("/static/", &d[0], "media", "", "")
    );
    let link = config(&[mount(
        "/static/",
        &d[0],
        "media",
        "",
        &format!(
            "[mount.access]\n[[mount.access.keys]]\nid = \"k0\"\nsecret_file = \"/x\"\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{LINK_SECRET}\"\n"
        ),
    )]);
    let cli = CliOverrides::default();
    for (text, key) in [
        (&s3, "s3.secret_access_key"),
        (&link, "mount[0].access.keys[1].secret"),
    ] {
        for mode in [0o644, 0o640, 0o604] {
            let p = write(t.path(), text, mode);
            let e = load(Some(&p), &cli).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{key}`"))
                    && e.contains(&format!("chmod 600 {}", p.display()))
                    && e.contains(&format!("{key}_file"))
                    && !e.contains(S3_SECRET)
                    && !e.contains(LINK_SECRET),
                "{mode:o}: {e}"
            );
        }
        let p = write(t.path(), text, 0o600);
        assert!(load(Some(&p), &cli).is_ok());
    }
    // Secrets only in files: the config file's mode does not matter.
    let p = write(
        t.path(),
        &config(&[mount("/static/", &d[0], "media", "", "")]),
        0o644,
    );
    assert!(load(Some(&p), &cli).is_ok());
}

#[test]
fn type_errors_never_show_the_value() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s"]);
    let base = config(&[mount("/static/", &d[0], "media", "", "")]);
    let cli = CliOverrides::default();
    for (text, key) in [
        (
            base.replace(
                "[s3]\n",
                &format!("[s3]\naccess_key_id = \"AKID\"\nsecret_access_key = [\"{S3_SECRET}\"]\n"),
            ),
            "s3.secret_access_key",
        ),
        (
            format!(
                "{base}[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = [\"{LINK_SECRET}\"]\n"
            ),
            "mount[0].access.keys[0].secret",
        ),
        (
            format!("{base}[mount.access]\nkeys = \"{LINK_SECRET}\"\n"),
            "mount[0].access.keys",
        ),
        (
            base.replace(
                "[uploader]\n",
                &format!("[uploader]\nconcurrency = \"{S3_SECRET}\"\n"),
            ),
            "uploader.concurrency",
        ),
        (
            base.replace(
                "[uploader]\n",
                &format!("[uploader]\nrename_is_ready = \"{S3_SECRET}\"\n"),
            ),
            "uploader.rename_is_ready",
        ),
        (
            base.replace(
                "[uploader]\n",
                "[uploader]\nconcurrency = 123456789012345678901234567890123\n",
            ),
            "line 4",
        ),
    ] {
        let p = write(t.path(), &text, 0o600);
        let e = load(Some(&p), &cli).unwrap_err().to_string();
        assert!(e.contains(key), "names {key}: {e}");
        for secret in [S3_SECRET, LINK_SECRET, "123456789012345678901234567890123"] {
            assert!(!e.contains(secret), "value shown: {e}");
        }
    }
    assert_eq!(
        without_value("invalid type: string \"a, expected b\", expected usize"),
        "invalid type: expected usize (value not shown)"
    );
}

#[test]
fn max_link_ttl_defaults_to_a_week_and_must_be_positive() {
    let t = tempfile::tempdir().unwrap();
    let d = dirs(t.path(), &["s"]);
    let with = |extra: &str| {
        config(&[mount(
            "/static/",
            &d[0],
            "media",
            "",
            &format!(
                "[mount.access]\n{extra}\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"{LINK_SECRET}\"\n"
            ),
        )])
    };
    let s = validate(&raw(&with(""))).unwrap();
    assert_eq!(s.access[0].max_link_ttl, DEFAULT_MAX_LINK_TTL);
    assert_eq!(DEFAULT_MAX_LINK_TTL, Duration::from_secs(7 * 86400));
    let s = validate(&raw(&with("max_link_ttl = \"36h\""))).unwrap();
    assert_eq!(s.access[0].max_link_ttl, Duration::from_secs(36 * 3600));
    for bad in ["0s", "soon"] {
        let e = validate(&raw(&with(&format!("max_link_ttl = \"{bad}\""))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`mount[0].access.max_link_ttl`"), "{e}");
    }
}

#[test]
fn unknown_keys_get_the_closest_known_key() {
    assert_eq!(suggest_key("mount.0.keyprefix"), Some("key_prefix"));
    assert_eq!(suggest_key("mount.0.expirse"), Some("expires"));
    assert_eq!(suggest_key("server.lisen"), Some("listen"));
    assert_eq!(suggest_key("s3.Region"), Some("region"));
    assert_eq!(suggest_key("mount.0.access.keys.1.secert"), Some("secret"));
    assert_eq!(suggest_key("mount.1.access.sign-with"), Some("sign_with"));
    assert_eq!(suggest_key("uploadr"), Some("uploader"));
    assert_eq!(suggest_key("server.completely_different"), None);
    assert_eq!(suggest_key("nosuchsection.key"), None);
    let m = describe_unknown_key("mount.0.keyprefix");
    assert!(m.contains("`mount.0.keyprefix`") && m.contains("did you mean `key_prefix`"));
    // The candidates come from the structs themselves.
    assert!(field_names::<RawMount>().contains(&"archive_root"));
    assert!(field_names::<RawConfig>().contains(&"mount"));
}

#[test]
fn region_falls_back_to_the_aws_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(region_from_env(env(&[])), None);
    assert_eq!(
        region_from_env(env(&[("AWS_DEFAULT_REGION", "eu-central-1")])),
        Some("eu-central-1".into())
    );
    assert_eq!(
        region_from_env(env(&[
            ("AWS_REGION", "us-west-2"),
            ("AWS_DEFAULT_REGION", "eu-central-1")
        ])),
        Some("us-west-2".into())
    );
    assert_eq!(
        region_from_env(env(&[
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "ap-south-1")
        ])),
        Some("ap-south-1".into())
    );
}
