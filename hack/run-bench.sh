#!/usr/bin/env bash
# Runs every benchmark under bench/ in order; each prints its own table.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bench/bench_*.py; do
  [ -e "$b" ] || continue
  echo "== $b"
  .venv/bin/python "$b"
done
