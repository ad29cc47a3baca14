//! nginx, `auth_request` + `try_files` mode: nginx asks stowaway's auth endpoint
//! ([`AUTH_PATH`]) about every request, caches the verdict, and sends local files itself.
//! nginx accepts only 2xx, 401 and 403 from an auth subrequest, so:
//! * local file → `200` (plus `X-S3-Location`, nginx's fallback if the file vanishes);
//! * not local → `401` + `X-S3-Location` (presigned for the original method);
//! * anything else → `403` + `X-Stowaway-Status: 400|403|404|405|410|503`, which the generated
//!   config turns back into that status, so clients see the same answers in every mode;
//! * every answer carries `X-Accel-Expires: <seconds>`, the verdict's lifetime in nginx's
//!   cache. No `Cache-Control` is sent (nginx 1.22 lets a `Cache-Control` that precedes
//!   `X-Accel-Expires` veto caching, and actix does not keep header order).
//!
//! Generated as `nginx/stowaway-auth.conf` (or `nginx/stowaway-auth-{http,server}.conf`).

use std::fmt::Write as _;

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};

use super::nginx::{
    Misses, X_ACCEL_EXPIRES, X_S3_LOCATION, default_verdict_cache_dir, nginx_assemble,
    nginx_buffers, nginx_fail_open, nginx_front_header, nginx_name, nginx_str, nginx_upstream,
    open_file_cache_lines, regex_literal,
};
use super::{
    FrontConfError, FrontOptions, Mode, check_front_input, check_front_kind, secret_warning,
};
use crate::config::{FrontServer, Settings};

/// Path of the auth endpoint.
pub const AUTH_PATH: &str = "/_stowaway/auth";
/// The client's method (the endpoint's own is always `GET`).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// The status nginx should answer instead of the `403` it is given.
pub const X_STOWAWAY_STATUS: HeaderName = HeaderName::from_static("x-stowaway-status");

/// Serve the local file; the verdict may be cached `ttl` seconds. `fallback`: the object URL
/// for when the file vanishes before nginx opens it.
pub fn local(ttl: u64, fallback: Option<HeaderValue>) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    if let Some(v) = fallback {
        resp.insert_header((X_S3_LOCATION, v));
    }
    resp.insert_header((X_ACCEL_EXPIRES, HeaderValue::from(ttl)));
    resp.finish()
}

/// Redirect to `location`; the verdict may be cached `ttl` seconds.
pub fn remote(ttl: u64, location: HeaderValue) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((X_ACCEL_EXPIRES, HeaderValue::from(ttl)))
        .insert_header((X_S3_LOCATION, location))
        .finish()
}

/// A refusal: `403` carrying the status nginx should really answer; cached `ttl` seconds.
pub fn refused(status: u16, ttl: u64) -> HttpResponse {
    HttpResponse::Forbidden()
        .insert_header((X_ACCEL_EXPIRES, HeaderValue::from(ttl)))
        .insert_header((X_STOWAWAY_STATUS, HeaderValue::from(status)))
        .finish()
}

