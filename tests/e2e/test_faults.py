"""A faulty API server changes nothing (issue 24, "API faults through a real proxy"), on a control plane of
its own with an audit log, the operator running as its ServiceAccount with every request going through
tests/support/faultproxy.py: 5% 429 with Retry-After, 5% 500, 5% held for 2 s, 3% reset half way through
the body, watch streams cut every 2-6 s, and 20% of watch resumes answered 410 Gone.

- A burst of 50 PxSecurities converges, with at most twice the requests of the same burst without faults;
  each Secret is created exactly once (audit log); no key value changes; no false SecretLost.
- Under the same faults a key Secret deleted by hand is regenerated once, loudly (one SecretLost, for it
  only), and a token with a 6 s lifetime is renewed again and again; every other key value stays as it was.
- A soak: 1,000 token renewals of one object (32 tokens of 3 s) and 1,000 watch resumes (an operator
  serving 8 namespaces, every stream ended or cut after 1-2 s, 20% of resumes answered 410): the
  operator's RSS and its store stay flat.
- An HA handover under the same faults: the Deployment's two replicas (leader election, Lease times short
  as in test_ha.py), every process that exits restarted as the kubelet would; the leader SIGKILLed while a
  key Secret is deleted and a resource added. Converges; each Secret created once (the deleted one twice);
  no other key value changes; one SecretLost; every write by a replica that renewed the Lease within the
  renew deadline (+ the proxy's hold).
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.devcluster.controlplane import free_port
from tests.e2e.conftest import apply
from tests.support.audit import Follow, audit_log, now, writes
from tests.support.faultproxy import FaultProxy, Faults, start_for
from tests.support.helpers import get_json, wait_for
from tests.support.installed import (
    ROOT,
    Deployed,
    Restarting,
    private_cluster,
    run_as_deployment,
    scrape,
    writes_by_credential,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

OBJECTS = 50
OURS = "system:serviceaccount:pxsec-system:px-security-operator"
REQUESTS_BOUND = 2.0


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, FaultProxy, OperatorProcess]]:
    work = tmp_path_factory.mktemp("faults")
    with private_cluster() as cluster:
        assert cluster.control_plane is not None
        cluster.install_crds(ROOT)
        cluster.install_rbac(ROOT)
        proxy = start_for(cluster.control_plane)
        kubeconfig = proxy.kubeconfig(cluster.service_account_kubeconfig(), work / "through-the-proxy.kubeconfig")
        operator = OperatorProcess(kubeconfig=kubeconfig, log=work / "operator.log",
                                   args=(f"--metrics-bind-address=127.0.0.1:{free_port()}",)).start()
        try:
            operator.wait_for_log("px-security-operator started")
            yield cluster, proxy, operator
        finally:
            operator.stop()
            proxy.stop()


def pxsecurity(i: int, lifetime: str = "24h") -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": f"px-{i}"},
            "spec": {"system": {"secretName": f"sys-{i}"},
                     "selfSigned": {"tokenLifetime": lifetime, "sharedSecret": {"secretName": f"shared-{i}"},
                                    "ecdsa": {"secretName": f"ec-{i}"}},
                     "tokens": [{"secretName": f"tok-{i}", "roles": ["system.admin"]}]}}


def ready_count(cluster: Cluster, namespace: str) -> int:
    count = 0
    for item in get_json(cluster, "pxsecurities", "-n", namespace).get("items", []):
        ready = next((c for c in (item.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        count += ready.get("status") == "True" and ready.get("observedGeneration") == item["metadata"]["generation"]
    return count


def key_values(cluster: Cluster, namespace: str) -> dict[str, bytes]:
    """Every key value of the namespace's key Secrets (not the tokens), by Secret/key; never printed."""
    return {f"{item['metadata']['name']}/{key}": base64.b64decode(value)
            for item in get_json(cluster, "secrets", "-n", namespace).get("items", [])
            if not item["metadata"]["name"].startswith(("tok-", "kube-root"))
            for key, value in (item.get("data") or {}).items()}


def burst(cluster: Cluster, proxy: FaultProxy, namespace: str) -> int:
    """Create OBJECTS PxSecurities at once, wait until all are Ready; the requests the operator sent."""
    before = proxy.counts.get("requests", 0)
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "List",
                               "items": [pxsecurity(i) for i in range(OBJECTS)]})
    wait_for(lambda: ready_count(cluster, namespace) == OBJECTS, 300, interval=0.5,
             what=f"{OBJECTS} Ready in {namespace}")
    return proxy.counts.get("requests", 0) - before


