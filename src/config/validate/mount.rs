//! `[[mount]]`: prefix, root, bucket and key prefix, what happens after upload (finalize,
//! archive), ignore patterns; and the rule that no two mounts reach each other's files or
//! objects. The URL keys are [`super::url`]'s, `[mount.access]` is [`super::access`]'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::types::{AccessSettings, Finalize, Mount, S3Settings, UploaderSettings};
use super::super::units::duration_or;
use super::super::{ConfigError, FsChecks, RawMount, TEMP_PREFIX, invalid};
use super::canonical_dir;
use crate::paths::MountPrefix;

/// Validates every `[[mount]]` and how they relate; also returns the `[mount.access]`
/// sections that are enabled.
pub fn validate_all(
    mounts_raw: &[RawMount],
    internal_prefix: &str,
    s3: &S3Settings,
    uploader: &UploaderSettings,
    fs: FsChecks,
) -> Result<(Vec<Mount>, Vec<AccessSettings>), ConfigError> {
    if mounts_raw.is_empty() {
        return Err(invalid(
            "mount",
            "[]",
            "no mounts are configured",
            "add a [[mount]] table with prefix, root and bucket (see examples/stowaway.toml)",
        ));
    }
    let mut mounts: Vec<Mount> = Vec::with_capacity(mounts_raw.len());
    let mut access: Vec<AccessSettings> = Vec::new();
    for (i, m) in mounts_raw.iter().enumerate() {
        let (mount, a) = validate(i, m, &mounts, internal_prefix, s3, uploader, fs)?;
        mounts.push(mount);
        access.extend(a);
    }
    check_mount_overlaps(&mounts)?;
    Ok((mounts, access))
}

