"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Several replicas run; every one of them keeps its watch streams open (so its work queue knows every
PxSecurity), but only the replica holding the Lease runs the work queue's workers. The others wait.

- The holder renews the Lease every `retry_period`; if it cannot renew for `renew_deadline` it stops
  reconciling at once and the process exits (Kubernetes restarts it as a candidate), so an operator cut
  off from the API server never keeps writing on an old belief.
- A candidate takes the Lease over when its record has not changed for the record's
  `leaseDurationSeconds`, measured on the candidate's own monotonic clock from when it saw the record
  change (never by comparing wall clocks across machines).
- On a clean shutdown the holder releases the Lease (empty holder), so a rolling update hands over at
  once instead of after `lease_duration`.

Why a Lease and not kopf's peering: peering is made for pausing deployed operators while a developer
runs one locally. It has no lock ("NO per-object locks", kopf's own words): replicas of one Deployment
share one priority, and equal priorities pause *all* of them; it needs kopf's own peering CRDs and
RBAC on them; a dead peer is noticed after its 60 s lifetime; and a paused operator closes its watch
streams, to re-list everything on resume. A Lease is a core API object, in our own namespace, under a
Role limited to that one name.

Time budget (defaults as client-go's: 15 s / 10 s / 2 s): after a SIGKILL of the holder, a candidate
takes over within `lease_duration` (+ up to one `retry_period`) of the holder's last renewal; after a
clean shutdown, within one `retry_period`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast

logger = logging.getLogger("pxsec.controller.leader")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
RELEASE_ATTEMPTS = 3  # a release races at most the renewal in flight when the stop came
JITTER = 1.2  # client-go's JitterFactor: retries spread over [retry_period, 1.2 * retry_period]


class LeaseConflict(RuntimeError):
    """The Lease changed (or appeared) since it was read: someone else got there first."""


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str = "px-security-operator"
    identity: str = ""
    lease_duration: int = 15  # seconds; an integer, as in the Lease's spec.leaseDurationSeconds
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if self.lease_duration < 1:
            raise ValueError("the lease duration must be at least 1 second")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(f"the renew deadline must be longer than {JITTER} x the retry period")
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")


def default_identity() -> str:
    """The pod's name (HOSTNAME) plus a random suffix: two processes on one host are two candidates."""
    return f"{os.environ.get('HOSTNAME') or 'pxsec'}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str | None:
    """Where the Lease lives: $POD_NAMESPACE (the Deployment sets it), else the pod's ServiceAccount's."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    lease_duration: int
    transitions: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    resource_version: str = ""


class LeaseStore(Protocol):
    def get(self) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord) -> None:
        """Raises LeaseConflict when it exists."""

    def update(self, record: LeaseRecord) -> None:
        """Guarded by record.resource_version; raises LeaseConflict on a change."""


def micro_time(when: dt.datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, UTC."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubernetesLeaseStore:
    """The Lease through the kubernetes client (blocking; called from a thread)."""

    def __init__(self, config: LeaseConfig, client: Any = None) -> None:
        import kubernetes

        from pxsec.controller.kube.rest import api_client

        self.config = config
        self.api = kubernetes.client.CoordinationV1Api(client or api_client())
        # A call must never outlive the renew deadline: a hung request is a failed renewal.
        self.timeout = max(1.0, min(config.renew_deadline / 2, 5.0))

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.config.name, "namespace": self.config.namespace,
                                    "labels": {"app.kubernetes.io/name": "px-security-operator"}}
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        spec: dict[str, Any] = {"holderIdentity": record.holder, "leaseDurationSeconds": record.lease_duration,
                                "leaseTransitions": record.transitions}
        if record.acquire_time:
            spec["acquireTime"] = record.acquire_time
        if record.renew_time:
            spec["renewTime"] = record.renew_time
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def get(self) -> LeaseRecord | None:
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.api.read_namespaced_lease(self.config.name, self.config.namespace,
                                                   _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        spec, meta = lease.spec, lease.metadata
        if spec is None or meta is None:
            return LeaseRecord(holder="", lease_duration=self.config.lease_duration,
                               resource_version=str(meta.resource_version or "") if meta else "")
        return LeaseRecord(
            holder=spec.holder_identity or "",
            lease_duration=int(spec.lease_duration_seconds or self.config.lease_duration),
            acquire_time=micro_time(spec.acquire_time) if spec.acquire_time else None,
            renew_time=micro_time(spec.renew_time) if spec.renew_time else None,
            transitions=int(spec.lease_transitions or 0),
            resource_version=str(meta.resource_version or ""),
        )

    def create(self, record: LeaseRecord) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.create_namespaced_lease(self.config.namespace, cast(Any, self._body(record)),
                                             _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict("the Lease was created by another replica") from None
            raise

    def update(self, record: LeaseRecord) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.replace_namespaced_lease(self.config.name, self.config.namespace, cast(Any, self._body(record)),
                                              _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict("the Lease changed meanwhile") from None
            raise


class LeaderElector:
    """One candidate. `try_acquire_or_renew` is one round (blocking); `run` is the loop (async)."""

    def __init__(self, config: LeaseConfig, store: LeaseStore,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.config = config
        self.store = store
        self.monotonic = monotonic
        self.wall = wall
        self.leading = False
        self.holder = ""  # the holder seen by the last round
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def where(self) -> str:
        return f"Lease {self.config.namespace}/{self.config.name}"

    def try_acquire_or_renew(self) -> bool:
        """Take or keep the Lease if it is free, expired or ours; True when we hold it afterwards."""
        now = self.monotonic()
        stamp = micro_time(self.wall())
        current = self.store.get()
        if current is None:
            record = LeaseRecord(self.identity, self.config.lease_duration, 0, stamp, stamp)
            try:
                self.store.create(record)
            except LeaseConflict:
                return False
            self._observe(record, now)
            self.holder = self.identity
            return True
        self.holder = current.holder
        if self._observed is None or current.resource_version != self._observed.resource_version:
            self._observe(current, now)  # it changed: the holder is alive as of now
        ours = current.holder == self.identity
        if current.holder and not ours and now < self._observed_at + current.lease_duration:
            return False  # held by someone else, and not expired
        record = replace(current, holder=self.identity, lease_duration=self.config.lease_duration, renew_time=stamp,
                         acquire_time=current.acquire_time if ours else stamp,
                         transitions=current.transitions if ours else current.transitions + 1)
        try:
            self.store.update(record)
        except LeaseConflict:
            return False
        self._observe(replace(record, resource_version="(ours)"), now)
        self.holder = self.identity
        return True

    def _observe(self, record: LeaseRecord, now: float) -> None:
        self._observed = record
        self._observed_at = now

    def release(self) -> None:
        """Give the Lease up (clean shutdown), so a candidate takes over within one retry period."""
        if not self.leading:
            return
        self.leading = False
        for _attempt in range(RELEASE_ATTEMPTS):
            try:
                current = self.store.get()
                if current is None or current.holder != self.identity:
                    return
                stamp = micro_time(self.wall())
                self.store.update(replace(current, holder="", lease_duration=1, renew_time=stamp,
                                          acquire_time=stamp))
                logger.info("released the %s", self.where)
                return
            except LeaseConflict:
                continue  # a renewal of ours still in flight moved it: read it again, still ours, release it
            except Exception as exc:  # best effort: it expires by itself
                logger.warning("could not release the %s (%s); it expires by itself", self.where,
                               type(exc).__name__)
                return
        logger.warning("could not release the %s (it kept changing); it expires by itself", self.where)

    async def _round(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as exc:
            logger.warning("%s: %s: %s", self.where, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return False

    async def run(self, started_leading: Callable[[], None], stopped_leading: Callable[[], None]) -> None:
        """Wait for the Lease, lead while renewing it, and return (after `stopped_leading`) once it is lost."""
        logger.info("waiting for the %s (identity %s)", self.where, self.identity)
        while not await self._round():
            await asyncio.sleep(self.config.retry_period * random.uniform(1.0, JITTER))
        self.leading = True
        logger.info("became the leader: holding the %s (identity %s); reconciling", self.where, self.identity)
        started_leading()
        renewed = self.monotonic()
        while True:
            await asyncio.sleep(self.config.retry_period)
            if await self._round():
                renewed = self.monotonic()
                continue
            taken = self.holder not in ("", self.identity)
            if taken or self.monotonic() - renewed >= self.config.renew_deadline:
                self.leading = False
                why = f"{self.holder} holds it" if taken else f"not renewed for {self.monotonic() - renewed:.1f}s"
                logger.error("lost the %s (%s); stopping so that only one replica reconciles", self.where, why)
                stopped_leading()
                return
