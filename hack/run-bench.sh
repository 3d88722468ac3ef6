#!/usr/bin/env bash
# Runs every benchmark under bench/ in order; each prints its own table.
# A benchmark that misses its goal exits non-zero: the others still run, and
# this script fails at the end naming it.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
for b in bench/bench_*.py; do
  [ -e "$b" ] || continue
  echo "== $b"
  .venv/bin/python "$b" || failed+=("$b")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmarks that missed their goal or failed: ${failed[*]}" >&2
  exit 1
fi
