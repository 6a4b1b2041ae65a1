"""Beside the Portworx Operator (its stand-in, tests/support/portworx_standin.py), on the real control plane, both
orders, restarts of either operator, a change of our issuer, and an uninstall. Proven from the API and
from kube-apiserver's audit log:

* our issuer, guestAccess and shared-secret name end up in the StorageCluster and stay there;
* every token in the namespace (ours and its own) verifies — with PyJWT, independently of pxsec —
  under the issuer and the keys the StorageCluster names;
* after convergence, neither operator writes anything for ten of its reconcile periods;
* no key Secret value ever changes unless the spec asked for it (an uninstall included);
* its last-writer-wins update of the StorageCluster, landing after our merge, reverts our issuer; we see
  that and apply it again, once, and then both are quiet.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, pxsec, secret_data, wait_ready
from tests.support import portworx
from tests.support.audit import AuditWrite, audit_log, now, writes
from tests.support.helpers import get_json, wait_for
from tests.support.portworx import PortworxOperatorStandIn, create_storage_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.usefixtures("storagecluster_crd", "portworx_rbac", "leak_check")]

STC = "storageclusters.core.libopenstorage.org"
OURS = "system:serviceaccount:pxsec-system:px-security-operator"
BOTH = {OURS, portworx.USERNAME}
SKIP = {"stork.libopenstorage.org/skip-resource": "true"}
KEY_SECRETS = ("px-system-secrets", "px-shared-secret")
FIRST_PASS = "reconciled (first pass since start)"
QUIET_PERIODS = 10  # of the stand-in's 1 s reconcile period


def pxsecurity(issuer: str = "pxsec.example", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "storageCluster": {"name": "px-cluster", "apply": True},
        "guestAccess": "Disabled",
        "selfSigned": {"issuer": issuer, "tokenLifetime": "12h", "sharedSecret": {}},
        "tokens": [{"secretName": "px-ci-token", "roles": ["system.user"], "groups": ["ci"]}],
    }
    spec.update(extra)
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-sec"}, "spec": spec}


def storagecluster(namespace: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
                       "metadata": {"name": "px-cluster", "namespace": namespace},
                       "spec": {"image": "portworx/oci-monitor:3.2.0", **spec}})


def sc(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return get_json(cluster, STC, "px-cluster", "-n", namespace)


def self_signed(cluster: Cluster, namespace: str) -> dict[str, Any]:
    auth: dict[str, Any] = (sc(cluster, namespace).get("spec", {}).get("security") or {}).get("auth") or {}
    return {"guestAccess": auth.get("guestAccess"), **(auth.get("selfSigned") or {})}


def key_values(cluster: Cluster, namespace: str, names: tuple[str, ...] = KEY_SECRETS) -> dict[str, dict[str, bytes]]:
    return {n: secret_data(cluster, namespace, n) for n in names}


def token_secrets(cluster: Cluster, namespace: str) -> dict[str, str]:
    out = {}
    for item in get_json(cluster, "secrets", "-n", namespace).get("items", []):
        if "auth-token" in (item.get("data") or {}):
            out[item["metadata"]["name"]] = base64.b64decode(item["data"]["auth-token"]).decode()
    return out


def assert_every_token_verifies(cluster: Cluster, namespace: str, expect: set[str]) -> None:
    """Each token in the namespace, checked with PyJWT the way Portworx would (exact iss, required claims,
    no leeway) under what the StorageCluster names: its issuer, its shared-secret Secret (ASCII bytes as
    the HMAC key), and the public keys its volumes mount."""
    obj = sc(cluster, namespace)
    signed = obj["spec"]["security"]["auth"]["selfSigned"]
    keys: dict[str, Any] = {"HS256": secret_data(cluster, namespace, signed["sharedSecret"])["shared-secret"]}
    for volume in obj["spec"].get("volumes") or []:
        pem = secret_data(cluster, namespace, volume["secret"]["secretName"])["public.pem"]
        public = serialization.load_pem_public_key(pem)
        keys["RS256" if "rsa" in volume["name"] else "ES256"] = public
    found = token_secrets(cluster, namespace)
    assert set(found) == expect, f"token Secrets: {sorted(found)}"
    for name, token in found.items():
        alg = jwt.get_unverified_header(token)["alg"]
        claims = jwt.decode(token, keys[alg], algorithms=[alg], issuer=signed["issuer"], leeway=0,
                            options={"require": ["iss", "sub", "exp", "iat", "name", "email"]})
        assert claims["sub"] and claims["name"], name


def wait_converged(cluster: Cluster, namespace: str, px: PortworxOperatorStandIn, issuer: str,
                   tokens: set[str]) -> dict[str, Any]:
    """Until the StorageCluster carries our settings, the stand-in has (re-)minted under them and our
    status says Portworx accepts every token; then two more of its passes, so both have seen the end."""
    wait_for(lambda: self_signed(cluster, namespace).get("issuer") == issuer, 60, what="our issuer in the SC")

    def accepted() -> dict[str, Any] | None:
        obj = pxsec(cluster, namespace, "px-sec")
        cond = condition(obj, "TokensAccepted")
        ready = condition(obj, "Ready")
        generation = obj["metadata"]["generation"]
        if cond.get("status") == "True" and ready.get("status") == "True" and \
                ready.get("observedGeneration") == generation and "not minted yet" not in cond.get("message", ""):
            return obj
        return None

    wait_for(accepted, 90, what="TokensAccepted and Ready")
    px.wait_for_passes(2)
    assert_every_token_verifies(cluster, namespace, tokens)
    return wait_ready(cluster, namespace, "px-sec")


def assert_quiet(cluster: Cluster, namespace: str, px: PortworxOperatorStandIn, periods: int = QUIET_PERIODS) -> None:
    """No write at all in the namespace by either operator for `periods` of the stand-in's passes."""
    start = now()
    px.wait_for_passes(periods)
    found = writes(audit_log(cluster), namespace=namespace, since=start, users=BOTH)
    assert found == [], "writes after convergence:\n" + "\n".join(_show(w) for w in found)


