//! Command-line interface: `serve`, `check-config`, `print-config`, and the glue that turns a
//! validated configuration into a running service. This is the binary edge: errors become
//! messages and exit codes here.

pub mod migrate;
pub mod prune;
pub mod reconcile;
pub mod rm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::FrontServer;
use crate::config::{self, CliOverrides, FsChecks, LogFormat, Settings};
use crate::front::{self, FrontOptions, Mode};
use crate::http::{configure_metrics, configure_with};
use crate::reload::Services;

/// Exit code for a configuration that cannot be used.
pub const EXIT_CONFIG: u8 = 2;

/// stowaway: serve user files from local disk or S3 behind nginx or lighttpd, and move them to
/// S3 in the background.
#[derive(Debug, Parser)]
#[command(name = "stowaway", version = crate::LONG_VERSION, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// The options of [`Common`], also accepted before the command (`stowaway --config F serve`);
/// one given after the command wins.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalFlags {
    /// TOML configuration file (as --config after the command).
    #[arg(long = "config", short = 'c', value_name = "PATH")]
    pub g_config: Option<PathBuf>,
    /// Override server.listen (as --listen after the command).
    #[arg(long = "listen", value_name = "ADDR")]
    pub g_listen: Option<String>,
    /// Override log.format: text or json.
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub g_log_format: Option<String>,
    /// Override log.level, e.g. debug; the AWS SDK stays at warn unless named (debug,aws=debug).
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub g_log_level: Option<String>,
}

impl Command {
    /// The command's common options; `None` for commands without a config (`gen-assets`).
    fn common_mut(&mut self) -> Option<&mut Common> {
        match self {
            Command::Serve { common, .. }
            | Command::CheckConfig { common, .. }
            | Command::GenConfig { common, .. }
            | Command::Sign { common, .. }
            | Command::Healthcheck { common, .. }
            | Command::Status { common, .. }
            | Command::PrintConfig { common, .. }
            | Command::Migrate { common, .. }
            | Command::PruneArchive { common, .. } => Some(common),
            Command::Rm { common, .. } => Some(common),
            Command::Reconcile { common, .. } => Some(common),
            Command::GenAssets { .. } => None,
        }
    }
}

/// Parses the command line, folding options given before the command into the command's own:
/// after the command beats before it, and both beat `STOWAWAY_CONFIG`.
pub fn parse_cli() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _, parser::ValueSource};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sub = matches.subcommand().map(|(_, m)| m);
    let explicit =
        |id: &str| sub.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine));
    let g = cli.global.clone();
    let Some(c) = cli.command.common_mut() else {
        return cli;
    };
    if let Some(v) = g.g_config
        && !explicit("config")
    {
        c.config = Some(v);
    }
    if let Some(v) = g.g_listen
        && !explicit("listen")
    {
        c.listen = Some(v);
    }
    if let Some(v) = g.g_log_format
        && !explicit("log_format")
    {
        c.log_format = Some(v);
    }
    if let Some(v) = g.g_log_level
        && !explicit("log_level")
    {
        c.log_level = Some(v);
    }
    cli
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// TOML configuration file (see examples/stowaway.toml) [default:
    /// /etc/stowaway/stowaway.toml]. Environment variables STOWAWAY__SECTION__KEY override
    /// it, and command-line flags override both.
    #[arg(long, short = 'c', value_name = "PATH", env = "STOWAWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Warn about unknown config keys instead of refusing the configuration (exit 2).
    #[arg(long)]
    pub lenient: bool,
    /// Override server.listen, e.g. 127.0.0.1:8700 or unix:/run/stowaway/stowaway.sock.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Override log.format: text or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Override log.level: error, warn, info, debug, trace, or a RUST_LOG-style filter.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

