//! The host's download cache, shared by every job: Koji's RPMs and logs are
//! immutable once built, so a file fetched for one job serves all later ones.
//!
//! Layout in the root (mode 0700): `<sha256 of the URL>-<basename>` is the
//! file, `.meta` beside it records its size and sha256 (its mtime is the
//! last use), `.lock` is the per-file lock, held while the file is checked
//! or fetched, so two jobs needing one file fetch it once. A job also holds
//! a shared lock on each file it was handed ([`Lease`]); eviction takes only
//! files whose two locks it can get.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("download cache: {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("cannot read {url}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} sent {got} bytes, Koji lists {expected}")]
    SizeMismatch {
        url: String,
        expected: u64,
        got: u64,
    },
}

impl CacheError {
    pub fn is_infrastructure(&self) -> bool {
        match self {
            CacheError::Status { status, .. } => super::http::status_is_infrastructure(*status),
            _ => true,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CacheError::Status { status: 404, .. })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    url: String,
    size: u64,
    sha256: String,
}

pub struct DownloadCache {
    root: PathBuf,
    max_bytes: u64,
}

/// A shared lock on one cached file: it is not evicted while this lives.
#[derive(Debug)]
pub struct Lease(#[expect(dead_code, reason = "held for its lock")] File);

pub struct Entry {
    pub path: PathBuf,
    /// `None` when served from the cache, else the bytes fetched.
    pub fetched: Option<u64>,
    pub lease: Lease,
}

impl DownloadCache {
    pub fn new(root: PathBuf, max_bytes: u64) -> DownloadCache {
        DownloadCache { root, max_bytes }
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> CacheError + '_ {
        let path = path.to_path_buf();
        move |source| CacheError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The file's name: its URL's hash, then its basename for whoever lists
    /// the folder.
    fn key(url: &str) -> String {
        let base = url.split(['?', '#']).next().unwrap_or("");
        let base: String = base
            .rsplit('/')
            .next()
            .unwrap_or("")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        format!("{}-{base}", hex::encode(Sha256::digest(url.as_bytes())))
    }

    fn open_lock(&self, key: &str) -> Result<File, CacheError> {
        let path = self.root.join(format!("{key}.lock"));
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io(&path))
    }

    /// Whether the file is complete: its size as expected (Koji's when
    /// known, else the sidecar's) and its sha256 the sidecar's. A use
    /// touches the sidecar, the LRU clock.
    fn valid(&self, key: &str, expected: Option<u64>) -> Result<bool, CacheError> {
        let data = self.root.join(key);
        let meta_path = self.root.join(format!("{key}.meta"));
        let Some(meta) = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
        else {
            return Ok(false);
        };
        let Ok(size) = std::fs::metadata(&data).map(|m| m.len()) else {
            return Ok(false);
        };
        if size != meta.size || expected.is_some_and(|e| e != size) {
            return Ok(false);
        }
        if crate::util::sha256_file(&data).map_err(self.io(&data))? != meta.sha256 {
            return Ok(false);
        }
        let touch = File::options()
            .write(true)
            .open(&meta_path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        touch.map_err(self.io(&meta_path))?;
        Ok(true)
    }

    /// The cached copy of `url`, fetched first if absent or damaged. The
    /// `.lock` is held only for the check and the download, so a job never
    /// waits on itself; the lease is a shared lock on the file itself, which
    /// a replacing rename leaves to the old copy.
    pub fn get(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        expected: Option<u64>,
    ) -> Result<Entry, CacheError> {
        self.get_inner(http, url, url, expected, false)
    }

    /// Like [`get`](Self::get), but known by `url` and fetched from `from`
    /// (a mirror of it): copies are shared whatever mirror brought them.
    pub fn get_from(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        from: &str,
        expected: Option<u64>,
    ) -> Result<Entry, CacheError> {
        self.get_inner(http, url, from, expected, false)
    }

    /// Like [`get`](Self::get), but fetched anew when `fresh`: for files
    /// whose URL names something that moves (a dist-git branch).
    pub fn get_fresh(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        fresh: bool,
    ) -> Result<Entry, CacheError> {
        self.get_inner(http, url, url, None, fresh)
    }

    fn get_inner(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        from: &str,
        expected: Option<u64>,
        fresh: bool,
    ) -> Result<Entry, CacheError> {
        crate::util::make_dir(&self.root, crate::util::modes::PRIVATE_DIR)
            .map_err(self.io(&self.root))?;
        let key = Self::key(url);
        let path = self.root.join(&key);
        let lock = self.open_lock(&key)?;
        FileExt::lock_exclusive(&lock).map_err(self.io(&self.root.join(format!("{key}.lock"))))?;
        let fetched = if !fresh && self.valid(&key, expected)? {
            None
        } else {
            let n = self.download(http, url, from, &key, expected)?;
            self.evict();
            Some(n)
        };
        let lease = File::open(&path).map_err(self.io(&path))?;
        FileExt::lock_shared(&lease).map_err(self.io(&path))?;
        Ok(Entry {
            path,
            fetched,
            lease: Lease(lease),
        })
    }

    /// Into a temp file, renamed when complete: never a half file under the
    /// key. The caller holds the exclusive lock.
    fn download(
        &self,
        http: &reqwest::blocking::Client,
        url: &str,
        from: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<u64, CacheError> {
        let shown = crate::util::redact_url(from);
        let mut resp = http.get(from).send().map_err(|source| CacheError::Http {
            url: shown.clone(),
            source,
        })?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err(CacheError::Status { url: shown, status });
        }
        let tmp_err = self.io(&self.root);
        let mut tmp = tempfile::Builder::new()
            .prefix(".part-")
            .tempfile_in(&self.root)
            .map_err(&tmp_err)?;
        let (mut hasher, mut total, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 16]);
        loop {
            let n = resp.read(&mut buf).map_err(|source| CacheError::Read {
                url: shown.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if expected.is_some_and(|e| total > e) {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(&tmp_err)?;
        }
        if let Some(e) = expected.filter(|&e| e != total) {
            return Err(CacheError::SizeMismatch {
                url: shown,
                expected: e,
                got: total,
            });
        }
        let data = self.root.join(key);
        tmp.persist(&data).map_err(|e| self.io(&data)(e.error))?;
        let meta = Meta {
            url: crate::util::redact_url(url),
            size: total,
            sha256: hex::encode(hasher.finalize()),
        };
        let meta_path = self.root.join(format!("{key}.meta"));
        let mut tmp = tempfile::Builder::new()
            .prefix(".part-")
            .tempfile_in(&self.root)
            .map_err(&tmp_err)?;
        let text = serde_json::to_vec(&meta).map_err(|e| tmp_err(e.into()))?;
        tmp.write_all(&text).map_err(&tmp_err)?;
        tmp.persist(&meta_path)
            .map_err(|e| self.io(&meta_path)(e.error))?;
        Ok(total)
    }

    /// Least recently used first until under `max_bytes`, skipping files
    /// someone holds. A failure here costs space, not the job: logged.
    fn evict(&self) {
        if let Err(e) = self.try_evict() {
            tracing::warn!(root = %self.root.display(), error = %e, "download cache eviction failed");
        }
    }

    fn try_evict(&self) -> std::io::Result<()> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".meta") else {
                continue;
            };
            // Gone meanwhile (another job's eviction): not ours to count.
            let Ok(used) = std::fs::metadata(self.root.join(&name)).and_then(|m| m.modified())
            else {
                continue;
            };
            let size = std::fs::metadata(self.root.join(key)).map_or(0, |m| m.len());
            files.push((used, size, key.to_string()));
        }
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, size, key) in files {
            if total <= self.max_bytes {
                break;
            }
            let Ok(lock) = self.open_lock(&key) else {
                continue;
            };
            if !FileExt::try_lock_exclusive(&lock)? {
                continue;
            }
            if let Ok(data) = File::open(self.root.join(&key)) {
                if !FileExt::try_lock_exclusive(&data)? {
                    continue;
                }
            }
            // A job already waiting on the removed `.lock` may fetch this
            // file again beside a new one: both rename whole copies of one
            // URL, so the race costs a download, never a half file.
            for suffix in ["", ".meta", ".lock"] {
                match std::fs::remove_file(self.root.join(format!("{key}{suffix}"))) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            total -= size;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::BufRead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A tiny HTTP/1.1 server on 127.0.0.1 that answers any GET with 100
    /// bytes derived from the path, counting requests.
    pub(crate) fn serve() -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let path = first.split(' ').nth(1).unwrap_or("/");
                let body: Vec<u8> = path.bytes().cycle().take(100).collect();
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n";
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            }
        });
        (url, count)
    }

