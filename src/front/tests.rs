//! The generators across front servers: what none of them may write, names, parts, buffers.

use std::time::{Duration, SystemTime};

use super::nginx::{MAX_ACCESS_KEY_ID, glob_regex};
use super::*;
use crate::config::{CliOverrides, FrontServer, FsChecks, Settings, load_settings};
use crate::paths::MAX_KEY_BYTES;
use crate::url::{MountUrls, Signer, SigningCredentials};

fn nginx_proxy(s: &Settings, o: &FrontOptions) -> Result<String, FrontConfError> {
    nginx_proxy::render(s, o)
}
fn nginx_auth(s: &Settings, o: &FrontOptions) -> Result<String, FrontConfError> {
    nginx_auth::render(s, o)
}
fn nginx_local(s: &Settings, o: &FrontOptions) -> Result<String, FrontConfError> {
    nginx_local::render(s, o)
}

/// `/static/` plus a signed mount `/private/` (key file in `d`).
fn with_signed_mount(d: &std::path::Path) -> Settings {
    let key = d.join("k");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    settings(
        "/srv/static",
        &format!(
            "[[mount]]\nprefix = \"/private/\"\nroot = \"/srv/private\"\nbucket = \"site-media\"\n\
             key_prefix = \"private/\"\n[mount.access]\nsign_with = \"k1\"\n\
             [[mount.access.keys]]\nid = \"k1\"\nsecret_file = {}\n",
            toml_str(key.to_str().unwrap())
        ),
    )
}
fn lighttpd(s: &Settings, o: &FrontOptions) -> Result<String, FrontConfError> {
    lighttpd::render(s, o)
}
fn lighttpd_magnet(s: &Settings, o: &FrontOptions) -> Result<String, FrontConfError> {
    lighttpd_magnet::render(s, o)
}

/// `s` as a TOML basic string.
fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn settings(root: &str, extra: &str) -> Settings {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.toml");
    std::fs::write(
        &p,
        format!(
            "[uploader]\nenabled = false\n[s3]\nregion = \"us-east-1\"\n\
             [[mount]]\nprefix = \"/static/\"\nroot = {}\nbucket = \"site-media\"\n\
             key_prefix = \"static/\"\nurl = \"presigned\"\n{extra}\n",
            toml_str(root)
        ),
    )
    .unwrap();
    load_settings(Some(&p), &CliOverrides::default(), FsChecks::Skip)
        .unwrap()
        .0
}

/// `s` with server.front = "lighttpd".
fn for_lighttpd(s: Settings) -> Settings {
    Settings {
        server: crate::config::ServerSettings {
            front: FrontServer::Lighttpd,
            ..s.server.clone()
        },
        ..s
    }
}

fn opts() -> FrontOptions {
    FrontOptions::new("80", Some("www.example.com".into()))
}

#[test]
fn roots_nginx_cannot_carry_are_refused_by_every_generator() {
    for bad in [
        "/srv/a$uri",
        "/srv/a;b",
        "/srv/a{b",
        "/srv/a}b",
        "/srv/a\"b",
        "/srv/a'b",
        "/srv/a\\b",
        "/srv/a\nb",
        "/srv/a\u{7f}b",
        "/srv/a\u{85}b",
    ] {
        let s = settings(bad, "");
        for r in [
            nginx_proxy(&s, &opts()),
            nginx_auth(&s, &opts()),
            lighttpd(&s, &opts()),
            lighttpd_magnet(&s, &opts()),
        ] {
            let e = r.expect_err(bad).to_string();
            assert!(
                e.contains("mount.root") && e.contains("/static/") && e.contains("fix:"),
                "{e}"
            );
        }
    }
}

#[test]
fn a_root_with_a_space_is_quoted() {
    let s = settings("/srv/my site/static", "");
    assert!(
        nginx_proxy(&s, &opts())
            .unwrap()
            .contains("alias \"/srv/my site/static/\";")
    );
    assert!(
        nginx_auth(&s, &opts())
            .unwrap()
            .contains("root \"/srv/my site/static\";")
    );
    assert!(
        lighttpd(&for_lighttpd(s), &opts())
            .unwrap()
            .contains("( \"/srv/my site/static\" )")
    );
}

