# px-security-operator — the two commands a newcomer needs:
#   make demo   local control plane + operator + a sample resource, until Ctrl-C
#   make test   lint, types, unit and e2e tests against a real kube-apiserver (what CI runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv controlplane interop lint typecheck unit e2e crds bench clean check-orphans

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Build (once per machine, cached in ~/.cache/pxsec) etcd, kube-apiserver, kube-controller-manager.
controlplane: $(STAMP)
	$(BIN)/python -m pxsec.devcluster.assets

## Build (once per machine, cached in ~/.cache/pxsec/interop-<hash>) the Go token checker of tests/interop:
## golang-jwt v4.3.0 and go-oidc v2.2.1 from the Go module proxy, which the differential tests judge pxsec against.
interop: $(STAMP)
	$(BIN)/python -m tests.interop.build

demo: controlplane
	$(BIN)/pxsec dev up

lint: $(STAMP)
	$(BIN)/ruff check operator tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: interop
	$(BIN)/pytest -m "not e2e" tests

e2e: controlplane interop
	$(BIN)/pytest -m e2e tests

## Everything CI checks: lint, types, the generated CRD is current, unit + e2e (with the differential suite
## against the Go checker), no leftover processes.
test: controlplane interop lint typecheck
	$(BIN)/pytest tests
	$(MAKE) --no-print-directory check-orphans

check-orphans: $(STAMP)
	$(BIN)/python -m pxsec.devcluster.orphans

crds: $(STAMP)
	$(BIN)/python -m pxsec.crdgen --output crds/pxsecurity.yaml

bench: $(STAMP)
	$(BIN)/python -m pxsec.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
