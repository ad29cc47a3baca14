//! `stowaway gen-config`: the front-server configuration that matches a stowaway config.
//! The integration tests run exactly this output, so the shipped snippets cannot drift from
//! what is tested.
//!
//! * [`nginx_proxy`]: nginx, `proxy_pass` + `X-Accel-Redirect` (`nginx/stowaway-proxy.conf`,
//!   or the `http {}` and `server {}` parts `nginx/stowaway-proxy-{http,server}.conf`);
//! * [`nginx_auth`]: nginx, `auth_request` + `try_files`, with a verdict cache
//!   (`nginx/stowaway-auth.conf`, `nginx/stowaway-auth-{http,server}.conf`);
//! * [`lighttpd`]: lighttpd, `mod_proxy` + `X-Sendfile`, with the 404-handler recheck
//!   (`lighttpd/stowaway.conf`, plus the static `lighttpd/stowaway-recheck.lua`);
//! * [`lighttpd_magnet`]: the classic no-sidecar `mod_magnet` script
//!   (`lighttpd/local-or-s3.lua`).

use std::fmt::Write as _;

use crate::config::{FrontServer, Listen, Settings, UrlKind};
use crate::frontauth::FRONT_HEADER_NAME;
use crate::paths::MAX_KEY_BYTES;
use crate::presign::MountUrls;

/// Which part of the nginx configuration `gen-config nginx` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NginxPart {
    /// The `http {}` part and a whole `server {}` of its own (the demo, a dedicated host name).
    #[default]
    Standalone,
    /// Only what belongs in the `http {}` context: the `upstream` (and the verdict cache).
    Http,
    /// Only what belongs inside the operator's existing `server {}` block: the locations.
    Server,
}

/// Options that are about the front server rather than stowaway.
#[derive(Debug, Clone)]
pub struct FrontOptions {
    /// `listen` address of the generated server block, e.g. `127.0.0.1:8080` or `80`.
    pub listen: String,
    /// `server_name`, if any.
    pub server_name: Option<String>,
    /// nginx auth mode: the verdict cache directory (`proxy_cache_path`); `None`:
    /// [`default_verdict_cache_dir`].
    pub verdict_cache_dir: Option<String>,
    /// lighttpd: the directory holding `stowaway-recheck.lua`.
    pub lua_dir: String,
    /// nginx: name of the upstream, the cache zone and the named locations; `None`:
    /// [`default_nginx_name`].
    pub name: Option<String>,
    /// nginx: which part to print.
    pub part: NginxPart,
    /// nginx: mounts without access control serve the files on disk while stowaway is down.
    pub fail_open: bool,
}

impl FrontOptions {
    /// Options with the packaged defaults for the cache and script directories.
    pub fn new(listen: impl Into<String>, server_name: Option<String>) -> Self {
        FrontOptions {
            listen: listen.into(),
            server_name,
            verdict_cache_dir: None,
            lua_dir: DEFAULT_LUA_DIR.into(),
            name: None,
            part: NginxPart::Standalone,
            fail_open: false,
        }
    }
}

/// nginx mode, as far as names are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxMode {
    Proxy,
    Auth,
}

/// The default `--name`: `stowaway_<mode>_<listen address>`. nginx refuses a second
/// `upstream` or `keys_zone` of the same name, and two stowaway instances never share a
/// listen address, so proxy and auth mode and several instances fit into one nginx.
pub fn default_nginx_name(settings: &Settings, mode: NginxMode) -> String {
    let listen = match &settings.server.listen {
        Listen::Tcp(a) => format!("{}_{}", a.ip(), a.port()),
        Listen::Unix(p) => p.to_string_lossy().into_owned(),
    };
    let mut name = format!(
        "stowaway_{}_",
        match mode {
            NginxMode::Proxy => "proxy",
            NginxMode::Auth => "auth",
        }
    );
    for c in listen.chars() {
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
/// Default `--lua-dir`.
pub const DEFAULT_LUA_DIR: &str = "/etc/lighttpd/stowaway";
/// The lighttpd recheck script, shipped as `lighttpd/stowaway-recheck.lua`.
pub const LIGHTTPD_RECHECK_LUA: &str = include_str!("../lighttpd/stowaway-recheck.lua");

/// Why `gen-config` refuses to write a front-server configuration (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontConfError {
    #[error(
        "mount.root {root:?} of mount {prefix} {why}, which the generated front-server config \
         cannot express safely; fix: move the files to a directory whose path is UTF-8 without \
         `$`, `\"`, `'`, `\\`, `{{`, `}}`, `;` or control characters, and set mount.root of mount \
         {prefix} to it"
    )]
    UnsafeRoot {
        prefix: String,
        root: String,
        why: String,
    },
    #[error(
        "server.front is \"{configured}\" but this is the {generated} configuration: stowaway \
         would answer local files with {header}, which {generated} does not act on; fix: set \
         server.front = \"{generated}\" in the stowaway config (or STOWAWAY__SERVER__FRONT={generated}), \
         restart stowaway, and generate again"
    )]
    FrontMismatch {
        configured: &'static str,
        generated: &'static str,
        header: &'static str,
    },
    #[error("{option} {value:?} {why}; fix: {fix}")]
    UnsafeOption {
        option: &'static str,
        value: String,
        why: String,
        fix: &'static str,
    },
}

