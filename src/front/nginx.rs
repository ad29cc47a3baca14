//! What nginx's two modes share: the names of an instance's upstream, cache zone and named
//! locations, the buffer sizes stowaway's answers need, the parts of a generated config
//! (`--part`), the `--fail-open` locations, nginx string quoting, and nginx's side of a
//! request: the client address it forwards (`X-Real-IP`) and the internal locations it sends
//! files from (`X-Accel-Redirect`).

use std::fmt::Write as _;
use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;

use super::{FrontOptions, Mode, NginxPart};
use crate::config::{Listen, Settings};
use crate::frontauth::FRONT_HEADER_NAME;
use crate::paths::MAX_KEY_BYTES;
use crate::url::MountUrls;

/// The object URL next to a local answer (nginx's fallback if the file vanishes), and the
/// redirect target in auth mode.
pub const X_S3_LOCATION: HeaderName = HeaderName::from_static("x-s3-location");
/// How long nginx may cache an answer (auth verdicts, local-first redirects); nginx never
/// passes it on to the client.
pub const X_ACCEL_EXPIRES: HeaderName = HeaderName::from_static("x-accel-expires");
/// The client address the generated configs always overwrite.
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The client address nginx forwards: `X-Real-IP` (`$remote_addr`, which every generated
/// location sets, overwriting a client's), or the peer when it is absent. Only called for
/// requests from the authenticated front server.
pub fn forwarded_client(req: &HttpRequest) -> Option<IpAddr> {
    super::header_ip(req.headers().get(X_REAL_IP), req)
}

/// The nginx internal location of mount `mount_prefix`'s archive (`X-Accel-Redirect` target
/// while S3 is down). `@` cannot occur in a mount prefix, so it never equals a mount's own
/// internal location.
pub fn archive_location(internal_prefix: &str, mount_prefix: &str) -> String {
    format!("{internal_prefix}@archive/{}", &mount_prefix[1..])
}

/// The nginx internal location of mount `mount_prefix`'s hot-object cache (`X-Accel-Redirect`
/// target for cached objects, docs/cache.md).
pub fn cache_location(internal_prefix: &str, mount_prefix: &str) -> String {
    format!("{internal_prefix}@cache/{}", &mount_prefix[1..])
}

/// The default `--name`: `stowaway_<mode>_<listen address>`. nginx refuses a second
/// `upstream` or `keys_zone` of the same name, and two stowaway instances never share a
/// listen address, so proxy and auth mode and several instances fit into one nginx.
pub fn default_nginx_name(settings: &Settings, mode: Mode) -> String {
    let listen = match &settings.server.listen {
        Listen::Tcp(a) => format!("{}_{}", a.ip(), a.port()),
        Listen::Unix(p) => p.to_string_lossy().into_owned(),
    };
    let mut name = String::from("stowaway_");
    // `local-first`: nginx names are letters, digits and `_`.
    for c in mode.as_str().chars().chain(['_']).chain(listen.chars()) {
        name.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    // `/run/x.sock` starts with a separator: no double underscore.
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    name.trim_end_matches('_').to_string()
}

/// The default `--verdict-cache-dir`: `/var/cache/<name>`. nginx creates the last directory
/// of a `proxy_cache_path` itself (owned by its worker user) but not its parents, and Debian
/// has no `/var/cache/nginx`; `/var/cache` exists everywhere.
pub fn default_verdict_cache_dir(name: &str) -> String {
    format!("/var/cache/{name}")
}

/// The default `--redirect-cache-dir` (local-first mode): `/var/cache/<name>_redirects`, beside
/// the verdict cache (two `proxy_cache_path`s may not share a directory).
pub fn default_redirect_cache_dir(name: &str) -> String {
    format!("/var/cache/{name}_redirects")
}

/// `open_file_cache_valid`: how long nginx may keep using what it learnt about a file (its
/// descriptor, size, mtime, whether it exists) before it looks again. A file replaced or
/// deleted meanwhile may be sent from the old descriptor for up to this long.
pub const OPEN_FILE_CACHE_VALID_SECS: u64 = 2;

/// Whether a location's `open_file_cache` also remembers that a file is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misses {
    /// `open_file_cache_errors off`: a file that appears is found at once.
    Forget,
    /// `open_file_cache_errors on`, for the root of a mount with a hot cache in local-first
    /// mode: a cached object is otherwise a failed `openat` walk of the root on every request
    /// (0.84× of a local file, benches case 12). The price: a file that appears in the root
    /// where a copy is cached (the app wrote the same name again) wins within
    /// [`OPEN_FILE_CACHE_VALID_SECS`] instead of at once, the same bound as a replaced file.
    Remember,
}

/// The `open_file_cache` lines of every location nginx sends files from; what is cached is
/// rechecked every [`OPEN_FILE_CACHE_VALID_SECS`] seconds.
pub fn open_file_cache_lines(indent: &str, misses: Misses) -> String {
    let errors = match misses {
        Misses::Forget => "open_file_cache_errors off;          # a miss is never cached",
        Misses::Remember => {
            "open_file_cache_errors on;           # a miss too: a file that appears wins within open_file_cache_valid"
        }
    };
    format!(
        "{indent}open_file_cache max=10000 inactive=30s;   # descriptors of files sent recently\n\
         {indent}open_file_cache_valid {OPEN_FILE_CACHE_VALID_SECS}s;            # a replaced or deleted file: at most this stale\n\
         {indent}open_file_cache_min_uses 1;\n\
         {indent}{errors}\n"
    )
}

/// The named location that looks into mount `i`'s hot-object cache (docs/cache.md) for
/// `file` after the root missed, then goes on to `next`. With open_file_cache, as the root
/// (without it a cached object costs a third more per request, benches case 12): a purged
/// entry may be sent from a kept descriptor for up to `open_file_cache_valid`, which is why
/// the uploader waits `cache::DESCRIPTOR_GRACE` after purging before the local file goes.
pub(super) fn cached_location(
    name: &str,
    i: usize,
    prefix: &str,
    dir: &std::path::Path,
    file: &str,
    next: &str,
) -> String {
    format!(
        "\n\x20   # {prefix}: not in the root: stowaway's hot-object cache, then {next}.\n\
         \x20   location @{name}_cached_{i} {{\n\
         \x20       server_tokens off;\n\
         \x20       root {root};\n\
         \x20       disable_symlinks on from=$document_root;\n\
         {ofc}\
         \x20       try_files {file} {next};\n\
         \x20   }}\n",
        root = nginx_str(&dir.display().to_string()),
        ofc = open_file_cache_lines("        ", Misses::Forget),
    )
}

/// The header lines of a stowaway answer other than the one or two that carry a path or URL
/// (status line, Date, Content-Length, Content-Type, Cache-Control, X-Accel-Expires,
/// X-Stowaway-Status, the blank line), rounded up generously.
const HEAD_OVERHEAD: usize = 1024;
/// Longest AWS access key id (IAM: 16 to 128 characters).
pub(super) const MAX_ACCESS_KEY_ID: usize = 128;
/// Room for the session token of temporary credentials. AWS documents no maximum ("the size
/// of the security token is not fixed"); today's tokens are 400 to 2000 characters. The
/// buffers leave room for a token of this many bytes even if every byte is percent-encoded.
pub const SESSION_TOKEN_ROOM: usize = 4096;

/// Upper bound, in bytes, of the response head stowaway sends the front server for any key it
/// accepts ([`MAX_KEY_BYTES`] bytes, each percent-encoded to three): the local target
/// (`X-Accel-Redirect` or `X-Sendfile`) plus the object URL (`X-S3-Location` or `Location`,
/// presigned with the longest access key id, [`SESSION_TOKEN_ROOM`] and the mount's response
/// overrides).
pub fn max_response_head(settings: &Settings) -> usize {
    let key = 3 * MAX_KEY_BYTES;
    let region = settings.s3.region.as_deref().map_or(0, str::len).max(32);
    let mut worst = 0;
    for m in &settings.mounts {
        let accel = "x-accel-redirect: \r\n".len()
            + settings.server.internal_prefix.len()
            + m.prefix.as_str().len()
            + key;
        let sendfile = "x-sendfile: \r\n".len() + 3 * m.root.as_os_str().len() + 1 + key;
        let overrides: usize = [
            ("response-cache-control", &m.url.response_cache_control),
            (
                "response-content-disposition",
                &m.url.response_content_disposition,
            ),
            ("response-content-type", &m.url.response_content_type),
        ]
        .iter()
        .filter_map(|(n, v)| v.as_ref().map(|v| n.len() + 2 + 3 * v.len()))
        .sum();
        let query = [
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=",
            "%2FYYYYMMDD%2F",
            "%2Fs3%2Faws4_request&X-Amz-Date=YYYYMMDDTHHMMSSZ&X-Amz-Expires=",
            "18446744073709551615",
            "&X-Amz-Security-Token=",
            "&X-Amz-SignedHeaders=host",
            "&X-Amz-Signature=",
        ]
        .iter()
        .map(|s| s.len())
        .sum::<usize>()
            + 3 * MAX_ACCESS_KEY_ID
            + 3 * region
            + 3 * SESSION_TOKEN_ROOM
            + overrides
            + 64;
        let url = "x-s3-location: \r\n".len()
            + MountUrls::new(&settings.s3, m).public_url("").len()
            + key
            + query;
        worst = worst.max(accel.max(sendfile) + url);
    }
    worst + HEAD_OVERHEAD
}

/// `proxy_buffer_size` (in KiB, a whole number of 4 KiB pages) that holds
/// [`max_response_head`]: nginx reads the whole head of an upstream answer into this one
/// buffer and fails the request (502, or 500 for `auth_request`) with "upstream sent too big
/// header" when it does not fit.
pub fn nginx_buffer_kib(settings: &Settings) -> usize {
    max_response_head(settings).div_ceil(4096) * 4
}

/// The buffer lines for every location that proxies to stowaway. `proxy_buffers` needs at
/// least two buffers beyond the busy ones nginx keeps by default (twice the buffer size).
pub(super) fn nginx_buffers(settings: &Settings) -> String {
    let k = nginx_buffer_kib(settings);
    format!(
        "\x20       proxy_buffer_size {k}k;   # stowaway's longest answer head (longest key, presigned URL)\n\
         \x20       proxy_buffers 4 {k}k;\n"
    )
}

/// The resolved `--name` and what `gen-config nginx` prints around the parts.
pub(super) fn nginx_name(settings: &Settings, opts: &FrontOptions, mode: Mode) -> String {
    opts.name
        .clone()
        .unwrap_or_else(|| default_nginx_name(settings, mode))
}

/// Joins the parts as `opts.part` asks: `intro` (comments for every part), the `http {}` lines
/// and the lines for inside a `server {}` block (indented by four).
pub(super) fn nginx_assemble(
    opts: &FrontOptions,
    intro: &str,
    generated_by: &str,
    http: &str,
    server: &str,
) -> String {
    let mut o = String::new();
    match opts.part {
        NginxPart::Standalone => {
            let _ = writeln!(
                o,
                "{intro}# Generated by `{generated_by}`; everything here belongs in the http {{}} context.\n\
                 # To add stowaway to an existing server block instead, use --part http and --part server.\n\
                 {http}\nserver {{\n    listen {};",
                opts.listen
            );
            if let Some(n) = &opts.server_name {
                let _ = writeln!(o, "    server_name {n};");
            }
            o.push_str("    server_tokens off;\n");
            o.push_str(server);
            o.push_str("}\n");
        }
        NginxPart::Http => {
            let _ = write!(
                o,
                "{intro}# Generated by `{generated_by} --part http`: include it in the http {{}} context\n\
                 # (Debian: /etc/nginx/conf.d/), once per stowaway instance.\n{http}"
            );
        }
        NginxPart::Server => {
            let _ = write!(
                o,
                "{intro}# Generated by `{generated_by} --part server`: include it INSIDE your existing\n\
                 # server {{}} block, as its first line (before any rewrite, set or if of the block), e.g.\n\
                 #     server {{\n\
                 #         include /etc/nginx/snippets/stowaway-server.conf;\n\
                 #         ...\n\
                 # The http {{}} part (`--part http`, same --name) must be included too.\n{server}"
            );
        }
    }
    o
}

/// The fail-open path of mount `i` (`--fail-open`, mounts without access control only): when
/// stowaway cannot be reached, nginx sends the file from disk itself, with the same symlink
/// rule as a local answer; a missing file is a 404 (nothing can say where it went).
pub(super) fn nginx_fail_open(settings: &Settings, name: &str, i: usize, root: &str) -> String {
    let m = &settings.mounts[i];
    let prefix = m.prefix.as_str();
    let open = format!("{}fail-open/{i}/", settings.server.internal_prefix);
    // What stowaway answers 404 for (its own temp files, the mount's ignore patterns) stays
    // hidden when nginx serves without it. Regex locations match in order: this one first.
    let hidden = if m.serve_ignored {
        String::new()
    } else {
        let alts: Vec<String> = std::iter::once(format!("{}*", crate::ignore::OWN_PREFIX))
            .chain(m.ignore.iter().cloned())
            .map(|p| glob_regex(&p))
            .collect();
        format!(
            "        location ~ \"(?s)^{open_re}(?:.*/)?(?:{})(?:/|$)\" {{   # mount.ignore\n\
                         internal;\n\
                         return 404;\n\
                     }}\n",
            alts.join("|"),
            open_re = regex_literal(&open),
        )
    };
    format!(
        "\n    # stowaway unreachable (--fail-open): {prefix} files on disk are sent as they are.\n\
         \x20   location @{name}_open_{i} {{\n\
         \x20       server_tokens off;\n\
         \x20       rewrite \"(?s)^{re}(.+)$\" {open}$1 last;\n\
         \x20       return 404;\n\
         \x20   }}\n\
         \x20   location ^~ {open} {{\n\
         \x20       internal;\n\
         \x20       server_tokens off;\n\
         \x20       root {root};\n\
         \x20       disable_symlinks on from=$document_root;   # never follow a link out of the root\n\
         {hidden}\
         \x20       # A file name, never a directory (try_files would hand that to the index module).\n\
         \x20       location ~ \"(?s)^{open_re}(?<stowaway_key>.*[^/])$\" {{\n\
         \x20           internal;\n\
         \x20           try_files /$stowaway_key =404;\n\
         \x20       }}\n\
         \x20       return 404;\n\
         \x20   }}\n",
        re = regex_literal(prefix),
        open_re = regex_literal(&open),
    )
}

/// A `mount.ignore` glob (one path component: `*` any run, `?` one byte) as PCRE. Every byte
/// but letters and digits is written `\xHH`, so nothing in a pattern can end the quoted nginx
/// string, expand a variable or act as a regex metacharacter.
pub(super) fn glob_regex(glob: &str) -> String {
    let mut o = String::new();
    for b in glob.bytes() {
        match b {
            b'*' => o.push_str("[^/]*"),
            b'?' => o.push_str("[^/]"),
            b if b.is_ascii_alphanumeric() => o.push(b as char),
            b => {
                let _ = write!(o, "\\x{b:02x}");
            }
        }
    }
    o
}

/// A `mount.ignore` glob as PCRE for one segment of a raw request target (`$request_uri`): as
/// [`glob_regex`], but a wildcard never runs into the query either.
pub(super) fn glob_regex_in_uri(glob: &str) -> String {
    glob_regex(glob).replace("[^/]", "[^/?]")
}

/// Whether mount `i` requires signed links (never fails open).
pub(super) fn has_access_control(settings: &Settings, i: usize) -> bool {
    settings.access.iter().any(|a| a.mount == i)
}

/// The `server` parameter of the generated nginx `upstream`: `IP:port` or `unix:/path`.
pub(super) fn nginx_upstream(settings: &Settings) -> String {
    match &settings.server.listen {
        Listen::Tcp(a) => a.to_string(),
        Listen::Unix(p) => nginx_str(&format!("unix:{}", p.display())),
    }
}

/// The `proxy_set_header` line carrying `server.front_secret_file`'s secret (it overwrites
/// whatever a client sent in that header), or nothing.
pub(super) fn nginx_front_header(settings: &Settings) -> String {
    match &settings.server.front_auth.front_secret {
        Some(s) => format!(
            "        proxy_set_header {FRONT_HEADER_NAME} {};   # server.front_secret_file\n",
            nginx_str(s.expose())
        ),
        None => String::new(),
    }
}

/// A string as an nginx config token: bare when plain, double-quoted otherwise.
pub(super) fn nginx_str(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-~:".contains(&b))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A mount prefix as a literal inside a PCRE pattern (prefixes are plain: `.` is the only
/// metacharacter they can contain).
pub(super) fn regex_literal(prefix: &str) -> String {
    prefix.replace('.', "\\.")
}
