//! Issue 16, items 4 and 7: `stowaway reconcile` on a seeded mess finds every planted
//! discrepancy and nothing else; `--fix` and `--delete-orphans` do exactly what they say and
//! nothing more. Files are migrated by the real `migrate` against s3s-fs (through the fault
//! proxy, which answers ListMultipartUploads for it), then the mess is planted by hand.

mod common;
#[path = "common/faultproxy.rs"]
mod faultproxy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use faultproxy::FaultProxy;

const BUCKET: &str = "reconcile-bucket";
const HOUR: Duration = Duration::from_secs(3600);

/// Files migrated into the archive; the names test the key order (`a-b` < `a.jpg` < `a/…` <
/// `a0`, as S3 sorts them, not as a plain per-directory sort would).
const ARCHIVED: &[&str] = &[
    "a-b.jpg",
    "a.jpg",
    "a/b.jpg",
    "a/c/deep.jpg",
    "a0.jpg",
    "gone.jpg",
    "corrupt.jpg",
    "shrunk.jpg",
    "z/last.jpg",
];

/// A world after the seeding: what a test needs to look at it.
struct Mess {
    w: World,
    proxy: FaultProxy,
    cfg: PathBuf,
    /// The abandoned multipart upload (backdated) and a young one.
    old_upload: String,
    young_upload: String,
    temp: PathBuf,
    detached: PathBuf,
}

fn media(w: &World) -> PathBuf {
    w.path().join("media")
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

fn wait_settled(dir: &Path) {
    let ok = wait_until(Duration::from_secs(20), || {
        walk(dir).iter().all(|p| {
            std::fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > Duration::from_millis(200)))
        })
    });
    assert!(ok, "files below {} never settled", dir.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                pending.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every file and directory below the root, the archive and the media root, with its content.
fn local_state(w: &World) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    [w.root.clone(), w.archive.clone(), media(w)]
        .iter()
        .flat_map(|d| walk(d))
        .map(|p| {
            let body = std::fs::read(&p).ok();
            (p, body)
        })
        .collect()
}

/// Every object of the bucket with its content.
fn bucket_state(w: &World) -> Vec<(String, Option<Vec<u8>>)> {
    w.s3.list(BUCKET)
        .into_iter()
        .map(|k| {
            let b = w.s3.get(BUCKET, &k);
            (k, b)
        })
        .collect()
}

fn seed() -> Mess {
    let w = World::new(BUCKET);
    let proxy = FaultProxy::start(&w.s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    std::fs::create_dir_all(media(&w)).unwrap();
    for (i, rel) in ARCHIVED.iter().enumerate() {
        write_file(&w.root, rel, &bytes(i as u64 + 1, 1000 + 500 * i));
    }
    write_file(&media(&w), "kept/photo.jpg", &bytes(50, 3000));
    let cfg = w.path().join("reconcile.toml");
    let text = w.config("reconcile.toml", &[("proxy", &proxy.endpoint)]);
    std::fs::write(&cfg, text).unwrap();
    wait_settled(&w.root);
    wait_settled(&media(&w));
    let o = run(&cfg, &["migrate"]);
    assert!(o.status.success(), "migrate: {}", text_of(&o.stderr));
    for rel in ARCHIVED {
        assert!(w.in_archive(rel), "{rel} archived: {}", text_of(&o.stderr));
    }

    // The mess. Archived files whose object is gone, holds other bytes of the same size, or
    // another size:
    w.s3.delete(BUCKET, "static/gone.jpg");
    let corrupt_len = std::fs::metadata(w.archive.join("corrupt.jpg"))
        .unwrap()
        .len();
    w.s3.put(
        BUCKET,
        "static/corrupt.jpg",
        &bytes(99, corrupt_len as usize),
    );
    w.s3.put(BUCKET, "static/shrunk.jpg", b"short");
    // Orphans: objects with no local copy, one between archived keys.
    w.s3.put(BUCKET, "static/orphan.jpg", b"nobody's");
    w.s3.put(BUCKET, "static/a/orphan-inside.jpg", b"nobody's either");
    // Not the mount's, never findings: a tombstone, another mount's object (its prefix begins
    // like this one's), an object outside every mount, an ignored name.
    w.s3.put(BUCKET, "static/.stowaway-tombstones/old.jpg", b"");
    w.s3.put(BUCKET, "static-media/unrelated.jpg", b"another mount's");
    write_file(&media(&w), "unrelated.jpg", b"another mount's");
    w.s3.put(BUCKET, "elsewhere/x.jpg", b"not a mount");
    w.s3.put(BUCKET, "static/upload.part", b"ignored name");
    // Local files never uploaded (one in a new directory), and one the ignore list covers.
    write_file(&w.root, "new/never.jpg", b"written after the migration");
    write_file(&w.root, "fresh.jpg", b"also never uploaded");
    write_file(&w.root, "half.part", b"ignored");
    // Temp leftovers of a dead process: an archive copy's temp file, a detached root file.
    let pid = dead_pid();
    let temp = write_file(
        &w.archive,
        &format!("a/.stowaway-tmp.{pid}.1.7"),
        b"half copy",
    );
    let detached = write_file(&w.root, &format!("z/.stowaway-rm.{pid}.0.back.jpg"), b"b");
    // Multipart uploads: one abandoned (older than abandoned_upload_age = 1h), one young.
    let c = w.s3.client_via(&proxy.endpoint);
    let create = |key: &str| {
        w.s3.rt
            .block_on(c.create_multipart_upload().bucket(BUCKET).key(key).send())
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string()
    };
    let old_upload = create("static/big.bin");
    let young_upload = create("static/running.bin");
    proxy.backdate(&old_upload, 2 * HOUR);
    wait_settled(&w.root);
    Mess {
        w,
        proxy,
        cfg,
        old_upload,
        young_upload,
        temp,
        detached,
    }
}

fn run(cfg: &Path, args: &[&str]) -> Output {
    common::world::stowaway_run(cfg, args)
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn reconcile(m: &Mess, extra: &[&str]) -> (Output, serde_json::Value) {
    let mut args = vec!["reconcile", "--json", "--page-size", "2"];
    args.extend_from_slice(extra);
    let o = run(&m.cfg, &args);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text_of(&o.stdout), text_of(&o.stderr)));
    (o, v)
}

