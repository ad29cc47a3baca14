//! `[uploader]`: settling, scanning, concurrency, multipart sizes and retries.

use std::time::Duration;

use super::super::types::UploaderSettings;
use super::super::units::{duration_or, size_or};
use super::super::{ConfigError, RawUploader, invalid};

/// Validates `[uploader]`.
pub fn validate(u: &RawUploader) -> Result<UploaderSettings, ConfigError> {
    let uploader = UploaderSettings {
        enabled: u.enabled.unwrap_or(true),
        settle: duration_or("uploader.settle", &u.settle, Duration::from_secs(5))?,
        rename_is_ready: u.rename_is_ready.unwrap_or(false),
        rescan_interval: duration_or(
            "uploader.rescan_interval",
            &u.rescan_interval,
            Duration::from_secs(600),
        )?,
        concurrency: u.concurrency.unwrap_or(4),
        multipart_threshold: size_or(
            "uploader.multipart_threshold",
            &u.multipart_threshold,
            64 << 20,
        )?,
        part_size: size_or("uploader.part_size", &u.part_size, 16 << 20)?,
        max_attempts: u.max_attempts.unwrap_or(5),
        retry_min_delay: duration_or(
            "uploader.retry_min_delay",
            &u.retry_min_delay,
            Duration::from_millis(500),
        )?,
        retry_max_delay: duration_or(
            "uploader.retry_max_delay",
            &u.retry_max_delay,
            Duration::from_secs(30),
        )?,
        cache_control: u
            .cache_control
            .as_deref()
            .map(|v| super::header_value_ok("uploader.cache_control", v))
            .transpose()?,
    };
    if uploader.concurrency == 0 || uploader.concurrency > 256 {
        return Err(invalid(
            "uploader.concurrency",
            uploader.concurrency,
            "must be between 1 and 256",
            "use e.g. 4",
        ));
    }
    if uploader.max_attempts == 0 {
        return Err(invalid(
            "uploader.max_attempts",
            0,
            "must be at least 1",
            "use e.g. 5",
        ));
    }
    if uploader.part_size < (5 << 20) || uploader.part_size > (5 << 30) {
        return Err(invalid(
            "uploader.part_size",
            uploader.part_size,
            "S3 parts must be 5 MiB to 5 GiB",
            "use e.g. \"16MiB\"",
        ));
    }
    if uploader.multipart_threshold < uploader.part_size {
        return Err(invalid(
            "uploader.multipart_threshold",
            uploader.multipart_threshold,
            "smaller than uploader.part_size",
            "make the threshold at least the part size",
        ));
    }
    if uploader.rescan_interval < Duration::from_secs(1) {
        return Err(invalid(
            "uploader.rescan_interval",
            "<1s",
            "too short",
            "use at least \"1s\" (minutes in production)",
        ));
    }
    Ok(uploader)
}