def lost_events(cluster: Cluster, namespace: str) -> list[str]:
    items = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=SecretLost").get("items", [])
    return sorted(str(e["message"]) for e in items)


def test_a_burst_converges_through_faults_with_each_secret_created_once(
        faulty: tuple[Cluster, FaultProxy, OperatorProcess]) -> None:
    cluster, proxy, operator = faulty
    proxy.faults = Faults.none()
    calm = burst(cluster, proxy, "calm")
    by_client = {k: v for k, v in proxy.counts.items() if k.startswith("by ")}

    proxy.faults = Faults()
    start = now()
    stormy = burst(cluster, proxy, "stormy")
    injected = {k: v for k, v in proxy.counts.items() if k != "requests" and not k.startswith("by ")}
    by_client = {k: v - by_client.get(k, 0) for k, v in proxy.counts.items() if k.startswith("by ")}
    assert injected.get("429", 0) and injected.get("500", 0) and injected.get("reset", 0), injected
    # The goal: at most 2x. Each injected fault costs at least its own retry (≈ 100 faults: ≈ 1.25x
    # is the floor); measured 1.2-1.6x since a 429 is sent again after its Retry-After.
    assert stormy <= REQUESTS_BOUND * calm, f"{stormy} requests with faults against {calm} without ({injected})"
    print(f"\nfault proxy: {OBJECTS} objects, {calm} requests without faults, {stormy} with "
          f"({stormy / calm:.2f}x); injected {injected}; by client {by_client}")

    created = sorted(w.name for w in writes(audit_log(cluster), namespace="stormy", since=start, users={OURS})
                     if w.resource == "secrets" and w.verb == "create")
    expected = sorted(f"{kind}-{i}" for i in range(OBJECTS) for kind in ("sys", "shared", "ec", "tok"))
    assert created == expected, "each Secret created exactly once"
    first = key_values(cluster, "stormy")
    # Watches cut and resumed, some answered 410 and listed again: still nothing changes.
    cuts = proxy.counts.get("watch cut", 0)
    wait_for(lambda: proxy.counts.get("watch cut", 0) >= cuts + 3 and proxy.counts.get("410", 0) > 0, 120,
             what="more watches cut and resumed, and a 410 Gone")
    assert ready_count(cluster, "stormy") == OBJECTS
    changed = sorted(ref for ref, value in key_values(cluster, "stormy").items() if first.get(ref) != value)
    assert changed == [], "key values changed"
    assert lost_events(cluster, "stormy") == []
    assert operator.popen is not None and operator.popen.poll() is None


def test_a_key_loss_and_token_renewals_through_faults(faulty: tuple[Cluster, FaultProxy, OperatorProcess]) -> None:
    cluster, proxy, _ = faulty
    proxy.faults = Faults()
    namespace = "renewals"
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "List",
                               "items": [pxsecurity(0), pxsecurity(1, lifetime="6s")]})
    wait_for(lambda: ready_count(cluster, namespace) == 2, 120, what="both Ready")
    first = key_values(cluster, namespace)

    cluster.kubectl("delete", "secret", "shared-0", "-n", namespace)
    wait_for(lambda: "shared-0/shared-secret" in key_values(cluster, namespace), 120, what="shared-0 regenerated")
    lost = wait_for(lambda: lost_events(cluster, namespace), 30, what="the SecretLost Event")
    assert len(lost) == 1 and "shared-0" in lost[0], lost

    seen: list[bytes] = []

    def renewed() -> bool:
        token = base64.b64decode(get_json(cluster, "secret", "tok-1", "-n", namespace)["data"]["auth-token"])
        if not seen or seen[-1] != token:
            seen.append(token)
        return len(seen) >= 4

    wait_for(renewed, 120, interval=0.5, what="the 6 s token renewed three times")
    after = key_values(cluster, namespace)
    changed = sorted(ref for ref in first if ref != "shared-0/shared-secret" and after.get(ref) != first[ref])
    assert changed == [], "key values changed"
    assert after["shared-0/shared-secret"] != first["shared-0/shared-secret"]  # a new key, said by SecretLost
    assert lost_events(cluster, namespace) == lost


def test_the_proxy_forwards_identity_untouched(faulty: tuple[Cluster, FaultProxy, OperatorProcess],
                                               tmp_path: Path) -> None:
    """Without faults, kubectl through the proxy is kubectl: the same identity and answers (so the tests above
    measure the operator, not the proxy)."""
    cluster, proxy, _ = faulty
    proxy.faults = Faults.none()
    kubeconfig = proxy.kubeconfig(cluster.service_account_kubeconfig(), tmp_path / "kubectl.kubeconfig")
    direct = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                             kubeconfig_path=cluster.service_account_kubeconfig()).stdout
    proxied = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                              kubeconfig_path=kubeconfig).stdout
    assert direct == proxied == OURS


