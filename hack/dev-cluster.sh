#!/usr/bin/env bash
# A real Kubernetes API (etcd + kube-apiserver on 127.0.0.1, no Docker) in the
# foreground, with the CRDs from crds/ installed. Prints the KUBECONFIG to
# export; Ctrl-C stops it and discards its data. No controllers or kubelet
# run: objects are stored and served, Pods never start.
set -euo pipefail
cd "$(dirname "$0")/.."
kubeconfig=${LOCKGATE_DEV_KUBECONFIG:-${LOCKGATE_CACHE:-$HOME/.cache/lockgate}/dev-cluster/kubeconfig}
args=(--kubeconfig "$kubeconfig")
if compgen -G "crds/*.yaml" >/dev/null; then args+=(--crds crds); fi
exec .venv/bin/python -m tests.kube.controlplane "${args[@]}"