/// Renders the nginx configuration for `auth_request` mode: an `upstream`, the verdict cache
/// (`proxy_cache_path`, unless `server.verdict_ttl` is zero) and a `server` block, all for the
/// `http {}` context.
pub fn render(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Nginx)?;
    let name = nginx_name(settings, opts, Mode::Auth);
    let mut o = String::new();
    let sidecar = nginx_upstream(settings);
    let ttl = settings.server.verdict_ttl.as_secs();
    let fallback = settings.server.fallback_header;
    o.push_str(&secret_warning(settings, "#"));
    let _ = writeln!(
        o,
        "# nginx in front of stowaway, auth_request mode.\n\
         #\n\
         # For every request nginx asks stowaway (a subrequest to {auth}) and then\n\
         #   200 -> serves the local file itself (Range, HEAD and conditional requests work);\n\
         #   401 -> redirects (302) to the URL stowaway sent in X-S3-Location, presigned for the\n\
         #          client's method;\n\
         #   403 -> answers the status stowaway names in X-Stowaway-Status (400 bad path, 403 denied,\n\
         #          404 not a file, 405 method, 410 expired link, 503 no credentials), so clients\n\
         #          get the same answers as in proxy_pass mode.\n\
         # A file that vanishes between a \"local\" verdict and nginx's open() still ends in a 302\n\
         # (try_files falls back to {fallback_how}).\n\
         #\n\
         # The verdict is about the client's own URI ($request_uri); nginx serves $uri. A request a\n\
         # rewrite (or an internal redirect) brought into a mount location is refused (403) unless\n\
         # both still agree, so a rewrite can never make nginx serve a file stowaway did not judge.\n\
         # In an existing server block: `set $stowaway_uri $uri;` must come before every rewrite of\n\
         # the block (include the server part first), and the mount locations keep `^~` (the site's\n\
         # regex locations such as `~* \\.(jpg|css)$` or `~ \\.php$` cannot take their requests).",
        auth = AUTH_PATH,
        fallback_how = if fallback {
            "the URL stowaway sent along with the verdict"
        } else {
            "asking stowaway again"
        },
    );
    if ttl > 0 {
        let _ = writeln!(
            o,
            "#\n\
             # Verdict cache: stowaway sets each verdict's lifetime with X-Accel-Expires: at most\n\
             # server.verdict_ttl ({ttl}s), never longer than the redirect URL or a signed link stays valid.\n\
             # Cache-Control and Expires are ignored, so nothing else can extend it (and the nginx 1.22\n\
             # header-order pitfall cannot disable it). A cached \"local\" verdict for a file archived\n\
             # meanwhile still ends in a 302 through try_files. The cache key is the method and the raw\n\
             # $request_uri, query included (a signed link's parameters are part of the verdict); mounts\n\
             # with access control add $remote_addr, because a link can be bound to the client's address."
        );
    }
    if opts.fail_open {
        o.push_str(
            "#\n\
             # --fail-open: while stowaway is unreachable (the verdict subrequest fails: 500/502/504),\n\
             # mounts WITHOUT access control send the files on disk; everything else fails closed.\n",
        );
    }
    let intro = std::mem::take(&mut o);
    let mut http = format!("\nupstream {name} {{\n    server {sidecar};\n    keepalive 32;\n}}\n");
    http.push_str(&verdict_cache_path(settings, opts, &name));
    o.push_str(URI_CAPTURE);
    for i in 0..settings.mounts.len() {
        o.push_str(&mount_locations(settings, opts, &name, i));
    }
    o.push_str(&shared_locations(settings, &name));
    Ok(nginx_assemble(
        opts,
        &intro,
        "stowaway gen-config nginx --mode auth",
        &http,
        &o,
    ))
}

/// The first line of the server part whenever a mount is in auth mode.
pub(super) const URI_CAPTURE: &str = "    set $stowaway_uri $uri;   # the URI before any rewrite: keep this first in the server block\n";

/// The verdict cache's `proxy_cache_path` (for the `http {}` context), unless
/// `server.verdict_ttl` is zero.
pub(super) fn verdict_cache_path(settings: &Settings, opts: &FrontOptions, name: &str) -> String {
    if settings.server.verdict_ttl.is_zero() {
        return String::new();
    }
    let cache_dir = opts
        .verdict_cache_dir
        .clone()
        .unwrap_or_else(|| default_verdict_cache_dir(name));
    format!(
        "\n# nginx creates the last directory itself (owned by its worker user), not its parents.\n\
         proxy_cache_path {} levels=1:2 keys_zone={name}_verdicts:10m\n                 max_size=64m inactive=10m use_temp_path=off;\n",
        nginx_str(&cache_dir)
    )
}

