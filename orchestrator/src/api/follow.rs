//! Following a job's `runner.log` while the job runs.
//!
//! A follower is woken by the kernel (inotify on the job's artifacts
//! folder) when the log grows, not by polling the file; the job's state is
//! read from the store only every [`STATE_EVERY`] (the writer may be another
//! process, a worker on this host). At most `--max-log-followers`
//! responses follow at once; more get 503. The log is opened
//! without following links ([`Dir`]): the published copy below the
//! artifacts folder once the job has ended, and before that the runner's
//! own below the jobs folder, which a worker of this host writes as the
//! job runs (an API server on another host sees the published copy only).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState};
use crate::beneath::{BeneathError, Dir};

/// How often a follower asks the store whether the job has ended.
const STATE_EVERY: Duration = Duration::from_secs(2);

/// The followers' bound, shared by the server (each follower holds a
/// descriptor, an inotify watch and a task).
#[derive(Clone)]
pub struct Followers {
    places: Arc<Semaphore>,
    max: usize,
}

impl Followers {
    pub fn new(max: usize) -> Followers {
        Followers {
            places: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A place for one more follower, or 503.
    fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.places
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Client {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "too_many_followers",
                message: format!(
                    "{} logs are being followed already (--max-log-followers); try again later, \
                 or read the log when the job has ended",
                    self.max
                ),
            })
    }
}

/// The kernel's word that something in a folder changed.
struct Changes(AsyncFd<InotifyFd>);

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Changes {
    #[expect(
        unsafe_code,
        reason = "AsyncFd::register: the descriptor is owned by what it registers"
    )]
    fn of(folder: &Path) -> Option<Changes> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        ino.add_watch(
            folder,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .ok()?;
        // SAFETY: the descriptor belongs to the `Inotify` moved into the
        // AsyncFd, which deregisters it before dropping (closing) it.
        unsafe { AsyncFd::register(InotifyFd(ino)) }
            .ok()
            .map(Changes)
    }

    /// Waits for the next change (any file in the folder).
    async fn next(&self) {
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                return std::future::pending().await;
            };
            match ready.get_inner().0.read_events() {
                Ok(_) => return,
                Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

/// Where a job's log is: the published copy, then the runner's.
#[derive(Clone)]
pub struct LogRoots {
    /// `<artifacts>`: `<uuid>/runner.log` once the job's files are stored.
    pub published: PathBuf,
    /// `<jobs>`: `<uuid>/runner.log` as this host's runner writes it.
    pub live: PathBuf,
}

impl LogRoots {
    /// The installation's folders (`settings`): what the API's follow and
    /// the job page both read.
    pub fn of(settings: &crate::settings::Settings) -> LogRoots {
        LogRoots {
            published: settings.artifacts_dir(),
            live: settings.jobs_dir(),
        }
    }

    /// The log and the folder holding it: the published copy if there is
    /// one, else the runner's; `Missing` when neither exists (yet).
    pub fn open(&self, uuid: &str) -> Result<(std::fs::File, PathBuf), BeneathError> {
        match open_log(&self.published, uuid) {
            Ok(f) => Ok((f, self.published.join(uuid))),
            Err(BeneathError::Missing(_)) => {
                open_log(&self.live, uuid).map(|f| (f, self.live.join(uuid)))
            }
            Err(e) => Err(e),
        }
    }
}

/// One follower's state.
struct Follow {
    st: AppState,
    uuid: String,
    roots: LogRoots,
    /// The folder of the log being read (watched for its growth).
    folder: Option<PathBuf>,
    file: Option<tokio::fs::File>,
    changes: Option<Changes>,
    finished: bool,
    _place: OwnedSemaphorePermit,
}

/// The bytes of the job's runner.log ([`LogRoots::open`]), then what is
/// appended to it, until the job has ended (and the last of it is read)
/// or the server stops. `opened` is the log and its folder if the caller
/// opened it already (a queued job has none yet). One file is read from
/// start to end: the published copy holds the same bytes as the runner's.
pub fn follow(
    st: AppState,
    roots: LogRoots,
    uuid: String,
    opened: Option<(std::fs::File, PathBuf)>,
) -> Result<impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>>, ApiError> {
    let place = st.followers.enter()?;
    let (file, folder) = opened.map_or((None, None), |(f, d)| (Some(f), Some(d)));
    let init = Follow {
        st,
        uuid,
        roots,
        folder,
        file: file.map(tokio::fs::File::from_std),
        changes: None,
        finished: false,
        _place: place,
    };
    Ok(futures_util::stream::unfold(init, |mut f| async move {
        loop {
            if f.file.is_none() {
                match f.roots.open(&f.uuid) {
                    Ok((file, folder)) => {
                        f.file = Some(tokio::fs::File::from_std(file));
                        f.folder = Some(folder);
                    }
                    Err(BeneathError::Missing(_)) => {}
                    Err(e) => return Some((Err(std::io::Error::other(e)), f)),
                }
            }
            if f.changes.is_none() {
                f.changes = f.folder.as_deref().and_then(Changes::of);
            }
            if let Some(file) = f.file.as_mut() {
                let mut buf = vec![0u8; 64 * 1024];
                match file.read(&mut buf).await {
                    Ok(0) => {}
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((Ok(buf), f));
                    }
                    Err(e) => return Some((Err(e), f)),
                }
            }
            // At the end of the file: stop once the job had ended before
            // this read.
            if f.finished || *f.st.stopping.borrow() {
                return None;
            }
            let mut stopping = f.st.stopping.clone();
            let grew = async {
                match &f.changes {
                    Some(c) => c.next().await,
                    // No folder yet (a queued job): look again later.
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = grew => continue,
                _ = stopping.changed() => continue,
                _ = tokio::time::sleep(STATE_EVERY) => {}
            }
            match f.st.app.store().get_job(&f.uuid).await {
                Ok(Some(j)) if !j.state.is_final() => {}
                // Ended (or vanished): one more read drains what was written last.
                _ => f.finished = true,
            }
        }
    }))
}

/// The job's log, opened without following links.
pub fn open_log(root: &Path, uuid: &str) -> Result<std::fs::File, BeneathError> {
    Dir::open(root)?.read(&Path::new(uuid).join("runner.log"))
}
