//! Incomplete multipart uploads: listing them a page at a time (ListMultipartUploads, so
//! memory stays bounded however many there are), aborting one, and the set of uploads this
//! process has open right now (which nothing may abort from outside: see [`OpenUploads`]).
//! Used by the uploader's clean-up of crash leftovers and by the lifecycle commands.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use aws_sdk_s3::Client;

use super::retry::{Class, Retrier, S3Failure, classify};

/// One incomplete multipart upload, as ListMultipartUploads reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// When S3 says it was started (server clock); `None` if the store did not say.
    pub initiated: Option<SystemTime>,
}

/// Uploads started by this process and not yet completed or aborted. Registered as soon as
/// CreateMultipartUpload answers; the clean-up of abandoned uploads skips them whatever
/// their age (a 50 GiB file on a slow link may take longer than any bound).
#[derive(Debug, Clone, Default)]
pub struct OpenUploads(Arc<Mutex<HashSet<String>>>);

impl OpenUploads {
    /// Whether `upload_id` is one of ours, still running.
    pub fn contains(&self, upload_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(upload_id)
    }

    /// Registers `upload_id` until the returned guard is dropped.
    pub(crate) fn open(&self, upload_id: &str) -> OpenGuard {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(upload_id.to_string());
        OpenGuard {
            set: self.clone(),
            upload_id: upload_id.to_string(),
        }
    }
}

/// Keeps an upload registered in [`OpenUploads`] while it lives.
pub(crate) struct OpenGuard {
    set: OpenUploads,
    upload_id: String,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.upload_id);
    }
}

/// The incomplete multipart uploads under a key prefix, one page (at most 1000, S3's limit)
/// at a time. Holds only the markers between pages.
#[derive(Debug)]
pub struct UploadPages {
    client: Client,
    retrier: Retrier,
    bucket: String,
    prefix: String,
    /// Markers for the next page; `None` before the first.
    next: Option<(String, String)>,
    done: bool,
}

impl UploadPages {
    pub(super) fn new(client: Client, retrier: Retrier, bucket: &str, prefix: &str) -> Self {
        UploadPages {
            client,
            retrier,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            next: None,
            done: false,
        }
    }

    /// The next page, `Ok(None)` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<PendingUpload>>, S3Failure> {
        if self.done {
            return Ok(None);
        }
        let (bucket, prefix) = (self.bucket.as_str(), self.prefix.as_str());
        let (key_marker, id_marker) = match &self.next {
            Some((k, u)) => (Some(k.clone()), Some(u.clone())),
            None => (None, None),
        };
        let out = self
            .retrier
            .run("ListMultipartUploads", || async {
                self.client
                    .list_multipart_uploads()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker.clone())
                    .set_upload_id_marker(id_marker.clone())
                    .send()
                    .await
                    .map_err(|e| classify("ListMultipartUploads", bucket, prefix, &e))
            })
            .await?;
        let page = out
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(PendingUpload {
                    key: u.key()?.to_string(),
                    upload_id: u.upload_id()?.to_string(),
                    initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                })
            })
            .collect();
        let markers = match (out.next_key_marker(), out.next_upload_id_marker()) {
            (Some(k), Some(u)) if !k.is_empty() => Some((k.to_string(), u.to_string())),
            _ => None,
        };
        match (out.is_truncated().unwrap_or(false), markers) {
            // A truncated answer without new markers would list the same page forever.
            (true, Some(m)) if self.next.as_ref() != Some(&m) => self.next = Some(m),
            (true, _) => {
                self.done = true;
                return Err(S3Failure {
                    class: Class::Permanent,
                    status: None,
                    code: None,
                    message: format!(
                        "S3 ListMultipartUploads s3://{bucket}/{prefix}: a truncated answer without new markers; stopped listing"
                    ),
                });
            }
            (false, _) => self.done = true,
        }
        Ok(Some(page))
    }
}

/// Aborts `upload_id` of `bucket/key`. An upload that is already gone (NoSuchUpload) counts
/// as aborted: someone else finished the job.
pub(super) async fn abort(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), S3Failure> {
    let r = retrier
        .run("AbortMultipartUpload", || async {
            client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| classify("AbortMultipartUpload", bucket, key, &e))
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(f) if f.code.as_deref() == Some("NoSuchUpload") => Ok(()),
        Err(f) => Err(f),
    }
}

/// Whether a ListMultipartUploads failure means "this store cannot list them at all" (an S3
/// implementation without the operation), rather than "not now".
pub fn listing_unsupported(f: &S3Failure) -> bool {
    f.code.as_deref() == Some("NotImplemented") || matches!(f.status, Some(501))
}
