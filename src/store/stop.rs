//! Graceful shutdown of the uploader: first *drain* (take no new files, let the running ones
//! finish), then, if the deadline passes, *abort* (stop between multipart parts and abort the
//! multipart upload, cut retry back-off short). A file is never left half finalized: finalizing
//! is a rename (or copy, fsync, rename, then remove) that no stop request interrupts.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Shared stop flags.
#[derive(Debug, Default)]
pub struct Stop {
    draining: AtomicBool,
    aborting: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Take no new work.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Give up in-flight uploads (implies draining).
    pub fn abort(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.aborting.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether new work is refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether in-flight work should stop.
    pub fn is_aborting(&self) -> bool {
        self.aborting.load(Ordering::SeqCst)
    }

    async fn until(&self, flag: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a notification between the check and the await
            // is not lost.
            notified.as_mut().enable();
            if flag(self) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once draining starts.
    pub async fn drained(&self) {
        self.until(Self::is_draining).await;
    }

    /// Resolves once aborting starts.
    pub async fn aborted(&self) {
        self.until(Self::is_aborting).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_wake_on_each_stage() {
        let s = Arc::new(Stop::default());
        let s2 = s.clone();
        let drained = tokio::spawn(async move { s2.drained().await });
        let s3 = s.clone();
        let aborted = tokio::spawn(async move { s3.aborted().await });
        tokio::task::yield_now().await;
        s.drain();
        drained.await.unwrap();
        assert!(s.is_draining() && !s.is_aborting());
        assert!(!aborted.is_finished());
        s.abort();
        aborted.await.unwrap();
        // Already set: returns at once.
        s.drained().await;
        s.aborted().await;
    }
}
