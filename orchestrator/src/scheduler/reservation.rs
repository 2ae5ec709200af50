//! The scheduler's side of reservations: a claimed reservation's VM is
//! booted (warm-started like a job's) and kept until its time is up, it
//! is released, its job is cancelled or the VM stops; a failed job's VM
//! held the same way. While kept, the VM counts in the host's capacity
//! (its task in the scheduler's set holds its ledger entry). A service
//! that stops detaches kept VMs instead of destroying them; the next one
//! on the host takes them back ([`adopt`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{apply, micros, SchedulerConfig};
use crate::cancel::Cancel;
use crate::job::{JobState, Move};
use crate::placement::Needs;
use crate::progress::{Progress, VM_PHASES};
use crate::runner::reserve::{reserve, ReserveRequest};
use crate::settings::Settings;
use crate::store::{now_micros, ClaimedJob, Reach, Reservation, ReservationKind, Store};
use crate::vm::held::HeldVm;

/// How often a kept VM's reservation is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Runs a claimed reservation's job: boot, keep, end.
pub(super) async fn run(
    store: Store,
    settings: Arc<Settings>,
    cfg: Arc<SchedulerConfig>,
    job: ClaimedJob,
    needs: Needs,
    stop: watch::Receiver<bool>,
) {
    let uuid = job.uuid.clone();
    let owner = cfg.owner.clone();
    let worker = |to: JobState| Move::by_worker(&owner, to);
    let r = match store.reservation_of_job(&uuid).await {
        Ok(Some(r)) if r.ended_at.is_none() && !r.release_requested => r,
        Ok(_) => {
            apply(
                &store,
                &uuid,
                &worker(JobState::Cancelled).because("the reservation was released or is gone"),
            )
            .await;
            return;
        }
        Err(e) => {
            let msg = format!("reading the reservation: {}", crate::util::full(&e));
            apply(&store, &uuid, &worker(JobState::Error).because(msg)).await;
            return;
        }
    };
    // The task repository asked for, through the git cache.
    let mut _scratch = None;
    let mut checkout = None;
    if let Some(repo) = r.git_repo.clone() {
        let cache = crate::cache::Cache::new(&settings.data_dir);
        let scratch_root = settings.data_dir.join("tmp");
        let (id, reference) = (uuid.clone(), r.git_ref.clone().unwrap_or_default());
        let repo2 = repo.clone();
        let export = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&scratch_root).map_err(super::source::SourceError::Scratch)?;
            super::source::export_tree(&cache, &scratch_root, &id, &repo2, &reference)
        });
        match super::renewing(&store, &cfg, &uuid, export).await {
            Ok(Ok((dir, commit))) => {
                if let Err(e) = store.set_commit(&uuid, &owner, &commit).await {
                    tracing::error!("reservation {}: {}", r.id, crate::util::full(&e));
                }
                checkout = Some((
                    dir.path().to_path_buf(),
                    crate::runner::reserve::checkout_name(&repo),
                ));
                _scratch = Some(dir);
            }
            Ok(Err(e)) => {
                let msg = crate::util::full(&e);
                apply(
                    &store,
                    &uuid,
                    &worker(JobState::Error)
                        .caused_by(crate::job::Cause::BadInput)
                        .because(msg.clone()),
                )
                .await;
                end(
                    &store,
                    &r,
                    &format!("could not check out the task repository: {msg}"),
                )
                .await;
                return;
            }
            Err(e) => {
                let msg = format!("the checkout ended abnormally: {e}");
                apply(&store, &uuid, &worker(JobState::Error).because(msg.clone())).await;
                end(&store, &r, &msg).await;
                return;
            }
        }
    }
    apply(&store, &uuid, &worker(JobState::Booting)).await;
    let cancel = Cancel::new();
    let req = ReserveRequest {
        job_id: uuid.clone(),
        image: job.image.clone(),
        user_key: r.ssh_key.clone(),
        needs: Some(needs),
        checkout,
        packages: r.allow_packages,
    };
    let boot_settings = settings.clone();
    let boot_cancel = cancel.clone();
    let booting = tokio::task::spawn_blocking(move || {
        let ui = Progress::new(true, VM_PHASES);
        reserve(&boot_settings, &req, &boot_cancel, &ui)
    });
    let held = match super::renewing(&store, &cfg, &uuid, booting).await {
        Ok(Ok(vm)) => vm,
        Ok(Err(e)) => {
            let msg = crate::util::full(&e);
            tracing::warn!("reservation {}: {msg}", r.id);
            apply(
                &store,
                &uuid,
                &worker(JobState::Error)
                    .caused_by(e.cause())
                    .because(msg.clone()),
            )
            .await;
            end(&store, &r, &format!("could not start: {msg}")).await;
            return;
        }
        Err(e) => {
            let msg = format!("the reservation's thread ended abnormally: {e}");
            apply(&store, &uuid, &worker(JobState::Error).because(msg.clone())).await;
            end(&store, &r, &msg).await;
            return;
        }
    };
    let reach = Reach {
        host: cfg.host.clone(),
        port: held.port,
        host_key: held.host_key.clone(),
        vm_name: held.name().to_string(),
    };
    if let Err(e) = store.reservation_ready(&r.id, &reach).await {
        tracing::error!("reservation {}: {}", r.id, crate::util::full(&e));
    }
    apply(&store, &uuid, &worker(JobState::Running)).await;
    tracing::info!(
        "reservation {}: ready on 127.0.0.1:{} ({})",
        r.id,
        held.port,
        held.name()
    );
    keep(store, settings, cfg, r.id.clone(), Some(uuid), held, stop).await;
}

