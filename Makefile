# px-security-operator — the two commands a newcomer needs:
#   make demo   local control plane + operator + a sample resource, until Ctrl-C
#   make test   lint, types, unit and e2e tests against a real kube-apiserver (what CI runs)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow venv controlplane interop tools image image-lock lint typecheck unit e2e crds bench clean check-orphans

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

## Build (once per machine, cached in ~/.cache/pxsec/<tool>-<hash>) the Go tools of tests/tools: helm
## (helm.sh/helm/v3, for the chart's lint/template/install) and pxsec-kstatus (sigs.k8s.io/cli-utils' kstatus,
## what Flux's health checks compute), from the Go module proxy, as tests/tools/*/go.mod and go.sum pin them;
## and tests/kubeyaml's reader (kubectl 1.37's YAML libraries) for tests/gotools/test_kubeyaml_differential.py.
tools: $(STAMP)
	$(BIN)/python -m tests.tools.build
	$(BIN)/python -m tests.kubeyaml.build

## The operator's OCI image, dist/px-security-operator-<version>.oci.tar (+ .sbom.cdx.json, .digest), built without a
## container engine from Debian packages and the hash-pinned image/requirements.lock (image/build.py; needs root,
## apt-gets mmdebstrap, umoci, skopeo, runc when missing). Cached in ~/.cache/pxsec/image-<hash>: about 1-2 minutes
## cold, seconds warm. Built from the commit (HEAD): commit first.
image: $(STAMP)
	$(BIN)/python -m image.build --out dist

## Refresh image/requirements.lock (from pyproject.toml's dependencies) and image/build-requirements.lock.
image-lock: $(STAMP)
	$(BIN)/python -m image.build --lock

demo: controlplane
	$(BIN)/pxsec dev up

lint: $(STAMP)
	$(BIN)/ruff check operator tests image

typecheck: $(STAMP)
	$(BIN)/mypy

## Everything but e2e: tests/unit (pure Python, no Go needed: `pytest tests/unit` alone runs in seconds),
## tests/gotools and tests/interop (marked `go`: the Go-built tools above), tests/hostile (about a minute).
unit: interop tools
	$(BIN)/pytest tests/unit tests/gotools tests/interop tests/hostile

e2e: controlplane interop tools
	$(BIN)/pytest -m e2e tests

## Everything CI checks: lint, types, the generated CRD is current, unit + e2e (with the differential suite
## against the Go checker), no leftover processes.
test: controlplane interop tools image lint typecheck
	$(BIN)/pytest -m "not slow" tests
	$(MAKE) --no-print-directory check-orphans

## The reliability suites (marked slow): the fault-injecting proxy with its soak and HA handover, the SIGKILL
## cycles and the API outage, the hostile command-line input. CI runs them after `make test`.
test-slow: controlplane interop tools image
	$(BIN)/pytest -m slow tests
	$(MAKE) --no-print-directory check-orphans

check-orphans: $(STAMP)
	$(BIN)/python -m pxsec.devcluster.orphans

crds: $(STAMP)
	$(BIN)/python -m pxsec.crdgen --output crds/pxsecurity.yaml
	cp crds/pxsecurity.yaml charts/px-security-operator/crds/pxsecurity.yaml
	$(BIN)/python -m pxsec.admissionwarnings --output crds/warnings.yaml \
		--chart-output charts/px-security-operator/templates/admission-warnings.yaml

## Medians of the pure core (pxsec.bench), the end-to-end benchmark with modest sizes and a restart among 20,000
## Secrets in 2,000 namespaces (about three minutes), then tenant
## tokens at issue 21's scale (2,000 tenant namespaces beside 20,000 Secrets) beside trust-manager v0.25.0 doing the
## same distribution on the same control plane (about 10 minutes: trust-manager's default 5 requests/s).
bench: controlplane interop
	$(BIN)/python -m pxsec.bench
	$(BIN)/python -m tests.bench.bench_e2e --objects 50 --single 5 --noise 1000 --idle 10 \
		--startup-secrets 20000 --startup-namespaces 2000
	$(BIN)/python -m tests.bench.bench_tenants --namespaces 2000 --tenants 4 --noise 20000

## The end-to-end benchmark on a fresh local control plane with an audit log (tests/bench/bench_e2e.py; the issue's
## sizes by default: 200 at once, 10 single, 5,000 noise objects, 30 s idle). Options: make bench-e2e ARGS="...".
.PHONY: bench-e2e
bench-e2e: controlplane
	$(BIN)/python -m tests.bench.bench_e2e $(ARGS)

## Issue 23's comparison: the operator (--shape storagecluster) and cert-manager v1.21.1's controller (built once per
## machine: PXSEC_CERT_MANAGER_SRC=<a v1.21.1 checkout>/cmd/controller, see tests/tools/cert-manager/go.mod), each
## alone on a fresh local control plane, in
## alternating order for 2 rounds, side by side (tests/bench/compare.py; about 10 minutes; not part of `make test`).
## Options: make bench-compare ARGS="--objects 200 --single 10 --rounds 2 --json out.json".
.PHONY: bench-compare
bench-compare: controlplane
	$(BIN)/python -m tests.bench.compare $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist
