#!/usr/bin/env python3
"""From `ferrotron reserve` to a working root shell, measured in one run.

What a task author waits for: the wall time from starting `ferrotron
reserve --ssh-key KEY` (the reservation queued in the store, claimed by a
running `ferrotron serve`, its VM started, the key authorized for root,
the ssh command printed) until `ssh ... true` with the printed command
succeeds. Once with the service's default warm start (the VM restored
from the image's template) and once with `serve --start cold` (booted).
Baseline: a raw QEMU boot of the same image until the same `ssh true`
works as root (the key given on its kernel command line), which is what
testcloud-style tools wait for (testcloud polls for the SSH banner for up
to 160 s, and boots cold). Runs alternate; each reservation is released
and its VM gone before the next. Written to docs/performance.md between
the bench:reserve markers.
"""
import os, re, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import bench
from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
FERROTRON = ROOT / "target/release/ferrotron"
RUNS = int(os.environ.get("BENCH_RESERVE_RUNS", "7"))
ACCEL = os.environ.get("FERROTRON_ACCEL", "tcg")
DEADLINE = 180


def env(data):
    return {**os.environ, "FERROTRON_DATA_DIR": str(data), "FERROTRON_TEMPLATES_DIR": str(data / "templates"),
            "FERROTRON_IMAGES_DIR": str(bench.IMAGES), "FERROTRON_ACCEL": ACCEL}


def ferrotron(args, e, check=True):
    r = subprocess.run([str(FERROTRON), *args], env=e, capture_output=True, text=True, timeout=DEADLINE)
    if check and r.returncode != 0:
        raise SystemExit(f"bench: ferrotron {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def ssh_works(key, args):
    """`ssh ... true` with the printed arguments: the shell answers."""
    r = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                        "-o", "LogLevel=ERROR", *args, "true"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return r.returncode == 0


def until_shell(key, args, t0, what):
    while not ssh_works(key, args):
        if time.monotonic() - t0 > DEADLINE:
            raise SystemExit(f"bench: {what}: no shell within {DEADLINE} s")
        time.sleep(0.02)
    return time.monotonic() - t0


class Service:
    """`ferrotron serve` on its own data folder, ended by its process group."""

    def __init__(self, data, start, extra=()):
        self.env = env(data)
        self.log_path = data.parent / f"serve-{data.name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(FERROTRON), "serve", "--listen", "127.0.0.1:0", "--max-vms", "1",
                                      "--start", start, *extra],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t0 = time.monotonic()
        while "listening on" not in self.text():
            if self.proc.poll() is not None or time.monotonic() - t0 > 60:
                raise SystemExit(f"bench: serve --start {start} did not start:\n{self.text()}")
            time.sleep(0.1)
        self.url = re.search(r"listening on (http://\S+)", self.text()).group(1)

    def text(self):
        return self.log_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def reserve_once(svc, key, image):
    """Seconds from `reserve` to a working shell, and until `reserve` printed."""
    t0 = time.monotonic()
    r = ferrotron(["reserve", "--image", image, "--ttl", "30m", "--ssh-key", f"{key}.pub"], svc.env)
    printed = time.monotonic() - t0
    rid = re.search(r"^reservation (\S+) ", r.stdout, re.M)
    ssh = re.search(r"^  ssh +ssh (.+)$", r.stdout, re.M)
    if not rid or not ssh:
        raise SystemExit(f"bench: unexpected reserve output:\n{r.stdout}\n{r.stderr}")
    shell = until_shell(key, ssh.group(1).split(), t0, "reservation")
    release(svc, rid.group(1))
    return shell, printed


def release(svc, rid):
    ferrotron(["reservations", "release", rid], svc.env)
    t0 = time.monotonic()
    while "ended" not in ferrotron(["reservations", "show", rid], svc.env).stdout.split("\n")[0]:
        if time.monotonic() - t0 > DEADLINE:
            raise SystemExit(f"bench: reservation {rid} did not end")
        time.sleep(0.2)


def baseline_once(image_dir, manifest, work, key):
    """A raw QEMU boot until `ssh root@... true` works with `key`: the
    banner polled first (an `ssh` started before the guest listens waits
    on QEMU's half-open forward), then the shell."""
    def ready(port, t0):
        while not bench.banner(port):
            if time.monotonic() - t0 > DEADLINE:
                raise SystemExit(f"bench: raw QEMU: no SSH banner within {DEADLINE} s")
            time.sleep(0.025)
        return until_shell(key, ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                 "-p", str(port), "root@127.0.0.1"], t0, "raw QEMU")
    return bench.baseline_once(image_dir, manifest, work, ready=ready, key=key)


def main():
    image_dir, manifest = bench.newest_image()
    image = f"{manifest['name']}:{manifest['version']}"
    base, warm, cold, warm_printed, cold_printed = [], [], [], [], []
    services = []
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-reserve-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        key = tmp / "author"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        try:
            for start in ("warm", "cold"):
                (tmp / start).mkdir()
                services.append(Service(tmp / start, start))
            w, c = services
            # Warm-up: page cache, libvirt, the warm service's template.
            baseline_once(image_dir, manifest, tmp, key)
            reserve_once(w, key, image)
            reserve_once(c, key, image)
            for i in range(RUNS):
                base.append(baseline_once(image_dir, manifest, tmp, key))
                s, p = reserve_once(w, key, image)
                warm.append(s)
                warm_printed.append(p)
                s, p = reserve_once(c, key, image)
                cold.append(s)
                cold_printed.append(p)
                print(f"bench: run {i + 1}/{RUNS}: raw QEMU {base[-1]:.2f} s, reserve warm {warm[-1]:.2f} s, "
                      f"cold {cold[-1]:.2f} s", file=sys.stderr)
        finally:
            for s in services:
                s.stop()
    med = statistics.median
    print(f"bench: to a shell, median raw QEMU {med(base):.2f} s, reserve warm {med(warm):.2f} s, "
          f"cold {med(cold):.2f} s")
    write_report(manifest, base, warm, cold, warm_printed, cold_printed)


def write_report(manifest, base, warm, cold, warm_printed, cold_printed):
    begin, end = markers("reserve")
    med = statistics.median
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    section = f"""{begin}
## From `ferrotron reserve` to a root shell

Measured by `make bench` (scripts/bench_reserve.py) on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores,
acceleration `{ACCEL}`, image `{manifest['name']}:{manifest['version']}`, {len(base)} runs each, alternating.
Each time runs from starting the command until `ssh ... true` with the printed command succeeds
(the reservation queued, claimed by a running `serve`, the VM started, the key authorized).

| what | median | runs (s) |
| --- | --- | --- |
| raw QEMU boot until `ssh root@... true` works | {med(base):.2f} s | {fmt(base)} |
| `ferrotron reserve`, warm start (default) | {med(warm):.2f} s | {fmt(warm)} |
| of which until `reserve` printed the command | {med(warm_printed):.2f} s | {fmt(warm_printed)} |
| `ferrotron reserve` with `serve --start cold` | {med(cold):.2f} s | {fmt(cold)} |
| of which until `reserve` printed the command | {med(cold_printed):.2f} s | {fmt(cold_printed)} |

**Warm: {med(warm) / med(base):.2f} of a raw QEMU boot to a shell; cold: {med(cold) / med(base):.2f}.**
testcloud boots cold and polls for the SSH banner for up to 160 s; its wait is at least the raw boot above.
{end}"""
    write_section("reserve", section)


if __name__ == "__main__":
    main()