/// Validates `mount[i]`; `earlier` are the mounts before it, already validated.
pub fn validate(
    i: usize,
    m: &RawMount,
    earlier: &[Mount],
    internal_prefix: &str,
    s3: &S3Settings,
    uploader: &UploaderSettings,
    fs: FsChecks,
) -> Result<(Mount, Option<AccessSettings>), ConfigError> {
    let k = |f: &str| format!("mount[{i}].{f}");
    let prefix_s = m.prefix.as_deref().ok_or_else(|| {
        invalid(
            k("prefix"),
            "<unset>",
            "missing",
            "set the public URL prefix, e.g. \"/static/\"",
        )
    })?;
    let prefix = MountPrefix::parse(prefix_s).map_err(|problem| {
        invalid(
            k("prefix"),
            prefix_s,
            problem,
            "use an absolute path of plain segments ending in `/`, e.g. \"/static/\"",
        )
    })?;
    if prefix.as_str().starts_with(internal_prefix) || internal_prefix.starts_with(prefix.as_str())
    {
        return Err(invalid(
            k("prefix"),
            prefix_s,
            "overlaps server.internal_prefix",
            "use distinct prefixes",
        ));
    }
    for (j, other) in earlier.iter().enumerate() {
        if other.prefix.as_str().starts_with(prefix.as_str())
            || prefix.as_str().starts_with(other.prefix.as_str())
        {
            return Err(invalid(
                k("prefix"),
                prefix_s,
                format!("overlaps mount[{j}].prefix {:?}", other.prefix.as_str()),
                "give every mount its own, non-nested prefix",
            ));
        }
    }
    let root_raw = m.root.as_deref().ok_or_else(|| {
        invalid(
            k("root"),
            "<unset>",
            "missing",
            "set the local directory the web app writes to",
        )
    })?;
    let root = canonical_dir(&k("root"), root_raw, "local root directory", fs)?;
    let bucket_s = m
        .bucket
        .as_deref()
        .ok_or_else(|| invalid(k("bucket"), "<unset>", "missing", "set the S3 bucket name"))?;
    let bucket = validate_bucket(&k("bucket"), bucket_s)?;
    let key_prefix = validate_key_prefix(&k("key_prefix"), m.key_prefix.as_deref().unwrap_or(""))?;
    let url = super::url::validate(i, m, s3)?;
    let kind = url.kind;
    let finalize = match m.finalize.as_deref().unwrap_or("archive") {
        "archive" => Finalize::Archive,
        "delete" => Finalize::Delete,
        "keep" => Finalize::Keep,
        other => {
            return Err(invalid(
                k("finalize"),
                other,
                "unknown finalize action",
                "use \"archive\", \"delete\" or \"keep\"",
            ));
        }
    };
    let access = m
        .access
        .as_ref()
        .filter(|a| a.enabled != Some(false))
        .map(|a| super::access::validate(i, prefix.as_str(), a, kind))
        .transpose()?;
    let upload = m.upload.unwrap_or(true);
    let archive_root = match (&m.archive_root, finalize, upload && uploader.enabled) {
        (Some(a), _, _) => {
            let c = canonical_dir(&k("archive_root"), a, "archive directory", fs)?;
            if c.starts_with(&root) || root.starts_with(&c) {
                return Err(invalid(
                    k("archive_root"),
                    a,
                    "is inside the root (or contains it)",
                    "put the archive outside the served root, e.g. /srv/site/archive/static",
                ));
            }
            let archives_here = match (fs, finalize) {
                (FsChecks::Check, Finalize::Archive) => upload && uploader.enabled,
                (FsChecks::Check, Finalize::Delete | Finalize::Keep) | (FsChecks::Skip, _) => false,
            };
            if archives_here {
                check_writable(&k("archive_root"), &c)?;
            }
            Some(c)
        }
        (None, Finalize::Archive, true) => {
            return Err(invalid(
                k("archive_root"),
                "<unset>",
                "finalize = \"archive\" needs an archive directory",
                "set archive_root, or finalize = \"delete\" / \"keep\"",
            ));
        }
        (None, _, _) => None,
    };
    let archive_retention = validate_retention(i, m, finalize, archive_root.is_some())?;
    let ignore = m
        .ignore
        .clone()
        .unwrap_or_else(|| vec![".*".into(), "*.tmp".into(), "*.part".into()]);
    for pat in &ignore {
        if pat.is_empty() || pat.contains('/') {
            return Err(invalid(
                k("ignore"),
                pat,
                "patterns match file names, not paths",
                "use e.g. \".*\", \"*.tmp\"",
            ));
        }
    }
    let mount = Mount {
        prefix,
        root,
        bucket,
        key_prefix,
        url,
        upload,
        finalize,
        archive_root,
        finalize_grace: duration_or(&k("finalize_grace"), &m.finalize_grace, Duration::ZERO)?,
        archive_retention,
        ignore,
        serve_ignored: m.serve_ignored.unwrap_or(false),
        serve_archive_when_s3_down: m.serve_archive_when_s3_down.unwrap_or(true),
        tombstone_ttl: validate_tombstone_ttl(&k("tombstone_ttl"), &m.tombstone_ttl)?,
        tombstone_status: validate_tombstone_status(&k("tombstone_status"), m.tombstone_status)?,
    };
    Ok((mount, access))
}

/// `archive_retention`: absent or zero keeps archived files forever. Anything else prunes the
/// archive, which only exists with `finalize = "archive"` and an `archive_root`: refused
/// otherwise, so an operator who expects pruning is not left with a key that silently does
/// nothing (or, after switching to `delete`, with an archive nobody prunes).
fn validate_retention(
    i: usize,
    m: &RawMount,
    finalize: Finalize,
    has_archive: bool,
) -> Result<Duration, ConfigError> {
    let key = format!("mount[{i}].archive_retention");
    let r = duration_or(&key, &m.archive_retention, Duration::ZERO)?;
    if r.is_zero() {
        return Ok(r);
    }
    let text = m
        .archive_retention
        .as_ref()
        .map(|d| d.text().to_string())
        .unwrap_or_default();
    match finalize {
        Finalize::Archive => {}
        Finalize::Delete | Finalize::Keep => {
            return Err(invalid(
                key,
                text,
                "only applies to finalize = \"archive\" (this mount does not archive, so there is nothing to prune)",
                "remove archive_retention, or set finalize = \"archive\" with an archive_root",
            ));
        }
    }
    if !has_archive {
        return Err(invalid(
            key,
            text,
            "needs an archive_root to prune",
            "set archive_root, or remove archive_retention",
        ));
    }
    Ok(r)
}

