//! `stowaway reconcile`: compares, per upload mount, the local root, the archive and the
//! bucket prefix, and names every discrepancy — archived files whose object is missing or
//! different, objects no local copy accounts for (orphans), local files never uploaded, temp
//! files of dead processes, abandoned multipart uploads. `--fix` aborts those uploads and
//! tidies the temp files the way the uploader's start-up does; `--delete-orphans` deletes the
//! orphans; nothing else is ever changed.
//!
//! Memory is bounded whatever the number of keys: the three sides are walked in the same
//! order — S3 lists keys in ascending UTF-8 byte order, and the local walks produce the same
//! order by sorting each directory's names with a `/` after directory names (so `a/b` comes
//! after `a.txt`, as in S3) and descending depth-first — and merged a key at a time. What is
//! held is one listing page, one directory listing per level of depth, and the summary;
//! findings are written out as they are found (with `--json` too: the document is streamed).
//!
//! Every local access is beneath the root or archive handle ([`crate::beneath`]); archived
//! files are hashed through one descriptor. Orphans are looked up again just before they are
//! deleted, so a file the uploader moved between root and archive during the walk is not
//! taken for missing.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indicatif::ProgressBar;
use rustix::fs::FileType;
use serde::Serialize;

use crate::beneath::{self, DirHandle, Lookup, fd};
use crate::config::{Finalize, Mount, Settings, TEMP_PREFIX};
use crate::ignore::{Ignore, OWN_PREFIX};
use crate::paths::{key_for_local, object_key};
use crate::store::ObjectStore;
use crate::store::hash::{HashError, Layout, hash_reader};
use crate::store::list::{ListedObject, ObjectPages, is_archived_class};
use crate::store::multipart::listing_unsupported;
use crate::store::retry::{Retrier, S3Failure};
use crate::store::stop::Stop;
use crate::store::verify::{Mismatch, RemoteObject, VerifyError, check};
use crate::uploader::Stats;
use crate::uploader::finalize::{self, DETACHED_PREFIX, ReadAt};
use crate::uploader::leftovers::abandoned;

/// The action of an orphan `--delete-orphans` keeps because the copies' directory is empty.
const EMPTY_LOCAL: &str = "kept: the directory of the local copies (archive_root, or the root of a finalize = \"keep\" mount) is empty — a disk that did not mount?; nothing is deleted on such a mount";

/// Exit code when discrepancies remain (found and not fixed).
pub const EXIT_FOUND: u8 = 1;
/// Exit code when the comparison could not be finished (S3 or a local directory could not be
/// read): what was printed is true, but incomplete.
pub const EXIT_INCOMPLETE: u8 = 3;

/// The command line of `reconcile`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub fix: bool,
    pub delete_orphans: bool,
    pub json: bool,
    /// Only the mount with this prefix (`/static/`; the slashes may be left out).
    pub mount: Option<String>,
    /// ListObjectsV2 page size (tests exercise paging with small pages).
    pub page_size: Option<i32>,
}

/// The kinds of discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An archived file without an object under its key.
    ArchivedMissing,
    /// An archived file whose object holds other content (size, checksum or ETag).
    ArchivedDifferent,
    /// An archived file whose object has no integrity value to compare (nor a HEAD answer).
    ArchivedUnverifiable,
    /// An object with neither an archived nor a local copy.
    Orphan,
    /// A local file (older than `uploader.settle`) with no object.
    NotUploaded,
    /// A temp or detached file of a process that is gone.
    TempLeftover,
    /// A multipart upload older than `uploader.abandoned_upload_age`, never completed.
    IncompleteUpload,
}

/// One discrepancy.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub mount: String,
    /// The mount-relative key (empty for temp files without one).
    pub key: String,
    /// `s3://bucket/key` for findings about objects and uploads, else the local path.
    pub location: String,
    pub detail: String,
    /// `aborted`, `deleted`, `removed`, `restored`, or empty when left alone; `failed: …`.
    pub action: String,
}

impl Finding {
    fn fixed(&self) -> bool {
        matches!(
            self.action.as_str(),
            "aborted" | "deleted" | "removed" | "restored"
        )
    }
}

/// What one mount's reconcile found, in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MountSummary {
    pub mount: String,
    pub bucket: String,
    pub key_prefix: String,
    pub objects: u64,
    pub local_files: u64,
    pub archived_files: u64,
    pub archived_missing: u64,
    pub archived_different: u64,
    pub archived_unverifiable: u64,
    pub orphans: u64,
    pub not_uploaded: u64,
    pub temp_leftovers: u64,
    pub incomplete_uploads: u64,
    /// Objects in GLACIER or DEEP_ARCHIVE (a redirected client gets 403 until restored).
    pub archived_class_objects: u64,
    /// Local files younger than `uploader.settle` without an object (the uploader's next job).
    pub pending_uploads: u64,
    /// Multipart uploads younger than the bound (probably still running somewhere).
    pub running_uploads: u64,
    /// Objects without a local copy that a pruned archive accounts for (older than
    /// `archive_retention`), or on a `finalize = "delete"` mount, where none is kept.
    pub remote_only: u64,
    /// Why orphans were not looked for on this mount, if they were not.
    pub orphans_unchecked: Option<String>,
    /// Why incomplete multipart uploads were not looked for, if they were not.
    pub uploads_unchecked: Option<String>,
    /// Findings fixed by `--fix` or `--delete-orphans`.
    pub fixed: u64,
    /// The comparison stopped or skipped a part: S3 or a directory could not be read.
    pub errors: Vec<String>,
}

