//! `stowaway prune-archive` on the command line: logging, runtime, a spinner on a terminal
//! (plain lines otherwise), one line per archived file past its retention (pruned, or kept and
//! why), the summary, `--json`, and the exit code. The work itself is
//! [`crate::uploader::retention`].

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;
use crate::store::ObjectStore;
use crate::store::retry::Retrier;
use crate::store::stop::Stop;
use crate::uploader::Stats;
use crate::uploader::finalize::TempNamer;
use crate::uploader::retention::{self, Budget, Entry, MountReport};

/// Exit code when something needs attention: an archived file S3 does not vouch for, S3
/// unreachable, or the archive unreadable.
pub const EXIT_ATTENTION: u8 = 1;

/// The `prune-archive` command.
pub fn main(settings: Settings, config: &Path, dry_run: bool, json: bool) -> ExitCode {
    super::init_logging(&settings);
    tracing::info!(config = %config.display(), "configuration read");
    if !retention::enabled(&settings) {
        eprintln!(
            "stowaway: no mount has archive_retention set, so nothing is pruned (archived files are kept forever)\n  fix: set archive_retention = \"30d\" on a [[mount]] with finalize = \"archive\" and an archive_root"
        );
        return ExitCode::from(super::EXIT_CONFIG);
    }
    let rt = match super::s3_runtime(&settings, EXIT_ATTENTION) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let bar = (!json && std::io::stderr().is_terminal()).then(spinner);
    let checked = Arc::new(AtomicU64::new(0));
    let entries: Arc<Mutex<Vec<Entry>>> = Arc::default();
    let on_entry: Arc<dyn Fn(&Entry) + Send + Sync> = {
        let (bar, checked, entries) = (bar.clone(), checked.clone(), entries.clone());
        Arc::new(move |e: &Entry| {
            let n = checked.fetch_add(1, Relaxed) + 1;
            if json {
                if let Ok(mut v) = entries.lock() {
                    v.push(e.clone());
                }
                return;
            }
            let line = entry_line(e);
            match &bar {
                Some(b) => {
                    b.set_message(format!("{n} checked"));
                    b.suspend(|| println!("{line}"));
                }
                None => println!("{line}"),
            }
        })
    };
    let settings = Arc::new(settings);
    let stats = Arc::new(Stats::new(settings.mounts.len()));
    let reports = rt.block_on(async {
        let retrier = Retrier::new(&settings.uploader, stats, Arc::new(Stop::default()));
        let store = ObjectStore::connect(&settings.s3, retrier).await;
        let mut cursors = vec![None; settings.mounts.len()];
        retention::run_pass(
            settings.clone(),
            store,
            Arc::new(TempNamer::default()),
            dry_run,
            Budget::UNLIMITED,
            &mut cursors,
            on_entry,
        )
        .await
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if json {
        let entries = entries.lock().map(|v| v.clone()).unwrap_or_default();
        let v = serde_json::json!({
            "dry_run": dry_run,
            "mounts": reports,
            "entries": entries,
        });
        println!("{v:#}");
    } else {
        for r in &reports {
            eprintln!("{}", summary_line(r, dry_run));
        }
    }
    if reports.iter().any(MountReport::needs_attention) {
        if !json {
            eprintln!(
                "stowaway: some archived files were kept because S3 does not vouch for them, or the pass could not finish (see above); nothing unverified was removed"
            );
        }
        ExitCode::from(EXIT_ATTENTION)
    } else {
        ExitCode::SUCCESS
    }
}

pub(super) fn spinner() -> ProgressBar {
    let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    b.set_style(style);
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// `pruned <path> (<object>, 12 KiB)` / `kept <path>: <why>`.
fn entry_line(e: &Entry) -> String {
    let size = bytesize::ByteSize::b(e.size).display().iec();
    match &e.kept {
        None if e.action == "pruned" => {
            format!("pruned {} ({}, {size})", e.path.display(), e.object)
        }
        None => format!("would prune {} ({}, {size})", e.path.display(), e.object),
        Some(k) if e.object.is_empty() => format!("kept {}: {k}", e.path.display()),
        Some(k) => format!("kept {}: {k} ({})", e.path.display(), e.object),
    }
}

fn summary_line(r: &MountReport, dry_run: bool) -> String {
    let mut s = if dry_run {
        format!(
            "prune-archive (dry run) {} (older than {}): {} file(s), {} would be pruned; {} kept unverified; {} kept (other); {} younger; nothing was changed",
            r.mount,
            r.retention,
            r.would_prune_files,
            bytesize::ByteSize::b(r.would_prune_bytes).display().iec(),
            r.kept_unverified,
            r.kept_other,
            r.young
        )
    } else {
        format!(
            "prune-archive {} (older than {}): {} file(s) pruned ({}); {} kept unverified; {} kept (other); {} younger",
            r.mount,
            r.retention,
            r.pruned_files,
            bytesize::ByteSize::b(r.pruned_bytes).display().iec(),
            r.kept_unverified,
            r.kept_other,
            r.young
        )
    };
    if let Some(e) = &r.s3_error {
        s.push_str(&format!(
            "\n  stopped: S3 cannot be asked ({e}); nothing more was pruned — run it again once S3 is reachable"
        ));
    }
    for e in &r.local_errors {
        s.push_str(&format!("\n  error: {e}"));
    }
    s
}
