#!/usr/bin/env python3
"""`make bench`, hardening part: what a hostile or merely heavy client does to
`ferrotron serve`, measured against the release server on 127.0.0.1.

1. gzip bomb: 4 concurrent `git-upload-pack` POSTs whose gzip body inflates
   to 300 MiB; the server's status and peak RSS.
2. idle sockets: 1,100 silent (or slowloris) TCP connections; whether a
   healthcheck still answers, the server's descriptors, what it closed.
3. six parallel `git clone` of a ~40 MB repository from the built-in cache.
4. small writes behind large reads: 100 wrk readers of 1.2 MB result pages
   while 20 tiny results are posted.
5. log followers: 256 followers of a running job's log, then the 257th.
Writes its figures to docs/performance.md between the bench:hardening markers.
"""
import gzip, http.client, json, os, resource, shutil, socket, statistics, subprocess, sys
import tempfile, threading, time, uuid
from pathlib import Path

from benchdoc import markers, write_section
from bench_api import BIN, wait_for_url
from bench_cache import ferrotron

ROUNDS = int(os.environ.get("BENCH_RUNS", "3"))
IDLE = 1100
READ_SECONDS = 20
IDLE_TIMEOUT = 10
HEADER_TIMEOUT = 5  # seconds a request's headers may take (slowloris)
med = statistics.median


log = lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)  # noqa: E731


def rss_kb(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Peak:
    """Samples a process's VmRSS every 50 ms until stopped."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_kb(pid), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, rss_kb(self.pid))

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.peak


mib = lambda kb: kb / 1024  # noqa: E731


class Server:
    """`ferrotron serve` on 127.0.0.1:0 over one data folder; stopped by pid."""

    def __init__(self, env, data, *args, nofile=None):
        self.log_path = data / f"serve-{time.monotonic_ns()}.log"
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        with open(self.log_path, "w") as f:
            self.proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", *args], env=env,
                                         stdout=subprocess.DEVNULL, stderr=f, preexec_fn=limit)
        self.pid = self.proc.pid
        self.base = wait_for_url(self.proc, self.log_path)
        self.host, port = self.base.split("//")[1].split(":")
        self.port = int(port)
        for _ in range(3):
            self.request("GET", "/api/v2.0/healthcheck")  # warm-up

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            t = time.monotonic()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, data, time.monotonic() - t
        finally:
            c.close()

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def make_repo(path, commits, size):
    """`commits` commits, each rewriting one of 20 files with `size` random bytes."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    fi = subprocess.Popen(["git", "-C", str(path), "fast-import", "--quiet"], stdin=subprocess.PIPE)
    for i in range(commits):
        data, msg = os.urandom(size), f"commit {i}\n".encode()
        fi.stdin.write(b"commit refs/heads/main\n"
                       + f"committer Bench <bench@ferrotron> {1700000000 + i} +0000\n".encode()
                       + f"data {len(msg)}\n".encode() + msg
                       + f"M 644 inline file{i % 20}.bin\ndata {len(data)}\n".encode() + data + b"\n")
    fi.stdin.close()
    if fi.wait() != 0:
        raise SystemExit("bench: git fast-import failed")
    subprocess.run(["git", "-C", str(path), "gc", "-q"], check=True)


def in_threads(n, fn):
    out = [None] * n
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i))) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def gzip_bomb(srv):
    body = gzip.compress(bytes(300 << 20), compresslevel=9)
    headers = {"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"}
    idle, rounds = rss_kb(srv.pid), []
    for _ in range(ROUNDS):
        peak = Peak(srv.pid)
        res = in_threads(4, lambda i: srv.request("POST", "/git/small.git/git-upload-pack", body, headers))
        rounds.append((peak.done(), sorted({s for s, _, _ in res}), med(t for _, _, t in res)))
    log(f"gzip bomb ({len(body)} bytes gzip): idle {mib(idle):.1f} MiB, rounds {rounds}")
    return dict(gz=len(body), idle=idle, peak=max(p for p, _, _ in rounds),
                statuses=sorted({s for _, ss, _ in rounds for s in ss}),
                latency=med(t for _, _, t in rounds), hwm=rss_kb(srv.pid, "VmHWM"))


