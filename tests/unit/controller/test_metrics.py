"""Metrics read off a reconcile's status (pxsec.controller.metrics), the runtime's result classification and leader
gating (pxsec.controller.handlers.Runtime), and the work queue's depth and drain. The endpoint scraped from a running
operator is in tests/e2e/test_metrics.py."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pxsec.conditions import Condition
from pxsec.controller.handlers import ObservedReconciler, Runtime
from pxsec.controller.metrics import Metrics, issuer_label
from pxsec.controller.reconciler import Dependency, Key, Result
from pxsec.controller.workqueue import Outcome, WorkQueue
from pxsec.spec import PxSecuritySpec, parse_spec

KEY = ("portworx", "px-cluster")
SPEC = parse_spec({"oidc": {"issuer": "https://idp.example.com/realms/px", "clientID": "portworx"},
                   "selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {}},
                   "tokens": [{"secretName": "px-admin-token", "roles": ["system.admin"]}]})
STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "secrets": [{"name": "px-system-secrets", "revision": 1, "fingerprint": "sha256:ab"},
                {"name": "px-shared-secret", "revision": 2, "fingerprint": "sha256:cd"}],
    "tokens": [{"secretName": "px-admin-token", "expiresAt": "2030-01-01T00:00:00Z"},
               {"secretName": "px-user-token", "mintedBy": "PortworxOperator"}],  # not minted yet: no expiry
    "oidc": {"lastProbeTime": "2026-01-01T00:00:00Z", "issuerMatches": True},
}
READY = Condition("Ready", True, "Ready", "all token sources and key material are in place")
OIDC_OK = Condition("OIDCReady", True, "ProviderReady", "ok")


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client import generate_latest

    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_status_becomes_gauges_with_names_only() -> None:
    m = Metrics(process_collectors=False)
    assert m.observe(KEY, SPEC, STATUS, [READY, OIDC_OK]) is True
    assert value(m, "pxsec_ready", namespace="portworx", pxsecurity="px-cluster") == 1
    assert value(m, "pxsec_token_expiry_timestamp_seconds", namespace="portworx", pxsecurity="px-cluster",
                 secret="px-admin-token") == 1893456000.0
    assert value(m, "pxsec_key_secret_revision", namespace="portworx", pxsecurity="px-cluster",
                 secret="px-shared-secret") == 2
    assert value(m, "pxsec_oidc_provider_ready", namespace="portworx", pxsecurity="px-cluster",
                 issuer="https://idp.example.com/realms/px", reason="ProviderReady") == 1
    names = {name for name, _ in samples(m)}
    assert "pxsec_token_expiry_timestamp_seconds" in names
    tokens = {dict(labels)["secret"] for name, labels in samples(m) if name == "pxsec_token_expiry_timestamp_seconds"}
    assert tokens == {"px-admin-token"}  # a token not minted yet has no expiry to report


def test_series_follow_the_status_and_vanish_with_the_resource() -> None:
    m = Metrics(process_collectors=False)
    m.observe(KEY, SPEC, STATUS, [READY, OIDC_OK])
    failing = Condition("OIDCReady", False, "DiscoveryFailed", "connection refused")
    fewer = {**STATUS, "tokens": [], "secrets": STATUS["secrets"][:1]}
    assert m.observe(KEY, SPEC, fewer, [Condition("Ready", False, "DiscoveryFailed", "x"), failing]) is False
    oidc = {dict(labels)["reason"]: v for (name, labels), v in samples(m).items()
            if name == "pxsec_oidc_provider_ready"}
    assert oidc == {"DiscoveryFailed": 0}  # one series per provider: the old reason is gone
    assert value(m, "pxsec_ready", namespace="portworx", pxsecurity="px-cluster") == 0
    assert value(m, "pxsec_key_secret_revision", namespace="portworx", pxsecurity="px-cluster",
                 secret="px-shared-secret") is None
    m.forget(KEY)
    assert not [k for k in samples(m) if k[0].startswith(("pxsec_ready", "pxsec_key", "pxsec_token", "pxsec_oidc"))]


def test_nodes_are_counted_by_whether_they_acknowledge_and_go_with_status_nodes() -> None:
    m = Metrics(process_collectors=False)
    m.observe(KEY, SPEC, {**STATUS, "nodes": {"acknowledged": "2/3", "keys": ["HS256 (Secret s)"]}}, [READY])
    assert value(m, "pxsec_portworx_nodes", namespace="portworx", pxsecurity="px-cluster", acknowledged="true") == 2
    assert value(m, "pxsec_portworx_nodes", namespace="portworx", pxsecurity="px-cluster", acknowledged="false") == 1
    m.observe(KEY, SPEC, STATUS, [READY])  # no probing (no StorageNodes, probeNodes false): no series
    assert not [k for k in samples(m) if k[0] == "pxsec_portworx_nodes"]


def test_tenants_are_counted_per_tenant_never_per_namespace() -> None:
    m = Metrics(process_collectors=False)
    rows = [{"name": "team-a", "selected": 2000, "ready": 1998, "problems": ["x"]}, {"name": "team-b", "selected": 0,
                                                                                   "ready": 0}]
    m.observe(KEY, SPEC, {**STATUS, "tenants": rows}, [READY])
    assert value(m, "pxsec_tenant_namespaces", namespace="portworx", pxsecurity="px-cluster", tenant="team-a",
                 state="ready") == 1998
    assert len([k for k in samples(m) if k[0] == "pxsec_tenant_namespaces"]) == 4
    m.observe(KEY, SPEC, STATUS, [READY])
    assert not [k for k in samples(m) if k[0] == "pxsec_tenant_namespaces"]


def test_issuer_label_keeps_no_user_info_or_query() -> None:
    assert issuer_label("https://user:pw@idp.example.com:8443/realms/px?x=1#f") == "https://idp.example.com:8443/realms/px"


class Scripted:
    """A reconciler whose result the test scripts; `observe` as the real one calls it at the end."""

    def __init__(self) -> None:
        self.ready: bool | None = True
        self.raises = False
        self.observer: Callable[[Key, PxSecuritySpec, Mapping[str, Any], Sequence[Condition]], None] | None = None

    def reconcile(self, key: Key, watch: Callable[[set[Dependency]], None] | None = None) -> Result:
        if self.raises:
            raise RuntimeError("API server unavailable")
        if self.ready is not None and self.observer is not None:
            self.observer(key, SPEC, STATUS, [Condition("Ready", self.ready, "R", "m")])
        return Result(Outcome())


def test_runtime_counts_reconciles_by_result_and_times_them() -> None:
    rec = Scripted()
    runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
    rec.observer = runtime.observed
    runtime.active = True
    runtime._reconcile(KEY)
    rec.ready = False
    runtime._reconcile(KEY)
    rec.ready = None  # gone, or an unreadable spec: no full pass
    runtime._reconcile(KEY)
    rec.raises = True
    with contextlib.suppress(RuntimeError):
        runtime._reconcile(KEY)
    m = runtime.metrics
    assert {r: value(m, "pxsec_reconciles_total", result=r) for r in ("ready", "not_ready", "skipped", "error")} \
        == {"ready": 1, "not_ready": 1, "skipped": 1, "error": 1}
    assert value(m, "pxsec_reconcile_duration_seconds_count") == 4


def test_a_replica_that_does_not_lead_reconciles_nothing() -> None:
    rec = Scripted()
    runtime = Runtime(rec, workers=1, active=False)  # type: ignore[arg-type]
    assert runtime._reconcile(KEY) == Outcome()
    assert value(runtime.metrics, "pxsec_reconciles_total", result="ready") == 0
    assert value(runtime.metrics, "pxsec_leader") == 0


def test_a_deleted_resource_keeps_no_series_even_from_a_reconcile_still_running() -> None:
    rec = Scripted()
    runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
    rec.observer = runtime.observed
    runtime.active = True
    runtime.deleted(KEY)  # the DELETED event arrives while the reconcile runs
    runtime._reconcile(KEY)
    assert value(runtime.metrics, "pxsec_ready", namespace="portworx", pxsecurity="px-cluster") is None
    runtime.present(KEY)  # created again
    runtime._reconcile(KEY)
    assert value(runtime.metrics, "pxsec_ready", namespace="portworx", pxsecurity="px-cluster") == 1


def test_observed_reconciler_hook_is_wired_by_the_runtime() -> None:
    rec = ObservedReconciler.__new__(ObservedReconciler)  # no gateway needed to check the wiring
    runtime = Runtime(rec, workers=1)
    assert rec.observer == runtime.observed


def test_queue_depth_counts_waiting_keys_until_the_workers_start() -> None:
    gate = threading.Event()
    m = Metrics(process_collectors=False)

    def reconcile(key: str) -> Outcome:
        gate.wait(2)
        return Outcome()

    async def scenario() -> None:
        q: WorkQueue[str] = WorkQueue(reconcile, workers=1)
        m.track_queue(lambda: q.depth)
        for key in ("a", "b", "c", "a"):
            q.add(key)
        assert value(m, "pxsec_workqueue_depth") == 3  # a standby replica: keys wait, coalesced
        q.start()
        await asyncio.sleep(0.05)
        assert value(m, "pxsec_workqueue_depth") == 2  # "a" is being processed
        gate.set()
        await asyncio.sleep(0.1)
        assert value(m, "pxsec_workqueue_depth") == 0
        await q.stop()

    asyncio.run(scenario())


def test_stop_waits_for_a_reconcile_running_in_its_thread() -> None:
    finished: list[float] = []

    def reconcile(key: str) -> Outcome:
        time.sleep(0.3)
        finished.append(time.monotonic())
        return Outcome()

    async def scenario() -> float:
        q: WorkQueue[str] = WorkQueue(reconcile, workers=1)
        q.start()
        q.add("k")
        await asyncio.sleep(0.05)
        await q.stop()
        return time.monotonic()

    stopped = asyncio.run(scenario())
    assert finished and finished[0] <= stopped  # no write of ours is still on its way after stop()


def test_endpoint_serves_the_registry() -> None:
    m = Metrics()
    m.leader.set(1)
    host, port = m.serve("127.0.0.1:0")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "pxsec_leader 1.0" in text and "process_resident_memory_bytes" in text
