//! The front servers stowaway answers for, one module per server and mode; each owns its
//! answer headers, the header it takes the client address from, and the configuration
//! `stowaway gen-config` writes for it (the integration tests run exactly that output, so the
//! shipped snippets cannot drift from what is tested):
//! * [`nginx_proxy`]: nginx, `proxy_pass` + `X-Accel-Redirect`;
//! * [`nginx_auth`]: nginx, `auth_request` + `try_files`, with a verdict cache;
//! * [`nginx_local`]: nginx, local-first: `try_files` for open mounts, stowaway only for a
//!   miss (its 302 cached by nginx), auth mode for mounts with access control;
//! * [`nginx`]: what the two nginx modes share (names, buffers, parts, quoting, `X-Real-IP`);
//! * [`lighttpd`]: lighttpd, `mod_proxy` + `X-Sendfile`, with the 404-handler recheck;
//! * [`lighttpd_local`]: lighttpd local-first: a `mod_magnet` script sends plain local files,
//!   the rest goes to stowaway as in [`lighttpd`];
//! * [`lighttpd_magnet`]: lighttpd alone, the classic no-sidecar `mod_magnet` script.
//!
//! The server kind is [`FrontServer`] (in config: which answers stowaway gives); [`Mode`] is how
//! that server talks to stowaway. Everything that differs between servers is an exhaustive
//! `match` on [`FrontServer`] here, so a new front server (Caddy, say) is a variant in config,
//! a module here, and the arms the compiler asks for.

pub mod lighttpd;
pub mod lighttpd_local;
pub mod lighttpd_magnet;
pub mod nginx;
pub mod nginx_auth;
pub mod nginx_local;
pub mod nginx_proxy;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::Path;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::config::{FrontServer, ServerSettings, Settings};
use crate::frontauth::{FRONT_HEADER_NAME, Trust};
use crate::url::{CachePolicy, MintedUrl};

pub use lighttpd::DEFAULT_LUA_DIR;
pub use nginx::{
    Misses, OPEN_FILE_CACHE_VALID_SECS, SESSION_TOKEN_ROOM, default_nginx_name,
    default_redirect_cache_dir, default_verdict_cache_dir, max_response_head, nginx_buffer_kib,
    open_file_cache_lines,
};

/// How a front server talks to stowaway (`gen-config --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Files on disk sent by the front server itself, only misses (and anything not plainly
    /// safe) asked; mounts with access control as in auth (nginx) / sendfile (lighttpd) mode.
    /// nginx caches the miss's 302. The default for lighttpd, and for nginx when no mount has
    /// access control.
    LocalFirst,
    /// nginx (the default when a mount has access control): proxy_pass + X-Accel-Redirect.
    Proxy,
    /// nginx: auth_request + try_files, verdicts cached by nginx.
    Auth,
    /// lighttpd: mod_proxy + X-Sendfile, with the 404-handler recheck.
    Sendfile,
    /// lighttpd without stowaway: the standalone mod_magnet script (no signing, no access
    /// control); also spelt `gen-config lighttpd-magnet`.
    Magnet,
}

impl Mode {
    /// As spelt on the command line and in default nginx names.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::LocalFirst => "local-first",
            Mode::Proxy => "proxy",
            Mode::Auth => "auth",
            Mode::Sendfile => "sendfile",
            Mode::Magnet => "magnet",
        }
    }

    /// The mode `gen-config <front>` means without `--mode`. nginx: local-first when every
    /// mount is open (a local hit then never reaches stowaway); with access control on some
    /// mount, proxy mode (one mode for every mount, a rewrite into a mount still judged).
    pub fn default_for(front: FrontServer, settings: &Settings) -> Mode {
        match front {
            FrontServer::Nginx if settings.access.is_empty() => Mode::LocalFirst,
            FrontServer::Nginx => Mode::Proxy,
            FrontServer::Lighttpd => Mode::LocalFirst,
        }
    }
}

/// A file `gen-config --out-dir` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenFile {
    pub name: &'static str,
    pub text: String,
    /// Permission bits (a file holding the front secret is readable by its owner only).
    pub mode: u32,
}

