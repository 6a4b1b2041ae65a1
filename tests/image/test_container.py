"""The image as a pod: two replicas of manifests/cluster-wide's Deployment, each the OCI image under runc with
exactly what the installed Deployment specifies (tests/support/container.py), against a control plane of
their own, through its `kubernetes` Service address and with a ServiceAccount token at the standard path.

- The running process is what the spec says: uid/gid 65532, no capabilities, no_new_privs, seccomp on, the
  root filesystem mounted read-only (read from /proc of the container's process, not from our config).
- One replica leads; it reconciles a sample PxSecurity to Ready, and the API server's audit log shows every
  write made with the leader's ServiceAccount token, none with the standby's.
- Both answer the liveness and readiness probes the Deployment names; /metrics is Prometheus text.
- SIGTERM (the kubelet's stop) ends the leader cleanly within terminationGracePeriodSeconds; it releases the
  Lease and the other replica takes over at once and reconciles.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from image import build
from pxsec.devcluster.cluster import Cluster
from tests.e2e.conftest import assert_no_leaks, condition, wait_ready
from tests.support.container import Container
from tests.support.helpers import get_json, wait_for
from tests.support.installed import ROOT, deployment, http_status, private_cluster, scrape, writes_by_credential

pytestmark = pytest.mark.e2e

OPERATOR_NS = "pxsec-system"
LEASE = "px-security-operator"
NS = "apps"


@pytest.fixture(scope="module")
def pod_cluster() -> Iterator[Cluster]:
    with private_cluster() as cluster:
        cluster.install_crds()
        cluster.install_kustomization(ROOT / "manifests" / "cluster-wide")
        cluster.kubectl("create", "namespace", NS)
        yield cluster


def credential(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"JTI={claims['jti']}"


def holder(cluster: Cluster) -> str:
    return str((get_json(cluster, "lease", LEASE, "-n", OPERATOR_NS).get("spec") or {}).get("holderIdentity") or "")


def process_status(c: Container) -> dict[str, str]:
    """/proc/<pid>/status of the container's process, as the host sees it."""
    pid = json.loads(c.runc("state", c.id).stdout)["pid"]
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
    root = next(line for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if line.split()[4] == "/")
    status["root mount options"] = root.split()[5]
    return status


def test_the_image_runs_as_the_deployment_says(pod_cluster: Cluster, image: build.Image, bundle: Path,
                                               tmp_path: Path) -> None:
    cluster = pod_cluster
    assert cluster.control_plane is not None and cluster.control_plane.pki is not None
    assert cluster.audit_log is not None
    deploy = deployment(cluster, OPERATOR_NS, "px-security-operator")
    spec = deploy["spec"]["template"]["spec"]
    (declared,) = spec["containers"]
    assert declared["image"] == f"ghcr.io/pxsec/px-security-operator:{image.version}"
    api_port = int(cluster.control_plane.apiserver_port or 0)
    replicas = [Container(cluster, deploy, bundle, tmp_path, label, api_port, cluster.control_plane.pki.ca.cert)
                for label in ("a", "b")]
    try:
        started = time.monotonic()
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_for_log("px-security-operator started")
            status = process_status(replica)
            assert status["Uid"].split() == ["65532"] * 4 and status["Gid"].split() == ["65532"] * 4, status
            assert all(int(status[cap], 16) == 0 for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
            assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
            assert status["root mount options"].split(",")[0] == "ro", status
        for replica in replicas:
            wait_for(lambda r=replica: http_status(r.readiness_url) == 200, 60,  # type: ignore[misc]
                     what=f"{replica.label} ready")
            assert http_status(replica.health_url) == 200
        ready_probes = time.monotonic() - started

        # Each candidate's identity is its pod's name (HOSTNAME) plus a suffix: the Lease names the leader.
        leader = wait_for(lambda: next((r for r in replicas if holder(cluster).startswith(r.hostname + "_")), None),
                          60, what="a leader among the two containers")
        standby = next(r for r in replicas if r is not leader)

        since_apply = time.monotonic()
        sample = (ROOT / "examples" / "self-signed-shared-secret.yaml").read_text()
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=sample)
        obj = wait_ready(cluster, NS, "px-cluster", timeout=120)
        start_to_ready = time.monotonic() - started
        print(f"\ncontainer start -> probes 200: {ready_probes:.1f}s; -> sample PxSecurity Ready: "
              f"{start_to_ready:.1f}s (apply -> Ready {time.monotonic() - since_apply:.1f}s)")
        assert condition(obj, "Ready")["status"] == "True"
        assert {"px-admin-token", "px-user-token", "px-shared-secret"} <= {
            i["metadata"]["name"] for i in get_json(cluster, "secrets", "-n", NS)["items"]}

        # Every Secret and status write was made with the leader's ServiceAccount token (the pod's), none with
        # the standby's: the rest of the log is this test's admin (X509) and the controller manager.
        writes = writes_by_credential(cluster.audit_log)
        ours = [w for w in writes if w.namespace == NS and (w.resource == "secrets" or w.subresource == "status")]
        assert {w.resource for w in ours} >= {"secrets", "pxsecurities"}, ours
        by = {w.credential for w in ours}
        assert by == {credential(leader.token)}, f"writes by {by}; leader {credential(leader.token)}"
        assert credential(standby.token) not in {w.credential for w in writes}

        for replica, leading in ((leader, 1), (standby, 0)):
            assert replica.metrics_url is not None
            metrics = scrape(replica.metrics_url)
            assert metrics.value("pxsec_leader") == leading, replica.label
        assert (scrape(str(leader.metrics_url)).value("pxsec_reconciles_total", result="ready") or 0) >= 1

        # The kubelet's stop: SIGTERM, then the grace period. The leader releases the Lease on its way out.
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        code, took = leader.terminate()
        print(f"leader SIGTERM -> exit {code} in {took:.1f}s (grace {grace:.0f}s)")
        assert code == 0 and took < grace, f"exit {code} after {took:.1f}s:\n{leader.output()[-3000:]}"
        wait_for(lambda: holder(cluster).startswith(standby.hostname + "_"), 10, what="the standby leads")
        wait_for(lambda: scrape(str(standby.metrics_url)).value("pxsec_leader") == 1, 10, what="standby leader=1")
        cluster.kubectl("delete", "secret", "px-user-token", "-n", NS)
        wait_for(lambda: bool(get_json(cluster, "secret", "px-user-token", "-n", NS)), 60,
                 what="the new leader restores px-user-token")
        assert {w.credential for w in writes_by_credential(cluster.audit_log)
                if w.namespace == NS and w.name == "px-user-token" and w.verb == "create"} >= {
            credential(standby.token)}

        code, took = standby.terminate()
        assert code == 0 and took < grace, f"exit {code} after {took:.1f}s:\n{standby.output()[-3000:]}"
        assert "Traceback" not in leader.output() + standby.output()
        assert_no_leaks(cluster, NS, leader.output() + standby.output())
    finally:
        for replica in replicas:
            print(f"--- container {replica.label} (tail) ---\n{replica.output()[-4000:]}")
            replica.close()