def _show(w: AuditWrite) -> str:
    who = "ours" if w.username == OURS else "stand-in"
    return f"  {w.stage_timestamp:%H:%M:%S.%f} {who} {w.verb} {w.resource}/{w.name} {w.subresource}"


def restart_ours(operator: OperatorProcess, namespace: str) -> None:
    line = f"{namespace}/px-sec: {FIRST_PASS}"
    seen = operator.output().count(line)
    operator.restart()
    wait_for(lambda: operator.output().count(line) > seen, 60, what="our first reconcile after the restart")


def status_secret(obj: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in obj["status"]["secrets"] if s["name"] == name)


@pytest.fixture()
def standin(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[PortworxOperatorStandIn]:
    """The stand-in, not started: each test decides when it appears."""
    px = PortworxOperatorStandIn(cluster, namespace, tmp_path / "portworx-operator.log")
    yield px
    px.stop()
    for item in get_json(cluster, STC, "-n", namespace).get("items", []):
        cluster.kubectl("patch", STC, item["metadata"]["name"], "-n", namespace, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)
    print(f"--- stand-in log (tail) ---\n{px.output()[-6000:]}")


def test_storagecluster_first_then_pxsecurity(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                              standin: PortworxOperatorStandIn) -> None:
    # An existing cluster, upgraded: security on for a long time, a hand-made short shared secret with
    # a trailing newline (Portworx takes it as it is), its defaults saved, its tokens minted.
    legacy = b"legacy-secret-from-2019\n"
    cluster.kubectl("create", "secret", "generic", "px-shared-secret", "-n", namespace,
                    "--from-file=shared-secret=/dev/stdin", input=legacy.decode())
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace, security={"enabled": True}))
    standin.start()
    wait_for(lambda: self_signed(cluster, namespace).get("issuer") == "operator.portworx.io", 60,
             what="its defaults saved")
    wait_for(lambda: set(token_secrets(cluster, namespace)) == {"px-admin-token", "px-user-token"}, 60,
             what="its tokens")
    before = key_values(cluster, namespace)
    assert before["px-shared-secret"]["shared-secret"] == legacy

    # Ours arrives, listing its px-admin-token too (a common mistake, said clearly).
    doc = pxsecurity(tokens=[{"secretName": "px-admin-token", "roles": ["system.admin"], "groups": ["*"]},
                             {"secretName": "px-ci-token", "roles": ["system.user"], "groups": ["ci"]}])
    apply(cluster, namespace, doc)
    obj = wait_converged(cluster, namespace, standin, "pxsec.example",
                         {"px-admin-token", "px-user-token", "px-ci-token"})
    assert self_signed(cluster, namespace) == {"guestAccess": "Disabled", "issuer": "pxsec.example",
                                               "tokenLifetime": "12h", "sharedSecret": "px-shared-secret"}
    assert condition(obj, "StorageClusterApplied")["reason"] == "Applied"
    tokens_ready = condition(obj, "TokensReady")
    assert tokens_ready["status"] == "True" and "px-admin-token listed in spec.tokens but minted by the Portworx " \
        "Operator" in tokens_ready["message"]
    theirs = {t["secretName"]: t for t in obj["status"]["tokens"] if t.get("mintedBy") == "PortworxOperator"}
    assert set(theirs) == {"px-admin-token", "px-user-token"} and all(t["accepted"] for t in theirs.values())
    shared = status_secret(obj, "px-shared-secret")
    assert shared["origin"] == "Adopted" and shared["sharedWith"] == "PortworxOperator"
    assert any("whitespace" in n for n in shared["notes"]) and any("advised" in n for n in shared["notes"])
    assert condition(obj, "KeysReady")["status"] == "True"
    # Its token Secret was never written by us; the key Secrets were never written by us either.
    mine = writes(audit_log(cluster), namespace=namespace, users={OURS})
    assert not [w for w in mine if w.resource == "secrets" and w.name in {*KEY_SECRETS, "px-admin-token",
                                                                           "px-user-token"}]
    assert_quiet(cluster, namespace, standin)

    # Restarts of either side: its restart re-mints its two tokens (its own cache), which we leave alone;
    # ours changes nothing at all.
    standin.restart()
    wait_converged(cluster, namespace, standin, "pxsec.example", {"px-admin-token", "px-user-token", "px-ci-token"})
    assert_quiet(cluster, namespace, standin)
    start = now()
    restart_ours(operator, namespace)
    standin.wait_for_passes(QUIET_PERIODS)
    found = writes(audit_log(cluster), namespace=namespace, since=start, users=BOTH)
    assert found == [], "writes after our restart:\n" + "\n".join(_show(w) for w in found)

    # A change of our issuer reaches the StorageCluster, and both operators' tokens follow it.
    apply(cluster, namespace, pxsecurity(issuer="pxsec-2.example", tokens=doc["spec"]["tokens"]))
    wait_converged(cluster, namespace, standin, "pxsec-2.example", {"px-admin-token", "px-user-token", "px-ci-token"})
    assert_quiet(cluster, namespace, standin)
    assert key_values(cluster, namespace) == before  # no key value ever changed