/// Characters never written into a generated config: `$` (nginx expands variables in `root`,
/// `alias` and most strings, and has no escape for it), quotes and backslash (string
/// escapes), braces and `;` (block and directive ends), and control characters (a line break
/// ends a directive or a comment).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '$' | '"' | '\'' | '\\' | '{' | '}' | ';')
}

fn unsafe_char_in(s: &str) -> Option<String> {
    s.chars()
        .find(|&c| unsafe_char(c))
        .map(|c| format!("contains {c:?}"))
}

/// The archive directory a mount serves while S3 is down (`serve_archive_when_s3_down`).
fn served_archive(m: &crate::config::Mount) -> Option<&std::path::Path> {
    m.archive_root
        .as_deref()
        .filter(|_| m.serve_archive_when_s3_down)
}

/// Refuses mount roots and front options the generated configs could not carry literally.
fn check_front_input(settings: &Settings, opts: &FrontOptions) -> Result<(), FrontConfError> {
    for m in &settings.mounts {
        for dir in std::iter::once(m.root.as_path()).chain(served_archive(m)) {
            let why = match dir.to_str() {
                None => Some("is not valid UTF-8".to_string()),
                Some(r) => unsafe_char_in(r),
            };
            if let Some(why) = why {
                return Err(FrontConfError::UnsafeRoot {
                    prefix: m.prefix.as_str().to_string(),
                    root: dir.to_string_lossy().into_owned(),
                    why,
                });
            }
        }
    }
    // Written unquoted: only the characters an address or a host name needs.
    let plain = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b) || extra.contains(&b))
    };
    if !plain(&opts.listen, b"[]/@= ") {
        return Err(FrontConfError::UnsafeOption {
            option: "--front-listen",
            value: opts.listen.clone(),
            why: "is not a plain address".into(),
            fix: "give a port, host:port, [v6]:port or unix:/path, optionally with listen parameters (letters, digits, `.`, `_`, `-`, `:`, `/`, `=`, `@`, spaces)",
        });
    }
    if let Some(n) = &opts.server_name
        && (!plain(n, b"* ") || n.starts_with(' ') || n.ends_with(' '))
    {
        return Err(FrontConfError::UnsafeOption {
            option: "--server-name",
            value: n.clone(),
            why: "is not a list of plain host names".into(),
            fix: "give host names (letters, digits, `.`, `-`, `_`, `*`) separated by spaces",
        });
    }
    let cache_dir = opts.verdict_cache_dir.clone().unwrap_or_default();
    for (option, value) in [
        ("--verdict-cache-dir", &cache_dir),
        ("--lua-dir", &opts.lua_dir),
    ] {
        if let Some(why) = unsafe_char_in(value) {
            return Err(FrontConfError::UnsafeOption {
                option,
                value: value.clone(),
                why,
                fix: "use a directory path without `$`, `\"`, `'`, `\\`, `{`, `}`, `;` or control characters",
            });
        }
    }
    if let Some(n) = &opts.name
        && (n.is_empty()
            || n.len() > 64
            || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(FrontConfError::UnsafeOption {
            option: "--name",
            value: n.clone(),
            why: "is not a plain name".into(),
            fix: "give 1 to 64 letters, digits or `_` (it names the nginx upstream, cache zone and named locations)",
        });
    }
    Ok(())
}

