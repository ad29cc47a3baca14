//! nginx, local-first mode (`--mode local-first`, the default when no mount has access
//! control): for a mount without access control nginx sends a file that is on disk itself
//! (`try_files`, no round trip to stowaway), and only a miss reaches stowaway, whose 302 nginx
//! then caches (`proxy_cache`, lifetime from stowaway's `X-Accel-Expires`). Mounts with access
//! control get auth mode's locations ([`super::nginx_auth`]): every request is checked.
//!
//! nginx may only try a request locally when the answer cannot differ from stowaway's:
//! * the client's raw path (`$request_uri`) is plainly safe: only unreserved characters and a
//!   few sub-delimiters, no percent-escape, no empty, `.` or `..` segment, not a directory
//!   (a per-mount `map` in the `http {}` part; its result is the key);
//! * no segment is an ignored name (the mount's `ignore` globs, stowaway's own `.stowaway-`
//!   files), whatever `serve_ignored` says: stowaway answers for those;
//! * nothing rewrote the request (`$uri` is still the client's path);
//! * the file is a regular file reached without a symlink (`disable_symlinks on`; a link makes
//!   `try_files` move on, so stowaway answers for it as in proxy mode).
//!
//! Everything else goes to stowaway exactly as in proxy mode ([`super::nginx_proxy`]): the
//! "ask" location. A plainly safe miss goes to the "miss" location, the same `proxy_pass` with
//! the redirect cache. Generated as `nginx/stowaway-local.conf` (or
//! `nginx/stowaway-local-{http,server}.conf`).

use std::fmt::Write as _;

use super::nginx::{
    Misses, OPEN_FILE_CACHE_VALID_SECS, cached_location, default_redirect_cache_dir,
    glob_regex_in_uri, has_access_control, nginx_assemble, nginx_name, nginx_str, nginx_upstream,
    open_file_cache_lines, regex_literal,
};
use super::{FrontConfError, FrontOptions, Mode, check_front_input, check_front_kind};
use super::{nginx_auth, nginx_proxy, secret_warning};
use crate::config::{FrontServer, Settings};
use crate::ignore::OWN_PREFIX;

/// The characters a plainly safe path segment is made of: unreserved characters and the
/// sub-delimiters nginx and stowaway both take literally (no `$` or `;`, which an nginx config
/// string would have to quote, no `%`, which nginx decodes).
const PLAIN: &str = "A-Za-z0-9._~!&'()*+,=:@-";

/// The prefix of this instance's variables: `stowaway_<FNV-1a of the name>`. nginx fails to
/// start ("could not build variables_hash, you should increase variables_hash_bucket_size")
/// with variable names as long as the default instance names, and the http {} setting is the
/// operator's, so the variables get short names that are still unique per instance.
fn var_prefix(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("stowaway_{h:08x}")
}

/// The `map` of mount `i`: the key nginx may try on disk for the client's raw request target,
/// or the empty string (stowaway answers).
fn key_map(settings: &Settings, var: &str, i: usize) -> String {
    let m = &settings.mounts[i];
    let pre = regex_literal(m.prefix.as_str());
    let ignored: Vec<String> = std::iter::once(format!("{OWN_PREFIX}*"))
        .chain(m.ignore.iter().cloned())
        .map(|g| glob_regex_in_uri(&g))
        .collect();
    // A segment that is neither `.` nor `..`, then (for the last one) the end of the path.
    let seg = format!("(?!\\.\\.?(?:/|\\?|$))[{PLAIN}]+");
    format!(
        "\n# {prefix}: the key nginx may look for on disk, \"\" when stowaway must answer.\n\
         map $request_uri ${var}_key{i} {{\n\
         \x20   default \"\";\n\
         \x20   # An ignored name in any segment (mount.ignore, stowaway's own files).\n\
         \x20   \"~^{pre}(?:[^?]*/)?(?:{ignored})(?:[/?]|$)\" \"\";\n\
         \x20   \"~^{pre}((?:{seg}/)*{seg})(?:\\?|$)\" $1;\n\
         }}\n",
        prefix = m.prefix.as_str(),
        ignored = ignored.join("|"),
    )
}

