"""The layers hold, and the layout shows them: the pure core sits in `pxsec/` itself, the I/O shell in
`pxsec/controller/` (`kube/`: REST client, gateway, store, watches; `steps/`: the reconcile steps; the
reconciler, work queue, leader election, metrics, OIDC probe, kopf wiring), the command line in
`pxsec/cli/`, the local control plane in `pxsec/devcluster/`. No module of the core imports the shell
(`controller.kube` included), kopf, the Kubernetes client or the network; the steps reach the API only
through the gateway's port — checked on the source, so a new import that breaks the rule fails here, not
in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "pxsec"
SHELL_PACKAGES = ("controller", "cli", "devcluster")
# Top-level modules that are tools around the product, not part of the core.
TOOLS = ("bench", "__main__", "__init__")
# What the core may never import: the Kubernetes client, the network, kopf, and the shell packages.
FORBIDDEN_LIBRARIES = ("kopf", "kubernetes", "socket", "ssl", "http", "urllib.request", "requests", "asyncio",
                       "prometheus_client")

CORE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOOLS)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def forbidden(name: str) -> bool:
    if name.startswith("pxsec."):
        return name.split(".")[1] in SHELL_PACKAGES
    return any(name == lib or name.startswith(lib + ".") for lib in FORBIDDEN_LIBRARIES)


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_shell(module: str) -> None:
    bad = sorted(n for n in imports(PACKAGE / f"{module}.py") if forbidden(n))
    assert bad == [], f"pxsec.{module} is core and imports {bad}"


def test_the_layout_has_the_layers() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(SHELL_PACKAGES)
    controller = PACKAGE / "controller"
    assert {"reconciler", "handlers", "workqueue"} <= {p.stem for p in controller.glob("*.py")}
    assert {"rest", "gateway", "store", "watches"} <= {p.stem for p in (controller / "kube").glob("*.py")}
    assert {"keys", "tokens", "parameters"} <= {p.stem for p in (controller / "steps").glob("*.py")}
    assert {"spec", "keyplan", "tokens", "verify", "render"} <= set(CORE)


def test_the_core_never_reaches_the_api_machinery() -> None:
    assert forbidden("pxsec.controller.kube") and forbidden("pxsec.controller.kube.store")


# What the steps may take from `controller.kube`: the gateway's port, its errors and field-manager names.
STEP_MAY_USE = {"pxsec.controller.kube.gateway"} | {
    f"pxsec.controller.kube.gateway.{n}" for n in ("GatewayPort", "Conflict", "CRRef", "METADATA_MANAGER",
                                                   "GatewayError", "NamespaceTerminating")}


@pytest.mark.parametrize("module", sorted(p.stem for p in (PACKAGE / "controller" / "steps").glob("*.py")))
def test_steps_use_the_gateway_port_only(module: str) -> None:
    used = {n for n in imports(PACKAGE / "controller" / "steps" / f"{module}.py")
            if n.startswith("pxsec.controller.kube")}
    assert used <= STEP_MAY_USE, f"steps/{module}.py reaches {sorted(used - STEP_MAY_USE)} past the gateway's port"


def test_the_rule_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import kopf\nfrom pxsec.controller.gateway import Gateway\nfrom urllib.parse import urlsplit\n")
    assert sorted(n for n in imports(sample) if forbidden(n)) == [
        "kopf", "pxsec.controller.gateway", "pxsec.controller.gateway.Gateway"]