/// Mount `i`'s locations in auth mode: the mount location (verdict first, then `try_files`)
/// and its verdict subrequest.
pub(super) fn mount_locations(
    settings: &Settings,
    opts: &FrontOptions,
    name: &str,
    i: usize,
) -> String {
    let m = &settings.mounts[i];
    let prefix = m.prefix.as_str();
    let auth_loc = format!("{}auth/{i}", settings.server.internal_prefix);
    let root = nginx_str(&m.root.display().to_string());
    let signed = settings.access.iter().any(|a| a.mount == i);
    let front = nginx_front_header(settings);
    let buffers = nginx_buffers(settings);
    let gone = if settings.server.fallback_header {
        format!("@{name}_s3")
    } else {
        format!("@{name}_recheck")
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n    # {prefix}: stowaway's verdict first, then nginx serves the file{}.\n\
         \x20   location ^~ {prefix} {{\n\
         \x20       server_tokens off;\n\
         \x20       # Rewritten or redirected here: the verdict would be about another URI.\n\
         \x20       if ($request_uri !~ \"^{re}\") {{ return 403; }}\n\
         \x20       if ($stowaway_uri != $uri) {{ return 403; }}\n\
         \x20       auth_request {auth_loc};\n\
         \x20       auth_request_set $stowaway_location $upstream_http_x_s3_location;\n\
         \x20       auth_request_set $stowaway_status $upstream_http_x_stowaway_status;\n\
         \x20       error_page 401 = @{name}_s3;\n\
         \x20       error_page 403 = @{name}_refused;\n\
         {open_line}\
         \x20       root {root};\n\
         \x20       disable_symlinks on from=$document_root;   # never follow a link out of the root\n\
         {cache}\
         \x20       # $stowaway_key (decoded) only names a file here; never put it into a header.\n\
         \x20       location ~ \"(?s)^{re}(?<stowaway_key>.+)$\" {{\n\
         \x20           if ($request_uri !~ \"^{re}\") {{ return 403; }}   # (rewrite directives are per location)\n\
         \x20           if ($stowaway_uri != $uri) {{ return 403; }}\n\
         \x20           try_files /$stowaway_key {after_root};   # vanished after a \"local\" verdict\n\
         \x20       }}\n\
         \x20   }}\n\
         \n\
         \x20   # The verdict subrequest for {prefix}.\n\
         \x20   location = {auth_loc} {{\n\
         \x20       internal;\n\
         \x20       server_tokens off;\n\
         \x20       proxy_pass http://{name}{auth};\n\
         \x20       proxy_http_version 1.1;\n\
         \x20       proxy_set_header Connection \"\";\n\
         \x20       proxy_pass_request_body off;\n\
         \x20       proxy_set_header Content-Length \"\";\n\
         \x20       proxy_set_header X-Original-URI $request_uri;   # raw; stowaway normalises like nginx\n\
         \x20       proxy_set_header X-Original-Method $request_method;\n\
         \x20       proxy_set_header X-Real-IP $remote_addr;\n\
         {front}\
         \x20       proxy_set_header X-Sidecar-Recheck \"\";\n\
         {bufs}",
        if signed { " (signed links only)" } else { "" },
        open_line = if opts.fail_open && !signed {
            format!(
                "        error_page 500 502 504 = @{name}_open_{i};   # --fail-open: stowaway unreachable\n"
            )
        } else {
            String::new()
        },
        cache = open_file_cache_lines("        ", Misses::Forget),
        bufs = buffers.trim_end_matches('\n'),
        re = regex_literal(prefix),
        auth = AUTH_PATH,
        after_root = match super::cache_dir(settings, i) {
            Some(_) => format!("@{name}_cached_{i}"),
            None => gone.clone(),
        },
    );
    if !settings.server.verdict_ttl.is_zero() {
        let key = if signed {
            "$request_method $remote_addr $request_uri"
        } else {
            "$request_method $request_uri"
        };
        let _ = writeln!(
            o,
            "\x20       proxy_cache {name}_verdicts;\n\
             \x20       proxy_cache_key \"{key}\";\n\
             \x20       proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;   # X-Accel-Expires alone decides"
        );
    }
    o.push_str("    }\n");
    // Only reached through try_files, after a positive verdict.
    if let Some(c) = super::cache_dir(settings, i) {
        o.push_str(&super::nginx::cached_location(
            name,
            i,
            prefix,
            c,
            "/$stowaway_key",
            &gone,
        ));
    }
    if opts.fail_open && !signed {
        o.push_str(&nginx_fail_open(settings, name, i, &root));
    }
    o
}

/// The named locations every auth-mode mount shares: the redirect, the refusal and (without
/// `server.fallback_header`) the recheck.
pub(super) fn shared_locations(settings: &Settings, name: &str) -> String {
    let front = nginx_front_header(settings);
    let buffers = nginx_buffers(settings);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n    # Not local: redirect to the URL stowaway sent (presigned URLs are not for shared caches).\n\
         \x20   location @{name}_s3 {{\n\
         \x20       server_tokens off;\n\
         \x20       if ($stowaway_location = \"\") {{ return 404; }}\n\
         \x20       add_header Cache-Control \"no-store\" always;\n\
         \x20       return 302 $stowaway_location;\n\
         \x20   }}\n\
         \n\
         \x20   # Refused: the status stowaway named (a 403 of nginx's own stays a 403).\n\
         \x20   location @{name}_refused {{\n\
         \x20       server_tokens off;\n\
         \x20       if ($stowaway_status = 400) {{ return 400; }}\n\
         \x20       if ($stowaway_status = 404) {{ return 404; }}\n\
         \x20       if ($stowaway_status = 405) {{ return 405; }}\n\
         \x20       if ($stowaway_status = 410) {{ return 410; }}\n\
         \x20       if ($stowaway_status = 503) {{ return 503; }}\n\
         \x20       return 403;\n\
         \x20   }}"
    );
    if !settings.server.fallback_header {
        let _ = writeln!(
            o,
            "\n    # The file vanished after a \"local\" verdict: ask stowaway's decision endpoint again;\n\
             \x20   # a recheck is never \"local\" (302, or the refusal the request deserves).\n\
             \x20   location @{name}_recheck {{\n\
             \x20       server_tokens off;\n\
             \x20       proxy_pass http://{name}$request_uri;\n\
             \x20       proxy_http_version 1.1;\n\
             \x20       proxy_set_header Connection \"\";\n\
             \x20       proxy_set_header X-Real-IP $remote_addr;\n\
             {front}\
             \x20       proxy_set_header X-Sidecar-Recheck 1;\n\
             \x20       proxy_set_header X-Original-URI \"\";\n\
             \x20       proxy_pass_request_body off;\n\
             \x20       proxy_set_header Content-Length \"\";\n\
             {buffers}\
             \x20   }}"
        );
    }
    o
}
