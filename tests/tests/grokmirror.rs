//! Ferrotron's git cache against the real grokmirror (`grok-pull`,
//! `grok-manifest` 2.0.12 from PyPI), both ways, every HTTP request
//! counted:
//!
//! - `grok-pull` mirrors a Ferrotron cache (`cache serve`, behind a
//!   counting proxy): the first run clones everything, a run with nothing
//!   changed asks for the manifest only (304), after one repository
//!   changed only it is fetched, and an origin's moved HEAD reaches
//!   grok-pull's mirror without a fetch;
//! - `cache follow` mirrors a grokmirror master (repositories listed by the
//!   real `grok-manifest`, served by `git http-backend` behind a small
//!   server here): the same incremental runs, and a master serving plain
//!   files (dumb HTTP) is refused at `follow` time, saying what to do.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrotron_tests::git::{commit, git, origin};
use ferrotron_tests::{grokclient, Harness, Running};

/// The requests a server saw: `GET /r.git/info/refs?service=... -> 200`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        if let Ok(mut l) = self.0.lock() {
            l.push(line);
        }
    }
    /// What was seen since the last call.
    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Of `log`, the repositories that git requests named (`/r1.git`).
fn repos_asked(log: &[String]) -> std::collections::BTreeSet<String> {
    log.iter()
        .filter_map(|l| {
            let target = l.split(' ').nth(1)?;
            let path = target.split('?').next()?;
            ["/info/refs", "/git-upload-pack", "/HEAD", "/objects/"]
                .iter()
                .find_map(|s| path.find(s).map(|i| path[..i].to_string()))
        })
        .collect()
}

/// A loopback server, one thread per connection, stopped on drop.
struct Server {
    addr: SocketAddr,
    log: Log,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(handle: impl Fn(TcpStream, &Log) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Log::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let (l, s) = (log.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, l) = (handle.clone(), l.clone());
                std::thread::spawn(move || h(conn, &l));
            }
        });
        Server {
            addr,
            log,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A request's head (up to the blank line) and the bytes read past it.
fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A counting proxy in front of `upstream`: one request per connection
/// (`Connection: close` both ways), each logged with its answer's status.
fn counting_proxy(upstream: SocketAddr) -> Server {
    Server::start(move |mut client, log| {
        let Some((head, rest)) = read_head(&mut client) else {
            return;
        };
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let mut forwarded = String::new();
        for (i, line) in head.split("\r\n").enumerate() {
            let lower = line.to_ascii_lowercase();
            if line.is_empty()
                || lower.starts_with("connection:")
                || lower.starts_with("keep-alive:")
            {
                continue;
            }
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
            if i == 0 {
                forwarded.push_str("Connection: close\r\n");
            }
        }
        forwarded.push_str("\r\n");
        let Ok(mut up) = TcpStream::connect(upstream) else {
            return;
        };
        if up.write_all(forwarded.as_bytes()).is_err() || up.write_all(&rest).is_err() {
            return;
        }
        let (mut c2, mut u2) = match (client.try_clone(), up.try_clone()) {
            (Ok(c), Ok(u)) => (c, u),
            _ => return,
        };
        let body = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
        });
        let mut first = vec![0u8; 8192];
        let n = up.read(&mut first).unwrap_or(0);
        let status = String::from_utf8_lossy(&first[..n])
            .split(' ')
            .nth(1)
            .unwrap_or("?")
            .to_string();
        let (method, target) = {
            let mut p = request_line.split(' ');
            (
                p.next().unwrap_or_default().to_string(),
                p.next().unwrap_or_default().to_string(),
            )
        };
        log.push(format!("{method} {target} -> {status}"));
        let _ = client.write_all(&first[..n]);
        let _ = std::io::copy(&mut up, &mut client);
        let _ = client.shutdown(Shutdown::Both);
        let _ = up.shutdown(Shutdown::Both);
        let _ = body.join();
    })
}

