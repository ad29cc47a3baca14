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
        abandoned_upload_age: duration_or(
            "uploader.abandoned_upload_age",
            &u.abandoned_upload_age,
            Duration::from_secs(24 * 3600),
        )?,
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
    if !uploader.abandoned_upload_age.is_zero() && uploader.abandoned_upload_age < MIN_ABANDONED_AGE
    {
        return Err(invalid(
            "uploader.abandoned_upload_age",
            humantime::format_duration(uploader.abandoned_upload_age).to_string(),
            "too short: S3 tolerates 15 minutes of clock skew, and another node's upload must not look abandoned while it runs",
            "use at least \"30m\" (hours in production), or \"0s\" to never abort",
        ));
    }
    Ok(uploader)
}

/// The shortest `uploader.abandoned_upload_age` other than zero.
const MIN_ABANDONED_AGE: Duration = Duration::from_secs(30 * 60);

#[cfg(test)]
mod tests {
    use super::super::testing::uploader;
    use super::*;

    #[test]
    fn defaults() {
        let u = uploader("").accepted().uploader;
        assert_eq!(
            (u.settle, u.rescan_interval, u.concurrency, u.max_attempts),
            (Duration::from_secs(5), Duration::from_secs(600), 4, 5)
        );
        assert_eq!((u.multipart_threshold, u.part_size), (64 << 20, 16 << 20));
    }

    #[test]
    fn durations_and_sizes_are_parsed() {
        let u = uploader("settle = \"1m 30s\"\nmultipart_threshold = \"96MiB\"").accepted();
        assert_eq!(u.uploader.settle, Duration::from_secs(90));
        assert_eq!(u.uploader.multipart_threshold, 96 << 20);
        for key in [
            "settle",
            "rescan_interval",
            "retry_min_delay",
            "retry_max_delay",
        ] {
            let e = uploader(&format!("{key} = \"whenever\"")).refused(&format!("uploader.{key}"));
            assert!(e.contains("not a duration"), "{e}");
        }
        for key in ["multipart_threshold", "part_size"] {
            let e = uploader(&format!("{key} = \"huge\"")).refused(&format!("uploader.{key}"));
            assert!(e.contains("not a size"), "{e}");
        }
    }

    #[test]
    fn cache_control_is_one_header_line() {
        let u = uploader("cache_control = \"public, max-age=60\"").accepted();
        assert_eq!(
            u.uploader.cache_control.as_deref(),
            Some("public, max-age=60")
        );
        uploader("cache_control = \"\"").refused("uploader.cache_control");
        uploader("cache_control = \"a\\nb\"").refused("uploader.cache_control");
    }

    #[test]
    fn concurrency_is_1_to_256() {
        uploader("concurrency = 1").accepted();
        uploader("concurrency = 256").accepted();
        uploader("concurrency = 0").refused("uploader.concurrency");
        uploader("concurrency = 257").refused("uploader.concurrency");
    }

    #[test]
    fn max_attempts_is_at_least_1() {
        uploader("max_attempts = 1").accepted();
        uploader("max_attempts = 0").refused("uploader.max_attempts");
    }

    #[test]
    fn part_size_is_what_s3_accepts() {
        uploader("part_size = \"5MiB\"").accepted();
        uploader("part_size = \"5GiB\"\nmultipart_threshold = \"5GiB\"").accepted();
        uploader("part_size = \"4MiB\"").refused("uploader.part_size");
        uploader("part_size = \"6GiB\"\nmultipart_threshold = \"6GiB\"")
            .refused("uploader.part_size");
    }

    #[test]
    fn multipart_threshold_is_at_least_the_part_size() {
        uploader("part_size = \"16MiB\"\nmultipart_threshold = \"16MiB\"").accepted();
        uploader("part_size = \"16MiB\"\nmultipart_threshold = \"15MiB\"")
            .refused("uploader.multipart_threshold");
    }

    #[test]
    fn abandoned_upload_age_is_off_or_at_least_30_minutes() {
        let age = |t: &str| uploader(t).accepted().uploader.abandoned_upload_age;
        assert_eq!(age(""), Duration::from_secs(24 * 3600), "default: a day");
        assert_eq!(age("abandoned_upload_age = \"0s\""), Duration::ZERO, "off");
        assert_eq!(
            age("abandoned_upload_age = \"30m\""),
            Duration::from_secs(1800)
        );
        assert_eq!(
            age("abandoned_upload_age = \"1h 30m\""),
            Duration::from_secs(5400)
        );
        let e =
            uploader("abandoned_upload_age = \"29m 59s\"").refused("uploader.abandoned_upload_age");
        assert!(e.contains("clock skew"), "{e}");
        let e = uploader("abandoned_upload_age = \"1 fortnight\"")
            .refused("uploader.abandoned_upload_age");
        assert!(e.contains("not a duration"), "{e}");
    }

    #[test]
    fn rescan_interval_is_at_least_a_second() {
        uploader("rescan_interval = \"1s\"").accepted();
        uploader("rescan_interval = \"999ms\"").refused("uploader.rescan_interval");
    }
}
