//! `[log]`: output format and filter.

use super::super::types::{LogFormat, LogSettings};
use super::super::{ConfigError, RawLog, invalid};

/// Validates `[log]`.
pub fn validate(l: &RawLog) -> Result<LogSettings, ConfigError> {
    let log = LogSettings {
        format: match l.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    other,
                    "unknown log format",
                    "use \"text\" or \"json\"",
                ));
            }
        },
        level: l.level.clone().unwrap_or_else(|| "info".into()),
    };
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        return Err(invalid(
            "log.level",
            &log.level,
            "not a log filter",
            "use \"error\", \"warn\", \"info\", \"debug\" or a RUST_LOG-style filter",
        ));
    }
    Ok(log)
}
