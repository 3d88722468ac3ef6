#!/usr/bin/env bash
# containerd 2 and CoreDNS for the node tests, built once with Go and cached
# outside the repository (hack/containerd-binaries.sh, hack/coredns-binaries.sh).
# kubelet and the other node components come with hack/setup.d/30-k8s-binaries.sh.
set -euo pipefail
here="$(dirname "$0")/.."
bash "$here/containerd-binaries.sh"
bash "$here/coredns-binaries.sh"