impl Common {
    /// The file to read: `--config`, else the default path.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_PATH))
    }

    fn overrides(&self) -> CliOverrides {
        CliOverrides {
            listen: self.listen.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: answer the front server's decision requests (and, unless
    /// uploader.enabled = false, migrate files to S3 in the background).
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// Validate the configuration and exit: 0 if usable, 2 with a message naming the key if not.
    CheckConfig {
        #[command(flatten)]
        common: Common,
        /// Fail (exit 2) on unknown keys even with --lenient (the default without it).
        #[arg(long)]
        strict: bool,
        /// Also talk to S3: credentials resolve, every bucket exists in s3.region, and a small
        /// object can be written and deleted under each upload mount's key_prefix.
        #[arg(long)]
        online: bool,
    },
    /// Print the front-server configuration (nginx or lighttpd) that matches this config:
    /// prefixes, internal locations, roots and the sidecar address.
    GenConfig {
        #[command(flatten)]
        common: Common,
        /// Which front server.
        #[arg(value_parser = front_arg())]
        front: FrontArg,
        /// How the front server talks to stowaway: nginx `local-first` (nginx sends files on
        /// disk itself, asks stowaway only for a miss and caches its 302; the default when no
        /// mount has access control), `proxy` (proxy_pass + X-Accel-Redirect, the default
        /// otherwise) or `auth` (auth_request + try_files, with a verdict cache); lighttpd
        /// `local-first` (the default: lighttpd sends plain local files of mounts without
        /// access control itself, the rest goes to stowaway as in `sendfile`), `sendfile`
        /// (mod_proxy + X-Sendfile for every request) or `magnet`.
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Address the front server listens on (the `listen` of the generated server block).
        #[arg(long, default_value = "80", value_name = "ADDR")]
        front_listen: String,
        /// nginx `server_name` for the generated server block.
        #[arg(long, value_name = "NAME")]
        server_name: Option<String>,
        /// nginx: `standalone` (upstream and a server block of its own), `http` (the part for
        /// the http {} context: upstream, verdict cache) or `server` (the locations, to include
        /// as the first line of an existing server block).
        #[arg(long, value_enum, default_value = "standalone")]
        part: PartArg,
        /// nginx: name of the upstream, the verdict cache zone and the named locations
        /// [default: stowaway_<mode>_<listen address>, unique per instance and mode].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// nginx: while stowaway is unreachable, mounts WITHOUT access control send the files on
        /// disk (mounts with access control always fail closed).
        #[arg(long)]
        fail_open: bool,
        /// nginx auth mode: directory of nginx's verdict cache (`proxy_cache_path`)
        /// [default: /var/cache/<name>].
        #[arg(long, value_name = "DIR")]
        verdict_cache_dir: Option<String>,
        /// nginx local-first mode: directory of nginx's redirect cache (`proxy_cache_path`)
        /// [default: /var/cache/<name>_redirects].
        #[arg(long, value_name = "DIR")]
        redirect_cache_dir: Option<String>,
        /// lighttpd: directory holding stowaway-recheck.lua, stowaway-local-first.lua (or
        /// local-or-s3.lua)
        /// [default: --out-dir if given, else /etc/lighttpd/stowaway].
        #[arg(long, value_name = "DIR")]
        lua_dir: Option<String>,
        /// lighttpd, lighttpd-magnet: write every file the setup needs into DIR (stowaway.conf,
        /// stowaway-recheck.lua and stowaway-local-first.lua, or local-or-s3.lua) instead of
        /// printing the config.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print a signed, expiring link to a file on a mount with [mount.access] (the algorithm
    /// is in docs/signed-links.md), e.g. `stowaway sign "/private/a b.pdf" --ttl 1h`.
    Sign {
        #[command(flatten)]
        common: Common,
        /// The file's URL path, NOT percent-encoded, e.g. "/private/a b.pdf".
        path: String,
        /// How long the link stays valid, e.g. "15m", "1h", "7d".
        #[arg(
            long,
            value_name = "DURATION",
            required_unless_present = "expires",
            conflicts_with = "expires"
        )]
        ttl: Option<String>,
        /// Expiry as a Unix time in seconds, instead of --ttl.
        #[arg(long, value_name = "UNIX_TIME")]
        expires: Option<u64>,
        /// Bind the link to one method (a GET link also allows HEAD).
        #[arg(long, value_name = "METHOD")]
        method: Option<String>,
        /// Bind the link to clients in this address prefix, e.g. 10.0.0.0/8 or 2001:db8::/32.
        #[arg(long, value_name = "PREFIX")]
        ip_prefix: Option<String>,
        /// Sign with this key id instead of the mount's access.sign_with.
        #[arg(long, value_name = "ID")]
        kid: Option<String>,
        /// Printed in front of the link, e.g. https://www.example.com.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// Ask the running service whether it is alive (GET /healthz) or, with --ready, ready
    /// (GET /readyz: roots readable, credentials valid, S3 reachable, uploader not stuck).
    /// Exit 0 if so, 1 if not: for scripts, Docker and systemd.
    Healthcheck {
        #[command(flatten)]
        common: Common,
        /// Check readiness instead of liveness.
        #[arg(long)]
        ready: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Per mount: the backlog still to upload (files, bytes, oldest age) and the archive size,
    /// from a scan of the folders (no S3 calls).
    Status {
        #[command(flatten)]
        common: Common,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (defaults, file, environment and flags merged) as
    /// TOML, with secrets redacted.
    PrintConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Upload the existing backlog of every mount with upload = true once: upload, verify and
    /// finalize each settled file, then exit (1 if any file failed). Files changed within
    /// uploader.settle are skipped and named.
    Migrate {
        #[command(flatten)]
        common: Common,
        /// List what would be uploaded and finalized; change nothing (no S3 requests either).
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove archived files older than their mount's archive_retention whose object is still
    /// verified in S3 (size and checksum); a file whose object is missing, different or
    /// unverifiable is kept and named. Exit 1 if any was, or S3 could not be asked.
    PruneArchive {
        #[command(flatten)]
        common: Common,
        /// Verify and list what would be pruned; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON document on stdout: per-mount summaries and every file past its retention.
        #[arg(long)]
        json: bool,
    },
    /// Remove files everywhere they live: the tombstone in the bucket first (until
    /// mount.tombstone_ttl no node serves or uploads the path again, even if a copy comes
    /// back), then the local file, its archived copy, the S3 object and the hot cache's copy.
    /// One line per place; exit 1 if any failed (run it again: what is done stays done). The
    /// admin API (server.admin_listen) does the same over HTTP.
    Rm {
        #[command(flatten)]
        common: Common,
        /// URL paths, NOT percent-encoded, e.g. "/static/avatars/a b.jpg".
        #[arg(required = true, value_name = "URL-PATH")]
        paths: Vec<String>,
        /// In a versioned bucket, delete every version and delete marker of each object
        /// (ListObjectVersions, then DeleteObject per version) instead of leaving a delete
        /// marker.
        #[arg(long)]
        all_versions: bool,
    },
    /// Compare each upload mount's root, archive and bucket prefix and name every discrepancy:
    /// archived files whose object is missing or different, orphan objects, files never
    /// uploaded, temp files of dead processes, abandoned multipart uploads. Changes nothing
    /// unless asked. Exit 0: nothing to look at (or all of it fixed); 1: discrepancies remain;
    /// 3: the comparison could not be finished (S3 or a directory unreadable).
    Reconcile {
        #[command(flatten)]
        common: Common,
        /// Abort abandoned multipart uploads (older than uploader.abandoned_upload_age), remove
        /// dead processes' archive temp files and put detached files back under their names.
        #[arg(long)]
        fix: bool,
        /// Delete orphan objects (no local or archived copy, looked up again just before).
        /// Never tombstones or objects under another mount's prefix.
        #[arg(long)]
        delete_orphans: bool,
        /// Findings and per-mount summaries as one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Only the mount with this prefix, e.g. /static/.
        #[arg(long, value_name = "PREFIX")]
        mount: Option<String>,
        /// ListObjectsV2 page size (S3's 1000 by default).
        #[arg(long, hide = true)]
        page_size: Option<i32>,
    },
    /// Write the man page (stowaway.1) and shell completions (bash, zsh, fish) into a
    /// directory: used to build the Debian package, so they always match this binary.
    #[command(hide = true)]
    GenAssets {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// `gen-config`'s front-server argument: the server, and the mode its spelling implies
/// (`lighttpd-magnet` is `lighttpd --mode magnet`).
#[derive(Debug, Clone, Copy)]
pub struct FrontArg {
    pub front: FrontServer,
    pub mode: Option<Mode>,
}

fn front_arg() -> impl clap::builder::TypedValueParser<Value = FrontArg> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new([
        PossibleValue::new("nginx").help("nginx (see --mode)"),
        PossibleValue::new("lighttpd")
            .help("lighttpd: local files sent by lighttpd, the rest via mod_proxy + X-Sendfile (see --mode)"),
        PossibleValue::new("lighttpd-magnet").help(
            "lighttpd without stowaway: the standalone mod_magnet script (no signing, no access control)",
        ),
    ])
    .map(|s| match s.as_str() {
        "nginx" => FrontArg {
            front: FrontServer::Nginx,
            mode: None,
        },
        "lighttpd-magnet" => FrontArg {
            front: FrontServer::Lighttpd,
            mode: Some(Mode::Magnet),
        },
        _ => FrontArg {
            front: FrontServer::Lighttpd,
            mode: None,
        },
    })
}

/// Which part of the nginx configuration to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartArg {
    /// The upstream (and verdict cache) plus a server block of its own.
    Standalone,
    /// Only the http {} part: upstream, verdict cache.
    Http,
    /// Only the locations, for inside an existing server block.
    Server,
}

/// `gen-config`: prints the front config, or with `--out-dir` writes every file it needs.
fn gen_config(
    settings: &Settings,
    front: FrontArg,
    mode: Option<Mode>,
    mut opts: FrontOptions,
    lua_dir: Option<String>,
    out_dir: Option<PathBuf>,
) -> ExitCode {
    let refuse = |msg: &str| {
        eprintln!("stowaway: gen-config: {msg}");
        ExitCode::from(EXIT_CONFIG)
    };
    let mode = match (front.mode, mode) {
        (Some(implied), Some(given)) if implied != given => {
            return refuse(&format!(
                "lighttpd-magnet is lighttpd --mode magnet, not --mode {}; fix: drop --mode",
                given.as_str()
            ));
        }
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => Mode::default_for(front.front, settings),
    };
    match front.front {
        FrontServer::Nginx => {
            if out_dir.is_some() {
                return refuse(
                    "--out-dir is for lighttpd; fix: for nginx redirect `--part http` and `--part server` into files",
                );
            }
        }
        FrontServer::Lighttpd => {
            if opts.fail_open || opts.name.is_some() || opts.part != front::NginxPart::Standalone {
                return refuse(
                    "--part, --name and --fail-open are for nginx; fix: drop them for lighttpd",
                );
            }
        }
    }
    // The generated config names the scripts by absolute path: lighttpd resolves relative
    // paths against its own working directory, not the config's.
    let out_dir = match out_dir.map(std::path::absolute).transpose() {
        Ok(d) => d,
        Err(e) => return refuse(&format!("--out-dir: {e}")),
    };
    opts.lua_dir = match (lua_dir, &out_dir) {
        (Some(d), _) => d,
        (None, Some(d)) => d.display().to_string(),
        (None, None) => front::DEFAULT_LUA_DIR.into(),
    };
    let generated = match front::generate(settings, front.front, mode, &opts) {
        Ok(g) => g,
        Err(e) => return refuse(&e.to_string()),
    };
    let Some(dir) = out_dir else {
        print!("{}", generated.printed);
        return ExitCode::SUCCESS;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return refuse(&format!("--out-dir {}: {e}", dir.display()));
    }
    for f in &generated.files {
        let path = dir.join(f.name);
        if let Err(e) = write_mode(&path, &f.text, f.mode) {
            return refuse(&format!("cannot write {}: {e}", path.display()));
        }
        eprintln!("stowaway: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// Writes `text` to `path` with permission bits `mode` (also when it replaces a file), so a
/// config holding the front secret is never readable by others, not even for a moment.
fn write_mode(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(text.as_bytes())
}

fn load(common: &Common) -> Result<(Settings, Vec<String>), ExitCode> {
    load_with(common, FsChecks::Check)
}

/// Loads and validates the configuration file (`--config` or the default path). Unknown keys
/// are errors (exit 2) unless `--lenient`; then they are returned for the caller to warn about.
fn load_with(common: &Common, fs: FsChecks) -> Result<(Settings, Vec<String>), ExitCode> {
    load_from(common, Some(&common.config_path()), fs, false)
}

fn load_from(
    common: &Common,
    file: Option<&std::path::Path>,
    fs: FsChecks,
    strict: bool,
) -> Result<(Settings, Vec<String>), ExitCode> {
    let fail = |e: config::ConfigError| {
        eprintln!("stowaway: {e}");
        ExitCode::from(EXIT_CONFIG)
    };
    let loaded = config::load(file, &common.overrides()).map_err(fail)?;
    let unknown = loaded.unknown_keys;
    // Unknown keys first: a misspelled key is the likely cause of a validation error that
    // follows (its default was used instead).
    if !unknown.is_empty() && (strict || !common.lenient) {
        for k in &unknown {
            eprintln!("stowaway: {}", config::describe_unknown_key(k));
        }
        eprintln!(
            "  fix: correct or remove the key{} (or pass --lenient to only warn)",
            if unknown.len() > 1 { "s" } else { "" }
        );
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    let settings = config::validate_with(&loaded.raw, fs).map_err(fail)?;
    Ok((settings, unknown))
}

fn warn_unknown(keys: &[String]) {
    for k in keys {
        eprintln!(
            "stowaway: warning: {}; it is ignored (--lenient)",
            config::describe_unknown_key(k)
        );
    }
}

/// Sets up `tracing` as configured; `RUST_LOG` wins over `log.level` when set.
pub fn init_logging(settings: &Settings) {
    init_logging_to(settings, &settings.log.level, "info", std::io::stderr);
}

/// Sets up `tracing` in the configured format with filter `level` (`fallback` if it does not
/// parse; `RUST_LOG` wins when set), each line written through a writer from `make`.
fn init_logging_to<W>(
    settings: &Settings,
    level: &str,
    fallback: &str,
    make: impl Fn() -> W + Clone + Send + Sync + 'static,
) where
    W: std::io::Write + 'static,
{
    use tracing_subscriber::EnvFilter;
    // Keep the SDK's own chatter (and anything that could echo request signatures) out of
    // debug logs unless the filter asks for it (see logfmt::filter_spec).
    let filter: EnvFilter = crate::logfmt::env_filter(level, fallback);
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let fmt = match settings.log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(make)
            .boxed(),
        // Control characters in paths and values are escaped where the line is written.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || crate::logfmt::EscapingWriter(make()))
            .boxed(),
    };
    // A client's malformed request is not our error: actix's ERROR for it is logged at debug.
    let fmt = fmt.with_filter(tracing_subscriber::filter::filter_fn(|m| {
        !crate::logfmt::is_client_error(m)
    }));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(crate::logfmt::ClientErrors)
        .try_init();
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = parse_cli();
    match cli.command {
        Command::CheckConfig {
            common,
            strict,
            online,
        } => match load_from(
            &common,
            Some(&common.config_path()),
            FsChecks::Check,
            strict,
        ) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                println!(
                    "configuration OK: {} mount(s), listening on {}",
                    settings.mounts.len(),
                    settings.server.listen
                );
                if online {
                    return check_online(&settings);
                }
                ExitCode::SUCCESS
            }
        },
        Command::GenAssets { out_dir } => match gen_assets(&out_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stowaway: gen-assets: {e}");
                ExitCode::FAILURE
            }
        },
        Command::GenConfig {
            common,
            front,
            mode,
            front_listen,
            server_name,
            part,
            name,
            fail_open,
            verdict_cache_dir,
            redirect_cache_dir,
            lua_dir,
            out_dir,
        } => match load_with(&common, FsChecks::Skip) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                gen_config(
                    &settings,
                    front,
                    mode,
                    FrontOptions {
                        listen: front_listen,
                        server_name,
                        verdict_cache_dir,
                        redirect_cache_dir,
                        lua_dir: String::new(),
                        name,
                        part: match part {
                            PartArg::Standalone => front::NginxPart::Standalone,
                            PartArg::Http => front::NginxPart::Http,
                            PartArg::Server => front::NginxPart::Server,
                        },
                        fail_open,
                    },
                    lua_dir,
                    out_dir,
                )
            }
        },
        Command::Sign {
            common,
            path,
            ttl,
            expires,
            method,
            ip_prefix,
            kid,
            base_url,
        } => match load_with(&common, FsChecks::Skip) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |n| n.as_secs());
                let expires = match (ttl, expires) {
                    (_, Some(e)) => e,
                    (ttl, None) => {
                        match config::parse_duration("--ttl", ttl.as_deref().unwrap_or("")) {
                            Ok(d) => now.saturating_add(d.as_secs()),
                            Err(e) => {
                                eprintln!("stowaway: {e}");
                                return ExitCode::from(EXIT_CONFIG);
                            }
                        }
                    }
                };
                let method = method.map(|m| m.to_ascii_uppercase());
                let req = crate::access::SignRequest {
                    path: &path,
                    expires,
                    method: method.as_deref(),
                    ip_prefix: ip_prefix.as_deref(),
                    kid: kid.as_deref(),
                    now,
                };
                match crate::access::sign_link(&settings, &req) {
                    Ok(link) => {
                        println!(
                            "{}{link}",
                            base_url.as_deref().unwrap_or("").trim_end_matches('/')
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("stowaway: cannot sign: {e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            }
        },
        Command::Healthcheck {
            common,
            ready,
            timeout,
        } => match healthcheck_listen(&common) {
            Err(code) => code,
            Ok(listen) => healthcheck(&listen, ready, Duration::from_secs(timeout)),
        },
        Command::Status { common, json } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                let mounts = crate::status::scan(&settings);
                let caches = crate::status::caches(&settings);
                if json {
                    let mut v = serde_json::json!({ "mounts": mounts });
                    if !caches.is_empty() {
                        v["caches"] = serde_json::json!(caches);
                    }
                    println!("{v:#}");
                } else {
                    print!("{}", crate::status::render_text(&mounts));
                    print!("{}", crate::status::render_caches_text(&caches));
                }
                ExitCode::SUCCESS
            }
        },
        Command::PrintConfig { common } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                print!("{}", settings.to_toml());
                ExitCode::SUCCESS
            }
        },
        Command::Migrate { common, dry_run } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                migrate::main(settings, &common.config_path(), dry_run)
            }
        },
        Command::PruneArchive {
            common,
            dry_run,
            json,
        } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                prune::main(settings, &common.config_path(), dry_run, json)
            }
        },
        Command::Reconcile {
            common,
            fix,
            delete_orphans,
            json,
            mount,
            page_size,
        } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                let opts = reconcile::Options {
                    fix,
                    delete_orphans,
                    json,
                    mount,
                    page_size,
                };
                reconcile::main(settings, &common.config_path(), opts)
            }
        },
        Command::Rm {
            common,
            paths,
            all_versions,
        } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                warn_unknown(&unknown);
                let opts = crate::remove::Options { all_versions };
                rm::main(settings, &paths, opts)
            }
        },
        Command::Serve { common } => match load(&common) {
            Err(code) => code,
            Ok((settings, unknown)) => {
                init_logging(&settings);
                tracing::info!(config = %common.config_path().display(), version = crate::LONG_VERSION, "configuration read");
                for k in &unknown {
                    tracing::warn!(key = %k, "unknown config key is ignored");
                }
                let format = settings.log.format;
                let source = crate::reload::Source {
                    config: common.config.clone(),
                    overrides: common.overrides(),
                };
                report(run_async(serve(settings, source)), format)
            }
        },
    }
}

