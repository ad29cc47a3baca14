//! nginx, `proxy_pass` + `X-Accel-Redirect` mode: every request for a mount goes to stowaway's
//! decision endpoint; a local file comes back as `X-Accel-Redirect` to an internal location
//! (with the object URL in `X-S3-Location`, nginx's fallback if the file vanishes), a migrated
//! one as stowaway's 302. Generated as `nginx/stowaway-proxy.conf` (or the `http {}` and
//! `server {}` parts `nginx/stowaway-proxy-{http,server}.conf`).

use std::fmt::Write as _;

use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};

use super::nginx::{
    Misses, X_S3_LOCATION, archive_location, has_access_control, nginx_assemble, nginx_buffers,
    nginx_fail_open, nginx_front_header, nginx_name, nginx_str, nginx_upstream,
    open_file_cache_lines,
};
use super::{
    FrontConfError, FrontOptions, LocalFile, Mode, Place, check_front_input, check_front_kind,
    secret_warning, served_archive,
};
use crate::config::{FrontServer, ServerSettings, Settings};
use crate::paths::accel_target;

const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");

/// The answer for a file nginx sends itself: `X-Accel-Redirect` to the mount's internal
/// location (or its archive's), and with `server.fallback_header` the object URL `fallback`
/// mints, for when the file vanishes before nginx opens it. `None` if the target cannot be a
/// header value.
pub fn send_local(
    server: &ServerSettings,
    file: &LocalFile<'_>,
    fallback: impl FnOnce() -> Option<String>,
) -> Option<HttpResponse> {
    let target = match file.place {
        Place::Root => accel_target(&server.internal_prefix, file.mount_prefix, file.key),
        Place::Archive(_) => accel_target(
            &archive_location(&server.internal_prefix, "/"),
            file.mount_prefix,
            file.key,
        ),
        Place::Cache(_) => accel_target(
            &super::nginx::cache_location(&server.internal_prefix, "/"),
            file.mount_prefix,
            file.key,
        ),
    };
    let mut resp = HttpResponse::Ok();
    resp.insert_header((X_ACCEL_REDIRECT, HeaderValue::try_from(target).ok()?));
    if server.fallback_header
        && let Some(u) = fallback()
        && let Ok(v) = HeaderValue::try_from(u)
    {
        resp.insert_header((X_S3_LOCATION, v));
    }
    Some(resp.finish())
}

/// Renders the nginx configuration for `proxy_pass` + `X-Accel-Redirect` mode: an `upstream`
/// for the `http {}` context and the locations for a `server {}` block, as `opts.part` asks.
pub fn render(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Nginx)?;
    let name = nginx_name(settings, opts, Mode::Proxy);
    let sidecar = nginx_upstream(settings);
    let mut intro = secret_warning(settings, "#");
    intro.push_str(
        "# nginx in front of stowaway, proxy_pass + X-Accel-Redirect mode.\n\
         # Local files are sent by nginx itself (Range, HEAD and conditional requests work);\n\
         # files already moved to S3 get stowaway's 302.\n\
         # The mount locations are `^~` locations, so the site's regex locations\n\
         # (`~* \\.(jpg|css)$`, `~ \\.php$`) cannot take these requests; keep it that way.\n",
    );
    if opts.fail_open {
        intro.push_str(
            "# --fail-open: while stowaway is unreachable (502/504), mounts WITHOUT access control send\n\
             # the files on disk; everything else fails closed.\n",
        );
    }
    let http = format!("\nupstream {name} {{\n    server {sidecar};\n    keepalive 32;\n}}\n");
    let mut o = String::new();
    for (i, m) in settings.mounts.iter().enumerate() {
        let prefix = m.prefix.as_str();
        let open = opts.fail_open && !has_access_control(settings, i);
        let _ = writeln!(
            o,
            "\n    # {prefix}: stowaway decides for every request.\n\
             \x20   location ^~ {prefix} {{\n\
             \x20       server_tokens off;\n\
             {ask}\
             \x20   }}",
            ask = ask_lines(settings, &name, i, open),
        );
        o.push_str(&mount_tail(settings, &name, i, open));
    }
    Ok(nginx_assemble(
        opts,
        &intro,
        "stowaway gen-config nginx",
        &http,
        &o,
    ))
}

/// The lines of a location that hands the client's request to stowaway's decision endpoint
/// (`proxy_pass` without a URI part: the raw client URI, or the normalised one after a
/// rewrite), for proxy mode's mount location and local-first mode's ask location.
pub(super) fn ask_lines(settings: &Settings, name: &str, i: usize, open: bool) -> String {
    format!(
        "\x20       proxy_pass http://{name};           # no URI part: stowaway sees the raw client URI\n\
         \x20       proxy_http_version 1.1;\n\
         \x20       proxy_set_header Connection \"\";       # keep-alive to stowaway\n\
         \x20       proxy_set_header X-Real-IP $remote_addr;\n\
         {front}\
         \x20       proxy_set_header X-Sidecar-Recheck \"\"; # clients cannot set these\n\
         \x20       proxy_set_header X-Original-URI \"\";\n\
         \x20       proxy_pass_request_body off;\n\
         \x20       proxy_set_header Content-Length \"\";\n\
         \x20       proxy_hide_header X-Sendfile;           # only a stowaway set up for lighttpd sends it\n\
         {buffers}{open_line}",
        front = nginx_front_header(settings),
        buffers = nginx_buffers(settings),
        open_line = if open {
            format!(
                "        error_page 502 504 = @{name}_open_{i};   # --fail-open: stowaway unreachable\n"
            )
        } else {
            String::new()
        },
    )
}