impl MountSummary {
    fn count(&mut self, f: &Finding) {
        let n = match f.kind {
            Kind::ArchivedMissing => &mut self.archived_missing,
            Kind::ArchivedDifferent => &mut self.archived_different,
            Kind::ArchivedUnverifiable => &mut self.archived_unverifiable,
            Kind::Orphan => &mut self.orphans,
            Kind::NotUploaded => &mut self.not_uploaded,
            Kind::TempLeftover => &mut self.temp_leftovers,
            Kind::IncompleteUpload => &mut self.incomplete_uploads,
        };
        *n += 1;
        if f.fixed() {
            self.fixed += 1;
        }
    }

    fn findings(&self) -> u64 {
        self.archived_missing
            + self.archived_different
            + self.archived_unverifiable
            + self.orphans
            + self.not_uploaded
            + self.temp_leftovers
            + self.incomplete_uploads
    }
}

/// Where findings go as they are found: lines, or the streamed JSON document.
struct Out {
    json: bool,
    first: bool,
    bar: Option<ProgressBar>,
    compared: u64,
    found: u64,
}

impl Out {
    fn finding(&mut self, f: &Finding) {
        self.found += 1;
        let mut so = std::io::stdout().lock();
        if self.json {
            let sep = if self.first { "" } else { "," };
            self.first = false;
            let v = serde_json::to_string(f).unwrap_or_default();
            let _ = writeln!(so, "{sep}\n    {v}");
            return;
        }
        let mut line = format!("{} {} {}", kind_word(f.kind), f.location, f.detail);
        if !f.action.is_empty() {
            line.push_str(&format!(" [{}]", f.action));
        }
        match &self.bar {
            Some(b) => b.suspend(|| {
                let _ = writeln!(so, "{line}");
            }),
            None => {
                let _ = writeln!(so, "{line}");
            }
        }
    }

    fn tick(&mut self) {
        self.compared += 1;
        if let Some(b) = &self.bar
            && self.compared.is_multiple_of(1024)
        {
            b.set_message(format!(
                "{} keys compared, {} discrepancies",
                self.compared, self.found
            ));
        }
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::ArchivedMissing => "archived-missing",
        Kind::ArchivedDifferent => "archived-different",
        Kind::ArchivedUnverifiable => "archived-unverifiable",
        Kind::Orphan => "orphan",
        Kind::NotUploaded => "not-uploaded",
        Kind::TempLeftover => "temp-leftover",
        Kind::IncompleteUpload => "incomplete-upload",
    }
}

