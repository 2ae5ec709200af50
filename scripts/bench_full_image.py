#!/usr/bin/env python3
"""The full `debian` image (images/debian.yaml) against `tiny`, in one run.

For each image: a raw QEMU boot of its kernel, initramfs and a fresh
overlay until the SSH banner answers (the baseline), and the wall time of
`ferrotron run --libvirt` of the one-action trivial task with the default
warm start. For `debian` also: a job that installs a package the image
lacks (GNU hello) through the job's package proxy from a partial Debian
mirror on loopback (tests/fixtures/debian-mirror), first with an empty
package cache, then from the host's cache. Runs alternate. Medians and
ratios go to docs/performance.md.
"""
import json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from bench import ACCEL, FERROTRON, IMAGES, ROOT, baseline_once, newest_image
from benchdoc import markers, write_section

RUNS = int(os.environ.get("BENCH_FULL_RUNS", "5"))
AGENT = ROOT / "target/x86_64-unknown-linux-gnu/agent/ferrotron-agent"


def job(data_dir, image, formula, extra=()):
    env = {**os.environ, "FERROTRON_DATA_DIR": str(data_dir), "FERROTRON_ACCEL": ACCEL,
           "FERROTRON_TEMPLATES_DIR": str(data_dir.parent / "templates"), "FERROTRON_IMAGES_DIR": str(IMAGES)}
    if AGENT.is_file():
        env["FERROTRON_AGENT"] = str(AGENT)
    t0 = time.monotonic()
    r = subprocess.run([str(FERROTRON), *extra, "run", "--libvirt", "--image", image, "-i", "bench-1.0-1",
                        "-t", "koji_build", str(ROOT / formula)], env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: ferrotron run --image {image} {formula} failed ({r.returncode}): {r.stderr}")
    return took, r.stderr


def start_mirror(root):
    """The partial mirror with hello's .deb at its archive path."""
    show = subprocess.run(["apt-cache", "show", "--no-all-versions", "hello"], capture_output=True,
                          text=True, check=True).stdout
    filename = re.search(r"^Filename: (.+)$", show, re.M).group(1)
    dl = root / "dl"
    dl.mkdir(parents=True)
    subprocess.run(["apt-get", "download", "-q", "hello"], cwd=dl, check=True, capture_output=True)
    target = root / "debian" / filename
    target.parent.mkdir(parents=True)
    next(dl.iterdir()).rename(target)
    p = subprocess.Popen([sys.executable, str(ROOT / "tests/fixtures/debian-mirror/mirror.py"), "--root",
                          str(root), "--port", "0"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    base = p.stdout.readline().strip().removeprefix("listening on ")
    return p, base


def main():
    tiny_dir, tiny = newest_image("tiny")
    deb_dir, deb = newest_image("debian")
    rows = {k: [] for k in ("tiny_base", "tiny_job", "deb_base", "deb_job", "install_cold", "install_cached")}
    with tempfile.TemporaryDirectory(prefix="ferrotron-bench-full-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o755)
        mirror, base = start_mirror(tmp / "mirror")
        flags = ["--package-mirror", f"http://deb.debian.org/debian={base}/debian"]
        try:
            data = tmp / "data"
            # Warm-ups: page cache, and each image's warm-start template.
            baseline_once(tiny_dir, tiny, tmp)
            baseline_once(deb_dir, deb, tmp)
            job(data, "tiny", "tests/fixtures/trivial/runtask.yml")
            job(data, "debian", "tests/fixtures/trivial/runtask.yml")
            for i in range(RUNS):
                rows["tiny_base"].append(baseline_once(tiny_dir, tiny, tmp))
                rows["deb_base"].append(baseline_once(deb_dir, deb, tmp))
                rows["tiny_job"].append(job(data, "tiny", "tests/fixtures/trivial/runtask.yml")[0])
                rows["deb_job"].append(job(data, "debian", "tests/fixtures/trivial/runtask.yml")[0])
                # An empty package cache, then the same job served from it.
                fresh = tmp / f"install-{i}"
                took, err = job(fresh, "debian", "tests/fixtures/install-packages/runtask.yml", flags)
                assert "0 from the host's cache" in err, err
                rows["install_cold"].append(took)
                took, err = job(fresh, "debian", "tests/fixtures/install-packages/runtask.yml", flags)
                assert "1 from the host's cache" in err, err
                rows["install_cached"].append(took)
                print("bench: full image run %d/%d: %s" % (i + 1, RUNS, ", ".join(
                    f"{k} {v[-1]:.2f} s" for k, v in rows.items())), file=sys.stderr)
        finally:
            os.killpg(mirror.pid, 9)
            mirror.wait()
    med = {k: statistics.median(v) for k, v in rows.items()}
    for k, v in med.items():
        print(f"bench: median {k} {v:.2f} s")
    write_report(tiny, deb, deb_dir, rows, med)


def write_report(tiny, deb, deb_dir, rows, med):
    begin, end = markers("full-image")
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    disk = deb_dir / deb["boot"]["disk"]
    size = disk.stat().st_size / 2**20
    section = f"""{begin}
## The full `debian` image (mmdebstrap) vs. `tiny`

Measured by `make bench` (scripts/bench_full_image.py) on {time.strftime('%Y-%m-%d')}, acceleration `{ACCEL}`,
`tiny:{tiny['version']}` ({tiny['boot']['memory_mib']} MiB) and `debian:{deb['version']}`
({deb['boot']['memory_mib']} MiB, {len(deb['packages'])} packages installed, qcow2 {size:.0f} MiB),
{len(rows['tiny_job'])} runs each, alternating. The install jobs fetch GNU hello through the job's
package proxy from a partial Debian mirror on loopback; "cached" is the same job again on the host.

| what | median | runs (s) |
| --- | --- | --- |
| raw QEMU boot to the SSH banner, `tiny` | {med['tiny_base']:.2f} s | {fmt(rows['tiny_base'])} |
| raw QEMU boot to the SSH banner, `debian` | {med['deb_base']:.2f} s | {fmt(rows['deb_base'])} |
| trivial job, warm start, `tiny` | {med['tiny_job']:.2f} s | {fmt(rows['tiny_job'])} |
| trivial job, warm start, `debian` | {med['deb_job']:.2f} s | {fmt(rows['deb_job'])} |
| job installing one package, empty package cache | {med['install_cold']:.2f} s | {fmt(rows['install_cold'])} |
| the same, package from the host's cache | {med['install_cached']:.2f} s | {fmt(rows['install_cached'])} |

A warm `debian` job costs {med['deb_job'] / med['tiny_job']:.2f}× a warm `tiny` job and
{med['deb_job'] / med['deb_base']:.2f}× a raw boot of its own image; installing one package adds
{med['install_cached'] - med['deb_job']:.2f} s (dpkg under TCG dominates; the cache saves
{med['install_cold'] - med['install_cached']:.2f} s on a loopback mirror).
{end}"""
    write_section("full-image", section)


if __name__ == "__main__":
    main()
