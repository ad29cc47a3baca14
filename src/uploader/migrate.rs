//! `stowaway migrate`: one pass over the existing backlog of every upload mount. Files changed
//! within `uploader.settle` are skipped (and named); everything else is uploaded, verified and
//! finalized exactly as `serve` would. A progress bar on a terminal, log lines otherwise. Exits
//! non-zero if any file failed. `--dry-run` only lists what would happen.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::service::{Coordinator, Mode, Progress, Summary};
use super::{Stats, UploaderError, clean_archives, pipeline};
use crate::config::{LogFormat, Settings};

/// Runs a pass and returns what it did. `progress` receives per-file updates.
pub async fn run(
    settings: Arc<Settings>,
    dry_run: bool,
    progress: Option<Arc<dyn Progress>>,
) -> Result<Summary, UploaderError> {
    if !settings.mounts.iter().any(|m| m.upload) {
        return Err(UploaderError::NoUploadMounts);
    }
    let stats = Arc::new(Stats::new(settings.mounts.len()));
    if !dry_run {
        let s = settings.clone();
        let _ = tokio::task::spawn_blocking(move || clean_archives(&s)).await;
    }
    let pipeline = pipeline(
        settings,
        stats,
        Arc::new(crate::store::stop::Stop::default()),
    )
    .await;
    let mode = if dry_run { Mode::DryRun } else { Mode::Once };
    let (c, inputs) = Coordinator::new(pipeline, mode, progress);
    Ok(c.run(inputs, None).await)
}

/// Exit code when some files failed.
pub const EXIT_FAILED: u8 = 1;

