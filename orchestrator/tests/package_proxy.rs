//! The package proxy against a real HTTP upstream on loopback (a stand-in
//! for a Debian mirror: files served from a folder, requests counted),
//! used the way apt uses it: absolute URLs sent to the proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use ferrotron::downloads::DownloadCache;
use ferrotron::packages::proxy::ProxyServer;
use ferrotron::packages::Mirror;

const REPO: &str = "http://deb.example.invalid/debian";

/// A folder served over HTTP on loopback; every request's path counted.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<BTreeMap<String, usize>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _thread: std::thread::JoinHandle<()>,
}

impl Upstream {
    fn start(files: &[(&str, &[u8])]) -> Upstream {
        let files: Arc<BTreeMap<String, Vec<u8>>> = Arc::new(
            files
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_vec()))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = (files, seen.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                type St = (
                    Arc<BTreeMap<String, Vec<u8>>>,
                    Arc<Mutex<BTreeMap<String, usize>>>,
                );
                async fn serve(State((files, seen)): State<St>, uri: Uri) -> (StatusCode, Vec<u8>) {
                    *seen
                        .lock()
                        .expect("lock")
                        .entry(uri.path().to_string())
                        .or_default() += 1;
                    match files.get(uri.path()) {
                        Some(b) => (StatusCode::OK, b.clone()),
                        None => (StatusCode::NOT_FOUND, b"not here".to_vec()),
                    }
                }
                let app = axum::Router::new().fallback(serve).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Upstream {
            addr,
            seen,
            _stop: tx,
            _thread: thread,
        }
    }

    fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.seen.lock().expect("lock").values().sum()
    }
}

/// A client that sends every http:// request to the proxy, as apt's
/// `Acquire::http::Proxy` does.
fn through(proxy: &ProxyServer) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", proxy.addr)).expect("proxy"))
        .no_gzip()
        .build()
        .expect("client")
}

/// One request with `target` exactly as given; the whole answer.
fn raw_get(addr: SocketAddr, target: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        tcp,
        "GET {target} HTTP/1.1\r\nHost: deb.example.invalid\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read");
    answer
}

const DEB: &str = "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb";
const INRELEASE: &str = "/debian/dists/bookworm/InRelease";

fn setup() -> (Upstream, tempfile::TempDir, Vec<Mirror>) {
    let up = Upstream::start(&[(DEB, b"!<arch>\ndebian-binary"), (INRELEASE, b"signed")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mirrors = vec![Mirror {
        from: REPO.to_string(),
        to: format!("http://{}/debian", up.addr),
    }];
    (up, dir, mirrors)
}

#[test]
fn pool_files_are_fetched_once_for_every_job_and_lists_pass_through() {
    let (up, dir, mirrors) = setup();
    let cache_dir = dir.path().join("packages");
    for job in 0..2 {
        let proxy = ProxyServer::start(
            &[REPO.to_string()],
            &mirrors,
            DownloadCache::new(cache_dir.clone(), 1 << 30),
        )
        .expect("proxy");
        let http = through(&proxy);
        for _ in 0..2 {
            let r = http
                .get(format!("http://deb.example.invalid{DEB}"))
                .send()
                .expect("get deb");
            assert_eq!(r.status(), 200, "job {job}");
            assert_eq!(r.bytes().expect("body").as_ref(), b"!<arch>\ndebian-binary");
        }
        let r = http
            .get(format!("http://deb.example.invalid{INRELEASE}"))
            .send()
            .expect("get InRelease");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().expect("body"), "signed");
        let missing = http
            .get("http://deb.example.invalid/debian/pool/main/n/nope/nope_1_all.deb")
            .send()
            .expect("get missing");
        assert_eq!(missing.status(), 404);
        let summary = proxy.stats.summary();
        assert!(summary.starts_with("4 request(s)"), "{summary}");
    }
    // Two jobs, four requests for the package: one download.
    assert_eq!(up.count(DEB), 1);
    // The lists are not kept: asked for once per job.
    assert_eq!(up.count(INRELEASE), 2);
}

#[test]
fn nothing_but_the_image_repositories_is_reachable() {
    let (up, dir, mirrors) = setup();
    let proxy = ProxyServer::start(
        &[REPO.to_string()],
        &mirrors,
        DownloadCache::new(dir.path().join("packages"), 1 << 30),
    )
    .expect("proxy");
    let http = through(&proxy);
    let upstream_direct = format!("http://{}{DEB}", up.addr);
    for (url, why) in [
        (
            upstream_direct.as_str(),
            "not in the image's package repositories",
        ),
        (
            "http://deb.example.invalid/debian-security/pool/x.deb",
            "not in the image's package repositories",
        ),
        (
            "http://127.0.0.1:22/ssh",
            "not in the image's package repositories",
        ),
    ] {
        let r = http.get(url).send().expect("request");
        assert_eq!(r.status(), 403, "{url}");
        let text = r.text().expect("body");
        assert!(text.contains(why), "{url}: {text}");
    }
    // Sent as they are (an HTTP client would normalise them first).
    for target in [
        "http://deb.example.invalid/debian/../etc/passwd",
        "http://deb.example.invalid/debian/%2E%2E/etc/passwd",
        "http://deb.example.invalid/debian/pool//x.deb",
    ] {
        let answer = raw_get(proxy.addr, target);
        assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
        assert!(
            answer.contains("dot or encoded path segment"),
            "{target}: {answer}"
        );
    }
    let r = http
        .post(format!("http://deb.example.invalid{DEB}"))
        .send()
        .expect("post");
    assert_eq!(r.status(), 405);
    // Origin-form requests (not a proxy request) are refused too.
    let plain = reqwest::blocking::get(format!("http://{}{DEB}", proxy.addr)).expect("get");
    assert_eq!(plain.status(), 403);
    assert_eq!(up.total(), 0, "the upstream saw a refused request");
}

#[test]
fn an_unreachable_repository_is_a_bad_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mirrors = vec![Mirror {
        from: REPO.to_string(),
        to: format!("http://127.0.0.1:{port}/debian"),
    }];
    let proxy = ProxyServer::start(
        &[REPO.to_string()],
        &mirrors,
        DownloadCache::new(dir.path().join("packages"), 1 << 30),
    )
    .expect("proxy");
    let http = through(&proxy);
    for path in [DEB, INRELEASE] {
        let r = http
            .get(format!("http://deb.example.invalid{path}"))
            .send()
            .expect("request");
        assert_eq!(r.status(), 502, "{path}");
    }
    // Nothing half-written is left in the cache.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("packages"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n.to_string_lossy().ends_with(".lock")),
        "{left:?}"
    );
}