/// Refuses to write a front config for another front server than the one stowaway answers
/// for: nginx passes an `X-Sendfile: <absolute path>` on to clients, lighttpd an
/// `X-Accel-Redirect` (with an empty body). The front kind also decides which header carries
/// the client address for IP-bound links.
fn check_front_kind(settings: &Settings, generated: FrontServer) -> Result<(), FrontConfError> {
    let name = |f: FrontServer| match f {
        FrontServer::Nginx => "nginx",
        FrontServer::Lighttpd => "lighttpd",
    };
    if settings.server.front == generated {
        return Ok(());
    }
    Err(FrontConfError::FrontMismatch {
        configured: name(settings.server.front),
        generated: name(generated),
        header: match settings.server.front {
            FrontServer::Nginx => "X-Accel-Redirect",
            FrontServer::Lighttpd => "X-Sendfile: <absolute path>",
        },
    })
}

/// The header lines of a stowaway answer other than the one or two that carry a path or URL
/// (status line, Date, Content-Length, Content-Type, Cache-Control, X-Accel-Expires,
/// X-Stowaway-Status, the blank line), rounded up generously.
const HEAD_OVERHEAD: usize = 1024;
/// Longest AWS access key id (IAM: 16 to 128 characters).
const MAX_ACCESS_KEY_ID: usize = 128;
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
fn nginx_buffers(settings: &Settings) -> String {
    let k = nginx_buffer_kib(settings);
    format!(
        "\x20       proxy_buffer_size {k}k;   # stowaway's longest answer head (longest key, presigned URL)\n\
         \x20       proxy_buffers 4 {k}k;\n"
    )
}

/// The resolved `--name` and what `gen-config nginx` prints around the parts.
fn nginx_name(settings: &Settings, opts: &FrontOptions, mode: NginxMode) -> String {
    opts.name
        .clone()
        .unwrap_or_else(|| default_nginx_name(settings, mode))
}

/// Joins the parts as `opts.part` asks: `intro` (comments for every part), the `http {}` lines
/// and the lines for inside a `server {}` block (indented by four).
fn nginx_assemble(
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
fn nginx_fail_open(settings: &Settings, name: &str, i: usize, root: &str) -> String {
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
fn glob_regex(glob: &str) -> String {
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

/// Whether mount `i` requires signed links (never fails open).
fn has_access_control(settings: &Settings, i: usize) -> bool {
    settings.access.iter().any(|a| a.mount == i)
}

/// Renders the nginx configuration for `proxy_pass` + `X-Accel-Redirect` mode: an `upstream`
/// for the `http {}` context and the locations for a `server {}` block, as `opts.part` asks.
pub fn nginx_proxy(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Nginx)?;
    let name = nginx_name(settings, opts, NginxMode::Proxy);
    let sidecar = nginx_upstream(settings);
    let front = nginx_front_header(settings);
    let fallback = settings.server.fallback_header;
    let buffers = nginx_buffers(settings);
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
        let internal = format!("{}{}", settings.server.internal_prefix, &prefix[1..]);
        let alias = nginx_str(&format!("{}/", m.root.display()));
        let open = opts.fail_open && !has_access_control(settings, i);
        let _ = writeln!(
            o,
            "\n    # {prefix}: stowaway decides for every request.\n\
             \x20   location ^~ {prefix} {{\n\
             \x20       server_tokens off;\n\
             \x20       proxy_pass http://{name};           # no URI part: stowaway sees the raw client URI\n\
             \x20       proxy_http_version 1.1;\n\
             \x20       proxy_set_header Connection \"\";       # keep-alive to stowaway\n\
             \x20       proxy_set_header X-Real-IP $remote_addr;\n\
             {front}\
             \x20       proxy_set_header X-Sidecar-Recheck \"\"; # clients cannot set these\n\
             \x20       proxy_set_header X-Original-URI \"\";\n\
             \x20       proxy_pass_request_body off;\n\
             \x20       proxy_set_header Content-Length \"\";\n\
             \x20       proxy_hide_header X-Sendfile;           # only a stowaway set up for lighttpd sends it\n\
             {buffers}{open_line}\
             \x20   }}\n\
             \n\
             \x20   # Target of X-Accel-Redirect; `internal` makes it 404 for outside clients.\n\
             \x20   location ^~ {internal} {{\n\
             \x20       internal;\n\
             \x20       server_tokens off;\n\
             \x20       alias {alias};\n\
             \x20       disable_symlinks on from=$document_root;   # never follow a link out of the root\n\
             \x20       error_page 404 = @{name}_gone_{i};        # vanished between decision and open\n\
             \x20   }}",
            open_line = if open {
                format!(
                    "        error_page 502 504 = @{name}_open_{i};   # --fail-open: stowaway unreachable\n"
                )
            } else {
                String::new()
            },
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
                loc = crate::http::archive_location(&settings.server.internal_prefix, prefix),
                alias = nginx_str(&format!("{}/", a.display())),
            );
        }
        if fallback {
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
                &name,
                i,
                &nginx_str(&m.root.display().to_string()),
            ));
        }
    }
    Ok(nginx_assemble(
        opts,
        &intro,
        "stowaway gen-config nginx",
        &http,
        &o,
    ))
}

