"""Fedora naming policy of a build's NVR, one sub-result per rule.

Called by the `python` directive of runtask.yml: the directive's keys other
than `file` and `callable` arrive as keyword arguments, and the ResultYAML
returned here is what the action exports.
"""

import json
import re

CHECKNAME = "nvr-policy"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
VERSION_RE = re.compile(r"^[A-Za-z0-9._+~^]+$")


def split_nvr(nvr):
    """name-version-release, split at the last two hyphens."""
    parts = nvr.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError("%r is not name-version-release" % nvr)
    return parts


def rules(nvr, dist_tags):
    """(sub-check, outcome, note) for each rule."""
    try:
        name, version, release = split_nvr(nvr)
    except ValueError as e:
        return [("nvr", "FAILED", str(e))]
    out = [("nvr", "PASSED", "%s / %s / %s" % (name, version, release))]
    out.append((
        "name",
        "PASSED" if NAME_RE.match(name) else "FAILED",
        "name %r %s" % (name, "is valid" if NAME_RE.match(name) else "has characters Fedora does not allow"),
    ))
    out.append((
        "version",
        "PASSED" if VERSION_RE.match(version) else "FAILED",
        "version %r" % version,
    ))
    tag = release.rsplit(".", 1)[-1] if "." in release else ""
    if tag in dist_tags:
        out.append(("disttag", "PASSED", "dist tag %s" % tag))
    else:
        out.append(("disttag", "NEEDS_INSPECTION",
                    "dist tag %r is not one of %s" % (tag, ", ".join(dist_tags))))
    return out


def yaml_str(value):
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value)


def run_check(nvr, arch, logfile, dist_tags=("fc40",)):
    lines = ["results:"]
    with open(logfile, "w", encoding="utf-8") as log:
        log.write("nvr-policy for %s on %s\n" % (nvr, arch))
        for sub, outcome, note in rules(nvr, list(dist_tags)):
            log.write("%-8s %-16s %s\n" % (sub, outcome, note))
            print("%s.%s: %s (%s)" % (CHECKNAME, sub, outcome, note))
            lines += [
                "  - item: " + yaml_str(nvr),
                "    type: koji_build",
                "    checkname: " + yaml_str("%s.%s" % (CHECKNAME, sub)),
                "    outcome: " + outcome,
                "    note: " + yaml_str(note),
                "    arch: " + yaml_str(arch),
            ]
    return "\n".join(lines) + "\n"
