//! `[mount.cache]`: the hot-object cache of a mount (docs/cache.md). Off unless the section is
//! there; its directory lies apart from every root, archive root and other cache directory,
//! and its fills are bounded so they never starve the uploader.

use std::path::Path;
use std::time::Duration;

use super::super::types::{CacheSettings, Mount};
use super::super::units::{duration_or, size_or};
use super::super::{ConfigError, FsChecks, RawCache, RawMount, invalid};
use super::canonical_dir;
use super::mount::resolved_location;

/// Name prefix of the files stowaway keeps in a cache directory besides cached objects (temp
/// files of fills, the journal, the write probe). Under the `.stowaway-` prefix, which is never
/// served and never a cached key.
pub const CACHE_OWN_PREFIX: &str = ".stowaway-cache";

const DEFAULT_MAX_SIZE: u64 = 1 << 30;
const DEFAULT_MAX_FILES: u64 = 100_000;
const DEFAULT_MAX_OBJECT_SIZE: u64 = 64 << 20;
const DEFAULT_FILL_BANDWIDTH: u64 = 32 << 20;
/// A fill that reads slower than this ties up a fill slot (and an S3 connection) for long.
const MIN_FILL_BANDWIDTH: u64 = 64 << 10;
/// Fills run beside the uploader's transfers on the same link: a handful is plenty.
const MAX_FILL_CONCURRENCY: usize = 16;
const MAX_REVALIDATE: Duration = Duration::from_secs(7 * 86_400);
/// Rounds over the cache's files: default and ceiling of `check_interval`.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The `[mount.cache]` sections that are enabled, checked against every mount.
pub fn validate_all(
    raw: &[RawMount],
    mounts: &[Mount],
    fs: FsChecks,
) -> Result<Vec<CacheSettings>, ConfigError> {
    let mut out: Vec<CacheSettings> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let Some(c) = m.cache.as_ref().filter(|c| c.enabled != Some(false)) else {
            continue;
        };
        let s = validate(i, c, fs)?;
        check_apart(&s, mounts, &out)?;
        out.push(s);
    }
    Ok(out)
}

