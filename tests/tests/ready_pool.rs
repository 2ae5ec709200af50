//! The ready pool (`serve --ready N`), with real VMs: the service keeps a
//! VM restored from the image's template and waiting; a job takes it (its
//! log says so), the pool is refilled, and a second job takes the new one.
//! Each job's VM has its own host key, its console is kept in the job's
//! folder, the pool's VM counts in the host's capacity, and a stopped
//! service leaves no VM, folder or console behind. A ready VM of another
//! image gives its room to a job.

use std::time::Duration;

use ferrotron_tests::service::{submit, Service};
use ferrotron_tests::{domain_exists, workspace, Harness};

const POOL_READY: &str = "waits for a job";

/// The VM a pool line names (`ready VM ferrotron-ready-… of tiny:… waits`).
fn pool_vm(line: &str) -> String {
    line.split_whitespace()
        .skip_while(|w| *w != "VM")
        .nth(1)
        .unwrap_or_else(|| panic!("no VM named in {line:?}"))
        .to_string()
}

fn runner_log(h: &Harness, job: &str) -> String {
    std::fs::read_to_string(h.job_dir(job).join("runner.log")).expect("runner.log")
}

fn host_key(h: &Harness, job: &str) -> String {
    std::fs::read_to_string(h.job_dir(job).join("known_hosts")).expect("known_hosts")
}

#[test]
fn jobs_take_ready_vms_and_the_pool_is_refilled() {
    let h = Harness::new("ready-pool");
    let out = h.run(&["serve", "--ready", "tiny=x"]);
    out.assert_exit(2, "the count must be a whole number");

    let mut s = Service::start(&h, &["--max-vms", "1", "--ready", "1"], &[]);
    // The template is built first, then one VM restored from it waits.
    let mut pool_vms = vec![pool_vm(
        &s.proc.wait_for(POOL_READY, Duration::from_secs(300)),
    )];
    let status = h.run(&["host", "status"]);
    assert!(
        status.stdout.contains("1/1 VMs"),
        "the ready VM counts in the host's capacity:\n{}",
        status.stdout
    );

    let hello = workspace().join("examples/hello");
    let mut jobs = Vec::new();
    for item in ["hello-1.0-1.fc40", "hello-2.0-1.fc40"] {
        // With the host's one slot held by the ready VM, the job still
        // runs: in that VM.
        let job = submit(&h, &hello, item, &[]);
        let j = s.wait_final(&job);
        assert_eq!(j["state"], "passed", "{j}");
        let log = runner_log(&h, &job);
        assert!(log.contains("taken from the ready pool"), "{log}");
        let console =
            std::fs::read_to_string(h.job_dir(&job).join("console.log")).expect("console.log");
        assert!(console.contains("ferrotron: ready"), "{console}");
        // The pool is refilled once the job has given the slot back.
        pool_vms.push(pool_vm(
            &s.proc.wait_for(POOL_READY, Duration::from_secs(300)),
        ));
        jobs.push(job);
    }
    assert_ne!(
        host_key(&h, &jobs[0]),
        host_key(&h, &jobs[1]),
        "each job's VM makes its own host key"
    );

    s.stop();
    // Every VM the pool made is gone (libvirt may take a moment to see
    // its QEMU end).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for name in &pool_vms {
        while domain_exists(name) {
            assert!(std::time::Instant::now() < deadline, "{name} left running");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for job in &jobs {
        h.assert_nothing_left(job);
    }
    let consoles: Vec<_> = std::fs::read_dir(h.data_dir.join("ready"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(consoles.is_empty(), "consoles left: {consoles:?}");
}

/// Jobs come first: with the host's one slot held by a ready VM of
/// another image, a job's claim has that VM destroyed to make room, and
/// the pool is refilled once the job is done.
#[test]
fn a_ready_vm_of_another_image_makes_room_for_a_job() {
    let h = Harness::new("ready-pool-room");
    let mut s = Service::start(&h, &["--max-vms", "1", "--ready", "debian=1"], &[]);
    let first = pool_vm(&s.proc.wait_for(POOL_READY, Duration::from_secs(300)));
    assert!(domain_exists(&first));

    // examples/hello runs on the default image (tiny), not debian.
    let job = submit(
        &h,
        &workspace().join("examples/hello"),
        "hello-1.0-1.fc40",
        &[],
    );
    let line = s
        .proc
        .wait_for("destroyed to make room", Duration::from_secs(120));
    assert!(line.contains(&first) && line.contains(&job), "{line}");
    let j = s.wait_final(&job);
    assert_eq!(j["state"], "passed", "{j}");
    let log = runner_log(&h, &job);
    assert!(log.contains(" restored (tcg)"), "{log}");
    let again = pool_vm(&s.proc.wait_for(POOL_READY, Duration::from_secs(300)));
    assert_ne!(again, first);

    s.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for name in [&first, &again] {
        while domain_exists(name) {
            assert!(std::time::Instant::now() < deadline, "{name} left running");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    h.assert_nothing_left(&job);
}
