#!/usr/bin/env bash
# Debian packages the tests use: redis-server (distributed quotas) and
# etcd-server (fallback etcd for the test control plane).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/etcd ] || need+=(etcd-server)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The packaged services are not needed: tests start their own on loopback.
$SUDO systemctl disable --now redis-server etcd 2>/dev/null || true
