#!/usr/bin/env bash
# `make bench`: every benchmark, one run each, figures into docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/bench.py
python3 scripts/bench_api.py
python3 scripts/bench_cache.py
