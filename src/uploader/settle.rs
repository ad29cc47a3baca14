//! The settle rule: a file is a candidate only once its size and times have not changed for
//! `uploader.settle`. Files whose last change is already older than that (by their own mtime
//! and ctime) are ready at once; only recently changed files are remembered here, so the map
//! stays small however large the root is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::scan::FileStamp;

/// A file waiting to settle.
#[derive(Debug, Clone)]
struct Pending {
    mount: usize,
    stamp: FileStamp,
    /// When it will have been unchanged for `settle`, unless it changes again.
    due: Instant,
}

/// What [`SettleMap::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Unchanged long enough: upload it.
    Ready,
    /// Changed recently: remembered, re-checked when due.
    Waiting,
}

/// Recently changed files and when each will be settled.
#[derive(Debug)]
pub struct SettleMap {
    settle: Duration,
    entries: HashMap<PathBuf, Pending>,
}

impl SettleMap {
    /// An empty map for the configured settle time.
    pub fn new(settle: Duration) -> Self {
        SettleMap {
            settle,
            entries: HashMap::new(),
        }
    }

    /// Records a sighting of `path` with `stamp`; `age` is how long ago the file last changed
    /// by its own timestamps, `now` the monotonic clock.
    pub fn observe(
        &mut self,
        mount: usize,
        path: &Path,
        stamp: FileStamp,
        age: Duration,
        now: Instant,
    ) -> Settle {
        if age >= self.settle {
            self.entries.remove(path);
            return Settle::Ready;
        }
        let fresh_due = now + (self.settle - age);
        match self.entries.get_mut(path) {
            // Same stamp as before: the clock keeps running from the first sighting.
            Some(p) if p.stamp == stamp => {}
            Some(p) => {
                p.stamp = stamp;
                p.mount = mount;
                p.due = fresh_due;
            }
            None => {
                self.entries.insert(
                    path.to_path_buf(),
                    Pending {
                        mount,
                        stamp,
                        due: fresh_due,
                    },
                );
            }
        }
        Settle::Waiting
    }

    /// Forgets a path (and, for a directory, everything below it).
    pub fn forget(&mut self, path: &Path) {
        if self.entries.remove(path).is_none() {
            self.entries.retain(|p, _| !p.starts_with(path));
        }
    }

    /// Removes and returns every entry that is due: `(mount, path, stamp seen)`. The caller
    /// stats each again; same stamp means settled, otherwise it observes the new one.
    pub fn take_due(&mut self, now: Instant) -> Vec<(usize, PathBuf, FileStamp)> {
        let due: Vec<PathBuf> = self
            .entries
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.entries.remove(&k).map(|p| (p.mount, k, p.stamp)))
            .collect()
    }

    /// Whether `path` is waiting.
    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    /// How many files are waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How often the coordinator checks for due entries: a quarter of the settle time, kept
/// between 10 ms and 1 s.
pub fn tick_interval(settle: Duration) -> Duration {
    (settle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64, mtime: i128) -> FileStamp {
        FileStamp {
            size,
            mtime_ns: mtime,
            ctime_ns: mtime,
            ino: 1,
            dev: 1,
        }
    }

    #[test]
    fn old_files_are_ready_at_once() {
        let mut m = SettleMap::new(Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(
            m.observe(
                0,
                Path::new("/r/a"),
                stamp(1, 1),
                Duration::from_secs(5),
                now
            ),
            Settle::Ready
        );
        assert!(m.is_empty());
    }

    #[test]
    fn recent_files_wait_for_the_rest_of_the_settle_time() {
        let mut m = SettleMap::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let p = Path::new("/r/a");
        assert_eq!(
            m.observe(0, p, stamp(1, 1), Duration::from_secs(2), t0),
            Settle::Waiting
        );
        assert!(m.take_due(t0 + Duration::from_millis(2999)).is_empty());
        let due = m.take_due(t0 + Duration::from_secs(3));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2, stamp(1, 1));
        assert!(m.is_empty());
    }

    #[test]
    fn a_change_restarts_the_clock_and_a_repeat_does_not() {
        let mut m = SettleMap::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let p = Path::new("/r/a");
        m.observe(0, p, stamp(1, 1), Duration::ZERO, t0);
        // Seen again unchanged later: the due time stays at t0 + 5s.
        m.observe(
            0,
            p,
            stamp(1, 1),
            Duration::ZERO,
            t0 + Duration::from_secs(4),
        );
        assert_eq!(m.take_due(t0 + Duration::from_secs(5)).len(), 1);
        m.observe(0, p, stamp(1, 1), Duration::ZERO, t0);
        // Grown: due again 5s after the change was seen.
        m.observe(
            0,
            p,
            stamp(2, 2),
            Duration::ZERO,
            t0 + Duration::from_secs(4),
        );
        assert!(m.take_due(t0 + Duration::from_secs(8)).is_empty());
        assert_eq!(m.take_due(t0 + Duration::from_secs(9)).len(), 1);
    }

    #[test]
    fn forget_files_and_directories() {
        let mut m = SettleMap::new(Duration::from_secs(5));
        let t0 = Instant::now();
        m.observe(0, Path::new("/r/d/a"), stamp(1, 1), Duration::ZERO, t0);
        m.observe(0, Path::new("/r/d/b"), stamp(1, 1), Duration::ZERO, t0);
        m.observe(0, Path::new("/r/e"), stamp(1, 1), Duration::ZERO, t0);
        m.forget(Path::new("/r/e"));
        assert_eq!(m.len(), 2);
        m.forget(Path::new("/r/d"));
        assert!(m.is_empty());
    }

    #[test]
    fn tick_is_clamped() {
        assert_eq!(
            tick_interval(Duration::from_millis(300)),
            Duration::from_millis(75)
        );
        assert_eq!(tick_interval(Duration::ZERO), Duration::from_millis(10));
        assert_eq!(
            tick_interval(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }
}
