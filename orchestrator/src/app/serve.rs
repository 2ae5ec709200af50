//! `ferrotron serve`: the HTTP API, the scheduler, the AMQP intake and the
//! git cache's upkeep around one [`App`].

use std::sync::Arc;

use super::{readiness, App};
use crate::settings::Settings;
use crate::store::StoreError;

/// What `ferrotron serve` runs besides the HTTP API.
pub struct ServiceConfig {
    /// Rules for message intake (HTTP and AMQP); none: no intake.
    pub intake: Option<crate::intake::enqueue::Intake>,
    /// The scheduler (none: this server only records).
    pub scheduler: Option<crate::scheduler::SchedulerConfig>,
    /// Consume messages from RabbitMQ (with an intake).
    pub amqp: Option<crate::intake::amqp::AmqpConfig>,
    /// Publish results and job moves to RabbitMQ (through the outbox).
    pub publish: Option<crate::publish::PublishConfig>,
    /// Periodic sync and fsck of the git cache.
    pub cache_upkeep: crate::cache::maintain::Upkeep,
}

/// Serves the HTTP API, the scheduler and the AMQP intake until
/// `shutdown` resolves; then running jobs are stopped and requeued.
pub async fn serve(
    settings: Settings,
    config: crate::api::ApiConfig,
    listen: std::net::SocketAddr,
    service: ServiceConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeCommandError> {
    // The shutdown signal, seen by the wait for the database and the API.
    let (down_tx, mut down) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = down_tx.send(true);
    });
    let listener = crate::api::bind(listen).await?;
    let cache = crate::cache::Cache::new(&settings.data_dir);
    let intake = service.intake.map(|mut i| {
        i.cache = Some(cache.clone());
        Arc::new(i)
    });
    let Some(app) = open_when_up(&settings, &mut down).await? else {
        return Ok(());
    };
    let mut app = app.with_intake(intake.clone());
    if service.publish.is_some() {
        app = app.with_outbox();
    }
    let (state, stopper) = crate::api::AppState::new(app.clone(), config);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(cfg) = service.scheduler {
        tasks.spawn(crate::scheduler::run(
            app.store().clone(),
            app.settings_arc().clone(),
            cfg,
            stop_rx.clone(),
        ));
    }
    tasks.spawn(crate::cache::maintain::run(
        cache.clone(),
        service.cache_upkeep,
        stop_rx.clone(),
    ));
    if let Some(intake) = intake.clone() {
        // SIGHUP reloads the rules; a bad file leaves the last good rules.
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP: rules reload disabled");
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => {}
                    _ = stop.changed() => return,
                }
                match intake.reload() {
                    Ok(n) => tracing::info!("rules reloaded: {n} rule(s) in force"),
                    Err(e) => tracing::error!(
                        "rules reload failed, keeping the previous rules: {}",
                        crate::util::full(&e)
                    ),
                }
            }
        });
    }
    if let Some(mut cfg) = service.publish {
        if cfg.base_url.is_empty() {
            let local = listener
                .local_addr()
                .map_err(crate::api::ServeError::Serve)?;
            cfg.base_url = format!("http://{local}");
        }
        let store = app.store().clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            crate::publish::run(store, cfg, stop, |s| tracing::info!("{s}")).await;
        });
    }
    if let (Some(_), None) = (&service.amqp, &intake) {
        tracing::info!("amqp: no --rules, so no intake: publishing only");
    }
    if let (Some(cfg), true) = (service.amqp, intake.is_some()) {
        let app = app.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let handler = move |msg: crate::rules::Message| {
                let app = app.clone();
                async move {
                    let r = app
                        .trigger(&msg)
                        .await
                        .map_err(|e| crate::intake::HandleError::Retry(crate::util::full(&e)))?;
                    tracing::info!(
                        "amqp message {:?} ({}): {} job(s){}",
                        msg.id,
                        msg.topic,
                        r.jobs.len(),
                        if r.duplicate { ", a duplicate" } else { "" }
                    );
                    Ok(())
                }
            };
            crate::intake::amqp::run(cfg, handler, stop, |s| tracing::info!("{s}")).await;
        });
    }
    readiness::ready("serving");
    let shutdown = async move {
        while !*down.borrow() {
            if down.changed().await.is_err() {
                break;
            }
        }
        readiness::stopping();
    };
    let r = crate::api::serve_on(state, stopper, listener, shutdown).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    app.close().await;
    Ok(r?)
}

/// Opens the store, waiting for a database that does not answer yet (a
/// PostgreSQL still starting after a reboot) with a log line per attempt
/// and backoff up to 10 s; none when shut down while waiting. Errors
/// other than a failed connection (a migration that fails, a data folder
/// that cannot be made) end `serve` at once.
async fn open_when_up(
    settings: &Settings,
    down: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Option<App>, StoreError> {
    let mut backoff = std::time::Duration::from_millis(500);
    loop {
        match App::open(settings).await {
            Ok(app) => return Ok(Some(app)),
            // A PostgreSQL server may come later; a SQLite file that
            // cannot be opened will not.
            Err(e @ StoreError::Connect { .. })
                if crate::store::Backend::of_url(&settings.database_url())
                    == crate::store::Backend::Postgres =>
            {
                let line = format!(
                    "waiting for the database: {}; retrying in {:.1} s",
                    crate::util::full(&e),
                    backoff.as_secs_f64()
                );
                tracing::warn!("{line}");
                readiness::status(&line);
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = down.changed() => return Ok(None),
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeCommandError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Serve(#[from] crate::api::ServeError),
}
