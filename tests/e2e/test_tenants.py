"""Tenant tokens (issue 21) on the real control plane, the operator as its ServiceAccount under manifests/ RBAC.

Two tenants over 50 namespaces labelled in waves: team-a (matchLabels, shared secret, Orphan) and team-b
(matchExpressions, its own Secret name, ECDSA, Delete). Besides: a namespace both select (Conflict, nothing
written), a foreign Secret of team-a's name (never touched), the PxSecurity's own namespace labelled for
team-a (never written), a PersistentVolume whose CSI secret reference holds team-b's Secret in place after
its namespace leaves, and the operator SIGKILLed between two waves. Every tenant token is judged by the Go
checker (golang-jwt v4.3.0 on OpenStorage's rules) with the sub and groups the tenant gives; no token value
reaches an Event, a status, a ConfigMap or the log; a restart with everything in place writes nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys
from tests.e2e.conftest import apply, pxsec
from tests.interop import checker
from tests.support.audit import audit_log, now, writes
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.go, pytest.mark.usefixtures("leak_check")]

OURS = "system:serviceaccount:pxsec-system:px-security-operator"
WAVE = 16  # namespaces per tenant per wave: 3 waves of 16 + the 2 odd ones = 50


class Namespaces:
    """The test's namespaces (a unique prefix and label key, so that no other test's namespace is picked),
    deleted at the end."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.run = uuid.uuid4().hex[:6]
        self.key = f"tenant-{self.run}"
        self.made: list[str] = []

    def name(self, what: str) -> str:
        return f"tn-{self.run}-{what}"

    def create(self, names: list[str], team: str | None = None) -> None:
        docs = [{"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": n, **({"labels": {self.key: team}} if team else {})}} for n in names]
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": docs}))
        self.made += names

    def label(self, names: list[str], team: str | None) -> None:
        label = f"{self.key}={team}" if team else f"{self.key}-"
        self.cluster.kubectl("label", "namespace", *names, label, "--overwrite")

    def delete(self) -> None:
        if self.made:
            self.cluster.kubectl("delete", "namespace", *self.made, "--wait=false", check=False)


@pytest.fixture()
def spaces(cluster: Cluster) -> Iterator[Namespaces]:
    made = Namespaces(cluster)
    yield made
    made.delete()


def pxsecurity(key: str) -> dict[str, Any]:
    return {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
        "spec": {
            "selfSigned": {"issuer": "tenants.example", "tokenLifetime": "2h", "sharedSecret": {},
                           "ecdsa": {"secretName": "px-jwt-ecdsa"}},
            "tenants": [
                {"name": "team-a", "namespaceSelector": {"matchLabels": {key: "a"}}, "groups": ["team-a"]},
                {"name": "team-b", "secretName": "px-tenant-token", "subject": "team-b@example.com",
                 "namespaceSelector": {"matchExpressions": [{"key": key, "operator": "In", "values": ["b", "both"]}]},
                 "signingKey": "ECDSA", "onNamespaceExit": "Delete"},
                {"name": "team-x", "namespaceSelector": {"matchLabels": {key: "both"}}},
            ],
        },
    }


def tenant_rows(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in (pxsec(cluster, namespace, "px").get("status") or {}).get("tenants") or []}


def settled(cluster: Cluster, namespace: str, expect: dict[str, tuple[int, int]]) -> dict[str, dict[str, Any]] | None:
    rows = tenant_rows(cluster, namespace)
    got = {n: (r.get("selected", 0), r.get("ready", 0)) for n, r in rows.items()}
    return rows if all(got.get(n) == v for n, v in expect.items()) else None