def idle_sockets(srv, wait_closed=None, dribble=False):
    """Opens IDLE connections (silent, or each sending one header byte every
    2 s: slowloris), then one healthcheck on a new connection (20 s time-out)."""
    time.sleep(1)
    socks, fds_before, stop = [], srv.fds(), threading.Event()

    def drip():
        while not stop.wait(2):
            for s in socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass
    try:
        t0 = time.monotonic()
        for _ in range(IDLE):
            socks.append(socket.create_connection((srv.host, srv.port)))
            if dribble:
                socks[-1].sendall(b"GET /api/v2.0/healthcheck HTTP/1.1\r\nX-Slow: ")
        opened = time.monotonic()
        if dribble:
            threading.Thread(target=drip, daemon=True).start()
        time.sleep(0.2)
        fds = srv.fds()
        try:
            status, _, took = srv.request("GET", "/api/v2.0/healthcheck", timeout=20)
        except OSError as e:
            status, took = f"none ({type(e).__name__})", None
        since = time.monotonic() - t0
        closed = None
        if wait_closed:
            time.sleep(max(0.0, opened + wait_closed - time.monotonic()))
            closed = 0
            for s in socks:
                s.setblocking(False)
                try:
                    closed += s.recv(1) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
        return dict(fds_before=fds_before, fds=fds, status=status, took=took, closed=closed,
                    open=opened - t0, since=since)
    finally:
        stop.set()
        for s in socks:
            s.close()


def backlog(srv):
    """The listening socket's accept queue length (ss's Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{srv.port}"], capture_output=True, text=True).stdout
    return int(out.split()[2])


def listen_overflows():
    """TcpExtListenOverflows, machine-wide: SYNs dropped on a full accept queue."""
    head, values = open("/proc/net/netstat").read().splitlines()[:2]
    return int(dict(zip(head.split(), values.split()))["ListenOverflows"])


def silent_follower(srv, job, seconds):
    """A follower of a log that does not grow: is it cut off after `seconds`?"""
    s = socket.create_connection((srv.host, srv.port))
    s.sendall(f"GET /api/v1/jobs/{job}/log HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.settimeout(seconds)
    t = time.monotonic()
    try:
        while s.recv(4096):
            pass
        return f"closed by the server after {time.monotonic() - t:.1f} s"
    except socket.timeout:
        return f"still open after {seconds} s"
    finally:
        s.close()


def clones(srv, tmp):
    idle, rounds = rss_kb(srv.pid), []
    for r in range(ROUNDS):
        peak, t = Peak(srv.pid), time.monotonic()
        procs = [subprocess.Popen(["git", "clone", "-q", f"{srv.base}/git/big.git", str(tmp / f"clone{r}-{i}")])
                 for i in range(6)]
        codes = [p.wait() for p in procs]
        rounds.append((time.monotonic() - t, peak.done(), codes))
        for i in range(6):
            shutil.rmtree(tmp / f"clone{r}-{i}", ignore_errors=True)
    log(f"clones: idle {mib(idle):.1f} MiB, rounds {rounds}")
    if any(c for _, _, cs in rounds for c in cs):
        raise SystemExit(f"bench: a clone failed: {rounds}")
    return dict(idle=idle, wall=[w for w, _, _ in rounds], peak=[p for _, p, _ in rounds])


def post_result(srv, token, doc):
    status, body, took = srv.request("POST", "/api/v2.0/results", json.dumps(doc),
                                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    if status != 201 and status != 200:
        raise SystemExit(f"bench: POST /api/v2.0/results: {status} {body[:300]!r}")
    return took


WRK_LUA = """done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", latency:percentile(50), latency:percentile(95),
    latency.max, summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.timeout))
