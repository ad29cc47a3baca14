//! One fill: the object streamed from S3 into a temp file inside the cache directory, at most
//! the mount's fill bandwidth, hashed on the way; checked against the SHA-256 our uploader
//! stored (`x-amz-meta-sha256`) or a plain-MD5 ETag; fsync'd; renamed into place beneath the
//! directory handle; journalled. Any failure (S3 down, truncated or corrupted body, full disk,
//! a purge meanwhile) removes the temp file: a fill leaves the whole object or nothing.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::MountCache;
use super::index::{Meta, Record};
use super::layout::LayoutError;
use crate::store::upload::META_SHA256;

/// Why a fill left nothing behind.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("GET failed: {0}")]
    Get(String),
    #[error("object is {size} bytes, above max_object_size")]
    TooLarge { size: u64 },
    #[error("body read failed after {got} bytes: {why}")]
    Body { got: u64, why: String },
    #[error("body has {got} bytes, S3 announced {expected}")]
    Truncated { got: u64, expected: u64 },
    #[error("content does not match S3's {what}: expected {expected}, got {got}")]
    Mismatch {
        what: &'static str,
        expected: String,
        got: String,
    },
    #[error(
        "S3 gave no integrity value to check the body against (no x-amz-meta-sha256, multipart ETag {etag:?})"
    )]
    Unverifiable { etag: Option<String> },
    #[error(transparent)]
    Disk(#[from] LayoutError),
    #[error("writing the temp file: {0}")]
    Write(std::io::Error),
    #[error("purged while filling (replaced or removed)")]
    Purged,
    #[error("the configuration was reloaded while filling")]
    Retired,
}

/// Shared by all fills of a mount: each chunk waits until the mount's byte budget allows it,
/// so fills together never read faster than `fill_bandwidth` per second.
pub struct Bandwidth {
    bytes_per_sec: u64,
    next_free: Mutex<Instant>,
}

impl Bandwidth {
    pub fn new(bytes_per_sec: u64) -> Self {
        Bandwidth {
            bytes_per_sec: bytes_per_sec.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Reserves `n` bytes of the budget and waits until they are due.
    pub async fn take(&self, n: u64) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        let due = {
            let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + cost;
            *next
        };
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Fills `key` of `cache`: on success the file is in place and in the index.
pub async fn fill(cache: &Arc<MountCache>, key: &str) -> Result<u64, FillError> {
    let started = Instant::now();
    let object = format!("{}{key}", cache.key_prefix);
    let resp = cache
        .client
        .get_object()
        .bucket(&cache.bucket)
        .key(&object)
        .send()
        .await
        .map_err(|e| FillError::Get(crate::store::error_chain(&e)))?;
    let expected = resp.content_length().map(|n| n.max(0) as u64);
    if let Some(size) = expected
        && size > cache.settings.max_object_size
    {
        return Err(FillError::TooLarge { size });
    }
    let etag = resp.e_tag().map(|e| e.trim_matches('"').to_string());
    let meta_sha = resp
        .metadata()
        .and_then(|m| m.get(META_SHA256))
        .map(|s| s.to_ascii_lowercase());
    let md5_etag = etag
        .as_deref()
        .filter(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    if meta_sha.is_none() && md5_etag.is_none() {
        return Err(FillError::Unverifiable { etag });
    }
    let mut body = resp.body;
    let (file, temp) = cache.layout.temp()?;
    let result = async {
        let mut out = tokio::fs::File::from_std(file);
        let (mut sha, mut md5) = (Sha256::new(), Md5::new());
        let mut got = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FillError::Body {
                got,
                why: crate::store::error_chain(&e),
            })?;
            got += chunk.len() as u64;
            if got > cache.settings.max_object_size {
                return Err(FillError::TooLarge { size: got });
            }
            cache.limiter.take(chunk.len() as u64).await;
            sha.update(&chunk);
            md5.update(&chunk);
            out.write_all(&chunk).await.map_err(FillError::Write)?;
        }
        if let Some(n) = expected
            && n != got
        {
            return Err(FillError::Truncated { got, expected: n });
        }
        let check = |what, expected: &str, got: String| {
            if expected == got {
                Ok(())
            } else {
                Err(FillError::Mismatch {
                    what,
                    expected: expected.to_string(),
                    got,
                })
            }
        };
        match (&meta_sha, &md5_etag) {
            (Some(s), _) => check("x-amz-meta-sha256", s, hex::encode(sha.finalize()))?,
            (None, Some(m)) => check("ETag (MD5)", m, hex::encode(md5.finalize()))?,
            (None, None) => return Err(FillError::Unverifiable { etag: None }),
        }
        out.flush().await.map_err(FillError::Write)?;
        let f = out.into_std().await;
        tokio::task::spawn_blocking(move || f.sync_all().map(|()| f))
            .await
            .map_err(|e| FillError::Write(std::io::Error::other(e)))?
            .map_err(FillError::Write)
    }
    .await;
    let file = match result {
        Ok(f) => f,
        Err(e) => {
            cache.layout.discard(&temp);
            return Err(e);
        }
    };
    let install = {
        let cache = cache.clone();
        let key = key.to_string();
        let temp = temp.clone();
        let etag = etag.clone().unwrap_or_default();
        tokio::task::spawn_blocking(move || install(&cache, &key, &temp, &file, etag, started))
    };
    match install.await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            cache.layout.discard(&temp);
            Err(e)
        }
        Err(e) => {
            cache.layout.discard(&temp);
            Err(FillError::Write(std::io::Error::other(e)))
        }
    }
}

