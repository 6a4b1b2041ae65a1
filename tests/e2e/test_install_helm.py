"""The Helm chart's life with the real helm (built from the module proxy: tests/tools/helm) on a control plane
of its own: lint; template accepted by the API server (server-side dry run); install; upgrade from
cluster-wide to namespaced (the ClusterRole gives way to Roles, and `kubectl auth can-i` follows); and
uninstall, which leaves behind exactly what the README says: the CRD (Helm never deletes what crds/
installed), every PxSecurity, the key Secrets and tokens, and the Lease the operator made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pxsec.devcluster.cluster import Cluster
from tests.support.helpers import get_json, wait_for
from tests.support.installed import ROOT, deployment, private_cluster, run_as_deployment, sa_kubeconfig, tool_or_fail
from tests.tools.build import HELM

pytestmark = [pytest.mark.e2e, pytest.mark.go]

CHART = ROOT / "charts" / "px-security-operator"
RELEASE = "px-security-operator"
NS = "pxsec-system"


@pytest.fixture(scope="module")
def helm_cluster() -> Iterator[tuple[Cluster, Path]]:
    with private_cluster() as cluster:
        cluster.kubectl("create", "namespace", "portworx")
        yield cluster, tool_or_fail(HELM)


def names(cluster: Cluster, kind: str, *args: str) -> set[str]:
    return {i["metadata"]["name"] for i in get_json(cluster, kind, *args).get("items", [])}


def test_lint_and_template_are_accepted_by_the_api_server(helm_cluster: tuple[Cluster, Path]) -> None:
    cluster, helm = helm_cluster
    lint = cluster.helm(helm, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in lint.stdout
    cluster.kubectl("create", "namespace", NS)
    for sets in ((), ("--set", "watchNamespaces={portworx}")):
        rendered = cluster.helm(helm, "template", RELEASE, str(CHART), "--namespace", NS, *sets).stdout
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        assert result.returncode == 0, result.stderr
    cluster.kubectl("delete", "namespace", NS, "--wait=false")
    wait_for(lambda: not get_json(cluster, "namespace", NS), 60, what="the namespace gone")


def test_install_upgrade_uninstall(helm_cluster: tuple[Cluster, Path], tmp_path: Path) -> None:
    cluster, helm = helm_cluster
    cluster.helm(helm, "install", RELEASE, str(CHART), "--namespace", NS, "--create-namespace")
    cluster.wait_established("pxsecurities.pxsec.dev")
    assert "STATUS: deployed" in cluster.helm(helm, "status", RELEASE, "-n", NS).stdout
    assert RELEASE in names(cluster, "clusterroles")
    assert "pxsecurity-warnings.pxsec.dev" in names(cluster, "validatingadmissionpolicybindings")

    # Run it (as the Deployment would) and leave something behind for the uninstall to (not) remove.
    deployed = run_as_deployment(cluster, deployment(cluster, NS, RELEASE), tmp_path, "operator")
    try:
        cluster.kubectl("apply", "-n", "portworx", "-f", str(ROOT / "examples" / "self-signed-shared-secret.yaml"))
        wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                             (get_json(cluster, "pxsecurity", "px-cluster", "-n", "portworx").get("status") or {})
                             .get("conditions", [])), 90, what="Ready")
    finally:
        deployed.process.stop()

    # Upgrade: serve one namespace only, three replicas. The ClusterRole goes, a Role comes.
    kubeconfig = sa_kubeconfig(cluster, NS, RELEASE, tmp_path / "sa.kubeconfig")

    def can(verb: str, resource: str, namespace: str) -> bool:
        out = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, kubeconfig_path=kubeconfig,
                              check=False).stdout.strip()
        return out == "yes"

    assert can("get", "secrets", "default")
    cluster.helm(helm, "upgrade", RELEASE, str(CHART), "--namespace", NS, "--set", "watchNamespaces={portworx}",
                 "--set", "replicaCount=3")
    assert deployment(cluster, NS, RELEASE)["spec"]["replicas"] == 3
    assert RELEASE not in names(cluster, "clusterroles") and f"{RELEASE}-discovery" in names(cluster, "clusterroles")
    assert RELEASE in names(cluster, "roles", "-n", "portworx")
    assert can("get", "secrets", "portworx") and not can("get", "secrets", "default")
    args = deployment(cluster, NS, RELEASE)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=portworx" in args

    # Uninstall: the chart's objects go; the CRD, the resources, their Secrets and the Lease stay.
    cluster.helm(helm, "uninstall", RELEASE, "--namespace", NS)
    assert not get_json(cluster, "deployment", RELEASE, "-n", NS)
    assert not {n for n in names(cluster, "clusterroles") if n.startswith(RELEASE)}
    assert not names(cluster, "validatingadmissionpolicies") and not names(cluster, "validatingadmissionpolicybindings")
    assert not names(cluster, "roles", "-n", "portworx") and not names(cluster, "serviceaccounts", "-n", NS) - {
        "default"}
    assert get_json(cluster, "crd", "pxsecurities.pxsec.dev"), "Helm never deletes a CRD from crds/"
    assert get_json(cluster, "pxsecurity", "px-cluster", "-n", "portworx")
    assert {"px-shared-secret", "px-system-secrets", "px-admin-token"} <= names(cluster, "secrets", "-n", "portworx")
    assert get_json(cluster, "lease", RELEASE, "-n", NS), "the operator's Lease is not the chart's"
