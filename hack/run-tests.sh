#!/usr/bin/env bash
# Runs every test. pytest exits 5 when it collected nothing: that is a failure
# here, since the suite must never silently run no test.
set -uo pipefail
cd "$(dirname "$0")/.."
# Types first: a type error is a failing test too (see hack/typecheck.sh).
make --no-print-directory lint || exit 1
.venv/bin/pytest -q -p no:cacheprovider "$@" tests
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