/// The `server` parameter of the generated nginx `upstream`: `IP:port` or `unix:/path`.
fn nginx_upstream(settings: &Settings) -> String {
    match &settings.server.listen {
        Listen::Tcp(a) => a.to_string(),
        Listen::Unix(p) => nginx_str(&format!("unix:{}", p.display())),
    }
}

/// The `proxy_set_header` line carrying `server.front_secret_file`'s secret (it overwrites
/// whatever a client sent in that header), or nothing.
fn nginx_front_header(settings: &Settings) -> String {
    match &settings.server.front_auth.front_secret {
        Some(s) => format!(
            "        proxy_set_header {FRONT_HEADER_NAME} {};   # server.front_secret_file\n",
            nginx_str(s.expose())
        ),
        None => String::new(),
    }
}

/// How lighttpd's mod_proxy reaches stowaway: `"host" => ..<sep>"port" => ..` or
/// `"socket" => ..`.
fn lighttpd_backend(settings: &Settings, sep: &str) -> String {
    match &settings.server.listen {
        Listen::Tcp(a) => format!(
            "\"host\" => {},{sep}\"port\" => {}",
            lighttpd_str(&a.ip().to_string()),
            a.port()
        ),
        Listen::Unix(p) => format!("\"socket\" => {}", lighttpd_str(&p.display().to_string())),
    }
}

/// The secret header for `setenv.set-request-header` (which overwrites a client's), or nothing.
fn lighttpd_front_header(settings: &Settings) -> String {
    match &settings.server.front_auth.front_secret {
        Some(s) => format!(", \"{FRONT_HEADER_NAME}\" => {}", lighttpd_str(s.expose())),
        None => String::new(),
    }
}

/// The banner of a generated config that holds the front secret.
fn secret_warning(settings: &Settings, comment: &str) -> String {
    if settings.server.front_auth.front_secret.is_none() {
        return String::new();
    }
    format!(
        "{comment} SECRET: this file holds server.front_secret_file's secret ({FRONT_HEADER_NAME}).\n\
         {comment} Install it readable by root only (chmod 600); the server reads it before dropping privileges.\n\n"
    )
}

/// A string as an nginx config token: bare when plain, double-quoted otherwise.
fn nginx_str(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-~:".contains(&b))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A double-quoted lighttpd config string.
fn lighttpd_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A double-quoted Lua string literal.
fn lua_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for b in s.bytes() {
        match b {
            b'"' => o.push_str("\\\""),
            b'\\' => o.push_str("\\\\"),
            0x20..=0x7e => o.push(b as char),
            _ => {
                let _ = write!(o, "\\{b:03}");
            }
        }
    }
    o.push('"');
    o
}

/// A mount prefix as a literal inside a PCRE pattern (prefixes are plain: `.` is the only
/// metacharacter they can contain).
fn regex_literal(prefix: &str) -> String {
    prefix.replace('.', "\\.")
}