/// The `reconcile` command.
pub fn main(settings: Settings, config: &Path, opts: Options) -> ExitCode {
    super::init_logging(&settings);
    tracing::info!(config = %config.display(), "configuration read");
    let wanted = opts.mount.as_deref().map(|m| {
        let t = m.trim_matches('/');
        if t.is_empty() {
            "/".to_string()
        } else {
            format!("/{t}/")
        }
    });
    let mounts: Vec<&Mount> = settings
        .mounts
        .iter()
        .filter(|m| m.upload)
        .filter(|m| wanted.as_deref().is_none_or(|w| m.prefix.as_str() == w))
        .collect();
    if mounts.is_empty() {
        match &wanted {
            Some(w) => eprintln!(
                "stowaway: --mount {w}: no mount with upload = true has that prefix\n  fix: name a [[mount]] prefix from the config, e.g. --mount {}",
                settings
                    .mounts
                    .first()
                    .map(|m| m.prefix.as_str())
                    .unwrap_or("/static/")
            ),
            None => eprintln!(
                "stowaway: no mount has upload = true, so there is nothing to reconcile\n  fix: reconcile compares what the uploader wrote; set upload = true on a [[mount]]"
            ),
        }
        return ExitCode::from(super::EXIT_CONFIG);
    }
    let rt = match super::s3_runtime(&settings, EXIT_INCOMPLETE) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let bar = std::io::stderr().is_terminal().then(super::prune::spinner);
    let mut out = Out {
        json: opts.json,
        first: true,
        bar: bar.clone(),
        compared: 0,
        found: 0,
    };
    if opts.json {
        println!("{{\n  \"findings\": [");
    }
    let stats = Arc::new(Stats::new(settings.mounts.len()));
    let summaries: Vec<MountSummary> = rt.block_on(async {
        let retrier = Retrier::new(&settings.uploader, stats, Arc::new(Stop::default()));
        let store = ObjectStore::connect(&settings.s3, retrier).await;
        let mut v = Vec::new();
        for m in &mounts {
            v.push(reconcile_mount(&settings, m, &store, &opts, &mut out).await);
        }
        v
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let incomplete = summaries.iter().any(|s| !s.errors.is_empty());
    let remaining: u64 = summaries.iter().map(|s| s.findings() - s.fixed).sum();
    if opts.json {
        let tail = serde_json::json!({
            "fix": opts.fix,
            "delete_orphans": opts.delete_orphans,
            "complete": !incomplete,
            "remaining": remaining,
            "mounts": summaries,
        });
        let tail = serde_json::to_string_pretty(&tail).unwrap_or_default();
        // The summary object's members, after the streamed findings.
        let inner = tail
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim_end();
        println!("\n  ],{inner}\n}}");
    } else {
        for s in &summaries {
            eprintln!("{}", summary_line(s));
        }
    }
    if incomplete {
        ExitCode::from(EXIT_INCOMPLETE)
    } else if remaining > 0 {
        ExitCode::from(EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    }
}

fn summary_line(s: &MountSummary) -> String {
    let mut l = format!(
        "reconcile {} (s3://{}/{}): {} object(s), {} local file(s), {} archived; {} archived without object, {} archived different, {} archived unverifiable, {} orphan(s), {} never uploaded, {} temp leftover(s), {} abandoned multipart upload(s); {} fixed",
        s.mount,
        s.bucket,
        s.key_prefix,
        s.objects,
        s.local_files,
        s.archived_files,
        s.archived_missing,
        s.archived_different,
        s.archived_unverifiable,
        s.orphans,
        s.not_uploaded,
        s.temp_leftovers,
        s.incomplete_uploads,
        s.fixed
    );
    if s.archived_class_objects > 0 {
        l.push_str(&format!(
            "\n  {} object(s) in GLACIER/DEEP_ARCHIVE: clients get 503 until they are restored",
            s.archived_class_objects
        ));
    }
    if let Some(w) = &s.orphans_unchecked {
        l.push_str(&format!("\n  orphans not looked for: {w}"));
    }
    if let Some(w) = &s.uploads_unchecked {
        l.push_str(&format!(
            "\n  incomplete multipart uploads not looked for: {w}"
        ));
    }
    for e in &s.errors {
        l.push_str(&format!("\n  error: {e}"));
    }
    l
}

/// One local file the walk found.
#[derive(Debug)]
struct LocalFile {
    key: String,
    stamp: beneath::FileStamp,
}

/// What the local walk yields besides files in key order.
#[derive(Debug)]
enum Step {
    File(LocalFile),
    /// A temp or detached file of a dead process.
    Leftover(PathBuf),
}

/// One directory's entries, sorted as S3 sorts the keys below it.
struct Level {
    rel: PathBuf,
    dir: OwnedFd,
    entries: Names,
}

/// One directory's names in one buffer, so a flat directory of a million files costs their
/// bytes plus 12 per name rather than a heap allocation each; sorted as S3 sorts the keys
/// below them, then handed out one at a time.
#[derive(Default)]
struct Names {
    buf: Vec<u8>,
    /// Offset and length in `buf`, and the type.
    idx: Vec<(u32, u32, FileType)>,
    next: usize,
}

impl Names {
    fn push(&mut self, name: &[u8], t: FileType) -> std::io::Result<()> {
        let too_big = || std::io::Error::other("directory listing larger than 4 GiB");
        let at = u32::try_from(self.buf.len()).map_err(|_| too_big())?;
        let len = u32::try_from(name.len()).map_err(|_| too_big())?;
        self.buf.extend_from_slice(name);
        self.idx.push((at, len, t));
        Ok(())
    }

    fn name(&self, i: usize) -> &[u8] {
        let (at, len, _) = self.idx[i];
        &self.buf[at as usize..(at + len) as usize]
    }

    /// The entries of `dir` (types the file system does not report are asked, without
    /// following: the type decides the order), sorted.
    fn read(dir: &OwnedFd) -> std::io::Result<Names> {
        let mut n = Names::default();
        let mut d = rustix::fs::Dir::read_from(dir)?;
        while let Some(e) = d.read() {
            let e = e?;
            let b = e.file_name().to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            let t = match e.file_type() {
                FileType::Unknown => beneath::type_at(fd(dir), beneath::os(b))
                    .ok()
                    .flatten()
                    .unwrap_or(FileType::Unknown),
                t => t,
            };
            n.push(b, t)?;
        }
        n.sort_as_keys();
        Ok(n)
    }

    /// Sorts names as the keys below them sort: a directory `d` stands for `d/…`.
    fn sort_as_keys(&mut self) {
        let buf = &self.buf;
        let key = |&(at, len, t): &(u32, u32, FileType)| {
            buf[at as usize..(at + len) as usize]
                .iter()
                .chain(dir_slash(t))
        };
        self.idx.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    }

    fn next(&mut self) -> Option<(Vec<u8>, FileType)> {
        let i = self.next;
        let t = self.idx.get(i)?.2;
        self.next += 1;
        Some((self.name(i).to_vec(), t))
    }
}

/// A depth-first walk beneath a root in S3 key order.
struct Walk {
    h: DirHandle,
    root: PathBuf,
    ignore: Ignore,
    stack: Vec<Level>,
}

fn dir_slash(t: FileType) -> &'static [u8] {
    if t == FileType::Directory { b"/" } else { b"" }
}

impl Walk {
    fn open(root: &Path, ignore: Ignore) -> std::io::Result<Walk> {
        let h = DirHandle::open(root)?;
        let mut w = Walk {
            h,
            root: root.to_path_buf(),
            ignore,
            stack: Vec::new(),
        };
        let top = w.level(PathBuf::new())?;
        w.stack.push(top);
        Ok(w)
    }

    /// Whether the top directory had no entry at all when the walk opened it.
    fn was_empty(&self) -> bool {
        self.stack.first().is_none_or(|l| l.entries.idx.is_empty())
    }

    fn level(&self, rel: PathBuf) -> std::io::Result<Level> {
        let dir = self.h.open_dir(&rel)?;
        let entries = Names::read(&dir)?;
        Ok(Level { rel, dir, entries })
    }

    /// The next file (or leftover) in key order; directory errors go to `errors`.
    fn next(&mut self, errors: &mut Vec<String>) -> Option<Step> {
        loop {
            let top = self.stack.last_mut()?;
            let Some((name, ft)) = top.entries.next() else {
                self.stack.pop();
                continue;
            };
            let os = beneath::os(&name);
            let rel = top.rel.join(os);
            if name.starts_with(OWN_PREFIX.as_bytes()) {
                let own = name.starts_with(TEMP_PREFIX.as_bytes())
                    || name.starts_with(DETACHED_PREFIX.as_bytes());
                if own && ft == FileType::RegularFile && !finalize::owner_alive(os, own_kind(&name))
                {
                    return Some(Step::Leftover(self.root.join(&rel)));
                }
                continue;
            }
            if self.ignore.name_ignored(os) {
                continue;
            }
            match ft {
                FileType::Directory => match self.level(rel.clone()) {
                    Ok(l) => self.stack.push(l),
                    Err(e) => errors.push(format!(
                        "cannot read {}: {e}",
                        self.root.join(&rel).display()
                    )),
                },
                FileType::RegularFile => {
                    let top = self.stack.last()?;
                    let Ok(Some(stamp)) = beneath::stat_at(fd(&top.dir), os) else {
                        continue;
                    };
                    let Some(key) = key_for_local(&self.root, &self.root.join(&rel)) else {
                        continue;
                    };
                    return Some(Step::File(LocalFile { key, stamp }));
                }
                // Never followed: symlinks and special files are neither uploaded nor served.
                FileType::Symlink
                | FileType::Fifo
                | FileType::Socket
                | FileType::CharacterDevice
                | FileType::BlockDevice
                | FileType::Unknown => {}
            }
        }
    }
}

fn own_kind(name: &[u8]) -> &'static str {
    if name.starts_with(TEMP_PREFIX.as_bytes()) {
        TEMP_PREFIX
    } else {
        DETACHED_PREFIX
    }
}

/// A local side of the merge: the walk and its current head.
struct Side {
    walk: Option<Walk>,
    head: Option<LocalFile>,
}

impl Side {
    fn new(walk: Option<Walk>) -> Side {
        Side { walk, head: None }
    }

    /// Advances to the next file, passing leftovers to `leftover`.
    fn advance(&mut self, errors: &mut Vec<String>, leftover: &mut dyn FnMut(PathBuf)) {
        self.head = None;
        let Some(w) = self.walk.as_mut() else { return };
        while let Some(step) = w.next(errors) {
            match step {
                Step::File(f) => {
                    self.head = Some(f);
                    return;
                }
                Step::Leftover(p) => leftover(p),
            }
        }
    }

    fn key(&self) -> Option<&str> {
        self.head.as_ref().map(|f| f.key.as_str())
    }
}

/// The S3 side of the merge: the pager and the rest of the current page.
struct Remote {
    pages: ObjectPages,
    page: VecDeque<ListedObject>,
    /// Keys starting with these (relative to the mount's prefix) are another mount's.
    skip: Vec<String>,
    /// Also skips stowaway's own `.stowaway-` objects (tombstones): never user files.
    key_prefix: String,
    ignore: Ignore,
    done: bool,
}

impl Remote {
    /// The next object of the mount, with its mount-relative key.
    async fn next(&mut self) -> Result<Option<(String, ListedObject)>, S3Failure> {
        loop {
            if let Some(o) = self.page.pop_front() {
                let Some(rel) = o.key.strip_prefix(&self.key_prefix) else {
                    continue;
                };
                // `a/` is a console's "folder" marker, never a file of ours.
                if !crate::paths::is_file_key(rel)
                    || self.skip.iter().any(|s| rel.starts_with(s.as_str()))
                    || self.ignore.key_ignored(rel)
                {
                    continue;
                }
                return Ok(Some((rel.to_string(), o)));
            }
            if self.done {
                return Ok(None);
            }
            match self.pages.next_page().await? {
                Some(p) => self.page.extend(p),
                None => self.done = true,
            }
        }
    }
}

async fn reconcile_mount(
    settings: &Settings,
    m: &Mount,
    store: &ObjectStore,
    opts: &Options,
    out: &mut Out,
) -> MountSummary {
    let mut s = MountSummary {
        mount: m.prefix.as_str().to_string(),
        bucket: m.bucket.clone(),
        key_prefix: m.key_prefix.clone(),
        ..Default::default()
    };
    let now = SystemTime::now();
    let mount = m.prefix.as_str().to_string();
    let ignore = Ignore::new(&m.ignore);
    let archive = match (m.finalize, m.archive_root.as_deref()) {
        (Finalize::Archive, Some(a)) => Some(a.to_path_buf()),
        _ => None,
    };
    if m.finalize == Finalize::Delete {
        s.orphans_unchecked = Some(
            "finalize = \"delete\" keeps no local copy, so an orphan looks like any migrated object".into(),
        );
    }
    let leftovers: std::cell::RefCell<Vec<PathBuf>> = Default::default();
    let mut root = Side::new(match Walk::open(&m.root, ignore.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            s.errors
                .push(format!("cannot read the root {}: {e}", m.root.display()));
            return s;
        }
    });
    let mut arch = Side::new(match &archive {
        Some(a) => match Walk::open(a, ignore.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                s.errors
                    .push(format!("cannot read the archive {}: {e}", a.display()));
                return s;
            }
        },
        None => None,
    });
    // An empty directory where the copies live (the archive; the root of a "keep" mount) is
    // what a disk that did not mount looks like: every object would be an orphan. They are
    // reported, never deleted. A root with new files says nothing about the archive.
    let copies = match m.finalize {
        Finalize::Archive => &arch,
        Finalize::Keep | Finalize::Delete => &root,
    };
    let nothing_local = copies.walk.as_ref().is_none_or(Walk::was_empty);
    let mut skip = Vec::new();
    for o in &settings.mounts {
        if o.bucket == m.bucket
            && o.key_prefix.len() > m.key_prefix.len()
            && let Some(rest) = o.key_prefix.strip_prefix(&m.key_prefix)
        {
            skip.push(rest.to_string());
        }
    }
    let mut remote = Remote {
        pages: store.list_objects(&m.bucket, &m.key_prefix, opts.page_size),
        page: VecDeque::new(),
        skip,
        key_prefix: m.key_prefix.clone(),
        ignore,
        done: false,
    };
    let mut errors = Vec::new();
    {
        let mut note = |p: PathBuf| leftovers.borrow_mut().push(p);
        root.advance(&mut errors, &mut note);
        arch.advance(&mut errors, &mut note);
    }
    let mut obj = match remote.next().await {
        Ok(o) => o,
        Err(f) => {
            s.errors.push(f.message);
            None
        }
    };
    loop {
        flush_leftovers(&leftovers, &mount, opts, &mut s, out);
        let keys = [
            root.key(),
            arch.key(),
            obj.as_ref().map(|(k, _)| k.as_str()),
        ];
        let Some(k) = keys.iter().flatten().min().map(|k| k.to_string()) else {
            break;
        };
        out.tick();
        let in_root = root.key() == Some(k.as_str());
        let in_arch = arch.key() == Some(k.as_str());
        let listed = match &obj {
            Some((ok, o)) if *ok == k => Some(o.clone()),
            _ => None,
        };
        if in_root {
            s.local_files += 1;
        }
        if in_arch {
            s.archived_files += 1;
        }
        let location = format!("s3://{}/{}", m.bucket, object_key(&m.key_prefix, &k));
        let finding = |kind, location: String, detail: String| Finding {
            kind,
            mount: mount.clone(),
            key: k.clone(),
            location,
            detail,
            action: String::new(),
        };
        match (&listed, in_arch) {
            (Some(o), true) => {
                let f = arch.head.as_ref().map(|f| f.stamp);
                let compared = match (f, arch.walk.as_ref()) {
                    (Some(stamp), Some(walk)) => {
                        compare(settings, store, m, &walk.h, &k, &stamp, o).await
                    }
                    _ => Ok(None),
                };
                let root_of_archive = arch
                    .walk
                    .as_ref()
                    .map(|w| w.root.clone())
                    .unwrap_or_default();
                match compared {
                    Ok(None) => {}
                    Ok(Some((kind, detail))) => {
                        let path = root_of_archive.join(&k).display().to_string();
                        let f = finding(kind, path, format!("{detail} ({location})"));
                        s.count(&f);
                        out.finding(&f);
                    }
                    Err(e) => {
                        s.errors.push(e);
                        break;
                    }
                }
            }
            (None, true) => {
                let path = arch
                    .walk
                    .as_ref()
                    .map(|w| w.root.join(&k).display().to_string())
                    .unwrap_or_default();
                let f = finding(
                    Kind::ArchivedMissing,
                    path,
                    format!("archived, but {location} does not exist"),
                );
                s.count(&f);
                out.finding(&f);
            }
            _ => {}
        }
        if let Some(o) = &listed {
            s.objects += 1;
            if o.storage_class.as_deref().is_some_and(is_archived_class) {
                s.archived_class_objects += 1;
            }
            if !in_root && !in_arch {
                match is_orphan(m, o.last_modified, now) {
                    Some(true) => {
                        let mut f = finding(
                            Kind::Orphan,
                            location.clone(),
                            "has no local or archived copy".into(),
                        );
                        if opts.delete_orphans {
                            f.action = if nothing_local {
                                EMPTY_LOCAL.into()
                            } else {
                                delete_orphan(store, m, &root, &arch, &k).await
                            };
                        }
                        s.count(&f);
                        out.finding(&f);
                    }
                    _ => s.remote_only += 1,
                }
            }
        }
        if in_root
            && listed.is_none()
            && let Some(f) = &root.head
        {
            if f.stamp.age(now) < settings.uploader.settle {
                s.pending_uploads += 1;
            } else {
                let path = m.root.join(&k).display().to_string();
                let f = finding(
                    Kind::NotUploaded,
                    path,
                    format!("is not in S3 ({location} does not exist)"),
                );
                s.count(&f);
                out.finding(&f);
            }
        }
        let mut note = |p: PathBuf| leftovers.borrow_mut().push(p);
        if in_root {
            root.advance(&mut errors, &mut note);
        }
        if in_arch {
            arch.advance(&mut errors, &mut note);
        }
        if listed.is_some() {
            obj = match remote.next().await {
                Ok(o) => o,
                Err(f) => {
                    s.errors.push(f.message);
                    break;
                }
            };
        }
    }
    flush_leftovers(&leftovers, &mount, opts, &mut s, out);
    s.errors.append(&mut errors);
    uploads(settings, m, store, opts, &mut s, out).await;
    if opts.fix {
        tidy(m, archive.as_deref());
    }
    s
}