/// What `gen-config` produces for one front server and mode: the text it prints, and the
/// files `--out-dir` writes instead (none for nginx, whose parts the operator redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub printed: String,
    pub files: Vec<GenFile>,
}

/// The configuration of `front` in `mode` for `settings`.
pub fn generate(
    settings: &Settings,
    front: FrontServer,
    mode: Mode,
    opts: &FrontOptions,
) -> Result<Generated, FrontConfError> {
    let printed_only = |text: String| Generated {
        printed: text,
        files: Vec::new(),
    };
    let no_such_mode = |modes: &'static str| FrontConfError::NoSuchMode {
        front: front_name(front),
        mode: mode.as_str(),
        modes,
    };
    match front {
        FrontServer::Nginx => match mode {
            Mode::LocalFirst => nginx_local::render(settings, opts).map(printed_only),
            Mode::Proxy => nginx_proxy::render(settings, opts).map(printed_only),
            Mode::Auth => nginx_auth::render(settings, opts).map(printed_only),
            Mode::Sendfile | Mode::Magnet => Err(no_such_mode("local-first, proxy or auth")),
        },
        FrontServer::Lighttpd => match mode {
            Mode::Sendfile => {
                let conf = lighttpd::render(settings, opts)?;
                let secret = settings.server.front_auth.front_secret.is_some();
                Ok(Generated {
                    files: vec![
                        GenFile {
                            name: "stowaway.conf",
                            text: conf.clone(),
                            mode: if secret { 0o600 } else { 0o644 },
                        },
                        GenFile {
                            name: "stowaway-recheck.lua",
                            text: lighttpd::RECHECK_LUA.into(),
                            mode: 0o644,
                        },
                    ],
                    printed: conf,
                })
            }
            Mode::Magnet => {
                let script = lighttpd_magnet::render(settings, opts)?;
                Ok(Generated {
                    files: vec![GenFile {
                        name: "local-or-s3.lua",
                        text: script.clone(),
                        mode: 0o644,
                    }],
                    printed: script,
                })
            }
            Mode::LocalFirst => lighttpd_local::generate(settings, opts),
            Mode::Proxy | Mode::Auth => Err(no_such_mode("local-first, sendfile or magnet")),
        },
    }
}

fn front_name(f: FrontServer) -> &'static str {
    match f {
        FrontServer::Nginx => "nginx",
        FrontServer::Lighttpd => "lighttpd",
    }
}

// ---------------------------------------------------------------------------------------------
// At run time.

/// A file the front server sends itself.
#[derive(Debug, Clone, Copy)]
pub struct LocalFile<'a> {
    pub mount_prefix: &'a str,
    /// The mount root.
    pub root: &'a Path,
    /// Relative key, not encoded.
    pub key: &'a str,
    pub place: Place<'a>,
}

