//! The git cache (`ferrotron cache ...`) against origin repositories the
//! tests create with the real git CLI: what gets fetched, what a force push
//! or a deletion looks like in the mirror, purge protection when following
//! another cache, fsck repairing a corrupt mirror, and read-only smart HTTP.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferrotron_tests::git::{commit, git, origin};
use ferrotron_tests::{Harness, Running};

fn mirror(h: &Harness, name: &str) -> PathBuf {
    h.data_dir.join("cache").join(format!("{name}.git"))
}

/// `git show-ref` of a repository (non-bare or bare).
fn show_ref(dir: &Path) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(if dir.join(".git").is_dir() {
            dir.join(".git")
        } else {
            dir.to_path_buf()
        })
        .arg("show-ref")
        .output()
        .expect("git show-ref");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(h: &Harness, args: &[&str]) -> ferrotron_tests::Output {
    let out = h.run(args);
    assert_eq!(out.code, Some(0), "{args:?}:\n{}", out.stderr);
    out
}

/// Starts `cache serve` on a free loopback port; returns it and its URL.
fn serve(h: &Harness) -> (Running, String) {
    let mut s = h.spawn(&["cache", "serve", "--listen", "127.0.0.1:0"]);
    let line = s.wait_for("serving cache", Duration::from_secs(30));
    let url = line
        .rsplit(' ')
        .next()
        .expect("url in the serve line")
        .to_string();
    (s, url)
}

/// Stops a server the way an operator would and checks it exits cleanly.
fn stop(s: Running) {
    s.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, _) = s.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "cache serve did not exit cleanly");
}

#[test]
fn sync_fetches_only_the_repository_that_changed() {
    let h = Harness::new("cache-one-of-twenty");
    let origins = h.data_dir.join("origins");
    let mut dirs = Vec::new();
    for i in 0..20 {
        let d = origin(&origins, &format!("task{i:02}"), 2);
        let url = d.to_string_lossy().into_owned();
        let out = ok(&h, &["cache", "add", &url]);
        assert!(out.stdout.contains(&format!("added /task{i:02}.git")));
        dirs.push(d);
    }
    // First sync: nothing changed since the adds.
    let out = ok(&h, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("sync: 0 cloned, 0 fetched, 20 unchanged, 0 failed"),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("fetching"), "{}", out.stderr);

    let new = commit(&dirs[7], "a change");
    let out = ok(&h, &["cache", "sync"]);
    let fetches: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("cache: fetching"))
        .collect();
    assert_eq!(fetches.len(), 1, "{}", out.stderr);
    assert!(fetches[0].contains("/task07.git"), "{}", fetches[0]);
    assert!(
        out.stdout
            .contains("sync: 0 cloned, 1 fetched, 19 unchanged, 0 failed"),
        "{}",
        out.stdout
    );
    assert_eq!(show_ref(&mirror(&h, "task07")), show_ref(&dirs[7]));
    assert!(show_ref(&mirror(&h, "task07")).contains(&new));

    // The manifest's fingerprint is grokmirror's: sha1 of `git show-ref`
    // as git prints it, final newline included.
    let list = ok(&h, &["cache", "list"]).stdout;
    let line = list
        .lines()
        .find(|l| l.starts_with("/task07.git\t"))
        .expect("task07 listed");
    let listing = show_ref(&dirs[7]);
    let mut sha1 = Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha1sum");
    sha1.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{}\n", listing.trim_end()).as_bytes())
        .expect("write");
    let sum = String::from_utf8(sha1.wait_with_output().expect("sha1sum").stdout).expect("utf8");
    let sum = sum.split_whitespace().next().expect("sum");
    assert!(line.contains(sum), "{line} lacks fingerprint {sum}");
    assert!(line.contains("ref: refs/heads/main"), "{line}");
}

