//! The `notify` watcher: recursive inotify watches on every upload root, installed before the
//! first full scan. Events only cut latency — the scans are the source of truth — so the
//! watcher's thread never blocks: events go through a bounded channel with `try_send`, and a
//! full channel, an overflow (`need_rescan`) or a watcher error just asks for a full rescan.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use notify::{Config, Event, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};

use super::stats::Stats;

/// Events buffered between the watcher thread and the coordinator.
const CAPACITY: usize = 16 * 1024;

/// A running watcher and what it reports.
pub struct Watch {
    watcher: notify::RecommendedWatcher,
    /// File system events.
    pub events: mpsc::Receiver<Event>,
    /// Signalled when events were lost and a full rescan is needed.
    pub rescan: Arc<Notify>,
}

/// Why watching is unavailable (the uploader goes on with periodic rescans alone).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot create the file watcher: {0}")]
    Create(#[source] notify::Error),
}

/// Starts watching `roots` recursively, without following symlinks. A root that cannot be
/// watched (e.g. `fs.inotify.max_user_watches` reached) is logged and left to the rescans.
/// Blocking: adding recursive watches walks the trees.
pub fn start(roots: &[PathBuf], stats: Arc<Stats>) -> Result<Watch, WatchError> {
    let (tx, events) = mpsc::channel(CAPACITY);
    let rescan = Arc::new(Notify::new());
    let flag = rescan.clone();
    // Runs on notify's thread: only atomics, `try_send` and `notify_one`, nothing that waits.
    let lost = move |stats: &Stats| {
        stats.watch_overflows.fetch_add(1, Relaxed);
        flag.notify_one();
    };
    let handler = move |res: notify::Result<Event>| match res {
        Ok(ev) if ev.need_rescan() => lost(&stats),
        Ok(ev) => {
            stats.watch_events.fetch_add(1, Relaxed);
            if tx.try_send(ev).is_err() {
                lost(&stats);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error; a full rescan follows");
            lost(&stats);
        }
    };
    let mut w =
        notify::RecommendedWatcher::new(handler, Config::default().with_follow_symlinks(false))
            .map_err(WatchError::Create)?;
    for root in roots {
        if let Err(e) = w.watch(root, RecursiveMode::Recursive) {
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .unwrap_or_default();
            tracing::warn!(
                root = %root.display(),
                error = %e,
                max_user_watches = limit.trim(),
                "cannot watch this root; new files are found by the periodic rescans only (raise fs.inotify.max_user_watches if the limit was reached)"
            );
        }
    }
    Ok(Watch {
        watcher: w,
        events,
        rescan,
    })
}

/// Keeps the watches alive until dropped.
pub struct WatchGuard(#[allow(dead_code)] notify::RecommendedWatcher);

impl Watch {
    /// Splits into the guard that keeps watching, the event receiver and the rescan signal.
    pub fn into_parts(self) -> (WatchGuard, mpsc::Receiver<Event>, Arc<Notify>) {
        (WatchGuard(self.watcher), self.events, self.rescan)
    }
}