    fn client() -> reqwest::blocking::Client {
        super::super::http::client().expect("client")
    }

    #[test]
    fn hit_needs_no_request_and_corruption_is_refetched() {
        let (base, count) = serve();
        let dir = tempfile::tempdir().expect("tmp");
        let cache = DownloadCache::new(dir.path().join("dl"), 1 << 20);
        let url = format!("{base}/p/hello-1.0-1.fc41.x86_64.rpm");
        let first = cache.get(&client(), &url, Some(100)).expect("fetch");
        assert_eq!(first.fetched, Some(100));
        assert!(first
            .path
            .to_string_lossy()
            .ends_with("-hello-1.0-1.fc41.x86_64.rpm"));
        let again = cache.get(&client(), &url, None).expect("hit");
        assert_eq!((again.fetched, count.load(Ordering::SeqCst)), (None, 1));
        // Same size, other bytes: the sidecar's sha256 catches it.
        std::fs::write(&first.path, [b'x'; 100]).expect("corrupt");
        let fixed = cache.get(&client(), &url, Some(100)).expect("refetch");
        assert_eq!(
            (fixed.fetched, count.load(Ordering::SeqCst)),
            (Some(100), 2)
        );
        // Koji listing another size than cached: refetched, and refused.
        let e = cache
            .get(&client(), &url, Some(99))
            .err()
            .expect("size mismatch");
        assert!(
            matches!(e, CacheError::SizeMismatch { got: 100, .. }),
            "{e}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("dl"))
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn evicts_least_recently_used_but_not_held_files() {
        let (base, _) = serve();
        let dir = tempfile::tempdir().expect("tmp");
        let cache = DownloadCache::new(dir.path().to_path_buf(), 250);
        let get = |name: &str| {
            cache
                .get(&client(), &format!("{base}/{name}"), None)
                .expect("get")
        };
        let age = |e: &Entry, secs: u64| {
            let meta = PathBuf::from(format!("{}.meta", e.path.display()));
            let t = SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(meta)
                .and_then(|f| f.set_modified(t))
                .expect("age");
        };
        let a = get("a");
        let b = get("b");
        age(&a, 100);
        age(&b, 50);
        let b_path = b.path.clone();
        drop(b);
        let c = get("c"); // over 250: a is oldest but held, so b goes
        assert!(a.path.exists() && c.path.exists() && !b_path.exists());
        let a_path = a.path.clone();
        drop(a);
        drop(c);
        let d = get("d");
        assert!(!a_path.exists() && d.path.exists());
    }

    #[test]
    fn two_threads_fetch_one_url_once() {
        let (base, count) = serve();
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Arc::new(DownloadCache::new(dir.path().to_path_buf(), 1 << 20));
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let url = format!("{base}/same.rpm");
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (cache, barrier, url) = (Arc::clone(&cache), Arc::clone(&barrier), url.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    cache.get(&client(), &url, Some(100)).map(|e| e.fetched)
                })
            })
            .collect();
        let mut fetched: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("join").expect("get"))
            .collect();
        fetched.sort();
        assert_eq!(fetched, vec![None, Some(100)]);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