#[test]
fn force_pushed_and_deleted_refs_are_mirrored() {
    let h = Harness::new("cache-force-push");
    let o = origin(&h.data_dir.join("origins"), "tasks", 3);
    git(&o, &["branch", "feature"]);
    git(&o, &["tag", "v1"]);
    ok(
        &h,
        &[
            "cache",
            "add",
            &o.to_string_lossy(),
            "--path",
            "group/tasks",
        ],
    );
    let m = h.data_dir.join("cache/group/tasks.git");
    assert_eq!(show_ref(&m), show_ref(&o));

    // Rewrite main (not a fast-forward), delete a branch and a tag.
    git(&o, &["reset", "-q", "--hard", "HEAD~2"]);
    let rewritten = commit(&o, "rewritten history");
    git(&o, &["branch", "-D", "feature"]);
    git(&o, &["tag", "-d", "v1"]);
    let out = ok(&h, &["cache", "sync", "group/tasks"]);
    assert!(out.stdout.contains("1 fetched"), "{}", out.stdout);
    let refs = show_ref(&m);
    assert_eq!(refs, show_ref(&o));
    assert!(
        refs.contains(&format!("{rewritten} refs/heads/main")),
        "{refs}"
    );
    assert!(!refs.contains("feature") && !refs.contains("v1"), "{refs}");
}

#[test]
fn clear_errors_for_unknown_repositories_and_unreachable_origins() {
    let h = Harness::new("cache-errors");
    let out = h.run(&["cache", "sync", "nope"]);
    out.assert_exit(2, "/nope.git is not in the cache");

    let missing = h.data_dir.join("no-such-origin");
    let url = missing.to_string_lossy().into_owned();
    let out = h.run(&["cache", "add", &url]);
    out.assert_exit(3, &format!("cannot reach origin {url}"));
    assert!(
        !mirror(&h, "no-such-origin").exists(),
        "half-made mirror left"
    );

    let out = h.run(&["cache", "add", &url, "--path", "../escape"]);
    out.assert_exit(2, "is not a relative path");

    // An origin that disappears after it was added: the sync says which.
    let o = origin(&h.data_dir.join("origins"), "gone", 1);
    ok(&h, &["cache", "add", &o.to_string_lossy()]);
    std::fs::remove_dir_all(&o).expect("remove origin");
    let out = h.run(&["cache", "sync"]);
    out.assert_exit(
        3,
        &format!("failed /gone.git: cannot reach origin {}", o.display()),
    );
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
    // The mirror is kept: jobs can still use it.
    assert!(mirror(&h, "gone").join("HEAD").is_file());
}