/// Whether an object with neither a root nor an archived copy is an orphan. `None`: cannot be
/// told (`finalize = "delete"` keeps no copy of any object). With `archive_retention`, an
/// object older than the retention may have lost its archived copy to pruning, legitimately
/// (the archive move comes after the upload, so a younger one cannot have).
fn is_orphan(m: &Mount, last_modified: Option<SystemTime>, now: SystemTime) -> Option<bool> {
    match m.finalize {
        Finalize::Delete => None,
        Finalize::Keep => Some(true),
        Finalize::Archive if m.archive_retention.is_zero() => Some(true),
        Finalize::Archive => {
            let age = last_modified.and_then(|t| now.duration_since(t).ok());
            Some(age.is_none_or(|a| a <= m.archive_retention))
        }
    }
}

/// Reports the leftovers the walks passed since the last call.
fn flush_leftovers(
    l: &std::cell::RefCell<Vec<PathBuf>>,
    mount: &str,
    opts: &Options,
    s: &mut MountSummary,
    out: &mut Out,
) {
    for p in l.borrow_mut().drain(..) {
        let name = p
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let (detail, action) = if name.starts_with(TEMP_PREFIX.as_bytes()) {
            ("temp file of an interrupted archive copy", "removed")
        } else {
            ("file an interrupted run took off its name", "restored")
        };
        let f = Finding {
            kind: Kind::TempLeftover,
            mount: mount.to_string(),
            key: String::new(),
            location: p.display().to_string(),
            detail: format!("is a {detail}; its process is gone"),
            action: if opts.fix {
                action.to_string()
            } else {
                String::new()
            },
        };
        s.count(&f);
        out.finding(&f);
    }
}

