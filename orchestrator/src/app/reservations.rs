//! Reservations for task authors, one layer for the command line and the
//! API: ask for a root VM (queued like a job, so it shares the hosts'
//! capacity), list, show, extend, release, and how to reach a ready one.
//! Holds of failed jobs are asked for here too ([`App::request_hold`]).

use std::time::Duration;

use super::App;
use crate::placement::Needs;
use crate::store::{
    format_time, NewQueuedJob, NewReservation, Reservation, ReservationKind, StoreError,
    RESERVATION_TASK,
};
use crate::store::{jump_command, known_hosts_line, pinned_ssh};

#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    #[error("the SSH key is not one OpenSSH public key line (`ssh-ed25519 AAAA... comment`): {0}")]
    Key(String),
    #[error("a TTL of {asked} s is longer than the longest allowed ({max} s)")]
    TooLong { asked: u64, max: u64 },
    #[error("a TTL must be at least one second")]
    TooShort,
    #[error("image `{spec}`: {why}")]
    Image { spec: String, why: String },
    #[error("{0}")]
    Size(String),
    #[error(
        "allow: image `{0}` cannot install packages (its manifest has no `install`); \
         ask for an image that can, such as `debian`"
    )]
    NoPackages(String),
    #[error("allow: `{0}` is not something a reservation may reach; known: packages")]
    UnknownAllow(String),
    #[error(
        "--git-repo `{0}`: give a URL the git cache can mirror (https://, file://, git@host:)"
    )]
    Repo(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReservationError {
    /// Whether the request is at fault (400), not the service.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReservationError::Store(_))
    }
}

/// What a reservation asks for.
#[derive(Debug, Clone, Default)]
pub struct ReserveArgs {
    /// `name` or `name:version`; default the default image.
    pub image: Option<String>,
    /// Default: the service's default TTL.
    pub ttl: Option<Duration>,
    pub vcpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// The requester's public key: root's login.
    pub ssh_key: String,
    /// The token's name (`cli` from the command line).
    pub requester: String,
    /// A task repository (URL) to find at `/root/<name>` in the VM, at
    /// `git_ref` (default HEAD), through the git cache.
    pub git_repo: Option<String>,
    pub git_ref: Option<String>,
    /// What else the VM may reach besides the git cache.
    pub allow: Vec<Allow>,
}

/// What a reservation's VM may reach besides the git cache (`allow:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Its image's package repositories (`apt-get install`), through a
    /// package proxy on its host, as a job's `environment.packages`:
    /// only `GET`/`HEAD` below those repositories' URLs, nothing else.
    Packages,
}

impl Allow {
    pub fn as_str(self) -> &'static str {
        match self {
            Allow::Packages => "packages",
        }
    }

    /// `packages`; anything else names the word.
    pub fn parse(word: &str) -> Result<Allow, ReservationError> {
        match word {
            "packages" => Ok(Allow::Packages),
            other => Err(ReservationError::UnknownAllow(other.to_string())),
        }
    }

    /// What `r` was allowed.
    pub fn of(r: &Reservation) -> Vec<Allow> {
        if r.allow_packages {
            vec![Allow::Packages]
        } else {
            Vec::new()
        }
    }
}

/// How a person reaches a ready reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachInfo {
    /// The host the VM runs on; its SSH forward listens on that host's
    /// loopback only.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The line to put in a known_hosts file: the guest's host key.
    pub known_hosts: String,
    /// Run on that host: the job's known_hosts file pins the key.
    pub ssh_command: String,
    /// From anywhere the person can log in to the host with SSH: through
    /// it as a jump host, with `known_hosts` saved to the file named.
    pub ssh_jump_command: String,
}

impl App {
    /// Queues a reservation (refused past the requester's limit or the
    /// longest TTL).
    pub async fn reserve(&self, a: &ReserveArgs) -> Result<Reservation, ReservationError> {
        let key = check_key(&a.ssh_key)?;
        let limits = self.settings().reservations;
        let ttl = self.check_ttl(a.ttl.unwrap_or(limits.default_ttl))?;
        let spec = a
            .image
            .clone()
            .unwrap_or_else(|| crate::images::DEFAULT_IMAGE.to_string());
        let image = crate::images::resolve(&self.settings().images_dir, &spec).map_err(|e| {
            ReservationError::Image {
                spec: spec.clone(),
                why: e.to_string(),
            }
        })?;
        let allow_packages = a.allow.contains(&Allow::Packages);
        if allow_packages && image.install.is_none() {
            return Err(ReservationError::NoPackages(image.label()));
        }
        if a.vcpus == Some(0) || a.memory_mib.is_some_and(|m| m < 64) {
            return Err(ReservationError::Size(
                "a VM needs at least 1 vCPU and 64 MiB".into(),
            ));
        }
        if let Some(repo) = &a.git_repo {
            if !crate::scheduler::source::is_url(repo) || repo.trim().is_empty() {
                return Err(ReservationError::Repo(repo.clone()));
            }
        }
        let needs = Needs {
            vcpus: a.vcpus.unwrap_or(image.vcpus),
            memory_mib: a.memory_mib.unwrap_or(u64::from(image.memory_mib)),
        };
        let job = NewQueuedJob {
            item: a.requester.clone(),
            item_type: "reservation".into(),
            arch: "x86_64".into(),
            task: RESERVATION_TASK.into(),
            repo: String::new(),
            git_ref: String::new(),
            path: ".".into(),
            priority: limits.priority,
            image: Some(image.label()),
            max_attempts: 1,
            needs: Some(needs),
            timeout_secs: None,
        };
        let new = NewReservation {
            requester: a.requester.clone(),
            ssh_key: key,
            ttl_secs: ttl,
            git_repo: a.git_repo.clone(),
            git_ref: a.git_ref.clone(),
            limit: limits.per_requester,
            allow_packages,
        };
        Ok(self.store().create_reservation(&new, &job).await?)
    }

