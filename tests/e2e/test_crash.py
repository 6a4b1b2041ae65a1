"""Crashes lose nothing (issue: reliability), on the real control plane:

* the operator SIGKILLed at random moments while 20 PxSecurity objects reconcile, 25 times: after each
  restart everything converges to Ready, every key value equals the first value ever observed, and there
  is no duplicate or orphaned object;
* kube-apiserver and etcd stopped for 10 s in the middle of reconciles: the operator reconnects by
  itself (same process), converges, and creates each Secret exactly once (audit log).
"""

from __future__ import annotations

import base64
import random
import time
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply
from tests.support.audit import audit_log, now, writes
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("leak_check")]

OBJECTS = 20
CYCLES = 25
SEED = 20261129  # the random moments are reproducible
OURS = "system:serviceaccount:pxsec-system:px-security-operator"


def pxsecurity(i: int, lifetime: str = "24h") -> dict[str, Any]:
    return {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": f"px-{i}"},
        "spec": {
            "system": {"secretName": f"sys-{i}"},
            "selfSigned": {"tokenLifetime": lifetime, "sharedSecret": {"secretName": f"shared-{i}"},
                           "ecdsa": {"secretName": f"ec-{i}"}},
            "tokens": [{"secretName": f"tok-{i}", "roles": ["system.admin"]}],
        },
    }


def apply_all(cluster: Cluster, namespace: str, lifetime: str, only: range = range(OBJECTS)) -> None:
    docs = {"apiVersion": "v1", "kind": "List", "items": [pxsecurity(i, lifetime) for i in only]}
    apply(cluster, namespace, docs)


def all_ready(cluster: Cluster, namespace: str) -> bool:
    items = get_json(cluster, "pxsecurities", "-n", namespace).get("items", [])
    if len(items) != OBJECTS:
        return False
    for item in items:
        ready = next((c for c in (item.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        if ready.get("status") != "True" or ready.get("observedGeneration") != item["metadata"]["generation"]:
            return False
    return True


def secrets(cluster: Cluster, namespace: str) -> dict[str, dict[str, bytes]]:
    return {item["metadata"]["name"]: {k: base64.b64decode(v) for k, v in (item.get("data") or {}).items()}
            for item in get_json(cluster, "secrets", "-n", namespace).get("items", [])}


def expected_secrets() -> set[str]:
    return {f"{kind}-{i}" for i in range(OBJECTS) for kind in ("sys", "shared", "ec", "tok")}


def key_values(found: dict[str, dict[str, bytes]]) -> dict[str, bytes]:
    return {f"{name}/{key}": value for name, data in found.items() if not name.startswith("tok-")
            for key, value in data.items()}


def configmaps_owned(cluster: Cluster, namespace: str) -> bool:
    uids = {i["metadata"]["name"]: i["metadata"]["uid"]
            for i in get_json(cluster, "pxsecurities", "-n", namespace)["items"]}
    owners = {i["metadata"]["name"]: [o["uid"] for o in i["metadata"].get("ownerReferences") or []]
              for i in get_json(cluster, "configmaps", "-n", namespace)["items"]
              if i["metadata"]["name"] != "kube-root-ca.crt"}
    return owners == {f"{name}-px-security": [uid] for name, uid in uids.items()}


def restart_killed(operator: OperatorProcess) -> None:
    started = operator.output().count("px-security-operator started")
    operator.kill()
    operator.start()
    wait_for(lambda: operator.output().count("px-security-operator started") > started, 60, what="restart")


def test_sigkill_at_random_moments_loses_nothing(cluster: Cluster, operator: OperatorProcess,
                                                 namespace: str) -> None:
    rng = random.Random(SEED)
    first_seen: dict[str, bytes] = {}
    lifetimes = ("24h", "23h")
    for cycle in range(CYCLES):
        # Work for the operator to be in the middle of: everything at first, then a lifetime change that
        # re-mints every token, and every fifth cycle five objects deleted and created again (Retain).
        if cycle == 0:
            apply_all(cluster, namespace, lifetimes[0])
        elif cycle % 5 == 0:
            cluster.kubectl("delete", "pxsecurities", "-n", namespace, *[f"px-{i}" for i in range(5)])
            apply_all(cluster, namespace, lifetimes[cycle % 2], range(5))
        else:
            apply_all(cluster, namespace, lifetimes[cycle % 2])
        time.sleep(rng.uniform(0.0, 1.5))  # the random moment, within the first second and a half of that work
        restart_killed(operator)
        wait_for(lambda: all_ready(cluster, namespace), 120, what=f"all Ready after cycle {cycle}")
        found = secrets(cluster, namespace)
        ours = {n for n in found if n != "kube-root-ca.crt"}
        assert ours == expected_secrets(), f"cycle {cycle}: unexpected Secrets {sorted(ours ^ expected_secrets())}"
        changed = sorted(ref for ref, value in key_values(found).items() if first_seen.setdefault(ref, value) != value)
        assert changed == [], f"cycle {cycle}: key values changed"  # names only: never print a value
        # Every ConfigMap there and owned by the PxSecurity of now (one deleted and applied again has a new
        # uid: its ConfigMap is adopted). Waited for rather than read once: the garbage collector may have
        # judged a ConfigMap by its old owner just before the adoption, and deletes it; it is written again.
        wait_for(lambda: configmaps_owned(cluster, namespace), 60, what=f"every ConfigMap owned after cycle {cycle}")
    observed = len(first_seen)
    assert observed == OBJECTS * 5  # sys: 2 keys, shared: 1, ec: 2 (private and public)


def test_api_server_outage_mid_reconcile(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    if cluster.control_plane is None:
        pytest.fail("this test stops kube-apiserver: it needs the local control plane", pytrace=False)
    pid = operator.popen.pid if operator.popen else None
    start = now()
    apply_all(cluster, namespace, "24h")
    cluster.control_plane.restart_apiserver_and_etcd(pause=10)
    wait_for(lambda: all_ready(cluster, namespace), 180, what="all Ready after the outage")
    assert operator.popen is not None and operator.popen.pid == pid and operator.popen.poll() is None
    created = [w for w in writes(audit_log(cluster), namespace=namespace, since=start, users={OURS})
               if w.resource == "secrets" and w.verb == "create"]
    names = sorted(w.name for w in created)
    assert names == sorted(expected_secrets()), "each Secret created exactly once"
    lost = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=SecretLost").get("items", [])
    assert lost == []
