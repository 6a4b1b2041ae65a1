"""The first end-to-end slice: CRD established, a PxSecurity created, the operator (running as its
ServiceAccount under manifests/ RBAC) creates the system Secret, the operator restarts, and the
Secret's value is byte-for-byte unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, secret_data, wait_ready
from tests.support.helpers import get_json

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]


def test_crd_established(cluster: Cluster, crds_installed: None) -> None:
    out = cluster.kubectl(
        "get", "crd", "pxsecurities.pxsec.dev", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    ).stdout
    assert out == "True"


def test_operator_is_not_cluster_admin(cluster: Cluster, operator: OperatorProcess) -> None:
    """The operator's identity is the manifests' ServiceAccount, with only the rights granted there."""
    kubeconfig = operator.kubeconfig
    who = cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig_path=kubeconfig
    ).stdout
    assert who == "system:serviceaccount:pxsec-system:px-security-operator"
    for verb, resource in (("update", "secrets"), ("delete", "namespaces"), ("create", "pods")):
        denied = cluster.kubectl("auth", "can-i", verb, resource, "-A", kubeconfig_path=kubeconfig, check=False)
        assert denied.stdout.strip() == "no", (verb, resource)
    allowed = cluster.kubectl("auth", "can-i", "create", "secrets", "-A", kubeconfig_path=kubeconfig, check=False)
    assert allowed.stdout.strip() == "yes"


def test_system_secret_survives_operator_restart(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "pxsec.dev/v1alpha1",
            "kind": "PxSecurity",
            "metadata": {"name": "px-cluster"},
            "spec": {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {}}},
        },
    )
    obj = wait_ready(cluster, namespace, "px-cluster")
    # GitOps: the operator leaves no finalizer, no kopf bookkeeping and no spec change on the object.
    assert not obj["metadata"].get("finalizers")
    assert not [a for a in obj["metadata"].get("annotations") or {} if "kopf" in a]
    assert "kopf" not in obj["status"]
    managed = get_json(cluster, "pxsecurity", "px-cluster", "-n", namespace, "--show-managed-fields")
    ours = [m for m in managed["metadata"]["managedFields"] if m["manager"].startswith("px-security-operator")]
    assert ours and all(m.get("subresource") == "status" for m in ours)  # status only, never spec
    before = secret_data(cluster, namespace, "px-system-secrets")
    assert set(before) == {"system-secret", "apps-secret"}
    for value in before.values():
        assert len(value) == 64
    shared_before = secret_data(cluster, namespace, "px-shared-secret")

    operator.restart()
    operator.wait_for_log("px-security-operator started")
    # After the restart the operator re-lists and reconciles; Ready again at the same generation.
    wait_ready(cluster, namespace, "px-cluster")
    assert secret_data(cluster, namespace, "px-system-secrets") == before
    assert secret_data(cluster, namespace, "px-shared-secret") == shared_before


def test_manifests_build_and_pass_server_side_validation(cluster: Cluster, crds_installed: None) -> None:
    """`kubectl apply -f crds/` and `kubectl apply -k manifests/cluster-wide` (CRD, RBAC, Deployment) as a user
    would, checked by the API server (every install path, live: tests/e2e/test_install.py)."""
    root = Path(__file__).resolve().parents[2]
    out = cluster.kubectl("apply", "--dry-run=server", "-f", str(root / "crds")).stdout
    out += cluster.kubectl("apply", "--dry-run=server", "-k", str(root / "manifests" / "cluster-wide")).stdout
    for kind in ("customresourcedefinition.apiextensions.k8s.io/pxsecurities.pxsec.dev",
                 "clusterrole.rbac.authorization.k8s.io/px-security-operator",
                 "serviceaccount/px-security-operator", "deployment.apps/px-security-operator"):
        assert kind in out
