"""The Argo CD health check for PxSecurity (manifests/argocd/resource_customizations/pxsec.dev/PxSecurity/
health.lua), run by a real Lua 5.1 interpreter (lupa.lua51; Argo CD runs gopher-lua, a Lua 5.1) the way
Argo CD runs it: the object as the global `obj`, the script's returned table as the verdict.

The cases are Argo CD's own layout (health_test.yaml + testdata/, as in argo-cd's resource_customizations),
and the objects are live ones captured by tests/e2e/test_gitops.py; a few synthetic edge cases follow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

ROOT = Path(__file__).resolve().parents[2]
HEALTH_DIR = ROOT / "manifests" / "argocd" / "resource_customizations" / "pxsec.dev" / "PxSecurity"
SCRIPT = (HEALTH_DIR / "health.lua").read_text()


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON-like Python values as Argo CD hands them to Lua: objects and arrays become tables (arrays
    1-based), numbers Lua numbers, null nil."""
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def run_health(obj: dict[str, Any], script: str = SCRIPT) -> dict[str, str]:
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    assert runtime.eval("_VERSION") == "Lua 5.1"
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script)
    return {str(k): str(v) for k, v in dict(result).items()}


def _cases() -> list[dict[str, Any]]:
    index = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())
    return list(index["tests"])


@pytest.mark.parametrize("case", _cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_live_objects_from_the_e2e_tests(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HEALTH_DIR / case["inputPath"]).read_text())
    assert run_health(obj) == case["healthStatus"]


def test_every_state_is_covered_by_a_live_object() -> None:
    assert {c["healthStatus"]["status"] for c in _cases()} == {"Healthy", "Progressing", "Degraded"}


def _obj(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity",
                           "metadata": {"name": "px", "namespace": "portworx", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def _ready(status: str, generation: int, message: str = "m") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": "R", "message": message, "observedGeneration": generation}


@pytest.mark.parametrize(("obj", "want"), [
    (_obj(1, None), "Progressing"),
    (_obj(1, {"observedGeneration": 1}), "Progressing"),  # no conditions yet
    (_obj(1, {"observedGeneration": 1, "conditions": [{"type": "KeysReady", "status": "True"}]}), "Progressing"),
    (_obj(3, {"observedGeneration": 3, "conditions": [_ready("True", 2)]}), "Progressing"),  # the condition lags
    (_obj(3, {"observedGeneration": 2, "conditions": [_ready("False", 3)]}), "Progressing"),  # status lags
    (_obj(2, {"observedGeneration": 2, "conditions": [_ready("Unknown", 2)]}), "Progressing"),
    (_obj(2, {"observedGeneration": 2, "conditions": [_ready("True", 2)]}), "Healthy"),
    (_obj(2, {"observedGeneration": 2, "conditions": [{"type": "KeysReady", "status": "False"}, _ready("False", 2)]}),
     "Degraded"),
], ids=["no-status", "no-conditions", "no-ready", "condition-lags", "status-lags", "unknown", "healthy",
        "degraded"])
def test_edge_cases(obj: dict[str, Any], want: str) -> None:
    assert run_health(obj)["status"] == want


def test_degraded_carries_the_ready_message() -> None:
    message = "KeysReady: Secret px-jwt-rsa holds an RSA key of 1024 bits; Portworx needs at least 2048"
    obj = _obj(1, {"observedGeneration": 1, "conditions": [_ready("False", 1, message)]})
    assert run_health(obj) == {"status": "Degraded", "message": message}


def test_argocd_cm_snippet_carries_the_same_script() -> None:
    snippet = yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm.yaml").read_text())
    assert snippet["data"]["resource.customizations.health.pxsec.dev_PxSecurity"] == SCRIPT
