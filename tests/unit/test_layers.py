"""The layers hold: no module of the pure core imports the shell (API client, network, kopf, the steps,
the CLI) — checked on the source, so a new import that breaks the rule fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "pxsec"

# The pure core: parsing, validation, planning, policy, rendering, minting, verification.
CORE = ("spec", "crdschema", "celrules", "crdgen", "validation", "kubeyaml", "keymaterial", "keyplan", "keypolicy",
        "tokens", "verify", "gojson", "oidc", "render", "scmerge", "coexist", "conditions", "events")
# What the core may never import: the Kubernetes client, the network, kopf, and every shell module.
FORBIDDEN_LIBRARIES = ("kopf", "kubernetes", "socket", "ssl", "http", "urllib.request", "requests", "asyncio")
SHELL = ("gateway", "oidcprobe", "objectmeta", "keysync", "tokensync", "paramsync", "oidcsync", "portworxsync",
         "reconciler", "workqueue", "handlers", "leader", "metrics", "cli", "cliparse", "cliread", "cli_render",
         "cli_validate", "cli_token", "devcluster", "bench")


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
        return name.split(".")[1] in SHELL
    return any(name == lib or name.startswith(lib + ".") for lib in FORBIDDEN_LIBRARIES)


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_shell(module: str) -> None:
    bad = sorted(n for n in imports(PACKAGE / f"{module}.py") if forbidden(n))
    assert bad == [], f"pxsec.{module} is core and imports {bad}"


def test_every_module_is_placed_in_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    modules |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules - set(CORE) - set(SHELL) == set(), "a new module: add it to CORE or SHELL"


def test_the_rule_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import kopf\nfrom pxsec.gateway import Gateway\nfrom urllib.parse import urlsplit\n")
    assert sorted(n for n in imports(sample) if forbidden(n)) == ["kopf", "pxsec.gateway", "pxsec.gateway.Gateway"]
