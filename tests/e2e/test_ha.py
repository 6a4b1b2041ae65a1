"""High availability: two operator processes, as the two replicas of manifests/cluster-wide's Deployment
(its args and env, the same ServiceAccount, a token each), on a control plane of their own, with the
Lease durations short (4 s / 3 s / 0.5 s; the Deployment's are 15 s / 10 s / 2 s).

- Exactly one reconciles: kube-apiserver's audit log, which names the credential (the token's JTI) of
  every write, shows no write at all by the standby — not even to the Lease — while the other leads.
- SIGKILL of the leader: the standby takes over once the Lease expires, and everything converges,
  including what changed while nobody led (a lost key Secret, a new resource).
- SIGTERM of the leader: it finishes its reconciles, releases the Lease, and the other takes over at once.
- A leader that finds someone else holding its Lease stops reconciling at once and exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster
from tests.e2e.conftest import assert_no_leaks
from tests.support.audit import now
from tests.support.helpers import get_json, wait_for
from tests.support.installed import (
    ROOT,
    Deployed,
    deployment,
    private_cluster,
    run_as_deployment,
    wait_metric,
    writes_by_credential,
)

pytestmark = pytest.mark.e2e

NS = "ha"
OPERATOR_NS = "pxsec-system"
LEASE = "px-security-operator"
SHORT = ("--leader-election-lease-duration=4", "--leader-election-renew-deadline=3",
         "--leader-election-retry-period=0.5")
OBJECTS = 6


@pytest.fixture(scope="module")
def ha_cluster() -> Iterator[Cluster]:
    with private_cluster() as cluster:
        cluster.install_crds()
        cluster.install_kustomization(ROOT / "manifests" / "cluster-wide")
        cluster.kubectl("create", "namespace", NS)
        yield cluster


def sample(i: int) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": f"px-{i}"},
            "spec": {"system": {"secretName": f"px-{i}-system"},
                     "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h",
                                    "sharedSecret": {"secretName": f"px-{i}-shared"}},
                     "tokens": [{"secretName": f"px-{i}-admin-token", "roles": ["system.admin"], "groups": ["*"]}]}}


def identity(deployed: Deployed) -> str:
    match = re.search(r"\(identity (\S+)\)", deployed.process.output())
    assert match, "the operator did not say which candidate it is"
    return match.group(1)


def holder(cluster: Cluster) -> str:
    return str((get_json(cluster, "lease", LEASE, "-n", OPERATOR_NS).get("spec") or {}).get("holderIdentity") or "")


def all_ready(cluster: Cluster, count: int) -> bool:
    items = get_json(cluster, "pxsecurities", "-n", NS).get("items", [])
    done = 0
    for obj in items:
        cond = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        if cond.get("status") == "True" and cond.get("observedGeneration") == obj["metadata"]["generation"]:
            done += 1
    return len(items) == count and done == count


def leader_of(cluster: Cluster, *candidates: Deployed) -> Deployed:
    def found() -> Deployed | None:
        held = holder(cluster)
        return next((d for d in candidates if identity(d) == held), None)

    result: Deployed = wait_for(found, 30, interval=0.1, what="a leader among the candidates")
    return result


def revision(cluster: Cluster, name: str, secret: str) -> int:
    status = get_json(cluster, "pxsecurity", name, "-n", NS).get("status") or {}
    return next((int(s["revision"]) for s in status.get("secrets") or [] if s["name"] == secret), 0)


def test_one_leader_reconciles_and_the_other_takes_over(ha_cluster: Cluster, tmp_path: Path) -> None:
    cluster = ha_cluster
    audit = cluster.audit_log
    assert audit is not None
    deploy = deployment(cluster, OPERATOR_NS, "px-security-operator")
    started = now()
    a = run_as_deployment(cluster, deploy, tmp_path, "a", SHORT)
    b = run_as_deployment(cluster, deploy, tmp_path, "b", SHORT)
    processes = [a, b]
    try:
        leader = leader_of(cluster, a, b)
        standby = b if leader is a else a
        wait_metric(leader, "pxsec_leader", 1)
        for i in range(OBJECTS):
            cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(sample(i)))
        wait_for(lambda: all_ready(cluster, OBJECTS), 120, what="every resource Ready")

        # The standby keeps its watches and a queue naming every resource, and writes nothing at all.
        seen = standby.metrics()
        assert seen.value("pxsec_leader") == 0 and seen.value("pxsec_workqueue_depth") == OBJECTS
        assert seen.value("pxsec_reconciles_total", result="ready") == 0
        writes = writes_by_credential(audit, since=started)
        ours = {w.credential for w in writes if w.namespace == NS and w.credential.startswith("JTI=")}
        assert ours == {leader.credential}, "one writer in the served namespace: the leader"
        assert [w for w in writes if w.credential == standby.credential] == []

        # SIGKILL the leader; change things while nobody leads.
        killed_at = time.monotonic()
        killed = now()
        leader.process.kill()
        cluster.kubectl("delete", "secret", "px-0-shared", "-n", NS)
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(sample(OBJECTS)))
        wait_metric(standby, "pxsec_leader", 1, timeout=30)
        takeover = time.monotonic() - killed_at
        wait_for(lambda: all_ready(cluster, OBJECTS + 1) and revision(cluster, "px-0", "px-0-shared") == 2, 120,
                 what="convergence after the takeover")
        converged = time.monotonic() - killed_at
        print(f"takeover after SIGKILL: {takeover:.1f}s (lease 4s); converged after {converged:.1f}s")
        assert takeover < 4 + 3, "a takeover takes about the lease duration after the last renewal"
        after = standby.metrics()
        assert after.value("pxsec_workqueue_depth") == 0 and after.value("pxsec_reconciles_total", result="ready")

        writes = writes_by_credential(audit, since=started)
        assert {w.credential for w in writes if w.namespace == NS and w.credential.startswith("JTI=")} \
            == {leader.credential, standby.credential}
        last_of_dead = max(w.at for w in writes if w.credential == leader.credential)
        first_of_new = min(w.at for w in writes if w.credential == standby.credential)
        assert last_of_dead <= killed < first_of_new, "never two writers at once"

        # SIGTERM: a clean stop releases the Lease, and a waiting candidate takes over at once.
        c = run_as_deployment(cluster, deploy, tmp_path, "c", SHORT)
        processes.append(c)
        wait_for(lambda: "waiting for the Lease" in c.process.output(), 30, what="c a candidate")
        stopped_at = time.monotonic()
        assert standby.process.stop() == 0
        assert "released the Lease" in standby.process.output()
        wait_metric(c, "pxsec_leader", 1, timeout=10)
        handover = time.monotonic() - stopped_at
        print(f"handover after SIGTERM: {handover:.1f}s (retry period 0.5s)")
        assert handover < 3
        cluster.kubectl("patch", "pxsecurity", "px-1", "-n", NS, "--type=merge",
                        "-p", '{"spec":{"selfSigned":{"tokenLifetime":"12h"}}}')
        wait_for(lambda: all_ready(cluster, OBJECTS + 1), 60, what="a spec change converges under c")

        for deployed in processes:
            assert_no_leaks(cluster, NS, deployed.process.output())
    finally:
        for deployed in processes:
            deployed.process.stop()
            print(f"--- {deployed.process.log.name} (tail) ---\n{deployed.process.output()[-3000:]}")


def test_a_leader_that_loses_its_lease_stops_at_once(ha_cluster: Cluster, tmp_path: Path) -> None:
    cluster = ha_cluster
    deploy = deployment(cluster, OPERATOR_NS, "px-security-operator")
    leader = run_as_deployment(cluster, deploy, tmp_path, "leader", SHORT)
    try:
        wait_for(lambda: holder(cluster) == identity(leader), 30, what="it leads")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        taken_at = time.monotonic()
        cluster.kubectl("patch", "lease", LEASE, "-n", OPERATOR_NS, "--type=merge",
                        "-p", f'{{"spec":{{"holderIdentity":"intruder","renewTime":"{stamp}"}}}}')
        code = wait_for(lambda: leader.process.popen is not None and leader.process.popen.poll(), 10,
                        what="the leader exits")
        print(f"stopped {time.monotonic() - taken_at:.1f}s after its Lease was taken")
        assert code == 1
        assert "lost the Lease" in leader.process.output() and "intruder holds it" in leader.process.output()
        assert holder(cluster) == "intruder"  # it did not fight for it
    finally:
        leader.process.stop()
