#!/usr/bin/env python3
"""A trivial job from the ready pool, against a warm start and a raw QEMU
boot, measured in one run (issue 20's goal: at most 0.25 of the raw boot).

Two services run side by side, one VM each, on their own data folders:
`serve --ready 1` (a VM restored from the template waits for each job)
and `serve` (each job's VM restored when it starts: the default warm
start). Each run queues one trivial job (`ferrotron submit` of a
one-action task) and times it two ways: end to end, from starting
`submit` until the API says `passed` (this includes the service's next
look at the queue, every 0.5 s, since `submit` is another process), and
the job's own time, from its claim (`scheduled`) until `passed`, from its
recorded transitions. Baseline: a raw QEMU boot of the same image until
the SSH banner answers. Runs alternate, and the pool is refilled before
each run (a restore running beside a measurement would slow it; a waiting
VM costs about 2 % of a core). Written to docs/performance.md between the bench:ready
markers.
"""
import datetime, json, os, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

import bench
from bench_reserve import Service, ferrotron
from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_READY_RUNS", "9"))
TASK = ROOT / "tests/fixtures/trivial"
DEADLINE = 180
POOL_READY = "waits for a job"


def job(svc, uuid):
    with urllib.request.urlopen(f"{svc.url}/api/v1/jobs/{uuid}", timeout=30) as r:
        return json.load(r)


def at(transitions, state):
    t = next(t["at"] for t in transitions if t["state"] == state)
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def once(svc, n):
    """(end to end, claim to passed) of one trivial job, in seconds."""
    t0 = time.monotonic()
    uuid = ferrotron(["submit", str(TASK), "--item", f"bench-{n}.0-1"], svc.env).stdout.strip()
    while True:
        j = job(svc, uuid)
        if j["state"] in ("passed", "failed", "error", "cancelled"):
            break
        if time.monotonic() - t0 > DEADLINE:
            raise SystemExit(f"bench: job {uuid} not done within {DEADLINE} s: {j}")
        time.sleep(0.01)
    took = time.monotonic() - t0
    if j["state"] != "passed":
        raise SystemExit(f"bench: job {uuid} ended {j['state']}: {j}")
    return took, at(j["transitions"], "passed") - at(j["transitions"], "scheduled")


def pool_filled(svc, count):
    t0 = time.monotonic()
    while svc.text().count(POOL_READY) < count:
        if time.monotonic() - t0 > DEADLINE or svc.proc.poll() is not None:
            raise SystemExit(f"bench: the ready pool was not refilled:\n{svc.text()[-3000:]}")
        time.sleep(0.05)


def main():
    os.environ.setdefault("FERROTRON_LOG", "info")
    image_dir, manifest = bench.newest_image()
    base, ready, warm, ready_own, warm_own = [], [], [], [], []
    services = []
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-ready-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        try:
            for name, extra in (("ready", ["--ready", "1"]), ("warm", [])):
                (tmp / name).mkdir()
                services.append(Service(tmp / name, "warm", extra))
            r, w = services
            pool_filled(r, 1)
            # Warm-up: page cache, libvirt, the warm service's template.
            bench.baseline_once(image_dir, manifest, tmp)
            once(r, 0)
            once(w, 0)
            for i in range(RUNS):
                # The pool's refill (a restore) is not left to compete
                # with the next measurement: each starts once it is done.
                pool_filled(r, i + 2)
                base.append(bench.baseline_once(image_dir, manifest, tmp))
                e, o = once(r, i + 1)
                ready.append(e)
                ready_own.append(o)
                pool_filled(r, i + 3)
                e, o = once(w, i + 1)
                warm.append(e)
                warm_own.append(o)
                print(f"bench: run {i + 1}/{RUNS}: raw QEMU {base[-1]:.2f} s, ready {ready[-1]:.2f} s "
                      f"({ready_own[-1]:.2f} s claimed), warm {warm[-1]:.2f} s ({warm_own[-1]:.2f} s claimed)",
                      file=sys.stderr)
        finally:
            for s in services:
                s.stop()
    med = statistics.median
    print(f"bench: median raw QEMU {med(base):.2f} s, ready {med(ready):.2f} s (ratio {med(ready) / med(base):.3f}, "
          f"goal <= 0.25), warm {med(warm):.2f} s")
    write_report(manifest, base, ready, warm, ready_own, warm_own)


def write_report(manifest, base, ready, warm, ready_own, warm_own):
    begin, end = markers("ready")
    med = statistics.median
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    mb = med(base)
    section = f"""{begin}
## A trivial job from the ready pool vs. a warm start and a raw QEMU boot

Measured by `make bench` (scripts/bench_ready.py) on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores,
acceleration `{bench.ACCEL}`, image `{manifest['name']}:{manifest['version']}`, {len(base)} runs each, alternating.
Jobs go through `ferrotron serve --max-vms 1`, with `--ready 1` or without (the default warm start);
"end to end" runs from starting `ferrotron submit` until the API says `passed`, "claimed" from the
job's claim until `passed` (its transitions).

| what | median | runs (s) |
| --- | --- | --- |
| raw QEMU: start until the SSH banner answers | {mb:.2f} s | {fmt(base)} |
| job from a ready VM, end to end | {med(ready):.2f} s | {fmt(ready)} |
| job from a ready VM, claimed to passed | {med(ready_own):.2f} s | {fmt(ready_own)} |
| job with a warm start, end to end | {med(warm):.2f} s | {fmt(warm)} |
| job with a warm start, claimed to passed | {med(warm_own):.2f} s | {fmt(warm_own)} |

**Ratio of a ready-pool job to the raw boot: {med(ready) / mb:.3f} end to end, {med(ready_own) / mb:.3f} once
claimed** (goal: at most 0.25); a warm start: {med(warm) / mb:.3f} and {med(warm_own) / mb:.3f}.
{end}"""
    write_section("ready", section)


if __name__ == "__main__":
    main()
