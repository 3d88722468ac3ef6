#!/usr/bin/env bash
# CoreDNS for the cluster DNS of the node tests, built once with Go and cached
# outside the repository (see hack/coredns-binaries.sh).
set -euo pipefail
exec bash "$(dirname "$0")/../coredns-binaries.sh"
