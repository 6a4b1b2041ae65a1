"""The data-plane acknowledgement (NodesAcknowledged, status.nodes) against Portworx node stand-ins: three
processes of tests/interop in node mode, run by the Portworx Operator stand-in as its pods (one per
StorageNode, keys read once at start from env and files, replaced by its rolling update), each answering
the SDK REST gateway's GET /v1/identities/version on 127.0.0.<10+i> at the StorageCluster's startPort + 17.

- Our apply gives the StorageCluster the ECDSA key: the rolling update replaces the three pods, and every
  node accepts a canary signed with each key (3/3, HS256 and ES256).
- The ECDSA key Secret is deleted: we generate a new key (SecretLost), the StorageCluster does not change
  (same Secret name), so no pod restarts and every node still runs the old key: NodesAcknowledged=False
  naming the three nodes, at once.
- Two pods are restarted (their processes killed; the stand-in starts them again, reading the new key):
  1 node left, named; the last one restarted: 3/3 again.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.devcluster.controlplane import free_port
from tests.e2e.conftest import apply, condition, pxsec
from tests.support.helpers import get_json, wait_for
from tests.support.portworx import PortworxOperatorStandIn, create_storage_nodes, storagecluster_on_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]

NODES = 3


PXSECURITY: dict[str, Any] = {
    "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
    "spec": {"storageCluster": {"name": "px-cluster", "apply": True, "changePolicy": "Automatic"},
             "selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                            "ecdsa": {"secretName": "px-jwt-ecdsa"}},
             "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"],
                         "signingKey": "ECDSA"}]}}


def nodes_status(cluster: Cluster, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = pxsec(cluster, namespace, "px")
    return condition(obj, "NodesAcknowledged"), (obj.get("status") or {}).get("nodes") or {}


def restart_pod(node: str, ip: str) -> None:
    """`kubectl delete pod` for one Portworx pod: its process ends; the stand-in starts it again."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"node" in argv and b"--name" in argv and argv[argv.index(b"--name") + 1:][:1] == [node.encode()] \
                and any(a.startswith(f"{ip}:".encode()) for a in argv):
            found.append(int(proc.name))
    assert len(found) == 1, f"the Portworx pod process of {node}: {found}"
    os.kill(found[0], signal.SIGTERM)


def test_every_node_acknowledges_the_keys_and_a_node_with_an_old_key_is_named(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_with_pods: PortworxOperatorStandIn) -> None:
    rest_port = free_port()
    names = create_storage_nodes(cluster, namespace, NODES)
    storagecluster_on_port(cluster, namespace, rest_port)
    apply(cluster, namespace, PXSECURITY)

    keys = ["HS256 (Secret px-shared-secret)", "ES256 (Secret px-jwt-ecdsa)"]

    def acknowledged(count: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        cond, status = nodes_status(cluster, namespace)
        return (cond, status) if status.get("acknowledged") == f"{count}/{NODES}" and status.get("keys") == keys \
            else None

    cond, _ = wait_for(lambda: acknowledged(NODES), 120, what="3/3 nodes acknowledged")
    assert (cond["status"], cond["reason"]) == ("True", "Acknowledged"), cond
    ips = {n["metadata"]["name"]: n["status"]["network"]["mgmtIP"]
           for n in get_json(cluster, "storagenodes", "-n", namespace)["items"]}
    assert sorted(ips) == names and all(ip.startswith("127.0.0.") for ip in ips.values())

    # A key regenerated under the same Secret name: nothing restarts Portworx, every node runs the old key.
    restarts = portworx_with_pods.restarts()
    cluster.kubectl("delete", "secret", "px-jwt-ecdsa", "-n", namespace)
    cond, status = wait_for(lambda: acknowledged(0), 60, what="0/3: every node runs the old key")
    assert (cond["status"], cond["reason"]) == ("False", "NotAcknowledged"), cond
    assert "node-1, node-2, node-3 reject ES256 (Secret px-jwt-ecdsa)" in cond["message"]
    assert [r["node"] for r in status["notAcknowledging"]] == names
    assert portworx_with_pods.restarts() == restarts

    for node in names[:2]:
        restart_pod(node, ips[node])
    cond, status = wait_for(lambda: acknowledged(2), 60, what="2/3 after two pods restarted")
    assert cond["status"] == "False" and "node-3 reject ES256" in cond["message"] and "node-1" not in cond["message"]
    assert status["notAcknowledging"] == [{"node": "node-3", "rejects": ["ES256 (Secret px-jwt-ecdsa)"]}]

    restart_pod(names[2], ips[names[2]])
    cond, _ = wait_for(lambda: acknowledged(NODES), 60, what="3/3 after the last pod restarted")
    assert cond["status"] == "True"

