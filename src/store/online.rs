//! `check-config --online`: credentials resolve, every bucket exists in the configured region,
//! and a probe object can be written and deleted under each upload mount's key prefix. Every
//! failure is explained with its fix.

use std::time::{Duration, SystemTime};

use super::aws::{CredentialsError, error_chain, require_credentials};

/// Why `check-config --online` failed; every message ends in a fix.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("{0}")]
    Check(String),
}

/// How long one online check may take before S3 counts as unreachable.
const ONLINE_TIMEOUT: Duration = Duration::from_secs(15);

/// What S3 answered to a request about `bucket` (`what` names the request for the message).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct S3Answer {
    pub status: u16,
    pub code: Option<String>,
    /// `x-amz-bucket-region`, which AWS sends on HeadBucket answers and redirects.
    pub bucket_region: Option<String>,
}

/// Turns a failed (or region-mismatched) answer into a message with its fix. `key_prefix` is
/// set for the write probe.
pub fn explain(
    what: &str,
    bucket: &str,
    key_prefix: Option<&str>,
    ans: &S3Answer,
    configured_region: Option<&str>,
) -> String {
    let region = configured_region.unwrap_or("(unset)");
    if let Some(actual) = ans.bucket_region.as_deref()
        && (ans.status == 301 || Some(actual) != configured_region)
    {
        return format!(
            "{what}: bucket {bucket} is in region {actual}, but s3.region is {region}\n  fix: set s3.region = \"{actual}\" (or AWS_REGION={actual})"
        );
    }
    let code = ans.code.as_deref().unwrap_or("");
    let objects = format!("arn:aws:s3:::{bucket}/{}*", key_prefix.unwrap_or(""));
    match (ans.status, code) {
        // s3s-based stores answer an unknown key id with NotSignedUp.
        (_, "InvalidAccessKeyId" | "NotSignedUp") => format!(
            "{what}: S3 does not know the access key id ({code})\n  fix: check AWS_ACCESS_KEY_ID (or s3.access_key_id) and that the key belongs to this S3 service (s3.endpoint)"
        ),
        (_, "SignatureDoesNotMatch") => format!(
            "{what}: S3 rejected the request signature (SignatureDoesNotMatch): the secret key does not belong to the access key id\n  fix: check AWS_SECRET_ACCESS_KEY (or s3.secret_access_key_file)"
        ),
        (_, "ExpiredToken" | "InvalidToken") => format!(
            "{what}: the session token was refused ({code})\n  fix: refresh the temporary credentials (AWS_SESSION_TOKEN, profile or role)"
        ),
        (301, _) => format!(
            "{what}: bucket {bucket} is in another region than s3.region ({region})\n  fix: set s3.region to the bucket's region"
        ),
        (404, _) | (_, "NoSuchBucket" | "NotFound") => format!(
            "{what}: bucket {bucket} does not exist\n  fix: create it (aws s3 mb s3://{bucket} --region {region}) or correct the mount's bucket"
        ),
        (403, _) if key_prefix.is_some() => format!(
            "{what}: access denied ({})\n  fix: allow these credentials s3:PutObject, s3:GetObject and s3:DeleteObject on {objects}",
            if code.is_empty() { "403" } else { code }
        ),
        (403, _) => format!(
            "{what}: access to bucket {bucket} denied ({})\n  fix: allow these credentials s3:ListBucket on arn:aws:s3:::{bucket} (and s3:GetObject, s3:PutObject, s3:DeleteObject on {objects})",
            if code.is_empty() { "403" } else { code }
        ),
        (status, _) => format!(
            "{what}: S3 answered HTTP {status}{}\n  fix: check s3.endpoint, s3.addressing_style and the bucket's settings",
            if code.is_empty() {
                String::new()
            } else {
                format!(" ({code})")
            }
        ),
    }
}

/// The status, error code and bucket region of a failed SDK call; `None` if no answer came.
fn answer_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<S3Answer>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let aws_sdk_s3::error::SdkError::ServiceError(se) = e else {
        return None;
    };
    let raw = se.raw();
    Some(S3Answer {
        status: raw.status().as_u16(),
        code: se.err().code().map(String::from),
        bucket_region: raw.headers().get("x-amz-bucket-region").map(String::from),
    })
}

fn unreachable(what: &str, detail: &str) -> OnlineError {
    OnlineError::Check(format!(
        "{what}: no answer from S3: {detail}\n  fix: check s3.endpoint (or the region's endpoint) and that this host can reach it"
    ))
}

