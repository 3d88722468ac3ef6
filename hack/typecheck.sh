#!/usr/bin/env bash
# mypy over the lockgate.* packages as they are imported.
# The source folders (api/, operator/, ...) are mapped to lockgate.* by
# setuptools' package-dir, which mypy cannot follow: run over the folders
# themselves, every `from lockgate...` import is missing and silently Any.
# So check a throwaway tree of symlinks named like the packages instead.
# Usage: hack/typecheck.sh [mypy flags] [folder...]   (default: all five)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
flags=() folders=()
for arg in "$@"; do
  if [[ $arg == -* ]]; then flags+=("$arg"); else folders+=("${arg%/}"); fi
done
((${#folders[@]})) || folders=(api common operator proxy cli)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/lockgate"
for p in api common operator proxy cli; do ln -s "$root/$p" "$tree/lockgate/$p"; done
packages=()
for f in "${folders[@]}"; do packages+=(-p "lockgate.${f//\//.}"); done
cd "$tree"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" "${flags[@]}" "${packages[@]}"