/// Where a [`LocalFile`] lies.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// Under the mount root.
    Root,
    /// Under this archive directory (served while S3 is unreachable).
    Archive(&'a Path),
    /// Under the mount's hot-object cache directory (docs/cache.md).
    Cache(&'a Path),
}

/// The decision endpoint's answer for a file `front` sends itself; `fallback` mints the
/// object URL for fronts that take one along. `None` if the file's target cannot be a header
/// value.
pub fn send_local(
    front: FrontServer,
    server: &ServerSettings,
    file: &LocalFile<'_>,
    fallback: impl FnOnce() -> Option<String>,
) -> Option<HttpResponse> {
    match front {
        FrontServer::Nginx => nginx_proxy::send_local(server, file, fallback),
        FrontServer::Lighttpd => lighttpd::send_local(file),
    }
}

/// The `X-Accel-Expires` of a redirect from the decision endpoint: how long nginx may keep it
/// (local-first mode caches misses' 302s; other nginx modes ignore it and nginx never passes
/// it on). The URL's cacheable age: a public URL's `redirect_max_age`, a signed one's
/// [`MintedUrl::reusable_for`], `0` when it is not cacheable. Never cached for a signed link
/// (the answer may hang on the client's address). `None` for lighttpd, which would pass it on.
pub fn redirect_expires(
    front: FrontServer,
    url: &MintedUrl,
    signed_link: bool,
    now: u64,
) -> Option<(HeaderName, HeaderValue)> {
    match front {
        FrontServer::Nginx => {
            let secs = match &url.cache {
                _ if signed_link => 0,
                CachePolicy::Shared { max_age, .. } => *max_age,
                CachePolicy::Private { .. } | CachePolicy::NoStore => {
                    url.reusable_for(now).unwrap_or(0)
                }
            };
            Some((nginx::X_ACCEL_EXPIRES, HeaderValue::from(secs)))
        }
        FrontServer::Lighttpd => None,
    }
}

/// The client address for IP-bound links. From the front server (see [`crate::frontauth`]):
/// what it says in its forwarded-address header, or the peer address when the header is
/// absent. From anyone else the peer address, whatever headers they send: a spoofed
/// `X-Real-IP` must never satisfy an IP-bound link.
pub fn client_ip(front: FrontServer, req: &HttpRequest, trust: Trust) -> Option<IpAddr> {
    match trust {
        Trust::Front => match front {
            FrontServer::Nginx => nginx::forwarded_client(req),
            FrontServer::Lighttpd => lighttpd::forwarded_client(req),
        },
        Trust::Direct | Trust::Refused => req.peer_addr().map(|a| a.ip()),
    }
}

/// The last address of a forwarded-address header, or the peer when there is no header.
fn header_ip(value: Option<&HeaderValue>, req: &HttpRequest) -> Option<IpAddr> {
    match value {
        Some(v) => {
            let s = v.to_str().ok()?;
            s.rsplit(',').next()?.trim().parse().ok()
        }
        None => req.peer_addr().map(|a| a.ip()),
    }
}

// ---------------------------------------------------------------------------------------------
// What every generator checks.

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
    /// [`nginx::default_verdict_cache_dir`].
    pub verdict_cache_dir: Option<String>,
    /// nginx local-first mode: the redirect cache directory (`proxy_cache_path`); `None`:
    /// [`nginx::default_redirect_cache_dir`].
    pub redirect_cache_dir: Option<String>,
    /// lighttpd: the directory holding `stowaway-recheck.lua` (and `stowaway-local-first.lua`).
    pub lua_dir: String,
    /// nginx: name of the upstream, the cache zone and the named locations; `None`:
    /// [`nginx::default_nginx_name`].
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
            redirect_cache_dir: None,
            lua_dir: DEFAULT_LUA_DIR.into(),
            name: None,
            part: NginxPart::Standalone,
            fail_open: false,
        }
    }
}

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
    #[error(
        "{front} has no mode {mode:?}; fix: use --mode {modes} (or leave --mode out for the default)"
    )]
    NoSuchMode {
        front: &'static str,
        mode: &'static str,
        modes: &'static str,
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

/// The hot-object cache directory of mount `i`, if it has one.
fn cache_dir(settings: &Settings, i: usize) -> Option<&std::path::Path> {
    settings
        .caches
        .iter()
        .find(|c| c.mount == i)
        .map(|c| c.dir.as_path())
}

/// Refuses mount roots and front options the generated configs could not carry literally.
fn check_front_input(settings: &Settings, opts: &FrontOptions) -> Result<(), FrontConfError> {
    for (i, m) in settings.mounts.iter().enumerate() {
        for dir in std::iter::once(m.root.as_path())
            .chain(served_archive(m))
            .chain(cache_dir(settings, i))
        {
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
    let redirect_dir = opts.redirect_cache_dir.clone().unwrap_or_default();
    for (option, value) in [
        ("--verdict-cache-dir", &cache_dir),
        ("--redirect-cache-dir", &redirect_dir),
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
    let configured = settings.server.front;
    match (configured, generated) {
        (FrontServer::Nginx, FrontServer::Nginx)
        | (FrontServer::Lighttpd, FrontServer::Lighttpd) => Ok(()),
        (FrontServer::Nginx | FrontServer::Lighttpd, _) => Err(FrontConfError::FrontMismatch {
            configured: front_name(configured),
            generated: front_name(generated),
            header: match configured {
                FrontServer::Nginx => "X-Accel-Redirect",
                FrontServer::Lighttpd => "X-Sendfile: <absolute path>",
            },
        }),
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
