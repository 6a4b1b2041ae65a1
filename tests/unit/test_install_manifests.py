"""The install paths render what they promise, without a cluster and without Go: `kubectl kustomize` of
manifests/ (kubectl from the dev extras) gives the RBAC the tests install, a namespaced Role that is the
ClusterRole less the CRD watch, and hardened Deployments; the chart carries the same CRD as crds/; `crds/`
holds nothing `kubectl apply -f crds/` cannot apply. `helm template` and `helm lint` of
charts/px-security-operator against these (the real helm, built with Go: tests/tools) are in
tests/gotools/test_install_manifests_helm.py; the live checks (`kubectl auth can-i --list`, the operator
reconciling under each install) are in tests/e2e/test_install*.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster import assets

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "px-security-operator"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = assets.locate("kubectl")
    assert kubectl is not None, "kubectl from the dev extras is needed"
    out = subprocess.run([str(kubectl), "kustomize", str(ROOT / path)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rbac(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    """RBAC objects by (kind, namespace, name): rules as sets of (group, resource, name, verb) atoms, and
    roleRef/subjects as they are. Labels differ (Helm adds its own) and do not grant anything."""
    out: dict[tuple[str, str, str], Any] = {}
    for d in docs:
        if d["kind"] not in RBAC_KINDS:
            continue
        meta = d["metadata"]
        key = (d["kind"], meta.get("namespace", ""), meta["name"])
        if d["kind"] in ("ClusterRole", "Role"):
            out[key] = {(g, r, n, v) for rule in d["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                        for n in rule.get("resourceNames", [""]) for v in rule["verbs"]}
        elif d["kind"] == "ServiceAccount":
            out[key] = None
        else:
            out[key] = (d["roleRef"], d["subjects"])
    return out


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == "Deployment"]
    assert len(found) == 1
    return found[0]


def container_contract(deploy: dict[str, Any]) -> dict[str, Any]:
    """What the operator is run with: everything but the image and labels."""
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    return {"replicas": deploy["spec"]["replicas"], "serviceAccountName": pod["serviceAccountName"],
            "podSecurityContext": pod["securityContext"], "volumes": pod["volumes"],
            **{k: c.get(k) for k in ("args", "env", "ports", "livenessProbe", "readinessProbe", "resources",
                                     "securityContext", "volumeMounts")}}


def assert_hardened(deploy: dict[str, Any]) -> None:
    """Non-root, read-only, no capabilities, bounded resources, probed, at least two replicas under leader election."""
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    liveness = next(a for a in c["args"] if a.startswith("--liveness="))
    port = int(liveness.rsplit(":", 1)[1].split("/")[0])
    health = next(p for p in c["ports"] if p["name"] == "health")
    assert health["containerPort"] == port
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert deploy["spec"]["replicas"] >= 2 and "--leader-elect" in c["args"]


def test_the_cluster_wide_rbac_is_what_the_tests_install() -> None:
    """manifests/rbac (what every e2e test runs the operator under) is the cluster-wide install's RBAC."""
    assert rbac(kustomize("manifests/rbac")) == rbac(kustomize("manifests/cluster-wide"))


def test_the_namespaced_role_has_the_cluster_roles_rules_less_the_crd_watch() -> None:
    wide = rbac(kustomize("manifests/cluster-wide"))[("ClusterRole", "", "px-security-operator")]
    namespaced = rbac(kustomize("manifests/namespaced"))
    served = namespaced[("Role", "portworx", "px-security-operator")]
    crd = {a for a in wide if a[1] == "customresourcedefinitions"}
    tenants = {a for a in wide if a[1] in ("namespaces", "persistentvolumes")}  # cluster-scoped reads
    assert served == wide - crd - tenants and crd == {("apiextensions.k8s.io", "customresourcedefinitions", "", v)
                                                      for v in ("list", "watch")}
    assert tenants == {("", r, "", v) for r in ("namespaces", "persistentvolumes") for v in ("list", "watch")}
    # Cluster-wide, the namespaced install only reads definitions: CRDs and namespace names.
    cluster_scoped = {k: v for k, v in namespaced.items() if k[0] == "ClusterRole"}
    assert cluster_scoped == {("ClusterRole", "", "px-security-operator-discovery"):
                              crd | {("", "namespaces", "", "list"), ("", "namespaces", "", "watch")}}


def test_deleting_secrets_is_an_optional_piece_granting_exactly_that() -> None:
    """Not in any install by default (the allow-list), one ClusterRole with `delete` on secrets when asked."""
    for path in ("manifests/cluster-wide", "manifests/namespaced"):
        rules = [r for k, r in rbac(kustomize(path)).items() if k[0] in ("ClusterRole", "Role")]
        assert not [a for atoms in rules for a in atoms if a[3] == "delete"], path
    optional = kustomize("manifests/optional/delete-secrets")
    roles = {k: v for k, v in rbac(optional).items() if k[0] == "ClusterRole"}
    assert roles == {("ClusterRole", "", "px-security-operator-delete-secrets"): {("", "secrets", "", "delete")}}
    binding = next(d for d in optional if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "px-security-operator",
                                    "namespace": "pxsec-system"}]


@pytest.mark.parametrize("path", [
    pytest.param("manifests/cluster-wide", id="kustomize-cluster-wide"),
    pytest.param("manifests/namespaced", id="kustomize-namespaced"),
])  # the chart's Deployment: tests/gotools/test_install_manifests_helm.py
def test_the_deployment_is_hardened(path: str) -> None:
    assert_hardened(deployment(kustomize(path)))


def test_the_chart_carries_the_same_crd() -> None:
    assert (CHART / "crds" / "pxsecurity.yaml").read_bytes() == (ROOT / "crds" / "pxsecurity.yaml").read_bytes(), \
        "charts/px-security-operator/crds/pxsecurity.yaml is stale: run `make crds`"


def test_crds_dir_holds_only_the_crd_and_its_admission_warnings() -> None:
    """`kubectl apply -f crds/` applies every .yaml/.yml/.json file there, in name order: the CRD, then the
    cluster-scoped policy that warns about its objects (it names the CRD's resource, so it comes after)."""
    files = sorted(p.name for p in (ROOT / "crds").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    assert files == ["pxsecurity.yaml", "warnings.yaml"]
    kinds = {name: {d["kind"] for d in yaml.safe_load_all((ROOT / "crds" / name).read_text()) if d} for name in files}
    assert kinds == {"pxsecurity.yaml": {"CustomResourceDefinition"},
                     "warnings.yaml": {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}}
