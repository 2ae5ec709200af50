//! The stand-ins for Fedora's Koji, Bodhi and dist-git
//! (`tests/fixtures/fedora-standins/`, **not** Fedora's services): real
//! RPMs built with rpmbuild, served on 127.0.0.1 by one Python process that
//! a test owns and ends (by its pid) when it is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::workspace;

/// What `tests/fixtures/koji-download` prints for `hello-1.0-1.fc41` on
/// x86_64, in libtaskotron's order (sorted by URL, so noarch first):
/// noarch is added, src and debuginfo are left out, the logs are per arch
/// and the noarch one Koji never has is recorded.
pub const HELLO_X86_64_TAP: [&str; 4] = [
    "ok 1 - hello-doc-1.0-1.fc41.noarch.rpm",
    "ok 2 - hello-1.0-1.fc41.x86_64.rpm",
    "ok 3 - build.log.x86_64",
    "ok 4 - log errors: noarch",
];

/// A running stand-in server and its content.
pub struct Standins {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The content (RPMs, catalog), removed with the server.
    pub data: PathBuf,
}

fn fixture(name: &str) -> PathBuf {
    workspace()
        .join("tests/fixtures/fedora-standins")
        .join(name)
}

impl Standins {
    /// Builds the RPMs into `dir/standins` and starts the server.
    pub fn start(dir: &Path) -> Standins {
        assert!(
            Command::new("rpmbuild").arg("--version").output().is_ok_and(|o| o.status.success()),
            "rpmbuild is missing: install Debian's rpm package (scripts/packages-test.txt lists it)"
        );
        let data = dir.join("standins");
        let _ = std::fs::remove_dir_all(&data);
        let built = Command::new("python3")
            .arg(fixture("build_rpms.py"))
            .arg(&data)
            .output()
            .expect("run build_rpms.py");
        assert!(
            built.status.success(),
            "build_rpms.py: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let mut child = Command::new("python3")
            .arg(fixture("standin_server.py"))
            .args(["--data"])
            .arg(&data)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start standin_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server says where it listens");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Standins { child, base, data }
    }

    /// The global flags that point Ferrotron at the stand-ins.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--koji-url".into(),
            format!("{}/kojihub", self.base),
            "--koji-packages-url".into(),
            format!("{}/kojifiles/packages", self.base),
            "--bodhi-url".into(),
            format!("{}/bodhi", self.base),
            "--distgit-url".into(),
            self.base.clone(),
        ]
    }

    /// Requests per path so far (`/_standin/requests`).
    pub fn requests(&self) -> Value {
        reqwest::blocking::get(format!("{}/_standin/requests", self.base))
            .and_then(|r| r.json())
            .expect("the stand-in's request counts")
    }

    /// Requests for files (RPMs and build logs) so far.
    pub fn file_requests(&self) -> u64 {
        let r = self.requests();
        r["paths"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(p, _)| p.starts_with("/kojifiles/"))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Every service (or the ones named) fails with `status` until
    /// [`Standins::outage_over`].
    pub fn outage(&self, status: u16) {
        self.control("outage", serde_json::json!({"on": true, "status": status}));
    }

    pub fn outage_over(&self) {
        self.control("outage", serde_json::json!({"on": false}));
    }

    fn control(&self, what: &str, body: Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_standin/{what}", self.base))
            .json(&body)
            .send()
            .expect("stand-in control");
        assert!(r.status().is_success(), "{what}: {}", r.status());
    }
}

impl Drop for Standins {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
