"""Each install path, as the README gives it, on a control plane of its own:

    kustomize-cluster-wide   kubectl apply -f crds/ && kubectl apply --server-side -k manifests/cluster-wide
    kustomize-namespaced     kubectl apply -f crds/ && kubectl apply --server-side -k manifests/namespaced
    helm-cluster-wide        helm install px-security-operator charts/px-security-operator -n pxsec-system …
    helm-namespaced          … --set watchNamespaces={portworx}

For each: the ServiceAccount's effective permissions (`kubectl auth can-i --list`, less what any
ServiceAccount may do) equal the allow-list below, namespace by namespace; the namespaced installs are
refused Secrets anywhere but `portworx`; the pod template passes the API server's `restricted` Pod Security
admission; and the operator, run with the installed Deployment's args and env under its ServiceAccount,
answers its probes, reconciles a sample where it should and nothing where it should not, logs no
permission problem, and releases its Lease when stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster
from tests.e2e.conftest import assert_no_leaks
from tests.support.helpers import get_json, wait_for
from tests.support.installed import ROOT, deployment, private_cluster, run_as_deployment, sa_kubeconfig, tool_or_fail
from tests.tools.build import HELM

pytestmark = pytest.mark.e2e

OPERATOR_NS = "pxsec-system"
SA = "px-security-operator"
SERVED_NS = "portworx"
OTHER_NS = "elsewhere"
CHART = ROOT / "charts" / "px-security-operator"

Atom = tuple[str, str, str, str]  # (resource, non-resource URL, resource name, verb), as can-i --list shows


def grants(resource: str, verbs: str, name: str = "") -> set[Atom]:
    return {(resource, "", name, verb) for verb in verbs.split()}


# -- the allow-list: every permission the operator has, beyond what any ServiceAccount has ---------------
CRD_WATCH = grants("customresourcedefinitions.apiextensions.k8s.io", "list watch")
DISCOVERY = CRD_WATCH | grants("namespaces", "list watch")  # the namespaced install's only cluster-wide reads
SERVED = (CRD_WATCH
          | grants("pxsecurities.pxsec.dev", "get list watch")
          | grants("pxsecurities.pxsec.dev/status", "patch")
          | grants("pxsecurities.pxsec.dev/finalizers", "update")
          | grants("secrets", "get list watch create patch")
          | grants("configmaps", "get list watch create patch")
          | grants("events", "create get patch")
          | grants("storageclusters.core.libopenstorage.org", "get list watch patch")
          | grants("storagenodes.core.libopenstorage.org", "list watch"))
CLUSTER_READS = grants("namespaces", "list watch") | grants("persistentvolumes", "list watch")  # tenants
LEASE = grants("leases.coordination.k8s.io", "create") | grants("leases.coordination.k8s.io", "get update", SA)
ALLOW: dict[str, dict[str, set[Atom]]] = {
    "cluster-wide": {OPERATOR_NS: SERVED | CLUSTER_READS | LEASE, SERVED_NS: SERVED | CLUSTER_READS,
                     OTHER_NS: SERVED | CLUSTER_READS},
    "namespaced": {OPERATOR_NS: DISCOVERY | LEASE, SERVED_NS: SERVED | DISCOVERY, OTHER_NS: DISCOVERY},
}


@dataclass
class Install:
    path: str
    mode: str
    cluster: Cluster
    workdir: Path
    output: str

    def deployment(self) -> dict[str, Any]:
        return deployment(self.cluster, OPERATOR_NS, SA)


def _install(path: str, cluster: Cluster) -> str:
    cluster.kubectl("create", "namespace", SERVED_NS)
    cluster.kubectl("create", "namespace", OTHER_NS)
    # Portworx' StorageCluster CRD, as on a cluster running Portworx: the operator watches StorageClusters too.
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "tests" / "fixtures" / "storagecluster-crd.yaml"))
    if path.startswith("kustomize"):
        cluster.kubectl("apply", "-f", str(ROOT / "crds"))  # plain, as a new user types it
        cluster.wait_established("pxsecurities.pxsec.dev")
        return cluster.install_kustomization(ROOT / "manifests" / path.removeprefix("kustomize-"))
    sets = ["--set", f"watchNamespaces={{{SERVED_NS}}}"] if path.endswith("namespaced") else []
    result = cluster.helm(tool_or_fail(HELM), "install", SA, str(CHART), "--namespace", OPERATOR_NS,
                          "--create-namespace", *sets)
    cluster.wait_established("pxsecurities.pxsec.dev")
    return result.stdout + result.stderr


@pytest.fixture(scope="module", params=["kustomize-cluster-wide", "kustomize-namespaced",
                                        pytest.param("helm-cluster-wide", marks=pytest.mark.go),
                                        pytest.param("helm-namespaced", marks=pytest.mark.go)])
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    path = str(request.param)
    with private_cluster() as cluster:
        output = _install(path, cluster)
        yield Install(path, "namespaced" if path.endswith("namespaced") else "cluster-wide", cluster,
                      tmp_path_factory.mktemp(path), output)


def test_permissions_are_exactly_the_allow_list(installed: Install) -> None:
    cluster = installed.cluster
    operator = sa_kubeconfig(cluster, OPERATOR_NS, SA, installed.workdir / "sa.kubeconfig")
    cluster.kubectl("create", "serviceaccount", "baseline", "-n", OPERATOR_NS)  # bound to nothing
    baseline = sa_kubeconfig(cluster, OPERATOR_NS, "baseline", installed.workdir / "baseline.kubeconfig")
    for namespace, allowed in ALLOW[installed.mode].items():
        have = cluster.can_i_list(operator, namespace)
        anyone = cluster.can_i_list(baseline, namespace)
        assert anyone <= have
        extra, missing = sorted(have - anyone - allowed), sorted(allowed - (have - anyone))
        assert (extra, missing) == ([], []), f"{installed.path} in {namespace}: beyond the allow-list {extra}, " \
                                             f"missing {missing}"


def test_the_namespaced_install_cannot_touch_secrets_elsewhere(installed: Install) -> None:
    cluster = installed.cluster
    kubeconfig = sa_kubeconfig(cluster, OPERATOR_NS, SA, installed.workdir / "refused.kubeconfig")
    cluster.kubectl("create", "secret", "generic", "not-yours", "-n", OTHER_NS, "--from-literal=k=v")

    def allowed(*args: str) -> bool:
        return cluster.kubectl("auth", "can-i", *args, kubeconfig_path=kubeconfig, check=False).stdout.strip() == "yes"

    assert allowed("get", "secrets", "-n", SERVED_NS)
    if installed.mode == "cluster-wide":
        assert allowed("get", "secrets", "-n", OTHER_NS)  # by design: it serves every namespace
        return
    for verb in ("get", "list", "watch", "create", "patch"):
        for namespace in (OTHER_NS, "kube-system", OPERATOR_NS):
            assert not allowed(verb, "secrets", "-n", namespace), f"{verb} secrets in {namespace}"
    for args in (("get", "secret", "not-yours", "-n", OTHER_NS), ("get", "secrets", "-A")):
        result = cluster.kubectl(*args, kubeconfig_path=kubeconfig, check=False)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr


def test_the_pod_template_passes_restricted_pod_security(installed: Install) -> None:
    cluster = installed.cluster
    if installed.path.startswith("helm"):  # Helm's --create-namespace makes a plain namespace: as the README says
        cluster.kubectl("label", "namespace", OPERATOR_NS, "--overwrite",
                        "pod-security.kubernetes.io/enforce=restricted")
    labels = get_json(cluster, "namespace", OPERATOR_NS)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    template = installed.deployment()["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "px-security-operator-check", "namespace": OPERATOR_NS,
                        "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode == 0, result.stderr  # PodSecurity admission refuses a pod that violates it
    assert "violate" not in result.stderr and "violate" not in installed.output


def test_the_installed_operator_reconciles_what_it_serves(installed: Install) -> None:
    cluster = installed.cluster
    deployed = run_as_deployment(cluster, installed.deployment(), installed.workdir, "operator")
    try:
        wait_for(lambda: deployed.process.output().count("became the leader"), 30, what="the Lease")
        assert deployed.health() == 200 and installed.deployment()["spec"]["replicas"] == 2
        wait_for(lambda: deployed.readiness() == 200, 10, what="readiness")
        assert deployed.metrics().value("pxsec_leader") == 1
        sample = ROOT / "examples" / "self-signed-shared-secret.yaml"
        cluster.kubectl("apply", "-n", OTHER_NS, "-f", str(sample))
        cluster.kubectl("apply", "-n", SERVED_NS, "-f", str(sample))

        def ready(namespace: str) -> bool:
            obj = get_json(cluster, "pxsecurity", "px-cluster", "-n", namespace)
            conds = (obj.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for(lambda: ready(SERVED_NS), 90, what="the sample Ready")
        secrets = {s["metadata"]["name"] for s in get_json(cluster, "secrets", "-n", SERVED_NS)["items"]}
        assert {"px-shared-secret", "px-system-secrets", "px-admin-token", "px-user-token"} <= secrets
        if installed.mode == "cluster-wide":
            wait_for(lambda: ready(OTHER_NS), 60, what="the sample elsewhere Ready")
        else:
            # Applied first, and still untouched after the served one is Ready: not reconciled, no Secret made.
            assert "status" not in get_json(cluster, "pxsecurity", "px-cluster", "-n", OTHER_NS)
            elsewhere = {s["metadata"]["name"] for s in get_json(cluster, "secrets", "-n", OTHER_NS)["items"]}
            assert elsewhere <= {"not-yours"}
        assert_no_leaks(cluster, SERVED_NS, deployed.process.output())
    finally:
        code = deployed.process.stop()
        print(f"--- operator log (tail) ---\n{deployed.process.output()[-5000:]}")
    log = deployed.process.output()
    assert code == 0
    # A refusal shows as a 403 status ("... 403 ...", "status=403", "'code': 403") or the word; a timestamp's
    # milliseconds (",403") are not one.
    refusals = re.findall(r"(?<![,.\d])403(?!\d)|[Ff]orbidden", log)
    assert refusals == [], log[-3000:]
    assert [line for line in log.splitlines() if "permission" in line.lower()] == []
    lease = get_json(cluster, "lease", SA, "-n", OPERATOR_NS)
    assert lease["spec"].get("holderIdentity", "") == ""  # released on the way out: a successor starts at once


def test_values_of_the_install_are_what_the_docs_say(installed: Install) -> None:
    deploy = installed.deployment()
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--leader-elect" in args and f"--leader-election-id={SA}" in args
    assert ("--namespace=portworx" in args) == (installed.mode == "namespaced")
    service = get_json(installed.cluster, "service", f"{SA}-metrics", "-n", OPERATOR_NS)
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert yaml.safe_load(json.dumps(deploy["spec"]["selector"]["matchLabels"]))
