#!/usr/bin/env python3
"""Boot-to-SSH baseline vs. a trivial Ferrotron job, measured in one run.

Baseline: qemu-system-x86_64 started directly on the image's kernel,
initramfs and a fresh overlay of its disk, until the SSH banner answers on
the forwarded port; then killed by its pid. Ferrotron: the wall time of
`ferrotron run --libvirt` of a one-action task (everything: process start,
key, overlay, libvirt start, boot, SSH, upload, task, collect, destroy),
once with the default warm start (the VM restored from the image's
warm-start template, built in the warm-up run) and once with `--start cold`
(the kernel booted). Runs alternate so that machine noise hits all alike.
Writes the medians and the ratio to docs/performance.md.
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
FERROTRON = ROOT / "target/release/ferrotron"
IMAGES = Path(os.environ.get("FERROTRON_IMAGES_DIR", "/var/lib/ferrotron/images"))
ACCEL = os.environ.get("FERROTRON_ACCEL", "tcg")


def newest_image(name="tiny"):
    versions = sorted(p for p in (IMAGES / name).iterdir() if (p / "manifest.json").is_file())
    d = versions[-1]
    return d, json.loads((d / "manifest.json").read_text())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.settimeout(0.3)
            return s.recv(4) == b"SSH-"
    except OSError:
        return False


def baseline_once(image_dir, manifest, work, ready=None, key=None):
    """Seconds from starting QEMU until the SSH banner answers, or until
    `ready(port, t0)` returns (its own elapsed time); `key`: an existing
    key pair whose public half the guest authorizes (default: a new one)."""
    boot = manifest["boot"]
    overlay = work / "overlay.qcow2"
    overlay.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image_dir / boot["disk"]), str(overlay)], check=True)
    if key is None:
        key = work / "key"
        for p in (key, work / "key.pub"):
            p.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    blob = Path(f"{key}.pub").read_text().split()[1]
    port = free_port()
    accel = "kvm" if ACCEL == "kvm" else "tcg"
    cmd = ["qemu-system-x86_64", "-accel", accel, "-m", str(boot["memory_mib"]),
           "-smp", str(boot["vcpus"]), "-nodefaults", "-nographic", "-no-user-config",
           "-serial", f"file:{work / 'console.log'}",
           "-kernel", str(image_dir / boot["kernel"]), "-initrd", str(image_dir / boot["initrd"]),
           "-append", f"{boot['cmdline']} ferrotron.key={blob}",
           "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
           "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
           "-device", "virtio-net-pci,netdev=n0,addr=0x10"]
    t0 = time.monotonic()
    q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        if ready is not None:
            return ready(port, t0)
        while not banner(port):
            if q.poll() is not None:
                raise SystemExit(f"bench: baseline qemu exited: {q.stderr.read().decode()}")
            if time.monotonic() - t0 > 120:
                raise SystemExit("bench: baseline guest gave no SSH banner in 120 s")
            time.sleep(0.025)
        return time.monotonic() - t0
    finally:
        os.killpg(q.pid, 9)
        q.wait()


def ferrotron_once(data_dir, start="warm"):
    t0 = time.monotonic()
    r = subprocess.run([str(FERROTRON), "run", "--libvirt", "-q", "--start", start, "-i", "bench-1.0-1",
                        "-t", "koji_build", str(ROOT / "tests/fixtures/trivial/runtask.yml")],
                       env={**os.environ, "FERROTRON_DATA_DIR": str(data_dir), "FERROTRON_ACCEL": ACCEL,
                            "FERROTRON_TEMPLATES_DIR": str(data_dir / "templates")},
                       capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: ferrotron run failed ({r.returncode}): {r.stderr}")
    return took


def main():
    image_dir, manifest = newest_image()
    base, ferro, cold = [], [], []
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        data = tmp / "data"
        # One warm-up of each (page cache, libvirt capabilities).
        # (the warm one builds the image's warm-start template).
        baseline_once(image_dir, manifest, tmp)
        ferrotron_once(data)
        ferrotron_once(data, "cold")
        for i in range(RUNS):
            base.append(baseline_once(image_dir, manifest, tmp))
            ferro.append(ferrotron_once(data))
            cold.append(ferrotron_once(data, "cold"))
            print(f"bench: run {i + 1}/{RUNS}: baseline {base[-1]:.2f} s, ferrotron {ferro[-1]:.2f} s, "
                  f"cold {cold[-1]:.2f} s", file=sys.stderr)
    mb, mf, mc = statistics.median(base), statistics.median(ferro), statistics.median(cold)
    ratio = mf / mb
    print(f"bench: median baseline {mb:.2f} s, ferrotron {mf:.2f} s (ratio {ratio:.3f}, goal <= 1.15), "
          f"cold {mc:.2f} s (ratio {mc / mb:.3f})")
    write_report(manifest, base, ferro, cold, mb, mf, mc, ratio)


def write_report(manifest, base, ferro, cold, mb, mf, mc, ratio):
    begin, end = markers("vm-job")
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    section = f"""{begin}
## One trivial job vs. a raw QEMU boot

Measured by `make bench` (scripts/bench.py) on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}),
acceleration `{ACCEL}`, image `{manifest['name']}:{manifest['version']}` ({manifest['boot']['memory_mib']} MiB, {manifest['boot']['vcpus']} vCPU),
{len(base)} runs each, alternating.

| what | median | runs (s) |
| --- | --- | --- |
| raw QEMU: start until the SSH banner answers | {mb:.2f} s | {fmt(base)} |
| `ferrotron run --libvirt` of a one-action task, end to end (default: warm start) | {mf:.2f} s | {fmt(ferro)} |
| the same with `--start cold` (the guest kernel booted) | {mc:.2f} s | {fmt(cold)} |

**Ratio: {ratio:.3f}** (goal: at most 1.15); with `--start cold`: {mc / mb:.3f}.
{end}"""
    write_section("vm-job", section)


if __name__ == "__main__":
    main()
