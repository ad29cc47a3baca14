//! The one-shot runs behind `stowaway migrate`: one pass over the existing backlog of every
//! upload mount. Files changed within `uploader.settle` are skipped (and named); everything
//! else is uploaded, verified and finalized exactly as `serve` would. `dry_run` only reports
//! what would happen. How progress and results are shown is the command line's business
//! (`cli::migrate`); this module reports through [`Progress`], [`Plan`] and the [`Summary`].

use std::sync::Arc;

use super::mode::{DryRun, Migrate, Mode, Plan, Progress, Summary};
use super::service::Coordinator;
use super::{Stats, UploaderError, clean_archives, pipeline};
use crate::config::Settings;
use crate::store::stop::Stop;
use crate::tombstone::Tombstones;

async fn run_once<M: Mode>(
    settings: Arc<Settings>,
    mode: M,
    talks_to_s3: bool,
) -> Result<Summary, UploaderError> {
    if !settings.mounts.iter().any(|m| m.upload) {
        return Err(UploaderError::NoUploadMounts);
    }
    let stats = Arc::new(Stats::new(settings.mounts.len()));
    let tombstones = Arc::new(Tombstones::empty());
    let pipeline = pipeline(
        settings.clone(),
        stats,
        Arc::new(Stop::default()),
        tombstones.clone(),
    )
    .await;
    // Paths removed by `stowaway rm` are not uploaded again, by `migrate` either.
    if talks_to_s3 {
        for (i, e) in tombstones.refresh(&settings, &pipeline.store).await {
            tracing::warn!(mount = %settings.mounts[i].prefix.as_str(), error = %e, "cannot load the tombstones of `stowaway rm`: files it removed may be uploaded again if they came back");
        }
    }
    let (c, inputs) = Coordinator::new(pipeline, mode);
    Ok(c.run(inputs, None).await)
}

/// Migrates the backlog once and returns what was done; `progress` receives per-file updates.
pub async fn migrate(
    settings: Arc<Settings>,
    progress: Option<Arc<dyn Progress>>,
) -> Result<Summary, UploaderError> {
    if settings.mounts.iter().any(|m| m.upload) {
        let s = settings.clone();
        let _ = tokio::task::spawn_blocking(move || clean_archives(&s)).await;
    }
    run_once(settings, Migrate::new(progress), true).await
}

/// Reports to `plan` what [`migrate`] would do, touching nothing (no S3 request either).
pub async fn dry_run(
    settings: Arc<Settings>,
    plan: Arc<dyn Plan>,
) -> Result<Summary, UploaderError> {
    run_once(settings, DryRun::new(plan), false).await
}
