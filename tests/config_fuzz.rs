//! Configuration fuzz: hand-written malformed files (broken TOML, wrong types, unknown keys,
//! missing folders, an unwritable archive) and a bounded random-mutation loop over a valid,
//! complete configuration. Every outcome is either success or exit status 2 with a message
//! that names the key (or the line of a TOML syntax error) — never a panic (101), never a
//! signal, never a secret echoed back.
//!
//! Quick by default (CI: 400 mutants); `STOWAWAY_THOROUGH=1` runs 5000. `STOWAWAY_SEED=N`
//! replays the mutations.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;

const S3_SECRET: &str = "FuzzS3Secret/AbCdEf+0123456789xyz";
const LINK_SECRET: &str = "fuzz-link-secret-0123456789abcdefghij";

fn thorough() -> bool {
    std::env::var("STOWAWAY_THOROUGH").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn run(args: &[&str], config: &Path) -> Output {
    stowaway_cmd()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    archive: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("root");
    let archive = dir.join("archive");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&archive).unwrap();
    Dirs {
        _tmp: tmp,
        dir,
        root,
        archive,
    }
}

/// A valid configuration that sets (nearly) every key, secrets inline.
fn full_config(d: &Dirs) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:18700"
workers = 2
internal_prefix = "/_stowaway_local/"
front = "nginx"
fallback_header = true
verdict_ttl = "5s"
shutdown_timeout = "10s"
s3_probe_interval = "15s"

[log]
format = "json"
level = "info"

[s3]
region = "eu-west-1"
endpoint = "http://127.0.0.1:9"
addressing_style = "path"
access_key_id = "AKIDFUZZ"
secret_access_key = "{S3_SECRET}"

[uploader]
enabled = true
settle = "5s"
rename_is_ready = false
rescan_interval = "10m"
concurrency = 4
multipart_threshold = "64MiB"
part_size = "16MiB"
max_attempts = 5
retry_min_delay = "500ms"
retry_max_delay = "30s"
cache_control = "public, max-age=60"

[[mount]]
prefix = "/static/"
root = "{root}"
bucket = "my-bucket"
key_prefix = "static/"
url = "presigned"
expires = "1h"
window = "5m"
response_content_disposition = "attachment"
upload = true
finalize = "archive"
archive_root = "{archive}"
finalize_grace = "0s"
ignore = [".*", "*.tmp"]

[mount.access]
sign_with = "k1"

[[mount.access.keys]]
id = "k1"
secret = "{LINK_SECRET}"
"#,
        root = d.root.display(),
        archive = d.archive.display()
    )
}

/// The outcome must be success, or exit 2 with a message on stderr that says what is wrong;
/// never a panic, a signal, or a secret. Returns the exit code.
fn assert_clean_outcome(o: &Output, config: &str, what: &str) -> i32 {
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    let Some(code) = o.status.code() else {
        panic!(
            "{what}: killed by a signal ({})\nconfig:\n{config}\nstderr: {err}",
            o.status
        );
    };
    assert!(
        !err.contains("panicked") && code != 101,
        "{what}: PANIC\nconfig:\n{config}\nstderr: {err}"
    );
    assert!(
        code == 0 || code == 2,
        "{what}: exit {code}\nconfig:\n{config}\nstderr: {err}"
    );
    if code == 2 {
        assert!(
            err.starts_with("stowaway: "),
            "{what}: no stowaway error line\nstderr: {err}"
        );
        // A key in backticks (validation, type errors, unknown keys), or the line and column
        // of a TOML syntax error, or the file that cannot be read.
        let names_it = err.contains('`')
            || err.contains("TOML parse error at line")
            || err.contains("cannot read")
            || err.contains("No such file");
        assert!(
            names_it,
            "{what}: the error names no key or location\nconfig:\n{config}\nstderr: {err}"
        );
    }
    for s in [S3_SECRET, LINK_SECRET] {
        assert!(
            !err.contains(s) && !out.contains(s),
            "{what}: a secret was echoed\nstdout: {out}\nstderr: {err}"
        );
    }
    code
}

#[test]
fn the_full_config_is_valid() {
    let d = dirs();
    let p = d.dir.join("c.toml");
    write_private(&p, full_config(&d));
    let o = run(&["check-config", "--strict"], &p);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["print-config"], &p);
    assert!(o.status.success());
    assert_clean_outcome(&o, "", "print-config");
}

#[test]
fn malformed_files_name_the_key_and_exit_2() {
    let d = dirs();
    let full = full_config(&d);
    let with = |from: &str, to: &str| {
        assert!(full.contains(from), "{from}");
        full.replacen(from, to, 1)
    };
    let p = d.dir.join("c.toml");
    // (config, text the error must contain)
    let cases: Vec<(String, &str)> = vec![
        // Broken TOML.
        (
            with("listen = \"127.0.0.1:18700\"", "listen = \"127.0.0.1:18700"),
            "line 2",
        ),
        (with("[server]", "[server"), "line 1"),
        (with("[[mount]]", "[[mount]"), "TOML parse error"),
        (
            with("workers = 2", "workers = 2\nworkers = 3"),
            "duplicate key",
        ),
        (with("workers = 2", "workers"), "TOML parse error"),
        (
            with("front = \"nginx\"", "front = \"ng\\qinx\""),
            "TOML parse error",
        ),
        (with("[log]", "[server]"), "duplicate key"),
        (format!("\u{feff}{full}\u{0}"), "TOML parse error"),
        ("".to_string(), "mount"),
        ("[[mount]]\n".to_string(), "mount[0]"),
        // Wrong types.
        (
            with("workers = 2", "workers = \"many\""),
            "`server.workers`",
        ),
        (with("workers = 2", "workers = -1"), "server.workers"),
        (
            with("listen = \"127.0.0.1:18700\"", "listen = 5"),
            "`server.listen`",
        ),
        (
            with("fallback_header = true", "fallback_header = \"maybe\""),
            "server.fallback_header",
        ),
        (
            with("concurrency = 4", "concurrency = \"four\""),
            "uploader.concurrency",
        ),
        (
            with("concurrency = 4", "concurrency = 0"),
            "`uploader.concurrency`",
        ),
        (with("settle = \"5s\"", "settle = true"), "uploader.settle"),
        (
            with("settle = \"5s\"", "settle = \"-5s\""),
            "`uploader.settle`",
        ),
        (
            with("part_size = \"16MiB\"", "part_size = \"lots\""),
            "`uploader.part_size`",
        ),
        (
            with("max_attempts = 5", "max_attempts = 99999999999999999999"),
            "TOML parse error",
        ),
        (
            with("ignore = [\".*\", \"*.tmp\"]", "ignore = \".*\""),
            "ignore",
        ),
        (with("upload = true", "upload = \"maybe\""), "upload"),
        (
            with("prefix = \"/static/\"", "prefix = 7"),
            "`mount[0].prefix`",
        ),
        (with("[[mount]]", "mount = \"x\"\n[[mountx]]"), "mount"),
        (with("expires = \"1h\"", "expires = [1]"), "expires"),
        (with("region = \"eu-west-1\"", "region = {}"), "s3.region"),
        (
            with("format = \"json\"", "format = \"yaml\""),
            "`log.format`",
        ),
        (
            with("level = \"info\"", "level = \"info,=x=y\""),
            "`log.level`",
        ),
        (
            with(
                "addressing_style = \"path\"",
                "addressing_style = \"sideways\"",
            ),
            "`s3.addressing_style`",
        ),
        (
            with("url = \"presigned\"", "url = \"private\""),
            "`mount[0].url`",
        ),
        (
            with("finalize = \"archive\"", "finalize = \"shred\""),
            "`mount[0].finalize`",
        ),
        (with("sign_with = \"k1\"", "sign_with = 1"), "sign_with"),
        (
            with("id = \"k1\"", "id = \"k1\"\nid = \"k2\""),
            "duplicate key",
        ),
        (
            with(&format!("secret = \"{LINK_SECRET}\""), "secret = \"short\""),
            "mount[0].access.keys[0]",
        ),
        // Unknown keys: an error with --strict.
        (
            with("workers = 2", "workers = 2\nwrokers = 3"),
            "`server.wrokers`",
        ),
        (
            with(
                "bucket = \"my-bucket\"",
                "bucket = \"my-bucket\"\nbukcet = \"x\"",
            ),
            "bukcet",
        ),
        (
            with("[uploader]", "[uploadr]\nx = 1\n[uploader]"),
            "uploadr",
        ),
        // Missing folders and files.
        (
            with(&d.root.display().to_string(), "/nonexistent/stowaway/root"),
            "`mount[0].root`",
        ),
        (
            with(
                &d.archive.display().to_string(),
                "/nonexistent/stowaway/archive",
            ),
            "`mount[0].archive_root`",
        ),
        (
            with(&d.root.display().to_string(), "relative/root"),
            "`mount[0].root`",
        ),
        (
            with(
                &format!("secret = \"{LINK_SECRET}\""),
                "secret_file = \"/nonexistent/link-key\"",
            ),
            "secret_file",
        ),
        (
            with(
                &format!("secret_access_key = \"{S3_SECRET}\""),
                "secret_access_key_file = \"/nonexistent/s3-secret\"",
            ),
            "`s3.secret_access_key_file`",
        ),
    ];
    let mut n = 0;
    for (cfg, needle) in &cases {
        write_private(&p, cfg);
        for cmd in [&["check-config", "--strict"][..], &["print-config"][..]] {
            let o = run(cmd, &p);
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            let code = assert_clean_outcome(&o, cfg, &format!("{cmd:?} {needle}"));
            if cmd[0] == "print-config" && unknown_key(needle) {
                // Without --strict an unknown key is a warning, not an error.
                continue;
            }
            assert_eq!(
                code, 2,
                "{cmd:?} accepted ({needle}):\n{cfg}\nstderr: {err}"
            );
            assert!(
                err.contains(needle),
                "{cmd:?}: expected {needle:?} in: {err}\nconfig:\n{cfg}"
            );
            n += 1;
        }
    }
    // `serve` refuses the same way before it listens.
    for (cfg, needle) in cases.iter().filter(|(_, n)| !unknown_key(n)).step_by(5) {
        write_private(&p, cfg);
        let o = run(&["serve"], &p);
        assert_clean_outcome(&o, cfg, &format!("serve {needle}"));
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    eprintln!("CONFIG: {} malformed files, {n} checks", cases.len());
}

fn unknown_key(needle: &str) -> bool {
    ["wrokers", "bukcet", "uploadr"]
        .iter()
        .any(|k| needle.contains(k))
}

/// A read-only file system mounted for the test, unmounted on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    /// A read-only bind mount of `dir` onto itself; falls back to a read-only tmpfs.
    fn mount(dir: &Path) -> Option<ReadOnly> {
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if ok(Command::new("mount").arg("--bind").arg(dir).arg(dir)) {
            if ok(Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(dir))
            {
                return Some(ReadOnly(dir.to_path_buf()));
            }
            let _ = Command::new("umount").arg(dir).status();
        }
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir))
        .then(|| ReadOnly(dir.to_path_buf()))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn unwritable_archive_is_a_config_error() {
    let d = dirs();
    let p = d.dir.join("c.toml");
    // A path below a regular file: not a directory at all.
    std::fs::write(d.dir.join("a-file"), b"x").unwrap();
    let below_file = full_config(&d).replace(
        &d.archive.display().to_string(),
        &d.dir.join("a-file/archive").display().to_string(),
    );
    write_private(&p, &below_file);
    let o = run(&["check-config"], &p);
    assert_eq!(assert_clean_outcome(&o, &below_file, "below a file"), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("`mount[0].archive_root`"));

    // A read-only mount (as root, permission bits would not stop anybody).
    let Some(_ro) = ReadOnly::mount(&d.archive) else {
        eprintln!(
            "SKIPPED the read-only part of unwritable_archive_is_a_config_error: cannot mount here (needs root / CAP_SYS_ADMIN)"
        );
        return;
    };
    assert!(
        std::fs::write(d.archive.join("probe"), b"x").is_err(),
        "the mount is not read-only"
    );
    let cfg = full_config(&d);
    write_private(&p, &cfg);
    for cmd in ["check-config", "serve", "migrate"] {
        let o = run(&[cmd], &p);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(
            assert_clean_outcome(&o, &cfg, cmd),
            2,
            "{cmd} accepted a read-only archive: {err}"
        );
        assert!(
            err.contains("`mount[0].archive_root`") && err.contains("Read-only file system"),
            "{cmd}: {err}"
        );
    }
    // Not archiving, the archive does not matter.
    let keep = cfg.replace("finalize = \"archive\"", "finalize = \"keep\"");
    write_private(&p, &keep);
    let o = run(&["check-config"], &p);
    assert_eq!(assert_clean_outcome(&o, &keep, "keep"), 0);
}

