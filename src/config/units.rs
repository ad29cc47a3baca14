//! Human durations and sizes: `"30s"`, `"1h 30m"`, `"7d"` (a bare number is seconds) and
//! `"64MiB"`, `"8 MB"`, `"1048576"`.
//!
//! The raw schema holds [`HumanDuration`] / [`HumanSize`], parsed while the file is read. A
//! value that does not parse is kept with its error instead of failing deserialisation: serde
//! does not know the key's full name (`mount[2].expires`) nor the fix, and the `config` crate
//! would report it as a load error without the value. Validation raises it with the key
//! ([`HumanDuration::get`]), in the same words as every other invalid value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{ConfigError, invalid};

const DURATION_FIX: &str = "write a number with a unit, e.g. \"30s\", \"5m\", \"1h\"";
const SIZE_FIX: &str = "write a number with a unit, e.g. \"64MiB\", \"8MB\"";

/// A duration as written, and what it parsed to.
#[derive(Clone, PartialEq, Eq)]
pub struct HumanDuration {
    text: String,
    parsed: Result<Duration, String>,
}

impl HumanDuration {
    /// Parses `text`; a bad value is reported later, by [`HumanDuration::get`].
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let t = text.trim();
        let parsed = match t.parse::<u64>() {
            Ok(n) => Ok(Duration::from_secs(n)),
            Err(_) => humantime::parse_duration(t).map_err(|e| e.to_string()),
        };
        HumanDuration { text, parsed }
    }

    /// The value as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The duration, or the error naming `key`.
    pub fn get(&self, key: &str) -> Result<Duration, ConfigError> {
        self.parsed.clone().map_err(|e| {
            invalid(
                key,
                &self.text,
                format!("not a duration ({e})"),
                DURATION_FIX,
            )
        })
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl From<&str> for HumanDuration {
    fn from(s: &str) -> Self {
        HumanDuration::new(s)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through `String`: the `config` crate turns environment values and bare TOML numbers
        // into strings on request, so `settle = 30` keeps meaning 30 seconds.
        String::deserialize(d).map(HumanDuration::new)
    }
}

/// A size in bytes as written, and what it parsed to.
#[derive(Clone, PartialEq, Eq)]
pub struct HumanSize {
    text: String,
    parsed: Result<u64, String>,
}

impl HumanSize {
    /// Parses `text`; a bad value is reported later, by [`HumanSize::get`].
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let parsed = text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|e| e.to_string());
        HumanSize { text, parsed }
    }

    /// The value as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The size, or the error naming `key`.
    pub fn get(&self, key: &str) -> Result<u64, ConfigError> {
        self.parsed
            .clone()
            .map_err(|e| invalid(key, &self.text, format!("not a size ({e})"), SIZE_FIX))
    }
}

impl fmt::Debug for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl From<&str> for HumanSize {
    fn from(s: &str) -> Self {
        HumanSize::new(s)
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(HumanSize::new)
    }
}

/// Parses `"30s"`, `"5m"`, `"1h 30m"`, `"7d"`; a bare number is seconds.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    HumanDuration::new(s).get(key)
}

/// Parses `"64MiB"`, `"8 MB"`, `"1048576"`.
pub fn parse_size(key: &str, s: &str) -> Result<u64, ConfigError> {
    HumanSize::new(s).get(key)
}

/// The duration at `key`, or `default` when the key is absent.
pub(super) fn duration_or(
    key: &str,
    v: &Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    v.as_ref().map_or(Ok(default), |d| d.get(key))
}

/// The size at `key`, or `default` when the key is absent.
pub(super) fn size_or(key: &str, v: &Option<HumanSize>, default: u64) -> Result<u64, ConfigError> {
    v.as_ref().map_or(Ok(default), |s| s.get(key))
}

/// `#[serde(with)]` for sizes: exact, and readable back by [`parse_size`] ("64MiB", "1000B").
pub(super) mod human_size {
    pub fn serialize<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        let units = [
            (1u64 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        let text = units
            .iter()
            .find(|(u, _)| *n > 0 && n.is_multiple_of(*u))
            .map_or_else(|| format!("{n}B"), |(u, name)| format!("{}{name}", n / u));
        s.serialize_str(&text)
    }
}

/// `#[serde(with)]` for durations: humantime's form ("1m 30s"), readable back.
pub(super) mod human_duration {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn durations() {
        for (text, secs) in [("30s", 30), ("5m", 300), ("1h 30m", 5400), ("7d", 604800)] {
            assert_eq!(
                parse_duration("k", text).unwrap(),
                Duration::from_secs(secs)
            );
        }
        assert_eq!(
            parse_duration("k", " 45 ").unwrap(),
            Duration::from_secs(45)
        );
        assert_eq!(
            parse_duration("k", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["", "soon", "5 parsecs", "-1s"] {
            let e = parse_duration("uploader.settle", bad).unwrap_err();
            assert!(e.to_string().contains("not a duration"), "{e}");
            assert_eq!(key_of(e), "uploader.settle", "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("k", "64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("k", "8 MB").unwrap(), 8_000_000);
        assert_eq!(parse_size("k", "1048576").unwrap(), 1 << 20);
        for bad in ["", "lots", "5 parsecs"] {
            let e = parse_size("uploader.part_size", bad).unwrap_err();
            assert!(e.to_string().contains("not a size"), "{e}");
            assert_eq!(key_of(e), "uploader.part_size", "{bad:?}");
        }
    }

    /// Parsed while read; a bad value surfaces only when validation asks, with the key.
    #[test]
    fn parsed_at_deserialisation_reported_at_validation() {
        #[derive(Deserialize)]
        struct T {
            d: HumanDuration,
            s: HumanSize,
        }
        let t: T = toml::from_str("d = \"1m 30s\"\ns = \"96MiB\"").unwrap();
        assert_eq!(t.d.get("x").unwrap(), Duration::from_secs(90));
        assert_eq!(t.s.get("x").unwrap(), 96 << 20);
        assert_eq!((t.d.text(), t.s.text()), ("1m 30s", "96MiB"));
        let t: T = toml::from_str("d = \"later\"\ns = \"big\"").unwrap();
        assert_eq!(
            key_of(t.d.get("mount[3].expires").unwrap_err()),
            "mount[3].expires"
        );
        assert_eq!(
            key_of(t.s.get("uploader.part_size").unwrap_err()),
            "uploader.part_size"
        );
        assert!(toml::from_str::<T>("d = [1]\ns = \"1B\"").is_err());
        assert_eq!(
            duration_or("k", &None, Duration::from_secs(7))
                .unwrap()
                .as_secs(),
            7
        );
        assert_eq!(size_or("k", &None, 9).unwrap(), 9);
    }

    #[test]
    fn rendered_units_read_back() {
        #[derive(serde::Serialize)]
        struct R {
            #[serde(with = "human_size")]
            s: u64,
            #[serde(with = "human_duration")]
            d: Duration,
        }
        for (s, d) in [
            (96u64 << 20, 90u64),
            (1000, 1),
            (1 << 40, 86400 * 8),
            (0, 0),
        ] {
            let v = serde_json::to_value(R {
                s,
                d: Duration::from_secs(d),
            })
            .unwrap();
            assert_eq!(parse_size("k", v["s"].as_str().unwrap()).unwrap(), s);
            assert_eq!(
                parse_duration("k", v["d"].as_str().unwrap()).unwrap(),
                Duration::from_secs(d)
            );
        }
    }
}
