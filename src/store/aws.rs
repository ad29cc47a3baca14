//! The AWS side: SDK configuration (region, endpoint, addressing style, credentials chain),
//! the two S3 clients (probes, transfers), and the background task that keeps the signer's
//! credentials fresh.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::retry::RetryConfig;

use crate::config::{AddressingStyle, S3Settings, Secret};
use crate::url::{Signer, SigningCredentials};

/// Why AWS credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no AWS credentials provider is configured")]
    NoProvider,
    #[error(
        "cannot load AWS credentials: {0}\n  fix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile, a web identity or an instance role; or s3.access_key_id and s3.secret_access_key(_file) in the config"
    )]
    Provider(String),
}

/// Builds the shared SDK configuration from our settings and the standard AWS chain.
pub async fn sdk_config(s3: &S3Settings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build(),
    );
    if let Some(region) = &s3.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(ep) = &s3.endpoint {
        loader = loader.endpoint_url(ep);
    }
    if let (Some(ak), Some(sk)) = (&s3.access_key_id, &s3.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            ak.clone(),
            sk.expose().to_string(),
            None,
            None,
            "stowaway-config",
        ));
    }
    loader.load().await
}

fn client_builder(sdk: &aws_config::SdkConfig, s3: &S3Settings) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(s3.addressing_style == AddressingStyle::Path)
}

/// The client for probes (the readiness HeadBucket): the SDK's own retries and defaults, with
/// our addressing style.
pub fn probe_client(sdk: &aws_config::SdkConfig, s3: &S3Settings) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(client_builder(sdk, s3).build())
}

/// The client for transfers ([`ObjectStore`](super::ObjectStore)). The SDK's own retries are
/// off so that the configured `backon` policy is the only one (attempts would multiply
/// otherwise), and the SDK adds no checksums of its own: we send SHA-256 for single PUTs and
/// Content-MD5 for parts ourselves, so no part checksum is left for CompleteMultipartUpload to
/// demand.
pub async fn transfer_client(s3: &S3Settings) -> aws_sdk_s3::Client {
    let sdk = sdk_config(s3).await;
    let conf = client_builder(&sdk, s3)
        .retry_config(RetryConfig::disabled())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Asks the provider chain for credentials once.
pub async fn fetch_credentials(
    provider: &SharedCredentialsProvider,
) -> Result<SigningCredentials, CredentialsError> {
    let c = provider
        .provide_credentials()
        .await
        .map_err(|e| CredentialsError::Provider(error_chain(&e)))?;
    Ok(SigningCredentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: Secret::new(c.secret_access_key()),
        session_token: c.session_token().map(Secret::new),
        expires_at: c.expiry(),
    })
}

/// Loads credentials into `signer` now, failing if none can be had.
pub async fn init_signer(
    sdk: &aws_config::SdkConfig,
    signer: &Signer,
) -> Result<SharedCredentialsProvider, CredentialsError> {
    let provider = sdk
        .credentials_provider()
        .ok_or(CredentialsError::NoProvider)?;
    let creds = fetch_credentials(&provider).await?;
    signer.set_credentials(creds);
    Ok(provider)
}

/// Resolves credentials once through the whole chain: commands that would otherwise fail on
/// every file (`migrate`) stop here with one message instead.
pub async fn require_credentials(s3: &S3Settings) -> Result<(), CredentialsError> {
    let sdk = sdk_config(s3).await;
    let provider = sdk
        .credentials_provider()
        .ok_or(CredentialsError::NoProvider)?;
    fetch_credentials(&provider).await.map(|_| ())
}

/// How long to wait before the next refresh, given when the current credentials expire.
pub fn refresh_delay(now: SystemTime, expires_at: Option<SystemTime>) -> Duration {
    const MAX: Duration = Duration::from_secs(300);
    const MIN: Duration = Duration::from_secs(5);
    match expires_at.and_then(|e| e.duration_since(now).ok()) {
        Some(left) => (left / 2).clamp(MIN, MAX),
        None if expires_at.is_some() => MIN,
        None => MAX,
    }
}

/// Keeps refreshing the signer's credentials before they expire. Failures are logged (and
/// shown by `/readyz` once the old credentials run out); the old credentials stay in use
/// while they are valid.
pub fn spawn_refresher(
    signer: Arc<Signer>,
    provider: SharedCredentialsProvider,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let delay = refresh_delay(SystemTime::now(), signer.credentials_expiry());
            tokio::time::sleep(delay).await;
            match fetch_credentials(&provider).await {
                Ok(c) => {
                    tracing::debug!(expires_at = ?c.expires_at, "AWS credentials refreshed");
                    signer.set_credentials(c);
                }
                Err(e) => {
                    tracing::error!(error = %e, "AWS credentials refresh failed; presigned redirects stop when the current credentials expire")
                }
            }
        }
    })
}

/// Renders an error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_delays() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(refresh_delay(now, None), Duration::from_secs(300));
        assert_eq!(
            refresh_delay(now, Some(now + Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_delay(now, Some(now + Duration::from_secs(100))),
            Duration::from_secs(50)
        );
        assert_eq!(
            refresh_delay(now, Some(now - Duration::from_secs(1))),
            Duration::from_secs(5)
        );
    }
}