/// `healthcheck` needs only the listener: `--listen` is enough (a container or load-balancer
/// probe has the address, not always the config file); otherwise server.listen from the file.
fn healthcheck_listen(common: &Common) -> Result<config::Listen, ExitCode> {
    if let Some(l) = &common.listen {
        return crate::config::parse_listen(l, FsChecks::Skip).map_err(|e| {
            eprintln!("stowaway: {e}");
            ExitCode::from(EXIT_CONFIG)
        });
    }
    let (settings, _) = load_from(common, Some(&common.config_path()), FsChecks::Skip, false)?;
    Ok(settings.server.listen.clone())
}

/// Writes the man page and the shell completions generated from the command definition.
fn gen_assets(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("stowaway.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "stowaway", dir)?;
    }
    Ok(())
}

/// `check-config --online`: prints each check, exits 2 at the first failure with its fix.
fn check_online(settings: &Settings) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stowaway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::store::online::check_online(settings, |line| {
        println!("{line}")
    })) {
        Ok(()) => {
            println!("online checks OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stowaway: check-config --online: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// GETs `/healthz` or `/readyz` on the configured listener (TCP or Unix socket) with a plain
/// HTTP/1.0 request.
fn healthcheck(listen: &config::Listen, ready: bool, timeout: Duration) -> ExitCode {
    use std::io::{Read, Write};
    let path = if ready { "/readyz" } else { "/healthz" };
    let addr = match listen {
        config::Listen::Tcp(a) => {
            let mut a = *a;
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            config::Listen::Tcp(a)
        }
        unix => unix.clone(),
    };
    fn exchange<S: Read + Write>(mut s: S, path: &str, host: &str) -> std::io::Result<String> {
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())?;
        let mut buf = String::new();
        s.take(64 * 1024).read_to_string(&mut buf)?;
        Ok(buf)
    }
    let result = match &addr {
        config::Listen::Tcp(a) => std::net::TcpStream::connect_timeout(a, timeout).and_then(|s| {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            exchange(s, path, &a.to_string())
        }),
        config::Listen::Unix(p) => std::os::unix::net::UnixStream::connect(p).and_then(|s| {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            exchange(s, path, "localhost")
        }),
    };
    match result {
        Ok(resp) if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") => {
            println!("{} ok", &path[1..]);
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").trim();
            eprintln!(
                "stowaway: {addr}{path}: {}",
                if body.is_empty() { "not ok" } else { body }
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "stowaway: cannot reach {addr}{path}: {e} (is `stowaway serve` running with this config?)"
            );
            ExitCode::FAILURE
        }
    }
}

/// Removes `path` if it is a socket (never any other kind of file).
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds the Unix socket of `server.listen`: a stale socket is replaced (never another kind
/// of file, nor a socket someone still listens on), and the socket gets its mode and group
/// under a temporary name before it is renamed into place, so no client can ever connect
/// while its permissions are still the umask's.
fn bind_unix(
    path: &std::path::Path,
    auth: &config::FrontAuthSettings,
) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(format!(
                "{shown} exists and is not a socket; stowaway does not replace it (server.listen)"
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another process is listening on {shown} (server.listen): stop it or choose another path"
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale socket {shown}: {e}"))?;
        tracing::info!(path = %shown, "removed a stale socket");
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    remove_stale_socket(&tmp);
    // The socket file is born with the umask's permissions; owner-only until it gets its own
    // mode below, so nobody else can connect in between (umask is per process: this runs at
    // start-up, before the uploader or anything else creates files).
    let old_umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = std::os::unix::net::UnixListener::bind(&tmp);
    rustix::process::umask(old_umask);
    let listener = bound.map_err(|e| format!("cannot create the socket {}: {e}", tmp.display()))?;
    let finish = || -> Result<(), String> {
        let mode = auth
            .socket_mode
            .unwrap_or(crate::config::DEFAULT_SOCKET_MODE);
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            format!("cannot set mode {mode:04o} on {shown} (server.socket_mode): {e}")
        })?;
        if let Some(gid) = auth.socket_gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(|e| {
                format!(
                    "cannot give {shown} to group {} (server.socket_group): {e}; run stowaway as root or as a member of that group",
                    auth.socket_group.as_deref().unwrap_or("?")
                )
            })?;
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot move the socket into place at {shown}: {e}"))
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Waits for SIGTERM or SIGINT; returns the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops stowaway gracefully");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Prints a fatal error once: as the plain `stowaway: …` line of every other command with text
/// logs (both go to stderr, so logging it as well would print it twice), as one log object
/// with JSON logs (a log shipper then sees it).
fn report(r: anyhow::Result<()>, format: LogFormat) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Text => eprintln!("stowaway: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// The runtime of a one-shot command that talks to S3 (`prune-archive`, `reconcile`), with the
/// credentials checked first; on failure the reason is printed and `Err` holds the exit code.
fn s3_runtime(settings: &Settings, fail: u8) -> Result<tokio::runtime::Runtime, ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("stowaway: {}", crate::uploader::UploaderError::Runtime(e));
            ExitCode::from(fail)
        })?;
    if let Err(e) = rt.block_on(crate::store::aws::require_credentials(&settings.s3)) {
        eprintln!("stowaway: {e}");
        return Err(ExitCode::from(fail));
    }
    Ok(rt)
}

fn run_async<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

/// Runs the service until SIGTERM/SIGINT; SIGHUP reloads the configuration from `source`
/// ([`crate::reload`]).
pub async fn serve(settings: Settings, source: crate::reload::Source) -> anyhow::Result<()> {
    // Before anything else: SIGHUP's default action would end the process.
    let mut hangups = crate::reload::hangups()?;
    let mut services = Services::start(settings).await?;
    let settings = services.settings.clone();
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let separate_metrics = settings.server.metrics_listen;
    let main_state = services.live.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(main_state.clone())
            .configure(|c| configure_with(c, separate_metrics.is_none()))
    })
    .workers(workers)
    // Signals are ours: the uploader must drain alongside the HTTP server.
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout.as_secs());
    let server = match &settings.server.listen {
        config::Listen::Tcp(addr) => server.bind(addr),
        config::Listen::Unix(path) => server.listen_uds(
            bind_unix(path, &settings.server.front_auth).map_err(|e| anyhow::anyhow!(e))?,
        ),
    }
    .with_context(|| {
        format!(
            "cannot listen on {} (server.listen)",
            settings.server.listen
        )
    })?
    .run();
    let metrics_server = match separate_metrics {
        Some(addr) => {
            let state = services.live.clone();
            Some(
                actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(state.clone())
                        .configure(configure_metrics)
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(addr)
                .with_context(|| format!("cannot listen on {addr} (server.metrics_listen)"))?
                .run(),
            )
        }
        None => None,
    };
    let admin_task = match &settings.server.admin_listen {
        Some(l) => {
            let bind = match l {
                config::Listen::Tcp(a) => crate::admin::Bind::Tcp(*a),
                config::Listen::Unix(p) => crate::admin::Bind::Unix(
                    bind_unix(p, &settings.server.front_auth).map_err(|e| anyhow::anyhow!(e))?,
                ),
            };
            let admin = actix_web::web::Data::new(crate::admin::Admin::new(services.live.clone()));
            let s = crate::admin::server(admin, bind)
                .with_context(|| format!("cannot listen on {l} (server.admin_listen)"))?;
            tracing::info!(admin = %l, "admin API listening");
            Some((s.handle(), tokio::spawn(s)))
        }
        None => None,
    };
    tracing::info!(listen = %settings.server.listen, metrics = %separate_metrics.map_or_else(|| "on server.listen".to_string(), |a| a.to_string()), workers, mounts = settings.mounts.len(), "stowaway serving");
    // Both servers must be polled to run.
    let main_handle = server.handle();
    let mut main_task = tokio::spawn(server);
    let metrics_task = metrics_server.map(|ms| (ms.handle(), tokio::spawn(ms)));
    // The listening sockets are bound (connections queue until accepted): systemd may start
    // the front server now.
    crate::reload::notify::ready();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let early = loop {
        tokio::select! {
            r = &mut main_task => break Some(r),
            sig = &mut shutdown => {
                tracing::info!(signal = sig, timeout = %humantime::format_duration(settings.server.shutdown_timeout), "shutting down: finishing in-flight requests and uploads");
                break None;
            }
            // One reload at a time; a SIGTERM during one is handled right after it.
            Some(()) = hangups.recv() => services.reload(&source).await,
        }
    };
    crate::reload::notify::stopping();
    // Stop taking work everywhere at once; both sides respect server.shutdown_timeout.
    let http = async {
        main_handle.stop(true).await;
        if let Some((handle, _)) = &metrics_task {
            handle.stop(true).await;
        }
        if let Some((handle, _)) = &admin_task {
            handle.stop(true).await;
        }
    };
    let uploads = services.shutdown_uploader(settings.server.shutdown_timeout);
    tokio::join!(http, uploads);
    let result = match early {
        Some(r) => r,
        None => main_task.await,
    };
    if let Some((_, task)) = metrics_task {
        let _ = task.await;
    }
    if let Some((_, task)) = admin_task {
        let _ = task.await;
    }
    if let Some(config::Listen::Unix(path)) = &settings.server.admin_listen {
        remove_stale_socket(path);
    }
    if let config::Listen::Unix(path) = &settings.server.listen {
        remove_stale_socket(path);
    }
    result
        .context("HTTP server task failed")?
        .context("HTTP server failed")?;
    tracing::info!("stowaway stopped");
    Ok(())
}