/// What follows a mount's location in proxy and local-first mode: the internal location
/// stowaway's `X-Accel-Redirect` points at, the archive's (while S3 is down), the vanished-file
/// fallback and, with `open`, the `--fail-open` locations.
pub(super) fn mount_tail(settings: &Settings, name: &str, i: usize, open: bool) -> String {
    let m = &settings.mounts[i];
    let prefix = m.prefix.as_str();
    let internal = format!("{}{}", settings.server.internal_prefix, &prefix[1..]);
    let alias = nginx_str(&format!("{}/", m.root.display()));
    let front = nginx_front_header(settings);
    let buffers = nginx_buffers(settings);
    let cache = open_file_cache_lines("        ", Misses::Forget);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n    # Target of X-Accel-Redirect; `internal` makes it 404 for outside clients.\n\
         \x20   location ^~ {internal} {{\n\
         \x20       internal;\n\
         \x20       server_tokens off;\n\
         \x20       alias {alias};\n\
         \x20       disable_symlinks on from=$document_root;   # never follow a link out of the root\n\
         {cache}\
         \x20       error_page 404 = @{name}_gone_{i};        # vanished between decision and open\n\
         \x20   }}",
    );
    if let Some(a) = served_archive(m) {
        let _ = writeln!(
            o,
            "\n    # While S3 is unreachable stowaway points here for files still in the archive.\n\
             \x20   location ^~ {loc} {{\n\
             \x20       internal;\n\
             \x20       server_tokens off;\n\
             \x20       alias {alias};\n\
             \x20       disable_symlinks on from=$document_root;\n\
             \x20       error_page 404 = @{name}_gone_{i};\n\
             \x20   }}",
            loc = archive_location(&settings.server.internal_prefix, prefix),
            alias = nginx_str(&format!("{}/", a.display())),
        );
    }
    if let Some(c) = super::cache_dir(settings, i) {
        let _ = writeln!(
            o,
            "\n    # Hot-object cache: stowaway points here for migrated objects it keeps on local disk.\n\
             \x20   location ^~ {loc} {{\n\
             \x20       internal;\n\
             \x20       server_tokens off;\n\
             \x20       alias {alias};\n\
             \x20       disable_symlinks on from=$document_root;\n\
             \x20       open_file_cache off;   # not the site's: a purged entry is never sent from a kept descriptor\n\
             \x20       error_page 404 = @{name}_gone_{i};        # evicted between decision and open\n\
             \x20   }}",
            loc = super::nginx::cache_location(&settings.server.internal_prefix, prefix),
            alias = nginx_str(&format!("{}/", c.display())),
        );
    }
    if settings.server.fallback_header {
        let _ = writeln!(
            o,
            "\n    # The file vanished after stowaway said \"local\": redirect to the URL stowaway sent along.\n\
             \x20   location @{name}_gone_{i} {{\n\
             \x20       server_tokens off;\n\
             \x20       # Guard: only when we really came from an X-Accel-Redirect (not an outside 404).\n\
             \x20       if ($upstream_http_x_s3_location = \"\") {{ return 404; }}\n\
             \x20       add_header Cache-Control \"no-store\" always;\n\
             \x20       return 302 $upstream_http_x_s3_location;\n\
             \x20   }}"
        );
    } else {
        let _ = writeln!(
            o,
            "\n    # The file vanished after stowaway said \"local\": ask again; a recheck is never \"local\".\n\
             \x20   location @{name}_gone_{i} {{\n\
             \x20       server_tokens off;\n\
             \x20       if ($upstream_http_x_accel_redirect = \"\") {{ return 404; }}\n\
             \x20       proxy_pass http://{name}$request_uri;\n\
             \x20       proxy_http_version 1.1;\n\
             \x20       proxy_set_header Connection \"\";\n\
             \x20       proxy_set_header X-Real-IP $remote_addr;\n\
             {front}\
             \x20       proxy_set_header X-Sidecar-Recheck 1;\n\
             \x20       proxy_set_header X-Original-URI \"\";\n\
             \x20       proxy_pass_request_body off;\n\
             \x20       proxy_set_header Content-Length \"\";\n\
             \x20       proxy_hide_header X-Sendfile;\n\
             {buffers}\
             \x20   }}"
        );
    }
    if open {
        o.push_str(&nginx_fail_open(
            settings,
            name,
            i,
            &nginx_str(&m.root.display().to_string()),
        ));
    }
    o
}