def secret(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_tenant_tokens_follow_the_namespaces_and_never_touch_what_is_not_theirs(
        cluster: Cluster, operator: OperatorProcess, namespace: str, spaces: Namespaces) -> None:
    a = [spaces.name(f"a{i}") for i in range(3 * WAVE)]
    # The optional RBAC piece that lets the operator delete Secrets (not in the default allow-list).
    cluster.install_kustomization(project_root() / "manifests" / "optional" / "delete-secrets")
    b = [spaces.name(f"b{i}") for i in range(3 * WAVE)]
    both, foreign = spaces.name("both"), spaces.name("foreign")
    # Before anything: a foreign px-user-token where team-a will be, and the PxSecurity's own namespace labelled.
    spaces.create([foreign], "a")
    cluster.kubectl("create", "secret", "generic", "px-user-token", "-n", foreign, "--from-literal=auth-token=theirs")
    cluster.kubectl("label", "namespace", namespace, f"{spaces.key}=a")
    try:
        apply(cluster, namespace, pxsecurity(spaces.key))
        # Wave 1: created labelled; wave 2: created bare, then labelled, with the operator killed in between.
        spaces.create(a[:WAVE], "a")
        spaces.create(b[:WAVE], "b")
        spaces.create([both], "both")  # team-b (In b, both) and team-x: a conflict
        wait_for(lambda: settled(cluster, namespace, {"team-a": (WAVE + 1, WAVE), "team-b": (WAVE + 1, WAVE)}), 120,
                 what="wave 1 in place")
        spaces.create(a[WAVE:2 * WAVE] + b[WAVE:2 * WAVE])
        operator.kill()
        spaces.label(a[WAVE:2 * WAVE], "a")
        spaces.label(b[WAVE:2 * WAVE], "b")
        operator.start().wait_for_log("px-security-operator started")
        spaces.create(a[2 * WAVE:], "a")
        spaces.create(b[2 * WAVE:], "b")
        rows = wait_for(lambda: settled(cluster, namespace, {"team-a": (3 * WAVE + 1, 3 * WAVE),
                                                            "team-b": (3 * WAVE + 1, 3 * WAVE)}), 180,
                        what="all 96 tenant namespaces in place")
        problems = " | ".join(p for r in rows.values() for p in r.get("problems") or [])
        assert f"Conflict: namespace {both} is selected by tenants team-b, team-x" in problems
        assert f"Secret {foreign}/px-user-token exists and is not this PxSecurity's: not touched" in problems
        assert f"namespace {namespace} is the PxSecurity's" in problems
        assert secret(cluster, both, "px-user-token") is None and secret(cluster, both, "px-tenant-token") is None
        assert secret(cluster, namespace, "px-user-token") is None
        assert base64.b64decode(secret(cluster, foreign, "px-user-token")["data"]["auth-token"]) == b"theirs"
        ready = {c["type"]: c for c in pxsec(cluster, namespace, "px")["status"]["conditions"]}
        assert ready["TenantsReady"]["status"] == "False" and ready["Ready"]["status"] == "False"

        # Every token, judged by Portworx's own libraries, with the tenant's identity.
        judge_every_token(cluster, namespace, a + b, spaces)

        # Leaving: team-a orphans; team-b deletes, except where a volume still uses the Secret.
        cluster.kubectl("apply", "-f", "-", input=json.dumps(volume(f"pv-{spaces.run}", b[0])))
        try:
            spaces.label([a[0], b[0], b[1]], None)
            wait_for(lambda: secret(cluster, b[1], "px-tenant-token") is None, 60, what="b1's Secret deleted")
            kept = wait_for(lambda: next((p for p in tenant_rows(cluster, namespace)["team-b"].get("problems") or []
                                          if b[0] in p), None), 60, what="b0's Secret kept for its volume")
            assert f"PersistentVolume pv-{spaces.run} uses it" in kept
            assert secret(cluster, b[0], "px-tenant-token") is not None
            assert secret(cluster, a[0], "px-user-token") is not None  # Orphan
        finally:
            # (kubernetes.io/pv-protection: the local control plane runs no controller that would lift it.)
            cluster.kubectl("patch", "pv", f"pv-{spaces.run}", "--type", "merge", "-p",
                            '{"metadata":{"finalizers":null}}', check=False)
            cluster.kubectl("delete", "pv", f"pv-{spaces.run}", "--wait=true", check=False)
        wait_for(lambda: secret(cluster, b[0], "px-tenant-token") is None, 60,
                 what="b0's Secret deleted once its volume is gone")

        # Nothing of any token anywhere it must not be.
        values = [base64.b64decode(s["data"]["auth-token"]).decode() for n in a + b
                  for s in [secret(cluster, n, "px-tenant-token" if n in b else "px-user-token")] if s]
        assert len(values) >= 3 * WAVE * 2 - 3
        said = json.dumps(get_json(cluster, "events", "-A")) + json.dumps(pxsec(cluster, namespace, "px")) \
            + json.dumps(get_json(cluster, "configmaps", "-n", namespace)) + operator.output()
        leaked = [i for i, v in enumerate(values) if v in said or v.split(".")[2] in said]
        assert leaked == [], f"{len(leaked)} tenant tokens appear outside their Secrets"

        # A restart with everything in place writes nothing (reads are the watches' listings).
        since = now()
        operator.restart().wait_for_log("px-security-operator started")
        wait_for(lambda: "reconciled (first pass since start)" in operator.output().split(
            "px-security-operator started")[-1], 60, what="a first pass after the restart")
        time.sleep(3)
        ours = [w for w in writes(audit_log(cluster), since=since, users={OURS}) if w.resource == "secrets"]
        assert ours == [], ours[:5]
    finally:
        cluster.kubectl("label", "namespace", namespace, f"{spaces.key}-", check=False)


def volume(name: str, namespace: str) -> dict[str, Any]:
    """A PersistentVolume as the CSI external-provisioner leaves it: its node-publish secret reference names
    the tenant Secret of the PVC's namespace."""
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "csi": {"driver": "pxd.portworx.com", "volumeHandle": name,
                             "nodePublishSecretRef": {"name": "px-tenant-token", "namespace": namespace}}}}


