#!/usr/bin/env bash
# The OpenTelemetry Collector and promtool for the observability tests, built
# once with Go and cached outside the repository (see
# hack/observability-binaries.sh).
set -euo pipefail
exec bash "$(dirname "$0")/../observability-binaries.sh"
