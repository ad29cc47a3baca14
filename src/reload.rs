//! The running service's parts that a SIGHUP reload replaces, and systemd notifications.
//!
//! A reload re-reads and validates the configuration exactly as start-up does. If it is
//! invalid (or presigning credentials cannot be had for it), nothing changes and the error is
//! logged once. If it is valid:
//! * a new request state ([`AppState`]: mounts, root and archive handles, link keys, URL
//!   settings, front authentication) is swapped in atomically; requests already running finish
//!   on the old one, no connection is closed;
//! * the S3 probe restarts on the new buckets (readiness keeps its last verdict meanwhile);
//! * the uploader is drained (in-flight uploads get `server.shutdown_timeout` to finish on the
//!   old settings, then are aborted and their files stay local) and a new one starts on the
//!   new settings, beginning with a full rescan that picks up whatever the old one left.
//!
//! Settings bound to start-up resources (listeners, worker threads, the socket's mode and
//! group, logging) keep their old values; each change is logged as needing a restart.
//!
//! systemd (`Type=notify`): `READY=1` once listening; `RELOADING=1` with `MONOTONIC_USEC`
//! when a reload starts and `READY=1` when its outcome is decided; `STOPPING=1` on shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use tokio::task::JoinHandle;

use crate::config::{self, CliOverrides, ConfigError, FsChecks, Settings};
use crate::health::Health;
use crate::http::{AppState, Live};
use crate::metrics::Metrics;
use crate::store::aws::CredentialsError;
use crate::tombstone::Tombstones;
use crate::uploader::Uploader;
use crate::url::Signer;

/// Why a reload was refused (the old configuration keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Credentials(#[from] CredentialsError),
    #[error("s3.region is required for presigning")]
    NoRegion,
    #[error("reading the configuration failed: {0}")]
    Task(String),
}

/// Where the configuration comes from, to read it again.
#[derive(Debug, Clone)]
pub struct Source {
    pub config: Option<PathBuf>,
    pub overrides: CliOverrides,
}