/// Renders the nginx configuration for local-first mode.
pub fn render(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Nginx)?;
    let name = nginx_name(settings, opts, Mode::LocalFirst);
    let var = var_prefix(&name);
    let sidecar = nginx_upstream(settings);
    let any_signed = !settings.access.is_empty();
    let any_open = (0..settings.mounts.len()).any(|i| !has_access_control(settings, i));
    let cache_dir = opts
        .redirect_cache_dir
        .clone()
        .unwrap_or_else(|| default_redirect_cache_dir(&name));
    let mut intro = secret_warning(settings, "#");
    let _ = write!(
        intro,
        "# nginx in front of stowaway, local-first mode (the default when no mount has access control).\n\
         #\n\
         # A mount without access control costs a local hit nothing: nginx sends a file that is on\n\
         # disk itself (try_files; Range, HEAD and conditional requests work) and asks stowaway only\n\
         # when the file is not there. It tries the disk only for a plainly safe request: the raw\n\
         # path has no percent-escape, no `.`/`..`/empty segment, no ignored name (mount.ignore,\n\
         # stowaway's own .stowaway-* files), and no rewrite changed it; symlinks are never followed.\n\
         # Everything else is proxied to stowaway exactly as in proxy mode, so every request gets\n\
         # the same answer as there.\n\
         #\n\
         # A miss's 302 is cached by nginx (proxy_cache) for as long as stowaway's X-Accel-Expires\n\
         # says: the URL's cacheable age, never past its expiry (0 for a URL minted per request\n\
         # with no time left). The disk is checked before the cache, so a file that is local again\n\
         # is sent at once. A redirect nginx answers from its cache carries `Cache-Control:\n\
         # no-store` unless it is public (a max-age counted from stowaway's answer would let the\n\
         # client keep a presigned URL past its expiry).\n\
         #\n\
         # open_file_cache: nginx keeps descriptors of files it sent; a file replaced or deleted\n\
         # (migrated) meanwhile may still be sent from the old descriptor for up to\n\
         # {OPEN_FILE_CACHE_VALID_SECS} s (open_file_cache_valid). Misses are never cached.\n"
    );
    if (0..settings.mounts.len()).any(|i| super::cache_dir(settings, i).is_some()) {
        let _ = write!(
            intro,
            "# In the root of a mount with a hot cache, misses are cached too (open_file_cache_errors\n\
             # on), or every cached object would cost a failed look into the root: a file written\n\
             # where a copy is cached (the same name again) wins within {OPEN_FILE_CACHE_VALID_SECS} s instead of at once.\n"
        );
    }
    if any_signed {
        intro.push_str(
            "#\n\
             # Mounts WITH access control use auth_request mode (stowaway checks every request; see\n\
             # `gen-config nginx --mode auth`): keep `set $stowaway_uri $uri;` first in the server block.\n",
        );
    }
    if opts.fail_open {
        intro.push_str(
            "#\n\
             # --fail-open: while stowaway is unreachable (502/504), requests of mounts WITHOUT\n\
             # access control that stowaway would answer are served from disk as they are.\n",
        );
    }
    let mut http = format!("\nupstream {name} {{\n    server {sidecar};\n    keepalive 32;\n}}\n");
    if any_open {
        let _ = write!(
            http,
            "\n# Redirects for misses. nginx creates the last directory itself (owned by its worker user).\n\
             # keys_zone: about 8,000 keys per MB, counting every distinct miss within `inactive`\n\
             # (min_uses 2 needs its node too); a full zone makes nginx evict on every new miss.\n\
             proxy_cache_path {} levels=1:2 keys_zone={name}_redirects:64m\n                 max_size=64m inactive=10m use_temp_path=off;\n\
             \n\
             # The Cache-Control of a redirect: stowaway's, unless nginx answered from its cache\n\
             # (then only a public one: a private max-age would count from stowaway's answer).\n\
             map \"$upstream_cache_status $upstream_http_cache_control\" ${var}_cc {{\n\
             \x20   default \"no-store\";\n\
             \x20   \"~^(?:MISS|EXPIRED|BYPASS) (.*)$\" $1;\n\
             \x20   \"~^HIT (public,.*)$\" $1;\n\
             }}\n",
            nginx_str(&cache_dir)
        );
    }
    if any_signed {
        http.push_str(&nginx_auth::verdict_cache_path(settings, opts, &name));
    }
    let mut o = String::new();
    if any_signed {
        o.push_str(nginx_auth::URI_CAPTURE);
    }
    for (i, m) in settings.mounts.iter().enumerate() {
        if has_access_control(settings, i) {
            o.push_str(&nginx_auth::mount_locations(settings, opts, &name, i));
            continue;
        }
        http.push_str(&key_map(settings, &var, i));
        let prefix = m.prefix.as_str();
        let open = opts.fail_open;
        let _ = writeln!(
            o,
            "\n    # {prefix}: nginx sends a file on disk itself; stowaway answers everything else.\n\
             \x20   location ^~ {prefix} {{\n\
             \x20       server_tokens off;\n\
             \x20       root {root};\n\
             \x20       disable_symlinks on from=$document_root;   # never follow a link out of the root\n\
             {cache}\
             \x20       error_page 418 = @{name}_ask_{i};\n\
             \x20       # Not plainly safe (see the map), or rewritten: stowaway answers as in proxy mode.\n\
             \x20       if (${var}_key{i} = \"\") {{ return 418; }}\n\
             \x20       if ($uri != \"{prefix}${var}_key{i}\") {{ return 418; }}\n\
             \x20       try_files /${var}_key{i} {next};\n\
             \x20   }}\n{cached}\
             \n\
             \x20   # {prefix}: not on disk: stowaway's 302, cached for as long as its X-Accel-Expires says.\n\
             \x20   location @{name}_miss_{i} {{\n\
             \x20       server_tokens off;\n\
             {ask}\
             \x20       proxy_cache {name}_redirects;\n\
             \x20       proxy_cache_key \"$request_method $request_uri\";\n\
             \x20       proxy_cache_min_uses 2;   # from the 2nd ask: one-off misses write no cache file\n\
             \x20       proxy_cache_convert_head off;   # a HEAD gets a URL signed for HEAD\n\
             \x20       proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;   # X-Accel-Expires alone decides\n\
             \x20       proxy_hide_header Cache-Control;\n\
             \x20       add_header Cache-Control ${var}_cc always;\n\
             \x20   }}\n\
             \n\
             \x20   # {prefix}: everything nginx does not try on disk, exactly as in proxy mode.\n\
             \x20   location @{name}_ask_{i} {{\n\
             \x20       server_tokens off;\n\
             {ask}\
             \x20   }}",
            root = nginx_str(&m.root.display().to_string()),
            cache = open_file_cache_lines(
                "        ",
                match super::cache_dir(settings, i) {
                    Some(_) => Misses::Remember,
                    None => Misses::Forget,
                }
            ),
            ask = nginx_proxy::ask_lines(settings, &name, i, open),
            next = match super::cache_dir(settings, i) {
                Some(_) => format!("@{name}_cached_{i}"),
                None => format!("@{name}_miss_{i}"),
            },
            cached = match super::cache_dir(settings, i) {
                Some(c) => cached_location(
                    &name,
                    i,
                    prefix,
                    c,
                    &format!("/${var}_key{i}"),
                    &format!("@{name}_miss_{i}"),
                ),
                None => String::new(),
            },
        );
        // proxy_pass gives its prefix location nginx's automatic 301 from the prefix without
        // its slash; this location has none, so the same answer is spelt out.
        let bare = prefix.trim_end_matches('/');
        if !bare.is_empty() {
            let _ = writeln!(
                o,
                "\n    # As in proxy mode: {bare} -> {prefix} (raw query kept).\n\
                 \x20   location = {bare} {{\n\
                 \x20       server_tokens off;\n\
                 \x20       return 301 {prefix}$is_args$args;\n\
                 \x20   }}"
            );
        }
        o.push_str(&nginx_proxy::mount_tail(settings, &name, i, open));
    }
    if any_signed {
        o.push_str(&nginx_auth::shared_locations(settings, &name));
    }
    Ok(nginx_assemble(
        opts,
        &intro,
        "stowaway gen-config nginx --mode local-first",
        &http,
        &o,
    ))
}
