#!/usr/bin/env python3
"""Jobs per minute through the service: 40 trivial jobs queued with
`ferrotron submit`, then `ferrotron serve --max-vms K` runs them (warm
starts, real VMs); the time from the scheduler's start until `host status`
shows all 40 passed. K = 1, 2 and 4 on this machine, one run each, the
warm-start template built once before. Baseline: the same 40 jobs one after
another with `ferrotron run --libvirt` (no service), whose ratio to K = 1 is
the service's own overhead. Written to docs/performance.md between the
bench:service markers.
"""
import os, signal, subprocess, sys, tempfile, time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
FERROTRON = ROOT / "target/release/ferrotron"
JOBS = int(os.environ.get("BENCH_SERVICE_JOBS", "40"))
TRIVIAL = ROOT / "tests/fixtures/trivial/runtask.yml"


def env(data, templates):
    return {**os.environ, "FERROTRON_DATA_DIR": str(data), "FERROTRON_TEMPLATES_DIR": str(templates),
            "FERROTRON_ACCEL": os.environ.get("FERROTRON_ACCEL", "tcg")}


def ferrotron(args, e, **kw):
    return subprocess.run([str(FERROTRON), *args], env=e, capture_output=True, text=True, **kw)


def status(e):
    out = ferrotron(["host", "status"], e).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def service_run(tmp, templates, k):
    data = tmp / f"svc-{k}"
    e = env(data, templates)
    for i in range(JOBS):
        r = ferrotron(["submit", str(TRIVIAL), "--item", f"bench-{k}-{i}"], e)
        if r.returncode != 0:
            raise SystemExit(f"bench: submit failed: {r.stderr}")
    log = open(tmp / f"serve-{k}.log", "w")
    t0 = time.monotonic()
    serve = subprocess.Popen([str(FERROTRON), "serve", "--listen", "127.0.0.1:0", "--max-vms", str(k)],
                             env=e, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            c = status(e)
            done = sum(c.get(s, 0) for s in ("passed", "failed", "error", "cancelled"))
            if done >= JOBS:
                took = time.monotonic() - t0
                if c.get("passed", 0) != JOBS:
                    raise SystemExit(f"bench: not all jobs passed: {c} (log {log.name})")
                return took
            if serve.poll() is not None:
                raise SystemExit(f"bench: serve exited {serve.returncode} (log {log.name})")
            if time.monotonic() - t0 > 1200:
                raise SystemExit(f"bench: jobs not done in 20 min: {c}")
            time.sleep(0.5)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait()


def main():
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-svc-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        templates = tmp / "templates"
        e = env(tmp / "plain", templates)
        # Warm-up: builds the warm-start template.
        ferrotron(["run", "--libvirt", "-q", "-i", "warm-1", "-t", "koji_build", str(TRIVIAL)], e, check=True)
        t0 = time.monotonic()
        for i in range(JOBS):
            ferrotron(["run", "--libvirt", "-q", "-i", f"plain-{i}", "-t", "koji_build", str(TRIVIAL)], e,
                      check=True)
        plain = time.monotonic() - t0
        print(f"bench: {JOBS} jobs one by one with `run`: {plain:.1f} s", file=sys.stderr)
        rows = []
        for k in (1, 2, 4):
            took = service_run(tmp, templates, k)
            rows.append((k, took))
            print(f"bench: --max-vms {k}: {JOBS} jobs in {took:.1f} s ({JOBS * 60 / took:.1f} jobs/min)",
                  file=sys.stderr)
    begin, end = markers("service")
    lines = [begin, "## Jobs per minute through the service", "",
             f"Measured by `make bench` (scripts/bench_service.py) on {time.strftime('%Y-%m-%d')}, "
             f"{os.cpu_count()} cores, TCG: {JOBS} trivial jobs queued with `ferrotron submit`, then run by "
             "`ferrotron serve --max-vms K` (warm starts, real VMs), timed from the scheduler's start until all "
             "passed; one run each. Baseline: the same jobs one after another with `ferrotron run --libvirt`.", "",
             "| how | time for all | jobs per minute | vs. the baseline |", "| --- | --- | --- | --- |",
             f"| baseline: `ferrotron run` one after another | {plain:.1f} s | {JOBS * 60 / plain:.1f} | 1.00 |"]
    for k, took in rows:
        lines.append(f"| service, `--max-vms {k}` | {took:.1f} s | {JOBS * 60 / took:.1f} | {took / plain:.2f} |")
    lines += ["", "The scheduler's own cost per decision (10,000 queued jobs, 100 simulated hosts) is in "
              "the next section.", end]
    write_section("service", "\n".join(lines))


if __name__ == "__main__":
    main()
