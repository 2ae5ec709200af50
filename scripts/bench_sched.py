#!/usr/bin/env python3
"""Scheduler cost alone: 10,000 queued jobs across 100 simulated hosts
(libvirt's `test:///default` driver: a real libvirt driver that runs no VM;
its node info gives each host's capacity). Each scheduling decision is one
claim (pick + place within the host's free vCPUs, memory and VM slots);
the queue is kept at 10,000 jobs. Runs orchestrator/examples/sched_bench.rs
(release) on SQLite, and on PostgreSQL when it answers (FERROTRON_TEST_PG_URL
or the role scripts/setup-host.sh creates). Written to docs/performance.md
between the bench:sched markers.
"""
import json, os, socket, subprocess, sys, time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target/release/examples/sched_bench"
JOBS = int(os.environ.get("BENCH_SCHED_JOBS", "10000"))
HOSTS = int(os.environ.get("BENCH_SCHED_HOSTS", "100"))
DECISIONS = int(os.environ.get("BENCH_SCHED_DECISIONS", "10000"))
PG = os.environ.get("FERROTRON_TEST_PG_URL", "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres")


def pg_up():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        return True
    except OSError:
        return False


def run(extra):
    cmd = [str(BENCH), "--jobs", str(JOBS), "--hosts", str(HOSTS), "--decisions", str(DECISIONS), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:1])} failed: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferrotron", "--example", "sched_bench"],
                   cwd=ROOT, check=True)
    load = os.getloadavg()[0]
    results = [run([])]
    if pg_up():
        results.append(run(["--pg", PG]))
    else:
        print("bench: PostgreSQL not reachable on 127.0.0.1:5432: SQLite only", file=sys.stderr)
    for r in results:
        print(f"bench: {r['backend']}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
              f"over {r['decisions']} decisions", file=sys.stderr)
    cap = results[0]["host_capacity"]
    begin, end = markers("sched")
    lines = [begin, "## Scheduler cost per decision", "",
             f"Measured by `make bench` (scripts/bench_sched.py, orchestrator/examples/sched_bench.rs) on "
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores (load average {load:.1f} at the start), release "
             f"build: {JOBS:,} queued jobs across "
             f"{HOSTS} simulated hosts, each a libvirt `test:///default` connection whose node info gives its "
             f"capacity ({cap['vcpus']} vCPUs, {cap['memory_mib']} MiB, {cap['max_vms']} VMs after the reserve). "
             "Hosts take turns; a decision is one claim: the best queued job (priority, then fairness across "
             "tasks, then age) that fits the host's free vCPUs, memory and VM slots, taken with a guarded "
             "UPDATE. A claimed job starts a test domain and is replaced by a fresh job (the queue stays at "
             f"{JOBS:,}); a full host first finishes its oldest job. Only the claim is timed. Job mix: half "
             "one flood task, the rest over 40 tasks, one in ten at a higher priority, four VM sizes.", "",
             "| database | decisions | p50 | p99 | mean | max | sum of decisions | wall time (with starts, "
             "finishes, refills) | nothing fit |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['decisions']:,} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
                     f"{r['mean_ms']:.2f} ms | {r['max_ms']:.1f} ms | {r['decisions_total_s']:.1f} s | "
                     f"{r['wall_s']:.1f} s | {r['nothing_fit']:,} |")
    lines += ["", "\"Nothing fit\" counts decisions where the host's free room held none of the queued jobs "
              "(it then finishes a job before its next turn). Every run checks that no host went over its "
              "capacity and that libvirt's test domains match the hosts' ledgers.", end]
    write_section("sched", "\n".join(lines))


if __name__ == "__main__":
    main()
