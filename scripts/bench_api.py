#!/usr/bin/env python3
"""`make bench`, API part: wrk against GET /api/v2.0/results with 100k stored
results, on SQLite and on PostgreSQL; requests per second and p99 latency
go to docs/performance.md between the bench:api markers.

Seeding uses the bulk path (`ferrotron store seed`), not 100k HTTP posts.
PostgreSQL: FERROTRON_TEST_PG_URL (the role scripts/setup-host.sh creates);
a database is created for the run and dropped after it.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("FERROTRON_BIN", str(ROOT / "target/release/ferrotron"))
RESULTS = int(os.environ.get("BENCH_API_RESULTS", "100000"))
DURATION = os.environ.get("BENCH_API_DURATION", "15s")
CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "16"))
PG_ADMIN = os.environ.get(
    "FERROTRON_TEST_PG_URL", "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres")
QUERIES = [
    ("newest page (`/api/v2.0/results`)", "/api/v2.0/results"),
    ("one item (`?item=pkg7-1.0-1.fc40&type=koji_build`)",
     "/api/v2.0/results?item=pkg7-1.0-1.fc40&type=koji_build"),
]


def psql(sql):
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAtc", sql, PG_ADMIN], check=True)


def wrk(url):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", url],
        check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"bench: {url}: {errors.group(1)} non-2xx responses")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def wait_for_url(server, log_path):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"listening on (http://\S+)", log_path.read_text())
        if m:
            return m.group(1)
        if server.poll() is not None:
            raise SystemExit(
                f"bench: server exited with {server.returncode}: {log_path.read_text()}")
        time.sleep(0.1)
    raise SystemExit("bench: server did not start in 60 s")


def run_backend(name):
    data = Path(tempfile.mkdtemp(prefix="ferrotron-bench-api-"))
    env = dict(os.environ, FERROTRON_DATA_DIR=str(data))
    env.pop("FERROTRON_DATABASE_URL", None)
    db = None
    if name == "PostgreSQL":
        db = f"ft_bench_{uuid.uuid4().hex}"
        psql(f"CREATE DATABASE {db}")
        env["FERROTRON_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    server = None
    try:
        t = time.monotonic()
        subprocess.run([BIN, "store", "seed", "--results", str(RESULTS)], env=env, check=True)
        seed = time.monotonic() - t
        print(f"bench: {name}: seeded {RESULTS} results in {seed:.1f} s", file=sys.stderr)
        log_path = data / "serve.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log)
        base = wait_for_url(server, log_path)
        rows = []
        for label, path in QUERIES:
            rps, p99 = wrk(base + path)
            print(f"bench: {name} {path}: {rps:.0f} req/s, p99 {p99:.1f} ms", file=sys.stderr)
            rows.append((label, rps, p99))
        return seed, rows
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if db:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(data, ignore_errors=True)


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"bench: {BIN} missing: run make build")
    results = {b: run_backend(b) for b in ("SQLite", "PostgreSQL")}
    begin, end = markers("api")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    lines = [
        begin,
        "## Results API under load",
        "",
        f"Measured by `make bench` (scripts/bench_api.py) on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores ({cpu}):",
        f"`wrk -t2 -c{CONNECTIONS} -d{DURATION} --latency` against the release "
        "`ferrotron serve` on 127.0.0.1 (wrk on the same machine),",
        f"{RESULTS:,} stored results (10 testcases, 1,000 items, 3 data values each).",
        "",
        "| backend | query | requests/s | p99 latency | seeding (bulk) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for backend, (seed, rows) in results.items():
        for label, rps, p99 in rows:
            lines.append(f"| {backend} | {label} | {rps:,.0f} | {p99:.1f} ms | {seed:.1f} s |")
    lines.append(end)
    section = "\n".join(lines)
    write_section("api", section)


if __name__ == "__main__":
    main()
