//! A partial Debian mirror on loopback (`tests/fixtures/debian-mirror/`, a
//! stand-in for `deb.debian.org`): the .deb files of the packages a test
//! names, fetched with the host's `apt-get download` and served at their
//! archive paths, byte for byte what the archive has, so the guest's apt
//! verifies them against its image's signed lists. Ended (by its pid) on
//! drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::workspace;

/// The repository the `debian` image names (images/debian.yaml).
pub const DEBIAN: &str = "http://deb.debian.org/debian";

pub struct DebMirror {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    root: PathBuf,
    /// Archive paths of the files served (`/debian/pool/...`).
    pub files: Vec<String>,
}

impl DebMirror {
    /// Fetches `packages` (their current candidate versions) into
    /// `dir/debian-mirror` and serves them.
    pub fn start(dir: &Path, packages: &[&str]) -> DebMirror {
        let root = dir.join("debian-mirror");
        let _ = std::fs::remove_dir_all(&root);
        let download = root.join("download");
        std::fs::create_dir_all(&download).expect("mirror folder");
        let mut files = Vec::new();
        for p in packages {
            let show = Command::new("apt-cache")
                .args(["show", "--no-all-versions", p])
                .output()
                .expect("apt-cache show");
            let text = String::from_utf8_lossy(&show.stdout);
            let filename = text
                .lines()
                .find_map(|l| l.strip_prefix("Filename: "))
                .unwrap_or_else(|| panic!("apt-cache show {p}: no Filename in {text}"))
                .to_string();
            let got = Command::new("apt-get")
                .args(["download", "-q", p])
                .current_dir(&download)
                .output()
                .expect("apt-get download");
            assert!(
                got.status.success(),
                "apt-get download {p}: {}",
                String::from_utf8_lossy(&got.stderr)
            );
            let base = filename.rsplit('/').next().unwrap_or(&filename).to_string();
            // apt-get download names the file with an encoded epoch (%3a).
            let fetched = std::fs::read_dir(&download)
                .expect("downloads")
                .flatten()
                .map(|e| e.path())
                .find(|f| {
                    f.file_name()
                        .is_some_and(|n| n.to_string_lossy().replace("%3a", ":") == base)
                })
                .unwrap_or_else(|| panic!("apt-get download {p} left no {base}"));
            let at = root.join("debian").join(&filename);
            std::fs::create_dir_all(at.parent().expect("parent")).expect("pool folder");
            std::fs::rename(&fetched, &at).expect("into the pool");
            files.push(format!("/debian/{filename}"));
        }
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/fixtures/debian-mirror/mirror.py"))
            .arg("--root")
            .arg(&root)
            .args(["--port", "0"])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mirror.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the mirror says where it listens");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        DebMirror {
            child,
            base,
            root,
            files,
        }
    }

    /// The global flags that send the `debian` image's repository here.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--package-mirror".into(),
            format!("{DEBIAN}={}/debian", self.base),
        ]
    }

    /// Requests for `path` so far.
    pub fn requests(&self, path: &str) -> u64 {
        self.all_requests()
            .get(path)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    }

    /// Requests per path so far.
    pub fn all_requests(&self) -> serde_json::Map<String, serde_json::Value> {
        let v: serde_json::Value =
            reqwest::blocking::get(format!("{}/_mirror/requests", self.base))
                .and_then(|r| r.json())
                .expect("the mirror's request counts");
        v["paths"].as_object().cloned().unwrap_or_default()
    }

    /// Every file answers 503 from now on.
    pub fn outage(&self) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_mirror/outage", self.base))
            .body(r#"{"on": true}"#)
            .send()
            .expect("mirror control");
        assert!(r.status().is_success());
    }
}

impl Drop for DebMirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