#[test]
fn fsck_reclones_a_corrupt_mirror() {
    let h = Harness::new("cache-fsck");
    let origins = h.data_dir.join("origins");
    let good = origin(&origins, "good", 3);
    let bad = origin(&origins, "bad", 5);
    ok(&h, &["cache", "add", &good.to_string_lossy()]);
    ok(&h, &["cache", "add", &bad.to_string_lossy()]);

    // Truncate the mirror's pack files: objects are lost.
    let pack = mirror(&h, "bad").join("objects/pack");
    let mut corrupted = 0;
    for e in std::fs::read_dir(&pack).expect("pack dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "pack") {
            let len = e.metadata().expect("metadata").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(e.path())
                .expect("open pack");
            f.set_len(len / 2).expect("truncate");
            corrupted += 1;
        }
    }
    assert!(
        corrupted > 0,
        "no pack file to corrupt in {}",
        pack.display()
    );
    let before = Command::new("git")
        .arg("--git-dir")
        .arg(mirror(&h, "bad"))
        .args(["fsck", "--full"])
        .output()
        .expect("git fsck");
    assert!(!before.status.success(), "the corruption did not take");

    let out = ok(&h, &["cache", "fsck"]);
    assert!(
        out.stdout.contains("fsck: 2 checked, 1 repaired, 0 broken"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("/bad.git: corrupt"), "{}", out.stderr);
    assert!(out.stderr.contains("/good.git: ok"), "{}", out.stderr);
    let after = Command::new("git")
        .arg("--git-dir")
        .arg(mirror(&h, "bad"))
        .args(["fsck", "--full"])
        .output()
        .expect("git fsck");
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_eq!(show_ref(&mirror(&h, "bad")), show_ref(&bad));
    // Nothing left beside the mirrors.
    let mut names: Vec<String> = std::fs::read_dir(h.data_dir.join("cache"))
        .expect("cache dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".lock", "bad.git", "good.git", "manifest.js.gz"]);
}

#[test]
fn smart_http_clones_and_refuses_push_and_notify_syncs() {
    let h = Harness::new("cache-http");
    let o = origin(&h.data_dir.join("origins"), "tasks", 3);
    ok(&h, &["cache", "add", &o.to_string_lossy()]);
    let (server, url) = serve(&h);

    let clone = h.data_dir.join("clone");
    let out = Command::new("git")
        .args(["clone", "-q", &format!("{url}/tasks.git")])
        .arg(&clone)
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        git(&clone, &["rev-parse", "HEAD"]),
        git(&o, &["rev-parse", "HEAD"])
    );

    commit(&clone, "try to push");
    let push = Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["push", "origin", "main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git push");
    assert!(!push.status.success(), "push was accepted");
    let err = String::from_utf8_lossy(&push.stderr);
    assert!(err.contains("read-only") && err.contains("403"), "{err}");
    // The mirror did not change.
    assert_eq!(show_ref(&mirror(&h, "tasks")), show_ref(&o));

    // Repositories outside the manifest do not exist for the server.
    for path in [
        "/other.git",
        "/../origins/tasks/.git",
        "/tasks.git/../../manifest.js.gz",
    ] {
        let (status, _) = http(
            &url,
            "GET",
            &format!("{path}/info/refs?service=git-upload-pack"),
            "",
        );
        assert_eq!(status, 404, "{path}");
    }

    // The webhook needs a writer token of the installation, as `serve`'s
    // does; then it syncs one repository now.
    let new = commit(&o, "pushed at the origin");
    for auth in ["", "Authorization: Bearer fto_not_a_token\r\n"] {
        let (status, body) = http_with(
            &url,
            "POST",
            "/api/v1/cache/notify",
            auth,
            r#"{"path": "/tasks.git"}"#,
        );
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    assert_ne!(
        show_ref(&mirror(&h, "tasks")),
        show_ref(&o),
        "synced without a token"
    );
    let token = ok(&h, &["token", "create", "hook", "--role", "operator"])
        .stdout
        .trim()
        .to_string();
    let auth = format!("Authorization: Bearer {token}\r\n");
    let http =
        |url: &str, method: &str, path: &str, body: &str| http_with(url, method, path, &auth, body);
    let (status, body) = http(
        &url,
        "POST",
        "/api/v1/cache/notify",
        r#"{"path": "/tasks.git"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""outcome":"fetched""#), "{body}");
    git(&clone, &["fetch", "-q", "origin"]);
    assert_eq!(git(&clone, &["rev-parse", "origin/main"]).trim(), new);
    let (status, _) = http(
        &url,
        "POST",
        "/api/v1/cache/notify",
        r#"{"path": "/nope.git"}"#,
    );
    assert_eq!(status, 404);

    stop(server);
}

/// A gzip bomb (a small body that inflates to 300 MiB) sent to
/// `git-upload-pack` without a token, as a guest could through its
/// tunnel: refused with 413 once the inflated size passes the bound, and
/// the server goes on serving clones.
#[test]
fn a_gzip_bomb_is_refused_without_inflating_it() {
    let h = Harness::new("cache-gzip-bomb");
    let o = origin(&h.data_dir.join("origins"), "tasks", 1);
    ok(&h, &["cache", "add", &o.to_string_lossy()]);
    let (server, url) = serve(&h);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        gz.write_all(&zeros).expect("gzip");
    }
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST /tasks.git/git-upload-pack HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bomb.len()
    )
    .expect("send");
    s.write_all(&bomb).expect("send body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("at most 8 MiB, inflated"), "{resp}");
    // Still serving.
    let clone = h.data_dir.join("clone");
    let out = Command::new("git")
        .args(["clone", "-q", &format!("{url}/tasks.git")])
        .arg(&clone)
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(server);
}

/// An origin's credentials (user information, a token in the query) are
/// never shown: not by `cache add`, `list` or `sync`, not in the manifest
/// file (public, 0644, as grokmirror's) nor in the served one. The sync's
/// full URL is kept in the owner's `.origins.json` and the mirror's config
/// (both 0600), and a sync still uses it.
#[test]
fn origin_credentials_are_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let central = Harness::new("cache-creds-central");
    let o = origin(&central.data_dir.join("origins"), "tasks", 1);
    ok(&central, &["cache", "add", &o.to_string_lossy()]);
    let (server, url) = serve(&central);
    let with_creds = url.replace("http://", "http://robot:s3cret-token@")
        + "/tasks.git?private_token=t0ken-in-query";
    let public = format!("{url}/tasks.git");

    let h = Harness::new("cache-creds");
    let added = ok(&h, &["cache", "add", &with_creds, "--path", "tasks"]);
    let list = ok(&h, &["cache", "list"]);
    let new = commit(&o, "pushed");
    ok(&central, &["cache", "sync"]);
    let sync = ok(&h, &["cache", "sync"]);
    assert!(sync.stdout.contains("1 fetched"), "{}", sync.stdout);
    assert!(show_ref(&mirror(&h, "tasks")).contains(&new));
    let mut gz = String::new();
    flate2::read::GzDecoder::new(
        &std::fs::read(h.data_dir.join("cache/manifest.js.gz")).expect("manifest")[..],
    )
    .read_to_string(&mut gz)
    .expect("gzip");
    for (what, text) in [
        ("cache add", added.stderr + &added.stdout),
        ("cache list", list.stdout.clone()),
        ("cache sync", sync.stderr + &sync.stdout),
        ("the manifest file", gz.clone()),
    ] {
        assert!(
            !text.contains("s3cret") && !text.contains("robot") && !text.contains("t0ken"),
            "{what} shows a credential:\n{text}"
        );
    }
    assert!(list.stdout.contains(&public), "{}", list.stdout);
    assert!(gz.contains(&public), "{gz}");
    let (own, own_url) = serve(&h);
    let (status, body) = http_bytes(&own_url, "/manifest.js.gz");
    assert_eq!(status, 200);
    let mut json = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut json)
        .expect("gzip");
    assert!(
        json.contains(&public) && !json.contains("s3cret") && !json.contains("t0ken"),
        "{json}"
    );
    let private = h.data_dir.join("cache/.origins.json");
    assert!(std::fs::read_to_string(&private)
        .expect("private origins")
        .contains(&with_creds));
    for (file, want) in [
        (mirror(&h, "tasks").join("config"), 0o600),
        (private, 0o600),
        (h.data_dir.join("cache/manifest.js.gz"), 0o644),
    ] {
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, want, "{}", file.display());
    }
    // Nor is the private file served.
    let (status, _) = http_bytes(&own_url, "/.origins.json");
    assert_eq!(status, 404);
    stop(own);
    stop(server);
}

