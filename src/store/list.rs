//! The objects under a key prefix, a page at a time (ListObjectsV2), so a caller walking
//! millions of keys holds one page (at most 1000 keys) and the continuation token, never the
//! whole listing. Keys come in S3's order — ascending UTF-8 bytes — which a merge-join with a
//! local walk relies on; a store that breaks the order is an error, not a silent mismatch.

use std::time::SystemTime;

use aws_sdk_s3::Client;

use super::retry::{Class, Retrier, S3Failure, classify};

/// One object as ListObjectsV2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: Option<i64>,
    /// Without quotes; `None` when the store did not say (s3s-fs does not).
    pub etag: Option<String>,
    /// `STANDARD`, `GLACIER`, `DEEP_ARCHIVE`…; `None` when the store did not say.
    pub storage_class: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// The objects under a prefix, one page at a time.
#[derive(Debug)]
pub struct ObjectPages {
    client: Client,
    retrier: Retrier,
    bucket: String,
    prefix: String,
    max_keys: Option<i32>,
    token: Option<String>,
    /// The last key returned, to check the order across pages.
    last: Option<String>,
    done: bool,
}

impl ObjectPages {
    pub(super) fn new(
        client: Client,
        retrier: Retrier,
        bucket: &str,
        prefix: &str,
        max_keys: Option<i32>,
    ) -> Self {
        ObjectPages {
            client,
            retrier,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            max_keys,
            token: None,
            last: None,
            done: false,
        }
    }

    fn failure(&mut self, message: String) -> S3Failure {
        self.done = true;
        S3Failure {
            class: Class::Permanent,
            status: None,
            code: None,
            message,
        }
    }

    /// The next page, `Ok(None)` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ListedObject>>, S3Failure> {
        if self.done {
            return Ok(None);
        }
        let (bucket, prefix) = (self.bucket.as_str(), self.prefix.as_str());
        let (token, max_keys) = (self.token.clone(), self.max_keys);
        let out = self
            .retrier
            .run("ListObjectsV2", || async {
                self.client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_max_keys(max_keys)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify("ListObjectsV2", bucket, prefix, &e))
            })
            .await?;
        let mut page = Vec::with_capacity(out.contents().len());
        for o in out.contents() {
            let Some(key) = o.key() else { continue };
            if self.last.as_deref().is_some_and(|l| l >= key) {
                let (b, p, l) = (&self.bucket, &self.prefix, self.last.clone());
                let m = format!(
                    "S3 ListObjectsV2 s3://{b}/{p}: key {key:?} listed after {:?}, not in ascending byte order; stopped listing",
                    l.unwrap_or_default()
                );
                return Err(self.failure(m));
            }
            self.last = Some(key.to_string());
            page.push(ListedObject {
                key: key.to_string(),
                size: o.size(),
                etag: o.e_tag().map(|t| t.trim_matches('"').to_string()),
                storage_class: o.storage_class().map(|c| c.as_str().to_string()),
                last_modified: o
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            });
        }
        match (out.is_truncated(), out.next_continuation_token()) {
            (Some(true), Some(t)) if !t.is_empty() && self.token.as_deref() != Some(t) => {
                self.token = Some(t.to_string());
            }
            // A truncated answer without a new token would list the same page forever.
            (Some(true), _) => {
                let (b, p) = (&self.bucket, &self.prefix);
                let m = format!(
                    "S3 ListObjectsV2 s3://{b}/{p}: a truncated answer without a new continuation token; stopped listing"
                );
                return Err(self.failure(m));
            }
            _ => self.done = true,
        }
        Ok(Some(page))
    }
}

/// Storage classes whose objects cannot be read before a RestoreObject (GET answers 403
/// InvalidObjectState). GLACIER_IR is readable at once; the Intelligent-Tiering archive
/// tiers report `INTELLIGENT_TIERING` here and are not recognised from the listing.
pub fn is_archived_class(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flexible_retrieval_and_deep_archive_need_a_restore() {
        assert!(is_archived_class("GLACIER"));
        assert!(is_archived_class("DEEP_ARCHIVE"));
        for readable in ["STANDARD", "GLACIER_IR", "STANDARD_IA", "ONEZONE_IA", ""] {
            assert!(!is_archived_class(readable), "{readable}");
        }
    }
}
