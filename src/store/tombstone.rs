//! Deletes and tombstones, for `stowaway rm` and the tombstone refresher.
//!
//! A tombstone is an empty object at `<key_prefix>.stowaway-tombstones/<key>` in the mount's
//! own bucket. In the bucket, so every node and every restart sees the same set; under the
//! mount's key prefix, so a policy that scopes the uploader to `bucket/key_prefix*` covers it;
//! a name beginning with `.stowaway-`, which the uploader never uploads and the decision never
//! serves. Its life is counted from its `LastModified` (what ListObjectsV2 returns with each
//! key, so one paginated listing loads every tombstone without a request per key); the
//! `x-amz-meta-stowaway-expires` it carries is for humans and lifecycle rules.

use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::retry::{Retrier, S3Failure, classify};

/// The folder, below a mount's key prefix, that holds its tombstones.
pub const TOMBSTONE_DIR: &str = ".stowaway-tombstones/";

/// Metadata key of a tombstone's expiry (Unix seconds).
pub const META_EXPIRES: &str = "stowaway-expires";

/// The object key of the tombstone of mount-relative `key`.
pub fn tombstone_key(key_prefix: &str, key: &str) -> String {
    let mut s = String::with_capacity(key_prefix.len() + TOMBSTONE_DIR.len() + key.len());
    s.push_str(key_prefix);
    s.push_str(TOMBSTONE_DIR);
    s.push_str(key);
    s
}

/// One tombstone found in the bucket.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The mount-relative key it stands for.
    pub key: String,
    /// When it was (last) written.
    pub written: SystemTime,
}

/// Whether a delete removed something.
#[derive(Debug, Clone, Copy)]
pub enum Deleted {
    Removed,
    /// Nothing was there (a repeated `rm`).
    Absent,
}

pub(super) async fn delete(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
) -> Result<Deleted, S3Failure> {
    // S3 answers a delete of a missing key with 204 too: ask first, to report honestly.
    match super::verify::head(client, retrier, bucket, key).await? {
        super::verify::Head::Missing => return Ok(Deleted::Absent),
        super::verify::Head::Present(_) | super::verify::Head::Forbidden => {}
    }
    retrier
        .run("DeleteObject", || async {
            match client.delete_object().bucket(bucket).key(key).send().await {
                Ok(_) => Ok(Deleted::Removed),
                Err(e) => {
                    let f = classify("DeleteObject", bucket, key, &e);
                    match (f.status, f.code.as_deref()) {
                        (Some(404), _) => Ok(Deleted::Absent),
                        _ => Err(f),
                    }
                }
            }
        })
        .await
}

pub(super) async fn put(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
    expires: u64,
) -> Result<(), S3Failure> {
    retrier
        .run("PutObject", || async {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .metadata(META_EXPIRES, expires.to_string())
                .content_type("application/octet-stream")
                .body(ByteStream::from_static(b""))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("PutObject", bucket, key, &e))
        })
        .await
}

/// When the tombstone at `key` was written; `None` when there is none.
pub(super) async fn written(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
) -> Result<Option<SystemTime>, S3Failure> {
    retrier
        .run("HeadObject", || async {
            match client.head_object().bucket(bucket).key(key).send().await {
                Ok(o) => Ok(Some(
                    o.last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                )),
                Err(e) => {
                    if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                        return Ok(None);
                    }
                    let f = classify("HeadObject", bucket, key, &e);
                    match f.status {
                        Some(404) => Ok(None),
                        _ => Err(f),
                    }
                }
            }
        })
        .await
}

/// Every tombstone under `key_prefix`, at most `limit` of them (the rest is reported by the
/// caller as not loaded).
pub(super) async fn list(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key_prefix: &str,
    limit: usize,
) -> Result<(Vec<Listed>, bool), S3Failure> {
    let prefix = tombstone_key(key_prefix, "");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = retrier
            .run("ListObjectsV2", || async {
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify("ListObjectsV2", bucket, &prefix, &e))
            })
            .await?;
        for o in page.contents() {
            let (Some(k), Some(t)) = (o.key(), o.last_modified()) else {
                continue;
            };
            let Some(rel) = k.strip_prefix(&prefix) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            if out.len() >= limit {
                return Ok((out, true));
            }
            let written = SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(Listed {
                key: rel.to_string(),
                written,
            });
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok((out, false)),
        }
    }
}

/// Most ListObjectVersions pages read for one key (1000 versions each): a store that keeps
/// answering "truncated" cannot loop forever.
const MAX_VERSION_PAGES: usize = 10_000;

/// Every version id (delete markers included) of exactly `key`, listed page by page.
async fn versions_of(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
) -> Result<Vec<Option<String>>, S3Failure> {
    let mut out = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    for _ in 0..MAX_VERSION_PAGES {
        let page = retrier
            .run("ListObjectVersions", || async {
                client
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(key)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(id_marker.clone())
                    .send()
                    .await
                    .map_err(|e| classify("ListObjectVersions", bucket, key, &e))
            })
            .await?;
        // The prefix also matches longer keys (`a.jpg` → `a.jpg.bak`): only this one counts.
        let ids = page
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| v.version_id().map(str::to_string));
        let markers = page
            .delete_markers()
            .iter()
            .filter(|d| d.key() == Some(key))
            .map(|d| d.version_id().map(str::to_string));
        out.extend(ids.chain(markers));
        let next = (page.next_key_marker(), page.next_version_id_marker());
        match (page.is_truncated() == Some(true), next) {
            (true, (Some(k), v)) if k <= key => {
                key_marker = Some(k.to_string());
                id_marker = v.map(str::to_string);
            }
            _ => break,
        }
    }
    Ok(out)
}

async fn delete_version(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(), S3Failure> {
    retrier
        .run("DeleteObject", || async {
            match client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version.map(str::to_string))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => {
                    let f = classify("DeleteObject", bucket, key, &e);
                    match f.status {
                        // Gone already: another `rm` got there first.
                        Some(404) => Ok(()),
                        _ => Err(f),
                    }
                }
            }
        })
        .await
}

impl super::ObjectStore {
    /// Deletes every version and delete marker of `bucket/key` (ListObjectVersions, paginated,
    /// then DeleteObject with each VersionId); how many there were. Nothing is left of the key,
    /// not even a delete marker.
    pub async fn delete_all_versions(&self, bucket: &str, key: &str) -> Result<usize, S3Failure> {
        let versions = versions_of(&self.client, &self.retrier, bucket, key).await?;
        for v in &versions {
            delete_version(&self.client, &self.retrier, bucket, key, v.as_deref()).await?;
        }
        Ok(versions.len())
    }

    /// Deletes the tombstone of mount-relative `key` if it was written no later than
    /// `written` (a tombstone renewed by a later `rm` since it was listed stays); whether it
    /// was deleted.
    pub async fn delete_tombstone_if_unchanged(
        &self,
        bucket: &str,
        key_prefix: &str,
        key: &str,
        written: SystemTime,
    ) -> Result<bool, S3Failure> {
        let k = tombstone_key(key_prefix, key);
        match self::written(&self.client, &self.retrier, bucket, &k).await? {
            Some(w) if w <= written => {
                delete_version(&self.client, &self.retrier, bucket, &k, None).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_mount_prefix() {
        assert_eq!(
            tombstone_key("static/", "a/b.jpg"),
            "static/.stowaway-tombstones/a/b.jpg"
        );
        assert_eq!(tombstone_key("", "x"), ".stowaway-tombstones/x");
        assert!(TOMBSTONE_DIR.starts_with(crate::ignore::OWN_PREFIX));
    }
}