/// An `https://` origin (a git smart-HTTP server over TLS on loopback,
/// with a certificate made here) is mirrored when its certificate is
/// trusted explicitly (`SSL_CERT_FILE`), and refused, saying why, when it
/// is not: verification is never turned off.
#[test]
fn https_origins_are_mirrored_with_their_certificate_checked() {
    let h = Harness::new("cache-https");
    let dir = h.data_dir.join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (scripts/packages-test.txt)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let root = h.data_dir.join("origins");
    let o = origin(&root, "tasks", 2);
    let bare = root.join("tasks.git");
    let cloned = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&o)
        .arg(&bare)
        .output()
        .expect("git clone --bare");
    assert!(cloned.status.success());
    let mut c = Command::new("python3");
    c.arg(ferrotron_tests::workspace().join("tests/fixtures/https-git/server.py"))
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut server = Running::from_command(c);
    let line = server.wait_for("listening on", Duration::from_secs(60));
    let url = format!("{}/tasks.git", line.rsplit(' ').next().expect("url"));

    let untrusted = h.run(&["cache", "add", &url]);
    untrusted.assert_exit(3, "the SSL certificate is invalid");
    let mut c = h.command(&["cache", "add", &url]);
    c.env("SSL_CERT_FILE", dir.join("cert.pem"));
    let out = h.run_command(c);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(show_ref(&mirror(&h, "tasks")), show_ref(&bare));
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = server.finish(Duration::from_secs(30));
}