def test_pxsecurity_first_then_storagecluster_then_the_portworx_operator(
        cluster: Cluster, operator: OperatorProcess, namespace: str, standin: PortworxOperatorStandIn) -> None:
    doc = pxsecurity(deletionPolicy="Delete",
                     selfSigned={"issuer": "pxsec.example", "tokenLifetime": "12h", "sharedSecret": {},
                                 "rsa": {"secretName": "px-jwt-rsa", "size": 2048}},
                     tokens=[{"secretName": "px-ci-token", "roles": ["system.user"], "signingKey": "RSA"}],
                     secretTemplate={"labels": {"team": "storage"}})
    apply(cluster, namespace, doc)
    wait_for(lambda: condition(pxsec(cluster, namespace, "px-sec"), "StorageClusterApplied").get("reason")
             == "WaitingForStorageCluster", 60, what="waiting for the StorageCluster")
    # Written in the Portworx Operator's shape from the start: nothing it would strip, nothing to PUT.
    for name in KEY_SECRETS:
        meta = get_json(cluster, "secret", name, "-n", namespace)["metadata"]
        assert meta.get("annotations") == SKIP and not meta.get("labels") and not meta.get("ownerReferences"), meta
    rsa_meta = get_json(cluster, "secret", "px-jwt-rsa", "-n", namespace)["metadata"]
    assert rsa_meta["labels"]["team"] == "storage" and rsa_meta["ownerReferences"][0]["kind"] == "PxSecurity"
    before = key_values(cluster, namespace, (*KEY_SECRETS, "px-jwt-rsa"))

    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace))
    wait_for(lambda: self_signed(cluster, namespace).get("issuer") == "pxsec.example", 60, what="applied")
    start = now()
    standin.start()
    obj = wait_converged(cluster, namespace, standin, "pxsec.example", {"px-admin-token", "px-user-token",
                                                                         "px-ci-token"})
    theirs = writes(audit_log(cluster), namespace=namespace, since=start, users={portworx.USERNAME})
    assert not [w for w in theirs if w.resource == "secrets" and w.name in KEY_SECRETS], \
        "it rewrote a key Secret:\n" + "\n".join(_show(w) for w in theirs)
    # It wrote the whole StorageCluster back (its finalizer) after our settings were in: they stayed.
    assert [w.verb for w in theirs if w.resource == "storageclusters"] == ["update"]
    assert self_signed(cluster, namespace) == {"guestAccess": "Disabled", "issuer": "pxsec.example",
                                               "tokenLifetime": "12h", "sharedSecret": "px-shared-secret"}
    for name in KEY_SECRETS:
        entry = status_secret(obj, name)
        assert entry["origin"] == "Generated" and entry["sharedWith"] == "PortworxOperator"
        assert any("deletionPolicy Delete do not apply" in n for n in entry["notes"])
    assert "sharedWith" not in status_secret(obj, "px-jwt-rsa")
    assert_quiet(cluster, namespace, standin)
    # deletionPolicy Delete still holds where it can: the RSA Secret's owner reference survived.
    assert get_json(cluster, "secret", "px-jwt-rsa", "-n", namespace)["metadata"]["ownerReferences"]
    assert key_values(cluster, namespace, (*KEY_SECRETS, "px-jwt-rsa")) == before


