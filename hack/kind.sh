#!/usr/bin/env bash
# `make kind`: a local cluster with Lockgate serving a stand-in model (docs/kind.md).
# Needs Docker, kind, kubectl and helm. Safe to run again: it reuses the cluster,
# loads the freshly built image and upgrades the release.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-lockgate:dev}
cluster=${KIND_CLUSTER:-lockgate}
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "make kind: $tool is needed (see docs/kind.md)" >&2; exit 1; }
done
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --config kind-config.yaml
fi
kind load docker-image "$image" --name "$cluster"
kubectl config use-context "kind-$cluster"
# The operator gets a Role in the namespace it watches: that namespace comes first.
kubectl create namespace ai-gateway --dry-run=client -o yaml | kubectl apply -f -
helm upgrade --install lockgate charts/lockgate --namespace lockgate-system --create-namespace \
  --values deploy/kind/values.yaml --wait --timeout 5m
kubectl apply -k examples/in-cluster/
kubectl -n ai-gateway rollout status deployment/dev-upstream --timeout 2m
kubectl -n ai-gateway wait --for=condition=Ready --timeout 2m apikey/demo modelprovider/dev-upstream route/openai
echo
echo "Lockgate answers on http://127.0.0.1:8080 (docs/kind.md, step 5):"
echo "  export LOCKGATE_KEY=\$(kubectl -n ai-gateway get secret demo-key -o jsonpath='{.data.api-key}' | base64 -d)"