/// A GET whose body is returned as bytes.
fn http_bytes(base: &str, path: &str) -> (u16, Vec<u8>) {
    http_raw(base, "GET", path, "", "")
}

/// A minimal HTTP/1.1 request; returns the status and the body.
fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(base, method, path, "", body)
}

/// [`http`] with more header lines (`Name: value\r\n` each).
fn http_with(base: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let (status, body) = http_raw(base, method, path, headers, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http_raw(base: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, resp[split..].to_vec())
}

#[test]
fn a_follower_mirrors_a_central_cache_with_purge_protection() {
    let central = Harness::new("cache-central");
    let site = Harness::new("cache-site");
    let origins = central.data_dir.join("origins");
    for i in 0..20 {
        let d = origin(&origins, &format!("r{i:02}"), 1);
        ok(&central, &["cache", "add", &d.to_string_lossy()]);
    }
    // Date the manifest in the past so Last-Modified is given and stable.
    let manifest = central.data_dir.join("cache/manifest.js.gz");
    let touch = |when: &str| {
        let st = Command::new("touch")
            .args(["-d", when])
            .arg(&manifest)
            .status()
            .expect("touch");
        assert!(st.success());
    };
    touch("2020-01-01 00:00:00");
    let (server, url) = serve(&central);
    ok(
        &site,
        &["cache", "follow", &format!("{url}/manifest.js.gz")],
    );

    // First sync: everything cloned from the central cache.
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout
            .contains("follow: 20 cloned, 0 fetched, 0 unchanged, 0 failed, 0 purged"),
        "{}",
        out.stdout
    );
    assert_eq!(ok(&site, &["cache", "list"]).stdout.lines().count(), 20);
    // Unchanged master: one 304.
    let out = ok(&site, &["cache", "sync"]);
    assert!(
        out.stdout.contains("follow: not modified"),
        "{}",
        out.stdout
    );

    // One repository gone (5%): purged.
    ok(&central, &["cache", "remove", "r00"]);
    touch("2020-01-02 00:00:00");
    let out = ok(&site, &["cache", "sync"]);
    assert!(out.stdout.contains("1 purged"), "{}", out.stdout);
    assert!(!mirror(&site, "r00").exists());
    assert_eq!(ok(&site, &["cache", "list"]).stdout.lines().count(), 19);

    // Ten gone at once: refused, nothing deleted.
    for i in 1..11 {
        ok(&central, &["cache", "remove", &format!("r{i:02}")]);
    }
    touch("2020-01-03 00:00:00");
    let out = site.run(&["cache", "sync"]);
    out.assert_exit(3, "refusing to purge 10 of 19 followed repositories");
    assert_eq!(ok(&site, &["cache", "list"]).stdout.lines().count(), 19);
    assert!(mirror(&site, "r05").join("HEAD").is_file());

    // The operator confirms.
    let out = ok(&site, &["cache", "sync", "--force-purge"]);
    assert!(out.stdout.contains("10 purged"), "{}", out.stdout);
    assert_eq!(ok(&site, &["cache", "list"]).stdout.lines().count(), 9);
    stop(server);
}

