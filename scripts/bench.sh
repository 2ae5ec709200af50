#!/usr/bin/env bash
# `make bench`: every benchmark (VM job; results API under wrk; service;
# scheduler cost per decision; the full image; dashboard pages and search;
# reserve to a shell; the ready pool), figures into
# docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/bench.py
python3 scripts/bench_api.py
python3 scripts/bench_cache.py
python3 scripts/bench_service.py
python3 scripts/bench_sched.py
python3 scripts/bench_downloads.py
python3 scripts/bench_hardening.py
python3 scripts/bench_full_image.py
python3 scripts/bench_web.py
python3 scripts/bench_reserve.py
python3 scripts/bench_ready.py
