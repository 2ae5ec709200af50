//! The download clients against the Fedora stand-ins
//! (tests/fixtures/fedora-standins): real RPMs built with rpmbuild, served
//! by one loopback process speaking Koji's XML-RPC, Koji's top URL, Bodhi's
//! REST and dist-git's raw files. Each test starts its own stand-in, so
//! request counts and outages never cross tests.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ferrotron::downloads::{
    fetch, DownloadCache, DownloadError, KojiAction, Outcome, Request, Services,
};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/fedora-standins"
);

/// The stand-in server, killed (its process group) and reaped on drop.
struct Standin {
    child: Child,
    /// Kept open: the server must never write into a closed pipe.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    base: String,
    dir: tempfile::TempDir,
}

impl Standin {
    fn start() -> Standin {
        let rpmbuild = Command::new("rpmbuild").arg("--version").output();
        assert!(
            rpmbuild.is_ok_and(|o| o.status.success()),
            "rpmbuild is missing: install Debian's rpm package: scripts/packages-test.txt lists it"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let built = Command::new("python3")
            .arg(format!("{FIXTURES}/build_rpms.py"))
            .arg(&data)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run python3 build_rpms.py");
        assert!(
            built.status.success(),
            "build_rpms.py failed: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("python3")
            .arg(format!("{FIXTURES}/standin_server.py"))
            .args(["--port", "0", "--data"])
            .arg(&data)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start standin_server.py");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        // The server prints its address first thing; EOF means it died.
        let _ = stdout.read_line(&mut line);
        let mut standin = Standin {
            child,
            _stdout: stdout,
            base: String::new(),
            dir,
        };
        standin.base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("stand-in did not start: {line:?}"))
            .to_string();
        standin
    }

    fn services(&self) -> Services {
        Services {
            koji_hub: format!("{}/kojihub", self.base),
            koji_packages: format!("{}/kojifiles/packages", self.base),
            bodhi: format!("{}/bodhi", self.base),
            distgit: self.base.clone(),
        }
    }

    fn data(&self, rel: &str) -> PathBuf {
        self.dir.path().join("data").join(rel)
    }

    fn cache(&self, name: &str) -> DownloadCache {
        DownloadCache::new(self.dir.path().join(name), 1 << 30)
    }

    fn control(&self, path: &str, body: Option<Value>) -> Value {
        let http = reqwest::blocking::Client::new();
        let url = format!("{}/_standin/{path}", self.base);
        let req = match body {
            Some(b) => http.post(url).json(&b),
            None => http.get(url),
        };
        req.send().and_then(|r| r.json()).expect("stand-in control")
    }

    /// Requests for files (RPMs, logs) since the last reset.
    fn file_requests(&self) -> u64 {
        let counts = self.control("requests", None);
        let paths = counts["paths"].as_object().expect("paths");
        paths
            .iter()
            .filter(|(p, _)| p.starts_with("/kojifiles/"))
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn koji(action: KojiAction, build: &str, arch: &[&str]) -> Request {
    Request::Koji {
        action,
        build: Some(build.into()),
        tag: None,
        arch: arch.iter().map(|a| a.to_string()).collect(),
        arch_exclude: Vec::new(),
        src: false,
        debuginfo: false,
        build_log: false,
    }
}

fn distgit(
    gitref: &str,
    paths: &[&str],
    localpaths: Option<&[&str]>,
    ignore_missing: bool,
) -> Request {
    let strings = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Request::Distgit {
        package: "hello".into(),
        gitref: gitref.into(),
        namespace: "rpms".into(),
        paths: strings(paths),
        localpaths: localpaths.map(strings),
        ignore_missing,
    }
}

fn run(s: &Standin, cache: &DownloadCache, req: &Request) -> Result<Outcome, DownloadError> {
    fetch(&s.services(), cache, req, &|line| {
        eprintln!("progress: {line}")
    })
}

fn names(o: &Outcome) -> Vec<&str> {
    o.files.iter().map(|f| f.name.as_str()).collect()
}

fn same_file(a: &Path, b: &Path) {
    assert_eq!(
        std::fs::read(a).expect("cached"),
        std::fs::read(b).expect("original"),
        "{}",
        a.display()
    );
}

#[test]
fn koji_downloads() {
    let s = Standin::start();
    let cache = s.cache("dl");
    let hello = koji(KojiAction::Download, "hello-1.0-1.fc41", &["x86_64"]);
    let o = run(&s, &cache, &hello).expect("download");
    let want = [
        "hello-doc-1.0-1.fc41.noarch.rpm",
        "hello-1.0-1.fc41.x86_64.rpm",
    ];
    assert_eq!(names(&o), want);
    assert_eq!(
        Value::Object(o.export.clone()),
        json!({"downloaded_rpms": want})
    );
    same_file(
        &o.files[1].path,
        &s.data("packages/hello/1.0/1.fc41/x86_64/hello-1.0-1.fc41.x86_64.rpm"),
    );

    // Served again from the cache: not one file request.
    s.control("reset", Some(json!({})));
    let again = run(&s, &cache, &hello).expect("again");
    assert_eq!(names(&again), want);
    assert_eq!(s.file_requests(), 0);

    let o = run(
        &s,
        &cache,
        &koji(KojiAction::Download, "hello-1.0-1.fc41", &["i386"]),
    )
    .expect("i386");
    assert_eq!(
        names(&o),
        [
            "hello-1.0-1.fc41.i686.rpm",
            "hello-doc-1.0-1.fc41.noarch.rpm"
        ]
    );

    let mut all = koji(KojiAction::Download, "hello-1.0-1.fc41", &["x86_64"]);
    if let Request::Koji {
        src,
        debuginfo,
        build_log,
        ..
    } = &mut all
    {
        (*src, *debuginfo, *build_log) = (true, true, true);
    }
    let o = run(&s, &cache, &all).expect("src, debuginfo, logs");
    let rpms = [
        "hello-doc-1.0-1.fc41.noarch.rpm",
        "hello-1.0-1.fc41.src.rpm",
        "hello-1.0-1.fc41.x86_64.rpm",
        "hello-debuginfo-1.0-1.fc41.x86_64.rpm",
    ];
    assert_eq!(names(&o)[..4], rpms);
    assert_eq!(names(&o)[4..], ["build.log.x86_64"]);
    let export = json!({"downloaded_rpms": rpms, "downloaded_logs": ["build.log.x86_64"], "log_errors": ["noarch"]});
    assert_eq!(Value::Object(o.export.clone()), export);
    same_file(
        &o.files[4].path,
        &s.data("packages/hello/1.0/1.fc41/data/logs/x86_64/build.log"),
    );

    // download_tag: f41's builds (no inheritance) in NVR order.
    let mut tag = koji(KojiAction::DownloadTag, "", &["x86_64"]);
    if let Request::Koji { build, tag, .. } = &mut tag {
        (*build, *tag) = (None, Some("f41".into()));
    }
    let o = run(&s, &cache, &tag).expect("download_tag");
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(s.data("catalog.json")).expect("catalog"))
            .expect("json");
    let id = catalog["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .find(|b| b["nvr"] == "bigpkg-2.0-1.fc41")
        .expect("bigpkg")["id"]
        .clone();
    let bigpkg = catalog["rpms"]
        .as_array()
        .expect("rpms")
        .iter()
        .filter(|r| {
            r["build_id"] == id && ["x86_64", "noarch"].contains(&r["arch"].as_str().unwrap_or(""))
        })
        .filter(|r| !r["name"].as_str().unwrap_or("").ends_with("-debuginfo"))
        .count();
    assert_eq!(o.files.len(), bigpkg + 2);
    assert!(o.files[..bigpkg]
        .iter()
        .all(|f| f.name.starts_with("bigpkg")));
    assert_eq!(names(&o)[bigpkg..], want);
    if let Request::Koji { tag, .. } = &mut tag {
        *tag = Some("f99".into());
    }
    let e = run(&s, &cache, &tag).expect_err("unknown tag");
    assert!(
        matches!(e, DownloadError::NoSuchTag { .. }) && !e.is_infrastructure(),
        "{e}"
    );
    assert!(e.to_string().contains("f99"));

    let o = run(
        &s,
        &cache,
        &koji(
            KojiAction::DownloadLatestStable,
            "hello-1.0-1.fc41",
            &["x86_64"],
        ),
    )
    .expect("latest");
    assert_eq!(
        names(&o),
        [
            "hello-doc-1.1-1.fc41.noarch.rpm",
            "hello-1.1-1.fc41.x86_64.rpm"
        ]
    );
    let o = run(
        &s,
        &cache,
        &koji(
            KojiAction::DownloadLatestStable,
            "nosuch-1.0-1.fc41",
            &["x86_64"],
        ),
    )
    .expect("none");
    assert!(o.files.is_empty() && o.export.is_empty());

    let e = run(
        &s,
        &cache,
        &koji(KojiAction::Download, "hello-9.9-1.fc41", &["x86_64"]),
    )
    .expect_err("missing");
    assert!(!e.is_infrastructure());
    assert_eq!(
        e.to_string(),
        "No such build found in Koji: hello-9.9-1.fc41"
    );
    let e = run(
        &s,
        &cache,
        &koji(KojiAction::Download, "hello", &["x86_64"]),
    )
    .expect_err("bad nvr");
    assert!(matches!(e, DownloadError::BadNvr(_)) && !e.is_infrastructure());
}

#[test]
fn bodhi_and_distgit() {
    let s = Standin::start();
    let cache = s.cache("dl");
    let update = Request::Bodhi {
        update_id: "FEDORA-2026-abc123".into(),
        arch: vec!["x86_64".into()],
        src: false,
    };
    let o = run(&s, &cache, &update).expect("bodhi");
    let want = [
        "hello-doc-1.1-1.fc41.noarch.rpm",
        "hello-1.1-1.fc41.x86_64.rpm",
        "libfoo-0.5-3.fc41.noarch.rpm",
    ];
    assert_eq!(names(&o), want);
    assert_eq!(
        Value::Object(o.export.clone()),
        json!({"downloaded_rpms": want})
    );
    let missing = Request::Bodhi {
        update_id: "FEDORA-2026-nope".into(),
        arch: vec!["x86_64".into()],
        src: false,
    };
    let e = run(&s, &cache, &missing).expect_err("no update");
    assert_eq!(
        e.to_string(),
        "Update with ID 'FEDORA-2026-nope' wasn't found"
    );
    assert!(!e.is_infrastructure());

    let req = distgit(
        "f41",
        &["hello.spec", "tests/tests.yml"],
        Some(&["spec/hello.spec", "tests/tests.yml"]),
        false,
    );
    let o = run(&s, &cache, &req).expect("distgit");
    assert_eq!(names(&o), ["spec/hello.spec", "tests/tests.yml"]);
    assert_eq!(
        Value::Object(o.export.clone()),
        json!({"downloaded_files": ["spec/hello.spec", "tests/tests.yml"]})
    );
    same_file(
        &o.files[1].path,
        &s.data("distgit/rpms/hello/f41/tests/tests.yml"),
    );

    let req = distgit("rawhide", &["hello.spec", "tests/tests.yml"], None, true);
    let o = run(&s, &cache, &req).expect("ignore_missing");
    assert_eq!(
        Value::Object(o.export.clone()),
        json!({"downloaded_files": ["hello.spec"]})
    );
    let e = run(
        &s,
        &cache,
        &distgit("rawhide", &["tests/tests.yml"], None, false),
    )
    .expect_err("missing");
    assert!(
        matches!(e, DownloadError::NoSuchFile { .. }) && !e.is_infrastructure(),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "dist-git has no tests/tests.yml in hello at rawhide"
    );
    let e = run(
        &s,
        &cache,
        &distgit("f41", &["hello.spec"], Some(&["../x"]), false),
    )
    .expect_err("escape");
    assert!(matches!(e, DownloadError::BadPath(_)));
}

#[test]
fn outages_are_infrastructure() {
    let s = Standin::start();
    let cache = s.cache("dl");
    let hello = koji(KojiAction::Download, "hello-1.0-1.fc41", &["x86_64"]);
    let dg = distgit("f41", &["hello.spec"], None, false);
    let update = Request::Bodhi {
        update_id: "FEDORA-2026-abc123".into(),
        arch: vec!["x86_64".into()],
        src: false,
    };

    s.control(
        "outage",
        Some(json!({"on": true, "status": 503, "services": ["files"]})),
    );
    let e = run(&s, &cache, &hello).expect_err("files down");
    assert!(e.is_infrastructure(), "{e}");
    s.control("outage", Some(json!({"on": true, "status": 503})));
    for req in [&hello, &dg, &update] {
        let e = run(&s, &cache, req).expect_err("outage");
        assert!(e.is_infrastructure(), "{req:?}: {e}");
        let chain = ferrotron::util::full(&e);
        assert!(chain.contains(&s.base), "names the service: {chain}");
    }
    s.control("outage", Some(json!({"on": false})));
    run(&s, &cache, &hello).expect("back");

    // Nobody listening: refused, also infrastructure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut services = s.services();
    services.koji_hub = format!("http://127.0.0.1:{port}/kojihub");
    let e = fetch(&services, &cache, &hello, &|_| {}).expect_err("refused");
    assert!(e.is_infrastructure(), "{e}");
}
