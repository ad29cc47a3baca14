//! [`Settings`] back to TOML for `print-config`: every key with its effective value, in the
//! order of the file schema, secrets redacted, in a form `check-config --strict` accepts again
//! (the `[[access]]` summary aside: it shows what `[mount.access]` resolved to).

use super::types::Settings;

impl Settings {
    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        to_toml(self)
    }
}

/// The effective configuration as TOML, secrets redacted; see [`Settings::to_toml`].
pub fn to_toml(s: &Settings) -> String {
    // Every field is a string, number, bool, list or table, so this cannot fail; should a
    // later type break that, print-config says so instead of printing half a file.
    let text =
        toml::to_string(s).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"));
    with_caches(s, text)
}

/// Each `[mount.cache]` back inside its `[[mount]]` (the settings keep them apart, by mount
/// index, so the mounts' own type stays as it is): after the mount's last key, before the next
/// table header. A mount's own keys hold no table, so its block ends at the next `[` line.
fn with_caches(s: &Settings, text: String) -> String {
    if s.caches.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 512 * s.caches.len());
    let mut mount: Option<usize> = None;
    let mut seen = 0;
    let flush = |out: &mut String, mount: Option<usize>| {
        let Some(i) = mount else { return };
        if let Some(c) = s.caches.iter().find(|c| c.mount == i)
            && let Ok(t) = toml::to_string(c)
        {
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str("[mount.cache]\n");
            out.push_str(&t);
            out.push('\n');
        }
    };
    for line in text.split_inclusive('\n') {
        if line.starts_with('[') {
            flush(&mut out, mount.take());
            if line.trim_end() == "[[mount]]" {
                mount = Some(seen);
                seen += 1;
            }
        }
        out.push_str(line);
    }
    flush(&mut out, mount);
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::validate::testing::Cfg;
    use super::super::{FsChecks, RawConfig, validate_with};
    use super::*;

    /// render → read → validate gives the same settings, and the same text again.
    #[track_caller]
    fn round_trip(s: &Settings) -> String {
        let text = to_toml(s);
        let raw: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let again = validate_with(&raw, FsChecks::Skip).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(format!("{s:#?}"), format!("{again:#?}"), "{text}");
        assert_eq!(text, to_toml(&again));
        text
    }

    #[test]
    fn defaults_round_trip() {
        let text = round_trip(&Cfg::default().accepted());
        assert!(
            text.starts_with("[server]\nlisten = \"127.0.0.1:8700\"\n"),
            "{text}"
        );
        for line in [
            "internal_prefix = \"/_stowaway_local/\"",
            "verdict_ttl = \"5s\"",
            "url_cache_entries = 10000",
            "multipart_threshold = \"64MiB\"",
            "retry_min_delay = \"500ms\"",
            "[[mount]]",
            "url = \"presigned\"",
            "ignore = [\".*\", \"*.tmp\", \"*.part\"]",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
    }

    #[test]
    fn every_key_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("front");
        std::fs::write(&f, "0123456789abcdef0123456789abcdef").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tcp = Cfg {
            server: "listen = \"127.0.0.1:9000\"\nworkers = 3\nfront = \"lighttpd\"\nfallback_header = false\nverdict_ttl = \"0s\"\nmetrics_listen = \"127.0.0.1:9001\"\nshutdown_timeout = \"1h 1m 1s\"\ns3_probe_interval = \"0s\"\nurl_cache_entries = 0\ntombstone_refresh = \"0s\"\ntrusted_proxies = [\"10.0.0.0/24\", \"2001:db8::/32\"]".into(),
            log: "format = \"json\"\nlevel = \"info,stowaway::uploader=debug\"".into(),
            s3: "region = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:9/base\"\naddressing_style = \"virtual\"".into(),
            uploader: "enabled = true\nsettle = \"1m 30s\"\nrename_is_ready = true\nrescan_interval = \"1d\"\nconcurrency = 16\nmultipart_threshold = \"5368709121B\"\npart_size = \"5GiB\"\nmax_attempts = 1\nretry_min_delay = \"1ms\"\nretry_max_delay = \"2m\"\ncache_control = \"public, max-age=\\\"60\\\"\"\nabandoned_upload_age = \"2h\"".into(),
            mounts: vec![
                "prefix = \"/static/\"\nroot = \"/srv/site/static\"\nbucket = \"media\"\nkey_prefix = \"s/\"\nexpires = \"6d\"\nwindow = \"0s\"\nredirect_max_age = \"1s\"\nresponse_content_disposition = 'attachment; filename=\"a b.jpg\"'\nresponse_content_type = \"image/png\"\nresponse_cache_control = \"no-store\"\nfinalize = \"archive\"\narchive_root = \"/srv/archive/static\"\nfinalize_grace = \"10m\"\narchive_retention = \"30days\"\nignore = []\nserve_ignored = true\nserve_archive_when_s3_down = false\ntombstone_ttl = \"1day 12h\"\ntombstone_status = 410".into(),
                "prefix = \"/pub/\"\nroot = \"/srv/site/pub\"\nbucket = \"media\"\nkey_prefix = \"p/\"\nurl = \"public\"\npublic_base_url = \"https://cdn.example.com/x\"\nupload = false\nfinalize = \"delete\"\nignore = [\"*.tmp\", \"~*\"]\n[mount.cache]\ndir = \"/var/cache/stowaway/pub\"\nmax_size = \"10GiB\"\nmax_files = 5000\nmin_hits = 3\nwindow = \"30m\"\nmax_object_size = \"5MiB\"\nhigh_watermark = \"95%\"\nlow_watermark = \"80%\"\nrevalidate = \"10m\"\ncheck_interval = \"10s\"\nfill_concurrency = 4\nfill_bandwidth = \"10MiB\"".into(),
            ],
        };
        round_trip(&tcp.accepted());
        let unix = Cfg {
            server: format!(
                "listen = \"unix:/run/stowaway/s.sock\"\nsocket_mode = \"0600\"\nsocket_group = \"www-data\"\nfront_secret_file = \"{}\"\nadmin_listen = \"127.0.0.1:9002\"\nadmin_token_file = \"{}\"",
                f.display(),
                f.display()
            ),
            ..Cfg::default()
        };
        let text = round_trip(&unix.accepted());
        assert!(text.contains("socket_mode = \"0600\"\n"), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Cfg {
            s3: "region = \"eu-west-1\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"s3-SECRET-value\"".into(),
            mounts: vec![format!(
                "{}\n[mount.access]\n[[mount.access.keys]]\nid = \"k1\"\nsecret = \"link-SECRET-0123456789abcdef-0123456789\"",
                super::super::validate::testing::MOUNT
            )],
            ..Cfg::default()
        }
        .accepted();
        let text = to_toml(&s);
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(text.matches("\"<redacted>\"").count(), 2, "{text}");
        assert!(text.contains("[[access]]\nmount = 0\nprefix = \"/static/\"\nsign_with = \"k1\"\nmax_link_ttl = \"7days\"\n"), "{text}");
    }
}