#[test]
fn front_options_written_unquoted_are_checked() {
    let s = settings("/srv/static", "");
    for (listen, name) in [
        ("80; include /x", None),
        ("80", Some("a.com; x")),
        ("80", Some("$host")),
    ] {
        let o = FrontOptions::new(listen, name.map(String::from));
        assert!(nginx_proxy(&s, &o).is_err(), "{listen} {name:?}");
    }
    for ok in [
        "80",
        "127.0.0.1:8080",
        "[::1]:80",
        "unix:/run/nginx.sock",
        "80 default_server",
    ] {
        assert!(
            nginx_proxy(&s, &FrontOptions::new(ok, None)).is_ok(),
            "{ok}"
        );
    }
    let mut o = opts();
    o.verdict_cache_dir = Some("/var/cache/$x".into());
    assert!(nginx_auth(&s, &o).is_err());
    let mut o = opts();
    o.lua_dir = "/etc/l\"d".into();
    assert!(lighttpd(&s, &o).is_err());
}

#[test]
fn every_generated_prefix_location_is_caret_tilde() {
    let s = settings("/srv/static", "");
    let d = tempfile::tempdir().unwrap();
    let mixed = with_signed_mount(d.path());
    for conf in [
        nginx_proxy(&s, &opts()).unwrap(),
        nginx_auth(&s, &opts()).unwrap(),
        nginx_local(&s, &opts()).unwrap(),
        nginx_local(&mixed, &opts()).unwrap(),
    ] {
        for line in conf.lines().map(str::trim_start) {
            if let Some(rest) = line.strip_prefix("location ") {
                assert!(
                    rest.starts_with("^~ ")
                        || rest.starts_with("= ")
                        || rest.starts_with('@')
                        || rest.starts_with("~ \"(?s)"),
                    "{line}"
                );
            }
        }
        assert!(conf.contains("server_tokens off;"));
    }
}

#[test]
fn names_are_unique_per_mode_and_instance_and_checked() {
    let a = settings("/srv/static", "");
    assert_eq!(
        default_nginx_name(&a, Mode::Proxy),
        "stowaway_proxy_127_0_0_1_8700"
    );
    assert_ne!(
        default_nginx_name(&a, Mode::Proxy),
        default_nginx_name(&a, Mode::Auth)
    );
    let http = |s: &Settings, o: &FrontOptions| {
        let mut o = o.clone();
        o.part = NginxPart::Http;
        nginx_auth(s, &o).unwrap()
    };
    let conf = http(&a, &opts());
    assert!(conf.contains("upstream stowaway_auth_127_0_0_1_8700 {"));
    assert!(conf.contains("proxy_cache_path /var/cache/stowaway_auth_127_0_0_1_8700 "));
    assert!(conf.contains("keys_zone=stowaway_auth_127_0_0_1_8700_verdicts:"));
    let directives: String = conf.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!directives.contains("server {") && !directives.contains("location"));
    let mut o = opts();
    o.name = Some("site_b".into());
    let conf = http(&a, &o);
    assert!(conf.contains("upstream site_b {") && conf.contains("keys_zone=site_b_verdicts:"));
    for bad in ["", "a b", "a;b", "a-b", "x$y", &"n".repeat(65)] {
        let mut o = opts();
        o.name = Some(bad.into());
        let e = nginx_proxy(&a, &o).unwrap_err().to_string();
        assert!(e.contains("--name") && e.contains("fix:"), "{e}");
    }
}

#[test]
fn server_part_is_locations_only_with_the_uri_capture_first() {
    let s = settings("/srv/static", "");
    let mut o = opts();
    o.part = NginxPart::Server;
    for conf in [nginx_proxy(&s, &o).unwrap(), nginx_auth(&s, &o).unwrap()] {
        let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!lines.iter().any(|l| l.contains("upstream ")
            || l.contains("proxy_cache_path")
            || l.trim_start().starts_with("server ")
            || l.trim_start().starts_with("listen ")
            || l.trim_start().starts_with("server_tokens off;") && !l.starts_with("        ")));
    }
    let auth = nginx_auth(&s, &o).unwrap();
    let first = auth.lines().find(|l| !l.starts_with('#') && !l.is_empty());
    assert_eq!(
        first.map(str::trim),
        Some(
            "set $stowaway_uri $uri;   # the URI before any rewrite: keep this first in the server block"
        )
    );
}