/// `Wed, 01 Jan 2020 00:00:00 GMT` for a file's mtime.
fn http_date(path: &Path) -> String {
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The request's body: by Content-Length, or chunked.
fn read_body(s: &mut TcpStream, head: &str, mut have: Vec<u8>) -> Vec<u8> {
    let mut more = |buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    };
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = have.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !more(&mut have) {
                    return body;
                }
            };
            let size_line = String::from_utf8_lossy(&have[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
                .unwrap_or(0);
            have.drain(..line_end + 2);
            if size == 0 {
                return body;
            }
            while have.len() < size + 2 {
                if !more(&mut have) {
                    return body;
                }
            }
            body.extend_from_slice(&have[..size]);
            have.drain(..size + 2);
        }
    }
    let len: usize = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while have.len() < len {
        if !more(&mut have) {
            break;
        }
    }
    have.truncate(len);
    have
}

/// A grokmirror master: `root`'s files over HTTP (`manifest.js.gz` with
/// Last-Modified, 304 when asked with that date), and its repositories
/// over smart HTTP through `git http-backend` (CGI), or, when `smart` is
/// false, as the plain files a dumb-HTTP master serves.
fn master_server(root: PathBuf, smart: bool) -> Server {
    Server::start(move |mut s, log| {
        let Some((head, rest)) = read_head(&mut s) else {
            return;
        };
        let mut line = head.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (
            line.next().unwrap_or_default().to_string(),
            line.next().unwrap_or_default().to_string(),
        );
        let body = read_body(&mut s, &head, rest);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, headers, content) = if path.split('/').any(|p| p == ".." || p.starts_with('.'))
        {
            ("404 Not Found".to_string(), String::new(), Vec::new())
        } else if smart && (path.ends_with("/info/refs") || path.ends_with("/git-upload-pack")) {
            http_backend(&root, &method, path, query, &head, &body)
        } else {
            let file = root.join(path.trim_start_matches('/'));
            match std::fs::read(&file) {
                Ok(bytes) => {
                    let lm = http_date(&file);
                    if header(&head, "if-modified-since") == Some(lm.as_str()) {
                        (
                            "304 Not Modified".into(),
                            format!("Last-Modified: {lm}\r\n"),
                            Vec::new(),
                        )
                    } else {
                        let ct = if path.ends_with(".gz") {
                            "application/gzip"
                        } else {
                            "text/plain"
                        };
                        (
                            "200 OK".into(),
                            format!("Content-Type: {ct}\r\nLast-Modified: {lm}\r\n"),
                            bytes,
                        )
                    }
                }
                Err(_) => ("404 Not Found".into(), String::new(), Vec::new()),
            }
        };
        log.push(format!(
            "{method} {target} -> {}",
            status.split(' ').next().unwrap_or("?")
        ));
        let _ = s.write_all(
            format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            )
            .as_bytes(),
        );
        let _ = s.write_all(&content);
        let _ = s.shutdown(Shutdown::Both);
    })
}

/// One CGI request to `git http-backend`: status, headers, body.
fn http_backend(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    head: &str,
    body: &[u8],
) -> (String, String, Vec<u8>) {
    let mut c = Command::new("git");
    c.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = header(head, "content-type") {
        c.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = header(head, "content-encoding") {
        c.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(p) = header(head, "git-protocol") {
        c.env("GIT_PROTOCOL", p);
    }
    let Ok(mut child) = c.spawn() else {
        return (
            "500 Internal Server Error".into(),
            String::new(),
            Vec::new(),
        );
    };
    if let Some(mut stdin) = child.stdin.take() {
        let body = body.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let Ok(out) = child.wait_with_output() else {
        return (
            "500 Internal Server Error".into(),
            String::new(),
            Vec::new(),
        );
    };
    let raw = out.stdout;
    let (split, skip) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => match raw.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (i, 2),
            None => (raw.len(), 0),
        },
    };
    let cgi_head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut status = "200 OK".to_string();
    let mut headers = String::new();
    for l in cgi_head.lines() {
        match l.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some((k, _)) if k.eq_ignore_ascii_case("content-length") => {}
            Some(_) => {
                headers.push_str(l.trim_end());
                headers.push_str("\r\n");
            }
            None => {}
        }
    }
    (
        status,
        headers,
        raw[(split + skip).min(raw.len())..].to_vec(),
    )
}

fn ok(h: &Harness, args: &[&str]) -> ferrotron_tests::Output {
    let out = h.run(args);
    assert_eq!(out.code, Some(0), "{args:?}:\n{}", out.stderr);
    out
}

