//! What libtaskotron's `koji`, `bodhi` and `distgit` directives download,
//! fetched on the host into the shared [`DownloadCache`], so tasks get the
//! same files (in the same order, with the same export) as under Taskotron
//! without each VM reaching Fedora's services.
//!
//! [`fetch`] is the one entry point; the formula language and the runner
//! turn a directive into a [`Request`] and copy the [`Outcome`]'s files
//! into the task's `target_dir`.

mod bodhi;
pub mod cache;
mod distgit;
pub mod evr;
pub mod http;
mod koji;
mod xmlrpc;

pub use cache::DownloadCache;

use cache::{CacheError, Lease};
use xmlrpc::XmlRpcError;

/// Where the services are; tests point these at stand-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub koji_hub: String,
    pub koji_packages: String,
    pub bodhi: String,
    pub distgit: String,
}

impl Default for Services {
    /// Fedora's production services.
    fn default() -> Services {
        Services {
            koji_hub: "https://koji.fedoraproject.org/kojihub".into(),
            koji_packages: "https://kojipkgs.fedoraproject.org/packages".into(),
            bodhi: "https://bodhi.fedoraproject.org".into(),
            distgit: "https://src.fedoraproject.org".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KojiAction {
    Download,
    DownloadTag,
    DownloadLatestStable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Koji {
        action: KojiAction,
        build: Option<String>,
        tag: Option<String>,
        arch: Vec<String>,
        arch_exclude: Vec<String>,
        src: bool,
        debuginfo: bool,
        build_log: bool,
    },
    Bodhi {
        update_id: String,
        arch: Vec<String>,
        src: bool,
    },
    Distgit {
        package: String,
        gitref: String,
        namespace: String,
        paths: Vec<String>,
        localpaths: Option<Vec<String>>,
        ignore_missing: bool,
    },
}

impl std::str::FromStr for KojiAction {
    type Err = DownloadError;

    /// The directive's `action` as formulas spell it.
    fn from_str(s: &str) -> Result<KojiAction, DownloadError> {
        match s {
            "download" => Ok(KojiAction::Download),
            "download_tag" => Ok(KojiAction::DownloadTag),
            "download_latest_stable" => Ok(KojiAction::DownloadLatestStable),
            other => Err(DownloadError::UnknownAction(other.into())),
        }
    }
}

/// The dist-git branch of an N-V-R's dist tag (`…fc41` → `f41`), as
/// libtaskotron's `distgit` directive derives it.
pub fn dist_git_branch(nvr: &str) -> Option<String> {
    let release = evr::Nevr::parse(nvr)?.release;
    koji::dist_tag(&release).map(|t| t.replacen('c', "", 1))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Relative to the directive's `target_dir`: `hello-1.0-1.fc41.x86_64.rpm`,
    /// `build.log.x86_64`, `tests/tests.yml`.
    pub name: String,
    /// The file in the download cache.
    pub path: std::path::PathBuf,
}

#[derive(Debug)]
pub struct Outcome {
    /// In libtaskotron's order.
    pub files: Vec<Fetched>,
    /// The directive's export as libtaskotron gives it, with file values as
    /// names relative to `target_dir`: koji/bodhi `{"downloaded_rpms": [...]}`
    /// (with `downloaded_logs` and `log_errors` when `build_log`), distgit
    /// `{"downloaded_files": [...]}`, and `{}` when download_latest_stable
    /// found no stable build.
    pub export: serde_json::Map<String, serde_json::Value>,
    /// Keeps `files` from being evicted until they are copied and this
    /// outcome dropped.
    leases: Vec<Lease>,
}

impl Outcome {
    /// An outcome whose files the cache does not hold for it, for callers'
    /// own tests and stand-ins.
    pub fn new(files: Vec<Fetched>, export: serde_json::Map<String, serde_json::Value>) -> Outcome {
        Outcome {
            files,
            export,
            leases: Vec::new(),
        }
    }

    fn empty() -> Outcome {
        Outcome {
            files: Vec::new(),
            export: serde_json::Map::new(),
            leases: Vec::new(),
        }
    }

    fn push(&mut self, name: String, entry: cache::Entry) {
        self.files.push(Fetched {
            name,
            path: entry.path,
        });
        self.leases.push(entry.lease);
    }

    fn export_names(&mut self, key: &str, names: &[String]) {
        let list = names
            .iter()
            .map(|n| serde_json::Value::from(n.as_str()))
            .collect();
        self.export
            .insert(key.into(), serde_json::Value::Array(list));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("Koji hub call failed")]
    Hub(#[source] XmlRpcError),
    #[error("Koji's answer to {method} lacks {what}")]
    HubAnswer { method: &'static str, what: String },
    #[error("download failed")]
    Cache(#[source] CacheError),
    #[error("No such build found in Koji: {nvr}")]
    NoSuchBuild { nvr: String },
    #[error("No such tag in Koji: {tag}")]
    NoSuchTag {
        tag: String,
        #[source]
        source: XmlRpcError,
    },
    #[error("`{0}` is not a build's N(E)VR (name-version-release)")]
    BadNvr(String),
    #[error("cannot parse a disttag (like fc41) from the release of {0}")]
    NoDistTag(String),
    #[error("{0} is not a valid action for koji directive")]
    UnknownAction(String),
    #[error("the koji directive's {action} action needs `{what}`")]
    Missing {
        action: &'static str,
        what: &'static str,
    },
    #[error("cannot reach Bodhi at {url}")]
    Bodhi {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Bodhi at {url} answered HTTP {status}")]
    BodhiStatus { url: String, status: u16 },
    #[error("cannot read Bodhi's answer from {url}")]
    BodhiRead {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Bodhi's answer from {url} is not an update")]
    BodhiAnswer {
        url: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("Update with ID '{0}' wasn't found")]
    NoSuchUpdate(String),
    #[error("dist-git has no {path} in {package} at {gitref}")]
    NoSuchFile {
        package: String,
        gitref: String,
        path: String,
    },
    #[error("dist-git path `{0}` must be relative, without `..`")]
    BadPath(String),
    #[error("distgit: path has {paths} entries but localpath {localpaths}")]
    LocalpathsLength { paths: usize, localpaths: usize },
}

impl DownloadError {
    /// True for the host's or the services' trouble, which the scheduler
    /// retries; false for the job's own mistake, which it reports.
    pub fn is_infrastructure(&self) -> bool {
        use DownloadError as E;
        match self {
            E::Client(_)
            | E::HubAnswer { .. }
            | E::Bodhi { .. }
            | E::BodhiRead { .. }
            | E::BodhiAnswer { .. } => true,
            E::Hub(e) => e.is_infrastructure(),
            E::Cache(e) => e.is_infrastructure(),
            E::BodhiStatus { status, .. } => http::status_is_infrastructure(*status),
            E::NoSuchBuild { .. }
            | E::NoSuchTag { .. }
            | E::BadNvr(_)
            | E::NoDistTag(_)
            | E::Missing { .. }
            | E::UnknownAction(_)
            | E::NoSuchUpdate(_)
            | E::NoSuchFile { .. }
            | E::BadPath(_)
            | E::LocalpathsLength { .. } => false,
        }
    }
}

impl From<XmlRpcError> for DownloadError {
    fn from(e: XmlRpcError) -> Self {
        DownloadError::Hub(e)
    }
}

impl From<CacheError> for DownloadError {
    fn from(e: CacheError) -> Self {
        DownloadError::Cache(e)
    }
}

/// What one fetch shares: the services, the cache, one HTTP client.
struct Ctx<'a> {
    services: &'a Services,
    cache: &'a DownloadCache,
    http: reqwest::blocking::Client,
    progress: &'a dyn Fn(&str),
}

/// Downloads what `req` names into `cache`, as libtaskotron's directive
/// would into its `target_dir`.
pub fn fetch(
    services: &Services,
    cache: &DownloadCache,
    req: &Request,
    progress: &dyn Fn(&str),
) -> Result<Outcome, DownloadError> {
    let ctx = Ctx {
        services,
        cache,
        http: http::client().map_err(DownloadError::Client)?,
        progress,
    };
    match req {
        Request::Koji {
            action,
            build,
            tag,
            arch,
            arch_exclude,
            src,
            debuginfo,
            build_log,
        } => {
            let p = koji::Params {
                action: *action,
                build: build.as_deref(),
                tag: tag.as_deref(),
                arch,
                arch_exclude,
                src: *src,
                debuginfo: *debuginfo,
                build_log: *build_log,
            };
            koji::fetch(&ctx, &p)
        }
        Request::Bodhi {
            update_id,
            arch,
            src,
        } => bodhi::fetch(&ctx, update_id, arch, *src),
        Request::Distgit {
            package,
            gitref,
            namespace,
            paths,
            localpaths,
            ignore_missing,
        } => {
            let p = distgit::Params {
                package,
                gitref,
                namespace,
                paths,
                localpaths: localpaths.as_deref(),
                ignore_missing: *ignore_missing,
            };
            distgit::fetch(&ctx, &p)
        }
    }
}

/// `1.2 MiB`, for progress lines.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let (mut v, mut u) = (bytes as f64, 0);
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
