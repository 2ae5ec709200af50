//! Cloud images: `ferrotron image import` of a distribution-style cloud
//! image (its own boot loader, kernel and cloud-init), and a job booted
//! from it with its key given by a NoCloud seed.
//!
//! The image is built here from Debian packages only
//! (`tests/fixtures/cloud-image/build.sh`: mmdebstrap, an MBR disk and GRUB
//! for BIOS, or a GPT disk with an EFI system partition for UEFI),
//! once per version of that script: it is cached under
//! `target/cloud-image/<hash>/`, and a file lock lets the tests of this
//! suite share one build.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrotron_tests::{workspace, Harness};

const ITEM: &str = "hello-1.0-1.fc40";

/// The cached cloud image (BIOS), built first if the recipe changed.
fn cloud_image() -> PathBuf {
    cloud_image_for("bios")
}

/// The cached cloud image for `firmware` (`bios`, `uefi`: build.sh's
/// second argument), built first if the recipe changed.
fn cloud_image_for(firmware: &str) -> PathBuf {
    let script = workspace().join("tests/fixtures/cloud-image/build.sh");
    let text = std::fs::read(&script).expect("read the build script");
    let hash = sha256_hex(&text);
    let dir = workspace().join("target/cloud-image").join(&hash[..16]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let image = dir.join(match firmware {
        "bios" => "debian-cloud.qcow2".to_string(),
        other => format!("debian-cloud-{other}.qcow2"),
    });
    let lock = std::fs::File::create(dir.join("lock")).expect("lock file");
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock");
    if !image.is_file() {
        let started = std::time::Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .arg(&image)
            .arg(firmware)
            .output()
            .expect("run build.sh");
        assert!(
            out.status.success(),
            "build.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "built the {firmware} cloud image in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    image
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string()
}

/// `ferrotron ARGS` with an image store and warm-start templates of this
/// test's own (removed with its data folder).
fn ferrotron(h: &Harness, args: &[&str]) -> ferrotron_tests::Output {
    let mut c = h.command(args);
    c.env("FERROTRON_IMAGES_DIR", h.data_dir.join("images"))
        .env("FERROTRON_TEMPLATES_DIR", h.data_dir.join("templates"));
    h.run_command(c)
}

fn run_hello(h: &Harness, image: &str, start: &str) -> ferrotron_tests::Output {
    let started = std::time::Instant::now();
    let out = ferrotron(
        h,
        &[
            "run",
            "--libvirt",
            "--start",
            start,
            "-i",
            ITEM,
            "-t",
            "koji_build",
            "--image",
            image,
            "examples/hello/runtask.yml",
        ],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    eprintln!(
        "{start} job on {image} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.stdout.contains("ok 1 - "), "{}", out.stdout);
    assert!(out.stdout.contains("ok 2 - "), "{}", out.stdout);
    assert!(!out.stdout.contains("not ok"), "{}", out.stdout);
    assert!(out.stderr.contains("running as root"), "{}", out.stderr);
    assert!(
        out.stderr.contains("(agent will be updated)"),
        "the agent is uploaded: {}",
        out.stderr
    );
    h.assert_nothing_left(&out.job_id().expect("job id"));
    out
}

/// The host key a job recorded.
fn host_key(h: &Harness, out: &ferrotron_tests::Output) -> String {
    let id = out.job_id().expect("job id");
    std::fs::read_to_string(h.job_dir(&id).join("known_hosts"))
        .expect("known_hosts")
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn import_refuses_bad_input_and_writes_nothing() {
    let h = Harness::new("cloud-import-bad");
    let text = h.data_dir.join("notes.qcow2");
    std::fs::write(&text, "not a disk\n").expect("write");
    let missing = h.data_dir.join("missing.qcow2");
    for (file, why) in [(&text, "has no partition table"), (&missing, "cannot read")] {
        let out = ferrotron(
            &h,
            &["image", "import", "cloud", &file.display().to_string()],
        );
        out.assert_exit(2, &file.display().to_string());
        out.assert_exit(2, why);
    }
    let out = ferrotron(
        &h,
        &[
            "image",
            "import",
            "--user",
            "$(reboot)",
            "cloud",
            &text.display().to_string(),
        ],
    );
    out.assert_exit(2, "is not a user name");
    let images = h.data_dir.join("images");
    let left: Vec<_> = std::fs::read_dir(&images)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| !p.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "written: {left:?}");
}

#[test]
fn an_imported_cloud_image_runs_hello_from_its_own_disk() {
    let image = cloud_image();
    let h = Harness::new("cloud-hello");
    let file = image.display().to_string();
    let started = std::time::Instant::now();
    let out = ferrotron(&h, &["image", "import", "debian-cloud", &file]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    eprintln!("import took {:.1} s", started.elapsed().as_secs_f64());
    let reference = out.stdout.trim().to_string();
    let version = reference
        .strip_prefix("debian-cloud:")
        .expect("NAME:VERSION printed");
    let dir = h.data_dir.join("images/debian-cloud").join(version);
    let m = manifest(&dir);
    assert_eq!(m["boot"]["source"], "disk", "{m:#}");
    assert_eq!(m["boot"]["firmware"], "bios", "{m:#}");
    assert_eq!(m["boot"]["warm_start"], true, "{m:#}");
    assert_eq!(m["import"]["format"], "qcow2", "{m:#}");
    assert_eq!(m["import"]["source"], "debian-cloud.qcow2", "{m:#}");
    assert_eq!(
        m["import"]["sha256"], m["files"]["disk.qcow2"]["sha256"],
        "a qcow2 is stored as given"
    );
    let mode = std::fs::metadata(dir.join("disk.qcow2"))
        .expect("disk")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
    // The same content under the same name is refused, naming the file.
    let again = ferrotron(&h, &["image", "import", "debian-cloud", &file]);
    again.assert_exit(2, &format!("{file} is already image {reference}"));

    // Cold: its own boot loader and kernel, set up by cloud-init.
    let cold = run_hello(&h, "debian-cloud", "cold");
    assert!(cold.stderr.contains(" booted (tcg)"), "{}", cold.stderr);
    let id = cold.job_id().expect("job id");
    let console =
        std::fs::read_to_string(h.job_dir(&id).join("console.log")).expect("console log kept");
    assert!(console.contains("-cloud-amd64"), "console:\n{console}");
    assert!(console.contains("Cloud-init v. "), "console:\n{console}");

    // Warm: the first job makes the template (cloud-init's first boot, the
    // waiter installed over SSH), both are restored from it, each with its
    // own key, host key and the host's clock.
    let first = run_hello(&h, "debian-cloud", "warm");
    assert!(
        first.stderr.contains("warm-start template ready"),
        "{}",
        first.stderr
    );
    let second = run_hello(&h, "debian-cloud", "warm");
    for out in [&first, &second] {
        assert!(out.stderr.contains(" restored (tcg)"), "{}", out.stderr);
        let id = out.job_id().expect("job id");
        let console =
            std::fs::read_to_string(h.job_dir(&id).join("console.log")).expect("console log kept");
        assert!(console.contains("ferrotron: job received"), "{console}");
        assert!(console.contains("ferrotron: ready"), "{console}");
        assert!(!console.contains("ferrotron: error"), "{console}");
    }
    let keys = [
        host_key(&h, &cold),
        host_key(&h, &first),
        host_key(&h, &second),
    ];
    assert!(
        keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2],
        "host keys: {keys:?}"
    );
}

/// `--user U`: the job's key logs in as U (created by cloud-init with
/// passwordless sudo), and the agent still runs as root, through sudo.
#[test]
fn a_login_user_runs_the_agent_through_sudo() {
    let image = cloud_image();
    let h = Harness::new("cloud-user");
    let file = image.display().to_string();
    let out = ferrotron(
        &h,
        &["image", "import", "--user", "tester", "cloud-user", &file],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let version = out
        .stdout
        .trim()
        .strip_prefix("cloud-user:")
        .expect("NAME:VERSION printed")
        .to_string();
    let m = manifest(&h.data_dir.join("images/cloud-user").join(&version));
    assert_eq!(m["boot"]["user"], "tester", "{m:#}");
    // Cold here; warm starts are the other test's.
    run_hello(&h, "cloud-user", "cold");
}

/// A UEFI cloud image (`import --firmware uefi`): GRUB's EFI image on its
/// EFI system partition, booted through OVMF with a per-VM copy of its
/// variables. It boots cold even when a warm start is asked for (a saved
/// UEFI guest would need its NVRAM restored with it), and says so.
#[test]
fn a_uefi_cloud_image_boots_through_ovmf() {
    let image = cloud_image_for("uefi");
    let h = Harness::new("cloud-uefi");
    let file = image.display().to_string();
    let out = ferrotron(
        &h,
        &["image", "import", "--firmware", "uefi", "uefi-cloud", &file],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let version = out
        .stdout
        .trim()
        .strip_prefix("uefi-cloud:")
        .expect("NAME:VERSION printed")
        .to_string();
    let m = manifest(&h.data_dir.join("images/uefi-cloud").join(&version));
    assert_eq!(m["boot"]["firmware"], "uefi", "{m:#}");
    assert_eq!(m["boot"]["warm_start"], false, "{m:#}");

    let out = run_hello(&h, "uefi-cloud", "warm");
    assert!(out.stderr.contains(" booted (tcg)"), "{}", out.stderr);
    let id = out.job_id().expect("job id");
    let log = std::fs::read_to_string(h.job_dir(&id).join("runner.log")).expect("runner.log");
    assert!(
        log.contains("has no warm start (UEFI"),
        "the job's log explains the cold boot:\n{log}"
    );
    let console =
        std::fs::read_to_string(h.job_dir(&id).join("console.log")).expect("console log kept");
    assert!(console.contains("efi: EFI v"), "console:\n{console}");
    assert!(console.contains("by EDK II"), "OVMF booted it:\n{console}");
    assert!(console.contains("Cloud-init v. "), "console:\n{console}");
}
