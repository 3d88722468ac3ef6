#!/usr/bin/env bash
# kube-apiserver, etcd and helm for the e2e tests, built once with Go and
# cached outside the repository (see hack/k8s-binaries.sh).
set -euo pipefail
exec bash "$(dirname "$0")/../k8s-binaries.sh"
