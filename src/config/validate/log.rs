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

#[cfg(test)]
mod tests {
    use super::super::testing::log;
    use super::*;

    #[test]
    fn format_is_text_or_json() {
        assert_eq!(log("").accepted().log.format, LogFormat::Text);
        assert_eq!(
            log("format = \"json\"").accepted().log.format,
            LogFormat::Json
        );
        log("format = \"yaml\"").refused("log.format");
    }

    #[test]
    fn level_is_a_log_filter() {
        assert_eq!(log("").accepted().log.level, "info");
        for good in ["warn", "info,stowaway::uploader=debug", "stowaway=trace"] {
            log(&format!("level = \"{good}\"")).accepted();
        }
        for bad in ["info,=x=y", "stowaway=loud"] {
            log(&format!("level = \"{bad}\"")).refused("log.level");
        }
    }
}