end
"""


def reads_and_writes(srv, token, tmp):
    blob = ["x" * 2000] * 30
    for i in range(40):
        post_result(srv, token, {"testcase": "t.big", "outcome": "PASSED",
                                 "data": {"item": f"big{i}", "type": "koji_build", "blob": blob}})
    tiny = {"testcase": "t.tiny", "outcome": "PASSED", "data": {"item": "x", "type": "koji_build"}}
    quiet = [post_result(srv, token, tiny) for _ in range(10)]
    page = len(srv.request("GET", "/api/v2.0/results?testcases=t.big&limit=20")[1])
    (tmp / "done.lua").write_text(WRK_LUA)
    before, peak = rss_kb(srv.pid), Peak(srv.pid)
    wrk = subprocess.Popen(["wrk", "-t2", "-c100", f"-d{READ_SECONDS}s", "--timeout", "30s",
                            "-s", str(tmp / "done.lua"), f"{srv.base}/api/v2.0/results?testcases=t.big&limit=20"],
                           stdout=subprocess.PIPE, text=True)
    # one started every 0.8 s from 2 s on, whatever the answers' speed
    writes = in_threads(20, lambda i: (time.sleep(2 + 0.8 * i), post_result(srv, token, tiny))[1])
    out = wrk.communicate()[0]
    p = peak.done()
    time.sleep(2)
    after = rss_kb(srv.pid)
    line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"bench: wrk gave no result:\n{out}")
    p50, p95, mx, n, errors = (int(x) for x in line.split()[1:])
    log(f"reads: {n} requests, p50 {p50 / 1000:.1f} ms, p95 {p95 / 1000:.1f} ms, errors {errors}; "
        f"writes {[round(w * 1000) for w in writes]} ms; rss {before}/{p}/{after} kB")
    return dict(page=page, p50=p50 / 1e6, p95=p95 / 1e6, rmax=mx / 1e6, n=n, errors=errors, quiet=med(quiet),
                wmed=med(writes), wmax=max(writes), before=before, peak=p, after=after)


def put_running_job(srv, token, data):
    job = str(uuid.uuid4())
    body = {"state": "running", "item": "x", "type": "koji_build", "arch": "x86_64", "formula": "hello",
            "transitions": [{"state": "queued", "at": "2024-05-01T10:00:00Z"},
                            {"state": "scheduled", "at": "2024-05-01T10:00:01Z"},
                            {"state": "running", "at": "2024-05-01T10:00:05Z"}]}
    status, out, _ = srv.request("PUT", f"/api/v1/jobs/{job}", json.dumps(body),
                                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    if status != 200:
        raise SystemExit(f"bench: PUT job: {status} {out[:300]!r}")
    folder = data / "artifacts" / job
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runner.log").write_text("runner: started\n")
    return job


def open_follower(srv, job):
    """A follower: the status, and the socket (open) when it is 200."""
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(f"GET /api/v1/jobs/{job}/log HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split()[1]) if head else 0
    if status != 200:
        s.close()
        return status, None
    return status, s


def followers(srv, job):
    socks = []
    try:
        t = time.monotonic()
        for _ in range(256):
            status, s = open_follower(srv, job)
            if s is None:
                raise SystemExit(f"bench: follower {len(socks) + 1} got {status}")
            socks.append(s)
        took = time.monotonic() - t
        fds = srv.fds()
        extra, _ = open_follower(srv, job)
        socks.pop().close()
        t, again = time.monotonic(), None
        while time.monotonic() - t < 10:
            again, s = open_follower(srv, job)
            if s is not None:
                socks.append(s)
                break
            time.sleep(0.05)
        freed = time.monotonic() - t
        log(f"followers: 256 in {took:.2f} s, fds {fds}, 257th {extra}, after one left: {again} in {freed:.2f} s")
        return dict(took=took, fds=fds, extra=extra, again=again, freed=freed)
    finally:
        for s in socks:
            s.close()


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"bench: {BIN} missing: run make build")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    tmp = Path(tempfile.mkdtemp(prefix="ferrotron-bench-hardening-"))
    data, servers, r = tmp / "data", [], {}
    env = {**os.environ, "FERROTRON_DATA_DIR": str(data)}
    env.pop("FERROTRON_DATABASE_URL", None)

    def serve(*args, nofile=None):
        servers.append(Server(env, data, *args, nofile=nofile))
        return servers[-1]

    try:
        make_repo(tmp / "small.git", 1, 100)
        make_repo(tmp / "big.git", 200, 200_000)
        r["repo"] = sum(f.stat().st_size for f in (tmp / "big.git/objects/pack").iterdir()) / 2**20
        ferrotron(env, "cache", "add", str(tmp / "small.git"), "--path", "small")
        ferrotron(env, "cache", "add", str(tmp / "big.git"), "--path", "big")
        token = ferrotron(env, "token", "create", "bench", "--role", "operator").stdout.strip()
        srv = serve("--max-log-followers", "256")
        r["health"] = med(srv.request("GET", "/api/v2.0/healthcheck")[2] for _ in range(10))
        r["bomb"] = gzip_bomb(srv)
        r["clones"] = clones(srv, tmp)
        r["rw"] = reads_and_writes(srv, token, tmp)
        job = put_running_job(srv, token, data)
        r["follow"] = followers(srv, job)
        r["idle_default"] = idle_sockets(srv)
        srv.stop()
        srv = serve("--idle-timeout", str(IDLE_TIMEOUT), "--header-timeout", str(HEADER_TIMEOUT))
        r["backlog"] = backlog(srv)
        overflows = listen_overflows()
        r["idle5"] = idle_sockets(srv, 2 * IDLE_TIMEOUT + 2)
        r["overflows"] = listen_overflows() - overflows
        r["slow"] = idle_sockets(srv, dribble=True)
        r["silent"] = silent_follower(srv, job, IDLE_TIMEOUT + 5)
        srv.stop()
        srv = serve("--idle-timeout", str(IDLE_TIMEOUT), nofile=1024)
        r["idle_nofile"] = idle_sockets(srv)
        r["accept_warnings"] = srv.log_path.read_text().count("accept:")
        for k in ("idle_default", "idle5", "slow", "idle_nofile", "silent", "accept_warnings"):
            log(f"{k}: {r[k]}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(r)


def fmt_idle(d):
    took = (f"{d['status']} after {d['took']:.2f} s ({d['since']:.1f} s after the first socket)"
            if d["took"] is not None else "no answer within 20 s")
    return f"{d['open']:.1f} s | {took} | {d['fds_before']} → {d['fds']}"


def write_report(r):
    begin, end = markers("hardening")
    b, c, w, f = r["bomb"], r["clones"], r["rw"], r["follow"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    section = f"""{begin}
