#!/usr/bin/env python3
"""`make bench`, dashboard part (issue 19): time to first byte and full
render in Debian's headless Chromium of the jobs page and of searches, with
100,000 finished jobs and 1 GiB of their logs indexed for search, on SQLite
and on PostgreSQL; and what indexing costs per MiB of log. Written to
docs/performance.md between the bench:web markers.

The history is made by `ferrotron store seed --jobs N --log-mb M` (jobs in
bulk; each log written under the artifacts folder and stored through the
same call an uploaded log takes, so its lines are indexed as a real job's
are; the seed reports the time of those calls). The pages are served by the
release `ferrotron serve` on 127.0.0.1.

- TTFB: a new HTTP connection per request, the time from sending it to the
  response's headers (Python's http.client); median and p90 of REQUESTS.
- Full render: Chromium through chromedriver, the Navigation Timing entry's
  `loadEventEnd` (HTML, CSS, script and SVG loaded and laid out); median of
  RENDERS loads, after one load not counted.

BENCH_WEB_JOBS, BENCH_WEB_LOG_MB, BENCH_WEB_REQUESTS and BENCH_WEB_RENDERS
make it smaller for a try-out; the figures written say what was used.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("FERROTRON_BIN", str(ROOT / "target/release/ferrotron"))
JOBS = int(os.environ.get("BENCH_WEB_JOBS", "100000"))
LOG_MB = int(os.environ.get("BENCH_WEB_LOG_MB", "1024"))
REQUESTS = int(os.environ.get("BENCH_WEB_REQUESTS", "30"))
RENDERS = int(os.environ.get("BENCH_WEB_RENDERS", "10"))
PG_ADMIN = os.environ.get(
    "FERROTRON_TEST_PG_URL", "postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def psql(sql):
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAtc", sql, PG_ADMIN], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"bench: {what} not ready within {deadline_s} s")


def get(base, path):
    """One request on a new connection: (status, seconds to the headers,
    seconds to the whole body, body)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        first = time.perf_counter() - t
        body = r.read()
        return r.status, first, time.perf_counter() - t, body
    finally:
        conn.close()


def ttfb(base, path):
    firsts, totals = [], []
    status, _, _, body = get(base, path)  # warms the page cache and the pool
    if status != 200:
        raise SystemExit(f"bench: GET {path}: {status}: {body[:300]!r}")
    for _ in range(REQUESTS):
        status, first, total, _ = get(base, path)
        if status != 200:
            raise SystemExit(f"bench: GET {path}: {status}")
        firsts.append(first * 1000)
        totals.append(total * 1000)
    firsts.sort()
    return statistics.median(firsts), firsts[int(len(firsts) * 0.9) - 1], statistics.median(totals), len(body)


class Browser:
    """Headless Chromium with one WebDriver session, in its own process
    group (chromedriver's), ended by that group's id."""

    def __init__(self):
        self.profile = Path(tempfile.mkdtemp(prefix="ferrotron-bench-chromium-"))
        self.port = free_port()
        self.log = open(self.profile.parent / f"{self.profile.name}.log", "w")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for("chromedriver", self._ready, 60)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={self.profile}", "--window-size=1280,900"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status").get("ready")
        except OSError:
            return False

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.load(r)["value"]

    def render_ms(self, url):
        """Loads `url` (WebDriver waits for its load event) and returns the
        navigation's loadEventEnd in ms."""
        s = f"/session/{self.session}"
        self.call("POST", f"{s}/url", {"url": "about:blank"})
        self.call("POST", f"{s}/url", {"url": url})
        script = ("const n = performance.getEntriesByType('navigation')[0];"
                  "return n ? [n.loadEventEnd, n.responseStart] : null;")
        value = self.call("POST", f"{s}/execute/sync", {"script": script, "args": []})
        if not value or value[0] <= 0:
            raise SystemExit(f"bench: {url}: no navigation timing ({value})")
        return value[0]

    def render(self, url):
        self.render_ms(url)
        return statistics.median(self.render_ms(url) for _ in range(RENDERS))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except OSError:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a Chromium that outlived its driver
        except ProcessLookupError:
            pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        Path(self.log.name).unlink(missing_ok=True)


