//! What is cached: the [`Policy`] (admission, eviction) plus, per entry, the ETag it was filled
//! from and when S3 last confirmed it; and the journal that tells, after a restart, which
//! files in the directory stowaway wrote.
//!
//! The journal (`.stowaway-cache.journal`, one JSON line per installed file: key, inode, size,
//! ETag) works on every file system (tmpfs has no user xattrs before Linux 6.6). A file counts
//! as ours when a line names its key with its inode and size; anything else found in the
//! directory was put there by someone else and is removed. Removals are not journalled: a
//! missing file is simply not found. The scan rewrites the journal with what it kept.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use rustix::fs::{FileType, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::layout::{JOURNAL, TEMP_PREFIX};
use super::policy::{Admission, Limits, Placement, Policy, Usage};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "k")]
    pub key: String,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub etag: String,
}

/// What is known about a cached entry besides its size.
#[derive(Debug, Clone)]
pub struct Meta {
    pub etag: Box<str>,
    /// When S3 last said this ETag is current (the fill, or a revalidation).
    pub validated: Instant,
    /// The access-time round during which stowaway last answered a request from this entry
    /// (then the front server reads the file for that request: see [`Index::record_reads`]).
    pub hit_round: u64,
}

/// The policy and the entries' ETags, under one lock.
pub struct Index {
    policy: Policy,
    meta: HashMap<Box<str>, Meta>,
    /// Access-time rounds so far (starts above any entry's `hit_round` of 0).
    round: u64,
}

impl Index {
    pub fn new(limits: Limits) -> Self {
        Index {
            policy: Policy::new(limits),
            meta: HashMap::new(),
            round: 2,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.policy.contains(key)
    }

    pub fn record_miss(&mut self, key: &str, now: Instant) -> Admission {
        self.policy.record_miss(key, None, now)
    }

    pub fn record_hit(&mut self, key: &str, now: Instant) {
        self.policy.record_hit(key, now);
        if let Some(m) = self.meta.get_mut(key) {
            m.hit_round = self.round;
        }
    }

    /// One access-time round found the files of `read` read since the last: those stowaway did
    /// not answer itself were read by the front server on its own (local-first hits) and are
    /// uses of the entry. A file read after stowaway answered it with X-Accel-Redirect or
    /// X-Sendfile is that hit's read, already counted, even when the round fell between the
    /// answer and the read: entries hit this round or the one before are left out. Returns
    /// how many files (and their bytes) counted.
    pub fn record_reads(&mut self, read: &[(Box<str>, u64)], now: Instant) -> (u64, u64) {
        let (mut files, mut bytes) = (0, 0);
        let round = self.round;
        for (key, len) in read {
            if self.meta.get(key).is_some_and(|m| m.hit_round + 1 < round) {
                self.policy.record_use(key, now);
                files += 1;
                bytes += len;
            }
        }
        self.round += 1;
        self.policy.end_round(files);
        (files, bytes)
    }

    /// A filled file: the policy decides whether it stays and what goes.
    pub fn insert(&mut self, key: &str, disk_bytes: u64, meta: Meta, now: Instant) -> Placement {
        let placed = self.policy.insert(key, disk_bytes, now);
        for k in &placed.evict {
            self.meta.remove(k);
        }
        if placed.kept {
            self.meta.insert(key.into(), meta);
        }
        placed
    }

    pub fn remove(&mut self, key: &str) {
        self.policy.remove(key);
        self.meta.remove(key);
    }

    /// Forgets everything (the directory was recreated empty).
    pub fn clear(&mut self) {
        let keys: Vec<Box<str>> = self.meta.keys().cloned().collect();
        for k in keys {
            self.remove(&k);
        }
    }

    pub fn usage(&self) -> Usage {
        self.policy.usage()
    }

    /// Up to `max` entries S3 has not confirmed since `before`, oldest first.
    pub fn due(&self, before: Instant, max: usize) -> Vec<(Box<str>, Box<str>)> {
        let mut due: Vec<(&Box<str>, &Meta)> = self
            .meta
            .iter()
            .filter(|(_, m)| m.validated <= before)
            .collect();
        due.sort_by_key(|(_, m)| m.validated);
        due.into_iter()
            .take(max)
            .map(|(k, m)| (k.clone(), m.etag.clone()))
            .collect()
    }

    pub fn confirm(&mut self, key: &str, now: Instant) {
        if let Some(m) = self.meta.get_mut(key) {
            m.validated = now;
        }
    }

    pub fn keys(&self) -> Vec<Box<str>> {
        self.meta.keys().cloned().collect()
    }
}

/// Appends `r` to the journal in the directory `dir` (one `write` of one line, `O_APPEND`).
pub fn append(dir: BorrowedFd<'_>, r: &Record) -> io::Result<()> {
    // Led by a newline too: a line an earlier append left torn (full disk, crash) ends here
    // instead of swallowing this record; the empty lines are skipped and gone at the rewrite.
    let mut line = vec![b'\n'];
    line.extend(serde_json::to_vec(r).map_err(io::Error::other)?);
    line.push(b'\n');
    let fd = rustix::fs::openat(
        dir,
        JOURNAL,
        // NONBLOCK: a FIFO planted under the name must fail the fill, not hang it.
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    if !FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode).is_file() {
        return Err(io::Error::other("the journal is not a regular file"));
    }
    let mut f = std::fs::File::from(fd);
    f.write_all(&line)?;
    f.sync_data()
}

/// The journal's records by key (the last line for a key wins); unreadable lines are skipped,
/// byte-wise (a line torn inside a character must not cost the others). A journal that cannot
/// be read at all (planted link, not a file) vouches for nothing: every file is removed, which
/// only costs refills; the scan then writes a new one.
pub fn read(dir: BorrowedFd<'_>) -> io::Result<HashMap<String, Record>> {
    let fd = match rustix::fs::openat(
        dir,
        JOURNAL,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        // A FIFO (or device) planted under the name is never read: it could block forever.
        Ok(fd)
            if !rustix::fs::fstat(&fd)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_file()) =>
        {
            tracing::warn!(
                "cache: the journal cannot be read: every file in the directory counts as a stranger's"
            );
            return Ok(HashMap::new());
        }
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(HashMap::new()),
        Err(e) => {
            tracing::warn!(error = %e, "cache: the journal cannot be read: every file in the directory counts as a stranger's");
            return Ok(HashMap::new());
        }
    };
    let mut text = Vec::new();
    if let Err(e) = std::fs::File::from(fd).read_to_end(&mut text) {
        tracing::warn!(error = %e, "cache: the journal cannot be read: every file in the directory counts as a stranger's");
        return Ok(HashMap::new());
    }
    Ok(text
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Record>(l).ok())
        .map(|r| (r.key.clone(), r))
        .collect())
}

