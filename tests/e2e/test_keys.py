"""Key material against the real control plane, with the operator under the manifests' RBAC:
generate once, adopt what exists, never change a key silently, loss is loud."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, pxsec, secret_data, wait_ready
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]

FIRST_PASS = "reconciled (first pass since start)"


def cr(name: str = "px-cluster", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {}}}
    body.update(spec)
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": name}, "spec": body}


def all_secret_data(cluster: Cluster, namespace: str) -> dict[str, dict[str, bytes]]:
    out = {}
    for item in get_json(cluster, "secrets", "-n", namespace).get("items", []):
        out[item["metadata"]["name"]] = {k: base64.b64decode(v) for k, v in (item.get("data") or {}).items()}
    return out


def resource_versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    out = {}
    for kind in ("secrets", "configmaps", "pxsecurities"):
        for item in get_json(cluster, kind, "-n", namespace).get("items", []):
            out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def status_secret(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in obj["status"]["secrets"] if s["name"] == name)


def events(cluster: Cluster, namespace: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(cluster, "events", "-n", namespace,
                                           "--field-selector", f"reason={reason}").get("items", [])
    return items


def restart_and_settle(cluster: Cluster, operator: OperatorProcess, namespace: str, name: str) -> None:
    """Restart the operator and wait until it has reconciled this object again (observed in its log)."""
    line = f"{namespace}/{name}: {FIRST_PASS}"
    seen = operator.output().count(line)
    operator.restart()
    wait_for(lambda: operator.output().count(line) > seen, 60, what="first reconcile after restart")
    wait_ready(cluster, namespace, name)


FULL_SPEC = {
    "selfSigned": {
        "issuer": "operator.portworx.io",
        "sharedSecret": {},
        "rsa": {"secretName": "px-jwt-rsa"},  # default 4096 bits: generated off the event loop
        "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-256"},
    },
}


def test_generate_once_across_restarts_reapply_and_recreate(cluster: Cluster, operator: OperatorProcess,
                                                            namespace: str) -> None:
    doc = cr(**FULL_SPEC)
    apply(cluster, namespace, doc)
    obj = wait_ready(cluster, namespace, "px-cluster")
    original = all_secret_data(cluster, namespace)
    assert set(original) >= {"px-system-secrets", "px-shared-secret", "px-jwt-rsa", "px-jwt-ecdsa"}
    assert {s["name"]: s["origin"] for s in obj["status"]["secrets"]} == {
        "px-system-secrets": "Generated", "px-shared-secret": "Generated",
        "px-jwt-rsa": "Generated", "px-jwt-ecdsa": "Generated"}
    key = serialization.load_pem_private_key(original["px-jwt-rsa"]["private.pem"], None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096

    for _ in range(3):
        restart_and_settle(cluster, operator, namespace, "px-cluster")
        assert all_secret_data(cluster, namespace) == original

    apply(cluster, namespace, doc)  # re-apply: nothing changes
    wait_ready(cluster, namespace, "px-cluster")
    assert all_secret_data(cluster, namespace) == original

    cluster.kubectl("delete", "pxsecurity", "px-cluster", "-n", namespace, "--wait=true")
    assert all_secret_data(cluster, namespace) == original  # Retain: the Secrets stay
    apply(cluster, namespace, doc)
    again = wait_ready(cluster, namespace, "px-cluster")
    assert all_secret_data(cluster, namespace) == original
    # Our marker survives re-creation: they are still known as generated, not "adopted".
    assert {s["origin"] for s in again["status"]["secrets"]} == {"Generated"}
    fingerprints = {s["fingerprint"] for s in obj["status"]["secrets"]}
    assert {s["fingerprint"] for s in again["status"]["secrets"]} == fingerprints


def test_ready_resource_is_not_rewritten_by_a_forced_reconcile(cluster: Cluster, operator: OperatorProcess,
                                                               namespace: str) -> None:
    apply(cluster, namespace, cr(secretTemplate={"labels": {"team": "storage"}}))
    wait_ready(cluster, namespace, "px-cluster")
    # Let the follow-up reconciles caused by our own writes (status, metadata) drain first.
    wait_for(lambda: resource_versions(cluster, namespace) == resource_versions(cluster, namespace), 10)
    before = resource_versions(cluster, namespace)
    restart_and_settle(cluster, operator, namespace, "px-cluster")
    assert resource_versions(cluster, namespace) == before


def test_deleted_secret_is_regenerated_loudly(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    apply(cluster, namespace, cr())
    obj = wait_ready(cluster, namespace, "px-cluster")
    old = secret_data(cluster, namespace, "px-shared-secret")
    assert status_secret(obj, "px-shared-secret")["revision"] == 1

    cluster.kubectl("delete", "secret", "px-shared-secret", "-n", namespace)

    def regenerated() -> dict[str, Any] | None:
        o = pxsec(cluster, namespace, "px-cluster")
        entry = next((s for s in (o.get("status") or {}).get("secrets", []) if s["name"] == "px-shared-secret"), {})
        return o if entry.get("revision") == 2 else None

    obj = wait_for(regenerated, 60, what="revision 2 of px-shared-secret")
    new = secret_data(cluster, namespace, "px-shared-secret")
    assert new["shared-secret"] != old["shared-secret"] and len(new["shared-secret"]) == 64
    keys = condition(obj, "KeysReady")
    assert keys["status"] == "True" and keys["reason"] == "SecretRegenerated"
    lost = wait_for(lambda: events(cluster, namespace, "SecretLost"), 30, what="SecretLost event")
    assert lost[0]["type"] == "Warning" and "px-shared-secret" in lost[0]["message"]
    assert "invalid" in lost[0]["message"]


def test_hand_changed_value_is_respected_with_a_new_revision(cluster: Cluster, operator: OperatorProcess,
                                                             namespace: str) -> None:
    apply(cluster, namespace, cr())
    obj = wait_ready(cluster, namespace, "px-cluster")
    before = status_secret(obj, "px-shared-secret")
    mine = "M" * 64
    cluster.kubectl("patch", "secret", "px-shared-secret", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"stringData": {"shared-secret": mine}}))

    def bumped() -> dict[str, Any] | None:
        entry = status_secret(pxsec(cluster, namespace, "px-cluster"), "px-shared-secret")
        return entry if entry["revision"] == before["revision"] + 1 else None

    after = wait_for(bumped, 60, what="new revision after a hand change")
    assert after["fingerprint"] != before["fingerprint"]
    assert secret_data(cluster, namespace, "px-shared-secret")["shared-secret"] == mine.encode()
    wait_for(lambda: events(cluster, namespace, "SecretChanged"), 30, what="SecretChanged event")


def test_user_secret_is_adopted_and_only_missing_keys_are_added(cluster: Cluster, operator: OperatorProcess,
                                                                namespace: str) -> None:
    mine = "U" * 64
    cluster.kubectl("create", "secret", "generic", "px-system-secrets", "-n", namespace,
                    f"--from-literal=system-secret={mine}", "--from-literal=note=kept")
    apply(cluster, namespace, cr())
    obj = wait_ready(cluster, namespace, "px-cluster")
    data = secret_data(cluster, namespace, "px-system-secrets")
    assert data["system-secret"] == mine.encode() and data["note"] == b"kept"
    assert len(data["apps-secret"]) == 64
    entry = status_secret(obj, "px-system-secrets")
    assert entry["origin"] == "Adopted" and entry["keys"] == ["apps-secret", "system-secret"]
    # An adopted Secret carries none of our markers: it stays the user's.
    labels = get_json(cluster, "secret", "px-system-secrets", "-n", namespace)["metadata"].get("labels") or {}
    assert "app.kubernetes.io/managed-by" not in labels


def test_invalid_user_key_is_reported_and_never_overwritten(cluster: Cluster, operator: OperatorProcess,
                                                            namespace: str, tmp_path: Any) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    (tmp_path / "private.pem").write_bytes(pem)
    cluster.kubectl("create", "secret", "generic", "px-jwt-rsa", "-n", namespace,
                    f"--from-file=private.pem={tmp_path / 'private.pem'}")
    rv = get_json(cluster, "secret", "px-jwt-rsa", "-n", namespace)["metadata"]["resourceVersion"]
    apply(cluster, namespace, cr(selfSigned={"issuer": "operator.portworx.io", "rsa": {"secretName": "px-jwt-rsa"}}))

    def invalid() -> dict[str, Any] | None:
        cond = condition(pxsec(cluster, namespace, "px-cluster"), "KeysReady")
        return cond if cond.get("reason") == "InvalidKeyMaterial" else None

    cond = wait_for(invalid, 60, what="InvalidKeyMaterial")
    assert cond["status"] == "False" and "1024 bits" in cond["message"] and "px-jwt-rsa" in cond["message"]
    ready = condition(pxsec(cluster, namespace, "px-cluster"), "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidKeyMaterial"
    wait_for(lambda: events(cluster, namespace, "InvalidKeyMaterial"), 30, what="InvalidKeyMaterial event")
    secret = get_json(cluster, "secret", "px-jwt-rsa", "-n", namespace)
    assert secret["metadata"]["resourceVersion"] == rv
    assert base64.b64decode(secret["data"]["private.pem"]) == pem


def test_secret_template_follows_changes_and_cr_labels_are_never_copied(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    doc = cr(secretTemplate={"labels": {"team": "storage"}, "annotations": {"owner": "platform"}})
    doc["metadata"]["labels"] = {"argocd.argoproj.io/instance": "px-security"}
    apply(cluster, namespace, doc)
    wait_ready(cluster, namespace, "px-cluster")

    def meta() -> dict[str, Any]:
        m: dict[str, Any] = get_json(cluster, "secret", "px-shared-secret", "-n", namespace)["metadata"]
        return m

    m = meta()
    assert m["labels"]["team"] == "storage" and m["annotations"]["owner"] == "platform"
    assert m["labels"]["app.kubernetes.io/managed-by"] == "px-security-operator"
    assert "argocd.argoproj.io/instance" not in m["labels"]
    value = secret_data(cluster, namespace, "px-shared-secret")

    doc["spec"]["secretTemplate"] = {"labels": {"tier": "gold"}}
    apply(cluster, namespace, doc)
    wait_for(lambda: meta()["labels"].get("tier") == "gold" and "team" not in meta()["labels"]
             and "owner" not in (meta().get("annotations") or {}), 60, what="template change on the Secret")
    assert secret_data(cluster, namespace, "px-shared-secret") == value


def test_delete_policy_lets_the_garbage_collector_remove_generated_secrets(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("create", "secret", "generic", "px-shared-secret", "-n", namespace,
                    f"--from-literal=shared-secret={'B' * 64}")
    apply(cluster, namespace, cr(deletionPolicy="Delete"))
    wait_ready(cluster, namespace, "px-cluster")
    owners = get_json(cluster, "secret", "px-system-secrets", "-n", namespace)["metadata"].get("ownerReferences")
    assert owners and owners[0]["kind"] == "PxSecurity" and owners[0]["name"] == "px-cluster"
    cluster.kubectl("delete", "pxsecurity", "px-cluster", "-n", namespace)
    wait_for(lambda: "px-system-secrets" not in all_secret_data(cluster, namespace), 90,
             what="garbage collection of px-system-secrets")
    # The Secret the user brought is never owned, so it is never collected.
    assert secret_data(cluster, namespace, "px-shared-secret")["shared-secret"] == b"B" * 64


def test_twenty_resources_in_twenty_namespaces_all_become_ready(cluster: Cluster, operator: OperatorProcess) -> None:
    names = [f"scale-{i:02d}-{operator.popen.pid if operator.popen else 0}" for i in range(20)]
    for ns in names:
        cluster.kubectl("create", "namespace", ns)
    try:
        for ns in names:
            apply(cluster, ns, cr())
        for ns in names:
            wait_ready(cluster, ns, "px-cluster", timeout=180)
            assert len(secret_data(cluster, ns, "px-system-secrets")["system-secret"]) == 64
    finally:
        for ns in names:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
