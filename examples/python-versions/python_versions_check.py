"""The two_three check, written the libtaskotron way: `from libtaskotron
import check`, a CheckDetail whose outcome only gets worse, a task-relative
data file, and a log in the artifacts named by its absolute path (reported
relative to the artifacts folder, as libtaskotron did)."""
import os

from libtaskotron import check


def known_python2_only():
    # Relative to the task folder, as under libtaskotron.
    with open("data/python2-only.txt", encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def run(koji_build, nvr, artifactsdir):
    detail = check.CheckDetail(
        item=koji_build,
        report_type=check.ReportType.KOJI_BUILD,
        checkname="python-versions.two_three",
    )
    detail.update_outcome("PASSED")
    name = nvr["name"]
    detail.store("package %s, version %s, dist %s" % (name, nvr["version"], nvr["dist"]))
    if name in known_python2_only():
        detail.update_outcome("FAILED")
        detail.store("%s needs Python 2 and Python 3 at once" % name)
    detail.update_outcome("PASSED")  # a better outcome never replaces a worse one
    log = os.path.join(artifactsdir, "two_three.log")
    with open(log, "w", encoding="utf-8") as f:
        f.write("\n".join(detail.output) + "\n")
    detail.artifact = log
    detail.note = "mixes Python 2 and 3" if detail.outcome == "FAILED" else "uses one Python"
    detail.keyvals = {"python_versions": ["3"] if detail.outcome != "FAILED" else ["2", "3"]}
    return check.export_YAML(detail)
