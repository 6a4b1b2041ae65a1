"""Changes to a running StorageCluster against the real API server: announced (status.pendingChange, a
Warning Event), held (no write to the StorageCluster, counted in the audit log), applied in one write once
approved, approved again for a second change; changePolicy Automatic applies at once; a fresh install is
never gated. The StorageCluster's phase is set through its status subresource, as the Portworx Operator
sets it. The Portworx Operator's stand-in runs beside ours, with StorageNodes as its Portworx pods: what a
change costs is counted in the pods it restarts (none while a change waits; one per StorageNode once it is
applied). TokensAccepted judges with the public key the StorageCluster actually mounts."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from pxsec import keymaterial
from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, pxsec
from tests.support.audit import audit_log, now, writes
from tests.support.helpers import get_json, wait_for
from tests.support.portworx import PortworxOperatorStandIn, create_storage_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("storagecluster_crd", "leak_check")]

OURS = "system:serviceaccount:pxsec-system:px-security-operator"
NODES = 3


def storagecluster(cluster: Cluster, namespace: str, phase: str | None) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
        "metadata": {"name": "px-cluster", "namespace": namespace},
        "spec": {"image": "portworx/oci-monitor:3.2.0", "security": {"enabled": True, "auth": {
            "guestAccess": "Enabled", "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h",
                                                     "sharedSecret": "px-shared-secret"}}}}}))
    if phase:
        cluster.kubectl("patch", "storagecluster", "px-cluster", "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": {"phase": phase}}))


def its_secrets_made(cluster: Cluster, namespace: str) -> None:
    """The stand-in has saved its finalizer and made its four Secrets: ours comes second, as with an
    existing cluster (no race of two creators for the same Secret)."""
    names = {"px-shared-secret", "px-system-secrets", "px-admin-token", "px-user-token"}
    wait_for(lambda: names <= {i["metadata"]["name"] for i in get_json(cluster, "secrets", "-n", namespace)["items"]},
             30, what="the Portworx Operator's Secrets")


def pxsecurity(issuer: str, **storage_cluster: Any) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
            "spec": {"storageCluster": {"name": "px-cluster", "apply": True, **storage_cluster},
                     "selfSigned": {"issuer": issuer, "sharedSecret": {}},
                     "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"]}]}}


def issuer(cluster: Cluster, namespace: str) -> str:
    sc = get_json(cluster, "storagecluster", "px-cluster", "-n", namespace)
    return str(sc["spec"]["security"]["auth"]["selfSigned"]["issuer"])


def waiting(cluster: Cluster, namespace: str, other_than: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = pxsec(cluster, namespace, "px")
        pending = (obj.get("status") or {}).get("pendingChange") or {}
        cond = condition(obj, "StorageClusterApplied")
        ok = cond.get("reason") == "AwaitingApproval" and pending.get("id") and pending["id"] != other_than
        return obj if ok else None

    result: dict[str, Any] = wait_for(check, 60, what="a change awaiting approval")
    return result


def sc_writes(cluster: Cluster, namespace: str, since: Any) -> list[Any]:
    return [w for w in writes(audit_log(cluster), namespace=namespace, since=since, users={OURS})
            if w.resource == "storageclusters"]


def reasons(cluster: Cluster, namespace: str) -> list[str]:
    return [e["reason"] for e in get_json(cluster, "events", "-n", namespace)["items"]
            if e["involvedObject"]["name"] == "px"]


def test_a_change_to_a_running_cluster_waits_is_approved_once_and_the_next_waits_again(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_operator: PortworxOperatorStandIn) -> None:
    create_storage_nodes(cluster, namespace, NODES)
    storagecluster(cluster, namespace, "Running")
    its_secrets_made(cluster, namespace)
    start = now()
    apply(cluster, namespace, pxsecurity("pxsec.example"))
    obj = waiting(cluster, namespace)
    first = obj["status"]["pendingChange"]
    assert first["effects"][0]["type"] == "RollingRestart"
    assert "operator.portworx.io → pxsec.example" in first["effects"][0]["message"]
    assert condition(obj, "StorageClusterApplied")["message"].endswith(
        f"approve: set spec.storageCluster.approvedChange: {first['id']}")
    assert condition(obj, "TokensAccepted")["status"] == "True"  # ours still minted under the trusted issuer
    assert issuer(cluster, namespace) == "operator.portworx.io"
    assert sc_writes(cluster, namespace, start) == []
    wait_for(lambda: "AwaitingApproval" in reasons(cluster, namespace), 30, what="the Warning Event")
    portworx_operator.wait_for_passes(2)
    assert portworx_operator.restarts() == 0  # waiting costs nothing

    approved = now()
    apply(cluster, namespace, pxsecurity("pxsec.example", approvedChange=first["id"]))
    wait_for(lambda: issuer(cluster, namespace) == "pxsec.example", 60, what="the approved change applied")
    wait_for(lambda: condition(pxsec(cluster, namespace, "px"), "StorageClusterApplied")["reason"] == "Applied", 30,
             what="StorageClusterApplied=Applied")
    assert [w.verb for w in sc_writes(cluster, namespace, approved)] == ["patch"]  # one write
    wait_for(lambda: portworx_operator.restarts() == NODES, 30, what="every Portworx pod restarted")
    assert "ChangeApplied" in reasons(cluster, namespace)
    assert (pxsec(cluster, namespace, "px").get("status") or {}).get("pendingChange") is None

    again = now()
    apply(cluster, namespace, pxsecurity("pxsec-2.example", approvedChange=first["id"]))
    second = waiting(cluster, namespace, other_than=first["id"])
    assert "approves another change, not this one" in condition(second, "StorageClusterApplied")["message"]
    assert issuer(cluster, namespace) == "pxsec.example" and sc_writes(cluster, namespace, again) == []
    portworx_operator.wait_for_passes(2)
    assert portworx_operator.restarts() == NODES  # once, for the approved change only


def test_automatic_applies_at_once_and_a_fresh_install_is_never_gated(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_operator: PortworxOperatorStandIn) -> None:
    storagecluster(cluster, namespace, None)  # Portworx does not run yet
    its_secrets_made(cluster, namespace)
    apply(cluster, namespace, pxsecurity("pxsec.example"))
    wait_for(lambda: issuer(cluster, namespace) == "pxsec.example", 60, what="the fresh install applied")
    assert "ChangeApplied" not in reasons(cluster, namespace)
    portworx_operator.wait_for_passes(1)  # it has seen the fresh install: no pod to restart
    assert portworx_operator.restarts() == 0
    cluster.kubectl("patch", "storagecluster", "px-cluster", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": {"phase": "Running"}}))
    create_storage_nodes(cluster, namespace, NODES)
    apply(cluster, namespace, pxsecurity("pxsec-2.example", changePolicy="Automatic"))
    wait_for(lambda: issuer(cluster, namespace) == "pxsec-2.example", 60, what="the automatic change applied")
    wait_for(lambda: "ChangeApplied" in reasons(cluster, namespace), 30, what="the ChangeApplied Event")
    assert (pxsec(cluster, namespace, "px").get("status") or {}).get("pendingChange") is None
    wait_for(lambda: portworx_operator.restarts() == NODES, 30, what="every Portworx pod restarted")
    portworx_operator.wait_for_passes(2)
    assert portworx_operator.restarts() == NODES


def test_tokens_accepted_judges_with_the_rsa_key_the_storagecluster_mounts(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    # Someone else's StorageCluster (apply: false: we never write it) mounts an RSA public key of its own.
    _, theirs = keymaterial.generate_rsa(2048)
    cluster.kubectl("create", "secret", "generic", "other-rsa", "-n", namespace, "--from-file=pub=/dev/stdin",
                    input=theirs.decode())

    def mounting(secret: str, key: str) -> str:
        return yaml.safe_dump({
            "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
            "metadata": {"name": "px-cluster", "namespace": namespace},
            "spec": {"image": "portworx/oci-monitor:3.2.0",
                     "security": {"enabled": True, "auth": {"selfSigned": {
                         "issuer": "operator.portworx.io", "sharedSecret": "px-shared-secret"}}},
                     "env": [{"name": "PORTWORX_AUTH_JWT_RSA_PUBKEY", "value": "/etc/keys/rsa/public.pem"}],
                     "volumes": [{"name": "rsa", "mountPath": "/etc/keys/rsa", "secret": {
                         "secretName": secret, "items": [{"key": key, "path": "public.pem"}]}}]}})

    cluster.kubectl("apply", "-f", "-", input=mounting("other-rsa", "pub"))
    apply(cluster, namespace, {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
        "spec": {"storageCluster": {"name": "px-cluster", "apply": False},
                 "selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                                "rsa": {"secretName": "px-jwt-rsa"}},
                 "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"],
                             "signingKey": "RSA"}]}})

    def accepted(reason: str) -> dict[str, Any] | None:
        cond = condition(pxsec(cluster, namespace, "px"), "TokensAccepted")
        return cond if cond.get("reason") == reason else None

    rejected = wait_for(lambda: accepted("WouldBeRejected"), 60, what="TokensAccepted=False, WouldBeRejected")
    assert rejected["status"] == "False"
    assert "RSA key from Secret other-rsa key pub" in rejected["message"] and "px-ops-token" in rejected["message"]
    # The StorageCluster mounts our key instead: the same token is judged accepted, and the message says where
    # the key came from.
    cluster.kubectl("apply", "-f", "-", input=mounting("px-jwt-rsa", "public.pem"))
    ok = wait_for(lambda: accepted("Accepted"), 60, what="TokensAccepted=True once our key is mounted")
    assert ok["status"] == "True" and "px-jwt-rsa" in ok["message"]