/// Random edits of a valid configuration.
fn mutate(text: &str) -> String {
    const TOKENS: &[&str] = &[
        "\"", "'", "[", "]", "[[", "]]", "=", ".", ",", "{", "}", "#", "\n", "\\", "\u{0}",
        "\u{feff}", "é", " ", "\t", "\r",
    ];
    const VALUES: &[&str] = &[
        "-1",
        "0",
        "1e400",
        "nan",
        "inf",
        "true",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[1, \"a\"]",
        "{ a = 1 }",
        "99999999999999999999",
        "1979-05-27T07:32:00Z",
        "\"0s\"",
        "\"-5s\"",
        "\"1ms\"",
        "\"100y\"",
        "\"64KiB\"",
        "\"0B\"",
        "\"18446744073709551616B\"",
        "\"/\"",
        "\"relative\"",
        "\"/nonexistent\"",
        "\"127.0.0.1:0\"",
        "\"[::1]:99999\"",
        "\"\\u0000\"",
        "\"a\\nb\"",
        "'''multi\nline'''",
        "\"%2e%2e\"",
        "\"../..\"",
        "\"ö\"",
    ];
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + fastrand::usize(..3) {
        let n = lines.len().max(1);
        let i = fastrand::usize(..n);
        match fastrand::usize(..8) {
            // Replace a value.
            0 | 1 => {
                if let Some((k, _)) = lines.get(i).and_then(|l| l.split_once(" = ")) {
                    lines[i] = format!("{k} = {}", VALUES[fastrand::usize(..VALUES.len())]);
                }
            }
            // Misspell a key.
            2 => {
                if let Some((k, v)) = lines.get(i).and_then(|l| l.split_once(" = "))
                    && k.len() > 1
                {
                    let mut k = k.to_string();
                    k.remove(fastrand::usize(..k.len()));
                    lines[i] = format!("{k} = {v}");
                }
            }
            // Insert a token inside a line.
            3 | 4 => {
                if let Some(l) = lines.get_mut(i) {
                    let cuts: Vec<usize> =
                        (0..=l.len()).filter(|c| l.is_char_boundary(*c)).collect();
                    let at = cuts[fastrand::usize(..cuts.len())];
                    l.insert_str(at, TOKENS[fastrand::usize(..TOKENS.len())]);
                }
            }
            // Delete, duplicate or move a line.
            5 => {
                if i < lines.len() {
                    lines.remove(i);
                }
            }
            6 => {
                if let Some(l) = lines.get(i).cloned() {
                    lines.insert(fastrand::usize(..=lines.len()), l);
                }
            }
            // Cut the file short.
            _ => lines.truncate(i),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[test]
fn random_mutations_of_a_valid_config_never_panic() {
    let d = dirs();
    let seed = std::env::var("STOWAWAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    fastrand::seed(seed);
    let runs = if thorough() { 5000 } else { 400 };
    let base = full_config(&d);
    let p = d.dir.join("m.toml");
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..runs {
        let cfg = mutate(&base);
        write_private(&p, &cfg);
        let what = format!("mutant {i} (STOWAWAY_SEED={seed})");
        let o = run(&["check-config", "--strict"], &p);
        let code = assert_clean_outcome(&o, &cfg, &what);
        let err = String::from_utf8_lossy(&o.stderr);
        *outcomes
            .entry(match code {
                0 => "accepted",
                _ if err.contains("TOML parse error") => "TOML syntax error (line named)",
                _ if err.contains("unknown config key") => "unknown key (named)",
                _ => "invalid value (key named)",
            })
            .or_default() += 1;
        if i % 4 == 0 {
            assert_clean_outcome(&run(&["print-config"], &p), &cfg, &what);
        }
    }
    eprintln!("CONFIG FUZZ: {runs} mutants (STOWAWAY_SEED={seed}): {outcomes:?}; 0 panics");
    assert!(
        outcomes.len() >= 3,
        "the mutations are too tame: {outcomes:?}"
    );
}