/// Journals the verified temp file, lets the policy place it, deletes what it evicts and
/// renames the file into place, the last three under the index lock: neither a request nor
/// the disk ever sees the new file without its entry, nor the evicted files beside it (the
/// cache holds at most `max_size` apart from temp files of fills under way).
fn install(
    cache: &MountCache,
    key: &str,
    temp: &str,
    file: &std::fs::File,
    etag: String,
    started: Instant,
) -> Result<u64, FillError> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().map_err(FillError::Write)?;
    // The uploader (or rm, or migrate in this process) dropped this key after the fill began:
    // the bytes may be the old object's.
    if super::layout::purged_since(cache.layout.path(), key, started) {
        return Err(FillError::Purged);
    }
    let slot = cache.layout.slot(key)?;
    // Journalled first: a crash before the rename leaves a line without a file (ignored by the
    // scan), never a file without its line (removed as a stranger's).
    let record = Record {
        key: key.to_string(),
        ino: meta.ino(),
        size: meta.len(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        etag: etag.clone(),
    };
    let root = cache.layout.root_fd().map_err(FillError::Write)?;
    super::index::append(std::os::fd::AsFd::as_fd(&root), &record).map_err(FillError::Write)?;
    let disk = meta.blocks() * 512;
    let now = Instant::now();
    {
        let mut index = cache.index();
        if cache.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Err(FillError::Retired);
        }
        let placed = index.insert(
            key,
            disk,
            Meta {
                etag: etag.into(),
                validated: now,
                hit_round: 0,
            },
            now,
        );
        for victim in &placed.evict {
            if let Err(e) = cache.layout.remove(victim) {
                tracing::warn!(key = %victim, error = %e, "cache: cannot delete an evicted file");
            }
        }
        cache.stats.evictions.add(placed.evict.len() as u64);
        if !placed.kept {
            return Err(FillError::TooLarge { size: disk });
        }
        match cache.layout.place(&slot, temp, started) {
            Ok(true) => {}
            Ok(false) => {
                index.remove(key);
                return Err(FillError::Purged);
            }
            Err(e) => {
                index.remove(key);
                return Err(e.into());
            }
        }
    }
    // In place and indexed already: a failed directory fsync costs durability across a crash
    // (the scan then finds no file or a whole one), not correctness.
    if let Err(e) = slot.sync() {
        tracing::warn!(key, error = %e, "cache: cannot fsync the directory of a filled file");
    }
    Ok(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills together never read faster than the mount's budget.
    #[tokio::test]
    async fn bandwidth_is_shared_and_bounded() {
        let bw = Arc::new(Bandwidth::new(4 << 20));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let bw = bw.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..4 {
                    bw.take(64 << 10).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 16 × 64 KiB = 1 MiB at 4 MiB/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(245), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }
}
