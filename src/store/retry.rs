//! Which failures are worth retrying, and the backoff between retries.
//!
//! * transient (connection refused or reset, timeouts, 5xx, throttling): retried with
//!   exponential backoff and jitter (`backon`), then the file waits for the next rescan;
//! * permanent for the file (access denied to this key, a local read error): logged once, the
//!   file stays local and is tried again at the next rescan in case someone fixed it;
//! * permanent for the whole mount (no such bucket, unknown key id, wrong secret): every other
//!   file of the mount would fail the same way, so the mount pauses until the next rescan.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use backon::ExponentialBuilder;

use super::stop::Stop;
use crate::config::UploaderSettings;

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry now with backoff; later at the next rescan.
    Transient,
    /// This file cannot be uploaded right now; do not retry until the next rescan.
    Permanent,
    /// Nothing in this mount can be uploaded (bucket or credentials); pause the mount.
    MountWide,
}

/// A classified S3 request failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct S3Failure {
    pub class: Class,
    /// HTTP status, if a response came back.
    pub status: Option<u16>,
    /// S3 error code (`NoSuchBucket`, `SlowDown`…), if the response had a body.
    pub code: Option<String>,
    /// One line for the log, with a fix where we know one.
    pub message: String,
}

/// What kind of SDK failure it was, before looking at codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The request could not even be built (a bug or bad input): never retried.
    Construction,
    /// Connect/read timeout.
    Timeout,
    /// Connection refused/reset, DNS, TLS…
    Dispatch,
    /// The server answered something we could not parse.
    BadResponse,
    /// The server answered with an error status.
    Service,
}

/// Error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "PriorRequestNotComplete",
    "RequestTimeTooSkewed",
    "IDPCommunicationError",
    "EC2ThrottledException",
];

/// Error codes that no file in the mount can get past.
const MOUNT_WIDE_CODES: &[&str] = &[
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NotSignedUp",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidBucketName",
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
];

/// Classifies by transport kind, HTTP status and S3 error code.
pub fn classify_parts(transport: Transport, status: Option<u16>, code: Option<&str>) -> Class {
    match transport {
        Transport::Construction => return Class::Permanent,
        Transport::Timeout | Transport::Dispatch | Transport::BadResponse => {
            return Class::Transient;
        }
        Transport::Service => {}
    }
    if let Some(c) = code {
        // The store lacks the operation (a 501 that repeating will not change).
        if c == "NotImplemented" {
            return Class::Permanent;
        }
        if TRANSIENT_CODES.contains(&c) {
            return Class::Transient;
        }
        if MOUNT_WIDE_CODES.contains(&c) {
            return Class::MountWide;
        }
    }
    match status {
        Some(408 | 429) => Class::Transient,
        Some(501) => Class::Permanent,
        Some(s) if s >= 500 => Class::Transient,
        // Missing bucket on a request without a body to tell us (HEAD) is handled by the
        // caller; any other 4xx will not get better by repeating it now.
        _ => Class::Permanent,
    }
}

/// A fix to suggest for a well-known code.
pub fn advice(code: &str) -> Option<&'static str> {
    Some(match code {
        "NoSuchBucket" => "the bucket does not exist: create it or fix the mount's `bucket`",
        "InvalidAccessKeyId" | "NotSignedUp" => {
            "the access key id is unknown to S3: check AWS_ACCESS_KEY_ID / s3.access_key_id"
        }
        "SignatureDoesNotMatch" => {
            "the secret access key is wrong: check AWS_SECRET_ACCESS_KEY / s3.secret_access_key"
        }
        "InvalidToken" | "ExpiredToken" | "TokenRefreshRequired" => {
            "the session token is invalid or expired: refresh the credentials"
        }
        "AccessDenied" => {
            "the credentials may not write this key: grant s3:PutObject, s3:GetObject (HeadObject) and the multipart actions on the bucket"
        }
        "PermanentRedirect" | "AuthorizationHeaderMalformed" => {
            "the bucket lives in another region: fix s3.region"
        }
        "InvalidBucketName" => "the bucket name is invalid: fix the mount's `bucket`",
        "AllAccessDisabled" | "AccountProblem" => {
            "the AWS account cannot use S3: contact the account owner"
        }
        _ => return None,
    })
}

/// Classifies an SDK error from operation `op` on `bucket/key`.
pub fn classify<E>(op: &str, bucket: &str, key: &str, e: &SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (transport, status, code) = match e {
        SdkError::ConstructionFailure(_) => (Transport::Construction, None, None),
        SdkError::TimeoutError(_) => (Transport::Timeout, None, None),
        SdkError::DispatchFailure(d) => (
            if d.is_user() {
                Transport::Construction
            } else {
                Transport::Dispatch
            },
            None,
            None,
        ),
        SdkError::ResponseError(r) => (
            Transport::BadResponse,
            Some(r.raw().status().as_u16()),
            None,
        ),
        SdkError::ServiceError(s) => (
            Transport::Service,
            Some(s.raw().status().as_u16()),
            s.err().code().map(str::to_string),
        ),
        _ => (Transport::Dispatch, None, None),
    };
    let class = classify_parts(transport, status, code.as_deref());
    let what = match (&code, status) {
        (Some(c), Some(s)) => format!("{c} (HTTP {s})"),
        (None, Some(s)) => format!("HTTP {s}"),
        _ => match transport {
            Transport::Timeout => "timeout".to_string(),
            // The source chain on one line, without the Debug dumps DisplayErrorContext adds.
            _ => super::aws::error_chain(e),
        },
    };
    let mut message = format!("S3 {op} s3://{bucket}/{key} failed: {what}");
    if let Some(fix) = code.as_deref().and_then(advice) {
        message.push_str(" — ");
        message.push_str(fix);
    }
    S3Failure {
        class,
        status,
        code,
        message,
    }
}

