"""The install paths render what they promise, without a cluster: `kubectl kustomize` of manifests/ and
`helm template` of charts/px-security-operator (the real helm, built from the module proxy: tests/tools)
give the same RBAC and the same operator container; the chart carries the same CRD as crds/; `crds/`
holds nothing `kubectl apply -f crds/` cannot apply; every Deployment is hardened. The live checks
(`kubectl auth can-i --list`, the operator reconciling under each install) are in tests/e2e/test_install*.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster import assets
from tests.installed import tool_or_fail
from tests.tools.build import HELM

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "px-security-operator"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def kustomize(path: str) -> list[dict[str, Any]]:
    kubectl = assets.locate("kubectl")
    assert kubectl is not None, "kubectl from the dev extras is needed"
    out = subprocess.run([str(kubectl), "kustomize", str(ROOT / path)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(tool_or_fail(HELM)), *args], capture_output=True, text=True, check=False,
                            env={"HOME": "/nonexistent", "HELM_CACHE_HOME": "/tmp/pxsec-helm-cache",
                                 "HELM_CONFIG_HOME": "/tmp/pxsec-helm-config", "HELM_DATA_HOME": "/tmp/pxsec-helm-data",
                                 "PATH": "/usr/bin:/bin"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def template(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "px-security-operator", str(CHART), "--namespace", "pxsec-system"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


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


PAIRS = {
    "cluster-wide": ("manifests/cluster-wide", ()),
    "namespaced": ("manifests/namespaced", ("watchNamespaces={portworx}",)),
}


@pytest.mark.parametrize("mode", PAIRS)
def test_helm_and_kustomize_render_the_same_rbac(mode: str) -> None:
    path, sets = PAIRS[mode]
    assert rbac(template(*sets)) == rbac(kustomize(path))


@pytest.mark.parametrize("mode", PAIRS)
def test_helm_and_kustomize_run_the_same_operator(mode: str) -> None:
    path, sets = PAIRS[mode]
    assert container_contract(deployment(template(*sets))) == container_contract(deployment(kustomize(path)))


def test_the_cluster_wide_rbac_is_what_the_tests_install() -> None:
    """manifests/rbac (what every e2e test runs the operator under) is the cluster-wide install's RBAC."""
    assert rbac(kustomize("manifests/rbac")) == rbac(kustomize("manifests/cluster-wide"))


def test_the_namespaced_role_has_the_cluster_roles_rules_less_the_crd_watch() -> None:
    wide = rbac(kustomize("manifests/cluster-wide"))[("ClusterRole", "", "px-security-operator")]
    namespaced = rbac(kustomize("manifests/namespaced"))
    served = namespaced[("Role", "portworx", "px-security-operator")]
    crd = {a for a in wide if a[1] == "customresourcedefinitions"}
    assert served == wide - crd and crd == {("apiextensions.k8s.io", "customresourcedefinitions", "", v)
                                            for v in ("list", "watch")}
    # Cluster-wide, the namespaced install only reads definitions: CRDs and namespace names.
    cluster_scoped = {k: v for k, v in namespaced.items() if k[0] == "ClusterRole"}
    assert cluster_scoped == {("ClusterRole", "", "px-security-operator-discovery"):
                              crd | {("", "namespaces", "", "list"), ("", "namespaces", "", "watch")}}


@pytest.mark.parametrize("docs", [
    pytest.param(lambda: kustomize("manifests/cluster-wide"), id="kustomize-cluster-wide"),
    pytest.param(lambda: kustomize("manifests/namespaced"), id="kustomize-namespaced"),
    pytest.param(lambda: template(), id="helm"),
    pytest.param(lambda: template("watchNamespaces={a,b}", "replicaCount=3"), id="helm-namespaced"),
])
def test_the_deployment_is_hardened(docs: Any) -> None:
    deploy = deployment(docs())
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


def test_the_chart_carries_the_same_crd() -> None:
    assert (CHART / "crds" / "pxsecurity.yaml").read_bytes() == (ROOT / "crds" / "pxsecurity.yaml").read_bytes(), \
        "charts/px-security-operator/crds/pxsecurity.yaml is stale: run `make crds`"


def test_crds_dir_holds_only_crds() -> None:
    """`kubectl apply -f crds/` applies every .yaml/.yml/.json file there: each must be a CRD."""
    files = [p for p in (ROOT / "crds").iterdir() if p.suffix in (".yaml", ".yml", ".json")]
    assert files
    for path in files:
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert kinds == {"CustomResourceDefinition"}, f"{path.name}: {kinds}"


def test_helm_lint_is_clean() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout
    result = helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={portworx}",
                  "--set", "metrics.serviceMonitor.enabled=true")
    assert "0 chart(s) failed" in result.stdout


def test_chart_values_people_look_for() -> None:
    docs = template("watchNamespaces={portworx,storage}", "replicaCount=3", "image.repository=registry.local/pxsec",
                    "image.tag=dev", "commonLabels.team=storage", "podLabels.tier=control",
                    "resources.limits.memory=512Mi", "metrics.serviceMonitor.enabled=true",
                    "metrics.serviceMonitor.labels.release=prometheus")
    deploy = deployment(docs)
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert deploy["spec"]["replicas"] == 3 and c["image"] == "registry.local/pxsec:dev"
    assert "--namespace=portworx" in c["args"] and "--namespace=storage" in c["args"]
    assert c["resources"]["limits"]["memory"] == "512Mi"
    assert all(d["metadata"]["labels"]["team"] == "storage" for d in docs)
    assert deploy["spec"]["template"]["metadata"]["labels"]["tier"] == "control"
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role"}
    assert roles == {("portworx", "px-security-operator"), ("storage", "px-security-operator"),
                     ("pxsec-system", "px-security-operator-leader-election")}
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # our namespace label is the PxSecurity's
    off = template("metrics.enabled=false")
    assert not [d for d in off if d["kind"] in ("Service", "ServiceMonitor")]
    off_args = deployment(off)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--metrics") for a in off_args)


def test_more_than_one_replica_without_leader_election_is_refused() -> None:
    result = helm("template", "x", str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0 and "only one replica may reconcile" in result.stderr
    single = template("leaderElection.enabled=false", "replicaCount=1")
    args = deployment(single)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" not in args
    assert not [d for d in single if d["kind"] == "Role"]


def test_lease_durations_reach_the_operator() -> None:
    args = deployment(template("leaderElection.leaseDuration=30", "leaderElection.renewDeadline=20",
                               "leaderElection.retryPeriod=4"))["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--leader-election-lease-duration=30", "--leader-election-renew-deadline=20",
            "--leader-election-retry-period=4"} <= set(args)