/// Validates `mount[i].cache` on its own.
pub fn validate(i: usize, c: &RawCache, fs: FsChecks) -> Result<CacheSettings, ConfigError> {
    let k = |f: &str| format!("mount[{i}].cache.{f}");
    let dir_raw = c.dir.as_deref().ok_or_else(|| {
        invalid(
            k("dir"),
            "<unset>",
            "missing",
            "set the directory cached objects are kept in, e.g. \"/var/cache/stowaway/static\"",
        )
    })?;
    let dir = canonical_dir(&k("dir"), dir_raw, "cache directory", fs)?;
    if let FsChecks::Check = fs {
        check_writable(&k("dir"), &dir)?;
    }
    let max_size = size_or(&k("max_size"), &c.max_size, DEFAULT_MAX_SIZE)?;
    if max_size == 0 {
        return Err(invalid(
            k("max_size"),
            "0",
            "a cache of zero bytes holds nothing",
            "use e.g. \"10GiB\", or remove [mount.cache] (or set enabled = false)",
        ));
    }
    let max_files = c.max_files.unwrap_or(DEFAULT_MAX_FILES);
    if max_files == 0 {
        return Err(invalid(
            k("max_files"),
            0,
            "a cache of zero files holds nothing",
            "use e.g. 100000",
        ));
    }
    let min_hits = c.min_hits.unwrap_or(2);
    if !(1..=crate::config::MAX_CACHE_MIN_HITS).contains(&min_hits) {
        return Err(invalid(
            k("min_hits"),
            min_hits,
            "must be between 1 and 14 (the popularity counters count to 15)",
            "use e.g. 2 (1 fills on the first request)",
        ));
    }
    let window = duration_or(&k("window"), &c.window, Duration::from_secs(3600))?;
    if window < Duration::from_secs(1) {
        return Err(invalid(
            k("window"),
            humantime::format_duration(window).to_string(),
            "shorter than a second: no object would ever collect min_hits",
            "use e.g. \"1h\"",
        ));
    }
    let max_object_size = size_or(
        &k("max_object_size"),
        &c.max_object_size,
        DEFAULT_MAX_OBJECT_SIZE.min(max_size),
    )?;
    if max_object_size == 0 || max_object_size > max_size {
        return Err(invalid(
            k("max_object_size"),
            max_object_size,
            "must be more than zero and at most max_size",
            "use e.g. \"64MiB\" (and a max_size at least as large)",
        ));
    }
    let high = watermark(&k("high_watermark"), c.high_watermark.as_deref(), 90)?;
    let low = watermark(&k("low_watermark"), c.low_watermark.as_deref(), 75)?;
    if low >= high {
        return Err(invalid(
            k("low_watermark"),
            format!("{low}%"),
            format!(
                "must be below high_watermark ({high}%): eviction stops at low and starts above high"
            ),
            "use e.g. high_watermark = \"90%\", low_watermark = \"75%\"",
        ));
    }
    let revalidate = duration_or(&k("revalidate"), &c.revalidate, Duration::from_secs(3600))?;
    if revalidate < Duration::from_secs(1) || revalidate > MAX_REVALIDATE {
        return Err(invalid(
            k("revalidate"),
            humantime::format_duration(revalidate).to_string(),
            "must be between 1s and 7d",
            "use e.g. \"1h\": entries are checked against S3 (HEAD, ETag) at most this often",
        ));
    }
    let check_interval = duration_or(
        &k("check_interval"),
        &c.check_interval,
        DEFAULT_CHECK_INTERVAL,
    )?;
    if !(Duration::from_secs(1)..=MAX_CHECK_INTERVAL).contains(&check_interval) {
        return Err(invalid(
            k("check_interval"),
            humantime::format_duration(check_interval).to_string(),
            "must be between 1s and 1h",
            "use e.g. \"10s\": each round stats every cached file (about 4 µs per file) to count the front server's own reads",
        ));
    }
    let fill_concurrency = c.fill_concurrency.unwrap_or(2);
    if !(1..=MAX_FILL_CONCURRENCY).contains(&fill_concurrency) {
        return Err(invalid(
            k("fill_concurrency"),
            fill_concurrency,
            format!(
                "must be between 1 and {MAX_FILL_CONCURRENCY} (fills share the link with the uploader)"
            ),
            "use e.g. 2",
        ));
    }
    let fill_bandwidth = size_or(
        &k("fill_bandwidth"),
        &c.fill_bandwidth,
        DEFAULT_FILL_BANDWIDTH,
    )?;
    if fill_bandwidth < MIN_FILL_BANDWIDTH {
        return Err(invalid(
            k("fill_bandwidth"),
            fill_bandwidth,
            "below 64KiB per second: fills would hold their slots for ages",
            "use e.g. \"32MiB\" (bytes per second for all fills of the mount together)",
        ));
    }
    Ok(CacheSettings {
        mount: i,
        dir,
        max_size,
        max_files,
        min_hits,
        window,
        max_object_size,
        high_watermark: high,
        low_watermark: low,
        revalidate,
        check_interval,
        fill_concurrency,
        fill_bandwidth,
    })
}

/// `"90%"` (or a bare `"90"`): 1 to 100 percent.
fn watermark(key: &str, v: Option<&str>, default: u8) -> Result<u8, ConfigError> {
    let Some(text) = v else {
        return Ok(default);
    };
    let n = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
    match n.parse::<u8>() {
        Ok(p @ 1..=100) => Ok(p),
        _ => Err(invalid(
            key,
            text,
            "not a percentage between 1% and 100%",
            "use e.g. \"90%\"",
        )),
    }
}

/// The cache directory shares nothing with a root, an archive root or another cache: the
/// front server serves `<dir>/<key>` as it is, and a scan removes files stowaway did not write.
fn check_apart(
    c: &CacheSettings,
    mounts: &[Mount],
    earlier: &[CacheSettings],
) -> Result<(), ConfigError> {
    let key = format!("mount[{}].cache.dir", c.mount);
    let real = resolved_location(&c.dir);
    let others = mounts
        .iter()
        .flat_map(|m| {
            let name = m.prefix.as_str();
            std::iter::once((format!("mount {name:?} root"), m.root.as_path())).chain(
                m.archive_root
                    .as_deref()
                    .map(|a| (format!("mount {name:?} archive_root"), a)),
            )
        })
        .chain(earlier.iter().map(|e| {
            (
                format!("mount {:?} cache.dir", mounts[e.mount].prefix.as_str()),
                e.dir.as_path(),
            )
        }));
    for (what, p) in others {
        let other = resolved_location(p);
        let relation = if other == real {
            "is the same directory as"
        } else if real.starts_with(&other) {
            "is inside"
        } else if other.starts_with(&real) {
            "contains"
        } else {
            continue;
        };
        return Err(invalid(
            key,
            &c.dir,
            format!(
                "{} {relation} {what} {}: cached objects and other files would mix (the start-up scan removes files the cache did not write)",
                c.dir.display(),
                p.display()
            ),
            "give the cache a directory of its own outside every root and archive, e.g. /var/cache/stowaway/static",
        ));
    }
    Ok(())
}