/// `(kind, key-or-location, action)` of every finding.
fn findings(v: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let key = f["key"].as_str().unwrap();
            let loc = f["location"].as_str().unwrap();
            (
                f["kind"].as_str().unwrap().to_string(),
                if key.is_empty() {
                    loc.to_string()
                } else {
                    key.to_string()
                },
                f["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected(
    m: &Mess,
    upload_action: &str,
    orphan_action: &str,
    temp: (&str, &str),
) -> BTreeSet<(String, String, String)> {
    let s = |k: &str, key: &str, a: &str| (k.to_string(), key.to_string(), a.to_string());
    [
        s("archived_missing", "gone.jpg", ""),
        s("archived_different", "corrupt.jpg", ""),
        s("archived_different", "shrunk.jpg", ""),
        s("orphan", "orphan.jpg", orphan_action),
        s("orphan", "a/orphan-inside.jpg", orphan_action),
        s("not_uploaded", "new/never.jpg", ""),
        s("not_uploaded", "fresh.jpg", ""),
        s("temp_leftover", &m.temp.display().to_string(), temp.0),
        s("temp_leftover", &m.detached.display().to_string(), temp.1),
        s("incomplete_upload", "big.bin", upload_action),
    ]
    .into_iter()
    .collect()
}

#[test]
fn reconcile_finds_every_planted_discrepancy_and_nothing_else() {
    let m = seed();
    let (before_local, before_bucket) = (local_state(&m.w), bucket_state(&m.w));
    let (o, v) = reconcile(&m, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o.stderr));
    assert_eq!(findings(&v), expected(&m, "", "", ("", "")), "{v:#}");
    let why = |key: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .map(|f| f["detail"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        why("corrupt.jpg").contains("differs"),
        "{}",
        why("corrupt.jpg")
    );
    assert!(
        why("shrunk.jpg").contains("size differs"),
        "{}",
        why("shrunk.jpg")
    );
    let mounts = v["mounts"].as_array().unwrap();
    let st = &mounts[0];
    assert_eq!(st["mount"], "/static/");
    assert_eq!(st["archived_files"], ARCHIVED.len() as u64, "{st:#}");
    assert_eq!(
        st["running_uploads"], 1,
        "the young upload is only counted: {st:#}"
    );
    assert_eq!(mounts[1]["mount"], "/media/");
    assert_eq!(mounts[1]["objects"], 2, "{:#}", mounts[1]);
    assert_eq!(v["complete"], true);
    // A report changes nothing.
    assert_eq!(local_state(&m.w), before_local);
    assert_eq!(bucket_state(&m.w), before_bucket);
    assert!(m.proxy.aborts().is_empty());

    // The human report names the same things, one line each.
    let o = run(&m.cfg, &["reconcile", "--mount", "static"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text_of(&o.stdout);
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(
        out.contains(&format!(
            "archived-missing {} archived, but s3://{BUCKET}/static/gone.jpg does not exist",
            m.w.archive.join("gone.jpg").display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "orphan s3://{BUCKET}/static/orphan.jpg has no local or archived copy"
        )),
        "{out}"
    );
    assert!(
        text_of(&o.stderr).contains("reconcile /static/ (s3://reconcile-bucket/static/)"),
        "{}",
        text_of(&o.stderr)
    );
}

#[test]
fn fix_aborts_abandoned_uploads_and_tidies_temp_files_only() {
    let m = seed();
    let before_bucket = bucket_state(&m.w);
    let before_local = local_state(&m.w);
    let (o, v) = reconcile(&m, &["--fix"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "orphans etc. remain: {}",
        text_of(&o.stderr)
    );
    assert_eq!(
        findings(&v),
        expected(&m, "aborted", "", ("removed", "restored")),
        "{v:#}"
    );
    assert_eq!(
        m.proxy.aborts(),
        vec![m.old_upload.clone()],
        "only the abandoned upload"
    );
    assert!(
        m.proxy
            .open_uploads()
            .iter()
            .any(|u| u.upload_id == m.young_upload)
    );
    assert!(!m.temp.exists(), "the dead process's temp file is removed");
    assert!(!m.detached.exists());
    let back = m.w.root.join("z/back.jpg");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        b"b",
        "the detached file is back under its name"
    );
    // Nothing else changed: every other local file and every object is as it was.
    assert_eq!(bucket_state(&m.w), before_bucket);
    let expect_local: Vec<_> = before_local
        .into_iter()
        .filter(|(p, _)| *p != m.temp && *p != m.detached)
        .collect();
    let now_local: Vec<_> = local_state(&m.w)
        .into_iter()
        .filter(|(p, _)| *p != back)
        .collect();
    assert_eq!(now_local, expect_local);

    // A second run finds the rest again, and nothing fixed comes back.
    let (_, v) = reconcile(&m, &[]);
    let kinds: BTreeSet<String> = findings(&v).into_iter().map(|f| f.0).collect();
    assert!(
        !kinds.contains("temp_leftover") && !kinds.contains("incomplete_upload"),
        "{v:#}"
    );
}

#[test]
fn delete_orphans_deletes_orphans_only() {
    let m = seed();
    let before_bucket = bucket_state(&m.w);
    let before_local = local_state(&m.w);
    let (o, v) = reconcile(&m, &["--delete-orphans"]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o.stderr));
    assert_eq!(findings(&v), expected(&m, "", "deleted", ("", "")), "{v:#}");
    let gone: BTreeSet<String> = ["static/orphan.jpg", "static/a/orphan-inside.jpg"]
        .into_iter()
        .map(String::from)
        .collect();
    let expect: Vec<_> = before_bucket
        .into_iter()
        .filter(|(k, _)| !gone.contains(k))
        .collect();
    assert_eq!(
        bucket_state(&m.w),
        expect,
        "tombstone, other mounts' and outside objects stay"
    );
    assert_eq!(local_state(&m.w), before_local);
    assert!(m.proxy.aborts().is_empty());
    // What is left is what was not asked for.
    let (o, v) = reconcile(&m, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(findings(&v).iter().all(|f| f.0 != "orphan"), "{v:#}");
}

/// A file the uploader has taken off its root name on its way to the archive
/// (`.stowaway-rm.<pid>.<n>.<name>`, between the detach and the rename into the archive — or
/// left so by a crash) has neither a root nor an archived copy under its key for a moment: its
/// verified object is not an orphan, and `--delete-orphans` keeps it. Before, it was deleted.
#[test]
fn delete_orphans_keeps_the_object_of_a_file_on_its_way_to_the_archive() {
    let w = World::new(BUCKET);
    let proxy = FaultProxy::start(&w.s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    std::fs::create_dir_all(media(&w)).unwrap();
    for rel in ["moving/live.jpg", "moving/crashed.jpg"] {
        write_file(&w.root, rel, &bytes(7, 2000));
    }
    let cfg = w.path().join("reconcile.toml");
    std::fs::write(
        &cfg,
        w.config("reconcile.toml", &[("proxy", &proxy.endpoint)]),
    )
    .unwrap();
    wait_settled(&w.root);
    assert!(run(&cfg, &["migrate"]).status.success());
    // Mid-move: detached in the root by a live process (this one), not yet in the archive;
    // and the same state left by a process that died there.
    std::fs::create_dir_all(w.root.join("moving")).unwrap();
    for (name, pid) in [
        ("live.jpg", std::process::id()),
        ("crashed.jpg", dead_pid()),
    ] {
        std::fs::rename(
            w.archive.join("moving").join(name),
            w.root.join(format!("moving/.stowaway-rm.{pid}.0.{name}")),
        )
        .unwrap();
    }
    let before = bucket_state(&w);
    let o = run(&cfg, &["reconcile", "--json", "--delete-orphans"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text_of(&o.stderr)));
    assert_eq!(bucket_state(&w), before, "no object deleted: {v:#}");
    for key in ["moving/live.jpg", "moving/crashed.jpg"] {
        assert!(
            w.s3.get(BUCKET, &format!("static/{key}")).is_some(),
            "{key}: {v:#}"
        );
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap_or_else(|| panic!("{key}: {v:#}"));
        assert!(
            f["action"]
                .as_str()
                .unwrap()
                .starts_with("kept: the file is on its way"),
            "{f}"
        );
    }
}

/// An archive disk that did not mount (or a `finalize = "keep"` root on one) leaves an empty
/// directory: every object then looks like an orphan. `--delete-orphans` deletes nothing on a
/// mount whose copies' directory (the archive, or the root of a "keep" mount) is empty, and
/// says why — whatever new files the root holds. Before, it deleted every object of the mount.
#[test]
fn delete_orphans_deletes_nothing_when_the_local_side_is_empty() {
    let w = World::new(BUCKET);
    let proxy = FaultProxy::start(&w.s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    std::fs::create_dir_all(media(&w)).unwrap();
    for rel in ["a.jpg", "b/c.jpg"] {
        write_file(&w.root, rel, &bytes(3, 1500));
    }
    write_file(&media(&w), "kept/photo.jpg", &bytes(4, 900));
    let cfg = w.path().join("reconcile.toml");
    std::fs::write(
        &cfg,
        w.config("reconcile.toml", &[("proxy", &proxy.endpoint)]),
    )
    .unwrap();
    wait_settled(&w.root);
    wait_settled(&media(&w));
    assert!(run(&cfg, &["migrate"]).status.success());
    assert!(w.in_archive("b/c.jpg"));
    // The archive's disk (and the media root's) "did not mount": empty directories in place,
    // while the root of /static/ has a new upload, as a live site's root does.
    for d in [w.archive.clone(), media(&w)] {
        std::fs::rename(&d, d.with_extension("unmounted")).unwrap();
        std::fs::create_dir_all(&d).unwrap();
    }
    write_file(&w.root, "new-upload.jpg", b"just uploaded by the app");
    let before = bucket_state(&w);
    let o = run(&cfg, &["reconcile", "--json", "--delete-orphans"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text_of(&o.stderr)));
    assert_eq!(bucket_state(&w), before, "no object deleted: {v:#}");
    let orphans: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "orphan")
        .collect();
    assert_eq!(orphans.len(), 3, "{v:#}");
    for f in orphans {
        assert!(
            f["action"].as_str().unwrap().contains("empty"),
            "says why: {f}"
        );
    }
}

#[test]
fn a_clean_bucket_reconciles_with_exit_0() {
    let w = World::new(BUCKET);
    let proxy = FaultProxy::start(&w.s3.endpoint);
    proxy.answer_list_multipart_uploads(2);
    std::fs::create_dir_all(media(&w)).unwrap();
    for (i, rel) in ARCHIVED.iter().enumerate() {
        write_file(&w.root, rel, &bytes(i as u64 + 1, 700 + i));
    }
    let cfg = w.path().join("reconcile.toml");
    std::fs::write(
        &cfg,
        w.config("reconcile.toml", &[("proxy", &proxy.endpoint)]),
    )
    .unwrap();
    wait_settled(&w.root);
    assert!(run(&cfg, &["migrate"]).status.success());
    let o = run(&cfg, &["reconcile", "--json", "--page-size", "3"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    assert_eq!(v["mounts"][0]["objects"], ARCHIVED.len() as u64);
    // S3 gone: exit 3, not a clean bill of health.
    drop(proxy);
    let o = run(&cfg, &["reconcile"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o.stderr));
}
