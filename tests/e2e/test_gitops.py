"""How GitOps tools read PxSecurity health, on live objects in each state:

- Argo CD: manifests/argocd/…/PxSecurity/health.lua, run in Lua 5.1 (lupa; Argo CD runs gopher-lua, also
  Lua 5.1): Healthy when Ready is True for the current generation, Progressing while the operator has not
  observed the generation (or there is no status yet), Degraded with Ready's message when Ready is False.
- Flux: kstatus (sigs.k8s.io/cli-utils, built from the module proxy: tests/tools/kstatus), what
  kustomize-controller's health checks compute: Current for a Ready object, Failed for one the operator
  marks `Stalled` (a reason no retry fixes: here key material that is not a key), InProgress for the others
  (a Ready=False object that may still heal: Flux waits out its timeout, then shows the Ready message); and an
  object no operator has looked at yet (no status at all) is Current for kstatus — kstatus' documented
  rules, pinned here so a change in either shows.

With PXSEC_UPDATE_GITOPS_FIXTURES=1 the live objects are written (names, spec, status; nothing secret: status
holds names and fingerprints only) to the health check's testdata/, which tests/unit/test_argocd_health.py
runs the script against.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.devcluster.controlplane import free_port
from tests.e2e.conftest import assert_no_leaks
from tests.support.helpers import get_json, wait_for
from tests.support.installed import ROOT, private_cluster, sa_kubeconfig, tool_or_fail
from tests.tools.build import KSTATUS
from tests.unit.test_argocd_health import HEALTH_DIR, run_health

pytestmark = pytest.mark.e2e

NS = "gitops"
UPDATE = os.environ.get("PXSEC_UPDATE_GITOPS_FIXTURES") == "1"


def sample(name: str, lifetime: str = "24h") -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": name, "namespace": NS},
            "spec": {"system": {"secretName": f"{name}-system"},
                     "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": lifetime,
                                    "sharedSecret": {"secretName": f"{name}-shared"}},
                     "tokens": [{"secretName": f"{name}-admin-token", "roles": ["system.admin"], "groups": ["*"]}]}}


@pytest.fixture(scope="module")
def gitops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, OperatorProcess]]:
    work = tmp_path_factory.mktemp("gitops")
    with private_cluster() as cluster:
        cluster.install_crds()
        cluster.install_rbac()
        cluster.kubectl("create", "namespace", NS)
        kubeconfig = sa_kubeconfig(cluster, "pxsec-system", "px-security-operator", work / "operator.kubeconfig")
        operator = OperatorProcess(kubeconfig=kubeconfig, log=work / "operator.log").start()
        operator.wait_for_log("px-security-operator started")
        try:
            yield cluster, operator
            assert_no_leaks(cluster, NS, operator.output())
        finally:
            operator.stop()
            print(f"--- operator log (tail) ---\n{operator.output()[-4000:]}")


def live(cluster: Cluster, name: str) -> dict[str, Any]:
    return get_json(cluster, "pxsecurity", name, "-n", NS)


def kstatus_all(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """kstatus' verdict on an object or a List, one per object."""
    result = subprocess.run([str(tool_or_fail(KSTATUS))], input=json.dumps(obj), capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def kstatus(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    return kstatus_all(obj)[0]


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


def settled(cluster: Cluster, name: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = live(cluster, name)
        cond = ready(obj)
        gen = obj["metadata"]["generation"]
        return obj if cond.get("status") == status and cond.get("observedGeneration") == gen else None

    result: dict[str, Any] = wait_for(check, 90, what=f"{name} Ready={status}")
    return result


def fixture(obj: dict[str, Any]) -> dict[str, Any]:
    """What a health check reads, from a live object: no uid, resourceVersion or managedFields."""
    meta = obj["metadata"]
    out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
           "metadata": {"name": meta["name"], "namespace": meta["namespace"], "generation": meta["generation"]},
           "spec": obj["spec"]}
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def record(state: str, obj: dict[str, Any], health: dict[str, str]) -> None:
    """Write the live object as testdata and its verdict into health_test.yaml (Argo CD's own layout)."""
    data = HEALTH_DIR / "testdata" / f"{state}.yaml"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(f"# A live PxSecurity from tests/e2e/test_gitops.py ({state}); regenerate with "
                    "PXSEC_UPDATE_GITOPS_FIXTURES=1.\n" + yaml.safe_dump(fixture(obj), sort_keys=False))
    index = HEALTH_DIR / "health_test.yaml"
    tests = (yaml.safe_load(index.read_text()) or {}).get("tests", []) if index.exists() else []
    tests = [t for t in tests if t["inputPath"] != f"testdata/{state}.yaml"]
    tests.append({"healthStatus": dict(health), "inputPath": f"testdata/{state}.yaml"})
    index.write_text(yaml.safe_dump({"tests": sorted(tests, key=lambda t: t["inputPath"])}, sort_keys=False))


def judge(cluster: Cluster, state: str, obj: dict[str, Any], argo: str, flux: str) -> dict[str, str]:
    health = run_health(obj)
    verdict = kstatus(cluster, obj)
    assert (health["status"], verdict["status"]) == (argo, flux), (state, health, verdict)
    if UPDATE:
        record(state, obj, health)
    else:  # the committed testdata is an object in the same state
        committed = yaml.safe_load((HEALTH_DIR / "testdata" / f"{state}.yaml").read_text())
        assert run_health(committed)["status"] == argo
    return health


@pytest.mark.go
def test_argo_cd_and_kstatus_read_every_state_of_live_objects(gitops: tuple[Cluster, OperatorProcess]) -> None:
    cluster, operator = gitops
    closed = free_port()  # nothing listens there: the OIDC probe fails, Ready is False
    broken = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "degraded"},
              "spec": {"oidc": {"issuer": f"https://127.0.0.1:{closed}/realms/px", "clientID": "portworx"}}}
    cluster.kubectl("create", "secret", "generic", "stalled-rsa", "-n", NS, "--from-literal=private.pem=not a key")
    bad_key = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "stalled"},
               "spec": {"selfSigned": {"rsa": {"secretName": "stalled-rsa"}}}}
    for doc in (sample("healthy"), sample("lagging"), broken, bad_key):
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(doc))

    healthy = settled(cluster, "healthy", "True")
    health = judge(cluster, "healthy", healthy, "Healthy", "Current")
    assert health["message"] == ready(healthy)["message"]

    degraded = settled(cluster, "degraded", "False")
    health = judge(cluster, "degraded", degraded, "Degraded", "InProgress")
    assert health["message"] == ready(degraded)["message"] and "OIDCReady" in health["message"]
    assert kstatus(cluster, degraded)["message"] == ready(degraded)["message"]

    stalled = settled(cluster, "stalled", "False")
    health = judge(cluster, "stalled", stalled, "Degraded", "Failed")
    assert "InvalidKeyMaterial" in {c["reason"] for c in stalled["status"]["conditions"] if c["type"] == "Stalled"}
    assert kstatus(cluster, stalled)["message"].startswith("KeysReady: ")

    settled(cluster, "lagging", "True")
    operator.stop()  # nobody reconciles: the next spec change is not observed
    cluster.kubectl("patch", "pxsecurity", "lagging", "-n", NS, "--type=merge",
                    "-p", '{"spec":{"selfSigned":{"tokenLifetime":"12h"}}}')
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(sample("new")))
    lagging, new = live(cluster, "lagging"), live(cluster, "new")
    assert lagging["metadata"]["generation"] == 2 and lagging["status"]["observedGeneration"] == 1
    assert ready(lagging)["status"] == "True"  # still True, but for generation 1
    health = judge(cluster, "progressing-generation", lagging, "Progressing", "InProgress")
    assert "generation 2" in health["message"]
    assert "status" not in new
    judge(cluster, "progressing-no-status", new, "Progressing", "Current")  # kstatus: no conditions = Current

    # All at once, as Flux polls its inventory: one List through kstatus.
    by_name = {v["name"]: v["status"] for v in kstatus_all(get_json(cluster, "pxsecurities", "-n", NS))}
    assert by_name == {"healthy": "Current", "degraded": "InProgress", "lagging": "InProgress", "new": "Current",
                       "stalled": "Failed"}

    # The operator comes back: both converge, and both tools say so.
    operator.start()
    for name in ("lagging", "new"):
        obj = settled(cluster, name, "True")
        assert run_health(obj)["status"] == "Healthy" and kstatus(cluster, obj)["status"] == "Current"


@pytest.mark.go
def test_the_crd_is_current_for_kstatus(gitops: tuple[Cluster, OperatorProcess]) -> None:
    cluster, _ = gitops
    crd = get_json(cluster, "crd", "pxsecurities.pxsec.dev")
    assert kstatus(cluster, crd)["status"] == "Current"


def test_fixtures_are_written_only_from_live_objects() -> None:
    """The testdata names the states this module produces, and nothing else."""
    index = yaml.safe_load((HEALTH_DIR / "health_test.yaml").read_text())
    assert sorted(Path(t["inputPath"]).stem for t in index["tests"]) == [
        "degraded", "healthy", "progressing-generation", "progressing-no-status", "stalled"]
    assert ROOT in HEALTH_DIR.parents
