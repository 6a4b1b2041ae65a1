"""The Portworx Operator stand-in (tests/support/portworx_standin.py) does what the real one does to security
objects, observed through the API and counted in kube-apiserver's audit log: the defaults saved in one
full update, the key Secrets' fresh-object PUT, the tokens and what re-mints them, the uninstall.
Our operator does not run here: these tests pin down the neighbour the other e2e tests live beside."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from pxsec.devcluster.cluster import Cluster
from tests.support.audit import AuditWrite, audit_log, count, now, per_object, writes
from tests.support.helpers import get_json, wait_for
from tests.support.portworx import FINALIZER, USER_AGENT, USERNAME, PortworxOperatorStandIn, create_storage_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("storagecluster_crd")]

STC = "storageclusters.core.libopenstorage.org"
SKIP = {"stork.libopenstorage.org/skip-resource": "true"}
KEY_SECRETS = {"px-shared-secret": {"shared-secret"}, "px-system-secrets": {"system-secret", "apps-secret"}}
TOKENS = {"px-admin-token": (["system.admin"], ["*"]), "px-user-token": (["system.user"], [])}
ALL = (*KEY_SECRETS, *TOKENS)
GENERATED = re.compile(r"^[A-Za-z0-9+/]{64}$")  # 64 characters of standard base64


def storagecluster(name: str = "px-cluster", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster", "metadata": {"name": name},
            "spec": spec}


def create(cluster: Cluster, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    out = cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(doc)).stdout
    created: dict[str, Any] = json.loads(out)
    return created


def get_sc(cluster: Cluster, namespace: str, name: str = "px-cluster") -> dict[str, Any]:
    return get_json(cluster, STC, name, "-n", namespace)


def secret(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "secret", name, "-n", namespace)


def value(obj: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(obj["data"][key])


def claims(cluster: Cluster, namespace: str, token_secret: str, key: bytes) -> dict[str, Any]:
    """The token's claims, verified (HS256 with the shared secret's ASCII bytes) as Portworx would."""
    token = value(secret(cluster, namespace, token_secret), "auth-token").decode()
    verified: dict[str, Any] = jwt.decode(token, key, algorithms=["HS256"])
    return verified


def px_writes(cluster: Cluster, namespace: str, since: Any = None) -> list[AuditWrite]:
    return writes(audit_log(cluster), namespace=namespace, since=since, users={USERNAME})


def wait_equal(observe: Callable[[], Any], expected: Any, timeout: float, what: str) -> None:
    """Poll until observe() == expected; on timeout the message shows the last observed value."""
    seen: list[Any] = []

    def check() -> bool:
        seen[:] = [observe()]
        return bool(seen[0] == expected)

    try:
        wait_for(check, timeout, what=what)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}: {seen[0]!r} != {expected!r}") from None


def wait_all_secrets(cluster: Cluster, namespace: str) -> None:
    wait_for(lambda: all(secret(cluster, namespace, n) for n in ALL), 30, what="the four Secrets")


def next_second_after_mint(cluster: Cluster, namespace: str) -> None:
    """Tokens carry whole seconds: a re-mint in the same second as the last one would be identical (and
    is not written). Wait until a later second than both tokens' minting."""
    minted = 0
    for name in TOKENS:
        token = value(secret(cluster, namespace, name), "auth-token").decode()
        minted = max(minted, int(jwt.decode(token, options={"verify_signature": False})["iat"]) + 600)
    wait_for(lambda: time.time() >= minted + 1.05, 5, interval=0.05, what="the next second")


# -- (a) ---------------------------------------------------------------------------------------------