/// Renders the nginx configuration for `auth_request` mode: an `upstream`, the verdict cache
/// (`proxy_cache_path`, unless `server.verdict_ttl` is zero) and a `server` block, all for the
/// `http {}` context.
pub fn nginx_auth(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Nginx)?;
    let name = nginx_name(settings, opts, NginxMode::Auth);
    let cache_dir = opts
        .verdict_cache_dir
        .clone()
        .unwrap_or_else(|| default_verdict_cache_dir(&name));
    let mut o = String::new();
    let buffers = nginx_buffers(settings);
    let sidecar = nginx_upstream(settings);
    let front = nginx_front_header(settings);
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
        auth = crate::http::AUTH_PATH,
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
    if ttl > 0 {
        let _ = writeln!(
            http,
            "\n# nginx creates the last directory itself (owned by its worker user), not its parents.\n\
             proxy_cache_path {} levels=1:2 keys_zone={name}_verdicts:10m\n                 max_size=64m inactive=10m use_temp_path=off;",
            nginx_str(&cache_dir)
        );
    }
    o.push_str(
        "    set $stowaway_uri $uri;   # the URI before any rewrite: keep this first in the server block\n",
    );
    let gone = if fallback {
        format!("@{name}_s3")
    } else {
        format!("@{name}_recheck")
    };
    for (i, m) in settings.mounts.iter().enumerate() {
        let prefix = m.prefix.as_str();
        let auth_loc = format!("{}auth/{i}", settings.server.internal_prefix);
        let root = nginx_str(&m.root.display().to_string());
        let signed = settings.access.iter().any(|a| a.mount == i);
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
             \x20       # $stowaway_key (decoded) only names a file here; never put it into a header.\n\
             \x20       location ~ \"(?s)^{re}(?<stowaway_key>.+)$\" {{\n\
             \x20           if ($request_uri !~ \"^{re}\") {{ return 403; }}   # (rewrite directives are per location)\n\
             \x20           if ($stowaway_uri != $uri) {{ return 403; }}\n\
             \x20           try_files /$stowaway_key {gone};   # vanished after a \"local\" verdict\n\
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
            bufs = buffers.trim_end_matches('\n'),
            re = regex_literal(prefix),
            auth = crate::http::AUTH_PATH,
        );
        if ttl > 0 {
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
        if opts.fail_open && !signed {
            o.push_str(&nginx_fail_open(settings, &name, i, &root));
        }
    }
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
    if !fallback {
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
    Ok(nginx_assemble(
        opts,
        &intro,
        "stowaway gen-config nginx --mode auth",
        &http,
        &o,
    ))
}

/// The URL stowaway's lighttpd recheck uses (the `server.error-handler-404` target).
pub fn lighttpd_recheck_url(settings: &Settings) -> String {
    format!("{}recheck", settings.server.internal_prefix)
}