def pages(base):
    """The pages measured: (label, path). The deep page's cursor is read
    from the "older" link of the list cut at the middle of the history."""
    middle = time.gmtime(time.time() - JOBS * 60 / 2)
    _, _, _, body = get(base, "/?until=" + time.strftime("%Y-%m-%dT%H:%M:%S", middle))
    cursor = re.search(rb"after=([0-9]+\.[0-9a-f-]{36})", body)
    if not cursor:
        raise SystemExit("bench: no older-page link on the list cut at the middle")
    return [
        ("jobs, newest page (`/`)", "/"),
        (f"jobs, a page {JOBS // 2:,} jobs deep (`/?after=…`)", "/?after=" + cursor.group(1).decode()),
        ("jobs of one task that failed (`/?task=dist.check7&state=failed`)",
         "/?task=dist.check7&state=failed"),
        ("search, a rare word (`/search?q=segfault`)", "/search?q=segfault"),
        ("search, a word in 1 line of 20 (`/search?q=warning`)", "/search?q=warning"),
        ("search, a common word about one item (`/search?q=warning&item=pkg7-1.3-1.fc41`)",
         "/search?q=warning&item=pkg7-1.3-1.fc41"),
        ("API search, a rare word (`/api/v1/search?q=segfault`)", "/api/v1/search?q=segfault"),
    ]


def run_backend(name, browser):
    data = Path(tempfile.mkdtemp(prefix="ferrotron-bench-web-"))
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
        out = subprocess.run([BIN, "store", "seed", "--jobs", str(JOBS), "--log-mb", str(LOG_MB)],
                             env=env, check=True, capture_output=True, text=True).stdout
        seed = json.loads(out.strip().splitlines()[-1])
        seed["total_secs"] = time.monotonic() - t
        if db:
            psql_db = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
            subprocess.run(["psql", "-qAtc", "ANALYZE jobs, job_transitions, artifacts, search_lines", psql_db],
                           check=True)
        print(f"bench: {name}: seeded {seed['jobs']:,} jobs, {seed['log_bytes'] / 2**20:,.0f} MiB of "
              f"logs ({seed['log_lines']:,} lines) in {seed['total_secs']:.0f} s; indexing "
              f"{seed['index_ms_per_mb']:.0f} ms/MiB", file=sys.stderr)
        log_path = data / "serve.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=log,
                                      start_new_session=True)
        base = wait_for("ferrotron serve", lambda: (
            (m := re.search(r"listening on (http://\S+)", log_path.read_text())) and m.group(1)))
        rows = []
        for label, path in pages(base):
            first, p90, total, size = ttfb(base, path)
            render = browser.render(base + path) if not path.startswith("/api/") else None
            print(f"bench: {name} {path}: ttfb {first:.1f} ms (p90 {p90:.1f}), "
                  f"render {render or 0:.0f} ms, {size:,} bytes", file=sys.stderr)
            rows.append((label, first, p90, total, render, size))
        return seed, rows
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        if db:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(data, ignore_errors=True)


def main():
    # A stopped bench still drops its database and ends its browser.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in (BIN, CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"bench: {tool} missing (make build; make test installs chromium)")
    started = time.time()
    browser = Browser()
    try:
        results = {b: run_backend(b, browser) for b in ("SQLite", "PostgreSQL")}
    finally:
        browser.close()
    begin, end = markers("web")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    lines = [
        begin,
        "## Dashboard pages and search at 100,000 jobs",
        "",
        f"Measured by `make bench` (scripts/bench_web.py) on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores ({cpu}), in {(time.time() - started) / 60:.0f} min: the release "
        f"`ferrotron serve` on 127.0.0.1 with {JOBS:,} finished jobs and {LOG_MB:,} MiB of their "
        "logs indexed for search (`ferrotron store seed --jobs N --log-mb M`: 40 tasks, 5,000 items, "
        "lines of words with a skewed frequency; `warning` in about 1 line of 20, `segfault` in 1 of "
        "10,000). Time to first byte: a new connection per request, to the response's headers, "
        f"median and p90 of {REQUESTS}. Render: Debian's headless Chromium through chromedriver, the "
        f"navigation's `loadEventEnd` (HTML, hashed CSS and script, SVG), median of {RENDERS} loads.",
        "",
        "| backend | page | TTFB median | TTFB p90 | whole answer | render in Chromium | size |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, (_, rows) in results.items():
        for label, first, p90, total, render, size in rows:
            r = f"{render:.0f} ms" if render is not None else "(JSON)"
            lines.append(f"| {backend} | {label} | {first:.1f} ms | {p90:.1f} ms | {total:.1f} ms | "
                         f"{r} | {size / 1024:.0f} KiB |")
    lines += ["", "Indexing, as logs are stored (each job's runner.log one `put_artifact` with its "
              "lines; the files' writing not counted):", "",
              "| backend | jobs inserted (bulk) | log | lines | indexing | per MiB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for backend, (seed, _) in results.items():
        lines.append(f"| {backend} | {seed['jobs']:,} in {seed['jobs_secs']:.1f} s | "
                     f"{seed['log_bytes'] / 2**20:,.0f} MiB | {seed['log_lines']:,} | "
                     f"{seed['index_secs']:.0f} s | {seed['index_ms_per_mb']:.0f} ms |")
    lines.append(end)
    write_section("web", "\n".join(lines))


if __name__ == "__main__":
    main()
