//! Slow end-to-end test: builds `images/tiny.yaml` with the host's apt and boots it
//! under QEMU (TCG) until the guest prints `ferrotron: ready`.
//!
//! Run with `cargo test -p ferrotron-imagebuilder --test real_build -- --ignored`.
//! Needs root, network access to the Debian mirror, qemu-system-x86_64, mke2fs,
//! qemu-img. The agent is `$FERROTRON_AGENT` if set, else a stand-in script.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrotron_imagebuilder::{guest, BuildEvent, BuildOptions, ImageStore};

fn agent(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("FERROTRON_AGENT") {
        return PathBuf::from(p);
    }
    let p = dir.join("ferrotron-agent");
    std::fs::write(&p, "#!/bin/sh\necho ferrotron-agent 0.0.0-test\n").expect("write agent");
    Command::new("chmod")
        .arg("755")
        .arg(&p)
        .status()
        .expect("chmod");
    p
}

#[test]
#[ignore = "slow: downloads packages, builds and boots a real image"]
fn build_and_boot_tiny() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::new(tmp.path().join("store"));
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/tiny.yaml");
    let opts = BuildOptions::new(agent(tmp.path()));
    let mut steps = Vec::new();
    let built = store
        .build(&recipe, &opts, &mut |ev| {
            if let BuildEvent::Step { name, .. } = &ev {
                steps.push(name.clone());
            }
            eprintln!("{ev:?}");
        })
        .expect("build");
    assert_eq!(
        steps,
        ["recipe", "resolve", "download", "unpack", "rootfs", "initrd", "disk", "publish"]
    );
    let m = &built.manifest;
    assert_eq!(m.name, "tiny");
    assert!(m.packages.iter().any(|p| p.name == "dropbear-bin"));
    assert!(m.kernel_release.ends_with("-cloud-amd64"));
    let img = store.verify("tiny").expect("verify");
    assert_eq!(img.path, built.path);
    assert_eq!(store.list().expect("list").len(), 1);
    // Nothing is left in the work area.
    let left = std::fs::read_dir(tmp.path().join("store/.tmp"))
        .expect("tmp")
        .count();
    assert_eq!(left, 0);

    // Boot it (no key; a NIC on QEMU user networking that reaches nothing,
    // as a guest without one gives up) and wait for the ready line.
    let overlay = tmp.path().join("overlay.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(img.disk_path())
        .arg(&overlay)
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let console = tmp.path().join("console.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "256", "-smp", "1", "-nodefaults"])
        .args(["-nographic", "-no-user-config", "-serial"])
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(img.kernel_path())
        .arg("-initrd")
        .arg(img.initrd_path())
        .arg("-append")
        .arg(&m.boot.cmdline)
        .args(["-netdev", "user,id=n0,restrict=on"])
        .args(["-device", "virtio-net-pci,netdev=n0"])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", overlay.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu");
    let start = Instant::now();
    let mut log = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        log.clear();
        if let Ok(mut f) = std::fs::File::open(&console) {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            log = String::from_utf8_lossy(&bytes).to_string();
        }
        if log.contains("ferrotron: ready") || log.contains(guest::FATAL_PREFIX) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    assert!(
        log.contains("ferrotron: host key ssh-ed25519 AAAA"),
        "{log}"
    );
    assert!(!log.contains(guest::FATAL_PREFIX), "{log}");
    assert!(
        log.contains("ferrotron: error: no ferrotron.key= on the kernel command line"),
        "{log}"
    );
    assert!(log.contains("ferrotron: ready"), "{log}");
}
