"""What an object costs in API round trips, counted in the real API server's audit log (issue:
performance). A new object costs no read, only the writes that make it: its Secrets and ConfigMap created
without asking first (the watches say they are absent), one status patch and one Event per reason. (A
reconcile with nothing to do makes no request at all: tests/e2e/test_metrics.py, where the reconcile
counter tells when it ran.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.devcluster.controlplane import OPERATOR_USER
from tests.e2e.conftest import apply, wait_ready
from tests.support.audit import AuditWrite, audit_log, now, requests
from tests.support.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]

SPEC: dict[str, Any] = {
    "selfSigned": {"sharedSecret": {}, "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-256"}},
    "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "signingKey": "SharedSecret"}],
}
QUIET = 3.0  # seconds without a request of the operator in the namespace: its reconciles are over


def calls(rs: list[AuditWrite]) -> Counter[tuple[str, str, int]]:
    """(verb, resource[/subresource], code) -> how many."""
    return Counter((r.verb, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.code) for r in rs)


def settled(cluster: Cluster, namespace: str, since: Any, until_seen: tuple[str, str] | None = None
            ) -> list[AuditWrite]:
    """The operator's requests in `namespace` since `since`, once it has been quiet there for QUIET s
    (and, if given, a request of (verb, resource) is among them)."""
    log = audit_log(cluster)
    state: dict[str, Any] = {"n": -1, "at": 0.0}

    def quiet() -> list[AuditWrite] | None:
        rs = requests(log, namespace=namespace, since=since, users={OPERATOR_USER})
        if until_seen and not any((r.verb, r.resource) == until_seen for r in rs):
            return None
        if len(rs) != state["n"]:
            state["n"], state["at"] = len(rs), now().timestamp()
            return None
        return rs if now().timestamp() - state["at"] >= QUIET else None

    result: list[AuditWrite] = wait_for(quiet, 60, what="the operator quiet in the namespace", interval=0.5)
    return result


def test_a_new_object_costs_no_read_only_the_writes_that_make_it(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    start = now()
    apply(cluster, namespace, {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity",
                               "metadata": {"name": "px"}, "spec": SPEC})
    wait_ready(cluster, namespace, "px")
    rs = settled(cluster, namespace, start, until_seen=("create", "events"))
    assert calls(rs) == {
        ("create", "secrets", 201): 4,  # shared secret, system secret, ECDSA key, token: no GET before
        ("create", "configmaps", 201): 1,
        ("patch", "pxsecurities/status", 200): 1,
        ("create", "events", 201): 2,  # SecretGenerated (all three key Secrets), TokenMinted
    }, rs  # and no read: the PxSecurity as the watch delivered it (new: no status to be stale about)


def test_a_secret_brought_before_the_object_is_adopted_not_written(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    """Known present: read and adopted. (Had the watch not delivered it yet, the create would have met a
    409 and the live read the same Secret: a stale "absent" costs a request, never a key.)"""
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "px-shared-secret"},
                               "stringData": {"shared-secret": "b" * 48}})
    start = now()
    apply(cluster, namespace, {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity",
                               "metadata": {"name": "px"}, "spec": {"selfSigned": {"sharedSecret": {}}}})
    obj = wait_ready(cluster, namespace, "px")
    entry = next(s for s in obj["status"]["secrets"] if s["name"] == "px-shared-secret")
    assert entry["origin"] == "Adopted"
    value = cluster.kubectl("get", "secret", "px-shared-secret", "-n", namespace,
                            "-o", "jsonpath={.data.shared-secret}").stdout
    assert value == "YmJi" * 16  # base64 of 48 times "b": untouched
    rs = settled(cluster, namespace, start)
    assert not [r for r in rs if r.resource == "secrets" and r.name == "px-shared-secret"
                and r.verb != "get" and r.code < 300], rs


@pytest.mark.usefixtures("storagecluster_crd")
@pytest.mark.parametrize("present", [False, True], ids=["storagecluster-absent", "storagecluster-present"])
def test_an_object_naming_a_storagecluster_costs_no_read_either(
        cluster: Cluster, operator: OperatorProcess, namespace: str, present: bool) -> None:
    """The shape nearly every user's object has (issue 23): `storageCluster: {name: px-cluster}`. The
    StorageCluster, there or not, is known from the watch: no GET, and no more writes than the object
    needs (not applying it, the StorageCluster is only read)."""
    if present:
        apply(cluster, namespace, {"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
                                   "metadata": {"name": "px-cluster"}, "spec": {"image": "portworx/oci-monitor:3.2.0"}})
    start = now()
    apply(cluster, namespace, {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
                               "spec": {**SPEC, "storageCluster": {"name": "px-cluster"}}})
    wait_ready(cluster, namespace, "px")
    rs = settled(cluster, namespace, start, until_seen=("create", "events"))
    assert not [r for r in rs if r.verb in ("get", "list")], rs
    assert calls(rs) == {
        ("create", "secrets", 201): 4,
        ("create", "configmaps", 201): 1,
        ("patch", "pxsecurities/status", 200): 1,
        ("create", "events", 201): 2,
    }, rs
