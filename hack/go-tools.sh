# Shared by the scripts that build test binaries with Go (sourced, not run).
# The caller sets LOG_NAME before sourcing and parses its own arguments.

log() { echo "$LOG_NAME: $*" >&2; }

# Exit code 3 means "Go is missing", so callers can tell it from a failed build.
need_go() { command -v go >/dev/null || { log "go is not installed (https://go.dev/dl/)"; exit 3; }; }

# Upstream builds these statically; no C toolchain needed.
export CGO_ENABLED=0
# -mod=mod lets `go build` fill go.mod/go.sum of a generated wrapper module.
export GOFLAGS="${GOFLAGS:-} -mod=mod"

# Runs a build and reports how long it took (builds take minutes on 2 cores).
timed() {
  local what=$1; shift
  local start=$SECONDS
  log "building $what (this takes several minutes the first time)"
  "$@" >&2
  log "built $what in $((SECONDS - start))s"
}

# The path of the go.mod of module version $1 (e.g. example.com/m@v1.2.3), downloaded
# into the module cache; run from a wrapper module's folder.
module_gomod() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p'
}

# Moves a generated $1/go.mod.new into place only when it changed since the last
# build, so that go.sum and the build cache stay valid when nothing did.
update_gomod() {
  local src=$1
  if ! cmp -s "$src/go.mod.new" "$src/go.mod.in" 2>/dev/null; then
    cp "$src/go.mod.new" "$src/go.mod.in"
    cp "$src/go.mod.new" "$src/go.mod"
    rm -f "$src/go.sum"
  fi
  rm -f "$src/go.mod.new"
}