/// Renders the lighttpd configuration for `mod_proxy` + `X-Sendfile` mode, to be included
/// from lighttpd.conf.
pub fn lighttpd(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    check_front_kind(settings, FrontServer::Lighttpd)?;
    let mut o = String::new();
    let backend = lighttpd_backend(settings, "\n        ");
    let recheck_backend = lighttpd_backend(settings, " ");
    let front = lighttpd_front_header(settings);
    let recheck = lighttpd_recheck_url(settings);
    o.push_str(&secret_warning(settings, "#"));
    let script = format!(
        "{}/stowaway-recheck.lua",
        opts.lua_dir.trim_end_matches('/')
    );
    let _ = writeln!(
        o,
        "# lighttpd in front of stowaway, mod_proxy + X-Sendfile mode.\n\
         # Generated by `stowaway gen-config lighttpd`; include it from lighttpd.conf.\n\
         #\n\
         # stowaway must run with server.front = \"lighttpd\": it then answers a local file with\n\
         # X-Sendfile: <absolute path> and no ETag, Last-Modified or Server header (lighttpd passes\n\
         # every backend header on), so lighttpd sends the file with its own validators; Range, HEAD\n\
         # and conditional requests work. A file already in S3 gets stowaway's 302.\n\
         # If the file vanishes before lighttpd opens it, lighttpd's 404 handler asks stowaway again\n\
         # ({recheck}, with stowaway-recheck.lua); a recheck is never answered \"local\".\n\
         #\n\
         # Needs lighttpd >= 1.4.60 and mod_magnet (Debian: lighttpd-modules-lua). lighttpd refuses\n\
         # to load a module twice: drop any of these that lighttpd.conf already loads. The\n\
         # $HTTP[\"url\"] conditions assume Debian's server.http-parseopts (dot segments removed).",
    );
    let _ = writeln!(
        o,
        "\nserver.modules += ( \"mod_setenv\", \"mod_proxy\", \"mod_magnet\" )"
    );
    for m in &settings.mounts {
        let prefix = m.prefix.as_str();
        let _ = writeln!(
            o,
            "\n# {prefix}: stowaway decides for every request.\n\
             $HTTP[\"url\"] =^ {p} {{\n\
             \x20   # Only lighttpd sets these: stowaway trusts them on rechecks, and takes the client address\n\
             \x20   # for IP-bound links from the last X-Forwarded-For entry, which mod_proxy appends.\n\
             \x20   setenv.set-request-header = ( \"X-Sidecar-Recheck\" => \"\", \"X-Original-URI\" => \"\", \"X-Forwarded-For\" => \"\"{front} )\n\
             \x20   # Only a stowaway set up for nginx sends these: never to clients.\n\
             \x20   setenv.set-response-header = ( \"X-Accel-Redirect\" => \"\", \"X-S3-Location\" => \"\" )\n\
             \x20   server.follow-symlink = \"disable\"\n\
             \x20   proxy.server = ( \"\" => ( (\n\
             \x20       {backend},\n\
             \x20       \"x-sendfile\" => \"enable\",              # without it lighttpd sends an EMPTY 200\n\
             \x20       \"x-sendfile-docroot\" => ( {root}{archive} ),\n\
             \x20   ) ) )\n\
             \x20   server.error-handler-404 = {recheck}   # vanished (or refused) X-Sendfile target\n\
             }}",
            p = lighttpd_str(prefix),
            root = lighttpd_str(&m.root.display().to_string()),
            // The archive too, for the answers while S3 is unreachable.
            archive = served_archive(m)
                .map(|a| format!(", {}", lighttpd_str(&a.display().to_string())))
                .unwrap_or_default(),
            recheck = lighttpd_str(&recheck),
        );
    }
    let _ = writeln!(
        o,
        "\n# The recheck, proxied WITHOUT x-sendfile (so it cannot loop): the script passes the original\n\
         # request target (request.orig-uri) in X-Original-URI and sets X-Sidecar-Recheck.\n\
         $HTTP[\"url\"] == {recheck} {{\n\
         \x20   setenv.set-request-header = ( \"X-Forwarded-For\" => \"\"{front} )\n\
         \x20   magnet.attract-raw-url-to = ( {script} )\n\
         \x20   proxy.server = ( \"\" => ( ( {recheck_backend} ) ) )\n\
         }}",
        recheck = lighttpd_str(&recheck),
        script = lighttpd_str(&script),
    );
    Ok(o)
}

