#!/usr/bin/env bash
# Debian packages for the single-node cluster of the node tests
# (tests/kube/node.py): a container runtime (containerd + runc), the CNI
# plugins, image builders (buildah, debootstrap) and the netfilter tools
# kubelet and kube-proxy call.
set -euo pipefail
need=()
for pkg in containerd runc containernetworking-plugins buildah debootstrap conntrack iptables; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The harness runs its own containerd with its own config: not the packaged one.
$SUDO systemctl disable --now containerd 2>/dev/null || true