/// Replaces the journal with exactly `records` (temp file, fsync, rename).
pub fn rewrite(dir: BorrowedFd<'_>, records: &[Record]) -> io::Result<()> {
    let tmp = format!("{TEMP_PREFIX}{}.journal", std::process::id());
    let _ = crate::beneath::unlink_at(dir, OsStr::new(&tmp));
    let mut f = crate::beneath::create_new_at(dir, OsStr::new(&tmp), 0o600)?;
    let mut text = Vec::new();
    for r in records {
        text.extend(serde_json::to_vec(r).map_err(io::Error::other)?);
        text.push(b'\n');
    }
    let written = f
        .write_all(&text)
        .and_then(|()| f.sync_all())
        .and_then(|()| crate::beneath::rename_at(dir, OsStr::new(&tmp), dir, OsStr::new(JOURNAL)));
    if let Err(e) = written {
        let _ = crate::beneath::unlink_at(dir, OsStr::new(&tmp));
        return Err(e);
    }
    crate::beneath::sync_dir(dir.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_appends_rewrites_and_skips_garbage() {
        let d = tempfile::tempdir().unwrap();
        let dir = crate::beneath::DirHandle::open(d.path()).unwrap();
        let fd = dir.open_dir(std::path::Path::new("")).unwrap();
        let r = |k: &str, ino| Record {
            key: k.into(),
            ino,
            size: 3,
            mtime_ns: 1,
            etag: "e".into(),
        };
        append(fd.as_fd(), &r("a", 1)).unwrap();
        append(fd.as_fd(), &r("a", 2)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(JOURNAL))
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        append(fd.as_fd(), &r("b/c", 3)).unwrap();
        let got = read(fd.as_fd()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["a"].ino, 2, "the last line wins");
        rewrite(fd.as_fd(), &[r("b/c", 3)]).unwrap();
        let got = read(fd.as_fd()).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["b/c"]);
    }

    /// A read the revalidation round finds is a use of the entry unless stowaway answered a
    /// request for it this round or the one before (then it is that answer's read).
    #[test]
    fn reads_count_unless_stowaway_answered_the_request() {
        let limits = Limits {
            max_bytes: 1000,
            max_files: 10,
            high_percent: 90,
            low_percent: 75,
            min_hits: 1,
            window: std::time::Duration::from_secs(3600),
            max_object_size: 100,
        };
        let mut ix = Index::new(limits);
        let t = Instant::now();
        let meta = || Meta {
            etag: "e".into(),
            validated: t,
            hit_round: 0,
        };
        for k in ["a", "b"] {
            assert!(ix.insert(k, 10, meta(), t).kept);
        }
        let read = |keys: &[&str]| -> Vec<(Box<str>, u64)> {
            keys.iter().map(|k| (Box::<str>::from(*k), 10)).collect()
        };
        assert_eq!(ix.record_reads(&read(&["a", "gone"]), t), (1, 10));
        ix.record_hit("b", t);
        assert_eq!(
            ix.record_reads(&read(&["b"]), t),
            (0, 0),
            "the hit's own read"
        );
        assert_eq!(
            ix.record_reads(&read(&["b"]), t),
            (0, 0),
            "…read just after a round"
        );
        assert_eq!(ix.record_reads(&read(&["a", "b"]), t), (2, 20));
    }

    /// A line cut short (a full disk, a crash mid-write) must not swallow the next record:
    /// that file would be removed as a stranger's at the next start.
    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_record() {
        let d = tempfile::tempdir().unwrap();
        let dir = crate::beneath::DirHandle::open(d.path()).unwrap();
        let fd = dir.open_dir(std::path::Path::new("")).unwrap();
        let r = |k: &str| Record {
            key: k.into(),
            ino: 7,
            size: 3,
            mtime_ns: 1,
            etag: "e".into(),
        };
        append(fd.as_fd(), &r("a")).unwrap();
        let whole = serde_json::to_vec(&r("torn")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(JOURNAL))
            .unwrap()
            .write_all(&whole[..whole.len() / 2])
            .unwrap();
        append(fd.as_fd(), &r("b")).unwrap();
        let got = read(fd.as_fd()).unwrap();
        assert!(got.contains_key("a") && got.contains_key("b"), "{got:?}");
        assert!(!got.contains_key("torn"));
    }
}