/// systemd's notification socket, if stowaway runs under `Type=notify` (a no-op otherwise).
pub mod notify {
    use sd_notify::NotifyState;

    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }

    /// Listening and ready (also: a reload is finished).
    pub fn ready() {
        send(&[NotifyState::Ready]);
    }

    /// A reload starts; systemd wants the monotonic time with it.
    pub fn reloading() {
        match NotifyState::monotonic_usec_now() {
            Ok(t) => send(&[NotifyState::Reloading, t]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// Shutting down.
    pub fn stopping() {
        send(&[NotifyState::Stopping]);
    }
}

/// Settings that only take effect at start-up: in `new`, each is put back to its value in
/// `old`. Returns the keys that differed.
pub fn keep_restart_only(old: &Settings, new: &mut Settings) -> Vec<&'static str> {
    let mut kept = Vec::new();
    let (o, n) = (&old.server, &mut new.server);
    if o.listen != n.listen {
        kept.push("server.listen");
        n.listen = o.listen.clone();
    }
    if o.workers != n.workers {
        kept.push("server.workers");
        n.workers = o.workers;
    }
    if o.metrics_listen != n.metrics_listen {
        kept.push("server.metrics_listen");
        n.metrics_listen = o.metrics_listen;
    }
    if o.shutdown_timeout != n.shutdown_timeout {
        kept.push("server.shutdown_timeout");
        n.shutdown_timeout = o.shutdown_timeout;
    }
    let (oa, na) = (&o.front_auth, &mut n.front_auth);
    if oa.socket_mode != na.socket_mode {
        kept.push("server.socket_mode");
        na.socket_mode = oa.socket_mode;
    }
    if oa.socket_group != na.socket_group || oa.socket_gid != na.socket_gid {
        kept.push("server.socket_group");
        na.socket_group = oa.socket_group.clone();
        na.socket_gid = oa.socket_gid;
    }
    // The admin listener is bound once; its token (read with the new file) still changes.
    if o.admin_listen != n.admin_listen {
        kept.push("server.admin_listen");
        n.admin_listen = o.admin_listen.clone();
    }
    if old.log.format != new.log.format {
        kept.push("log.format");
        new.log.format = old.log.format;
    }
    if old.log.level != new.log.level {
        kept.push("log.level");
        new.log.level = old.log.level.clone();
    }
    kept
}

fn uploading(s: &Settings) -> bool {
    s.uploader.enabled && s.mounts.iter().any(|m| m.upload)
}

/// Everything `serve` runs besides the HTTP listeners.
pub struct Services {
    pub settings: Arc<Settings>,
    /// The request state every handler reads.
    pub live: web::Data<Live>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    metrics_upkeep: JoinHandle<()>,
    /// The signer and its credential refresher.
    signer: Option<(Arc<Signer>, JoinHandle<()>)>,
    uploader: Option<Uploader>,
    probe: Option<JoinHandle<()>>,
    /// Paths `stowaway rm` removed, and the task that keeps them current.
    tombstones: Arc<Tombstones>,
    tombstone_task: Option<JoinHandle<()>>,
    /// The hot-object caches (their tasks stop when the last request state lets go).
    caches: Arc<crate::cache::Caches>,
}

async fn sdk_for(s: &Settings) -> Option<aws_config::SdkConfig> {
    (s.needs_signing() || uploading(s)).then_some(())?;
    Some(crate::store::aws::sdk_config(&s.s3).await)
}

async fn signer_for(
    s: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Option<(Arc<Signer>, JoinHandle<()>)>, ReloadError> {
    let Some(sdk) = sdk.filter(|_| s.needs_signing()) else {
        return Ok(None);
    };
    let region = s.s3.region.clone().ok_or(ReloadError::NoRegion)?;
    let signer = Arc::new(Signer::new(region));
    let provider = crate::store::aws::init_signer(sdk, &signer).await?;
    let refresher = crate::store::aws::spawn_refresher(signer.clone(), provider);
    Ok(Some((signer, refresher)))
}

fn spawn_probe(
    s: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
    health: &Arc<Health>,
    first: bool,
) -> Option<JoinHandle<()>> {
    let sdk = sdk?;
    if s.server.s3_probe_interval.is_zero() {
        return None;
    }
    let mut buckets: Vec<String> = s.mounts.iter().map(|m| m.bucket.clone()).collect();
    buckets.sort();
    buckets.dedup();
    Some(crate::health::spawn_s3_probe(
        health.clone(),
        crate::store::aws::probe_client(sdk, &s.s3),
        buckets,
        s.server.s3_probe_interval,
        first,
    ))
}

fn mount_prefixes(s: &Settings) -> Vec<&str> {
    s.mounts.iter().map(|m| m.prefix.as_str()).collect()
}

impl Services {
    /// Starts credentials, the uploader, the S3 probe and metrics for `settings`.
    pub async fn start(settings: Settings) -> anyhow::Result<Services> {
        let settings = Arc::new(settings);
        let sdk = sdk_for(&settings).await;
        let signer = signer_for(&settings, sdk.as_ref()).await?;
        let health = Arc::new(Health::default());
        let (tombstones, tombstone_task) = crate::tombstone::start(&settings, sdk.is_some()).await;
        // A probe that sees S3 again makes the uploader retry at once.
        let uploader = if uploading(&settings) {
            Some(
                crate::uploader::spawn_with(
                    settings.clone(),
                    Some(health.s3_recovered()),
                    tombstones.clone(),
                )
                .await,
            )
        } else {
            None
        };
        health.watch_uploader(
            uploader
                .as_ref()
                .map(|u| (u.stats.clone(), settings.uploader.rescan_interval)),
        );
        let probe = spawn_probe(&settings, sdk.as_ref(), &health, true);
        let metrics = Arc::new(Metrics::new(
            &settings,
            uploader.as_ref().map(|u| u.stats.clone()),
        ));
        let metrics_upkeep = metrics.spawn_upkeep();
        let caches = Arc::new(crate::cache::Caches::start(&settings).await);
        metrics.set_caches(Some(caches.clone()));
        let state = AppState::new(settings.clone(), signer.as_ref().map(|s| s.0.clone()))
            .with_observability(Some(metrics.clone()), health.clone())
            .with_tombstones(tombstones.clone())
            .with_storage_classes(crate::storage_class::start(&settings, sdk.is_some()).await)
            .with_caches(caches.clone());
        Ok(Services {
            settings,
            live: web::Data::new(Live::new(state)),
            health,
            metrics,
            metrics_upkeep,
            signer,
            uploader,
            probe,
            tombstones,
            tombstone_task,
            caches,
        })
    }

    /// Handles one SIGHUP: notifies systemd, reloads (or logs why not), restarts the uploader.
    pub async fn reload(&mut self, source: &Source) {
        notify::reloading();
        tracing::info!("SIGHUP: reloading the configuration");
        let swapped = self.swap(source).await;
        if let Err(e) = &swapped {
            tracing::error!(error = %e, "reload refused: still serving the previous configuration");
        }
        notify::ready();
        if swapped.is_ok() {
            self.restart_uploader().await;
        }
    }

    /// Reads and validates the configuration and swaps the request state. On error nothing
    /// has changed.
    async fn swap(&mut self, source: &Source) -> Result<(), ReloadError> {
        let src = source.clone();
        let (mut new, unknown) = tokio::task::spawn_blocking(move || {
            config::load_settings(src.config.as_deref(), &src.overrides, FsChecks::Check)
        })
        .await
        .map_err(|e| ReloadError::Task(e.to_string()))??;
        for k in &unknown {
            tracing::warn!(key = %k, "unknown config key is ignored");
        }
        for key in keep_restart_only(&self.settings, &mut new) {
            tracing::warn!(
                key,
                "changed, but needs a restart to take effect: keeping the running value"
            );
        }
        let new = Arc::new(new);
        let sdk = sdk_for(&new).await;
        let signer = signer_for(&new, sdk.as_ref()).await?;
        // Decision counters are labelled by mount: a new set of mounts starts new counters.
        let metrics = if mount_prefixes(&new) == mount_prefixes(&self.settings) {
            self.metrics.clone()
        } else {
            let m = Arc::new(Metrics::new(
                &new,
                self.uploader.as_ref().map(|u| u.stats.clone()),
            ));
            let upkeep = m.spawn_upkeep();
            std::mem::replace(&mut self.metrics_upkeep, upkeep).abort();
            self.metrics = m.clone();
            m
        };
        let new_for_state = new.clone();
        let signer_arc = signer.as_ref().map(|s| s.0.clone());
        let health = self.health.clone();
        // Mount indexes may have changed: a new set, loaded for the new mounts.
        let (tombstones, tombstone_task) = crate::tombstone::start(&new, sdk.is_some()).await;
        let for_state = tombstones.clone();
        let classes = crate::storage_class::start(&new, sdk.is_some()).await;
        // A new set: the cache settings may have changed; each rebuilds its index by a scan,
        // which must not run while a fill of the old set can still put a file in place.
        self.caches.retire();
        let caches = Arc::new(crate::cache::Caches::start(&new).await);
        metrics.set_caches(Some(caches.clone()));
        let caches_for_state = caches.clone();
        // Opening the root and archive handles touches the file system.
        let state = tokio::task::spawn_blocking(move || {
            AppState::new(new_for_state, signer_arc)
                .with_observability(Some(metrics), health)
                .with_tombstones(for_state)
                .with_storage_classes(classes)
                .with_caches(caches_for_state)
        })
        .await
        .map_err(|e| ReloadError::Task(e.to_string()))?;
        self.live.store(state);
        self.caches = caches;
        self.tombstones = tombstones;
        if let Some(t) = std::mem::replace(&mut self.tombstone_task, tombstone_task) {
            t.abort();
        }
        // Requests that still hold the old state keep its signer alive; only its refresher stops.
        if let Some((_, refresher)) = std::mem::replace(&mut self.signer, signer) {
            refresher.abort();
        }
        if let Some(p) = self.probe.take() {
            p.abort();
        }
        self.probe = spawn_probe(&new, sdk.as_ref(), &self.health, false);
        self.settings = new;
        tracing::info!(
            mounts = self.settings.mounts.len(),
            "configuration reloaded"
        );
        Ok(())
    }

    /// Drains the running uploader (in-flight uploads finish on the old settings within
    /// `server.shutdown_timeout`, then are aborted; their files stay local) and starts one on
    /// the current settings. Never two at once: both would pick up the same files.
    async fn restart_uploader(&mut self) {
        if let Some(old) = self.uploader.take() {
            tracing::info!("reload: draining the uploader");
            old.shutdown(self.settings.server.shutdown_timeout).await;
        }
        if uploading(&self.settings) {
            let u = crate::uploader::spawn_with(
                self.settings.clone(),
                Some(self.health.s3_recovered()),
                self.tombstones.clone(),
            )
            .await;
            self.health.watch_uploader(Some((
                u.stats.clone(),
                self.settings.uploader.rescan_interval,
            )));
            self.metrics.set_uploader_stats(Some(u.stats.clone()));
            self.uploader = Some(u);
            tracing::info!("reload: uploader restarted on the new settings");
        } else {
            self.health.watch_uploader(None);
            self.metrics.set_uploader_stats(None);
        }
    }

    /// Stops the uploader, waiting up to `timeout` for in-flight uploads.
    pub async fn shutdown_uploader(&mut self, timeout: Duration) {
        if let Some(u) = self.uploader.take() {
            u.shutdown(timeout).await;
        }
    }
}

/// A SIGHUP stream, registered before anything else: SIGHUP's default action ends the process.
pub fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP (configuration reload)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra_server: &str, log_level: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(&root).unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:8700\"\n{extra_server}\n[log]\nlevel = \"{log_level}\"\n\
                 [uploader]\nenabled = false\n[s3]\nregion = \"us-east-1\"\n\
                 [[mount]]\nprefix = \"/static/\"\nroot = \"{}\"\nbucket = \"bkt\"\nupload = false\n",
                root.display()
            ),
        )
        .unwrap();
        config::load_settings(Some(&path), &CliOverrides::default(), FsChecks::Skip)
            .unwrap()
            .0
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let old = settings("workers = 2", "info");
        let mut new = settings("workers = 4\nshutdown_timeout = \"5s\"", "debug");
        new.server.listen = config::Listen::Tcp("127.0.0.1:8701".parse().unwrap());
        new.server.verdict_ttl = Duration::from_secs(9);
        let kept = keep_restart_only(&old, &mut new);
        assert_eq!(
            kept,
            [
                "server.listen",
                "server.workers",
                "server.shutdown_timeout",
                "log.level"
            ]
        );
        assert_eq!(new.server.listen, old.server.listen);
        assert_eq!(new.server.workers, 2);
        assert_eq!(new.server.shutdown_timeout, old.server.shutdown_timeout);
        assert_eq!(new.log.level, "info");
        // Everything else takes the new value.
        assert_eq!(new.server.verdict_ttl, Duration::from_secs(9));
        assert!(keep_restart_only(&old, &mut old.clone()).is_empty());
    }

    #[test]
    fn the_admin_listener_needs_a_restart() {
        let old = settings("", "info");
        let mut new = old.clone();
        new.server.admin_listen = Some(config::Listen::Tcp("127.0.0.1:8701".parse().unwrap()));
        assert_eq!(keep_restart_only(&old, &mut new), ["server.admin_listen"]);
        assert_eq!(new.server.admin_listen, None);
    }
}
