#!/usr/bin/env bash
# Builds CoreDNS from the Go module proxy for the node tests: the cluster DNS
# of the test node (Service names such as <service>.<namespace>.svc).
#
# Output: ${LOCKGATE_CACHE:-$HOME/.cache/lockgate}/coredns/<version>/bin/coredns;
#         a present binary is kept.
# Usage: hack/coredns-binaries.sh [--print-env]
set -euo pipefail

VERSION=${LOCKGATE_COREDNS_VERSION:-v1.12.4}
CACHE=${LOCKGATE_CACHE:-$HOME/.cache/lockgate}
DIR=$CACHE/coredns/$VERSION
log() { echo "coredns-binaries: $*" >&2; }

if [ ! -x "$DIR/bin/coredns" ]; then
  command -v go >/dev/null || { log "go is not installed (https://go.dev/dl/)"; exit 3; }
  mkdir -p "$DIR"
  exec 9>"$DIR/.build.lock"
  flock 9
  if [ ! -x "$DIR/bin/coredns" ]; then
    tmp=$(mktemp -d "$DIR/bin.partial.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    start=$SECONDS
    log "building coredns $VERSION (a few minutes the first time)"
    # Outside any module, so a go.mod of the project plays no part.
    (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod GOBIN="$tmp" CGO_ENABLED=0 \
      go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$VERSION") >&2
    mkdir -p "$DIR/bin" && mv "$tmp/coredns" "$DIR/bin/coredns"
    log "built coredns $VERSION in $((SECONDS - start))s"
  fi
fi

if [ "${1:-}" = --print-env ]; then
  echo "LOCKGATE_COREDNS_VERSION=$VERSION"
  echo "LOCKGATE_COREDNS=$DIR/bin/coredns"
fi
