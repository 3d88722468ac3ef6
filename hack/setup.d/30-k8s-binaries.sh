#!/usr/bin/env bash
# kube-apiserver, etcd and helm for the e2e tests, and the node components of
# the same release for the node tests, built once with Go and cached outside
# the repository (see hack/k8s-binaries.sh). The Kubernetes commands build in
# one `go build`, which compiles their shared packages once.
set -euo pipefail
exec bash "$(dirname "$0")/../k8s-binaries.sh" --node
