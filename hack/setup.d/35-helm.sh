#!/usr/bin/env bash
# Builds helm from the Go module proxy into the user's cache, once per version.
# Tests find it there (or through $LOCKGATE_HELM, or on PATH).
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.17.3}"
# The Kubernetes minor helm reports by default (helm's own Makefile derives it from client-go).
HELM_K8S_MINOR="${HELM_K8S_MINOR:-32}"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/lockgate/helm-bin"
stamp="$dest/.version"

if [ -x "$dest/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$HELM_VERSION" ]; then
  exit 0
fi
command -v go >/dev/null || { echo "35-helm: go is needed to build helm" >&2; exit 1; }
mkdir -p "$dest"
pkg=helm.sh/helm/v3
ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION"
for p in pkg/lint/rules pkg/chartutil; do
  ldflags="$ldflags -X $pkg/$p.k8sVersionMajor=1 -X $pkg/$p.k8sVersionMinor=$HELM_K8S_MINOR"
done
# Outside any module, so the project's go.mod (if one appears) plays no part.
(cd /tmp && GOBIN="$dest" CGO_ENABLED=0 GOFLAGS=-mod=mod \
  go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION")
echo "$HELM_VERSION" > "$stamp"
"$dest/helm" version --short