#[test]
fn a_front_mismatch_is_refused_naming_server_front() {
    let l = for_lighttpd(settings("/srv/static", ""));
    for e in [nginx_proxy(&l, &opts()), nginx_auth(&l, &opts())] {
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("server.front = \"nginx\"") && e.contains("X-Sendfile"),
            "{e}"
        );
    }
    let n = settings("/srv/static", "");
    let e = lighttpd(&n, &opts()).unwrap_err().to_string();
    assert!(
        e.contains("server.front = \"lighttpd\"") && e.contains("X-Accel-Redirect"),
        "{e}"
    );
    assert!(lighttpd(&l, &opts()).is_ok());
    // The magnet script does not talk to stowaway.
    assert!(lighttpd_magnet(&n, &opts()).is_ok());
}

#[test]
fn fail_open_is_off_by_default_and_never_for_signed_mounts() {
    let d = tempfile::tempdir().unwrap();
    let s = with_signed_mount(d.path());
    for conf in [
        nginx_proxy(&s, &opts()).unwrap(),
        nginx_auth(&s, &opts()).unwrap(),
        nginx_local(&s, &opts()).unwrap(),
    ] {
        assert!(
            !conf.contains("fail-open") && !conf.contains("error_page 50"),
            "{conf}"
        );
    }
    let mut o = opts();
    o.fail_open = true;
    for conf in [
        nginx_proxy(&s, &o).unwrap(),
        nginx_auth(&s, &o).unwrap(),
        nginx_local(&s, &o).unwrap(),
    ] {
        assert!(
            conf.contains("_open_0;") && conf.contains("fail-open/0/"),
            "{conf}"
        );
        assert!(
            !conf.contains("_open_1") && !conf.contains("fail-open/1/"),
            "{conf}"
        );
        assert!(!conf.contains("root /srv/private;\n        disable_symlinks on from=$document_root;   # never follow a link out of the root\n        location ~ \"(?s)^/_stowaway"));
    }
}

