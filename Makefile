# Lockgate: every target installs what it needs and is safe to run again.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
PORT ?= 8080
ADMIN_PORT ?= 9090

IMAGE ?= lockgate:dev

.PHONY: venv deps run test test-unit crds bench dev-cluster lint clean image kind

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# System packages and test binaries: each hack/setup.d/*.sh is idempotent.
deps: venv
	@for s in hack/setup.d/*.sh; do [ -e "$$s" ] || continue; echo "setup: $$s"; bash "$$s" || exit 1; done

run: venv
	$(BIN)/lockgate dev run-quickstart --port $(PORT) --admin-port $(ADMIN_PORT)

test: deps
	bash hack/run-tests.sh

test-unit: venv
	$(BIN)/pytest -q tests/unit

# The chart carries copies of the CRDs as templates (crds.install / crds.keep).
crds: venv
	$(BIN)/lockgate crds -o crds/
	bash hack/sync-chart-crds.sh

bench: deps
	bash hack/run-bench.sh

# The container image (Docker); the chart and examples/in-cluster/ run it as lockgate:dev.
image:
	docker build -t $(IMAGE) .

# A kind cluster (Docker) with the image loaded, the chart installed with development
# values and examples/in-cluster/ applied: docs/kind.md.
kind: image
	IMAGE=$(IMAGE) bash hack/kind.sh

dev-cluster: deps
	bash hack/dev-cluster.sh

lint: venv
	bash hack/lint-imports.sh
	bash hack/typecheck.sh --strict api operator/translate
	bash hack/typecheck.sh

clean:
	rm -rf $(VENV) .pytest_cache