/// `--fix` on temp files: exactly what the uploader does at start-up — dead processes' archive
/// temp copies removed, detached files put back under their names.
fn tidy(m: &Mount, archive: Option<&Path>) {
    finalize::restore_detached(&m.root);
    if let Some(a) = archive {
        finalize::clean_temp_files(a);
        finalize::restore_detached(a);
    }
}

/// Compares an archived file with its listed object: size from the listing, then the content
/// hash against the listed ETag, or a HeadObject when the ETag cannot prove it. `Err` when
/// S3 cannot be asked.
async fn compare(
    settings: &Settings,
    store: &ObjectStore,
    m: &Mount,
    h: &DirHandle,
    key: &str,
    stamp: &beneath::FileStamp,
    o: &ListedObject,
) -> Result<Option<(Kind, String)>, String> {
    if o.size != Some(stamp.size as i64) {
        let m = Mismatch::Size {
            remote: o.size,
            local: stamp.size,
        };
        return Ok(Some((Kind::ArchivedDifferent, m.to_string())));
    }
    let open = match h.open_file(Path::new(key)) {
        Ok(Some(f)) => f,
        // Gone or replaced since the walk: nothing to say about it now.
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", h.path().join(key).display())),
    };
    let u = &settings.uploader;
    let layout = Layout::for_size(open.stamp.size, u.multipart_threshold, u.part_size);
    let d = match hash_reader(&mut ReadAt::new(&open.file), open.stamp.size, layout) {
        Ok(d) => d,
        Err(HashError::SizeChanged { .. }) => return Ok(None),
        Err(HashError::Io(e)) => {
            return Err(format!("cannot read {}: {e}", h.path().join(key).display()));
        }
    };
    let listed = RemoteObject {
        size: o.size,
        etag: o.etag.clone(),
        checksum_sha256: None,
        meta_sha256: None,
    };
    match check(&listed, &d) {
        Ok(_) => return Ok(None),
        Err(Mismatch::Unprovable { .. }) => {}
        Err(mm) => return Ok(Some((Kind::ArchivedDifferent, mm.to_string()))),
    }
    match store
        .verify(&m.bucket, &object_key(&m.key_prefix, key), &d)
        .await
    {
        Ok(_) => Ok(None),
        Err(VerifyError::Missing { .. }) => Ok(Some((
            Kind::ArchivedMissing,
            "the object vanished during the comparison".into(),
        ))),
        Err(VerifyError::Mismatch {
            mismatch: mm @ Mismatch::Unprovable { .. },
            ..
        }) => Ok(Some((Kind::ArchivedUnverifiable, mm.to_string()))),
        Err(VerifyError::Mismatch { mismatch, .. }) => {
            Ok(Some((Kind::ArchivedDifferent, mismatch.to_string())))
        }
        Err(e @ VerifyError::Forbidden { .. }) => {
            Ok(Some((Kind::ArchivedUnverifiable, e.to_string())))
        }
        Err(VerifyError::S3(f)) => Err(f.message),
    }
}

