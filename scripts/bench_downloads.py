#!/usr/bin/env python3
"""A `koji` download of a build of 20 RPMs (bigpkg-2.0-1.fc41),
cold (empty download cache) and from the host's download cache, through
`ferrotron run` (the local runner: the download is the host's either way)
against the Koji stand-in (tests/fixtures/fedora-standins, on 127.0.0.1: no
network latency, so a real hub and mirror are slower cold, never faster).
Each run is the whole command; the difference is the download. Writes the
medians to docs/performance.md between the bench:downloads markers."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
FERROTRON = Path(os.environ.get("FERROTRON_BIN", ROOT / "target/release/ferrotron"))
STANDINS = ROOT / "tests/fixtures/fedora-standins"
FORMULA = """name: bench-koji
desc: downloads a build of 20 RPMs
maintainer: bench
input:
  args: [koji_build, arch]
actions:
  - name: download
    koji:
      action: download
      koji_build: ${koji_build}
      arch: ${arch}
      target_dir: ${workdir}/rpms
    export: got
  - name: count
    shell:
      - ls ${workdir}/rpms | wc -l
"""


def file_requests(base):
    with urllib.request.urlopen(f"{base}/_standin/requests") as r:
        paths = json.load(r)["paths"]
    return sum(n for p, n in paths.items() if p.startswith("/kojifiles/"))


def main():
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-dl-") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, STANDINS / "build_rpms.py", tmp / "content"], check=True,
                       capture_output=True)
        server = subprocess.Popen([sys.executable, STANDINS / "standin_server.py", "--data",
                                   tmp / "content", "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            base = server.stdout.readline().strip().removeprefix("listening on ")
            task = tmp / "task"
            task.mkdir()
            (task / "runtask.yml").write_text(FORMULA)
            data = tmp / "data"
            env = {**os.environ, "FERROTRON_DATA_DIR": str(data)}
            # The local runner needs the guest agent `make` builds.
            agents = sorted(ROOT.glob("target/*/agent/ferrotron-agent"))
            if "FERROTRON_AGENT" not in env and agents:
                env["FERROTRON_AGENT"] = str(agents[0])
            cmd = [str(FERROTRON), "--koji-url", f"{base}/kojihub",
                   "--koji-packages-url", f"{base}/kojifiles/packages",
                   "run", "-i", "bigpkg-2.0-1.fc41", "-t", "koji_build", "-a", "x86_64",
                   str(task / "runtask.yml")]

            def once(cold):
                if cold:
                    shutil.rmtree(data / "downloads", ignore_errors=True)
                before = file_requests(base)
                t = time.monotonic()
                r = subprocess.run(cmd, env=env, capture_output=True, text=True)
                took = time.monotonic() - t
                if r.returncode != 0:
                    raise SystemExit(f"bench: {' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
                return took, file_requests(base) - before

            once(True)  # warm the binary and the page cache
            cold = [once(True) for _ in range(RUNS)]
            warm = [once(False) for _ in range(RUNS)]
        finally:
            server.kill()
            server.wait()
    cold_s = statistics.median(t for t, _ in cold)
    warm_s = statistics.median(t for t, _ in warm)
    begin, end = markers("downloads")
    section = f"""{begin}
## Downloads: a Koji build of 20 RPMs, cold and from the cache

`python3 scripts/bench_downloads.py` (part of `make bench`), {RUNS} runs each,
medians of the whole `ferrotron run` (local runner) of a task whose `koji`
action downloads `bigpkg-2.0-1.fc41` for x86_64 (a build of 20 RPMs; 19 once its
debuginfo package is left out, as the directive does by default) from the
Koji stand-in on 127.0.0.1, then counts the files:

| | median | file requests to the stand-in per run |
| --- | --- | --- |
| cold (download cache emptied first) | {cold_s:.2f} s | {statistics.median(n for _, n in cold):.0f} |
| from the host's download cache | {warm_s:.2f} s | {statistics.median(n for _, n in warm):.0f} |

The cache saves {cold_s - warm_s:.2f} s per job here ({cold_s / warm_s:.2f}x); a real
hub and mirror add their latency to every cold file, never to a cached one.
{end}"""
    write_section("downloads", section)


if __name__ == "__main__":
    main()