/// Default `mount.tombstone_ttl`: long enough for every cache, backup restore or retried upload
/// that could bring a deleted file back to have happened.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Longest `mount.tombstone_ttl`: ten years (an expiry past that is a typo, not a policy).
const MAX_TOMBSTONE_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// `mount.tombstone_ttl`: a human duration up to ten years; `0s` turns tombstones off.
fn validate_tombstone_ttl(
    key: &str,
    v: &Option<super::super::units::HumanDuration>,
) -> Result<Duration, ConfigError> {
    let d = duration_or(key, v, DEFAULT_TOMBSTONE_TTL)?;
    if d > MAX_TOMBSTONE_TTL {
        return Err(invalid(
            key,
            humantime::format_duration(d).to_string(),
            "longer than ten years",
            "use e.g. \"7d\" or \"30d\" (\"0s\" records no tombstones)",
        ));
    }
    Ok(d)
}

/// `mount.tombstone_status`: 404 (as if it never existed) or 410 (Gone).
fn validate_tombstone_status(key: &str, v: Option<u16>) -> Result<u16, ConfigError> {
    match v.unwrap_or(404) {
        s @ (404 | 410) => Ok(s),
        other => Err(invalid(
            key,
            other,
            "a removed file is answered 404 or 410",
            "use 404 or 410",
        )),
    }
}

/// A bucket name S3 accepts (3-63 of `a-z0-9.-`, alphanumeric at both ends).
fn validate_bucket(key: &str, b: &str) -> Result<String, ConfigError> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(b.to_string())
    } else {
        Err(invalid(
            key,
            b,
            "not a valid S3 bucket name",
            "use 3-63 lower-case letters, digits, `-` or `.`, starting and ending with a letter or digit",
        ))
    }
}

/// `key_prefix`: empty, or relative and ending in `/`, without `.`/`..` segments.
fn validate_key_prefix(key: &str, p: &str) -> Result<String, ConfigError> {
    if p.is_empty() {
        return Ok(String::new());
    }
    let bad = p.starts_with('/')
        || !p.ends_with('/')
        || p.contains("//")
        || p.split('/').any(|s| s == "." || s == "..")
        || p.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        return Err(invalid(
            key,
            p,
            "must be empty or a relative prefix ending in `/` without `.`/`..` segments",
            "use e.g. \"static/\"",
        ));
    }
    Ok(p.to_string())
}

