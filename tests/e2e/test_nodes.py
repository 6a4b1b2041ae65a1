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

import http.client
import json
import os
import signal
import urllib.error
import urllib.request
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



def pem_pair(common_name: str, issuer: tuple[Any, Any] | None = None) -> tuple[Any, Any, bytes, bytes]:
    """(key, certificate, certificate PEM, key PEM): a CA when `issuer` is None, else signed by it."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_key, signer_name = (key, name) if issuer is None else (issuer[0], issuer[1].subject)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(signer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    cert = builder.sign(signer_key, hashes.SHA256())
    return (key, cert, cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_nodes_serving_their_api_over_tls_are_asked_over_https_with_the_clusters_ca(
        cluster: Cluster, operator: OperatorProcess, namespace: str,
        portworx_with_pods: PortworxOperatorStandIn) -> None:
    ca_key, ca_cert, ca_pem, _ = pem_pair("px-api-ca")
    _, _, server_pem, server_key = pem_pair("portworx-api", (ca_key, ca_cert))
    _, _, other_ca_pem, _ = pem_pair("someone-else")
    for name, data in (("px-api-ca", {"ca.crt": ca_pem}), ("other-ca", {"ca.crt": other_ca_pem}),
                       ("px-api-tls", {"tls.crt": server_pem, "tls.key": server_key})):
        cluster.kubectl("create", "secret", "generic", name, "-n", namespace,
                        *[f"--from-literal={k}={v.decode()}" for k, v in data.items()])
    rest_port = free_port()
    create_storage_nodes(cluster, namespace, NODES)
    storagecluster_on_port(cluster, namespace, rest_port)
    tls = {"enabled": True, "rootCA": {"secretRef": {"secretName": "px-api-ca", "secretKey": "ca.crt"}},
           "serverCert": {"secretRef": {"secretName": "px-api-tls", "secretKey": "tls.crt"}},
           "serverKey": {"secretRef": {"secretName": "px-api-tls", "secretKey": "tls.key"}}}
    cluster.kubectl("patch", "storagecluster", "px-cluster", "-n", namespace, "--type", "merge",
                    "-p", json.dumps({"spec": {"security": {"tls": tls}}}))
    apply(cluster, namespace, PXSECURITY)

    def all_over_tls() -> tuple[dict[str, Any], dict[str, Any]] | None:
        cond, status = nodes_status(cluster, namespace)
        return (cond, status) if status.get("acknowledged") == f"{NODES}/{NODES}" and len(
            status.get("keys") or []) == 2 else None

    def unreachable() -> tuple[dict[str, Any], dict[str, Any]] | None:
        cond, status = nodes_status(cluster, namespace)
        # (While the CA change restarts the pods, "connection refused" first.)
        return (cond, status) if cond.get("reason") == "ProbeUnreachable" and "CERTIFICATE_VERIFY_FAILED" in str(
            cond.get("message")).upper() else None

    cond, status = wait_for(all_over_tls, 120, what="3/3 acknowledged over TLS")
    assert (cond["status"], cond["reason"]) == ("True", "Acknowledged"), cond
    # The nodes really serve TLS: plain http is not answered.
    ip = get_json(cluster, "storagenodes", "-n", namespace)["items"][0]["status"]["network"]["mgmtIP"]
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{ip}:{rest_port}/v1/identities/version", timeout=5).read()

    # A CA that did not sign the nodes' certificates: nobody is asked, and it says why.
    cluster.kubectl("patch", "storagecluster", "px-cluster", "-n", namespace, "--type", "merge", "-p", json.dumps(
        {"spec": {"security": {"tls": {"rootCA": {"secretRef": {"secretName": "other-ca", "secretKey": "ca.crt"}}}}}}))
    cond, status = wait_for(unreachable, 120, what="a wrong CA: the nodes cannot be asked")
    assert cond["status"] == "Unknown", cond
    assert status["acknowledged"] == f"0/{NODES}"
