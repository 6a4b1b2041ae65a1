"""Prometheus metrics: read off what each reconcile already computed, never threaded through its steps.

`Reconciler.observe` (called once at the end of every full reconcile with the status it computed) feeds
`Metrics.observe`; the work queue and the leader election feed the process-wide gauges. Labels carry
names only — namespace, PxSecurity, Secret, issuer URL, condition reason — never a Secret's value (the
status this reads holds fingerprints and names only, by the core's own rule).

    pxsec_reconciles_total{result}                          counter   ready | not_ready | error | skipped
    pxsec_reconcile_duration_seconds                        histogram one bucket set, every reconcile
    pxsec_workqueue_depth                                   gauge     keys waiting (not being processed)
    pxsec_leader                                            gauge     1 when this replica reconciles
    pxsec_ready{namespace,pxsecurity}                       gauge     1 when Ready is True
    pxsec_token_expiry_timestamp_seconds{namespace,pxsecurity,secret}
                                                            gauge     status.tokens[].expiresAt (Unix time)
    pxsec_oidc_provider_ready{namespace,pxsecurity,issuer,reason}
                                                            gauge     1/0: the OIDCReady condition
    pxsec_key_secret_revision{namespace,pxsecurity,secret}  gauge     status.secrets[].revision

`skipped`: no pass ran — the resource is gone or being deleted, or its namespace is being deleted. A spec
that cannot be read is `not_ready` (Ready False, InvalidSpec). `error`: the reconcile raised (the work queue retries it
with back-off).
"""

from __future__ import annotations

import datetime as dt
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from pxsec.conditions import OIDC_READY, READY, Condition
from pxsec.spec import PxSecuritySpec

Key = tuple[str, str]

