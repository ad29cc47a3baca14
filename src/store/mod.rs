//! The object store: everything stowaway does with S3 itself, for the uploader today and for
//! the hot-object cache and lifecycle commands next. Callers hold an [`ObjectStore`] (the
//! client plus the retry policy) and never an SDK client of their own.
//!
//! * [`aws`]: SDK configuration, the probe and transfer clients, credentials and their refresh;
//! * [`retry`]: transient or permanent, and the backoff;
//! * [`stop`]: drain and abort flags that cut retries and multipart uploads short;
//! * [`hash`]: SHA-256 and the ETag S3 will report, in one read;
//! * [`upload`]: single PUT or multipart, streamed from disk;
//! * [`multipart`]: incomplete multipart uploads: list (paged), abort, ours in flight;
//! * [`verify`]: HeadObject against the local digests, and the [`Verified`] proof;
//! * [`online`]: `check-config --online`;
//! * [`tombstone`]: deletes and the tombstones `stowaway rm` leaves;
//! * [`list`]: the objects under a prefix, paged in key order (reconcile, storage classes);
//! * [`restore`]: archived storage classes: their restore state, and RestoreObject.

pub mod aws;
pub mod hash;
pub mod list;
pub mod multipart;
pub mod online;
pub mod restore;
pub mod retry;
pub mod stop;
pub mod tombstone;
pub mod upload;
pub mod verify;

use std::fs::File;
use std::path::Path;

use aws_sdk_s3::Client;

pub use aws::error_chain;
use hash::Digests;
use multipart::{OpenUploads, UploadPages};
use retry::{Retrier, S3Failure};
use stop::Stop;
use upload::{Target, UploadError};
use verify::{Head, Verified, VerifyError};

use crate::config::S3Settings;

/// S3 with our retry policy. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: Client,
    retrier: Retrier,
    /// Multipart uploads this process has running (shared by the clones).
    open: OpenUploads,
}

impl ObjectStore {
    /// A store over `client` whose requests are retried by `retrier`.
    pub fn new(client: Client, retrier: Retrier) -> Self {
        ObjectStore {
            client,
            retrier,
            open: OpenUploads::default(),
        }
    }

    /// A store over the transfer client for `s3` (SDK retries off: `retrier` is the only one).
    pub async fn connect(s3: &S3Settings, retrier: Retrier) -> Self {
        ObjectStore::new(aws::transfer_client(s3).await, retrier)
    }

    /// The shutdown flags the retries and multipart uploads obey.
    pub fn stop(&self) -> &Stop {
        self.retrier.stop()
    }

    /// What HeadObject says about `bucket/key`.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Head, S3Failure> {
        verify::head(&self.client, &self.retrier, bucket, key).await
    }

    /// Whether `bucket/key` holds exactly the content hashed to `d`, proven by a checksum or
    /// a recomputable ETag.
    pub async fn verify(
        &self,
        bucket: &str,
        key: &str,
        d: &Digests,
    ) -> Result<Verified, VerifyError> {
        let head = self.head(bucket, key).await?;
        verify::verdict(head, bucket, key, d)
    }

    /// Uploads the open `file` (named `path` in messages, its content hashed to `d`) as `t`.
    pub async fn put(
        &self,
        file: &File,
        path: &Path,
        t: &Target<'_>,
        d: &Digests,
    ) -> Result<(), UploadError> {
        upload::upload(&self.client, &self.retrier, &self.open, file, path, t, d).await
    }

    /// The incomplete multipart uploads of `bucket` under `prefix`, a page at a time.
    pub fn list_multipart_uploads(&self, bucket: &str, prefix: &str) -> UploadPages {
        UploadPages::new(self.client.clone(), self.retrier.clone(), bucket, prefix)
    }

    /// Aborts multipart upload `upload_id` of `bucket/key` (already gone counts as done).
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), S3Failure> {
        multipart::abort(&self.client, &self.retrier, bucket, key, upload_id).await
    }

    /// The objects of `bucket` under `prefix`, a page at a time in key order (`max_keys`:
    /// the page size asked for, S3's 1000 when `None`).
    pub fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        max_keys: Option<i32>,
    ) -> list::ObjectPages {
        list::ObjectPages::new(
            self.client.clone(),
            self.retrier.clone(),
            bucket,
            prefix,
            max_keys,
        )
    }

    /// The storage class and restore state of `bucket/key`.
    pub async fn coldness(&self, bucket: &str, key: &str) -> Result<restore::Coldness, S3Failure> {
        restore::coldness(&self.client, &self.retrier, bucket, key).await
    }

    /// Starts a restore of the archived `bucket/key` (a running one counts as started).
    pub async fn restore(
        &self,
        bucket: &str,
        key: &str,
        days: u32,
        tier: crate::config::RestoreTier,
    ) -> Result<restore::Coldness, S3Failure> {
        restore::restore(&self.client, &self.retrier, bucket, key, days, tier).await
    }

    /// The multipart uploads this process has running, which no clean-up may abort.
    pub fn open_uploads(&self) -> &OpenUploads {
        &self.open
    }

    /// A definite "this bucket does not exist", as a mount-wide failure; `None` when it exists
    /// or we cannot tell.
    pub async fn bucket_missing(&self, bucket: &str) -> Option<S3Failure> {
        verify::bucket_missing(&self.client, &self.retrier, bucket).await
    }

    /// Deletes `bucket/key`; `Absent` when nothing was there.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<tombstone::Deleted, S3Failure> {
        tombstone::delete(&self.client, &self.retrier, bucket, key).await
    }

    /// Writes (or renews) the tombstone of mount-relative `key`, expiring at `expires` (Unix
    /// seconds, recorded for humans and lifecycle rules).
    pub async fn put_tombstone(
        &self,
        bucket: &str,
        key_prefix: &str,
        key: &str,
        expires: u64,
    ) -> Result<(), S3Failure> {
        let k = tombstone::tombstone_key(key_prefix, key);
        tombstone::put(&self.client, &self.retrier, bucket, &k, expires).await
    }

    /// When the tombstone of mount-relative `key` was written; `None` when there is none.
    pub async fn tombstone_written(
        &self,
        bucket: &str,
        key_prefix: &str,
        key: &str,
    ) -> Result<Option<std::time::SystemTime>, S3Failure> {
        let k = tombstone::tombstone_key(key_prefix, key);
        tombstone::written(&self.client, &self.retrier, bucket, &k).await
    }

    /// The tombstones of the mount at `bucket/key_prefix`, at most `limit`; `true` when more
    /// were left unread.
    pub async fn list_tombstones(
        &self,
        bucket: &str,
        key_prefix: &str,
        limit: usize,
    ) -> Result<(Vec<tombstone::Listed>, bool), S3Failure> {
        tombstone::list(&self.client, &self.retrier, bucket, key_prefix, limit).await
    }
}