/// `check-config --online`: credentials resolve; every bucket exists in s3.region; under each
/// upload mount's key_prefix a small object can be written and deleted. `say` gets a line per
/// passed check; the first failure is returned with its fix.
pub async fn check_online(
    settings: &crate::config::Settings,
    mut say: impl FnMut(String),
) -> Result<(), OnlineError> {
    let s3 = &settings.s3;
    require_credentials(s3).await?;
    say("ok: AWS credentials resolve".into());
    let region = s3.region.as_deref();
    let client = super::aws::transfer_client(&settings.s3).await;
    let mut seen = std::collections::HashSet::new();
    for (i, m) in settings.mounts.iter().enumerate() {
        let b = &m.bucket;
        if !seen.insert(b.clone()) {
            continue;
        }
        let what = format!("mount[{i}].bucket = \"{b}\"");
        let head = tokio::time::timeout(ONLINE_TIMEOUT, client.head_bucket().bucket(b).send())
            .await
            .map_err(|_| unreachable(&what, "timed out"))?;
        match head {
            Ok(out) => {
                let ans = S3Answer {
                    status: 200,
                    code: None,
                    bucket_region: out.bucket_region().map(String::from),
                };
                if ans.bucket_region.is_some() && ans.bucket_region.as_deref() != region {
                    return Err(OnlineError::Check(explain(&what, b, None, &ans, region)));
                }
            }
            Err(e) => {
                let Some(mut ans) = answer_of(&e) else {
                    return Err(unreachable(&what, &error_chain(&e)));
                };
                // A HEAD answer has no body, so no error code: ask again with a GET, whose
                // error body says why (unknown key id, bad signature, policy).
                if ans.code.is_none() || ans.status == 403 {
                    let again = tokio::time::timeout(
                        ONLINE_TIMEOUT,
                        client.get_bucket_location().bucket(b).send(),
                    )
                    .await;
                    if let Ok(Err(e2)) = again
                        && let Some(a2) = answer_of(&e2)
                        && a2.code.is_some()
                    {
                        ans.code = a2.code;
                        ans.bucket_region = ans.bucket_region.or(a2.bucket_region);
                    }
                }
                return Err(OnlineError::Check(explain(&what, b, None, &ans, region)));
            }
        }
        say(format!(
            "ok: bucket {b} exists{}",
            region
                .map(|r| format!(" (s3.region {r})"))
                .unwrap_or_default()
        ));
    }
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, m) in settings.mounts.iter().enumerate().filter(|(_, m)| m.upload) {
        let key = crate::paths::object_key(
            &m.key_prefix,
            &format!(".stowaway-check-{}-{nonce}", std::process::id()),
        );
        let what = format!("mount[{i}] write probe s3://{}/{key}", m.bucket);
        let body = aws_sdk_s3::primitives::ByteStream::from_static(
            b"stowaway check-config --online probe; safe to delete\n",
        );
        let put = client
            .put_object()
            .bucket(&m.bucket)
            .key(&key)
            .body(body)
            .send();
        match tokio::time::timeout(ONLINE_TIMEOUT, put).await {
            Err(_) => return Err(unreachable(&what, "timed out")),
            Ok(Err(e)) => {
                return Err(match answer_of(&e) {
                    Some(ans) => OnlineError::Check(explain(
                        &what,
                        &m.bucket,
                        Some(&m.key_prefix),
                        &ans,
                        region,
                    )),
                    None => unreachable(&what, &error_chain(&e)),
                });
            }
            Ok(Ok(_)) => {}
        }
        let del = client.delete_object().bucket(&m.bucket).key(&key).send();
        match tokio::time::timeout(ONLINE_TIMEOUT, del).await {
            Err(_) => return Err(unreachable(&what, "timed out deleting the probe")),
            Ok(Err(e)) => {
                return Err(match answer_of(&e) {
                    Some(ans) => OnlineError::Check(format!(
                        "{} (the probe object was written but not deleted; remove it by hand)",
                        explain(&what, &m.bucket, Some(&m.key_prefix), &ans, region)
                    )),
                    None => unreachable(&what, &error_chain(&e)),
                });
            }
            Ok(Ok(_)) => {}
        }
        say(format!(
            "ok: wrote and deleted a probe under s3://{}/{}",
            m.bucket, m.key_prefix
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(status: u16, code: Option<&str>, region: Option<&str>) -> S3Answer {
        S3Answer {
            status,
            code: code.map(String::from),
            bucket_region: region.map(String::from),
        }
    }

    #[test]
    fn online_failures_name_their_fix() {
        let r = Some("eu-west-1");
        let e = |a: &S3Answer, p: Option<&str>| explain("w", "b", p, a, r);
        let m = e(&ans(301, None, Some("us-east-2")), None);
        assert!(
            m.contains("us-east-2") && m.contains("fix: set s3.region = \"us-east-2\""),
            "{m}"
        );
        // A 200 from another region (path-style endpoints answer anyway) is a mismatch too.
        let m = e(&ans(200, None, Some("us-east-2")), None);
        assert!(m.contains("fix: set s3.region"), "{m}");
        let m = e(&ans(404, None, None), None);
        assert!(
            m.contains("does not exist") && m.contains("aws s3 mb s3://b"),
            "{m}"
        );
        let m = e(&ans(403, Some("InvalidAccessKeyId"), None), None);
        assert!(m.contains("fix: check AWS_ACCESS_KEY_ID"), "{m}");
        let m = e(&ans(403, Some("NotSignedUp"), None), None);
        assert!(m.contains("fix: check AWS_ACCESS_KEY_ID"), "{m}");
        let m = e(&ans(403, Some("SignatureDoesNotMatch"), None), None);
        assert!(m.contains("fix: check AWS_SECRET_ACCESS_KEY"), "{m}");
        let m = e(&ans(403, Some("AccessDenied"), None), None);
        assert!(m.contains("s3:ListBucket on arn:aws:s3:::b"), "{m}");
        let m = e(&ans(403, Some("AccessDenied"), None), Some("site/"));
        assert!(
            m.contains("s3:PutObject") && m.contains("arn:aws:s3:::b/site/*"),
            "{m}"
        );
        let m = e(&ans(500, Some("InternalError"), None), None);
        assert!(
            m.contains("HTTP 500 (InternalError)") && m.contains("fix:"),
            "{m}"
        );
    }
}