def test_security_on_saves_defaults_in_one_update_and_creates_the_four_secrets(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    start = now()
    created = create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(3)  # and nothing more happens afterwards

    sc = get_sc(cluster, namespace)
    assert sc["metadata"]["uid"] == created["metadata"]["uid"]
    assert sc["spec"]["security"] == {"enabled": True, "auth": {
        "guestAccess": "Enabled",
        "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"},
    }}
    assert sc["metadata"]["finalizers"] == [FINALIZER]

    ws = px_writes(cluster, namespace, since=start)
    assert per_object(ws) == {(USERNAME, "storageclusters", "px-cluster"): 1,
                              **{(USERNAME, "secrets", name): 1 for name in ALL}}
    assert count(ws, resource="storageclusters", verb="update") == 1  # defaults and finalizer: one full PUT
    assert count(ws, resource="secrets", verb="create") == 4
    assert {w.user_agent for w in ws} == {USER_AGENT}
    # One log line per write: verb, kind, name.
    logged = [line for line in portworx_operator.output().splitlines()
              if line.split(" ")[0] in {"create", "update", "delete"}]
    assert sorted(logged) == sorted([f"update StorageCluster {namespace}/px-cluster (defaults)"]
                                    + [f"create Secret {namespace}/{name}" for name in ALL])

    for name, keys in KEY_SECRETS.items():
        obj = secret(cluster, namespace, name)
        assert set(obj["data"]) == keys
        assert obj["metadata"]["annotations"] == SKIP
        assert "labels" not in obj["metadata"] and "ownerReferences" not in obj["metadata"]
        for key in keys:
            assert GENERATED.match(value(obj, key).decode()), f"{name}/{key} is not 64 base64 characters"

    shared = value(secret(cluster, namespace, "px-shared-secret"), "shared-secret")
    for name, (roles, groups) in TOKENS.items():
        obj = secret(cluster, namespace, name)
        assert set(obj["data"]) == {"auth-token"}
        assert obj["metadata"]["annotations"] == SKIP
        assert "labels" not in obj["metadata"]
        assert obj["metadata"]["ownerReferences"] == [{
            "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster", "name": "px-cluster",
            "uid": sc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        got = claims(cluster, namespace, name, shared)
        issued, expires = got.pop("iat"), got.pop("exp")
        assert got == {"iss": "operator.portworx.io", "sub": f"{name}@operator.portworx.io",
                       "email": f"{name}@operator.portworx.io", "name": name, "roles": roles, "groups": groups}
        assert expires - issued == 24 * 3600 + 600  # exp = now + 24h, iat = now - 10 min
        assert abs(issued + 600 - time.time()) < 120


@pytest.mark.parametrize("security", [{"enabled": False}, {"enabled": True, "auth": {"enabled": False}}],
                         ids=["security-off", "auth-off"])
def test_auth_off_leaves_secrets_alone(cluster: Cluster, namespace: str, security: dict[str, Any],
                                       portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    start = now()
    create(cluster, namespace, storagecluster(security=security))
    wait_for(lambda: get_sc(cluster, namespace)["metadata"].get("finalizers"), 30, what="its finalizer")
    portworx_operator.wait_for_passes(3)
    assert get_sc(cluster, namespace)["spec"]["security"] == security  # no defaults without auth
    assert get_json(cluster, "secrets", "-n", namespace)["items"] == []
    assert per_object(px_writes(cluster, namespace, since=start)) == {(USERNAME, "storageclusters", "px-cluster"): 1}


# -- (b) ---------------------------------------------------------------------------------------------


def test_key_secret_with_foreign_metadata_is_put_once_and_a_matching_one_never(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    owner = create(cluster, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    shared_value = base64.b64encode(b"a shared secret someone else made, 48 bytes long").decode()
    shared_before = create(cluster, namespace, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "px-shared-secret", "labels": {"team": "storage", "app.kubernetes.io/instance": "x"},
                     "annotations": {**SKIP, "example.com/note": "ours"}, "ownerReferences": [owner_ref]},
        "data": {"shared-secret": base64.b64encode(shared_value.encode()).decode()},
    })
    system_before = create(cluster, namespace, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "px-system-secrets", "labels": {"team": "storage"}, "annotations": dict(SKIP)},
        "stringData": {"system-secret": "s" * 64, "apps-secret": "a" * 64},
    })
    start = now()
    create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(3)

    shared = secret(cluster, namespace, "px-shared-secret")
    assert shared["data"] == shared_before["data"]  # data unchanged
    assert shared["metadata"]["annotations"] == SKIP  # only skip-resource is left
    assert "labels" not in shared["metadata"] and "ownerReferences" not in shared["metadata"]
    system = secret(cluster, namespace, "px-system-secrets")
    assert system["metadata"]["resourceVersion"] == system_before["metadata"]["resourceVersion"]
    assert system["metadata"]["labels"] == {"team": "storage"}  # labels alone are never compared
    # The tokens are signed with the value that was there.
    assert claims(cluster, namespace, "px-admin-token", shared_value.encode())["roles"] == ["system.admin"]

    def key_secret_writes() -> list[AuditWrite]:
        return [w for w in px_writes(cluster, namespace, since=start) if w.name in KEY_SECRETS]

    assert [(w.verb, w.name) for w in key_secret_writes()] == [("update", "px-shared-secret")]
    portworx_operator.wait_for_passes(3)  # then it leaves both alone
    assert [(w.verb, w.name) for w in key_secret_writes()] == [("update", "px-shared-secret")]


# -- (c) ---------------------------------------------------------------------------------------------


def test_restart_and_a_metadata_write_to_the_shared_secret_re_mint_both_tokens(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(2)
    shared = value(secret(cluster, namespace, "px-shared-secret"), "shared-secret")

    def token_updates(since: Any) -> dict[str, int]:
        ws = px_writes(cluster, namespace, since=since)
        return {name: count(ws, resource="secrets", name=name, verb="update") for name in TOKENS}

    def tokens() -> dict[str, bytes]:
        return {name: value(secret(cluster, namespace, name), "auth-token") for name in TOKENS}

    # A restart: its cache is empty, so it re-mints both, whatever they hold.
    next_second_after_mint(cluster, namespace)
    before, start = tokens(), now()
    portworx_operator.restart()
    wait_equal(lambda: token_updates(start), {n: 1 for n in TOKENS}, 30, "both tokens re-minted after a restart")
    after = tokens()
    assert all(after[n] != before[n] for n in TOKENS)
    for name in TOKENS:
        claims(cluster, namespace, name, shared)
    portworx_operator.wait_for_passes(2)
    assert per_object(px_writes(cluster, namespace, since=start)) == {(USERNAME, "secrets", n): 1 for n in TOKENS}

    # A metadata-only write to the shared-secret Secret changes its resourceVersion: both re-minted.
    next_second_after_mint(cluster, namespace)
    start = now()
    cluster.kubectl("label", "secret", "px-shared-secret", "-n", namespace, "example.com/touched=yes")
    wait_equal(lambda: token_updates(start), {n: 1 for n in TOKENS}, 30,
               "both tokens re-minted after a label on the shared-secret Secret")
    portworx_operator.wait_for_passes(2)
    assert per_object(px_writes(cluster, namespace, since=start)) == {(USERNAME, "secrets", n): 1 for n in TOKENS}
    # ... and the label stays: labels alone never make it rewrite a key Secret.
    assert secret(cluster, namespace, "px-shared-secret")["metadata"]["labels"] == {"example.com/touched": "yes"}


# -- (d) ---------------------------------------------------------------------------------------------


def test_env_issuer_is_the_default_issuer_and_a_set_value_is_never_overwritten(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    env = [{"name": "PORTWORX_AUTH_JWT_ISSUER", "value": "env.example.com"}]
    # A non-empty selfSigned whose issuer is an empty string (unset): the env value is the default.
    create(cluster, namespace, storagecluster(
        security={"enabled": True, "auth": {"selfSigned": {"issuer": "", "tokenLifetime": "1h"}}}, env=env))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(2)
    assert get_sc(cluster, namespace)["spec"]["security"]["auth"] == {
        "guestAccess": "Enabled",
        "selfSigned": {"issuer": "env.example.com", "tokenLifetime": "1h", "sharedSecret": "px-shared-secret"},
    }
    shared = value(secret(cluster, namespace, "px-shared-secret"), "shared-secret")
    got = claims(cluster, namespace, "px-user-token", shared)
    assert got["iss"] == "env.example.com" and got["sub"] == "px-user-token@env.example.com"
    assert got["exp"] - got["iat"] == 3600 + 600

    def sc_updates() -> int:
        return count(px_writes(cluster, namespace), resource="storageclusters", verb="update")

    assert sc_updates() == 1
    # The stored default is now a set value: another env value does not move it.
    cluster.kubectl("patch", STC, "px-cluster", "-n", namespace, "--type=merge", "-p", json.dumps(
        {"spec": {"env": [{"name": "PORTWORX_AUTH_JWT_ISSUER", "value": "other.example.com"}]}}))
    portworx_operator.wait_for_passes(3)
    assert get_sc(cluster, namespace)["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "env.example.com"
    assert sc_updates() == 1

    # A value someone sets is kept, and the tokens follow it (the issuer differs: re-minted).
    cluster.kubectl("patch", STC, "px-cluster", "-n", namespace, "--type=merge", "-p", json.dumps(
        {"spec": {"security": {"auth": {"selfSigned": {"issuer": "custom.example.com"}}}}}))
    wait_for(lambda: all(claims(cluster, namespace, n, shared)["iss"] == "custom.example.com" for n in TOKENS),
             30, what="tokens of the new issuer")
    portworx_operator.wait_for_passes(2)
    assert get_sc(cluster, namespace)["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "custom.example.com"
    assert sc_updates() == 1


def test_key_values_come_from_spec_env_first(cluster: Cluster, namespace: str,
                                             portworx_operator: PortworxOperatorStandIn) -> None:
    """A spec.env entry of the key's env name (a value, or valueFrom.secretKeyRef) is the value; a key
    with neither an env entry nor an existing value is generated."""
    cluster.kubectl("create", "secret", "generic", "my-keys", "-n", namespace,
                    "--from-literal=shared=the-shared-secret-from-my-own-secret")
    env = [{"name": "PORTWORX_AUTH_JWT_SHAREDSECRET",
            "valueFrom": {"secretKeyRef": {"name": "my-keys", "key": "shared"}}},
           {"name": "PORTWORX_AUTH_SYSTEM_KEY", "value": "the-system-key-from-spec-env"}]
    create(cluster, namespace, storagecluster(security={"enabled": True}, env=env))
    wait_all_secrets(cluster, namespace)
    assert value(secret(cluster, namespace, "px-shared-secret"), "shared-secret") == \
        b"the-shared-secret-from-my-own-secret"
    system = secret(cluster, namespace, "px-system-secrets")
    assert value(system, "system-secret") == b"the-system-key-from-spec-env"
    assert GENERATED.match(value(system, "apps-secret").decode())
    assert claims(cluster, namespace, "px-admin-token", b"the-shared-secret-from-my-own-secret")["groups"] == ["*"]


# -- (e) ---------------------------------------------------------------------------------------------


def test_uninstall_deletes_on_every_pass_and_waits_for_the_node_wiper_to_wipe_every_storage_node(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 6: with a deleteStrategy the finalizer waits for the node wiper (portworx.go DeleteStorage,
    uninstall.go GetNodeWiperStatus): never with no StorageNode (total 0), and with some only once each is
    wiped (one per pass here). Meanwhile every pass repeats the deletions."""
    audit_log(cluster)
    create(cluster, namespace, storagecluster(security={"enabled": True}, deleteStrategy={"type": "Uninstall"}))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(1)

    start = now()
    cluster.kubectl("delete", STC, "px-cluster", "-n", namespace, "--wait=false")
    wait_for(lambda: not any(secret(cluster, namespace, n) for n in ALL), 30, what="all four Secrets deleted")

    # Still in deletion: a key Secret made again (by anyone) is deleted again on the next pass.
    cluster.kubectl("create", "secret", "generic", "px-system-secrets", "-n", namespace,
                    "--from-literal=system-secret=made-again-by-someone-else")
    wait_for(lambda: not secret(cluster, namespace, "px-system-secrets"), 30, what="px-system-secrets deleted again")
    # No StorageNode: the wiper has nothing to complete (total 0), so the uninstall never does. (The old
    # stand-in released the finalizer after 5 passes in deletion.)
    portworx_operator.wait_for_passes(4)  # 7 or more passes in deletion by now
    assert get_sc(cluster, namespace).get("metadata", {}).get("deletionTimestamp"), "released with no StorageNode"
    assert f"StorageCluster {namespace}/px-cluster: node wiper: completed 0, total 0" in portworx_operator.output()

    nodes = create_storage_nodes(cluster, namespace, 3)
    wait_for(lambda: not get_sc(cluster, namespace), 60, what="the StorageCluster gone")
    lines = [line for line in portworx_operator.output().splitlines()
             if line.startswith(("wipe Portworx node", "update StorageCluster"))]
    assert lines == [f"update StorageCluster {namespace}/px-cluster (defaults)",
                     *(f"wipe Portworx node {namespace}/{node}" for node in nodes),
                     f"update StorageCluster {namespace}/px-cluster (finalizer removed)"]
    ws = px_writes(cluster, namespace, since=start)
    assert per_object(ws, verb="delete") == {
        (USERNAME, "secrets", "px-admin-token"): 1, (USERNAME, "secrets", "px-user-token"): 1,
        (USERNAME, "secrets", "px-shared-secret"): 1, (USERNAME, "secrets", "px-system-secrets"): 2}
    [release] = [w for w in ws if w.resource == "storageclusters"]
    assert release.verb == "update"  # the finalizer removed, once the last node was wiped


@pytest.mark.parametrize("auth_on", [True, False], ids=["auth-on", "auth-off"])
def test_uninstall_deletes_key_secrets_that_have_no_owner_whether_or_not_auth_is_on(
        cluster: Cluster, namespace: str, auth_on: bool, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 2: deleteComponents runs auth.go Delete on uninstall whatever the auth setting; with a
    deleteStrategy it deletes px-shared-secret and px-system-secrets through k8s.go DeleteSecret with no
    owner, which refuses a Secret that has any ownerReference."""
    audit_log(cluster)
    create_storage_nodes(cluster, namespace, 1)
    owner = create(cluster, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    theirs = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    create(cluster, namespace, storagecluster(security={"enabled": auth_on}, deleteStrategy={"type": "Uninstall"}))
    if auth_on:
        wait_all_secrets(cluster, namespace)
    else:  # made by someone else, with no owner (its token Secrets go every pass with auth off: fix 1's test)
        for name in KEY_SECRETS:
            create(cluster, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                                        "stringData": {"k": "made-by-someone-else"}})
    # px-system-secrets gets an owner of its own (no annotation or data change: the stand-in leaves it).
    cluster.kubectl("patch", "secret", "px-system-secrets", "-n", namespace, "--type=merge", "-p", json.dumps(
        {"metadata": {"ownerReferences": [theirs]}}))
    portworx_operator.wait_for_passes(2)
    assert secret(cluster, namespace, "px-system-secrets")["metadata"]["ownerReferences"] == [theirs]

    start = now()
    cluster.kubectl("delete", STC, "px-cluster", "-n", namespace, "--wait=false")
    wait_for(lambda: not get_sc(cluster, namespace), 30, what="the StorageCluster gone")
    assert not secret(cluster, namespace, "px-shared-secret")
    kept = secret(cluster, namespace, "px-system-secrets")
    assert kept, "px-system-secrets has an owner: DeleteSecret with no owner must refuse it"
    assert kept["metadata"]["ownerReferences"] == [theirs]
    assert f"cannot delete Secret {namespace}/px-system-secrets: not owned" in portworx_operator.output()
    tokens = {(USERNAME, "secrets", n): 1 for n in TOKENS} if auth_on else {}
    assert per_object(px_writes(cluster, namespace, since=start), verb="delete") == {
        (USERNAME, "secrets", "px-shared-secret"): 1, **tokens}


def test_deletion_without_strategy_keeps_key_secrets_and_only_disowns_a_shared_token(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    audit_log(cluster)
    create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    owner = create(cluster, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ours = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    cluster.kubectl("patch", "secret", "px-admin-token", "-n", namespace, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/metadata/ownerReferences/-", "value": ours}]))
    portworx_operator.wait_for_passes(2)  # no re-mint: the extra reference stays
    assert len(secret(cluster, namespace, "px-admin-token")["metadata"]["ownerReferences"]) == 2

    start = now()
    cluster.kubectl("delete", STC, "px-cluster", "-n", namespace, "--wait=false")
    wait_for(lambda: not get_sc(cluster, namespace), 30, what="the StorageCluster gone")
    assert not secret(cluster, namespace, "px-user-token")
    assert secret(cluster, namespace, "px-admin-token")["metadata"]["ownerReferences"] == [ours]
    assert all(secret(cluster, namespace, n) for n in KEY_SECRETS)  # no delete strategy: kept
    assert per_object(px_writes(cluster, namespace, since=start)) == {
        (USERNAME, "secrets", "px-user-token"): 1,  # delete
        (USERNAME, "secrets", "px-admin-token"): 1,  # update: its owner reference dropped
        (USERNAME, "storageclusters", "px-cluster"): 1,  # update: the finalizer removed at once
    }


# -- (f) auth off, token Secrets without their key, "" kept --------------------------------------------


def test_auth_turned_off_deletes_its_token_secrets_every_pass_and_keeps_the_key_secrets(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 1: with auth off, portworx.go PreInstall runs auth.go Delete every pass: token Secrets it solely
    owns are deleted, a shared owner reference is dropped, the key Secrets are not touched (not in
    deletion)."""
    audit_log(cluster)
    sc = create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    owner = create(cluster, namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    ours = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    cluster.kubectl("patch", "secret", "px-admin-token", "-n", namespace, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/metadata/ownerReferences/-", "value": ours}]))
    portworx_operator.wait_for_passes(1)
    keys_before = {n: secret(cluster, namespace, n)["metadata"]["resourceVersion"] for n in KEY_SECRETS}

    start = now()
    cluster.kubectl("patch", STC, "px-cluster", "-n", namespace, "--type=merge", "-p", json.dumps(
        {"spec": {"security": {"auth": {"enabled": False}}}}))
    wait_for(lambda: not secret(cluster, namespace, "px-user-token"), 30, what="px-user-token deleted")
    wait_equal(lambda: secret(cluster, namespace, "px-admin-token")["metadata"]["ownerReferences"], [ours], 30,
               "the StorageCluster's reference dropped from px-admin-token")
    # Every pass: a token Secret it owns, made again, is deleted again.
    create(cluster, namespace, {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "px-user-token", "ownerReferences": [{
            "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster", "name": "px-cluster",
            "uid": sc["metadata"]["uid"], "controller": True}]}, "stringData": {"auth-token": "x"}})
    wait_for(lambda: not secret(cluster, namespace, "px-user-token"), 30, what="px-user-token deleted again")
    portworx_operator.wait_for_passes(2)
    assert {n: secret(cluster, namespace, n)["metadata"]["resourceVersion"] for n in KEY_SECRETS} == keys_before
    assert per_object(px_writes(cluster, namespace, since=start)) == {
        (USERNAME, "secrets", "px-user-token"): 2,  # delete, delete again
        (USERNAME, "secrets", "px-admin-token"): 1,  # update: its owner reference dropped
    }


def test_a_token_secret_without_its_key_is_an_error_every_pass_not_a_re_mint(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 3: isTokenSecretRefreshRequired gets util.go GetSecretKeyValue's error (not a NotFound) for a
    token Secret with the auth-token key empty, or without it: it returns the error, every pass, and does
    not re-mint. A token Secret that is gone is re-minted."""
    audit_log(cluster)
    create(cluster, namespace, storagecluster(security={"enabled": True}))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(1)
    error = (f"StorageCluster {namespace}/px-cluster: failed to check token secret expiration px-user-token: "
             f"failed to get key auth-token inside secret {namespace}/px-user-token")
    emptied, removed = ({"op": "replace", "path": "/data/auth-token", "value": ""},
                        {"op": "remove", "path": "/data/auth-token"})
    for op in (emptied, removed):
        cluster.kubectl("patch", "secret", "px-user-token", "-n", namespace, "--type=json", "-p", json.dumps([op]))
        start, seen = now(), portworx_operator.output().count(error)
        portworx_operator.wait_for_passes(2)
        assert portworx_operator.output().count(error) >= seen + 2, op  # the error, on every pass
        assert not (secret(cluster, namespace, "px-user-token").get("data") or {}).get("auth-token"), op
        assert px_writes(cluster, namespace, since=start) == [], op

    # Gone altogether (NotFound): treated as expired, minted again.
    cluster.kubectl("delete", "secret", "px-user-token", "-n", namespace)
    wait_for(lambda: (secret(cluster, namespace, "px-user-token").get("data") or {}).get("auth-token"), 30,
             what="px-user-token minted again")


def test_an_empty_shared_secret_name_is_kept_and_fails_every_pass(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 4, through the API: setSecuritySpecDefaults fills sharedSecret only where it is nil, so a ""
    stays, and every pass then fails on the Get of Secret "" (no Secret is written)."""
    audit_log(cluster)
    create(cluster, namespace, storagecluster(security={"enabled": True, "auth": {
        "selfSigned": {"issuer": "", "sharedSecret": ""}}}))
    error = f'StorageCluster {namespace}/px-cluster: Secret "": resource name may not be empty'
    wait_for(lambda: error in portworx_operator.output(), 30, what="the error")
    seen = portworx_operator.output().count(error)
    portworx_operator.wait_for_passes(2)
    assert portworx_operator.output().count(error) >= seen + 2
    assert get_sc(cluster, namespace)["spec"]["security"]["auth"] == {
        "guestAccess": "Enabled",
        "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": ""}}
    assert get_json(cluster, "secrets", "-n", namespace)["items"] == []


# -- (g) its update of a StorageCluster: on the latest copy, last writer wins ------------------------------


def test_its_update_takes_the_latest_resource_version_and_reverts_a_change_made_since_its_read(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """Fix 5: k8s.go UpdateStorageCluster copies the resourceVersion of a fresh GET onto the object it
    computed from its earlier read: no 409, and a change landed in between is reverted. (--write-delay
    holds the window open; the old stand-in got a 409 there and kept the change.)"""
    audit_log(cluster)
    portworx_operator.stop()
    portworx_operator.write_delay = 3
    portworx_operator.start()
    start = now()
    create(cluster, namespace, storagecluster(image="portworx/oci-monitor:3.2.0", security={"enabled": True}))
    portworx_operator.wait_for_log(f"StorageCluster {namespace}/px-cluster: read; update in 3s (defaults)")
    cluster.kubectl("patch", STC, "px-cluster", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"image": "portworx/oci-monitor:3.3.0"}}))
    assert "update StorageCluster" not in portworx_operator.output(), "the patch missed the window"
    assert get_sc(cluster, namespace)["spec"]["image"] == "portworx/oci-monitor:3.3.0"
    portworx_operator.wait_for_log(f"update StorageCluster {namespace}/px-cluster (defaults)")
    portworx_operator.wait_for_passes(2)
    obj = get_sc(cluster, namespace)
    assert obj["spec"]["image"] == "portworx/oci-monitor:3.2.0"  # the patch, reverted
    assert obj["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "operator.portworx.io"
    assert "conflict" not in portworx_operator.output()
    assert count(px_writes(cluster, namespace, since=start), resource="storageclusters", verb="update") == 1


# -- (h) the Portworx pods: restarted on a new revision --------------------------------------------------


def test_a_new_revision_restarts_every_portworx_pod_once_and_other_changes_none(
        cluster: Cluster, namespace: str, portworx_operator: PortworxOperatorStandIn) -> None:
    """update.go: an issuer change restarts every Portworx pod (one per StorageNode); a tokenLifetime
    change, an env reorder and a restart of the Portworx Operator restart none."""
    nodes = create_storage_nodes(cluster, namespace, 3)
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    create(cluster, namespace, storagecluster(security={"enabled": True}, env=env))
    wait_all_secrets(cluster, namespace)
    portworx_operator.wait_for_passes(1)
    assert portworx_operator.restarts() == 0  # the pods start with the spec the defaults made

    def patch(spec: dict[str, Any]) -> None:
        cluster.kubectl("patch", STC, "px-cluster", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))

    patch({"security": {"auth": {"selfSigned": {"issuer": "new.example"}}}})
    wait_equal(portworx_operator.restarts, 3, 30, "three pods restarted")
    restarted = [line for line in portworx_operator.output().splitlines() if line.startswith("restart Portworx pod")]
    assert restarted == [f"restart Portworx pod {namespace}/{node} (security.auth.selfSigned.issuer)"
                         for node in nodes]
    assert "3 Portworx pods restarted; 3 pod restarts in total since start" in portworx_operator.output()

    patch({"security": {"auth": {"selfSigned": {"tokenLifetime": "1h"}}}})
    patch({"env": list(reversed(env))})
    portworx_operator.restart()
    portworx_operator.wait_for_passes(3)
    assert get_sc(cluster, namespace)["spec"]["env"] == list(reversed(env))
    assert portworx_operator.restarts() == 3
