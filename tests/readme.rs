//! Every shell recipe in README.md is executed as written, or says why not.
//!
//! The rules (also what an author of a README recipe needs to know):
//!
//! * Every fenced block whose info string starts with `sh`, `bash` or `shell` is a recipe. The
//!   line before its opening fence (blank lines aside) must be an HTML comment, invisible on
//!   GitHub:
//!   - `<!-- readme-test: run (how it is proven) -->`: the block runs here, or
//!   - `<!-- readme-test: skip (why) -->`: it does not, and the reason is said.
//!
//!   A block with neither fails this test, naming its line: nothing is silently unexecuted.
//! * `run` blocks run in README order in one sandbox (so a later recipe sees what an earlier
//!   one wrote), each with `bash -euo pipefail`, and must exit 0 within two minutes. The text
//!   of the block is run unchanged except for one DESTDIR-style substitution: absolute paths
//!   under the system directories of [`SYSTEM_DIRS`] (`/etc/`, `/srv/`, `/run/`, `/var/`, …)
//!   are moved under the sandbox's file-system prefix. Nothing else is rewritten.
//! * The sandbox: `PATH` starts with the directory of the built `stowaway` binary, then stubs
//!   for the commands that need root or a running systemd (`sudo` runs its arguments,
//!   `systemctl` records its arguments in `<sandbox>/systemctl.log` and succeeds); `HOME` and the
//!   working directory are in the sandbox. `<sandbox>/etc/stowaway/stowaway.toml` is
//!   examples/stowaway.toml with the same substitution (so the shipped example is what the
//!   recipes run against), its bucket exists on the local S3 server of tests/common, and
//!   `STOWAWAY__S3__ENDPOINT` / `__REGION` / `__ADDRESSING_STYLE` / `STOWAWAY__SERVER__LISTEN`
//!   point stowaway at that server and a free loopback port. The root holds an old and a fresh
//!   file, so a backlog recipe has work to do (and the fresh file must be skipped).
//! * Every process a block starts is in its own process group and is killed afterwards.
//! * A block that talks to the admin API (`/_stowaway/objects/`) runs while a `stowaway serve`
//!   of the sandbox's config listens on it: started before the block with
//!   `STOWAWAY__SERVER__ADMIN_LISTEN` / `__ADMIN_TOKEN_FILE` set to the example config's
//!   commented values (the token file is the one an earlier recipe wrote) and the uploader off,
//!   killed after. The file such a block removes is planted (archive copy and object) first,
//!   and checked gone afterwards.

mod common;

use common::*;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// System directories a recipe may name; they are moved under the sandbox.
const SYSTEM_DIRS: &[&str] = &[
    "/etc/",
    "/srv/",
    "/run/",
    "/var/",
    "/usr/local/",
    "/usr/share/",
    "/lib/systemd/",
    "/usr/lib/systemd/",
];

/// `uploader.settle` in the sandbox.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug)]
enum Mark {
    Run,
    Skip(String),
    Missing,
}

#[derive(Debug)]
struct Block {
    line: usize,
    mark: Mark,
    text: String,
}

/// The shell blocks of a Markdown text, with their `readme-test` marks.
fn shell_blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut last_nonblank = "";
    let mut lines = md.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        let Some(info) = t.strip_prefix("```") else {
            if !t.is_empty() {
                last_nonblank = t;
            }
            continue;
        };
        let lang = info.split_whitespace().next().unwrap_or("");
        let mut text = String::new();
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        if matches!(lang, "sh" | "bash" | "shell") {
            out.push(Block {
                line: i + 1,
                mark: mark_of(last_nonblank),
                text,
            });
        }
        last_nonblank = "```";
    }
    out
}

