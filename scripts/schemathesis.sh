#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI, in a venv this script
# creates under target/) generates requests from the OpenAPI document the
# server serves, and fails on any 5xx. Bounded: EXAMPLES per operation.
# Called by scripts/test.sh after the Rust suites; runs on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."

FERROTRON_BIN="${FERROTRON_BIN:-$PWD/target/release/ferrotron}"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-20}"
VENV="$PWD/target/schemathesis-venv"
ST_VERSION=">=4.32,<5"

say() { printf 'schemathesis: %s\n' "$*" >&2; }

[ -x "$FERROTRON_BIN" ] || { say "$FERROTRON_BIN missing: run make build"; exit 1; }
if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
    say "installing schemathesis into $VENV"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis$ST_VERSION"
fi

DATA=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

export FERROTRON_DATA_DIR="$DATA"
unset FERROTRON_DATABASE_URL
TOKEN=$("$FERROTRON_BIN" token create schemathesis --role operator 2>/dev/null)
"$FERROTRON_BIN" serve --listen 127.0.0.1:0 2>"$DATA/serve.log" &
SERVER_PID=$!
URL=
for _ in $(seq 1 300); do
    URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$DATA/serve.log" | head -1)
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/serve.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { say "server did not start"; cat "$DATA/serve.log" >&2; exit 1; }

say "$URL/api/openapi.json, $EXAMPLES example(s) per operation, no 5xx allowed"
status=0
"$VENV/bin/schemathesis" run "$URL/api/openapi.json" \
    --checks not_a_server_error \
    --max-examples "$EXAMPLES" \
    --seed 1 \
    -H "Authorization: Bearer $TOKEN" || status=$?
if grep -q "request failed" "$DATA/serve.log"; then
    say "the server logged internal errors:"
    grep "request failed" "$DATA/serve.log" | head -20 >&2
    status=1
fi
exit "$status"