def test_uninstall_keeps_the_values_and_restores_them_once(
        cluster: Cluster, operator: OperatorProcess, namespace: str, standin: PortworxOperatorStandIn) -> None:
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace, deleteStrategy={"type": "Uninstall"}))
    apply(cluster, namespace, pxsecurity())  # deletionPolicy Retain (the default)
    standin.start()
    obj = wait_converged(cluster, namespace, standin, "pxsec.example", {"px-admin-token", "px-user-token",
                                                                         "px-ci-token"})
    retained = condition(obj, "KeysRetained")
    assert retained["status"] == "True" and retained["reason"] == "Retained", retained
    assert "px-sec-px-security-retained" in retained["message"]
    before = key_values(cluster, namespace)
    revisions = {s["name"]: s["revision"] for s in obj["status"]["secrets"]}
    assert_quiet(cluster, namespace, standin)
    # One Portworx node for its node wiper to wipe (with none its uninstall would never complete). Made now:
    # on a cluster that runs, our first apply would have waited for approval.
    create_storage_nodes(cluster, namespace, 1)

    start = now()
    cluster.kubectl("delete", STC, "px-cluster", "-n", namespace, "--wait=false")
    wait_for(lambda: condition(pxsec(cluster, namespace, "px-sec"), "KeysRetained").get("reason")
             == "StorageClusterUninstalling", 30, what="uninstall noticed")
    wait_for(lambda: not sc(cluster, namespace), 90, what="the uninstall to finish")
    deleted_at = now()
    wait_for(lambda: all(secret_data(cluster, namespace, n) for n in KEY_SECRETS), 30, what="restored")
    assert key_values(cluster, namespace) == before  # the same values: a reinstall finds the same keys

    ws = writes(audit_log(cluster), namespace=namespace, since=start, users=BOTH)
    # It deletes them on every pass of its uninstall; they were there to delete exactly once, because
    # nothing recreated them meanwhile (before: 6 delete/recreate pairs in 150 s, revision 7).
    theirs = [w for w in ws if w.username == portworx.USERNAME and w.verb == "delete" and w.name in KEY_SECRETS]
    assert sorted(w.name for w in theirs) == sorted(KEY_SECRETS), "\n".join(map(_show, ws))
    ours = [w for w in ws if w.username == OURS and w.resource == "secrets" and w.name in KEY_SECRETS]
    assert sorted((w.verb, w.name) for w in ours) == [("create", "px-shared-secret"), ("create", "px-system-secrets")]
    assert all(w.stage_timestamp >= deleted_at - dt.timedelta(seconds=2) for w in ours), \
        "recreated while the uninstall ran:\n" + "\n".join(map(_show, ws))

    def keys_ready() -> dict[str, Any] | None:
        obj = pxsec(cluster, namespace, "px-sec")
        return obj if condition(obj, "KeysReady").get("reason") == "KeysReady" else None

    obj = wait_for(keys_ready, 30, what="KeysReady after the restore")
    assert {s["name"]: s["revision"] for s in obj["status"]["secrets"]} == revisions  # no new revision
    assert condition(obj, "StorageClusterApplied")["reason"] == "WaitingForStorageCluster"
    lost = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=SecretLost").get("items", [])
    assert lost == []
    restored = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=SecretRestored")
    told = " ".join(e["message"] for e in restored.get("items", []))  # one Event per reconcile and reason
    assert all(told.count(f"Secret {n} ") == 1 for n in KEY_SECRETS), told

    # A reinstall finds the same keys: the stand-in adopts them, mints under our issuer, and all is quiet.
    # Upstream's StorageNodes are owned by their StorageCluster: the garbage collector takes them with it
    # (here done at once: the collector can take ~30 s to start watching a CRD installed this session).
    cluster.kubectl("delete", portworx.STORAGENODES, "--all", "-n", namespace)
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace))
    wait_converged(cluster, namespace, standin, "pxsec.example", {"px-admin-token", "px-user-token", "px-ci-token"})
    assert_quiet(cluster, namespace, standin)
    assert key_values(cluster, namespace) == before


