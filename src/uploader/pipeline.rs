//! One file from "settled" to "finalized": stat, hash, HEAD (skip if already there), upload,
//! HEAD again and verify, re-stat, grace period, finalize. Every step that could race with a
//! writer re-checks the file's stamp; any change sends the file back to settling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::finalize::{FinalizeError, Finalized, ReadAt, Source, TempNamer, finalize};
use super::scan::FileStamp;
use super::stats::Stats;
use crate::beneath::{DirHandle, Lookup, OpenFile};
use crate::config::Settings;
use crate::paths::object_key;
use crate::store::ObjectStore;
use crate::store::hash::{Digests, HashError, Layout, hash_reader};
use crate::store::retry::Class;
use crate::store::upload::{Target, UploadError, content_type};
use crate::store::verify::{Proof, VerifyError};
use crate::tombstone::Tombstones;

/// The pipeline every worker runs a file through, with what it needs: the settings, the
/// object store, the counters and the temp-name source for finalizing.
#[derive(Debug)]
pub struct Pipeline {
    pub settings: Arc<Settings>,
    pub store: ObjectStore,
    pub stats: Arc<Stats>,
    pub names: Arc<TempNamer>,
    /// Paths removed by `stowaway rm`: never uploaded while their tombstone lives.
    pub tombstones: Arc<Tombstones>,
}

/// A settled file to process.
#[derive(Debug, Clone)]
pub struct Job {
    pub mount: usize,
    /// The mount root every access of this job is resolved beneath.
    pub root: Arc<DirHandle>,
    pub path: PathBuf,
    /// Relative key inside the mount (no key prefix).
    pub key: String,
    /// The state that was found settled.
    pub stamp: FileStamp,
}

/// A failure that leaves the file local until a later attempt.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: Class,
    pub message: String,
}

/// How processing ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Verified in S3 and finalized.
    Done {
        finalized: Finalized,
        size: u64,
        uploaded: bool,
        /// What proved the object equal to the local file before it was finalized.
        proof: Proof,
    },
    /// The file changed on the way: settle it again.
    Changed,
    /// The file is gone (deleted or renamed by someone else).
    Vanished,
    /// Failed; the file stays local.
    Failed(Failure),
}

fn fail(class: Class, message: impl Into<String>) -> Outcome {
    Outcome::Failed(Failure {
        class,
        message: message.into(),
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Outcome> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| fail(Class::Permanent, format!("internal error: {e}")))
}

/// Whether the open file and its name both still have `stamp`: `None` if so, else the outcome
/// to report. The descriptor says whether the bytes changed; the lookup beneath the root says
/// whether the name still leads to them (without any symlink).
async fn still_same(job: &Job, open: &Arc<OpenFile>) -> Option<Outcome> {
    let (root, key, open, stamp) = (job.root.clone(), job.key.clone(), open.clone(), job.stamp);
    let path = job.path.clone();
    let r = blocking(move || {
        let now = open.restat()?;
        if now != stamp {
            return Ok(Some(Outcome::Changed));
        }
        Ok::<_, std::io::Error>(match root.lookup(Path::new(&key))? {
            Lookup::File(s) if s == stamp => None,
            Lookup::File(_) => Some(Outcome::Changed),
            Lookup::Missing | Lookup::Dir | Lookup::Refused => Some(Outcome::Vanished),
        })
    })
    .await;
    match r {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => Some(fail(
            Class::Permanent,
            format!("cannot stat {}: {e}", path.display()),
        )),
        Err(o) => Some(o),
    }
}

/// Unix seconds now.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A re-created copy of a removed path: left where it is, untouched, and reported (at every
/// rescan, logged once) rather than uploaded, deleted or moved: it may be the only copy of
/// data someone restored on purpose.
fn tombstoned(until: u64) -> Outcome {
    fail(
        Class::Permanent,
        format!(
            "this path was removed by `stowaway rm` and its tombstone lives until {} (mount.tombstone_ttl): the local copy is not uploaded and not served; delete it, or wait for the tombstone to expire",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(until)
            )
        ),
    )
}

