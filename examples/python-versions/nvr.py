"""Splits a Koji build's NVR into its parts: the dict is exported and the
next actions read `${nvr.name}`, or get the whole dict as `nvr: ${nvr}`."""


def split(nvr):
    name, version, release = nvr.rsplit("-", 2)
    dist = release.rsplit(".", 1)[1] if "." in release else ""
    return {"name": name, "version": version, "release": release, "dist": dist}
