#!/usr/bin/env bash
# Container images for the node tests, built without Docker or a registry:
# buildah (chroot isolation) and debootstrap, saved as OCI archives that the
# test node imports into containerd. Cached outside the repository:
#   ${LOCKGATE_CACHE:-$HOME/.cache/lockgate}/node-images/
#     pause-<v>.tar    registry.k8s.io/pause:3.10, pause.c of the Kubernetes release, static
#     base-<v>.tar     localhost/lockgate-base:<v>, Debian bookworm + Python 3.11
#     redis-<v>.tar    localhost/lockgate-redis:<v>, the base + Debian's redis-server
#     lockgate-<h>.tar localhost/lockgate:<h>, the project's Dockerfile on the base;
#                      <h> hashes the Dockerfile, the sources and the base
#
# Usage: hack/node-images.sh base        pause, base and redis (idempotent)
#        hack/node-images.sh project     also the project image; prints
#                                        NAME=archive lines on stdout
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${LOCKGATE_CACHE:-$HOME/.cache/lockgate}
DIR=$CACHE/node-images
# Bump when the recipe of an image changes.
BASE_VERSION=bookworm-1
REDIS_VERSION=bookworm-3
K8S_VERSION=${LOCKGATE_K8S_VERSION:-v1.33.4}
MIRROR=${LOCKGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PAUSE_REF=registry.k8s.io/pause:3.10  # kubelet 1.33's default sandbox image
BASE_REF=localhost/lockgate-base:$BASE_VERSION
REDIS_REF=localhost/lockgate-redis:$REDIS_VERSION

log() { echo "node-images: $*" >&2; }
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9

# buildah's own storage, private to these builds.
B=(buildah --storage-driver overlay --root "$DIR/storage" --runroot "$DIR/run")
export BUILDAH_ISOLATION=chroot

# Runs a build step and moves its archive into place only when it succeeded.
build() {
  local archive=$1; shift
  [ -s "$archive" ] && return 0
  local start=$SECONDS
  log "building $(basename "$archive")"
  "$@"
  log "built $(basename "$archive") in $((SECONDS - start))s"
}

push() {  # push <ref> <archive>: an OCI archive that names the image <ref>
  rm -f "$2.partial"
  "${B[@]}" push -q "$1" "oci-archive:$2.partial:$1" >&2
  mv "$2.partial" "$2"
}

pause_image() {
  local work; work=$(mktemp -d)
  local src
  src=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c
  [ -f "$src" ] || (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@$K8S_VERSION")
  cc -Os -Wall -Werror -static -DVERSION="v3.10-lockgate" -o "$work/pause" "$src"
  local c; c=$("${B[@]}" from scratch)
  "${B[@]}" copy -q "$c" "$work/pause" /pause
  "${B[@]}" config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$c"
  "${B[@]}" commit -q --rm "$c" "$PAUSE_REF" >/dev/null
  rm -rf "$work"
  push "$PAUSE_REF" "$1"
}

base_image() {
  local rootfs="$DIR/rootfs.partial"
  rm -rf "$rootfs"
  # python-is-python3: the project's Dockerfile calls `python`, as the official image has it.
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  local c; c=$("${B[@]}" from scratch)
  "${B[@]}" copy -q "$c" "$rootfs/" /
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' --os linux --arch amd64 "$c"
  "${B[@]}" commit -q --rm "$c" "$BASE_REF" >/dev/null
  rm -rf "$rootfs"
  push "$BASE_REF" "$1"
}

redis_image() {
  "${B[@]}" inspect "$BASE_REF" >/dev/null 2>&1 || "${B[@]}" pull -q "oci-archive:$DIR/base-$BASE_VERSION.tar" >/dev/null
  local c; c=$("${B[@]}" from "$BASE_REF")
  "${B[@]}" run --network host "$c" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null && rm -rf /var/lib/apt/lists/*' >&2
  # Debian's package adds the redis user; run as it (by number, so that
  # runAsNonRoot can check it), in the foreground.
  local uid gid
  uid=$("${B[@]}" run "$c" -- id -u redis) gid=$("${B[@]}" run "$c" -- id -g redis)
  "${B[@]}" config --user "$uid:$gid" --entrypoint '["redis-server"]' --cmd '' --port 6379 "$c"
  "${B[@]}" commit -q --rm "$c" "$REDIS_REF" >/dev/null
  push "$REDIS_REF" "$1"
}

# What the project image is made of: the Dockerfile, what it copies, the base.
project_hash() {
  {
    echo "$BASE_REF"
    find Dockerfile pyproject.toml README.md api operator proxy cli -type f \
      ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
}

project_image() {
  local ref=$2
  "${B[@]}" inspect "$BASE_REF" >/dev/null 2>&1 || "${B[@]}" pull -q "oci-archive:$DIR/base-$BASE_VERSION.tar" >/dev/null
  # pip inside the build trusts what the host trusts (a proxy's CA, say), and
  # uses the host's index if one is set; neither ends up in the image.
  local conf; conf=$(mktemp)
  {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    [ -n "${PIP_INDEX_URL:-}" ] && echo "index-url = $PIP_INDEX_URL"
  } >"$conf"
  # The build arg swaps the official python image for the Debian base; nothing else differs.
  "${B[@]}" build -q --network host --build-arg "PYTHON_IMAGE=$BASE_REF" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro -v "$conf:/etc/pip.conf:ro" \
    --layers=false -t "$ref" -f Dockerfile . >&2
  rm -f "$conf"
  push "$ref" "$1"
  "${B[@]}" rmi "$ref" >/dev/null 2>&1 || true
}

build "$DIR/pause-3.10.tar" pause_image "$DIR/pause-3.10.tar"
build "$DIR/base-$BASE_VERSION.tar" base_image "$DIR/base-$BASE_VERSION.tar"
build "$DIR/redis-$REDIS_VERSION.tar" redis_image "$DIR/redis-$REDIS_VERSION.tar"

case "${1:-base}" in
  base) ;;
  project)
    h=$(project_hash)
    build "$DIR/lockgate-$h.tar" project_image "$DIR/lockgate-$h.tar" "localhost/lockgate:$h"
    # Older project images: only the newest few are worth keeping.
    ls -1t "$DIR"/lockgate-*.tar | tail -n +4 | xargs -r rm -f
    echo "PAUSE=$PAUSE_REF $DIR/pause-3.10.tar"
    echo "BASE=$BASE_REF $DIR/base-$BASE_VERSION.tar"
    echo "REDIS=$REDIS_REF $DIR/redis-$REDIS_VERSION.tar"
    echo "LOCKGATE=localhost/lockgate:$h $DIR/lockgate-$h.tar"
    ;;
  *) echo "usage: $0 [base|project]" >&2; exit 2 ;;
esac
