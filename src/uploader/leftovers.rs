//! Crash leftovers in the bucket: multipart uploads a `kill -9` (or a power cut, or an abort
//! that could not reach S3) left incomplete. Invisible, but billed until aborted.
//!
//! Which uploads are ours: ListMultipartUploads reports only key, upload id and start time
//! (an upload's metadata is not visible before it completes), so ownership is by key: an upload
//! mount's `key_prefix` belongs to stowaway — it is where the uploader writes, and mounts on
//! one bucket may not nest their prefixes — and every upload listed under it was started by a
//! stowaway process. One still running in *this* process is never touched whatever its age
//! (the store's [`OpenUploads`](crate::store::multipart::OpenUploads)); one running in another
//! process (a second node, a `migrate` beside `serve`) is protected by the age bound,
//! `uploader.abandoned_upload_age`, which must exceed the longest upload. Should the bound be
//! too short for one, that upload fails with NoSuchUpload and its file, still local, is
//! uploaded again later: nothing is lost.
//!
//! A store that cannot list multipart uploads (s3s-fs answers NotImplemented; a policy may
//! deny `s3:ListBucketMultipartUploads`) is named once, with the bucket lifecycle rule that
//! does the same job, and not asked again.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use super::Stats;
use crate::config::Settings;
use crate::store::ObjectStore;
use crate::store::multipart::{OpenUploads, PendingUpload, listing_unsupported};
use crate::store::retry::Class;

/// One sweep at a time, and no sweep at all once the store said it cannot list.
#[derive(Debug, Default)]
pub struct Sweeper {
    running: AtomicBool,
    given_up: AtomicBool,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub listed: u64,
    pub aborted: u64,
    pub failed: u64,
}

/// Whether `u` is abandoned: older than `bound` by the server's clock, and not running here.
/// An upload without a start time is left alone (its age is unknown).
pub fn abandoned(u: &PendingUpload, now: SystemTime, bound: Duration, open: &OpenUploads) -> bool {
    if bound.is_zero() || open.contains(&u.upload_id) {
        return false;
    }
    match u.initiated {
        // A start in the future (clock skew) is young.
        Some(t) => now.duration_since(t).is_ok_and(|age| age > bound),
        None => false,
    }
}

/// Releases [`Sweeper::running`] however the sweep ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

impl Sweeper {
    /// Lists the incomplete multipart uploads under every upload mount's key prefix and
    /// aborts the abandoned ones. Returns `None` when it did not run (off, given up, or
    /// another sweep is still running).
    pub async fn sweep(
        &self,
        settings: &Settings,
        store: &ObjectStore,
        stats: &Stats,
    ) -> Option<Swept> {
        let bound = settings.uploader.abandoned_upload_age;
        if bound.is_zero() || self.given_up.load(Relaxed) || self.running.swap(true, Relaxed) {
            return None;
        }
        let _running = Running(&self.running);
        let mut swept = Swept::default();
        for m in settings.mounts.iter().filter(|m| m.upload) {
            let (bucket, prefix) = (m.bucket.as_str(), m.key_prefix.as_str());
            let mut pages = store.list_multipart_uploads(bucket, prefix);
            loop {
                let page = match pages.next_page().await {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(f)
                        if listing_unsupported(&f) || f.code.as_deref() == Some("AccessDenied") =>
                    {
                        self.given_up.store(true, Relaxed);
                        let why = if listing_unsupported(&f) {
                            "this S3 store does not implement ListMultipartUploads"
                        } else {
                            "the credentials may not list multipart uploads (grant s3:ListBucketMultipartUploads and s3:AbortMultipartUpload)"
                        };
                        tracing::warn!(
                            bucket,
                            error = %f.message,
                            "{why}, so stowaway cannot clean up multipart uploads a crash left incomplete (they are billed until aborted): give the bucket a lifecycle rule AbortIncompleteMultipartUpload with DaysAfterInitiation (e.g. 1), as the README shows under \"Crash leftovers in the bucket\""
                        );
                        return Some(swept);
                    }
                    Err(f) => {
                        match f.class {
                            // The mount is paused and says why already.
                            Class::MountWide => {
                                tracing::debug!(bucket, error = %f.message, "cannot list incomplete multipart uploads")
                            }
                            Class::Transient | Class::Permanent => {
                                tracing::warn!(bucket, error = %f.message, "cannot list incomplete multipart uploads now; trying again at the next rescan")
                            }
                        }
                        swept.failed += 1;
                        break;
                    }
                };
                let now = SystemTime::now();
                for u in page {
                    swept.listed += 1;
                    if !abandoned(&u, now, bound, store.open_uploads()) {
                        continue;
                    }
                    let age = u
                        .initiated
                        .and_then(|t| now.duration_since(t).ok())
                        .map(|a| Duration::from_secs(a.as_secs()))
                        .unwrap_or_default();
                    match store.abort_multipart(bucket, &u.key, &u.upload_id).await {
                        Ok(()) => {
                            swept.aborted += 1;
                            stats.aborted_uploads.fetch_add(1, Relaxed);
                            tracing::info!(bucket, key = %u.key, upload_id = %u.upload_id, age = %humantime::format_duration(age), "aborted an abandoned multipart upload");
                        }
                        Err(f) => {
                            swept.failed += 1;
                            tracing::warn!(bucket, key = %u.key, upload_id = %u.upload_id, error = %f.message, "could not abort an abandoned multipart upload; trying again at the next rescan");
                        }
                    }
                }
            }
        }
        tracing::debug!(
            listed = swept.listed,
            aborted = swept.aborted,
            failed = swept.failed,
            "incomplete multipart uploads checked"
        );
        Some(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, started: Option<SystemTime>) -> PendingUpload {
        PendingUpload {
            key: "static/a.bin".into(),
            upload_id: id.into(),
            initiated: started,
        }
    }

    #[test]
    fn only_old_uploads_not_running_here_are_abandoned() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let open = OpenUploads::default();
        let old = pending("old", Some(now - 2 * hour));
        assert!(abandoned(&old, now, hour, &open));
        assert!(
            !abandoned(&pending("young", Some(now - hour / 2)), now, hour, &open),
            "younger than the bound"
        );
        assert!(
            !abandoned(&pending("future", Some(now + hour)), now, hour, &open),
            "started in the future by our clock"
        );
        assert!(
            !abandoned(&pending("unknown", None), now, hour, &open),
            "no start time"
        );
        assert!(!abandoned(&old, now, Duration::ZERO, &open), "bound 0: off");
    }

    #[test]
    fn an_upload_running_in_this_process_is_never_abandoned() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let open = OpenUploads::default();
        let ours = pending("ours", Some(now - 48 * hour));
        let guard = open.open("ours");
        assert!(!abandoned(&ours, now, hour, &open));
        drop(guard);
        assert!(abandoned(&ours, now, hour, &open), "finished (or crashed)");
    }
}