/// A sync waiting on a silent origin holds no lock that anything else
/// needs: the cache's lock is taken only to read and write the manifest,
/// and each repository has its own while it is fetched.
#[test]
fn the_manifest_is_always_dated_and_a_rewrite_in_the_same_second_is_not_missed() {
    let h = Harness::new("cache-last-modified");
    let d = origin(&h.data_dir.join("origins"), "r", 1);
    ok(&h, &["cache", "add", &d.to_string_lossy()]);
    let manifest = h.data_dir.join("cache/manifest.js.gz");
    let touch = |when: &str| {
        let st = Command::new("touch")
            .args(["-d", when])
            .arg(&manifest)
            .status()
            .expect("touch");
        assert!(st.success());
    };
    let (server, url) = serve(&h);
    let client = reqwest::blocking::Client::new();
    let get = |since: Option<&str>| {
        let mut r = client.get(format!("{url}/manifest.js.gz"));
        if let Some(s) = since {
            r = r.header("If-Modified-Since", s);
        }
        let resp = r.send().expect("GET manifest");
        let lm = resp
            .headers()
            .get("last-modified")
            .map(|v| v.to_str().expect("ascii").to_string());
        (resp.status().as_u16(), lm)
    };
    // Written this very second (grok-pull needs the header on every answer).
    touch("now");
    let (status, lm) = get(None);
    assert_eq!(status, 200);
    let lm = lm.expect("Last-Modified on a manifest written this second");
    // Its date given back: answered in full, whenever asked, since the
    // manifest may have been written again within that second.
    let (status, _) = get(Some(&lm));
    assert_eq!(status, 200);
    // An older manifest: dated exactly, and 304 for its own date.
    touch("2020-01-01 00:00:00 UTC");
    let (status, lm) = get(None);
    assert_eq!(status, 200);
    assert_eq!(lm.as_deref(), Some("Wed, 01 Jan 2020 00:00:00 GMT"));
    let (status, lm) = get(lm.as_deref());
    assert_eq!(status, 304);
    assert_eq!(lm.as_deref(), Some("Wed, 01 Jan 2020 00:00:00 GMT"));
    stop(server);
}

#[test]
fn a_silent_origin_holds_up_nobody_else() {
    let h = Harness::new("cache-silent-lock");
    let quiet = origin(&h.data_dir.join("origins"), "quiet", 1);
    let busy = origin(&h.data_dir.join("origins"), "busy", 1);
    ok(&h, &["cache", "add", &quiet.to_string_lossy()]);
    ok(&h, &["cache", "add", &busy.to_string_lossy()]);
    // quiet's origin goes silent: it accepts and says nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (accepted, waiting) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
            let _ = accepted.send(());
        }
    });
    let manifest = h.data_dir.join("cache/manifest.js.gz");
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&manifest).expect("manifest"))
        .read_to_string(&mut json)
        .expect("gzip");
    let json = json.replace(
        &quiet.to_string_lossy().into_owned(),
        &format!("http://127.0.0.1:{port}/quiet.git"),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).expect("gzip");
    std::fs::write(&manifest, gz.finish().expect("gzip")).expect("write manifest");

    // A sync of quiet waits on its silent origin (for as long as the git
    // time-out allows: far longer than this test)...
    let mut c = h.command(&["--git-timeout", "3600", "cache", "sync", "/quiet.git"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut stuck = Running::from_command(c);
    waiting
        .recv_timeout(Duration::from_secs(120))
        .expect("the sync of quiet reached its origin");
    // ...while the cache stays usable: busy syncs, is listed, is removed.
    let new = commit(&busy, "pushed to busy");
    ok(&h, &["cache", "sync", "/busy.git"]);
    assert!(show_ref(&mirror(&h, "busy")).contains(&new));
    assert!(ok(&h, &["cache", "list"]).stdout.contains("/busy.git"));
    ok(&h, &["cache", "remove", "/busy.git"]);
    assert_eq!(
        stuck.child.try_wait().expect("try_wait"),
        None,
        "quiet's sync still waits"
    );
    stuck.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = stuck.finish(Duration::from_secs(60));
}

/// An origin that accepts the connection and never answers (a hung
/// server, a half-dead proxy): the sync fails after `--git-timeout`
/// seconds with the origin named, instead of waiting on TCP for minutes,
/// and no mirror or manifest entry is left half-made.
#[test]
fn a_silent_origin_fails_after_the_git_timeout() {
    let h = Harness::new("cache-silent-origin");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accept and hold every connection, saying nothing, until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let url = format!("http://127.0.0.1:{port}/silent.git");
    let out = h.run(&["--git-timeout", "2", "cache", "add", &url]);
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(out.stderr.contains(&url), "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("timed out"),
        "the reason is the time-out: {}",
        out.stderr
    );
    let list = h.run(&["cache", "list"]);
    assert!(!list.stdout.contains("silent"), "{}", list.stdout);
    assert!(!h.data_dir.join("cache/silent.git").exists());
}