/// Renders the standalone `mod_magnet` script for the classic no-sidecar redirect: local file
/// → lighttpd serves it, missing → 302 to the unsigned bucket (or CDN) URL.
pub fn lighttpd_magnet(settings: &Settings, opts: &FrontOptions) -> Result<String, FrontConfError> {
    check_front_input(settings, opts)?;
    let mut o = String::new();
    let script = format!("{}/local-or-s3.lua", opts.lua_dir.trim_end_matches('/'));
    let _ = writeln!(
        o,
        "-- local-or-s3.lua: the classic no-sidecar redirect for lighttpd >= 1.4.60 (mod_magnet, lighty.r API).\n\
         -- Generated by `stowaway gen-config lighttpd-magnet` from a stowaway config; MOUNTS below can be\n\
         -- edited by hand.\n\
         --\n\
         -- A local file is served by lighttpd itself (Range, HEAD and conditional requests work); a\n\
         -- missing one gets a 302 to its UNSIGNED bucket (or CDN) URL. What stowaway does and this\n\
         -- script does not:\n\
         --   * no signing: only for buckets or CDNs that serve objects publicly. Mounts that stowaway\n\
         --     presigns are marked below; a private bucket answers their redirects with 403;\n\
         --   * no access control: mounts with [mount.access] are refused here (403), never opened up;\n\
         --   * no Cache-Control on the redirect, no logs or metrics of its own;\n\
         --   * paths: it relies on lighttpd's normalisation (server.http-parseopts) and refuses what\n\
         --     remains suspicious (control characters, backslashes, `.`/`..` segments) with 400;\n\
         --   * symlinks: lighty.c.stat follows them; `server.follow-symlink = \"disable\"` makes\n\
         --     lighttpd refuse to send one (403).\n\
         --\n\
         -- lighttpd.conf:\n\
         --   server.modules += ( \"mod_magnet\" )"
    );
    for m in &settings.mounts {
        let _ = writeln!(
            o,
            "--   $HTTP[\"url\"] =^ {} {{\n\
             --       server.follow-symlink = \"disable\"\n\
             --       magnet.attract-physical-path-to = ( {} )\n\
             --   }}",
            lighttpd_str(m.prefix.as_str()),
            lighttpd_str(&script)
        );
    }
    o.push_str("\nlocal MOUNTS = {\n");
    for (i, m) in settings.mounts.iter().enumerate() {
        let base = MountUrls::new(&settings.s3, m).public_url("");
        let denied = settings.access.iter().any(|a| a.mount == i);
        let mut root = m.root.display().to_string();
        if !root.ends_with('/') {
            root.push('/');
        }
        let note = match (denied, m.url.kind) {
            (true, _) => "  -- signed links only in stowaway: refused here",
            (false, UrlKind::Presigned) => {
                "  -- presigned in stowaway: needs a publicly readable bucket here"
            }
            (false, UrlKind::Public) => "",
        };
        let _ = writeln!(
            o,
            "  {{ prefix = {}, root = {}, base = {}, deny = {denied} }},{note}",
            lua_str(m.prefix.as_str()),
            lua_str(&root),
            lua_str(&base)
        );
    }
    o.push_str(
        "}\n\
         \n\
         local r = lighty.r\n\
         local path = r.req_attr[\"uri.path\"]   -- decoded and normalised by lighttpd\n\
         for _, m in ipairs(MOUNTS) do\n\
         \x20 if path:sub(1, #m.prefix) == m.prefix then\n\
         \x20   local key = path:sub(#m.prefix + 1)\n\
         \x20   if key == \"\" or key:sub(-1) == \"/\" then return 404 end\n\
         \x20   if m.deny then return 403 end\n\
         \x20   if key:find(\"[%c\\\\]\") or key:find(\"//\", 1, true) then return 400 end\n\
         \x20   local enc = {}\n\
         \x20   for seg in key:gmatch(\"[^/]+\") do\n\
         \x20     if seg == \".\" or seg == \"..\" then return 400 end\n\
         \x20     enc[#enc + 1] = lighty.c.urlenc(seg)\n\
         \x20   end\n\
         \x20   local fs = m.root .. key\n\
         \x20   local st = lighty.c.stat(fs)\n\
         \x20   if st then\n\
         \x20     if not st.is_file then return 404 end   -- a directory, a device...\n\
         \x20     r.req_attr[\"physical.path\"] = fs        -- mod_staticfile sends it\n\
         \x20     return 0\n\
         \x20   end\n\
         \x20   r.resp_header[\"Location\"] = m.base .. table.concat(enc, \"/\")\n\
         \x20   return 302\n\
         \x20 end\n\
         end\n\
         return 0\n",
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CliOverrides, FsChecks, load_settings};
    use crate::presign::{Signer, SigningCredentials};
    use std::time::{Duration, SystemTime};

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
        for conf in [
            nginx_proxy(&s, &opts()).unwrap(),
            nginx_auth(&s, &opts()).unwrap(),
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
            default_nginx_name(&a, NginxMode::Proxy),
            "stowaway_proxy_127_0_0_1_8700"
        );
        assert_ne!(
            default_nginx_name(&a, NginxMode::Proxy),
            default_nginx_name(&a, NginxMode::Auth)
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
        let key = d.path().join("k");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let s = settings(
            "/srv/static",
            &format!(
                "[[mount]]\nprefix = \"/private/\"\nroot = \"/srv/private\"\nbucket = \"site-media\"\n\
                 key_prefix = \"private/\"\n[mount.access]\nsign_with = \"k1\"\n\
                 [[mount.access.keys]]\nid = \"k1\"\nsecret_file = {}\n",
                toml_str(key.to_str().unwrap())
            ),
        );
        for conf in [
            nginx_proxy(&s, &opts()).unwrap(),
            nginx_auth(&s, &opts()).unwrap(),
        ] {
            assert!(
                !conf.contains("fail-open") && !conf.contains("error_page 50"),
                "{conf}"
            );
        }
        let mut o = opts();
        o.fail_open = true;
        for conf in [nginx_proxy(&s, &o).unwrap(), nginx_auth(&s, &o).unwrap()] {
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
}
