//! `stowaway status`: per mount, what is still waiting to go to S3 and what the archive
//! holds, from a scan of the folders (it reads the file system only: no S3 calls).

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;
use walkdir::WalkDir;

use crate::config::Settings;
use crate::ignore::Ignore;

/// One mount's backlog and archive.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MountStatus {
    pub prefix: String,
    pub root: String,
    pub upload: bool,
    /// Regular files in the root that the uploader would take (not ignored).
    pub backlog_files: u64,
    pub backlog_bytes: u64,
    /// Age of the oldest backlog file by modification time.
    pub oldest_backlog_age_seconds: Option<u64>,
    pub archive_root: Option<String>,
    pub archive_files: u64,
    pub archive_bytes: u64,
}

/// Totals of a walk: (files, bytes, oldest mtime).
fn walk(root: &Path, ignore: Option<&Ignore>) -> (u64, u64, Option<SystemTime>) {
    let (mut files, mut bytes, mut oldest) = (0u64, 0u64, None::<SystemTime>);
    let walker = WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || ignore.is_none_or(|i| !i.name_ignored(e.file_name())));
    // Unreadable entries are skipped: status is a report, not a check.
    for e in walker.filter_map(Result::ok) {
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        files += 1;
        bytes += meta.len();
        if let Ok(m) = meta.modified() {
            oldest = Some(oldest.map_or(m, |o| o.min(m)));
        }
    }
    (files, bytes, oldest)
}

/// Scans every mount's root and archive.
pub fn scan(settings: &Settings) -> Vec<MountStatus> {
    let now = SystemTime::now();
    settings
        .mounts
        .iter()
        .map(|m| {
            let ignore = Ignore::new(&m.ignore);
            let (files, bytes, oldest) = walk(&m.root, Some(&ignore));
            let (archive_files, archive_bytes) = match &m.archive_root {
                Some(a) => {
                    let (f, b, _) = walk(a, None);
                    (f, b)
                }
                None => (0, 0),
            };
            MountStatus {
                prefix: m.prefix.as_str().to_string(),
                root: m.root.display().to_string(),
                upload: m.upload,
                backlog_files: files,
                backlog_bytes: bytes,
                oldest_backlog_age_seconds: oldest
                    .map(|o| now.duration_since(o).map_or(0, |d| d.as_secs())),
                archive_root: m.archive_root.as_ref().map(|a| a.display().to_string()),
                archive_files,
                archive_bytes,
            }
        })
        .collect()
}

/// Human-readable rendering.
pub fn render_text(mounts: &[MountStatus]) -> String {
    let mut o = String::new();
    for m in mounts {
        let age = m.oldest_backlog_age_seconds.map_or_else(
            || "-".to_string(),
            |s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string(),
        );
        o.push_str(&format!(
            "{}  ({}{})\n  backlog: {} files, {} (oldest {})\n",
            m.prefix,
            m.root,
            if m.upload { "" } else { ", upload off" },
            m.backlog_files,
            bytesize::ByteSize::b(m.backlog_bytes).display().iec(),
            age
        ));
        if let Some(a) = &m.archive_root {
            o.push_str(&format!(
                "  archive: {} files, {} in {}\n",
                m.archive_files,
                bytesize::ByteSize::b(m.archive_bytes).display().iec(),
                a
            ));
        }
    }
    o
}

/// One mount's hot-object cache, as the running `serve` last reported it (docs/cache.md).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CacheStatus {
    pub prefix: String,
    pub dir: String,
    /// `None` until a `serve` with this cache has written its counters (every revalidation
    /// round, at most 30 s apart).
    #[serde(flatten)]
    pub stats: Option<crate::cache::StatsFile>,
}

/// The caches of every mount that has one.
pub fn caches(settings: &Settings) -> Vec<CacheStatus> {
    settings
        .caches
        .iter()
        .map(|c| CacheStatus {
            prefix: settings.mounts[c.mount].prefix.as_str().to_string(),
            dir: c.dir.display().to_string(),
            stats: crate::cache::read_stats(&c.dir),
        })
        .collect()
}

/// Human-readable rendering of [`caches`].
pub fn render_caches_text(caches: &[CacheStatus]) -> String {
    let mut o = String::new();
    for c in caches {
        match &c.stats {
            Some(s) => o.push_str(&format!(
                "{}  cache {}\n  {} files, {}; {} hits, {} misses, {} fills, {} evictions; S3 GETs avoided {}, egress avoided {}\n",
                c.prefix,
                c.dir,
                s.files,
                bytesize::ByteSize::b(s.bytes).display().iec(),
                s.hits,
                s.misses,
                s.fills,
                s.evictions,
                s.s3_gets_avoided,
                bytesize::ByteSize::b(s.egress_bytes_avoided).display().iec(),
            )),
            None => o.push_str(&format!(
                "{}  cache {}\n  no counters yet (written by a running serve)\n",
                c.prefix, c.dir
            )),
        }
    }
    o
}
