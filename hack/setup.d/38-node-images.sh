#!/usr/bin/env bash
# Base images for the node tests (pause, Debian + Python, Redis), built once
# with buildah and debootstrap; see hack/node-images.sh.
set -euo pipefail
exec bash "$(dirname "$0")/../node-images.sh" base