    /// Queues `job` and asks that its VM be kept for the requester if it
    /// fails (`hold_on_failure`), for `ttl` from then.
    pub async fn submit_held(
        &self,
        job: &NewQueuedJob,
        ssh_key: &str,
        ttl: Duration,
        requester: &str,
    ) -> Result<(String, Reservation), ReservationError> {
        let new = NewReservation {
            requester: requester.to_string(),
            ssh_key: check_key(ssh_key)?,
            ttl_secs: self.check_ttl(ttl)?,
            git_repo: None,
            git_ref: None,
            limit: self.settings().reservations.per_requester,
            allow_packages: false,
        };
        let id = format!("submit-{}", uuid::Uuid::new_v4());
        Ok(self
            .store()
            .enqueue_held(&id, "ferrotron.submit", job, &new)
            .await?)
    }

    pub async fn reservations(&self, all: bool) -> Result<Vec<Reservation>, StoreError> {
        self.store().reservations(!all).await
    }

    pub async fn reservation(&self, id: &str) -> Result<Reservation, StoreError> {
        self.store()
            .reservation(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "reservation",
                name: id.to_string(),
            })
    }

    pub async fn extend_reservation(
        &self,
        id: &str,
        by: Duration,
    ) -> Result<Reservation, ReservationError> {
        let max = self.settings().reservations.max_ttl.as_secs();
        let by = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        Ok(self
            .store()
            .extend_reservation(id, by, i64::try_from(max).unwrap_or(i64::MAX))
            .await?)
    }

    pub async fn release_reservation(&self, id: &str) -> Result<Reservation, StoreError> {
        self.store().release_reservation(id).await
    }

    /// How to reach `r` once it is ready.
    pub fn reach(&self, r: &Reservation) -> Option<ReachInfo> {
        let (host, port, key) = r.forward()?;
        let local_file = self
            .settings()
            .jobs_dir()
            .join(&r.job)
            .join("known_hosts")
            .display()
            .to_string();
        Some(ReachInfo {
            host: host.to_string(),
            port,
            user: "root".into(),
            known_hosts: known_hosts_line(port, key),
            ssh_command: pinned_ssh(&local_file, port),
            ssh_jump_command: jump_command(&r.id, host, port),
        })
    }

    fn check_ttl(&self, ttl: Duration) -> Result<i64, ReservationError> {
        let max = self.settings().reservations.max_ttl;
        if ttl.as_secs() == 0 {
            return Err(ReservationError::TooShort);
        }
        if ttl > max {
            return Err(ReservationError::TooLong {
                asked: ttl.as_secs(),
                max: max.as_secs(),
            });
        }
        Ok(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
    }
}

/// One OpenSSH public key line, checked; returned trimmed.
fn check_key(text: &str) -> Result<String, ReservationError> {
    let line = text.trim();
    if line.contains('\n') || line.contains('\r') {
        return Err(ReservationError::Key("more than one line".into()));
    }
    ssh_key::PublicKey::from_openssh(line).map_err(|e| ReservationError::Key(e.to_string()))?;
    Ok(line.to_string())
}

/// One line describing `r`, for lists.
pub fn summary(r: &Reservation) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        r.id,
        r.kind.as_str(),
        r.status(),
        r.requester,
        match (r.ended_at, r.expires_at) {
            (Some(at), _) => format!(
                "ended {} ({})",
                format_time(at),
                r.end_reason.as_deref().unwrap_or("")
            ),
            (None, Some(at)) => format!("until {}", format_time(at)),
            (None, None) if r.kind == ReservationKind::Hold => "if the job fails".into(),
            (None, None) => "waiting for a VM".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_one_openssh_line() {
        let good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@example";
        assert_eq!(check_key(&format!(" {good}\n")).expect("good"), good);
        for bad in [
            "",
            "ssh-ed25519 notbase64",
            &format!("{good}\n{good}"),
            "$(reboot)",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