/// Starts `cache serve` on a free loopback port; returns it and its address.
fn serve(h: &Harness) -> (Running, SocketAddr) {
    let mut s = h.spawn(&["cache", "serve", "--listen", "127.0.0.1:0"]);
    let line = s.wait_for("serving cache", Duration::from_secs(30));
    let url = line.rsplit(' ').next().expect("url in the serve line");
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("address in the serve line");
    (s, addr)
}

fn stop(s: Running) {
    s.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, _) = s.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "cache serve did not exit cleanly");
}

fn touch(file: &Path, when: &str) {
    let st = Command::new("touch")
        .args(["-d", when])
        .arg(file)
        .status()
        .expect("touch");
    assert!(st.success());
}

fn show_ref(git_dir: &Path) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .arg("show-ref")
        .output()
        .expect("git show-ref");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn head_file(git_dir: &Path) -> String {
    std::fs::read_to_string(git_dir.join("HEAD"))
        .expect("HEAD")
        .trim()
        .to_string()
}

/// A gzipped manifest as JSON.
fn manifest_json(file: &Path) -> serde_json::Value {
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(file).expect("manifest"))
        .read_to_string(&mut json)
        .expect("gzip");
    serde_json::from_str(&json).expect("manifest JSON")
}

/// Only git requests in `log` (the manifest's left out).
fn git_requests(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|l| !l.contains("/manifest.js.gz"))
        .collect()
}

#[test]
fn grok_pull_mirrors_a_ferrotron_cache_fetching_only_what_changed() {
    let h = Harness::new("grok-pull-from-ferrotron");
    let origins = h.data_dir.join("origins");
    let mut dirs = Vec::new();
    for i in 0..3 {
        let d = origin(&origins, &format!("r{i}"), 2);
        git(&d, &["branch", "dev"]);
        ok(&h, &["cache", "add", &d.to_string_lossy()]);
        dirs.push(d);
    }
    let cached = |name: &str| h.data_dir.join("cache").join(format!("{name}.git"));
    let manifest = h.data_dir.join("cache/manifest.js.gz");
    // Dated in the past: Last-Modified is exact and a 304 possible.
    touch(&manifest, "2020-01-01 00:00:00 UTC");
    let (server, addr) = serve(&h);
    let proxy = counting_proxy(addr);

    let top = h.data_dir.join("grok");
    std::fs::create_dir_all(top.join("mirror")).expect("mkdir");
    let config = top.join("grokmirror.conf");
    std::fs::write(
        &config,
        format!(
            "[core]\ntoplevel = {top}/mirror\nmanifest = ${{toplevel}}/manifest.js.gz\n\
             log = {top}/pull.log\nloglevel = debug\nobjstore = ${{toplevel}}/objstore\n\
             [remote]\nsite = {site}\nmanifest = ${{site}}/manifest.js.gz\n\
             [pull]\npull_threads = 1\nretries = 1\npurge = no\n",
            top = top.display(),
            site = proxy.url()
        ),
    )
    .expect("write config");
    let pull = || {
        grokclient::run("pull", &top, &["-c", &config.to_string_lossy()]);
        proxy.log.take()
    };
    let mirrored = |name: &str| top.join("mirror").join(format!("{name}.git"));

    // First run: everything cloned.
    let log = pull();
    assert_eq!(
        log.first().map(String::as_str),
        Some("GET /manifest.js.gz -> 200"),
        "{log:#?}"
    );
    assert_eq!(
        repos_asked(&log),
        ["/r0.git", "/r1.git", "/r2.git"]
            .map(String::from)
            .into_iter()
            .collect(),
        "{log:#?}"
    );
    for (i, d) in dirs.iter().enumerate() {
        let name = format!("r{i}");
        assert_eq!(
            show_ref(&mirrored(&name)),
            show_ref(&d.join(".git")),
            "{name}"
        );
        assert_eq!(head_file(&mirrored(&name)), "ref: refs/heads/main");
    }

    // Nothing changed: the manifest is asked for, answered 304, nothing
    // else happens.
    let log = pull();
    assert_eq!(log, vec!["GET /manifest.js.gz -> 304".to_string()]);

    // One origin changed: Ferrotron's sync fetches it, and grok-pull then
    // fetches it alone.
    let new = commit(&dirs[2], "a change");
    let out = ok(&h, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("sync: 0 cloned, 1 fetched, 2 unchanged, 0 failed"),
        "{}",
        out.stdout
    );
    touch(&manifest, "2020-01-02 00:00:00 UTC");
    let log = pull();
    assert_eq!(
        log.first().map(String::as_str),
        Some("GET /manifest.js.gz -> 200"),
        "{log:#?}"
    );
    assert_eq!(
        repos_asked(&log),
        ["/r2.git".to_string()].into_iter().collect(),
        "{log:#?}"
    );
    assert!(show_ref(&mirrored("r2")).contains(&new));

    // The origin's HEAD moves (its default branch is now dev): `cache sync`
    // moves the mirror's and the manifest's, and grok-pull's mirror
    // follows without fetching anything.
    git(&dirs[1], &["symbolic-ref", "HEAD", "refs/heads/dev"]);
    let out = ok(&h, &["cache", "sync"]);
    assert!(
        out.stderr.contains("HEAD of /r1.git now refs/heads/dev"),
        "{}",
        out.stderr
    );
    assert_eq!(head_file(&cached("r1")), "ref: refs/heads/dev");
    assert_eq!(
        manifest_json(&manifest)["/r1.git"]["head"],
        "ref: refs/heads/dev"
    );
    let list = ok(&h, &["cache", "list"]).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("/r1.git\tref: refs/heads/dev\t")),
        "{list}"
    );
    // A second sync has nothing left to do.
    let out = ok(&h, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("sync: 0 cloned, 0 fetched, 3 unchanged, 0 failed"),
        "{}",
        out.stdout
    );
    touch(&manifest, "2020-01-03 00:00:00 UTC");
    let log = pull();
    assert_eq!(log, vec!["GET /manifest.js.gz -> 200".to_string()]);
    assert_eq!(head_file(&mirrored("r1")), "ref: refs/heads/dev");
    drop(proxy);
    stop(server);
}