/// Whether files can be created in `dir`, by trying (permission bits do not tell for root or a
/// read-only mount). The probe carries the cache's own prefix, so a leftover is cleaned up.
fn check_writable(key: &str, dir: &Path) -> Result<(), ConfigError> {
    let probe = dir.join(format!(
        "{CACHE_OWN_PREFIX}-tmp.{}.check",
        std::process::id()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(invalid(
            key,
            dir,
            format!("stowaway cannot create files in it ({e})"),
            "make it writable for the user stowaway runs as (and not a read-only mount)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Cfg, MOUNT, mount};
    use super::*;

    fn cache(lines: &str) -> Cfg {
        mount(&format!(
            "[mount.cache]\ndir = \"/var/cache/stowaway/static\"\n{lines}"
        ))
    }

    #[test]
    fn off_by_default_and_defaults_when_on() {
        assert!(mount("").accepted().caches.is_empty());
        assert!(cache("enabled = false").accepted().caches.is_empty());
        let s = cache("").accepted();
        let c = &s.caches[0];
        assert_eq!(c.mount, 0);
        assert_eq!(c.max_size, 1 << 30);
        assert_eq!((c.high_watermark, c.low_watermark), (90, 75));
        assert_eq!(c.min_hits, 2);
        assert_eq!(c.max_object_size, 64 << 20);
    }

    #[test]
    fn dir_is_required_and_absolute() {
        let e = mount("[mount.cache]\nmax_size = \"1GiB\"").refused("mount[0].cache.dir");
        assert!(e.contains("missing"), "{e}");
        mount("[mount.cache]\ndir = \"cache\"").refused("mount[0].cache.dir");
        let d = tempfile::tempdir().unwrap();
        on_disk(d.path(), &d.path().join("missing"))
            .refused_with(FsChecks::Check, "mount[0].cache.dir");
        std::fs::create_dir(d.path().join("cache")).unwrap();
        let s = on_disk(d.path(), &d.path().join("cache"))
            .check(FsChecks::Check)
            .unwrap();
        assert_eq!(
            s.caches[0].dir,
            d.path().join("cache").canonicalize().unwrap()
        );
        let left: Vec<_> = std::fs::read_dir(d.path().join("cache")).unwrap().collect();
        assert!(left.is_empty(), "the write probe is removed: {left:?}");
    }

    /// A mount whose root exists under `d`, cached in `dir`.
    fn on_disk(d: &Path, dir: &Path) -> Cfg {
        let root = d.join("root");
        std::fs::create_dir_all(&root).unwrap();
        Cfg {
            mounts: vec![format!(
                "prefix = \"/s/\"\nroot = \"{}\"\nbucket = \"media\"\n[mount.cache]\ndir = \"{}\"",
                root.display(),
                dir.display()
            )],
            ..Cfg::default()
        }
    }

    #[test]
    fn dir_is_apart_from_roots_archives_and_other_caches() {
        for bad in [
            "/srv/site/static",
            "/srv/site/static/cache",
            "/srv/site",
            "/srv/archive/static/c",
        ] {
            let e = mount(&format!(
                "archive_root = \"/srv/archive/static\"\n[mount.cache]\ndir = \"{bad}\""
            ))
            .refused("mount[0].cache.dir");
            assert!(e.contains("outside every root"), "{e}");
        }
        // Another mount's root counts too, and so does another mount's cache.
        let two = |dir: &str| Cfg {
            mounts: vec![
                format!("{MOUNT}\n[mount.cache]\ndir = \"/var/cache/s\""),
                format!(
                    "prefix = \"/o/\"\nroot = \"/srv/other\"\nbucket = \"other\"\n[mount.cache]\ndir = \"{dir}\""
                ),
            ],
            ..Cfg::default()
        };
        two("/var/cache/o").accepted();
        two("/var/cache/s").refused("mount[1].cache.dir");
        two("/srv/site/static/x").refused("mount[1].cache.dir");
    }

    #[test]
    fn dir_must_be_writable() {
        let d = tempfile::tempdir().unwrap();
        let e = on_disk(d.path(), Path::new("/proc"))
            .refused_with(FsChecks::Check, "mount[0].cache.dir");
        assert!(e.contains("cannot create files"), "{e}");
    }

    #[test]
    fn sizes_are_human_and_positive() {
        let s = cache("max_size = \"10GiB\"\nmax_object_size = \"5MiB\"").accepted();
        assert_eq!(s.caches[0].max_size, 10 << 30);
        assert_eq!(s.caches[0].max_object_size, 5 << 20);
        cache("max_size = \"0B\"").refused("mount[0].cache.max_size");
        cache("max_size = \"lots\"").refused("mount[0].cache.max_size");
        // The default object limit shrinks to a small cache.
        let s = cache("max_size = \"1MiB\"").accepted();
        assert_eq!(s.caches[0].max_object_size, 1 << 20);
    }

    #[test]
    fn max_files_is_positive() {
        cache("max_files = 1").accepted();
        cache("max_files = 0").refused("mount[0].cache.max_files");
    }

    #[test]
    fn min_hits_is_1_to_14() {
        cache("min_hits = 1").accepted();
        cache("min_hits = 14").accepted();
        cache("min_hits = 0").refused("mount[0].cache.min_hits");
        cache("min_hits = 15").refused("mount[0].cache.min_hits");
    }

    #[test]
    fn window_is_at_least_a_second() {
        assert_eq!(
            cache("window = \"10m\"").accepted().caches[0].window,
            Duration::from_secs(600)
        );
        cache("window = \"100ms\"").refused("mount[0].cache.window");
        cache("window = \"soon\"").refused("mount[0].cache.window");
    }

    #[test]
    fn max_object_size_fits_the_cache() {
        cache("max_size = \"1GiB\"\nmax_object_size = \"1GiB\"").accepted();
        cache("max_size = \"1GiB\"\nmax_object_size = \"2GiB\"")
            .refused("mount[0].cache.max_object_size");
        cache("max_object_size = \"0B\"").refused("mount[0].cache.max_object_size");
    }

    #[test]
    fn watermarks_are_percentages_low_below_high() {
        let s = cache("high_watermark = \"95%\"\nlow_watermark = \"50\"").accepted();
        assert_eq!(
            (s.caches[0].high_watermark, s.caches[0].low_watermark),
            (95, 50)
        );
        for bad in ["0%", "101%", "ninety", "-5%"] {
            cache(&format!("high_watermark = \"{bad}\"")).refused("mount[0].cache.high_watermark");
        }
        cache("low_watermark = \"0%\"").refused("mount[0].cache.low_watermark");
        let e = cache("high_watermark = \"80%\"\nlow_watermark = \"80%\"")
            .refused("mount[0].cache.low_watermark");
        assert!(e.contains("below high_watermark"), "{e}");
    }

    #[test]
    fn revalidate_is_1s_to_7d() {
        cache("revalidate = \"1s\"").accepted();
        cache("revalidate = \"7d\"").accepted();
        cache("revalidate = \"0s\"").refused("mount[0].cache.revalidate");
        cache("revalidate = \"8d\"").refused("mount[0].cache.revalidate");
    }

    #[test]
    fn check_interval_is_1s_to_1h() {
        let s = cache("").accepted();
        assert_eq!(s.caches[0].check_interval, Duration::from_secs(10));
        cache("check_interval = \"1s\"").accepted();
        cache("check_interval = \"1h\"").accepted();
        for bad in ["0s", "500ms", "2h"] {
            let e = cache(&format!("check_interval = \"{bad}\""))
                .refused("mount[0].cache.check_interval");
            assert!(e.contains("between 1s and 1h"), "{e}");
        }
    }

    #[test]
    fn fills_are_bounded() {
        cache("fill_concurrency = 16\nfill_bandwidth = \"64KiB\"").accepted();
        cache("fill_concurrency = 0").refused("mount[0].cache.fill_concurrency");
        cache("fill_concurrency = 17").refused("mount[0].cache.fill_concurrency");
        cache("fill_bandwidth = \"63KiB\"").refused("mount[0].cache.fill_bandwidth");
    }

    #[test]
    fn unknown_cache_keys_are_suggested() {
        assert_eq!(
            super::super::super::suggest_key("mount.0.cache.max_sise"),
            Some("max_size")
        );
        // As serde_ignored reports it: the Option's inside is `?`.
        assert_eq!(
            super::super::super::suggest_key("mount.0.cache.?.min_hit"),
            Some("min_hits")
        );
    }
}
