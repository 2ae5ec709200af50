#!/usr/bin/env python3
"""Getting a task into the guest: from Ferrotron's git cache vs. from its origin.

The repository has 1,000 commits. From the cache: the pre-boot step
(`ferrotron cache sync` of the repository: one ls-remote, nothing to fetch)
plus the in-guest `git clone` + `checkout` of the recorded commit through the
SSH tunnel, timed by the agent (the action's duration). From the origin:
`git clone` of the same repository from a `git daemon` on 127.0.0.1, which
is what each job would pay without a cache (a guest on restrict=on cannot
reach an origin at all, so the host would clone and upload). A loopback
origin has no network latency: a real origin is slower, never faster.
Writes the medians to docs/performance.md between the bench:cache markers.
"""
import os, re, signal, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
FERROTRON = Path(os.environ.get("FERROTRON_BIN", ROOT / "target/release/ferrotron"))
ACCEL = os.environ.get("FERROTRON_ACCEL", "tcg")
COMMITS = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_origin(path):
    """1,000 commits, each changing a file, via git fast-import."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    lines = []
    for i in range(COMMITS):
        data = f"line {i}\n" * 20
        msg = f"commit {i}\n"
        lines.append("commit refs/heads/main\n")
        lines.append(f"committer Bench <bench@ferrotron> {1700000000 + i} +0000\n")
        lines.append(f"data {len(msg)}\n{msg}")
        lines.append(f"M 644 inline file{i % 50}.txt\ndata {len(data)}\n{data}\n")
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input="".join(lines).encode(), check=True)


def ferrotron(env, *args, check=True):
    r = subprocess.run([str(FERROTRON), *args], env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"bench: ferrotron {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def main():
    cache_runs, sync_runs, origin_runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-cache-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        origin = tmp / "origin.git"
        make_origin(origin)
        env = {**os.environ, "FERROTRON_DATA_DIR": str(tmp / "data"), "FERROTRON_ACCEL": ACCEL}
        ferrotron(env, "cache", "add", str(origin), "--path", "tasks")
        port = free_port()
        daemon = subprocess.Popen(["git", "daemon", "--export-all", f"--base-path={tmp}", "--listen=127.0.0.1",
                                   f"--port={port}", "--reuseaddr", str(tmp)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("bench: git daemon did not listen")
                    time.sleep(0.05)
            for i in range(RUNS + 1):
                t0 = time.monotonic()
                ferrotron(env, "cache", "sync", "tasks")
                sync = time.monotonic() - t0
                r = ferrotron(env, "run", "--libvirt", "--git-repo", "tasks", "--git-ref", "main",
                              "-i", "tasks", "-t", "git_commit", str(ROOT / "tests/fixtures/git-clone/runtask.yml"))
                m = re.search(r"action clone from the cache: PASSED \(exit 0, ([0-9.]+) s\)", r.stderr)
                if not m:
                    raise SystemExit(f"bench: no action time in:\n{r.stderr}")
                dest = tmp / f"clone{i}"
                t0 = time.monotonic()
                subprocess.run(["git", "clone", "-q", f"git://127.0.0.1:{port}/origin.git", str(dest)], check=True)
                subprocess.run(["git", "-C", str(dest), "checkout", "-q", "main"], check=True)
                took = time.monotonic() - t0
                subprocess.run(["rm", "-rf", str(dest)], check=True)
                if i == 0:
                    continue  # warm-up
                sync_runs.append(sync)
                cache_runs.append(float(m.group(1)))
                origin_runs.append(took)
                print(f"bench: cache run {i}/{RUNS}: sync {sync:.2f} s, guest clone {cache_runs[-1]:.2f} s; "
                      f"origin clone {took:.2f} s", file=sys.stderr)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait()
    ms, mc, mo = (statistics.median(x) for x in (sync_runs, cache_runs, origin_runs))
    print(f"bench: median pre-boot sync {ms:.2f} s + guest clone {mc:.2f} s = {ms + mc:.2f} s; origin clone {mo:.2f} s")
    write_report(sync_runs, cache_runs, origin_runs, ms, mc, mo)


def write_report(sync_runs, cache_runs, origin_runs, ms, mc, mo):
    begin, end = markers("cache")
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    section = f"""{begin}
## A task into the guest: git cache vs. origin ({COMMITS} commits)

Measured by `make bench` (scripts/bench_cache.py) on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores,
acceleration `{ACCEL}`, {len(cache_runs)} runs after one warm-up.

| what | median | runs (s) |
| --- | --- | --- |
| pre-boot `cache sync` of the repository (ls-remote, nothing to fetch) | {ms:.2f} s | {fmt(sync_runs)} |
| in-guest `git clone` + `checkout` from the cache through the SSH tunnel | {mc:.2f} s | {fmt(cache_runs)} |
| host `git clone` + `checkout` from the origin (`git daemon` on 127.0.0.1) | {mo:.2f} s | {fmt(origin_runs)} |

Per job, the cache costs the host {ms:.2f} s (one ls-remote, nothing
fetched) where a clone from the origin costs {mo:.2f} s even from loopback;
a real origin adds the network transfer of the whole history for every job,
and the job fails when the origin is down. The guest's own clone through
the tunnel ({mc:.2f} s) runs git on an emulated CPU (TCG); it is not
comparable with the host's clone, and a guest cannot reach an origin at all
(`restrict=on`), so without the cache the host would have to clone and
upload the tree instead.
{end}"""
    write_section("cache", section)


if __name__ == "__main__":
    main()
