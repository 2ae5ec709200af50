#!/usr/bin/env python3
"""Scheduler cost alone: 10,000 queued jobs across 100 simulated hosts
(libvirt's `test:///default` driver: a real libvirt driver that runs no VM;
its node info gives each host's capacity). Each scheduling decision is one
claim (pick + place within the host's free vCPUs, memory and VM slots);
the queue is kept at 10,000 jobs. Runs orchestrator/examples/sched_bench.rs
(release) on SQLite, and on PostgreSQL when it answers (FERROTRON_TEST_PG_URL
or the role scripts/setup-host.sh creates). Written to docs/performance.md
between the bench:sched markers.

Then the scaling table: the same decision with 10x the queue, 10x the
hosts and both (BENCH_SCHED_SCALE: "JOBS/HOSTS/DECISIONS,..."; fewer
decisions for the big queue so the whole bench stays within minutes; the
1,000-host cases make enough decisions to fill every host). The 10,000/100
row is the main run's.
"""
import json, os, socket, subprocess, sys, time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target/release/examples/sched_bench"
JOBS = int(os.environ.get("BENCH_SCHED_JOBS", "10000"))
HOSTS = int(os.environ.get("BENCH_SCHED_HOSTS", "100"))
DECISIONS = int(os.environ.get("BENCH_SCHED_DECISIONS", "10000"))
SCALE = os.environ.get("BENCH_SCHED_SCALE", "100000/100/3000,10000/1000/9000,100000/1000/9000")
PG = os.environ.get("FERROTRON_TEST_PG_URL", "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres")


def pg_up():
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        return True
    except OSError:
        return False


def scale_cases():
    """(jobs, hosts, decisions) of each scaling case."""
    cases = []
    for case in filter(None, SCALE.split(",")):
        jobs, hosts, decisions = (int(x) for x in case.split("/"))
        cases.append((jobs, hosts, decisions))
    return cases


def run(extra, jobs=JOBS, hosts=HOSTS, decisions=DECISIONS):
    cmd = [str(BENCH), "--jobs", str(jobs), "--hosts", str(hosts), "--decisions", str(decisions), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:1])} failed: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def scale_table(results, scaled):
    """The scaling table's lines: the main runs first, then the cases."""
    lines = ["", "### How the cost grows", "",
             "The same decision with 10x the queue and 10x the hosts, in the same run (fewer decisions for the "
             "large queue; the 1,000-host cases make enough decisions to fill every host, so the jobs in "
             "progress grow with the hosts too).", "",
             "| database | queued | hosts | decisions | p50 | p99 | mean | max | jobs in progress at the end "
             "| nothing fit |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {"sqlite": 0, "postgres": 1}
    rows = sorted(results + scaled, key=lambda r: (order.get(r["backend"], 2), r["queued"], r["hosts"]))
    for r in rows:
        lines.append(f"| {r['backend']} | {r['queued']:,} | {r['hosts']:,} | {r['decisions']:,} | "
                     f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['mean_ms']:.2f} ms | {r['max_ms']:.1f} ms | "
                     f"{r['running_at_end']:,} | {r['nothing_fit']:,} |")
    return lines


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferrotron", "--example", "sched_bench"],
                   cwd=ROOT, check=True)
    load = os.getloadavg()[0]
    started = time.time()
    results = [run([])]
    if pg_up():
        results.append(run(["--pg", PG]))
    else:
        print("bench: PostgreSQL not reachable on 127.0.0.1:5432: SQLite only", file=sys.stderr)
    backends = [[]] + ([["--pg", PG]] if len(results) > 1 else [])
    scaled = []
    for jobs, hosts, decisions in scale_cases():
        for extra in backends:
            r = run(extra, jobs, hosts, decisions)
            print(f"bench: {r['backend']} {jobs}/{hosts}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms",
                  file=sys.stderr)
            scaled.append(r)
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
             "finishes, refills) | nothing fit | a durable commit alone: p50 / p99 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['decisions']:,} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | "
                     f"{r['mean_ms']:.2f} ms | {r['max_ms']:.1f} ms | {r['decisions_total_s']:.1f} s | "
                     f"{r['wall_s']:.1f} s | {r['nothing_fit']:,} | "
                     f"{r['commit_p50_ms']:.2f} / {r['commit_p99_ms']:.2f} ms |")
    lines += ["", "\"Nothing fit\" counts decisions where the host's free room held none of the queued jobs "
              "(it then finishes a job before its next turn). \"A durable commit alone\" is 500 minimal write "
              "transactions (a flag set) timed after the decisions on the same database: the disk's floor under "
              "every decision, which commits one (SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`). "
              "Every run checks that no host went over its capacity and that libvirt's test domains match the "
              "hosts' ledgers."]
    lines += scale_table(results, scaled)
    lines += ["", f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end of the whole bench "
              f"({(time.time() - started) / 60:.1f} min).", end]
    write_section("sched", "\n".join(lines))


if __name__ == "__main__":
    main()