/// `--delete-orphans` on one: looked up again locally first (the uploader may have moved the
/// file between root and archive while the walks passed), then deleted.
async fn delete_orphan(
    store: &ObjectStore,
    m: &Mount,
    root: &Side,
    arch: &Side,
    key: &str,
) -> String {
    // In the order a file moves (root name, detached name, archive), so a move running now is
    // seen at one of its stages.
    for side in [root, arch] {
        if let Some(w) = &side.walk {
            match w.h.lookup(Path::new(key)) {
                Ok(Lookup::Missing) => {}
                Ok(_) => return "kept: a local copy appeared".into(),
                Err(e) => return format!("kept: cannot look for a local copy: {e}"),
            }
            match detached_copy(&w.h, key) {
                Ok(false) => {}
                Ok(true) => {
                    return "kept: the file is on its way to the archive (detached, .stowaway-rm.…)"
                        .into();
                }
                Err(e) => return format!("kept: cannot look for a local copy: {e}"),
            }
        }
    }
    match store
        .delete_object(&m.bucket, &object_key(&m.key_prefix, key))
        .await
    {
        Ok(_) => "deleted".into(),
        Err(f) => format!("failed: {}", f.message),
    }
}

/// Whether `key`'s directory beneath `h` holds it under a detached name: taken off its name
/// by the uploader between the verified upload and the archive, or left so by a crash (put
/// back at the next start). Either way the object is its verified content, not an orphan.
fn detached_copy(h: &DirHandle, key: &str) -> std::io::Result<bool> {
    let (dir, name) = match h.parent(Path::new(key)) {
        Ok(p) => p,
        Err(e) if beneath::is_missing(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let name = name.as_bytes();
    Ok(beneath::read_dir(&dir)?
        .iter()
        .any(|(n, _)| finalize::detached_original(n) == Some(name)))
}

/// Incomplete multipart uploads under the mount's prefix: abandoned ones are findings
/// (aborted with `--fix`); younger ones may still be running and are only counted.
async fn uploads(
    settings: &Settings,
    m: &Mount,
    store: &ObjectStore,
    opts: &Options,
    s: &mut MountSummary,
    out: &mut Out,
) {
    let bound = settings.uploader.abandoned_upload_age;
    let mut pages = store.list_multipart_uploads(&m.bucket, &m.key_prefix);
    let now = SystemTime::now();
    loop {
        let page = match pages.next_page().await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(f) if listing_unsupported(&f) || f.code.as_deref() == Some("AccessDenied") => {
                s.uploads_unchecked = Some(format!(
                    "the store cannot list them ({}); a bucket lifecycle rule AbortIncompleteMultipartUpload does the job",
                    f.message
                ));
                return;
            }
            Err(f) => {
                s.errors.push(f.message);
                return;
            }
        };
        for u in page {
            // Bound zero (the sweeper is off): this command has no upload of its own running,
            // so every listed upload counts; one still running elsewhere fails and is retried.
            let old = bound.is_zero() || abandoned(&u, now, bound, store.open_uploads());
            if !old {
                s.running_uploads += 1;
                continue;
            }
            let rel = u
                .key
                .strip_prefix(&m.key_prefix)
                .unwrap_or(&u.key)
                .to_string();
            let age = u
                .initiated
                .and_then(|t| now.duration_since(t).ok())
                .map(|a| humantime::format_duration(Duration::from_secs(a.as_secs())).to_string())
                .unwrap_or_else(|| "unknown".into());
            let mut f = Finding {
                kind: Kind::IncompleteUpload,
                mount: m.prefix.as_str().to_string(),
                key: rel,
                location: format!("s3://{}/{}", m.bucket, u.key),
                detail: format!("upload {} started {age} ago, never completed", u.upload_id),
                action: String::new(),
            };
            if opts.fix {
                f.action = match store.abort_multipart(&m.bucket, &u.key, &u.upload_id).await {
                    Ok(()) => "aborted".into(),
                    Err(e) => format!("failed: {}", e.message),
                };
            }
            s.count(&f);
            out.finding(&f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_sort_as_s3_sorts_the_keys() {
        let mut n = Names::default();
        for (name, t) in [
            (&b"a.txt"[..], FileType::RegularFile),
            (b"a", FileType::Directory),
            (b"a-b", FileType::RegularFile),
            (b"a0", FileType::RegularFile),
            ("é".as_bytes(), FileType::RegularFile),
            (b"Z", FileType::RegularFile),
        ] {
            n.push(name, t).unwrap();
        }
        n.sort_as_keys();
        let names: Vec<String> = std::iter::from_fn(|| n.next())
            .collect::<Vec<_>>()
            .iter()
            .map(|(n, t)| {
                String::from_utf8_lossy(n).to_string()
                    + dir_slash(*t).escape_ascii().to_string().as_str()
            })
            .collect();
        // The keys "a-b" < "a.txt" < "a/…" < "a0": '-' 0x2D, '.' 0x2E, '/' 0x2F, '0' 0x30.
        assert_eq!(names, ["Z", "a-b", "a.txt", "a/", "a0", "é"]);
        let mut keys: Vec<&str> = vec!["Z", "a-b", "a.txt", "a/x", "a0", "é"];
        keys.sort();
        assert_eq!(keys, ["Z", "a-b", "a.txt", "a/x", "a0", "é"]);
    }

    #[test]
    fn a_walk_yields_keys_in_s3_order() {
        let t = tempfile::tempdir().unwrap();
        for rel in [
            "a.txt",
            "a/b",
            "a/c/d",
            "a0",
            "b/.stowaway-x",
            "b/y",
            "skip.part",
        ] {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let mut w = Walk::open(t.path(), Ignore::new(&["*.part".into()])).unwrap();
        let mut errors = Vec::new();
        let mut keys = Vec::new();
        while let Some(s) = w.next(&mut errors) {
            if let Step::File(f) = s {
                keys.push(f.key);
            }
        }
        assert!(errors.is_empty(), "{errors:?}");
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys, ["a.txt", "a/b", "a/c/d", "a0", "b/y"]);
    }

    #[test]
    fn an_object_without_local_copies_is_an_orphan_unless_pruning_or_delete_explains_it() {
        let settings = crate::config::validate::testing::mount("").accepted();
        let mut m = settings.mounts[0].clone();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100 * 86_400);
        let day = Duration::from_secs(86_400);
        let (young, old) = (Some(now - day), Some(now - 40 * day));
        m.finalize = Finalize::Keep;
        assert_eq!(is_orphan(&m, old, now), Some(true));
        m.finalize = Finalize::Archive;
        m.archive_retention = Duration::ZERO;
        assert_eq!(
            is_orphan(&m, old, now),
            Some(true),
            "nothing is ever pruned"
        );
        m.archive_retention = 30 * day;
        assert_eq!(
            is_orphan(&m, young, now),
            Some(true),
            "too young to be pruned"
        );
        assert_eq!(is_orphan(&m, old, now), Some(false), "pruned, legitimately");
        assert_eq!(
            is_orphan(&m, None, now),
            Some(true),
            "age unknown: reported"
        );
        m.finalize = Finalize::Delete;
        assert_eq!(is_orphan(&m, young, now), None);
    }
}