RENEWALS, RESUMES, TOKENS, NAMESPACES = 1000, 1000, 32, 8  # 32: the CRD's cap on spec.tokens
RSS_GROWTH = 4 * 2**20  # bytes a flat process may still move by (allocator arenas, GC timing)


def test_a_soak_of_renewals_and_watch_resumes(faulty: tuple[Cluster, FaultProxy, OperatorProcess],
                                              tmp_path: Path) -> None:
    """One object renewing 32 tokens of 3 s, served by an operator of its own that serves 8 namespaces
    (a namespaced install: one watch per resource and namespace, ~40 streams), every stream ended after
    1-2 s (80% as the API server ends a watch, 20% cut) and 20% of resumes answered 410. RSS and the
    store's size are read at 20%, 60% and 100% of the soak: flat is no growth in the last 40%."""
    cluster, proxy, operator = faulty
    operator.stop()  # this soak's operator serves the namespaces below alone
    namespaces = [f"soak-{i}" for i in range(NAMESPACES)]
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
    kubeconfig = proxy.kubeconfig(cluster.service_account_kubeconfig(), tmp_path / "soak.kubeconfig")
    address = f"127.0.0.1:{free_port()}"
    soaking = OperatorProcess(kubeconfig=kubeconfig, log=tmp_path / "soak.log",
                              args=(f"--metrics-bind-address={address}",
                                    *(f"--namespace={n}" for n in namespaces))).start()
    renewals = Follow(audit_log(cluster), namespaces[0])
    counted = [0]

    def resumes() -> int:
        return proxy.counts.get("watch cut", 0) + proxy.counts.get("watch ended", 0)

    def reached(share: float, since: int) -> bool:
        counted[0] += sum(1 for w in renewals.new()
                          if w.resource == "secrets" and w.verb == "patch" and w.name.startswith("tok-"))
        return counted[0] >= RENEWALS * share and resumes() - since >= RESUMES * share

    samples: list[tuple[int, int, float, float | None]] = []
    try:
        soaking.wait_for_log("px-security-operator started")
        proxy.faults = Faults(too_many=0, server_error=0, slow=0, reset=0, watch_cut=(1.0, 2.0), gone=0.2,
                              clean_end=0.8)
        since = resumes()
        soak = pxsecurity(0, lifetime="3s")
        soak["spec"]["tokens"] = [{"secretName": f"tok-{i}", "roles": ["system.view"]} for i in range(TOKENS)]
        apply(cluster, namespaces[0], soak)
        for share in (0.2, 0.6, 1.0):
            wait_for(lambda share=share: reached(share, since), 600, interval=1,  # type: ignore[misc]
                     what=f"{share:.0%} of {RENEWALS} renewals and {RESUMES} watch resumes")
            seen = scrape(f"http://{address}/metrics")
            samples.append((counted[0], resumes() - since, seen.value("process_resident_memory_bytes") or 0,
                            seen.value("pxsec_store_entries")))
        assert soaking.popen is not None and soaking.popen.poll() is None
    finally:
        proxy.faults = Faults.none()
        soaking.stop()
        print(f"--- soak operator (tail) ---\n{soaking.output()[-2000:]}")
    print("\nsoak (renewals, watch resumes, RSS MiB, store entries): " + "; ".join(
        f"{r}, {w}, {rss / 2**20:.1f}, {store}" for r, w, rss, store in samples)
        + f"; {proxy.counts.get('410', 0)} 410s in the module")
    (_, _, _, warm_store), (_, _, mid_rss, mid_store), (_, _, end_rss, end_store) = samples
    assert warm_store is not None and warm_store == mid_store == end_store, "the store grew while nothing was added"
    assert end_rss - mid_rss <= RSS_GROWTH, "RSS grew over the last 40% of the soak"


SHORT = ("--leader-election-lease-duration=4", "--leader-election-renew-deadline=3",
         "--leader-election-retry-period=0.5")
OPERATOR_NS = "pxsec-system"
# A write lands at most this long after its replica last renewed the Lease: the renew deadline (3 s: past it
# the replica stops and exits) plus the proxy's hold of a request (2 s), plus a second. A deposed leader's
# write still in flight may land after the new leader's first ones (as with client-go's election: no
# fencing); a replica that never held the Lease, or lost it long ago, never writes.
LEADER_STALENESS = 3 + 2 + 1