def judge_every_token(cluster: Cluster, namespace: str, names: list[str], spaces: Namespaces) -> None:
    spec = parse_spec(pxsecurity(spaces.key)["spec"])
    shared = base64.b64decode(get_json(cluster, "secret", "px-shared-secret", "-n", namespace)["data"]["shared-secret"])
    ecdsa = base64.b64decode(get_json(cluster, "secret", "px-jwt-ecdsa", "-n", namespace)["data"]["public.pem"])
    keys = VerifyKeys(shared_secret=shared, ecdsa_public_pem=ecdsa)
    cases, expected = [], []
    for n in names:
        team_b = n.startswith(spaces.name("b"))
        found = secret(cluster, n, "px-tenant-token" if team_b else "px-user-token")
        assert found is not None, n
        token = base64.b64decode(found["data"]["auth-token"]).decode()
        cases.append(checker.case_for(n, token, spec, keys, dt.datetime.now(dt.UTC)))
        expected.append(("team-b@example.com", [], ["system.user"]) if team_b
                        else ("team-a", ["team-a"], ["system.user"]))
    verdicts = checker.judge(checker.checker_or_fail(), cases)
    wrong = [(v["id"], v.get("cause")) for v, want in zip(verdicts, expected, strict=True)
             if not v["accepted"] or (v["username"], v["groups"] or [], v["roles"]) != want]
    assert wrong == [], wrong[:5]


def test_a_tenants_subject_cannot_change_once_set(cluster: Cluster, crds_installed: None, namespace: str) -> None:
    """The CEL transition rule (tenant-subject-immutable): the API server refuses the change, offline
    validation cannot (it has no old object), and removing the tenant is still possible."""
    doc = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-subject"},
           "spec": {"selfSigned": {"sharedSecret": {}},
                    "tenants": [{"name": "team-a", "namespaceSelector": {"matchLabels": {"team": "a"}}}]}}
    apply(cluster, namespace, doc)
    for subject in ("alice", None):
        changed = json.loads(json.dumps(doc))
        tenant = changed["spec"]["tenants"][0]
        tenant["subject"] = subject or "team-a"  # the default made explicit is no change
        result = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(changed),
                                 check=False)
        if subject:
            assert result.returncode != 0 and "spec.tenants[].subject cannot change" in result.stderr, result.stderr
        else:
            assert result.returncode == 0, result.stderr
    gone = json.loads(json.dumps(doc))
    gone["spec"]["tenants"] = []
    result = cluster.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(gone),
                             check=False)
    assert result.returncode == 0, result.stderr
