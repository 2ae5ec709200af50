//! Package installation at job time, in real VMs of the `debian` image
//! (images/debian.yaml): the guest's apt fetches through the job's package
//! proxy, tunnelled over the job's SSH connection, from a partial Debian
//! mirror on loopback (a stand-in for deb.debian.org, serving the archive's
//! own files). No route from the guest to anything else exists.

use ferrotron_tests::debmirror::DebMirror;
use ferrotron_tests::Harness;

fn run_args<'a>(flags: &'a [String], formula: &'a str) -> Vec<&'a str> {
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "run",
        "--libvirt",
        "-i",
        "hello-1.0-1.fc41",
        "-t",
        "koji_build",
        formula,
    ]);
    args
}

#[test]
fn a_package_the_image_lacks_is_installed_and_fetched_once_per_host() {
    let h = Harness::new("packages-install");
    let mirror = DebMirror::start(&h.data_dir, &["hello"]);
    let deb = mirror.files[0].clone();
    let flags = mirror.flags();
    let formula = "tests/fixtures/install-packages/runtask.yml";

    let first = h.run(&run_args(&flags, formula));
    assert_eq!(first.code, Some(0), "stderr:\n{}", first.stderr);
    assert!(
        first.stderr.contains("packages: hello installed"),
        "{}",
        first.stderr
    );
    assert!(
        first.stdout.contains("ok 1 - install-packages"),
        "{}",
        first.stdout
    );
    h.assert_nothing_left(&first.job_id().expect("job id"));
    assert_eq!(mirror.requests(&deb), 1, "{:?}", mirror.all_requests());
    // apt's own log of the installation is one of the job's artifacts.
    let log = h
        .job_dir(&first.job_id().expect("job id"))
        .join("artifacts/actions/00-install-packages.log");
    let text = std::fs::read_to_string(&log).expect("installation log");
    assert!(text.contains("Setting up hello"), "{text}");

    // A second job on the host: a fresh VM installs again, from the
    // host's package cache; the mirror sees nothing.
    let second = h.run(&run_args(&flags, formula));
    assert_eq!(second.code, Some(0), "stderr:\n{}", second.stderr);
    assert!(
        second.stderr.contains("1 from the host's cache"),
        "{}",
        second.stderr
    );
    h.assert_nothing_left(&second.job_id().expect("job id"));
    assert_eq!(mirror.requests(&deb), 1, "{:?}", mirror.all_requests());
    // The guest asked for no package list: the image's are used.
    assert_eq!(
        mirror.all_requests().len(),
        1,
        "{:?}",
        mirror.all_requests()
    );
}

#[test]
fn a_package_no_repository_has_is_exit_2_before_any_vm() {
    let h = Harness::new("packages-unknown");
    let out = h.run(&run_args(&[], "tests/fixtures/install-unknown/runtask.yml"));
    out.assert_exit(
        2,
        "environment.packages: `ferrotron-no-such-package` is not a package image debian:",
    );
    assert!(
        out.stderr
            .contains("has or can install (not in http://deb.debian.org/debian)"),
        "{}",
        out.stderr
    );
    let tiny = h.run(&run_args(&[], "tests/fixtures/install-tiny/runtask.yml"));
    tiny.assert_exit(2, "environment.rpm: image tiny:");
    assert!(
        tiny.stderr
            .contains("lacks rpmlint and cannot install packages"),
        "{}",
        tiny.stderr
    );
    assert!(!h.data_dir.join("vms").exists(), "a VM folder was created");
    assert!(
        !h.data_dir.join("jobs").exists(),
        "a job folder was created"
    );
}

#[test]
fn a_repository_outage_is_an_infrastructure_error() {
    let h = Harness::new("packages-outage");
    let mirror = DebMirror::start(&h.data_dir, &["hello"]);
    mirror.outage();
    let out = h.run(&run_args(
        &mirror.flags(),
        "tests/fixtures/install-packages/runtask.yml",
    ));
    out.assert_exit(3, "installing packages (hello)");
    assert!(
        out.stderr.contains("apt-get install failed"),
        "{}",
        out.stderr
    );
    assert!(mirror.requests(&mirror.files[0]) >= 1);
    h.assert_nothing_left(&out.job_id().expect("job id"));
    // Nothing of the failed download is kept.
    let kept: Vec<_> = std::fs::read_dir(h.data_dir.join("packages"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    assert!(kept.is_empty(), "{kept:?}");
}