/// lighttpd local-first: only mounts without access control get the script; an
/// access-controlled mount keeps X-Sendfile mode and is marked closed in the script too (its
/// second line of defence); serve_ignored drops the globs, not stowaway's own prefix.
#[test]
fn lighttpd_local_first_leaves_access_controlled_mounts_to_stowaway() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let s = for_lighttpd(settings(
        "/srv/static",
        &format!(
            "ignore = [\".*\", \"*.part\"]\n\
             [[mount]]\nprefix = \"/private/\"\nroot = \"/srv/private\"\nbucket = \"site-media\"\n\
             key_prefix = \"private/\"\n[mount.access]\nsign_with = \"k1\"\n\
             [[mount.access.keys]]\nid = \"k1\"\nsecret_file = {}\n\
             [[mount]]\nprefix = \"/pub/\"\nroot = \"/srv/pub\"\nbucket = \"site-media\"\n\
             key_prefix = \"pub/\"\nserve_ignored = true\n",
            toml_str(key.to_str().unwrap())
        ),
    ));
    let g = generate(&s, FrontServer::Lighttpd, Mode::LocalFirst, &opts()).unwrap();
    let files: Vec<_> = g.files.iter().map(|f| (f.name, f.mode)).collect();
    assert_eq!(
        files,
        [
            ("stowaway.conf", 0o644),
            ("stowaway-recheck.lua", 0o644),
            ("stowaway-local-first.lua", 0o644)
        ]
    );
    let conf = &g.printed;
    let hook =
        "magnet.attract-raw-url-to = ( \"/etc/lighttpd/stowaway/stowaway-local-first.lua\" )";
    let block = |prefix: &str| {
        let start = conf
            .find(&format!("$HTTP[\"url\"] =^ \"{prefix}\" {{"))
            .unwrap();
        conf[start..start + conf[start..].find("\n}").unwrap()].to_string()
    };
    assert!(block("/static/").contains(hook), "{conf}");
    assert!(block("/pub/").contains(hook), "{conf}");
    let private = block("/private/");
    assert!(!private.contains("magnet"), "{private}");
    assert!(
        private.contains("\"x-sendfile\" => \"enable\""),
        "{private}"
    );
    // Everything but the hook, the header and the module order is X-Sendfile mode's.
    let sendfile = lighttpd(&s, &opts()).unwrap();
    let tail = |c: &str| c[c.find("\n# /static/").unwrap()..].replace(&format!("    {hook}\n"), "");
    let strip = |c: String| {
        c.lines()
            .filter(|l| !l.starts_with("# /") && !l.contains("# Before mod_proxy"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(tail(conf)), strip(tail(&sendfile)));
    let script = &g.files[2].text;
    assert!(
        script.contains(
            "{ prefix = \"/static/\", root = \"/srv/static/\", open = true, ignore = { \"^%.stowaway%-\", \"^%..*$\", \"^.*%.part$\" } },"
        ),
        "{script}"
    );
    assert!(
        script.contains("{ prefix = \"/private/\", root = \"/srv/private/\", open = false,"),
        "{script}"
    );
    assert!(
        script.contains(
            "{ prefix = \"/pub/\", root = \"/srv/pub/\", open = true, ignore = { \"^%.stowaway%-\" } },"
        ),
        "{script}"
    );
}

#[test]
fn ignore_globs_become_inert_regexes() {
    assert_eq!(glob_regex(".*"), "\\x2e[^/]*");
    assert_eq!(glob_regex("*.part"), "[^/]*\\x2epart");
    assert_eq!(glob_regex("a?$\"{;"), "a[^/]\\x24\\x22\\x7b\\x3b");
    let s = settings("/srv/static", "ignore = [\"*.tmp\"]");
    let mut o = opts();
    o.fail_open = true;
    let conf = nginx_proxy(&s, &o).unwrap();
    assert!(
        conf.contains("(?:\\x2estowaway\\x2d[^/]*|[^/]*\\x2etmp)(?:/|$)\" {   # mount.ignore"),
        "{conf}"
    );
    let s = settings("/srv/static", "serve_ignored = true");
    assert!(!nginx_proxy(&s, &o).unwrap().contains("mount.ignore"));
}

/// The bound holds for a real presigned URL of the longest key with the longest access key
/// id, a session token of SESSION_TOKEN_ROOM bytes that all need encoding, and overrides.
#[test]
fn buffer_bound_holds_for_the_longest_presigned_url() {
    let s = settings(
        "/srv/static",
        "response_content_disposition = \"attachment; filename=\\\"x y.bin\\\"\"",
    );
    let m = &s.mounts[0];
    let urls = MountUrls::new(&s.s3, m);
    let signer = Signer::new("us-east-1");
    signer.set_credentials(SigningCredentials {
        access_key_id: "A".repeat(MAX_ACCESS_KEY_ID),
        secret_access_key: crate::config::Secret::new("secret"),
        session_token: Some(crate::config::Secret::new("+".repeat(SESSION_TOKEN_ROOM))),
        expires_at: None,
    });
    let key = &("€".repeat(340) + "😀");
    assert_eq!(key.len(), MAX_KEY_BYTES);
    let url = signer
        .presign(
            &urls,
            "GET",
            key,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )
        .unwrap()
        .url;
    let accel = crate::paths::accel_target(&s.server.internal_prefix, m.prefix.as_str(), key);
    let head = accel.len() + url.len() + "x-accel-redirect: \r\nx-s3-location: \r\n".len();
    assert!(
        head + 512 <= max_response_head(&s),
        "{head} vs {}",
        max_response_head(&s)
    );
    assert!(max_response_head(&s) <= nginx_buffer_kib(&s) * 1024);
    // Without a session token the head is about half the bound: the room is for the token.
    assert!(nginx_buffer_kib(&s) >= 8);
}

#[test]
fn each_front_has_its_own_modes_and_defaults() {
    let n = settings("/srv/static", "");
    let l = for_lighttpd(settings("/srv/static", ""));
    let d = tempfile::tempdir().unwrap();
    let mixed = with_signed_mount(d.path());
    assert_eq!(Mode::default_for(FrontServer::Nginx, &n), Mode::LocalFirst);
    assert_eq!(Mode::default_for(FrontServer::Nginx, &mixed), Mode::Proxy);
    assert_eq!(
        Mode::default_for(FrontServer::Lighttpd, &l),
        Mode::LocalFirst
    );
    for (s, front, mode) in [
        (&n, FrontServer::Nginx, Mode::Sendfile),
        (&n, FrontServer::Nginx, Mode::Magnet),
        (&l, FrontServer::Lighttpd, Mode::Proxy),
        (&l, FrontServer::Lighttpd, Mode::Auth),
    ] {
        let e = generate(s, front, mode, &opts()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("has no mode \"{}\"", mode.as_str()))
                && e.contains("fix: use --mode"),
            "{e}"
        );
    }
    let g = generate(&n, FrontServer::Nginx, Mode::Auth, &opts()).unwrap();
    assert_eq!(g.printed, nginx_auth(&n, &opts()).unwrap());
    assert!(g.files.is_empty());
    let g = generate(&l, FrontServer::Lighttpd, Mode::Sendfile, &opts()).unwrap();
    let files: Vec<_> = g.files.iter().map(|f| (f.name, f.mode)).collect();
    assert_eq!(
        files,
        [("stowaway.conf", 0o644), ("stowaway-recheck.lua", 0o644)]
    );
    assert_eq!(g.files[0].text, g.printed);
    assert_eq!(g.files[1].text, lighttpd::RECHECK_LUA);
    // The magnet script does not talk to stowaway: whatever server.front says.
    let g = generate(&n, FrontServer::Lighttpd, Mode::Magnet, &opts()).unwrap();
    assert_eq!(g.printed, lighttpd_magnet(&n, &opts()).unwrap());
    assert_eq!(g.files[0].name, "local-or-s3.lua");
}

