#!/usr/bin/env bash
# The stand-ins for Koji, Bodhi and dist-git (tests/fixtures/fedora-standins)
# checked against the REAL clients from PyPI (koji, bodhi-client) in a venv
# this script creates under target/. Called by scripts/test.sh; a missing
# client or rpmbuild fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="$PWD/target/standins-venv"
say() { printf 'standins: %s\n' "$*" >&2; }

if ! "$VENV/bin/python" -c 'import koji, bodhi.client.bindings, pytest' >/dev/null 2>&1; then
    say "installing koji and bodhi-client into $VENV"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    pip() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@"; }
    pip "pytest>=8,<10" "requests>=2.31,<3" defusedxml python-dateutil six authlib click munch
    # Their Kerberos dependencies need krb5 headers to build; anonymous
    # reads never use Kerberos.
    pip --no-deps "koji>=1.35,<2" "bodhi-client>=8" requests-kerberos pyspnego
fi
STANDINS_REQUIRE=1 PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/fixtures/fedora-standins/test_standins.py
