#!/usr/bin/env bash
# Base images for the node tests (pause, Debian + Python, Redis), built once
# with buildah and debootstrap; see hack/node-images.sh. They need root, as
# the node itself does: without it the node tests skip (fail under CI=true).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "38-node-images: not root, so no node images (the node tests need root)" >&2
  exit 0
fi
exec bash "$(dirname "$0")/../node-images.sh" base