/// A failed job's VM, held for whoever asked: ready now, kept like a
/// reservation's (the job itself has ended).
pub(super) async fn hold(
    store: Store,
    settings: Arc<Settings>,
    cfg: Arc<SchedulerConfig>,
    hold: Reservation,
    held: HeldVm,
    stop: watch::Receiver<bool>,
) {
    let limit = hold
        .hold_limit
        .map_or(settings.reservations.per_requester, |l| {
            l.min(settings.reservations.per_requester)
        });
    if !store
        .may_hold(&hold.requester, limit)
        .await
        .unwrap_or(false)
    {
        let why = format!(
            "`{}` already holds the most VMs one requester may ({limit})",
            hold.requester
        );
        tracing::warn!("hold {}: {why}; destroying the VM", hold.id);
        end(&store, &hold, &why).await;
        close(held).await;
        return;
    }
    let reach = Reach {
        host: cfg.host.clone(),
        port: held.port,
        host_key: held.host_key.clone(),
        vm_name: held.name().to_string(),
    };
    if let Err(e) = store.reservation_ready(&hold.id, &reach).await {
        tracing::error!("hold {}: {}", hold.id, crate::util::full(&e));
        end(&store, &hold, "cannot record the hold").await;
        close(held).await;
        return;
    }
    tracing::info!(
        "job {}: failed; its VM is held ({}) on 127.0.0.1:{}",
        hold.job,
        hold.id,
        held.port
    );
    keep(store, settings, cfg, hold.id.clone(), None, held, stop).await;
}

/// Keeps `held` until its reservation ends; `job`: the reservation's own
/// job, whose lease this renews and which finishes with it. A service
/// shutdown detaches the VM (kept running until its time is up).
async fn keep(
    store: Store,
    _settings: Arc<Settings>,
    cfg: Arc<SchedulerConfig>,
    id: String,
    job: Option<String>,
    held: HeldVm,
    mut stop: watch::Receiver<bool>,
) {
    let owner = cfg.owner.clone();
    let mut last_renew = tokio::time::Instant::now();
    let why = loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = async { let _ = stop.wait_for(|v| *v).await; } => {}
        }
        let r = match store.reservation(&id).await {
            Ok(Some(r)) => r,
            Ok(None) => break "its record is gone".to_string(),
            Err(e) => {
                tracing::error!("reservation {id}: {}", crate::util::full(&e));
                continue;
            }
        };
        if *stop.borrow() {
            let until = r.expires_at.unwrap_or_else(now_micros);
            let job_name = job.clone().unwrap_or_else(|| r.job.clone());
            let name = held.name().to_string();
            match tokio::task::spawn_blocking(move || held.detach(&job_name, until)).await {
                Ok(Ok(())) => tracing::info!(
                    "reservation {id}: service stopping; {name} keeps running until its time is up"
                ),
                Ok(Err(e)) => tracing::error!("reservation {id}: {}", crate::util::full(&e)),
                Err(e) => tracing::error!("reservation {id}: {e}"),
            }
            return;
        }
        if r.ended_at.is_some() {
            break r.end_reason.unwrap_or_else(|| "ended".into());
        }
        if r.release_requested {
            break "released".into();
        }
        if r.expires_at.is_some_and(|at| at <= now_micros()) {
            break "expired".into();
        }
        if !held.is_running() {
            break "the VM stopped".into();
        }
        if let Some(uuid) = &job {
            if last_renew.elapsed() >= cfg.lease / 3 {
                last_renew = tokio::time::Instant::now();
                match store.renew_lease(uuid, &owner, micros(cfg.lease)).await {
                    Ok(Some(JobState::Cancelled)) => break "its job was cancelled".into(),
                    Ok(None) => break "its job's lease was lost".into(),
                    Ok(_) => {}
                    Err(e) => tracing::error!("reservation {id}: {}", crate::util::full(&e)),
                }
            }
        }
    };
    tracing::info!("reservation {id}: {why}; destroying {}", held.name());
    close(held).await;
    if let Ok(Some(r)) = store.reservation(&id).await {
        end(&store, &r, &why).await;
    }
    if let Some(uuid) = job {
        for to in [JobState::Reporting, JobState::Passed] {
            apply(
                &store,
                &uuid,
                &Move::by_worker(&owner, to).because(format!("reservation ended: {why}")),
            )
            .await;
        }
    }
}