## Hardening probes

Measured by `make bench` (`python3 scripts/bench_hardening.py`) on {time.strftime('%Y-%m-%d')},
{os.cpu_count()} cores ({cpu}), against the release `ferrotron serve` on
127.0.0.1 (SQLite), clients on the same machine; RSS is the server process's
VmRSS sampled every 50 ms (git's child processes not included); {ROUNDS} rounds where a figure is a median.
A healthcheck on the quiet server takes {r['health'] * 1000:.1f} ms (median of 10).

**Gzip bomb.** 4 concurrent `POST /git/small.git/git-upload-pack` with
`Content-Encoding: gzip`, each a {b['gz'] / 1024:.0f} KiB body that inflates to
300 MiB of zeros: status {', '.join(map(str, b['statuses']))}, median answer
{b['latency'] * 1000:.0f} ms; server RSS {mib(b['idle']):.1f} MiB before, peak
{mib(b['peak']):.1f} MiB during (VmHWM since start: {mib(b['hwm']):.1f} MiB).

**Idle sockets.** {IDLE:,} TCP connections opened one after another, then
one `GET /api/v2.0/healthcheck` on a new connection (client time-out 20 s).
"Slowloris": each connection sends a request line and then one header byte
every 2 s, never finishing its headers.

| server | connections | opening them took | healthcheck | server descriptors (before → with them) |
| --- | --- | --- | --- | --- |
| defaults (`--max-connections 1024`, `--idle-timeout 120`) | silent | {fmt_idle(r['idle_default'])} |
| `--idle-timeout {IDLE_TIMEOUT} --header-timeout {HEADER_TIMEOUT}` | silent | {fmt_idle(r['idle5'])} |
| `--idle-timeout {IDLE_TIMEOUT} --header-timeout {HEADER_TIMEOUT}` | slowloris | {fmt_idle(r['slow'])} |
| `--idle-timeout {IDLE_TIMEOUT}`, server's own RLIMIT_NOFILE 1024 | silent | {fmt_idle(r['idle_nofile'])} |

With `--idle-timeout {IDLE_TIMEOUT}`, {r['idle5']['closed']:,} of the {IDLE:,} silent sockets
had been closed by the server {2 * IDLE_TIMEOUT + 2} s after the last was opened;
the listening socket's accept queue holds {r['backlog']} connections, and the
kernel counted {r['overflows']} SYNs dropped on a full queue while they were opened
(each such client waits 1 s for its SYN's retry). The server with a
1024-descriptor limit logged {r['accept_warnings']} `accept:` warnings (EMFILE).
A follower of a running job's log that does not grow, on `--idle-timeout {IDLE_TIMEOUT}`:
{r['silent']}.

**Parallel clones.** 6 `git clone` at once of `http://ADDR/git/big.git`
(200 commits of random binary files, pack {r['repo']:.0f} MiB): wall time
{med(c['wall']):.2f} s (runs {', '.join(f'{x:.2f}' for x in c['wall'])}); server
RSS {mib(c['idle']):.1f} MiB idle, peak {mib(med(c['peak'])):.1f} MiB
(+{mib(med(c['peak']) - c['idle']):.1f} MiB, median of the rounds' peaks).

**Small writes behind large reads.** 40 stored results of ~60 KiB each
(30 data values of 2,000 characters); `wrk -t2 -c100 -d{READ_SECONDS}s` on
`GET /api/v2.0/results?testcases=t.big&limit=20` ({w['page'] / 2**20:.1f} MiB per answer) while
20 tiny results are posted, one started every 0.8 s (each on its own thread):

| what | figure |
| --- | --- |
| readers | {w['n']:,} answers, median {w['p50'] * 1000:.0f} ms, p95 {w['p95'] * 1000:.0f} ms, max {w['rmax'] * 1000:.0f} ms, {w['errors']} errors |
| tiny POST under that load | median {w['wmed'] * 1000:.0f} ms, max {w['wmax'] * 1000:.0f} ms |
| tiny POST on the quiet server | median {w['quiet'] * 1000:.1f} ms (ratio {w['wmed'] / w['quiet']:.1f}) |
| server RSS before / peak / 2 s after | {mib(w['before']):.1f} / {mib(w['peak']):.1f} / {mib(w['after']):.1f} MiB |

**Log followers.** `--max-log-followers 256`, a running job (a PUT job
record, a one-line `runner.log`): 256 followers opened one after another in
{f['took']:.2f} s (server descriptors then: {f['fds']}); the 257th got
**{f['extra']}**; after one follower disconnected, a new one got {f['again']}
{f['freed']:.2f} s later.
{end}"""
    write_section("hardening", section)


if __name__ == "__main__":
    main()
