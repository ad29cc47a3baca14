//! `stowaway migrate` on the command line: logging, runtime, the progress display (a bar on a
//! terminal, log lines otherwise), the dry-run listing, the summary line and the exit code.
//! The work itself is [`crate::uploader::migrate`]. Exits non-zero if any file failed.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;
use crate::uploader::UploaderError;
use crate::uploader::mode::{Plan, PlannedUpload, Progress, Summary, Then};

/// Exit code when some files failed.
pub const EXIT_FAILED: u8 = 1;

/// The `migrate` command: logging, runtime, progress display, summary, exit code.
pub fn main(settings: Settings, config: &Path, dry_run: bool) -> ExitCode {
    let bar = (!dry_run && std::io::stderr().is_terminal()).then(new_bar);
    init_logging(&settings, bar.clone());
    tracing::info!(config = %config.display(), "configuration read");
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
    let settings = Arc::new(settings);
    let res = match (dry_run, &bar) {
        (true, _) => rt.block_on(crate::uploader::migrate::dry_run(
            settings,
            Arc::new(PrintPlan),
        )),
        (false, Some(b)) => rt.block_on(crate::uploader::migrate::migrate(
            settings,
            Some(Arc::new(BarProgress::new(b.clone()))),
        )),
        (false, None) => rt.block_on(crate::uploader::migrate::migrate(
            settings,
            Some(Arc::new(LogProgress::new())),
        )),
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let s: Summary = match res {
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
        super::init_logging(settings);
        return;
    };
    // Per-file lines would scroll the bar away: on a terminal only warnings and errors, unless
    // RUST_LOG asks for more.
    super::init_logging_to(settings, "warn", "warn", move || BarWriter(bar.clone()));
}

/// The dry-run listing on stdout.
struct PrintPlan;

impl Plan for PrintPlan {
    fn would_upload(&self, u: &PlannedUpload) {
        println!("{}", upload_line(u));
    }

    fn would_skip(&self, file: &Path, changed_ago: Duration, settle: Duration) {
        println!("{}", skip_line(file, changed_ago, settle));
    }
}

fn upload_line(u: &PlannedUpload) -> String {
    let then = match &u.then {
        Then::Archive(Some(a)) => format!("then move it to {}", a.display()),
        Then::Archive(None) => "then archive it".to_string(),
        Then::Delete => "then delete it".to_string(),
        Then::Keep => "and keep it".to_string(),
    };
    format!(
        "would upload {} -> s3://{}/{} ({} bytes) {then}",
        u.file.display(),
        u.bucket,
        u.key,
        u.size
    )
}

fn skip_line(file: &Path, changed_ago: Duration, settle: Duration) -> String {
    format!(
        "would skip {}: changed {} ago, less than uploader.settle ({})",
        file.display(),
        humantime::format_duration(changed_ago),
        humantime::format_duration(settle)
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn dry_run_lines() {
        let mut u = PlannedUpload {
            file: PathBuf::from("/srv/media/a/b.jpg"),
            bucket: "site".into(),
            key: "media/a/b.jpg".into(),
            size: 12,
            then: Then::Archive(Some(PathBuf::from("/srv/archive/a/b.jpg"))),
        };
        let start = "would upload /srv/media/a/b.jpg -> s3://site/media/a/b.jpg (12 bytes)";
        assert_eq!(
            upload_line(&u),
            format!("{start} then move it to /srv/archive/a/b.jpg")
        );
        for (then, end) in [
            (Then::Archive(None), "then archive it"),
            (Then::Delete, "then delete it"),
            (Then::Keep, "and keep it"),
        ] {
            u.then = then;
            assert_eq!(upload_line(&u), format!("{start} {end}"));
        }
        assert_eq!(
            skip_line(
                Path::new("/srv/media/fresh.txt"),
                Duration::from_millis(1500),
                Duration::from_secs(2)
            ),
            "would skip /srv/media/fresh.txt: changed 1s 500ms ago, less than uploader.settle (2s)"
        );
    }
}