RESULTS = ("ready", "not_ready", "error", "skipped")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _timestamp(text: object) -> float | None:
    """An RFC 3339 time from status as Unix seconds (None when absent or unreadable)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def issuer_label(issuer: str) -> str:
    """The issuer URL as a label: scheme, host and path only (no user info, query or fragment)."""
    try:
        parts = urllib.parse.urlsplit(issuer)
    except ValueError:
        return "invalid"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class Metrics:
    """The operator's metrics in their own registry (plus the process, platform and GC collectors)."""

    def __init__(self, registry: CollectorRegistry | None = None, process_collectors: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        if process_collectors:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        r = self.registry
        self.reconciles = Counter("pxsec_reconciles", "Reconciles by result: ready, not_ready, error (raised; "
                                  "retried with back-off), skipped (gone or being deleted).",
                                  ["result"], registry=r)
        for result in RESULTS:
            self.reconciles.labels(result)
        self.duration = Histogram("pxsec_reconcile_duration_seconds", "Time one reconcile took.",
                                  buckets=DURATION_BUCKETS, registry=r)
        self.queue_depth = Gauge("pxsec_workqueue_depth", "Keys waiting in the work queue.", registry=r)
        self.store_entries = Gauge("pxsec_store_entries", "What the operator's store holds (objects known from "
                                   "the watches and its own reads and writes, writes in flight, listings).",
                                   registry=r)
        self.leader = Gauge("pxsec_leader", "1 when this replica is the one that reconciles (holds the Lease, "
                            "or runs without leader election), else 0.", registry=r)
        self.ready = Gauge("pxsec_ready", "1 when the PxSecurity is Ready, else 0.",
                           ["namespace", "pxsecurity"], registry=r)
        self.token_expiry = Gauge("pxsec_token_expiry_timestamp_seconds",
                                  "When the token in a token Secret expires (status.tokens[].expiresAt), Unix time.",
                                  ["namespace", "pxsecurity", "secret"], registry=r)
        self.oidc = Gauge("pxsec_oidc_provider_ready",
                          "The last OIDC provider probe: 1 when OIDCReady is True, else 0; reason is its reason.",
                          ["namespace", "pxsecurity", "issuer", "reason"], registry=r)
        self.key_revision = Gauge("pxsec_key_secret_revision",
                                  "status.secrets[].revision: grows each time a lost key Secret was generated again.",
                                  ["namespace", "pxsecurity", "secret"], registry=r)
        self.tenant_namespaces = Gauge(
            "pxsec_tenant_namespaces", "Per tenant: the namespaces its selector picks (state=selected) and those "
            "holding its current token (state=ready). No per-namespace series.",
            ["namespace", "pxsecurity", "tenant", "state"], registry=r)
        self.nodes = Gauge("pxsec_portworx_nodes",
                           "Portworx nodes (StorageNodes) of the targeted StorageCluster, by whether they accept a "
                           "canary signed with every current key (status.nodes; NodesAcknowledged).",
                           ["namespace", "pxsecurity", "acknowledged"], registry=r)
        self._per_key = (self.ready, self.token_expiry, self.oidc, self.key_revision, self.nodes,
                         self.tenant_namespaces)
        self._series: dict[Key, set[tuple[Gauge, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    # -- per resource -----------------------------------------------------------------------------

    def observe(self, key: Key, spec: PxSecuritySpec | None, status: Mapping[str, Any],
                conditions: Sequence[Condition]) -> bool:
        """Set the per-resource gauges from one reconcile's status; drop the series it no longer has.
        Returns whether the resource is Ready."""
        namespace, name = key
        by_type = {c.type: c for c in conditions}
        ready = by_type.get(READY)
        is_ready = ready is not None and ready.status is True
        values: dict[tuple[Gauge, tuple[str, ...]], float] = {(self.ready, (namespace, name)): float(is_ready)}
        for token in status.get("tokens") or []:
            expires = _timestamp(token.get("expiresAt"))
            if expires is not None and token.get("secretName"):
                values[(self.token_expiry, (namespace, name, str(token["secretName"])))] = expires
        for secret in status.get("secrets") or []:
            if secret.get("name") and isinstance(secret.get("revision"), int):
                values[(self.key_revision, (namespace, name, str(secret["name"])))] = float(secret["revision"])
        done, _, total = str((status.get("nodes") or {}).get("acknowledged") or "").partition("/")
        if done.isdigit() and total.isdigit():
            values[(self.nodes, (namespace, name, "true"))] = float(done)
            values[(self.nodes, (namespace, name, "false"))] = float(int(total) - int(done))
        for tenant in status.get("tenants") or []:
            if isinstance(tenant, Mapping) and tenant.get("name"):
                for state in ("selected", "ready"):
                    count = tenant.get(state)
                    if isinstance(count, int):
                        values[(self.tenant_namespaces, (namespace, name, str(tenant["name"]), state))] = float(count)
        oidc = by_type.get(OIDC_READY)
        if spec is not None and spec.oidc is not None and oidc is not None:
            oidc_labels: tuple[str, ...] = (namespace, name, issuer_label(spec.oidc.issuer), oidc.reason)
            values[(self.oidc, oidc_labels)] = float(oidc.status is True)
        with self._lock:
            for gauge, labels in self._series.get(key, set()) - values.keys():
                gauge.remove(*labels)
            for (gauge, labels), value in values.items():
                gauge.labels(*labels).set(value)
            self._series[key] = set(values)
        return is_ready

    def forget(self, key: Key) -> None:
        """The resource is gone: its series go too."""
        with self._lock:
            for gauge, labels in self._series.pop(key, set()):
                gauge.remove(*labels)

    # -- process-wide -----------------------------------------------------------------------------

    def count(self, result: str, seconds: float) -> None:
        self.reconciles.labels(result).inc()
        self.duration.observe(seconds)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))

    def track_store(self, size: Callable[[], int]) -> None:
        self.store_entries.set_function(lambda: float(size()))

    def serve(self, address: str) -> tuple[str, int]:
        """Serve /metrics on `host:port` (port 0 picks a free one) in a daemon thread; the bound address."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        bound = server.server_address
        return str(bound[0]), int(bound[1])