/// Whether files can be created in `dir`, by trying: permission bits do not tell for root, nor
/// for a read-only mount. The probe is named like an archive temp file, so if it is ever left
/// behind the uploader's start-up clean-up removes it.
fn check_writable(key: &str, dir: &Path) -> Result<(), ConfigError> {
    let probe = dir.join(format!(
        "{}{}.{:08x}.check",
        TEMP_PREFIX,
        std::process::id(),
        fastrand::u32(..)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(invalid(
            key,
            dir,
            format!("the uploader cannot create files in it ({e})"),
            "make it writable for the user stowaway runs as (and not a read-only mount), or use finalize = \"delete\" / \"keep\"",
        )),
    }
}

/// Where a directory really is, for comparing mounts: the longest existing ancestor is
/// canonicalised (so a symlink cannot hide that two paths are one) and the rest, which does
/// not exist and so holds no symlinks, is normalised lexically.
pub(crate) fn resolved_location(p: &Path) -> PathBuf {
    use std::path::Component;
    let comps: Vec<Component<'_>> = p.components().collect();
    let (mut out, rest) = (1..=comps.len())
        .rev()
        .find_map(|n| {
            let head: PathBuf = comps[..n].iter().collect();
            std::fs::canonicalize(head).ok().map(|c| (c, &comps[n..]))
        })
        .unwrap_or_else(|| (PathBuf::new(), &comps[..]));
    for c in rest {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Refuses mounts that reach each other's objects or files: on one bucket, a key prefix that
/// starts with another's lets one mount's URLs (and uploads) reach the other's objects, so an
/// open mount would bypass a signed one; a root or archive root inside (or equal to) another
/// mount's root or archive root serves, uploads or archives the other mount's files.
fn check_mount_overlaps(mounts: &[Mount]) -> Result<(), ConfigError> {
    let name = |m: &Mount| format!("mount {:?}", m.prefix.as_str());
    for (j, b) in mounts.iter().enumerate() {
        for a in &mounts[..j] {
            if a.bucket == b.bucket
                && (a.key_prefix.starts_with(&b.key_prefix)
                    || b.key_prefix.starts_with(&a.key_prefix))
            {
                return Err(invalid(
                    format!("mount[{j}].key_prefix"),
                    &b.key_prefix,
                    format!(
                        "{} and {} overlap: both use bucket {:?}, and key prefix {:?} and key prefix {:?} are equal or one starts with the other (\"\" covers the whole bucket), so URLs and uploads of one mount reach the objects of the other",
                        name(a),
                        name(b),
                        b.bucket,
                        a.key_prefix,
                        b.key_prefix
                    ),
                    format!(
                        "give {} and {} key prefixes where neither starts with the other, e.g. \"static/\" and \"private/\", or separate buckets",
                        name(a),
                        name(b)
                    ),
                ));
            }
        }
    }
    // Every directory a mount owns, resolved once.
    let dirs: Vec<(usize, &str, &Path, PathBuf)> = mounts
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            std::iter::once((i, "root", m.root.as_path()))
                .chain(m.archive_root.as_deref().map(|a| (i, "archive_root", a)))
        })
        .map(|(i, what, p)| (i, what, p, resolved_location(p)))
        .collect();
    for (n, (j, what_b, path_b, real_b)) in dirs.iter().enumerate() {
        for (i, what_a, path_a, real_a) in &dirs[..n] {
            let relation = if real_a == real_b {
                "is the same directory as"
            } else if real_b.starts_with(real_a) {
                "is inside"
            } else if real_a.starts_with(real_b) {
                "contains"
            } else {
                continue;
            };
            let show = |p: &Path, real: &Path| {
                if p == real {
                    format!("{}", p.display())
                } else {
                    format!("{} (really {})", p.display(), real.display())
                }
            };
            let (ma, mb) = (&mounts[*i], &mounts[*j]);
            let fix = if i == j {
                "put the archive outside the served root, e.g. /srv/site/archive/static".to_string()
            } else {
                format!(
                    "give {} and {} separate directories, none inside another: e.g. roots /srv/site/static and /srv/site/private, archives /srv/site/archive/static and /srv/site/archive/private",
                    name(ma),
                    name(mb)
                )
            };
            return Err(invalid(
                format!("mount[{j}].{what_b}"),
                path_b,
                format!(
                    "{} {what_b} {} {relation} {} {what_a} {}, so files of one are served, uploaded or archived through the other",
                    name(mb),
                    show(path_b, real_b),
                    name(ma),
                    show(path_a, real_a),
                ),
                fix,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cfg, MOUNT, mount};
    use super::*;

    /// A mount with every required key but `missing`.
    fn without(missing: &str) -> Cfg {
        let lines: Vec<&str> = MOUNT.lines().filter(|l| !l.starts_with(missing)).collect();
        Cfg {
            mounts: vec![lines.join("\n")],
            ..Cfg::default()
        }
    }

    /// Two mounts, the second with these lines.
    fn two(second: &str) -> Cfg {
        Cfg {
            mounts: vec![MOUNT.into(), second.into()],
            ..Cfg::default()
        }
    }

    #[test]
    fn at_least_one_mount() {
        Cfg::default().accepted();
        Cfg {
            mounts: vec![],
            ..Cfg::default()
        }
        .refused("mount");
    }

    #[test]
    fn required_keys() {
        for key in ["prefix", "root", "bucket"] {
            let e = without(key).refused(&format!("mount[0].{key}"));
            assert!(e.contains("missing"), "{e}");
        }
    }

    #[test]
    fn prefix_is_a_plain_path_apart_from_the_internal_prefix_and_other_mounts() {
        let prefix = |p: &str| Cfg {
            mounts: vec![MOUNT.replace("\"/static/\"", &format!("\"{p}\""))],
            ..Cfg::default()
        };
        prefix("/media/files/").accepted();
        for bad in ["static/", "/static", "/a/../b/", "/a//b/"] {
            prefix(bad).refused("mount[0].prefix");
        }
        let e = prefix("/_stowaway_local/x/").refused("mount[0].prefix");
        assert!(e.contains("server.internal_prefix"), "{e}");
        prefix("/").refused("mount[0].prefix");
        let other = |p: &str| {
            two(&format!(
                "prefix = \"{p}\"\nroot = \"/srv/site/other\"\nbucket = \"other\""
            ))
        };
        other("/other/").accepted();
        for nested in ["/static/", "/static/inner/"] {
            let e = other(nested).refused("mount[1].prefix");
            assert!(e.contains("overlaps mount[0].prefix"), "{e}");
        }
    }

    #[test]
    fn root_is_an_existing_absolute_directory() {
        let d = tempfile::tempdir().unwrap();
        let root = |p: &Path| Cfg {
            mounts: vec![MOUNT.replace("/srv/site/static", &p.display().to_string())],
            ..Cfg::default()
        };
        let s = root(d.path()).check(FsChecks::Check).unwrap();
        assert_eq!(s.mounts[0].root, d.path().canonicalize().unwrap());
        root(Path::new("srv/site")).refused("mount[0].root");
        root(&d.path().join("missing")).refused_with(FsChecks::Check, "mount[0].root");
        let f = d.path().join("file");
        std::fs::write(&f, b"").unwrap();
        let e = root(&f).refused_with(FsChecks::Check, "mount[0].root");
        assert!(e.contains("not a directory"), "{e}");
        // Generating a config for another machine does not look.
        root(&d.path().join("missing")).accepted();
    }

    #[test]
    fn bucket_is_an_s3_bucket_name() {
        let bucket = |b: &str| Cfg {
            mounts: vec![MOUNT.replace("\"media\"", &format!("\"{b}\""))],
            ..Cfg::default()
        };
        for good in ["abc", "my-bucket.2026", &"a".repeat(63)] {
            bucket(good).accepted();
        }
        for bad in ["ab", &"a".repeat(64), "My-Bucket", "-abc", "abc.", "a_b"] {
            bucket(bad).refused("mount[0].bucket");
        }
    }

    #[test]
    fn key_prefix_is_empty_or_a_relative_directory() {
        for good in ["", "static/", "a/b/"] {
            let s = mount(&format!("key_prefix = \"{good}\"")).accepted();
            assert_eq!(s.mounts[0].key_prefix, good);
        }
        for bad in ["/static/", "static", "a//b/", "a/../b/", "./a/", "a\\b/"] {
            mount(&format!("key_prefix = \"{bad}\"")).refused("mount[0].key_prefix");
        }
    }

    #[test]
    fn finalize_is_archive_delete_or_keep() {
        for (word, f) in [("delete", Finalize::Delete), ("keep", Finalize::Keep)] {
            let s = mount(&format!("finalize = \"{word}\"")).accepted();
            assert_eq!(s.mounts[0].finalize, f);
        }
        mount("finalize = \"shred\"").refused("mount[0].finalize");
    }

    /// The uploader enabled, as archiving only matters then.
    fn uploading(lines: &str) -> Cfg {
        Cfg {
            uploader: String::new(),
            ..mount(lines)
        }
    }

    #[test]
    fn archiving_needs_an_archive_root() {
        uploading("archive_root = \"/srv/archive\"").accepted();
        let e = uploading("").refused("mount[0].archive_root");
        assert!(e.contains("needs an archive directory"), "{e}");
        uploading("finalize = \"keep\"").accepted();
        uploading("upload = false").accepted();
        mount("").accepted(); // uploader disabled
    }

    #[test]
    fn archive_root_lies_outside_the_root() {
        mount("archive_root = \"/srv/archive/static\"").accepted();
        for bad in ["/srv/site/static/archive", "/srv/site/static", "/srv/site"] {
            let e = mount(&format!("archive_root = \"{bad}\"")).refused("mount[0].archive_root");
            assert!(e.contains("inside the root"), "{e}");
        }
        mount("archive_root = \"archive\"").refused("mount[0].archive_root");
    }

    #[test]
    fn archive_root_must_be_writable_when_archiving() {
        let d = tempfile::tempdir().unwrap();
        let (root, archive) = (d.path().join("root"), d.path().join("archive"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&archive).unwrap();
        let cfg = |archive: &Path, extra: &str| Cfg {
            uploader: String::new(),
            mounts: vec![format!(
                "prefix = \"/s/\"\nroot = \"{}\"\nbucket = \"media\"\narchive_root = \"{}\"\n{extra}",
                root.display(),
                archive.display()
            )],
            ..Cfg::default()
        };
        cfg(&archive, "").check(FsChecks::Check).unwrap();
        let left: Vec<_> = std::fs::read_dir(&archive).unwrap().collect();
        assert!(left.is_empty(), "the write probe is removed: {left:?}");
        // Permission bits do not stop root, so the refused case needs a directory nobody can
        // create files in: procfs.
        let proc = Path::new("/proc");
        let e = cfg(proc, "").refused_with(FsChecks::Check, "mount[0].archive_root");
        assert!(e.contains("cannot create files"), "{e}");
        cfg(proc, "finalize = \"keep\"")
            .check(FsChecks::Check)
            .unwrap();
        cfg(proc, "").check(FsChecks::Skip).unwrap();
    }

    #[test]
    fn ignore_patterns_are_file_names() {
        let s = mount("ignore = [\"*.tmp\", \".*\"]").accepted();
        assert_eq!(s.mounts[0].ignore, ["*.tmp", ".*"]);
        assert_eq!(
            mount("").accepted().mounts[0].ignore,
            [".*", "*.tmp", "*.part"]
        );
        mount("ignore = []").accepted();
        mount("ignore = [\"\"]").refused("mount[0].ignore");
        mount("ignore = [\"*.tmp\", \"cache/*\"]").refused("mount[0].ignore");
    }

    #[test]
    fn archive_retention_needs_an_archive() {
        let s = mount("archive_root = \"/srv/archive\"\narchive_retention = \"30d\"").accepted();
        assert_eq!(
            s.mounts[0].archive_retention,
            Duration::from_secs(30 * 24 * 3600)
        );
        // Absent or zero: keep forever, whatever the finalize.
        assert_eq!(
            mount("").accepted().mounts[0].archive_retention,
            Duration::ZERO
        );
        mount("finalize = \"delete\"\narchive_retention = \"0s\"").accepted();
        for other in ["delete", "keep"] {
            let e = mount(&format!(
                "finalize = \"{other}\"\narchive_root = \"/srv/archive\"\narchive_retention = \"30d\""
            ))
            .refused("mount[0].archive_retention");
            assert!(e.contains("only applies to finalize = \"archive\""), "{e}");
            assert!(e.contains("fix: remove archive_retention"), "{e}");
        }
        // finalize = "archive" (the default) but nothing archived: no archive_root.
        let e = mount("archive_retention = \"30d\"").refused("mount[0].archive_retention");
        assert!(e.contains("needs an archive_root"), "{e}");
        mount("archive_root = \"/srv/archive\"\narchive_retention = \"soon\"")
            .refused("mount[0].archive_retention");
    }

    #[test]
    fn tombstone_ttl_is_a_bounded_duration() {
        let s = mount("").accepted();
        assert_eq!(s.mounts[0].tombstone_ttl, Duration::from_secs(7 * 86_400));
        let s = mount("tombstone_ttl = \"36h\"").accepted();
        assert_eq!(s.mounts[0].tombstone_ttl, Duration::from_secs(36 * 3600));
        let s = mount("tombstone_ttl = \"0s\"").accepted();
        assert_eq!(s.mounts[0].tombstone_ttl, Duration::ZERO);
        mount("tombstone_ttl = \"a week\"").refused("mount[0].tombstone_ttl");
        mount("tombstone_ttl = \"3651d\"").refused("mount[0].tombstone_ttl");
    }

    #[test]
    fn tombstone_status_is_404_or_410() {
        assert_eq!(mount("").accepted().mounts[0].tombstone_status, 404);
        let s = mount("tombstone_status = 410").accepted();
        assert_eq!(s.mounts[0].tombstone_status, 410);
        for bad in ["403", "200", "0"] {
            mount(&format!("tombstone_status = {bad}")).refused("mount[0].tombstone_status");
        }
    }

    #[test]
    fn finalize_grace_is_a_duration() {
        let s = mount("finalize_grace = \"10m\"").accepted();
        assert_eq!(s.mounts[0].finalize_grace, Duration::from_secs(600));
        mount("finalize_grace = \"later\"").refused("mount[0].finalize_grace");
    }
}