fn mark_of(line: &str) -> Mark {
    let Some(body) = line
        .strip_prefix("<!--")
        .and_then(|l| l.strip_suffix("-->"))
        .map(str::trim)
        .and_then(|l| l.strip_prefix("readme-test:"))
        .map(str::trim)
    else {
        return Mark::Missing;
    };
    if body == "run" || body.starts_with("run ") || body.starts_with("run(") {
        Mark::Run
    } else if let Some(why) = body.strip_prefix("skip") {
        let why = why
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        if why.is_empty() {
            Mark::Missing
        } else {
            Mark::Skip(why.to_string())
        }
    } else {
        Mark::Missing
    }
}

/// Moves absolute paths under [`SYSTEM_DIRS`] below `prefix`, only where a path starts (at the
/// start of a word, after `=`, a quote, `>`, `<`, `(` or `:`), so URLs are left alone.
fn sandboxed(text: &str, prefix: &Path) -> String {
    let p = prefix.display().to_string();
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_start = match prev {
            None => true,
            Some(c) => c.is_whitespace() || "=\"'><(:".contains(c),
        };
        if at_start && let Some(d) = SYSTEM_DIRS.iter().find(|d| rest.starts_with(**d)) {
            out.push_str(&p);
            out.push_str(d);
            i += d.len();
            prev = Some('/');
            continue;
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

#[test]
fn marks_and_sandboxing_work_as_documented() {
    let md = "x\n<!-- readme-test: run (here) -->\n\n```sh\necho a\n```\n\
              <!-- readme-test: skip (needs a real host) -->\n```bash\necho b\n```\n\
              ```sh\necho c\n```\n<!-- readme-test: skip -->\n```sh\necho d\n```\n```toml\nx=1\n```\n\
              <!-- readme-test: run -->\n```sh\necho e\n```\n";
    let b = shell_blocks(md);
    assert_eq!(b.len(), 5);
    assert!(matches!(b[0].mark, Mark::Run) && b[0].text == "echo a\n");
    assert!(matches!(&b[1].mark, Mark::Skip(w) if w == "needs a real host"));
    assert!(matches!(b[2].mark, Mark::Missing), "unmarked");
    assert!(matches!(b[3].mark, Mark::Missing), "skip without a reason");
    assert!(matches!(b[4].mark, Mark::Run));
    assert_eq!(
        sandboxed(
            "cat /etc/stowaway/x >/etc/nginx/y; f=/srv/site; curl http://h/etc/z \"/run/a\"",
            Path::new("/S")
        ),
        "cat /S/etc/stowaway/x >/S/etc/nginx/y; f=/S/srv/site; curl http://h/etc/z \"/S/run/a\""
    );
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn every_shell_block_in_the_readme_is_marked() {
    let blocks = shell_blocks(&readme());
    assert!(!blocks.is_empty(), "no shell blocks found in README.md");
    let unmarked: Vec<String> = blocks
        .iter()
        .filter(|b| matches!(b.mark, Mark::Missing))
        .map(|b| format!("README.md:{}:\n{}", b.line, b.text))
        .collect();
    assert!(
        unmarked.is_empty(),
        "README shell blocks without `<!-- readme-test: run (how) -->` or \
         `<!-- readme-test: skip (why) -->` on the line before the fence (see tests/readme.rs):\n{}",
        unmarked.join("\n")
    );
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    fs: PathBuf,
    home: PathBuf,
    stubs: PathBuf,
    work: PathBuf,
    env: Vec<(String, String)>,
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn sandbox(s3: &S3Server) -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let fs = base.join("fs");
    let (home, stubs, work) = (base.join("home"), base.join("stubs"), base.join("work"));
    for d in [&fs, &home, &stubs, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_exec(&stubs.join("sudo"), "#!/bin/sh\nexec \"$@\"\n");
    write_exec(
        &stubs.join("systemctl"),
        &format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexit 0\n",
            base.join("systemctl.log").display()
        ),
    );
    // The shipped example config, sandboxed like the recipes.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stowaway.toml"),
    )
    .unwrap();
    let etc = fs.join("etc/stowaway");
    std::fs::create_dir_all(&etc).unwrap();
    write_private(&etc.join("stowaway.toml"), sandboxed(&example, &fs));
    // The directories Debian's nginx package provides, which the front-server recipes write
    // into (the generated files are then checked by `nginx -t` in tests/nginx_*.rs).
    for d in [
        "etc/nginx/conf.d",
        "etc/nginx/snippets",
        "etc/nginx/sites-enabled",
    ] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    let root = fs.join("srv/site/static");
    std::fs::create_dir_all(fs.join("srv/site/archive/static")).unwrap();
    write_file(&root, "2019/05/old photo.jpg", b"an old upload");
    s3.create_bucket("example-site-media");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_stowaway"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = vec![
        ("PATH".to_string(), path),
        ("HOME".to_string(), home.display().to_string()),
        (
            "STOWAWAY__S3__ENDPOINT".to_string(),
            s3.endpoint.to_string(),
        ),
        ("STOWAWAY__S3__REGION".to_string(), REGION.to_string()),
        (
            "STOWAWAY__S3__ADDRESSING_STYLE".to_string(),
            "path".to_string(),
        ),
        // Settle counts from the newer of mtime and ctime, and a test cannot set a ctime in the
        // past: a short settle lets the "old" file settle while the test waits.
        (
            "STOWAWAY__UPLOADER__SETTLE".to_string(),
            format!("{}ms", SETTLE.as_millis()),
        ),
        (
            "STOWAWAY__SERVER__LISTEN".to_string(),
            format!("127.0.0.1:{}", free_port()),
        ),
    ];
    Sandbox {
        _tmp: tmp,
        fs,
        home,
        stubs,
        work,
        env,
    }
}

/// SIGKILLs, one positive pid at a time, every process whose process group is `pgid` (read
/// from /proc). Never a negative pid: `kill -9 -N` is parsed differently by different `kill`
/// implementations, and a misparse as `-1` would hit every process of the user.
fn kill_group(pgid: i32, leader: u32) {
    assert!(
        pgid > 1 && pgid as u32 == leader,
        "refusing to kill group {pgid}"
    );
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp …
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let pgrp = after
            .split_whitespace()
            .nth(2)
            .and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid) && pid > 1 && pid != std::process::id() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The admin API a README recipe sends its DELETE to, as the example config's commented lines
/// place it (sandboxed), and the file that recipe removes.
const ADMIN_SOCKET: &str = "/run/stowaway/admin.sock";
const ADMIN_TOKEN: &str = "/etc/stowaway/admin-token";
const ADMIN_VICTIM: &str = "avatars/user 42.jpg";

/// A `stowaway serve` of the sandbox's config with the admin API on, for a block that uses it;
/// the file the recipe deletes is planted in the archive and the bucket.
fn admin_serve(sb: &Sandbox, s3: &S3Server) -> std::process::Child {
    let sock = sb.fs.join(&ADMIN_SOCKET[1..]);
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    write_file(
        &sb.fs.join("srv/site/archive/static"),
        ADMIN_VICTIM,
        b"an avatar",
    );
    s3.put(
        "example-site-media",
        &format!("static/{ADMIN_VICTIM}"),
        b"an avatar",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowaway"));
    cmd.arg("serve")
        .arg("--config")
        .arg(sb.fs.join("etc/stowaway/stowaway.toml"))
        .current_dir(&sb.work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(sb.work.join("admin-serve.log")).unwrap())
        .process_group(0);
    aws_env(&mut cmd);
    for (k, v) in &sb.env {
        cmd.env(k, v);
    }
    cmd.env(
        "STOWAWAY__SERVER__ADMIN_LISTEN",
        format!("unix:{}", sock.display()),
    )
    .env(
        "STOWAWAY__SERVER__ADMIN_TOKEN_FILE",
        sb.fs.join(&ADMIN_TOKEN[1..]),
    )
    // The recipes after this one expect the fresh file where it is.
    .env("STOWAWAY__UPLOADER__ENABLED", "false");
    let child = cmd.spawn().unwrap();
    let up = wait_until(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    let log = || std::fs::read_to_string(sb.work.join("admin-serve.log")).unwrap_or_default();
    assert!(up, "serve with the admin API did not listen:\n{}", log());
    child
}

/// Runs one block; kills whatever it left running. Returns (exit ok, output).
fn run_block(sb: &Sandbox, script: &str) -> (bool, String) {
    let out = sb.work.join("block.out");
    let mut cmd = Command::new("bash");
    cmd.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(&sb.work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::options().append(true).open(&out).unwrap())
        .process_group(0);
    aws_env(&mut cmd);
    for (k, v) in &sb.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block started in the background goes with it.
    kill_group(pgid, child.id());
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("timed out after 120 s\n{text}")),
    }
}

#[test]
fn readme_recipes_run_as_written() {
    let blocks = shell_blocks(&readme());
    let s3 = S3Server::start();
    let sb = sandbox(&s3);
    let _ = (&sb.home, &sb.stubs);
    // The old file has settled, the fresh one has not.
    let old = sb.fs.join("srv/site/static/2019/05/old photo.jpg");
    let created = SystemTime::now();
    assert!(wait_until(SETTLE * 3, || created
        .elapsed()
        .is_ok_and(|e| e > SETTLE + Duration::from_millis(300))));
    assert!(old.is_file());
    write_file(&sb.fs.join("srv/site/static"), "fresh.jpg", b"just written");
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut migrated = false;
    for b in &blocks {
        match &b.mark {
            Mark::Run => {}
            Mark::Skip(why) => {
                eprintln!("README.md:{}: skipped: {why}", b.line);
                continue;
            }
            // Reported by every_shell_block_in_the_readme_is_marked.
            Mark::Missing => continue,
        }
        let script = sandboxed(&b.text, &sb.fs);
        let admin = b
            .text
            .contains("/_stowaway/objects/")
            .then(|| admin_serve(&sb, &s3));
        let (ok, out) = run_block(&sb, &script);
        ran += 1;
        if let Some(mut serve) = admin {
            kill_group(serve.id() as i32, serve.id());
            let _ = serve.wait();
            if ok {
                assert!(
                    !sb.fs
                        .join("srv/site/archive/static")
                        .join(ADMIN_VICTIM)
                        .exists(),
                    "the admin recipe removed the archive copy"
                );
                assert_eq!(
                    s3.get("example-site-media", &format!("static/{ADMIN_VICTIM}")),
                    None,
                    "the admin recipe deleted the object"
                );
            }
        }
        eprintln!("README.md:{}: ran, ok = {ok}\n{out}", b.line);
        if !ok {
            failures.push(format!(
                "README.md:{} failed:\n--- as run ---\n{script}--- output ---\n{out}",
                b.line
            ));
        }
        migrated |= ok
            && b.text
                .lines()
                .any(|l| l.contains("stowaway migrate") && !l.contains("--dry-run"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran > 0, "no README block is marked `readme-test: run`");
    if migrated {
        // The backlog recipe did its job: the old file is in S3 and archived, the fresh one
        // (inside uploader.settle) stayed where it was.
        // (The delete recipe leaves its tombstone beside it.)
        let keys: Vec<String> = s3
            .list("example-site-media")
            .into_iter()
            .filter(|k| !k.starts_with("static/.stowaway-tombstones/"))
            .collect();
        assert_eq!(keys, vec!["static/2019/05/old photo.jpg".to_string()]);
        assert!(
            sb.fs
                .join("srv/site/archive/static/2019/05/old photo.jpg")
                .is_file()
        );
        assert!(sb.fs.join("srv/site/static/fresh.jpg").is_file());
        // …and the directories it emptied are gone.
        assert!(!sb.fs.join("srv/site/static/2019").exists());
    }
}