impl Pipeline {
    /// Processes one job to the end.
    pub async fn process(&self, job: &Job) -> Outcome {
        let started = Instant::now();
        let mount = &self.settings.mounts[job.mount];
        let u = &self.settings.uploader;
        let path = &job.path;
        if let Some(until) = self.tombstones.live_until(job.mount, &job.key, now_secs()) {
            return tombstoned(until);
        }

        // 0. Open the file once, beneath the root; hashing, upload and the archive copy all read
        //    this descriptor, and it is never reopened by path.
        let (root, key) = (job.root.clone(), job.key.clone());
        let open = match blocking(move || root.open_file(Path::new(&key))).await {
            Ok(Ok(Some(f))) if f.stamp == job.stamp => Arc::new(f),
            Ok(Ok(Some(_))) => return Outcome::Changed,
            Ok(Ok(None)) => return Outcome::Vanished,
            Ok(Err(e)) => {
                return fail(
                    Class::Permanent,
                    format!("cannot read local file {}: {e}", path.display()),
                );
            }
            Err(o) => return o,
        };

        // 1. Hash the content once; these values are sent with the upload and checked after it.
        let layout = Layout::for_size(job.stamp.size, u.multipart_threshold, u.part_size);
        let (f, size) = (open.clone(), job.stamp.size);
        let d: Digests =
            match blocking(move || hash_reader(&mut ReadAt::new(&f.file), size, layout)).await {
                Ok(Ok(d)) => d,
                Ok(Err(HashError::SizeChanged { .. })) => return Outcome::Changed,
                Ok(Err(HashError::Io(e))) => {
                    return fail(
                        Class::Permanent,
                        format!("cannot read local file {}: {e}", path.display()),
                    );
                }
                Err(o) => return o,
            };
        if let Some(o) = still_same(job, &open).await {
            return o;
        }

        // 2. Upload unless an identical object is already there (a previous run got this far).
        let key = object_key(&mount.key_prefix, &job.key);
        let bucket = mount.bucket.as_str();
        let uploaded = match self.store.verify(bucket, &key, &d).await {
            Ok(_) => false,
            Err(VerifyError::S3(f)) => return fail(f.class, f.message),
            Err(
                VerifyError::Mismatch { .. }
                | VerifyError::Missing { .. }
                | VerifyError::Forbidden { .. },
            ) => {
                let t = Target {
                    bucket,
                    key: &key,
                    content_type: content_type(path),
                    cache_control: u.cache_control.as_deref(),
                };
                match self.store.put(&open.file, path, &t, &d).await {
                    Ok(()) => true,
                    Err(UploadError::S3(f)) => return fail(f.class, f.message),
                    Err(e @ UploadError::Local { .. }) => {
                        return fail(Class::Permanent, e.to_string());
                    }
                    Err(e @ UploadError::Aborted { .. }) => {
                        return fail(Class::Transient, e.to_string());
                    }
                    Err(e @ UploadError::PartMismatch { .. }) => {
                        if let Some(o) = still_same(job, &open).await {
                            return o;
                        }
                        self.stats
                            .verify_failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return fail(Class::Permanent, e.to_string());
                    }
                }
            }
        };

        // 3. Verify what S3 now holds. Nothing local is touched before this succeeds: finalizing
        //    takes the `Verified` this returns.
        let verified = match self.store.verify(bucket, &key, &d).await {
            Ok(v) => v,
            Err(e @ VerifyError::Forbidden { .. }) => return fail(Class::Permanent, e.to_string()),
            Err(VerifyError::S3(f)) => return fail(f.class, f.message),
            Err(e @ (VerifyError::Mismatch { .. } | VerifyError::Missing { .. })) => {
                if let Some(o) = still_same(job, &open).await {
                    return o;
                }
                self.stats
                    .verify_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Not retried at once and not counted by the outage breaker: a mismatch is about
                // this object, and it is tried again (from scratch) at the next rescan.
                return fail(Class::Permanent, e.to_string());
            }
        };
        let proof = verified.proof();

        // An `rm` that landed during the upload: its delete may have run before our PUT. It
        // writes its tombstone before it deletes anything, so asking the bucket now (one HEAD
        // per upload, none per request) closes the race the in-memory set, refreshed only
        // every `server.tombstone_refresh`, leaves open. Take the object back down (only one
        // we uploaded ourselves) and leave the file local.
        let live = if !uploaded || mount.tombstone_ttl.is_zero() {
            None
        } else {
            match self
                .store
                .tombstone_written(bucket, &mount.key_prefix, &job.key)
                .await
            {
                Ok(w) => w
                    .map(|w| {
                        w.duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs())
                            .saturating_add(mount.tombstone_ttl.as_secs())
                    })
                    .filter(|&until| until > now_secs()),
                Err(f) => return fail(f.class, f.message),
            }
        };
        if let Some(until) =
            live.or_else(|| self.tombstones.live_until(job.mount, &job.key, now_secs()))
        {
            if uploaded && let Err(e) = self.store.delete_object(bucket, &key).await {
                return fail(
                    e.class,
                    format!(
                        "removed by `stowaway rm` during its upload, and the object just uploaded could not be deleted again ({e}); run `stowaway rm` on it again"
                    ),
                );
            }
            return tombstoned(until);
        }

        // A cached copy of the object this upload replaced goes before the local file does
        // (finalize is when clients start reaching the new object): the front server must not
        // find the old bytes in the cache once the local file is gone.
        // A front server may still hold the purged file open: the local file (the new bytes)
        // stays until it has looked again.
        let mut grace = mount.finalize_grace;
        if uploaded && crate::cache::purge_mount_key(&self.settings, job.mount, &job.key) {
            grace = grace.max(crate::cache::DESCRIPTOR_GRACE);
        }

        // 4. The local file must still be what was hashed (a writer may have appended or replaced
        //    it during the upload), also after the grace period.
        if let Some(o) = still_same(job, &open).await {
            return o;
        }
        if !grace.is_zero() {
            tokio::time::sleep(grace).await;
        }
        let (m, root, rel, stamp) = (mount.clone(), job.root.clone(), job.key.clone(), job.stamp);
        let (names, f) = (self.names.clone(), open.clone());
        let finalized = match blocking(move || {
            let src = Source {
                root: &root,
                rel: &rel,
                open: &f,
                stamp: &stamp,
            };
            finalize(&m, &src, &verified, &names)
        })
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(FinalizeError::Changed(_))) => return Outcome::Changed,
            Ok(Err(e)) => {
                return fail(
                    Class::Permanent,
                    format!("uploaded and verified, but {e}; the file stays local"),
                );
            }
            Err(o) => return o,
        };
        tracing::info!(
            file = %path.display(),
            object = %format!("s3://{bucket}/{key}"),
            bytes = d.size,
            uploaded,
            proof = %proof,
            finalized = %finalized,
            ms = started.elapsed().as_millis() as u64,
            "file migrated"
        );
        Outcome::Done {
            finalized,
            size: d.size,
            uploaded,
            proof,
        }
    }
}