/// Local-first mode: the map that decides what nginx may try on disk is anchored, names the
/// ignored globs (and stowaway's own files) before the plain-path rule, and mounts with access
/// control get auth mode's locations instead.
#[test]
fn local_first_maps_plain_paths_and_leaves_signed_mounts_to_auth_mode() {
    let s = settings("/srv/static", "ignore = [\"*.tmp\", \".*\"]");
    let conf = nginx_local(&s, &opts()).unwrap();
    assert!(
        conf.contains(
            "\"~^/static/(?:[^?]*/)?(?:\\x2estowaway\\x2d[^/?]*|[^/?]*\\x2etmp|\\x2e[^/?]*)(?:[/?]|$)\" \"\";"
        ),
        "{conf}"
    );
    let ignored = conf.find("(?:[/?]|$)\" \"\";").unwrap();
    let plain = conf.find("(?:\\?|$)\" $1;").unwrap();
    assert!(ignored < plain, "the ignore rule must come first:\n{conf}");
    assert!(conf.contains("\n        try_files /$stowaway_"), "{conf}");
    assert!(
        conf.contains("_key0 @stowaway_local_first_127_0_0_1_8700_miss_0;"),
        "{conf}"
    );
    assert!(conf.contains("proxy_cache_key \"$request_method $request_uri\";"));
    assert!(!conf.contains("auth_request"), "{conf}");
    let d = tempfile::tempdir().unwrap();
    let conf = nginx_local(&with_signed_mount(d.path()), &opts()).unwrap();
    assert!(
        conf.contains("auth_request /_stowaway_local/auth/1;"),
        "{conf}"
    );
    assert!(!conf.contains("auth/0"), "{conf}");
    assert!(!conf.contains("_key1"), "{conf}");
    assert!(conf.contains("    set $stowaway_uri $uri;"), "{conf}");
}

