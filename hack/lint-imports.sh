#!/usr/bin/env bash
# The layering contracts of pyproject.toml ([tool.importlinter]) over the
# lockgate.* packages, through the same tree of symlinks as hack/typecheck.sh
# (setuptools' package-dir mapping is invisible to an import graph otherwise).
# Usage: hack/lint-imports.sh [ROOT]   ROOT: a checkout to check (default: this one)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "${1:-$here}" && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/lockgate"
for p in api common operator proxy cli; do ln -s "$root/$p" "$tree/lockgate/$p"; done
cd "$tree"
PYTHONPATH="$tree" "$here/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml"
