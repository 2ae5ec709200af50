#!/usr/bin/env bash
# Every test: unit tests of each crate and the end-to-end suites that boot
# real VMs through libvirt. Called by `make test` after setup and build.
set -euo pipefail
cd "$(dirname "$0")/.."

export FERROTRON_BIN="$PWD/target/release/ferrotron"
[ -x "$FERROTRON_BIN" ] || { echo "test: $FERROTRON_BIN missing: run make build" >&2; exit 1; }

# The API suite runs against PostgreSQL too (scripts/setup-host.sh starts it
# and creates this role); each test creates and drops its own database.
export FERROTRON_TEST_PG_URL="${FERROTRON_TEST_PG_URL:-postgres://ferrotron:ferrotron@127.0.0.1:5432/postgres}"

leftovers() {
    virsh -c qemu:///system list --all --name 2>/dev/null | grep '^ferrotron-' || true
}
before=$(leftovers)
[ -z "$before" ] || echo "test: note: domains present before the run: $before" >&2

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --workspace --no-fail-fast || status=$?
else
    cargo test --release --workspace -- --test-threads="${VM_TEST_THREADS:-2}" || status=$?
fi

# The API's OpenAPI document, fuzzed by schemathesis (no 5xx allowed).
./scripts/schemathesis.sh || status=$?

# The Fedora stand-ins the download tests use, against the real clients.
./scripts/standins-check.sh || status=$?

after=$(leftovers)
if [ -n "$after" ] && [ "$after" != "$before" ]; then
    echo "test: FAIL: domains left behind: $after" >&2
    status=1
fi
exit "$status"