def lease(cluster: Cluster) -> dict[str, Any]:
    return get_json(cluster, "lease", "px-security-operator", "-n", OPERATOR_NS).get("spec") or {}


def current_identity(deployed: Deployed) -> str:
    """The identity of the process running now (a restarted one says a new one in the same log)."""
    found = re.findall(r"\(identity (\S+)\)", deployed.process.output())
    return found[-1] if found else ""


def test_a_handover_through_faults(faulty: tuple[Cluster, FaultProxy, OperatorProcess], tmp_path: Path) -> None:
    cluster, proxy, operator = faulty
    operator.stop()  # the module's one unelected operator gives way to the Deployment's two replicas (the
    # soak stopped it already when it ran first)
    assert cluster.audit_log is not None
    deploy = yaml.safe_load((ROOT / "manifests" / "operator" / "deployment.yaml").read_text())
    namespace, objects = "handover", 10
    cluster.kubectl("create", "namespace", namespace)
    proxy.faults = Faults()
    start = now()

    def route(kubeconfig: Path) -> Path:
        return proxy.kubeconfig(kubeconfig, kubeconfig.with_name(f"{kubeconfig.stem}.proxied.kubeconfig"))

    replicas = [run_as_deployment(cluster, deploy, tmp_path, label, SHORT, route=route) for label in ("a", "b")]
    transitions = int(lease(cluster).get("leaseTransitions") or 0)
    with Restarting(*replicas) as kubelet:
        apply(cluster, namespace, {"apiVersion": "v1", "kind": "List",
                                   "items": [pxsecurity(i) for i in range(objects)]})
        wait_for(lambda: ready_count(cluster, namespace) == objects, 180, interval=0.5, what="all Ready")
        first = key_values(cluster, namespace)

        leader = wait_for(lambda: next((d for d in replicas if current_identity(d) == lease(cluster).get(
            "holderIdentity")), None), 30, what="a leader among the replicas")
        killed_at = time.monotonic()
        leader.process.kill()  # restarted by the "kubelet", as a candidate
        cluster.kubectl("delete", "secret", "shared-0", "-n", namespace)
        apply(cluster, namespace, pxsecurity(objects))

        def converged() -> bool:
            values = key_values(cluster, namespace)
            return ready_count(cluster, namespace) == objects + 1 and values.get("shared-0/shared-secret") not in (
                None, first["shared-0/shared-secret"])

        wait_for(converged, 180, interval=0.5, what="convergence after the handover")
        took = time.monotonic() - killed_at
        lost = wait_for(lambda: lost_events(cluster, namespace), 30, what="the SecretLost Event")
        exits = list(kubelet.exits)
    transitions = int(lease(cluster).get("leaseTransitions") or 0) - transitions

    after = key_values(cluster, namespace)
    changed = sorted(ref for ref in first if ref != "shared-0/shared-secret" and after.get(ref) != first[ref])
    assert changed == [], "key values changed"
    assert len(lost) == 1 and "shared-0" in lost[0], lost
    ours = {d.credential for d in replicas}
    writes = [w for w in writes_by_credential(cluster.audit_log, since=start)
              if w.namespace == namespace and w.credential in ours]
    created = sorted(w.name for w in writes if w.resource == "secrets" and w.verb == "create")
    expected = sorted([f"{kind}-{i}" for i in range(objects + 1) for kind in ("sys", "shared", "ec", "tok")]
                      + ["shared-0"])
    assert created == expected, "each Secret created exactly once (the deleted one again)"
    writers = [w.credential for w in sorted(writes, key=lambda w: w.at)]
    switches = sum(a != b for a, b in itertools.pairwise(writers))
    # Who held the Lease when: every successful write of the Lease is its holder renewing or taking it.
    held = [w for w in writes_by_credential(cluster.audit_log, since=start)
            if w.resource == "leases" and w.name == "px-security-operator"]
    stale = []
    for w in writes:
        renewed = [h.at for h in held if h.credential == w.credential and h.at <= w.at]
        if not renewed or (w.at - max(renewed)).total_seconds() > LEADER_STALENESS:
            stale.append((w.verb, w.resource, w.name, w.at.isoformat()))
    print(f"\nhandover through faults: converged {took:.1f}s after the SIGKILL; exits {exits}; "
          f"Lease changed hands {transitions} times; the writer changed {switches} times; "
          f"injected {({k: v for k, v in proxy.counts.items() if k != 'requests' and not k.startswith('by ')})}")
    assert stale == [], "writes by a replica that had not held the Lease within the renew deadline"
