"""`pxsec plan` (pxsec.cli.plan): golden outputs for each decision, the documented exit codes, and the same
change id as the operator's `status.pendingChange.id` for the same inputs.

Golden files: tests/golden/plan/<case>.txt hold exactly what `pxsec plan` prints. After an intended change,
regenerate them with `PXSEC_UPDATE_GOLDEN=1 pytest tests/unit/cli/test_cli_plan.py`, read the diff, commit."""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec import scmerge
from pxsec.cli import main
from pxsec.cli.plan import run_plan

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "plan"
UPDATE = os.environ.get("PXSEC_UPDATE_GOLDEN") == "1"

PXSECURITY: dict[str, Any] = {
    "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px", "namespace": "portworx"},
    "spec": {"storageCluster": {"name": "px-cluster", "apply": True},
             "selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}},
             "tokens": [{"secretName": "px-ci-token", "roles": ["system.user"], "groups": ["ci"]}]}}
STORAGECLUSTER: dict[str, Any] = {
    "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
    "metadata": {"name": "px-cluster", "namespace": "portworx", "resourceVersion": "4711"},
    "spec": {"image": "portworx/oci-monitor:3.2.0", "env": [{"name": "SOMETHING_SECRET", "value": "hunter2"}],
             "security": {"enabled": True, "auth": {"guestAccess": "Enabled", "selfSigned": {
                 "issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}}}},
    "status": {"phase": "Running"}}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def plan(tmp_path: Path, px: dict[str, Any], sc: dict[str, Any], *args: str) -> tuple[int, str, str]:
    (tmp_path / "px.yaml").write_text(yaml.safe_dump(px), encoding="utf-8")
    (tmp_path / "sc.yaml").write_text(yaml.safe_dump(sc), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    output = "json" if "json" in args else "text"
    nodes = int(args[args.index("--storage-nodes") + 1]) if "--storage-nodes" in args else 0
    code = run_plan(str(tmp_path / "px.yaml"), str(tmp_path / "sc.yaml"), storage_nodes=nodes, output=output,
                    stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def waiting_id(tmp_path: Path) -> str:
    code, out, _ = plan(tmp_path, PXSECURITY, STORAGECLUSTER, "json")
    assert code == 3
    return str(json.loads(out)["id"])


CASES = {
    "new-issuer-on-a-running-cluster": (PXSECURITY, STORAGECLUSTER, 3),
    "six-storage-nodes-no-phase": (PXSECURITY, with_(STORAGECLUSTER, "status", {}), 3),
    "fresh-install": (PXSECURITY, with_(STORAGECLUSTER, "status", None), 4),
    "automatic": (with_(PXSECURITY, "spec.storageCluster.changePolicy", "Automatic"), STORAGECLUSTER, 4),
    "stale-approval": (with_(PXSECURITY, "spec.storageCluster.approvedChange", "0123456789ab"), STORAGECLUSTER, 3),
    "apply-false": (with_(PXSECURITY, "spec.storageCluster.apply", False), STORAGECLUSTER, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(tmp_path: Path, case: str) -> None:
    px, sc, expected_code = CASES[case]
    args = ("--storage-nodes", "6") if case == "six-storage-nodes-no-phase" else ()
    code, out, err = plan(tmp_path, px, sc, *args)
    assert (code, err) == (expected_code, "")
    golden = GOLDEN / f"{case}.txt"
    if UPDATE:
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8")
    assert "hunter2" not in out  # a plain env value of the user's is never printed


def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)


def test_the_approved_change_is_applied_and_a_merged_cluster_has_no_change(tmp_path: Path) -> None:
    change = waiting_id(tmp_path)
    approved = with_(PXSECURITY, "spec.storageCluster.approvedChange", change)
    code, out, _ = plan(tmp_path, approved, STORAGECLUSTER, "json")
    report = json.loads(out)
    assert (code, report["decision"], report["id"]) == (4, "Applies", change)
    merged = scmerge.apply_merge_patch(copy.deepcopy(STORAGECLUSTER), report["patch"])
    merged["spec"]["env"][0]["value"] = "hunter2"  # the printed patch hides it; the cluster has it
    code, out, _ = plan(tmp_path, approved, merged)
    assert (code, out) == (0, "no change to StorageCluster portworx/px-cluster: it carries the rendered "
                               "security settings\n")


def test_the_id_is_the_operators(tmp_path: Path) -> None:
    """The same inputs through the operator's reconcile (against the in-memory gateway) wait under the same id."""
    from tests.unit.controller.test_reconciler import NS, reconcile, status, world

    spec = copy.deepcopy(PXSECURITY["spec"])
    gw = world(spec)
    sc = copy.deepcopy(STORAGECLUSTER)
    sc["metadata"] = {"name": "px-cluster"}
    gw.put("StorageCluster", NS, "px-cluster", sc)
    reconcile(gw)
    operator_id = status(gw)["pendingChange"]["id"]
    stored = gw.objects[("StorageCluster", NS, "px-cluster")]
    px = with_(PXSECURITY, "metadata.namespace", NS)
    code, out, _ = plan(tmp_path, px, {**stored, "apiVersion": sc["apiVersion"], "kind": sc["kind"]}, "json")
    assert (code, json.loads(out)["id"]) == (3, operator_id)


@pytest.mark.parametrize("argv_tail, expected", [
    (["--storagecluster", "missing.yaml"], 1),
    ([], 2),
])
def test_exit_codes_for_bad_input(tmp_path: Path, argv_tail: list[str], expected: int,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "px.yaml").write_text(yaml.safe_dump(PXSECURITY), encoding="utf-8")
    args = ["plan", "-f", str(tmp_path / "px.yaml")] + [str(tmp_path / a) if a.endswith(".yaml") else a
                                                        for a in argv_tail]
    with pytest.raises(SystemExit) if expected == 2 else _no_raise():
        assert main(args) == expected
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_invalid_pxsecurity_or_another_storagecluster_is_invalid_input(tmp_path: Path) -> None:
    bad = with_(PXSECURITY, "spec.storageCluster.approvedChange", "yes please")
    code, _, err = plan(tmp_path, bad, STORAGECLUSTER)
    assert code == 1 and "approvedChange must be the 12 hexadecimal digits" in err
    code, _, err = plan(tmp_path, PXSECURITY, with_(STORAGECLUSTER, "metadata.name", "other"))
    assert code == 1 and err == ("pxsec plan: the PxSecurity names StorageCluster px-cluster, the file holds "
                                 "other\n")


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


def test_a_lifetime_change_applies_at_once_and_says_when_it_reaches_the_tokens(tmp_path: Path) -> None:
    approved = with_(PXSECURITY, "spec.storageCluster.approvedChange", waiting_id(tmp_path))
    code, out, _ = plan(tmp_path, approved, STORAGECLUSTER, "json")
    merged = scmerge.apply_merge_patch(copy.deepcopy(STORAGECLUSTER), json.loads(out)["patch"])
    merged["spec"]["env"][0]["value"] = "hunter2"
    shorter = with_(approved, "spec.selfSigned.tokenLifetime", "12h")
    code, out, _ = plan(tmp_path, shorter, merged)
    assert code == 4 and "effects: none (no restart, no token rejected)" in out
    assert "note: spec.security.auth.selfSigned.tokenLifetime: 24h → 12h reaches the Portworx Operator's" in out
