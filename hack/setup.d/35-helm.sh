#!/usr/bin/env bash
# Builds helm v3 from the Go module proxy into the user's cache, once per
# version. Same place as hack/k8s-binaries.sh uses, so helm is built only once;
# tests find it there, or through $LOCKGATE_HELM, or on PATH.
set -euo pipefail
HELM_VERSION="${LOCKGATE_HELM_VERSION:-v3.21.4}"
dest="${LOCKGATE_CACHE:-$HOME/.cache/lockgate}/helm/$HELM_VERSION/bin"
[ -x "$dest/helm" ] && exit 0

command -v go >/dev/null || { echo "35-helm: go is needed to build helm" >&2; exit 1; }
pkg=helm.sh/helm/v3
# helm reports the Kubernetes version of its client-go as the default for
# `helm template`; upstream's Makefile sets it with -X, so do the same.
gomod=$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$pkg@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
minor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n1)
ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION"
if [ -n "$minor" ]; then
  for p in pkg/lint/rules pkg/chartutil; do
    ldflags="$ldflags -X $pkg/$p.k8sVersionMajor=1 -X $pkg/$p.k8sVersionMinor=$minor"
  done
fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "$dest.building.XXXXXX")  # private: another script may build here at once
trap 'rm -rf "$tmp"' EXIT
# Outside any module, so a go.mod of the project plays no part.
(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod GOBIN="$tmp" CGO_ENABLED=0 \
  go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION")
mkdir -p "$dest" && mv "$tmp/helm" "$dest/helm"
"$dest/helm" version --short
