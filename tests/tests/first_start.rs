//! The SOP's master "doesn't start on first attempt" after a reboot: its
//! database was not up yet. `serve` started before its PostgreSQL (a
//! server of this test's own, on a free loopback port) and with its broker
//! not there at all waits, saying so, and becomes ready, telling systemd
//! through `$NOTIFY_SOCKET` (`Type=notify`), as soon as the database
//! answers; it neither exits nor tells readiness before. Started before
//! libvirt (a socket of this test's own that reaches libvirtd only once
//! the test opens it), its scheduler claims nothing until libvirt answers,
//! and then runs the waiting job without a retry.

use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrotron_tests::service::{http, states, submit, Service};
use ferrotron_tests::{workspace, Harness, Running};
use nix::sys::signal::Signal;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `postgres` user's uid and gid (Debian's PostgreSQL package makes it).
fn postgres_ids() -> (u32, u32) {
    let u = nix::unistd::User::from_name("postgres")
        .expect("read passwd")
        .expect("the postgres user (PostgreSQL is installed by scripts/setup-host.sh)");
    (u.uid.as_raw(), u.gid.as_raw())
}

fn as_postgres(program: &str) -> Command {
    let (uid, gid) = postgres_ids();
    let mut c = Command::new(format!("{PG_BIN}/{program}"));
    c.uid(uid).gid(gid).stdin(Stdio::null());
    c
}

/// A message `serve` sent to the notify socket, waiting for it.
fn next_notice(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn serve_waits_for_its_database_and_then_tells_systemd_it_is_ready() {
    let h = Harness::new("first-start");
    // The database cluster: made now, started only once serve waits.
    let pg = tempfile::Builder::new()
        .prefix("ferrotron-first-start-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let (uid, gid) = postgres_ids();
    nix::unistd::chown(
        pg.path(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .expect("chown");
    let data = pg.path().join("data");
    let init = as_postgres("initdb")
        .args([
            "-D",
            data.to_str().expect("utf-8"),
            "-U",
            "ferrotron",
            "--auth=trust",
        ])
        .output()
        .expect("initdb");
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let url = format!("postgres://ferrotron@127.0.0.1:{port}/postgres");

    let notify_path = h.data_dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    let mut c = h.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-scheduler",
        "--amqp-url",
        "amqp://guest:guest@127.0.0.1:1/%2f",
    ]);
    c.env("FERROTRON_LOG", "info")
        .env("FERROTRON_DATABASE_URL", &url)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut serve = Running::from_command(c);
    serve.wait_for("waiting for the database", Duration::from_secs(120));
    // Still waiting: the next attempt says so again (it did not exit).
    serve.wait_for("waiting for the database", Duration::from_secs(120));
    // What systemd saw meanwhile: a status line, no readiness.
    let first = next_notice(&notify);
    assert!(
        first.starts_with("STATUS=waiting for the database") && !first.contains("READY=1"),
        "{first}"
    );

    let mut postgres = as_postgres("postgres");
    postgres
        .args(["-D", data.to_str().expect("utf-8")])
        .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
        .args([
            "-c",
            &format!("unix_socket_directories={}", pg.path().display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut postgres = Running::from_command(postgres);
    postgres.wait_for("ready to accept connections", Duration::from_secs(120));

    let line = serve.wait_for("listening on http://", Duration::from_secs(120));
    let base = line
        .rsplit_once("listening on ")
        .map(|(_, u)| u.trim().to_string())
        .expect("url");
    let ready = loop {
        let n = next_notice(&notify);
        if n.contains("READY=1") {
            break n;
        }
        assert!(n.starts_with("STATUS=waiting"), "{n}");
    };
    assert_eq!(ready, "READY=1\nSTATUS=serving");
    // It serves (the store is migrated), the broker still being away.
    let r = http()
        .get(format!("{base}/api/v2.0/results"))
        .send()
        .expect("GET results");
    assert_eq!(r.status().as_u16(), 200);
    serve.wait_for("publish: ", Duration::from_secs(120));

    serve.signal(Signal::SIGTERM);
    assert!(next_notice(&notify).starts_with("STOPPING=1"));
    let (code, rest) = serve.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{rest}");
    // PostgreSQL: a fast shutdown, by its pid.
    postgres.signal(Signal::SIGINT);
    let (code, rest) = postgres.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{rest}");
}

/// The system libvirtd's socket.
const LIBVIRT_SOCK: &str = "/run/libvirt/libvirt-sock";

/// From now on, connections to `path` reach libvirtd (each relayed by
/// two threads, for the rest of the test process).
fn relay_to_libvirt(path: &std::path::Path) {
    let listener = UnixListener::bind(path).expect("bind the relay");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(daemon) = UnixStream::connect(LIBVIRT_SOCK) else {
                continue;
            };
            for (mut from, mut to) in [
                (
                    client.try_clone().expect("clone"),
                    daemon.try_clone().expect("clone"),
                ),
                (daemon, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

#[test]
fn the_scheduler_waits_for_libvirt_and_then_runs_the_queue() {
    let h = Harness::new("first-start-libvirt");
    let sock = h.data_dir.join("libvirt-sock");
    let uri = format!("qemu+unix:///system?socket={}", sock.display());
    h.set_env("FERROTRON_LIBVIRT_URI", &uri);
    let job = submit(
        &h,
        &workspace().join("examples/hello"),
        "hello-1.0-1.fc40",
        &[],
    );
    let mut s = Service::start(&h, &["--max-vms", "1"], &[]);
    s.proc
        .wait_for("waiting for libvirt", Duration::from_secs(120));
    // Still waiting at the next try, and the job was not touched.
    s.proc
        .wait_for("waiting for libvirt", Duration::from_secs(120));
    let j = s.job(&job);
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(states(&j), ["queued"]);

    relay_to_libvirt(&sock);
    s.proc
        .wait_for("answers: claiming jobs", Duration::from_secs(120));
    let j = s.wait_final(&job);
    assert_eq!(j["state"], "passed", "{j}");
    // No attempt was lost to the missing libvirt.
    assert_eq!(
        states(&j),
        [
            "queued",
            "scheduled",
            "booting",
            "running",
            "reporting",
            "passed"
        ]
    );
    s.stop();
    h.assert_nothing_left(&job);
}