/// Takes back the VMs kept on this host that a stopped service left
/// running, and starts keeping each (in `running`, with its ledger entry
/// under the reservation's job or hold id). Those whose VM is gone end.
pub(super) async fn adopt(
    store: &Store,
    settings: &Arc<Settings>,
    cfg: &Arc<SchedulerConfig>,
    stop: &watch::Receiver<bool>,
) -> Vec<Adopted> {
    let mut out = Vec::new();
    let held = match store.held_on(&cfg.host).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("reading kept VMs: {}", crate::util::full(&e));
            return out;
        }
    };
    for r in held {
        let (Some(name), Some(port), Some(key)) = (r.vm_name.clone(), r.port, r.host_key.clone())
        else {
            continue;
        };
        let expires = r.expires_at.unwrap_or(0);
        let uri = settings.libvirt_uri.clone();
        let vms = settings.vms_dir();
        let job = r.job.clone();
        let taken = tokio::task::spawn_blocking(move || {
            HeldVm::adopt(
                &uri,
                &vms,
                &name,
                &job,
                expires,
                u16::try_from(port).unwrap_or(0),
                key,
            )
        })
        .await;
        let mut vm = match taken {
            Ok(Ok(vm)) => vm,
            Ok(Err(e)) => {
                let why = format!("its VM was not found again: {}", crate::util::full(&e));
                tracing::warn!("reservation {}: {why}", r.id);
                end(store, &r, &why).await;
                if r.kind == ReservationKind::Reservation {
                    for to in [JobState::Reporting, JobState::Passed] {
                        apply(
                            store,
                            &r.job,
                            &Move::new(to, crate::job::Actor::Operator).because(why.clone()),
                        )
                        .await;
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::error!("reservation {}: {e}", r.id);
                continue;
            }
        };
        if r.allow_packages {
            reopen_packages(store, settings, &r, &mut vm).await;
        }
        let job = match r.kind {
            ReservationKind::Reservation => {
                if let Err(e) = store
                    .take_lease(&r.job, &cfg.owner, micros(cfg.lease))
                    .await
                {
                    tracing::error!("reservation {}: {}", r.id, crate::util::full(&e));
                }
                Some(r.job.clone())
            }
            ReservationKind::Hold => None,
        };
        tracing::info!(
            "reservation {}: taken back ({} on 127.0.0.1:{port})",
            r.id,
            vm.name()
        );
        let key = job.clone().unwrap_or_else(|| r.id.clone());
        let needs = store
            .job_needs(&r.job)
            .await
            .ok()
            .flatten()
            .unwrap_or(Needs::FALLBACK);
        let keeping = keep(
            store.clone(),
            settings.clone(),
            cfg.clone(),
            r.id.clone(),
            job,
            vm,
            stop.clone(),
        );
        out.push(Adopted {
            key,
            needs,
            keeping: Box::pin(keeping),
        });
    }
    out
}

/// Opens again the package proxy of a taken-back VM. A failure is logged
/// and leaves the VM kept without it (its user sees apt fail, not the
/// VM vanish).
async fn reopen_packages(
    store: &Store,
    settings: &Arc<Settings>,
    r: &Reservation,
    vm: &mut HeldVm,
) {
    let image = match store.get_job(&r.job).await {
        Ok(Some(j)) => j.image,
        Ok(None) => None,
        Err(e) => {
            tracing::error!("reservation {}: {}", r.id, crate::util::full(&e));
            None
        }
    };
    let Some(image) = image else {
        tracing::warn!(
            "reservation {}: its job names no image; no package proxy",
            r.id
        );
        return;
    };
    let (settings, job, port) = (settings.clone(), r.job.clone(), vm.port);
    let opened = tokio::task::spawn_blocking(move || {
        crate::runner::reserve::reopen_packages(&settings, &job, &image, port)
    })
    .await;
    match opened {
        Ok(Ok(access)) => {
            vm.attach(Box::new(access));
            tracing::info!("reservation {}: its package proxy is open again", r.id);
        }
        Ok(Err(e)) => tracing::warn!(
            "reservation {}: cannot open its package proxy again: {}",
            r.id,
            crate::util::full(&e)
        ),
        Err(e) => tracing::error!("reservation {}: {e}", r.id),
    }
}

/// A kept VM taken back: its ledger entry and the task that keeps it.
pub(super) struct Adopted {
    pub key: String,
    pub needs: Needs,
    pub keeping: futures_util::future::BoxFuture<'static, ()>,
}

/// Ends a hold that waited for its job to fail, when the job ended
/// otherwise.
pub(super) async fn drop_hold(store: &Store, hold: &Reservation, why: &str) {
    end(store, hold, why).await;
}

async fn end(store: &Store, r: &Reservation, why: &str) {
    if let Err(e) = store.end_reservation(&r.id, why).await {
        tracing::error!("reservation {}: {}", r.id, crate::util::full(&e));
    }
}

async fn close(held: HeldVm) {
    let name = held.name().to_string();
    match tokio::task::spawn_blocking(move || held.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("{name}: {e}"),
        Err(e) => tracing::error!("{name}: {e}"),
    }
}
