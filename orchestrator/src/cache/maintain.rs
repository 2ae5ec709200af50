//! The service's cache upkeep: a sync of every repository (and a pull from
//! the followed master, if any) every `sync_every`, an fsck every
//! `fsck_every`. One task runs both, so they never run at the same time,
//! and both take the cache's lock, so neither overlaps a webhook's or a
//! job's sync of the same repository. The first of each runs one period
//! after the start (a restart loop does not hammer the origins).

use std::time::Duration;

use tokio::sync::watch;

use super::follow::{self, Follow, Pulled};
use super::fsck::{self, Verdict};
use super::sync::{self, SyncOptions};
use super::Cache;

/// How often the service syncs and checks the cache (`None`: never).
#[derive(Debug, Clone, Copy)]
pub struct Upkeep {
    pub sync_every: Option<Duration>,
    pub fsck_every: Option<Duration>,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            sync_every: Some(Duration::from_secs(15 * 60)),
            fsck_every: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Largest share (percent) of followed repositories one periodic pull may
/// delete (as `cache sync`'s default).
const MAX_PURGE_PERCENT: u32 = 5;

fn sync_all(cache: &Cache) {
    let opts = SyncOptions::default();
    let progress = |l: &str| tracing::info!("cache sync: {l}");
    match Follow::load(cache) {
        Ok(Some(mut f)) => {
            match follow::pull(cache, &mut f, &opts, MAX_PURGE_PERCENT, false, &progress) {
                Ok(Pulled::NotModified) => tracing::debug!("cache follow: not modified"),
                Ok(Pulled::Synced { report, purged }) => tracing::info!(
                    "cache follow: {}, {} purged",
                    report.summary(),
                    purged.len()
                ),
                Err(e) => tracing::warn!("cache follow: {}", crate::util::full(&e)),
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("cache follow: {}", crate::util::full(&e)),
    }
    let started = std::time::Instant::now();
    let synced = sync::sync(cache, &[], &opts, &progress);
    let m = crate::metrics::global();
    m.cache_sync_seconds
        .observe(started.elapsed().as_secs_f64());
    let failed = synced.as_ref().map_or(1, |r| r.failed());
    m.cache_sync_failures
        .inc_by(u64::try_from(failed).unwrap_or_default());
    match synced {
        Ok(r) if r.failed() > 0 => tracing::warn!("cache sync: {}", r.summary()),
        Ok(r) => tracing::info!("cache sync: {}", r.summary()),
        Err(e) => tracing::error!("cache sync: {}", crate::util::full(&e)),
    }
}

fn fsck_all(cache: &Cache) {
    match fsck::fsck(cache, &|l| tracing::info!("cache fsck: {l}")) {
        Ok(v) => {
            let broken = v
                .iter()
                .filter(|(_, v)| matches!(v, Verdict::Broken { .. }))
                .count();
            let repaired = v
                .iter()
                .filter(|(_, v)| matches!(v, Verdict::Recloned { .. }))
                .count();
            let line = format!(
                "cache fsck: {} checked, {repaired} repaired, {broken} broken",
                v.len()
            );
            if broken > 0 {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
        Err(e) => tracing::error!("cache fsck: {}", crate::util::full(&e)),
    }
}

/// Runs the upkeep until `stop` becomes true.
pub async fn run(cache: Cache, upkeep: Upkeep, mut stop: watch::Receiver<bool>) {
    let every = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    let (sync_every, fsck_every) = (every(upkeep.sync_every), every(upkeep.fsck_every));
    if sync_every.is_none() && fsck_every.is_none() {
        return;
    }
    tracing::info!(
        "cache upkeep: sync every {}, fsck every {}",
        sync_every.map_or("never".into(), |d| format!("{d:?}")),
        fsck_every.map_or("never".into(), |d| format!("{d:?}"))
    );
    let start = tokio::time::Instant::now();
    let mut next_sync = sync_every.map(|d| start + d);
    let mut next_fsck = fsck_every.map(|d| start + d);
    loop {
        let due = match (next_sync, next_fsck) {
            (Some(s), Some(f)) => s.min(f),
            (Some(s), None) => s,
            (None, Some(f)) => f,
            (None, None) => return,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        let now = tokio::time::Instant::now();
        let c = cache.clone();
        if let (Some(at), Some(d)) = (next_sync, sync_every) {
            if at <= now {
                let _ = tokio::task::spawn_blocking(move || sync_all(&c)).await;
                next_sync = Some(tokio::time::Instant::now() + d);
            }
        }
        let c = cache.clone();
        if let (Some(at), Some(d)) = (next_fsck, fsck_every) {
            if at <= tokio::time::Instant::now() {
                let _ = tokio::task::spawn_blocking(move || fsck_all(&c)).await;
                next_fsck = Some(tokio::time::Instant::now() + d);
            }
        }
    }
}