/// A grokmirror master: bare copies of `origins` under `root` and a
/// manifest of them made by the real `grok-manifest`.
fn grok_master(root: &Path, origins: &[(&str, &Path)]) -> PathBuf {
    for (path, o) in origins {
        let dest = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        let st = Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(o)
            .arg(&dest)
            .status()
            .expect("git clone --bare");
        assert!(st.success());
    }
    let manifest = root.join("manifest.js.gz");
    grok_manifest(root, &[]);
    manifest
}

/// `grok-manifest` over the master at `root` (only `paths` when given).
fn grok_manifest(root: &Path, paths: &[&str]) {
    let manifest = root.join("manifest.js.gz");
    let mut args = vec![
        "-m".to_string(),
        manifest.display().to_string(),
        "-t".to_string(),
        root.display().to_string(),
    ];
    args.extend(
        paths
            .iter()
            .map(|p| root.join(p.trim_start_matches('/')).display().to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    grokclient::run("manifest", root, &args);
}

#[test]
fn cache_follow_mirrors_a_grokmirror_master_fetching_only_what_changed() {
    let h = Harness::new("grok-follow-master");
    let origins = h.data_dir.join("origins");
    let os: Vec<PathBuf> = (0..3)
        .map(|i| {
            let d = origin(&origins, &format!("o{i}"), 2);
            git(&d, &["branch", "dev"]);
            d
        })
        .collect();
    let root = h.data_dir.join("master");
    let manifest = grok_master(
        &root,
        &[
            ("/o0.git", &os[0]),
            ("/o1.git", &os[1]),
            ("/group/o2.git", &os[2]),
        ],
    );
    touch(&manifest, "2020-01-01 00:00:00 UTC");
    let master = master_server(root.clone(), true);
    let url = format!("{}/manifest.js.gz", master.url());

    let site = Harness::new("grok-follow-site");
    let out = ok(&site, &["cache", "follow", &url]);
    assert!(
        out.stdout
            .contains(&format!("following {url} (3 repositories listed)")),
        "{}",
        out.stdout
    );
    // The master was read, and one repository probed for smart HTTP.
    let log = master.log.take();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0], "GET /manifest.js.gz -> 200");
    assert!(
        log[1].contains("/info/refs?service=git-upload-pack -> 200"),
        "{log:#?}"
    );

    // First sync: everything cloned, and nothing else asked.
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("follow: 3 cloned, 0 fetched, 0 unchanged, 0 failed, 0 purged"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("sync: 0 cloned, 0 fetched, 0 unchanged, 0 failed"),
        "followed repositories are the pull's: {}",
        out.stdout
    );
    let log = master.log.take();
    assert_eq!(log[0], "GET /manifest.js.gz -> 200", "{log:#?}");
    assert_eq!(
        repos_asked(&log),
        ["/o0.git", "/o1.git", "/group/o2.git"]
            .map(String::from)
            .into_iter()
            .collect(),
        "{log:#?}"
    );
    // The fingerprints grok-manifest wrote are ours.
    let theirs = manifest_json(&manifest);
    let ours = manifest_json(&site.data_dir.join("cache/manifest.js.gz"));
    for p in ["/o0.git", "/o1.git", "/group/o2.git"] {
        assert_eq!(ours[p]["fingerprint"], theirs[p]["fingerprint"], "{p}");
        assert_eq!(ours[p]["head"], theirs[p]["head"], "{p}");
        let mirror = site.data_dir.join("cache").join(p.trim_start_matches('/'));
        assert_eq!(
            show_ref(&mirror),
            show_ref(&root.join(p.trim_start_matches('/')))
        );
    }

    // Unchanged master: one 304, no git request at all (no ls-remote of
    // the followed repositories either).
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout.contains("follow: not modified"),
        "{}",
        out.stdout
    );
    assert_eq!(
        master.log.take(),
        vec!["GET /manifest.js.gz -> 304".to_string()]
    );

    // One repository changes on the master: only it is fetched, without an
    // ls-remote first.
    let new = commit(&os[1], "pushed to o1");
    git(
        &os[1],
        &["push", "-q", &root.join("o1.git").to_string_lossy(), "main"],
    );
    grok_manifest(&root, &["/o1.git"]);
    touch(&manifest, "2020-01-02 00:00:00 UTC");
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("follow: 0 cloned, 1 fetched, 0 unchanged, 0 failed, 0 purged"),
        "{}",
        out.stdout
    );
    let log = master.log.take();
    assert_eq!(log[0], "GET /manifest.js.gz -> 200", "{log:#?}");
    assert_eq!(
        repos_asked(&log),
        ["/o1.git".to_string()].into_iter().collect(),
        "{log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("GET /o1.git/info/refs"))
            .count(),
        1,
        "one advertisement, the fetch's own: {log:#?}"
    );
    assert!(show_ref(&site.data_dir.join("cache/o1.git")).contains(&new));

    // The master's HEAD of a repository moves: set here from the
    // manifest, nothing fetched.
    let o2 = root.join("group/o2.git");
    git(&o2, &["symbolic-ref", "HEAD", "refs/heads/dev"]);
    grok_manifest(&root, &["/group/o2.git"]);
    touch(&manifest, "2020-01-03 00:00:00 UTC");
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout.contains("follow: 0 cloned, 1 fetched"),
        "{}",
        out.stdout
    );
    let log = master.log.take();
    assert!(git_requests(&log).is_empty(), "{log:#?}");
    assert_eq!(
        head_file(&site.data_dir.join("cache/group/o2.git")),
        "ref: refs/heads/dev"
    );
}

#[test]
fn a_master_serving_plain_files_is_refused_at_follow_time() {
    let h = Harness::new("grok-follow-dumb");
    let o = origin(&h.data_dir.join("origins"), "d0", 1);
    let root = h.data_dir.join("master");
    let manifest = grok_master(&root, &[("/d0.git", &o)]);
    git(&root.join("d0.git"), &["update-server-info"]);
    touch(&manifest, "2020-01-01 00:00:00 UTC");
    let master = master_server(root, false);
    let url = format!("{}/manifest.js.gz", master.url());
    let out = h.run(&["cache", "follow", &url]);
    out.assert_exit(2, "serves its repositories as plain files (dumb HTTP");
    for needle in [
        url.as_str(),
        "/d0.git/info/refs?service=git-upload-pack",
        "git http-backend",
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} in:\n{}",
            out.stderr
        );
    }
    assert!(!h.data_dir.join("cache/follow.json").exists());
    // Nothing is followed: a sync has nothing to pull.
    let out = ok(&h, &["cache", "sync"]);
    assert!(!out.stdout.contains("follow:"), "{}", out.stdout);
}