/// The `migrate` command: logging, runtime, progress display, summary, exit code.
pub fn main(settings: Settings, config: &std::path::Path, dry_run: bool) -> ExitCode {
    let bar = (!dry_run && std::io::stderr().is_terminal()).then(new_bar);
    init_logging(&settings, bar.clone());
    tracing::info!(config = %config.display(), "configuration read");
    let progress: Option<Arc<dyn Progress>> = match (&bar, dry_run) {
        (_, true) => None,
        (Some(b), _) => Some(Arc::new(BarProgress::new(b.clone()))),
        (None, _) => Some(Arc::new(LogProgress::new())),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stowaway: {}", UploaderError::Runtime(e));
            return ExitCode::FAILURE;
        }
    };
    // Without credentials every file would fail after its full retry budget, each with the
    // SDK's error dump: stop before the first one, with the message `serve` gives.
    if !dry_run
        && settings.mounts.iter().any(|m| m.upload)
        && let Err(e) = rt.block_on(crate::store::aws::require_credentials(&settings.s3))
    {
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        eprintln!("stowaway: {e}");
        return ExitCode::from(EXIT_FAILED);
    }
    let started = Instant::now();
    let res = rt.block_on(run(Arc::new(settings), dry_run, progress));
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let s = match res {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stowaway: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let took = started.elapsed();
    if dry_run {
        println!(
            "dry run: {} file(s), {} would be uploaded; {} changed within uploader.settle would be skipped; nothing was changed",
            s.would_upload,
            bytesize::ByteSize::b(s.would_bytes).display().iec(),
            s.skipped_recent
        );
        return ExitCode::SUCCESS;
    }
    let rate = s.done_bytes as f64 / took.as_secs_f64().max(0.001);
    let line = format!(
        "migrate: {} file(s) migrated ({}, {} already in S3) in {} ({}/s, {:.1} files/s); {} failed; {} not attempted (mount paused); {} skipped (changed within uploader.settle); {} changed during upload",
        s.done,
        bytesize::ByteSize::b(s.done_bytes).display().iec(),
        s.already_present,
        humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
        bytesize::ByteSize::b(rate as u64).display().iec(),
        s.done as f64 / took.as_secs_f64().max(0.001),
        s.failed,
        s.not_attempted,
        s.skipped_recent,
        s.changed
    );
    eprintln!("{line}");
    if s.has_failures() {
        eprintln!(
            "stowaway: some files failed (see the errors above); they are still local and served from disk"
        );
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn new_bar() -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// Log lines go through the bar so they do not tear it.
#[derive(Clone)]
struct BarWriter(ProgressBar);

impl Write for BarWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging(settings: &Settings, bar: Option<ProgressBar>) {
    let Some(bar) = bar else {
        crate::cli::init_logging(settings);
        return;
    };
    // Per-file lines would scroll the bar away: on a terminal only warnings and errors, unless
    // RUST_LOG asks for more.
    let filter = crate::logfmt::env_filter("warn", "warn");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || BarWriter(bar.clone()));
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Progress as a bar: bytes (with rate and ETA), files in the message.
struct BarProgress {
    bar: ProgressBar,
    files: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    scanning: AtomicBool,
}

impl BarProgress {
    fn new(bar: ProgressBar) -> Self {
        BarProgress {
            bar,
            files: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            scanning: AtomicBool::new(true),
        }
    }
    fn message(&self) {
        let more = if self.scanning.load(Relaxed) {
            "+ (scanning)"
        } else {
            ""
        };
        self.bar.set_message(format!(
            "files {}/{}{more}, {} failed",
            self.done.load(Relaxed),
            self.files.load(Relaxed),
            self.failed.load(Relaxed)
        ));
    }
}

impl Progress for BarProgress {
    fn queued(&self, bytes: u64) {
        self.files.fetch_add(1, Relaxed);
        self.bar.inc_length(bytes);
        self.message();
    }
    fn finished(&self, bytes: u64, ok: bool) {
        self.done.fetch_add(1, Relaxed);
        if !ok {
            self.failed.fetch_add(1, Relaxed);
        }
        self.bar.inc(bytes);
        self.message();
    }
    fn scan_complete(&self) {
        self.scanning.store(false, Relaxed);
        self.message();
    }
}

/// Progress as a log line every few seconds (stderr is not a terminal).
struct LogProgress {
    start: Instant,
    last: Mutex<Instant>,
    files: AtomicU64,
    bytes: AtomicU64,
    done: AtomicU64,
    done_bytes: AtomicU64,
    failed: AtomicU64,
    scanning: AtomicBool,
}

impl LogProgress {
    const EVERY: Duration = Duration::from_secs(5);

    fn new() -> Self {
        let now = Instant::now();
        LogProgress {
            start: now,
            last: Mutex::new(now),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            done: AtomicU64::new(0),
            done_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            scanning: AtomicBool::new(true),
        }
    }

    fn maybe_log(&self) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.elapsed() < Self::EVERY {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let (db, tb) = (self.done_bytes.load(Relaxed), self.bytes.load(Relaxed));
        let rate = db as f64 / secs;
        let eta = if rate > 0.0 && !self.scanning.load(Relaxed) {
            humantime::format_duration(Duration::from_secs(
                (tb.saturating_sub(db) as f64 / rate) as u64,
            ))
            .to_string()
        } else {
            "unknown".to_string()
        };
        tracing::info!(
            files_done = self.done.load(Relaxed),
            files_found = self.files.load(Relaxed),
            failed = self.failed.load(Relaxed),
            bytes_done = db,
            bytes_found = tb,
            rate = %format!("{}/s", bytesize::ByteSize::b(rate as u64).display().iec()),
            eta = %eta,
            "migrate progress"
        );
    }
}

impl Progress for LogProgress {
    fn queued(&self, bytes: u64) {
        self.files.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
    fn finished(&self, bytes: u64, ok: bool) {
        self.done.fetch_add(1, Relaxed);
        self.done_bytes.fetch_add(bytes, Relaxed);
        if !ok {
            self.failed.fetch_add(1, Relaxed);
        }
        self.maybe_log();
    }
    fn scan_complete(&self) {
        self.scanning.store(false, Relaxed);
    }
}
