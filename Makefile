# px-security-operator — the two commands a newcomer needs:
#   make demo   local control plane + operator + a sample resource, until Ctrl-C
#   make test   lint, types, unit and e2e tests against a real kube-apiserver (what CI runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv controlplane lint typecheck unit e2e crds bench clean check-orphans

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Build (once per machine, cached in ~/.cache/pxsec) etcd, kube-apiserver, kube-controller-manager.
controlplane: $(STAMP)
	$(BIN)/python -m pxsec.devcluster.assets

demo: controlplane
	$(BIN)/pxsec dev up

lint: $(STAMP)
	$(BIN)/ruff check operator tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not e2e" tests

e2e: controlplane
	$(BIN)/pytest -m e2e tests

## Everything CI checks: lint, types, the generated CRD is current, unit + e2e, no leftover processes.
test: controlplane lint typecheck
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
