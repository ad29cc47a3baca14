//! Objects in an archived storage class (GLACIER, DEEP_ARCHIVE): what HeadObject says about
//! one (its class and the state of its restore, `x-amz-restore`), and starting a restore
//! (RestoreObject). A GET of such an object answers 403 InvalidObjectState until a restored
//! copy exists; see [`crate::storage_class`] for how `serve` uses this.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};

use super::list::is_archived_class;
use super::retry::{Class, Retrier, S3Failure, classify};
use crate::config::RestoreTier;

/// Whether a GET of an object would succeed now, as far as its class goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coldness {
    /// Not (or no longer) in an archived class, or gone: nothing to wait for.
    Readable,
    /// Archived, and a restored copy is readable (`ongoing-request="false"`).
    Restored,
    /// Archived, a restore is running (`ongoing-request="true"`).
    Restoring,
    /// Archived, no restore asked for.
    Archived,
}

/// Reads an `x-amz-restore` value, e.g. `ongoing-request="false", expiry-date="Fri, 21 Dec
/// 2012 00:00:00 GMT"`: `Some(true)` while the restore runs, `Some(false)` once done.
pub fn ongoing(restore: &str) -> Option<bool> {
    let rest = restore.split("ongoing-request=").nth(1)?;
    match rest.trim_start_matches('"').split('"').next()? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The class and restore state of `bucket/key` (HeadObject).
pub(super) async fn coldness(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
) -> Result<Coldness, S3Failure> {
    retrier
        .run("HeadObject", || async {
            match client.head_object().bucket(bucket).key(key).send().await {
                Ok(o) => {
                    let archived = o
                        .storage_class()
                        .is_some_and(|c| is_archived_class(c.as_str()));
                    Ok(match (archived, o.restore().and_then(ongoing)) {
                        (false, _) => Coldness::Readable,
                        (true, Some(false)) => Coldness::Restored,
                        (true, Some(true)) => Coldness::Restoring,
                        (true, None) => Coldness::Archived,
                    })
                }
                Err(e) => {
                    if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                        return Ok(Coldness::Readable);
                    }
                    let f = classify("HeadObject", bucket, key, &e);
                    match f.status {
                        // Gone: the redirect gets S3's own 404, as for any missing object.
                        Some(404) => Ok(Coldness::Readable),
                        _ => Err(f),
                    }
                }
            }
        })
        .await
}

/// Starts a restore of `bucket/key` for `days` at `tier`. A restore already running counts as
/// started; an object no longer archived (ObjectAlreadyInActiveTierError) as readable.
pub(super) async fn restore(
    client: &Client,
    retrier: &Retrier,
    bucket: &str,
    key: &str,
    days: u32,
    tier: RestoreTier,
) -> Result<Coldness, S3Failure> {
    let tier = match tier {
        RestoreTier::Expedited => Tier::Expedited,
        RestoreTier::Standard => Tier::Standard,
        RestoreTier::Bulk => Tier::Bulk,
    };
    let job = GlacierJobParameters::builder()
        .tier(tier)
        .build()
        .map_err(|e| S3Failure {
            class: Class::Permanent,
            status: None,
            code: None,
            message: format!("S3 RestoreObject s3://{bucket}/{key}: {e}"),
        })?;
    let request = RestoreRequest::builder()
        .days(i32::try_from(days).unwrap_or(i32::MAX))
        .glacier_job_parameters(job)
        .build();
    let r = retrier
        .run("RestoreObject", || async {
            client
                .restore_object()
                .bucket(bucket)
                .key(key)
                .restore_request(request.clone())
                .send()
                .await
                .map_err(|e| classify("RestoreObject", bucket, key, &e))
        })
        .await;
    match r {
        Ok(_) => Ok(Coldness::Restoring),
        Err(f) => match f.code.as_deref() {
            Some("RestoreAlreadyInProgress") => Ok(Coldness::Restoring),
            Some("ObjectAlreadyInActiveTierError") => Ok(Coldness::Readable),
            _ => Err(f),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_amz_restore_says_whether_the_restore_runs() {
        assert_eq!(ongoing("ongoing-request=\"true\""), Some(true));
        assert_eq!(
            ongoing("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\""),
            Some(false)
        );
        assert_eq!(ongoing("expiry-date=\"x\""), None);
        assert_eq!(ongoing("ongoing-request=\"maybe\""), None);
    }
}
