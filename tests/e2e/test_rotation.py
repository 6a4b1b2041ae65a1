"""Key rotation against Portworx node stand-ins (issue 20): planned with no rejected request, emergency with
proof that every node rejects the old key, and the shared secret with rejections only inside the window it
states.

Three Portworx pods of the Portworx Operator stand-in (tests/support/portworx_pods.py), each a process of
tests/interop in node mode: keys read once at start from env and files, tokens judged by golang-jwt v4.3.0
as OpenStorage judges them, GET /v1/identities/version on its own 127.0.0.x. A client loop sends, four
times a second, a request with every token in the namespace — ours and the Portworx Operator's, each read
from its Secret at that moment, as CSI reads it — to every node, and counts the answers by the rotation's
phase. Two rotations (ECDSA → RSA → ECDSA), the operator SIGKILLed and restarted in the middle of the first:
0 rejected, 2 rolling restarts, every phase seen in status.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jwt
import kubernetes
import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
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
    """Requests with every token to every node, counted by (phase, token, accepted); each rejection kept
    with its wall-clock time. `which` is the rotation whose phase counts ("" the signing key's,
    "sharedSecret" the shared secret's). The phases the rotation went through (`phases`, `since`) are read
    from a watch of the object, which delivers every status the operator wrote: a phase left within a
    fraction of a second (Acknowledging, once every node accepts the canary) is seen all the same."""

    def __init__(self, cluster: Cluster, namespace: str, addresses: list[str], tokens: tuple[str, ...] = TOKENS,
                 which: str = "") -> None:
        client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.namespace, self.addresses = namespace, addresses
        self.counts: Counter[tuple[str, str, bool]] = Counter()
        self.phases: list[str] = []
        self.since: list[float] = []  # when each entry of `phases` was first seen
        self.rejections: list[str] = []
        self.rejected_at: list[float] = []  # time.time() of each rejection
        self.tokens, self.which = tokens, which
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Traffic:
        self._record(self._phase_of(self._get()))
        self._watcher.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._watcher.join()

    def _get(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            "pxsec.dev", "v1alpha1", self.namespace, "pxsecurities", "px")
        return obj

    def _phase_of(self, obj: dict[str, Any]) -> str:
        rotation = (obj.get("status") or {}).get("rotation") or {}
        return str((rotation.get(self.which) or {} if self.which else rotation).get("phase") or "Steady")

    def phase(self) -> str:
        return self._phase_of(self._get())

    def _record(self, phase: str) -> None:
        if not self.phases or self.phases[-1] != phase:
            self.phases.append(phase)
            self.since.append(time.monotonic())

    def _watch(self) -> None:
        """Every version of the object from the one `__enter__` read on, in order."""
        version = str(self._get()["metadata"]["resourceVersion"])
        while not self._stop.is_set():
            w = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(self.custom.list_namespaced_custom_object, "pxsec.dev", "v1alpha1",
                                      self.namespace, "pxsecurities", field_selector="metadata.name=px",
                                      resource_version=version, timeout_seconds=1):
                    obj = event["object"]
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue
                    version = str(obj["metadata"]["resourceVersion"])
                    self._record(self._phase_of(obj))
            except kubernetes.client.ApiException as error:  # 410: too old to resume; start from now (never
                if error.status != 410:                       # expected within one test's few seconds)
                    raise
                obj = self._get()
                version = str(obj["metadata"]["resourceVersion"])
                self._record(self._phase_of(obj))

    def _run(self) -> None:
        import base64

        while not self._stop.wait(0.25):
            phase = self.phase()
            for name in self.tokens:
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
                        self.rejected_at.append(time.time())
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


def bring_up(cluster: Cluster, namespace: str, pxsecurity: dict[str, Any]) -> list[str]:
    """StorageNodes, the StorageCluster and the PxSecurity; once every node runs the first keys, the
    nodes' REST gateway addresses."""
    rest_port = free_port()
    create_storage_nodes(cluster, namespace, NODES)
    storagecluster_on_port(cluster, namespace, rest_port)
    apply(cluster, namespace, pxsecurity)
    first = {"acknowledged": f"{NODES}/{NODES}",
             "keys": ["HS256 (Secret px-shared-secret)", "ES256 (Secret px-jwt-ecdsa)"]}
    wait_for(lambda: ((pxsec(cluster, namespace, "px").get("status") or {}).get("nodes") or {}) == first, 120,
             what="every node runs the first keys (the shared secret and the ECDSA key)")
    return [f"{n['status']['network']['mgmtIP']}:{rest_port}"
            for n in get_json(cluster, "storagenodes", "-n", namespace)["items"]]


@pytest.fixture()
def nodes_up(cluster: Cluster, namespace: str, portworx_with_pods: PortworxOperatorStandIn) -> Iterator[list[str]]:
    yield bring_up(cluster, namespace, PXSECURITY)


def by_phase(traffic: Traffic) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for (phase, _, ok), count in sorted(traffic.counts.items()):
        table.setdefault(phase, Counter())["accepted" if ok else "rejected"] += count
    return table


def phase_times(traffic: Traffic) -> str:
    return ", ".join(f"{p} {b - a:.1f}" for p, a, b in zip(traffic.phases, traffic.since, traffic.since[1:],
                                                           strict=False))


def ask(address: str, token: str) -> int:
    """One request to a node's REST gateway: its HTTP status."""
    request = urllib.request.Request(f"http://{address}/v1/identities/version",
                                     headers={"Authorization": f"bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


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
    table = by_phase(traffic)
    print(f"\nrotations: first {first:.0f}s, both {time.monotonic() - started:.0f}s; phases {traffic.phases}; "
          f"requests by phase {json.dumps({p: dict(c) for p, c in table.items()})}; "
          f"pod restarts {portworx_with_pods.restarts() - restarts}; seconds per phase (1 s stand-in passes) "
          + phase_times(traffic))
    assert traffic.rejections == [], traffic.rejections[:10]
    assert {"Mounting", "Acknowledging", "Resigning", "Grace", "Completed"} <= set(traffic.phases)
    assert all(c["accepted"] > 0 for c in table.values())
    assert portworx_with_pods.restarts() - restarts == 2 * NODES  # one rolling restart per rotation
    obj = pxsec(cluster, namespace, "px")
    assert condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["rotation"]["retired"] == {"kind": "RSA", "secret": "px-jwt-rsa-r1"}
    events = {e["reason"] for e in get_json(cluster, "events", "-n", namespace)["items"]}
    assert {"RotationStarted", "RotationCompleted", "ReplacedKeyKept"} <= events
    # The second rotation replaced the retired px-jwt-ecdsa; unmounted, its Secret is kept (Retain).
    assert get_json(cluster, "secret", "px-jwt-ecdsa", "-n", namespace)["data"]["private.pem"]
    assert "dropped" not in obj["status"]["rotation"]


def outside_token(private_pem: bytes, algorithm: str) -> str:
    """A token signed with a key as someone outside the cluster would hold one (made with PyJWT, not the
    operator's code): read-only, one hour."""
    now = int(time.time())
    claims = {"iss": "operator.portworx.io", "sub": "outside@example.com", "email": "outside@example.com",
              "name": "outside", "roles": ["system.view"], "groups": [], "iat": now, "exp": now + 3600}
    return jwt.encode(claims, private_pem, algorithm=algorithm)


def test_an_emergency_rotation_ends_when_every_node_rejects_the_old_key(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_with_pods: PortworxOperatorStandIn) -> None:
    spec = copy.deepcopy(PXSECURITY)
    spec["spec"]["rotation"] = {"emergency": True}
    spec["spec"]["deletionPolicy"] = "Delete"
    # The optional RBAC piece that lets the operator delete Secrets (not in the default allow-list).
    cluster.install_kustomization(project_root() / "manifests" / "optional" / "delete-secrets")
    addresses = bring_up(cluster, namespace, spec)
    leaked = base64.b64decode(get_json(cluster, "secret", "px-jwt-ecdsa", "-n", namespace)["data"]["private.pem"])
    copied = outside_token(leaked, "ES256")  # a copy of a token signed with the key that leaked
    assert [ask(a, copied) for a in addresses] == [200] * NODES
    restarts = portworx_with_pods.restarts()
    started = time.monotonic()
    with Traffic(cluster, namespace, addresses) as traffic:
        time.sleep(1)
        rotate(cluster, namespace, "leak-2030-05")
        waiting(cluster, namespace, lambda: completed_to(cluster, namespace, "RSA", "px-jwt-rsa-r1"), 180,
                "the emergency rotation completed")
        took = time.monotonic() - started
        time.sleep(1)
    table = by_phase(traffic)
    print(f"\nemergency rotation {took:.0f}s; phases {traffic.phases}; requests by phase "
          f"{json.dumps({p: dict(c) for p, c in table.items()})}; pod restarts "
          f"{portworx_with_pods.restarts() - restarts}; seconds per phase {phase_times(traffic)}")
    # Revoked: every node rejects the leaked key; no token we hold was ever rejected on the way.
    assert [ask(a, copied) for a in addresses] == [403] * NODES
    assert traffic.rejections == [], traffic.rejections[:10]
    assert {"Mounting", "Acknowledging", "Resigning", "Revoking", "Completed"} <= set(traffic.phases)
    assert portworx_with_pods.restarts() - restarts == 2 * NODES  # mount the new key, unmount the old
    obj = pxsec(cluster, namespace, "px")
    assert obj["status"]["nodes"]["keys"] == ["HS256 (Secret px-shared-secret)", "RS256 (Secret px-jwt-rsa-r1)"]
    assert "retired" not in obj["status"]["rotation"] and "is revoked" in obj["status"]["rotation"]["message"]
    assert obj["status"]["rotation"]["revokedKey"] == {"kind": "ECDSA", "secret": "px-jwt-ecdsa"}
    completed = [e["message"] for e in get_json(cluster, "events", "-n", namespace)["items"]
                 if e["reason"] == "RotationCompleted"]
    assert any(f"every Portworx node ({NODES}) rejects it" in m for m in completed), completed
    # deletionPolicy Delete: the revoked key's Secret is deleted once no pod mounts it.
    wait_for(lambda: cluster.kubectl("get", "secret", "px-jwt-ecdsa", "-n", namespace, check=False).returncode != 0,
             30, what="the revoked key's Secret deleted")
    events = {e["reason"] for e in get_json(cluster, "events", "-n", namespace)["items"]}
    assert {"RotationStarted", "KeyRevoking", "RotationCompleted", "ReplacedKeyDeleted"} <= events


HS_TOKENS = ("px-hs-token", "px-ops-token", "px-admin-token", "px-user-token")


def test_a_shared_secret_rotation_rejects_only_inside_the_window_it_states(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_with_pods: PortworxOperatorStandIn) -> None:
    spec = copy.deepcopy(PXSECURITY)
    spec["spec"]["tokens"].append({"secretName": "px-hs-token", "roles": ["system.user"], "groups": ["ci"],
                                   "signingKey": "SharedSecret"})
    addresses = bring_up(cluster, namespace, spec)
    old = base64.b64decode(get_json(cluster, "secret", "px-shared-secret", "-n", namespace)["data"]["shared-secret"])
    copied = outside_token(old, "HS256")
    restarts = portworx_with_pods.restarts()
    started = time.monotonic()
    with Traffic(cluster, namespace, addresses, tokens=HS_TOKENS, which="sharedSecret") as traffic:
        time.sleep(1)
        cluster.kubectl("annotate", "--overwrite", "pxsecurity", "px", "-n", namespace,
                        "pxsec.dev/rotate-shared-secret=2030-05")
        waiting(cluster, namespace, lambda: (rotation_status(cluster, namespace).get("sharedSecret") or {}).get(
            "phase") == "Completed", 180, "the shared-secret rotation completed")
        took = time.monotonic() - started
        time.sleep(2)
    shared = rotation_status(cluster, namespace)["sharedSecret"]
    opened = dt.datetime.fromisoformat(shared["switchedAt"].replace("Z", "+00:00")).timestamp()
    closed = dt.datetime.fromisoformat(shared["since"].replace("Z", "+00:00")).timestamp()
    table = by_phase(traffic)
    inside = sum(1 for t in traffic.rejected_at if opened - 1 <= t <= closed + 1)
    print(f"\nshared-secret rotation {took:.0f}s; window {closed - opened:.0f}s (stated: {shared['message']!r}); "
          f"phases {traffic.phases}; requests by phase {json.dumps({p: dict(c) for p, c in table.items()})}; "
          f"rejected {len(traffic.rejected_at)}, inside the window {inside}; pod restarts "
          f"{portworx_with_pods.restarts() - restarts}; seconds per phase {phase_times(traffic)}")
    # Status times are whole seconds: a rejection counts as inside within one second of either end.
    outside = [r for r, t in zip(traffic.rejections, traffic.rejected_at, strict=True)
               if not opened - 1 <= t <= closed + 1]
    assert outside == [], outside[:10]
    assert all(r.split()[1] != "px-ops-token" for r in traffic.rejections)  # ECDSA-signed: never in the window
    assert portworx_with_pods.restarts() - restarts == NODES  # one rolling restart
    assert shared["to"] == "px-shared-secret-r1" and "could be rejected from" in shared["message"]
    assert f"for {int(closed - opened)} s" in shared["message"]  # the window it states is the one measured
    assert [ask(a, copied) for a in addresses] == [403] * NODES  # the old secret is trusted by no node
    for name in ("px-hs-token", "px-admin-token", "px-user-token"):  # re-minted with the new secret
        token = base64.b64decode(get_json(cluster, "secret", name, "-n", namespace)["data"]["auth-token"])
        new = base64.b64decode(get_json(cluster, "secret", "px-shared-secret-r1", "-n", namespace)["data"][
            "shared-secret"])
        jwt.decode(token, new, algorithms=["HS256"], options={"verify_aud": False})
    events = {e["reason"] for e in get_json(cluster, "events", "-n", namespace)["items"]}
    assert {"SharedSecretRotationStarted", "SharedSecretRotationCompleted", "ReplacedKeyKept"} <= events