/// A mount's hot-object cache (docs/cache.md) in every generated config: its directory is
/// checked like a root, and every front looks into it only where the issue says.
#[test]
fn a_cached_mount_gets_its_cache_locations_and_nothing_else_changes() {
    let plain = settings("/srv/static", "");
    let cached = settings("/srv/static", "[mount.cache]\ndir = \"/var/cache/st\"\n");
    for (mode, render) in [
        ("proxy", nginx_proxy as fn(&Settings, &FrontOptions) -> _),
        ("auth", nginx_auth),
        ("local-first", nginx_local),
    ] {
        let without = render(&plain, &opts()).unwrap();
        assert!(
            !without.contains("@cache") && !without.contains("_cached_"),
            "{mode}"
        );
        let with = render(&cached, &opts()).unwrap();
        assert!(with.contains("/var/cache/st"), "{mode}:\n{with}");
        match mode {
            "proxy" => {
                assert!(
                    with.contains(
                        "location ^~ /_stowaway_local/@cache/static/ {\n        internal;"
                    ),
                    "{with}"
                );
                assert!(with.contains("alias /var/cache/st/;"), "{with}");
            }
            // Root first, then the cache, then the redirect (auth: after the verdict).
            "auth" => assert!(
                with.contains("try_files /$stowaway_key @stowaway_auth_127_0_0_1_8700_cached_0;")
                    && with.contains("try_files /$stowaway_key @stowaway_auth_127_0_0_1_8700_s3;"),
                "{with}"
            ),
            _ => assert!(
                with.contains(
                    "_cached_0 {\n        server_tokens off;\n        root /var/cache/st;"
                ),
                "{with}"
            ),
        }
    }
    let lt = for_lighttpd(cached.clone());
    let conf = lighttpd(&lt, &opts()).unwrap();
    assert!(
        conf.contains("\"x-sendfile-docroot\" => ( \"/srv/static\", \"/var/cache/st\" )"),
        "{conf}"
    );
    let script = lighttpd_local::render_script(&lt);
    assert!(script.contains("cache = \"/var/cache/st/\" },"), "{script}");
    // A cache directory the configs could not carry literally is refused like a root.
    let bad = settings("/srv/static", "[mount.cache]\ndir = \"/var/cache/a;b\"\n");
    let e = nginx_local(&bad, &opts()).unwrap_err().to_string();
    assert!(e.contains("/var/cache/a;b"), "{e}");
}

/// The uploader's wait after purging a cached copy covers how long nginx may keep sending it
/// from a descriptor of the generated configs' open_file_cache.
#[test]
fn the_cache_purge_grace_outlasts_open_file_cache_validity() {
    assert!(crate::cache::DESCRIPTOR_GRACE > Duration::from_secs(OPEN_FILE_CACHE_VALID_SECS));
}

/// nginx remembers the root's misses only where a cached object would otherwise pay a failed
/// look into the root on every request: the root location of a cached mount in local-first
/// mode. Everywhere else a file that appears is found at once.
#[test]
fn only_a_cached_mounts_root_remembers_misses() {
    let plain = settings("/srv/static", "");
    let cached = settings("/srv/static", "[mount.cache]\ndir = \"/var/cache/st\"\n");
    let block = |conf: &str, start: &str| -> String {
        let from = conf
            .find(start)
            .unwrap_or_else(|| panic!("{start}:\n{conf}"));
        let len = conf[from..].find("\n    }").unwrap();
        conf[from..from + len].to_string()
    };
    for (mode, render) in [
        ("proxy", nginx_proxy as fn(&Settings, &FrontOptions) -> _),
        ("auth", nginx_auth),
        ("local-first", nginx_local),
    ] {
        let without = render(&plain, &opts()).unwrap();
        assert!(!without.contains("open_file_cache_errors on"), "{mode}");
        let with = render(&cached, &opts()).unwrap();
        if mode != "local-first" {
            assert!(
                !with.contains("open_file_cache_errors on"),
                "{mode}:\n{with}"
            );
            continue;
        }
        assert_eq!(
            with.matches("open_file_cache_errors on").count(),
            1,
            "{with}"
        );
        let root = block(&with, "location ^~ /static/ {");
        assert!(root.contains("open_file_cache_errors on;"), "{root}");
        let cache = block(
            &with,
            "location @stowaway_local_first_127_0_0_1_8700_cached_0 {",
        );
        assert!(cache.contains("open_file_cache_errors off;"), "{cache}");
    }
}
