#!/usr/bin/env bash
# containerd 2 for the node tests, built once with Go and cached outside the
# repository (see hack/containerd-binaries.sh). kubelet and the other node
# components come with hack/setup.d/30-k8s-binaries.sh.
set -euo pipefail
exec bash "$(dirname "$0")/../containerd-binaries.sh"