/// The backoff between attempts of one request: exponential from `retry_min_delay` to
/// `retry_max_delay`, jittered (each sleep lands in [d, 2d)), `max_attempts` attempts in all.
pub fn policy(u: &UploaderSettings) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(u.retry_min_delay)
        .with_max_delay(u.retry_max_delay.max(u.retry_min_delay))
        .with_factor(2.0)
        .with_max_times(u.max_attempts.saturating_sub(1))
        .with_jitter()
}

/// Errors that say whether repeating the request might help.
pub trait Retryable {
    /// True for failures worth retrying now.
    fn is_transient(&self) -> bool;
}

impl Retryable for S3Failure {
    fn is_transient(&self) -> bool {
        self.class == Class::Transient
    }
}

/// Told of every retry, so its user can count them (the uploader's `Stats`; a cache's own
/// counters later) without the store knowing who it works for.
pub trait RetryObserver: Send + Sync + std::fmt::Debug {
    /// A request failed transiently and is tried again.
    fn retried(&self);
}

/// Runs requests with the configured backoff and reports the retries.
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: ExponentialBuilder,
    observer: Arc<dyn RetryObserver>,
    stop: Arc<Stop>,
}

impl Retrier {
    /// A retrier for the uploader settings; `stop` cuts back-off short on shutdown.
    pub fn new(u: &UploaderSettings, observer: Arc<dyn RetryObserver>, stop: Arc<Stop>) -> Self {
        Retrier {
            policy: policy(u),
            observer,
            stop,
        }
    }

    /// The shutdown flags.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Runs `f` until it succeeds, fails permanently, or the attempts are used up.
    pub async fn run<T, E, F, Fut>(&self, what: &str, f: F) -> Result<T, E>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        use backon::Retryable as _;
        let stop = self.stop.clone();
        f.retry(self.policy)
            // An abort on shutdown wakes a back-off sleep at once, and no retry follows.
            .sleep(move |d| {
                let stop = stop.clone();
                async move {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = stop.aborted() => {}
                    }
                }
            })
            .when(|e: &E| e.is_transient() && !self.stop.is_aborting())
            .notify(|e: &E, d: Duration| {
                self.observer.retried();
                tracing::warn!(error = %e, retry_in = %humantime::format_duration(d), "{what}: transient failure, retrying");
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify_parts(Dispatch, None, None),
            Class::Transient,
            "connection refused"
        );
        assert_eq!(classify_parts(Timeout, None, None), Class::Transient);
        assert_eq!(
            classify_parts(BadResponse, Some(200), None),
            Class::Transient
        );
        assert_eq!(classify_parts(Construction, None, None), Class::Permanent);
        assert_eq!(
            classify_parts(Service, Some(503), Some("SlowDown")),
            Class::Transient
        );
        assert_eq!(classify_parts(Service, Some(500), None), Class::Transient);
        assert_eq!(
            classify_parts(Service, Some(501), Some("NotImplemented")),
            Class::Permanent,
            "a store without the operation"
        );
        assert_eq!(classify_parts(Service, Some(501), None), Class::Permanent);
        assert_eq!(classify_parts(Service, Some(429), None), Class::Transient);
        assert_eq!(
            classify_parts(Service, Some(400), Some("RequestTimeout")),
            Class::Transient
        );
        assert_eq!(
            classify_parts(Service, Some(404), Some("NoSuchBucket")),
            Class::MountWide
        );
        assert_eq!(
            classify_parts(Service, Some(403), Some("SignatureDoesNotMatch")),
            Class::MountWide
        );
        assert_eq!(
            classify_parts(Service, Some(403), Some("InvalidAccessKeyId")),
            Class::MountWide
        );
        assert_eq!(
            classify_parts(Service, Some(403), Some("AccessDenied")),
            Class::Permanent
        );
        assert_eq!(
            classify_parts(Service, Some(400), Some("BadDigest")),
            Class::Permanent
        );
        assert_eq!(classify_parts(Service, Some(403), None), Class::Permanent);
    }

    #[test]
    fn advice_for_common_mistakes() {
        assert!(advice("NoSuchBucket").unwrap().contains("bucket"));
        assert!(advice("SignatureDoesNotMatch").unwrap().contains("secret"));
        assert_eq!(advice("SlowDown"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let u = crate::config::UploaderSettings {
            enabled: true,
            settle: Duration::from_secs(1),
            rename_is_ready: false,
            rescan_interval: Duration::from_secs(60),
            concurrency: 1,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            max_attempts: 4,
            retry_min_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_millis(250),
            cache_control: None,
            abandoned_upload_age: Duration::ZERO,
        };
        let sleeps: Vec<Duration> = backon::BackoffBuilder::build(policy(&u)).collect();
        assert_eq!(sleeps.len(), 3, "4 attempts = 3 sleeps");
        for (s, base) in sleeps.iter().zip([100u64, 200, 250]) {
            let base = Duration::from_millis(base);
            assert!(*s >= base && *s < base * 2, "{s:?} not in [{base:?}, 2×)");
        }
    }
}