def sc_versions(path: Path) -> list[dict[str, Any]]:
    """Every version of the StorageCluster a `kubectl get --watch -o json` wrote to `path`, in order."""
    text, decoder, at = path.read_text(errors="replace"), json.JSONDecoder(), 0
    out: list[dict[str, Any]] = []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return out
        try:
            obj, at = decoder.raw_decode(text, at)
        except ValueError:
            return out  # a document still being written
        out.append(obj)


def test_its_update_from_a_stale_read_reverts_our_issuer_and_we_apply_it_again_once(
        cluster: Cluster, operator: OperatorProcess, namespace: str, standin: PortworxOperatorStandIn,
        tmp_path: Path) -> None:
    """Its update of the StorageCluster takes the latest resourceVersion (k8s.go UpdateStorageCluster): computed
    from a read made before our merge, it lands after it, and puts its default issuer back where ours was.
    Our watch sees the StorageCluster change (not an echo of our write), our merge finds its default there
    and replaces it: our issuer again. Then its next pass has nothing to default, and nobody writes more.
    --write-delay holds its read-to-update window open, so that our merge lands inside it every time."""
    delay = 4  # seconds: our merge (keys first, then the StorageCluster) lands well within (~0.5 s measured)
    standin.write_delay = delay
    standin.start()
    versions = tmp_path / "storagecluster-versions.json"
    with versions.open("w") as out:
        watch = subprocess.Popen([str(cluster.kubectl_bin), f"--kubeconfig={cluster.kubeconfig}", "get", STC,
                                  "-n", namespace, "--watch", "-o", "json"], stdout=out, stderr=subprocess.DEVNULL)
    try:
        start = now()
        cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace, security={"enabled": True}))
        wait_for(lambda: sc_versions(versions), 30, what="the watch to see the StorageCluster")
        standin.wait_for_log(f"StorageCluster {namespace}/px-cluster: read; update in {delay}s (defaults)")
        apply(cluster, namespace, pxsecurity())  # apply: true, issuer pxsec.example
        wait_for(lambda: self_signed(cluster, namespace).get("issuer") == "pxsec.example", 30, what="our merge")
        assert "update StorageCluster" not in standin.output(), "our merge missed its read-to-update window"
        standin.wait_for_log(f"update StorageCluster {namespace}/px-cluster (defaults)", timeout=30)
        wait_converged(cluster, namespace, standin, "pxsec.example", {"px-admin-token", "px-user-token",
                                                                       "px-ci-token"})
        assert_quiet(cluster, namespace, standin, periods=4)  # a few of its passes: the race is over
    finally:
        watch.terminate()
        watch.wait()

    # The issuer in every version of the StorageCluster, repeats folded: ours, its revert, ours again.
    issuers: list[Any] = []
    for obj in sc_versions(versions):
        found = ((obj["spec"].get("security") or {}).get("auth") or {}).get("selfSigned", {}).get("issuer")
        if not issuers or issuers[-1] != found:
            issuers.append(found)
    assert issuers == [None, "pxsec.example", "operator.portworx.io", "pxsec.example"], issuers
    assert self_signed(cluster, namespace) == {"guestAccess": "Disabled", "issuer": "pxsec.example",
                                               "tokenLifetime": "12h", "sharedSecret": "px-shared-secret"}
    ws = [w for w in writes(audit_log(cluster), namespace=namespace, since=start, users=BOTH)
          if w.resource == "storageclusters"]
    # Ours: the merge and the one re-merge after its revert (a 409 on our guarded patch is not a write);
    # its: the one update with its defaults and finalizer, between the two.
    assert [(w.username, w.verb, w.subresource) for w in ws] == [
        (OURS, "patch", ""), (portworx.USERNAME, "update", ""), (OURS, "patch", "")], "\n".join(map(_show, ws))
    assert "conflict" not in standin.output()
