"""Planned key rotation with no rejected request, against Portworx node stand-ins (issue 20).

Three Portworx pods of the Portworx Operator stand-in (tests/support/portworx_pods.py), each a process of
tests/interop in node mode: keys read once at start from env and files, tokens judged by golang-jwt v4.3.0
as OpenStorage judges them, GET /v1/identities/version on its own 127.0.0.x. A client loop sends, four
times a second, a request with every token in the namespace — ours and the Portworx Operator's, each read
from its Secret at that moment, as CSI reads it — to every node, and counts the answers by the rotation's
phase. Two rotations (ECDSA → RSA → ECDSA), the operator SIGKILLed and restarted in the middle of the first:
0 rejected, 2 rolling restarts, every phase seen in status.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.devcluster.controlplane import free_port
from tests.e2e.conftest import apply, condition, pxsec
from tests.support.helpers import get_json, wait_for
from tests.support.portworx import PortworxOperatorStandIn, create_storage_nodes, storagecluster_on_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]

NODES = 3
TOKENS = ("px-ops-token", "px-admin-token", "px-user-token")  # ours (ES/RS: it rotates), theirs (HS256)


PXSECURITY: dict[str, Any] = {
    "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
    "spec": {"storageCluster": {"name": "px-cluster", "apply": True, "changePolicy": "Automatic"},
             "selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                            "ecdsa": {"secretName": "px-jwt-ecdsa"}},
             "rotation": {"gracePeriod": "5s"},
             "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"]}]}}


class Traffic:
    """Requests with every token to every node, counted by (phase, token, accepted)."""

    def __init__(self, cluster: Cluster, namespace: str, addresses: list[str]) -> None:
        client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.namespace, self.addresses = namespace, addresses
        self.counts: Counter[tuple[str, str, bool]] = Counter()
        self.phases: list[str] = []
        self.since: list[float] = []  # when each entry of `phases` was first seen
        self.rejections: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self) -> str:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            "pxsec.dev", "v1alpha1", self.namespace, "pxsecurities", "px")
        return str(((obj.get("status") or {}).get("rotation") or {}).get("phase") or "Steady")

    def _run(self) -> None:
        import base64

        while not self._stop.wait(0.25):
            phase = self.phase()
            if not self.phases or self.phases[-1] != phase:
                self.phases.append(phase)
                self.since.append(time.monotonic())
            for name in TOKENS:
                secret = self.core.read_namespaced_secret(name, self.namespace)
                token = base64.b64decode((secret.data or {})["auth-token"]).decode()
                for address in self.addresses:
                    request = urllib.request.Request(f"http://{address}/v1/identities/version",
                                                     headers={"Authorization": f"bearer {token}"})
                    try:
                        with urllib.request.urlopen(request, timeout=5) as response:
                            ok = response.status == 200
                    except urllib.error.HTTPError as error:
                        ok = False
                        self.rejections.append(f"{phase} {name} {address} {error.code}")
                    except OSError as error:  # a pod restarting: not an answer, not counted
                        del error
                        continue
                    self.counts[(phase, name, ok)] += 1


def rotation_status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return (pxsec(cluster, namespace, "px").get("status") or {}).get("rotation") or {}


def completed_to(cluster: Cluster, namespace: str, kind: str, secret: str) -> bool:
    r = rotation_status(cluster, namespace)
    return r.get("phase") == "Completed" and r.get("to") == {"kind": kind, "secret": secret}


def waiting(cluster: Cluster, namespace: str, done: Any, timeout: float, what: str) -> None:
    """wait_for, and on a timeout the rotation's state, what the nodes answered and what the
    StorageCluster mounts, next to the failure."""
    try:
        wait_for(done, timeout, what=what)
    except AssertionError:
        status = pxsec(cluster, namespace, "px").get("status") or {}
        sc = get_json(cluster, "storagecluster", "px-cluster", "-n", namespace)
        print(json.dumps({k: status.get(k) for k in ("rotation", "nodes", "tokens", "conditions")}, indent=1))
        print(json.dumps({"volumes": sc["spec"].get("volumes"), "env": sc["spec"].get("env"),
                          "conditions": (sc.get("status") or {}).get("conditions")}, indent=1))
        raise


def rotate(cluster: Cluster, namespace: str, value: str) -> None:
    cluster.kubectl("annotate", "--overwrite", "pxsecurity", "px", "-n", namespace, f"pxsec.dev/rotate-keys={value}")


@pytest.fixture()
def nodes_up(cluster: Cluster, namespace: str, portworx_with_pods: PortworxOperatorStandIn) -> Iterator[list[str]]:
    rest_port = free_port()
    create_storage_nodes(cluster, namespace, NODES)
    storagecluster_on_port(cluster, namespace, rest_port)
    apply(cluster, namespace, PXSECURITY)
    first = {"acknowledged": f"{NODES}/{NODES}",
             "keys": ["HS256 (Secret px-shared-secret)", "ES256 (Secret px-jwt-ecdsa)"]}
    wait_for(lambda: ((pxsec(cluster, namespace, "px").get("status") or {}).get("nodes") or {}) == first, 120,
             what="every node runs the first keys (the shared secret and the ECDSA key)")
    yield [f"{n['status']['network']['mgmtIP']}:{rest_port}"
           for n in get_json(cluster, "storagenodes", "-n", namespace)["items"]]


def test_two_planned_rotations_reject_no_request(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                                 portworx_with_pods: PortworxOperatorStandIn,
                                                 nodes_up: list[str]) -> None:
    restarts = portworx_with_pods.restarts()
    started = time.monotonic()
    with Traffic(cluster, namespace, nodes_up) as traffic:
        time.sleep(1)
        rotate(cluster, namespace, "2030-q1")
        wait_for(lambda: rotation_status(cluster, namespace).get("phase") in ("Acknowledging", "Resigning"), 120,
                 what="the first rotation past its restart")
        operator.kill()  # resumed by a new process, from the world and status alone
        operator.start().wait_for_log("px-security-operator started")
        waiting(cluster, namespace, lambda: completed_to(cluster, namespace, "RSA", "px-jwt-rsa-r1"), 120,
                "the first rotation completed")
        first = time.monotonic() - started
        rotate(cluster, namespace, "2030-q2")
        waiting(cluster, namespace, lambda: completed_to(cluster, namespace, "ECDSA", "px-jwt-ecdsa-r2"), 120,
                "the second rotation completed")
        time.sleep(1)
    table: dict[str, Counter[str]] = {}
    for (phase, _, ok), count in sorted(traffic.counts.items()):
        table.setdefault(phase, Counter())["accepted" if ok else "rejected"] += count
    print(f"\nrotations: first {first:.0f}s, both {time.monotonic() - started:.0f}s; phases {traffic.phases}; "
          f"requests by phase {json.dumps({p: dict(c) for p, c in table.items()})}; "
          f"pod restarts {portworx_with_pods.restarts() - restarts}; seconds per phase (1 s stand-in passes) "
          + ", ".join(f"{p} {b - a:.1f}" for p, a, b in zip(traffic.phases, traffic.since, traffic.since[1:],
                                                            strict=False)))
    assert traffic.rejections == [], traffic.rejections[:10]
    assert {"Mounting", "Acknowledging", "Resigning", "Grace", "Completed"} <= set(traffic.phases)
    assert all(c["accepted"] > 0 for c in table.values())
    assert portworx_with_pods.restarts() - restarts == 2 * NODES  # one rolling restart per rotation
    obj = pxsec(cluster, namespace, "px")
    assert condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["rotation"]["retired"] == {"kind": "RSA", "secret": "px-jwt-rsa-r1"}
    events = {e["reason"] for e in get_json(cluster, "events", "-n", namespace)["items"]}
    assert {"RotationStarted", "RotationCompleted"} <= events
