"""kopf wiring: the process (login, start-up and clean-up, liveness, signals); watch events become work-queue
keys; nothing else happens here.

Why a work queue instead of kopf's create/update handlers: the reconcile is level-triggered (it recomputes
the desired state every time), so it needs no per-handler progress annotations, no
`last-handled-configuration` on users' objects (GitOps tools would see drift), and no finalizers
(deletionPolicy Retain needs none; Delete uses owner references and the real garbage collector). kopf keeps
doing what it is best at: login, the lifecycle of the process and its handlers, the liveness endpoint.
Every watched object — PxSecurities included — comes from our own reflectors (`kube/watches.py` says why)
into the one `Store` (`kube/store.py`), which says whether an event is news — never the echo of our own
write — and news wakes the PxSecurities that depend on the object (a PxSecurity's own news wakes it).

With leader election (`pxsec operator --leader-elect`, see leader.py) every replica keeps its watch
streams and its queue of keys, but only the one holding the Lease runs the queue's workers; a replica
that loses the Lease stops reconciling at once and exits. Metrics (metrics.py) are read off each
reconcile's status through `Reconciler.observe`, and off the queue and the election.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from pxsec.conditions import Condition
from pxsec.controller import fanout
from pxsec.controller.kube.gateway import Gateway
from pxsec.controller.kube.store import PXSECURITY, Store
from pxsec.controller.kube.watches import Watches
from pxsec.controller.leader import KubernetesLeaseStore, LeaderElector, LeaseConfig
from pxsec.controller.metrics import Metrics
from pxsec.controller.reconciler import ANY, Dependency, Key, Reconciler
from pxsec.controller.workqueue import Outcome, WorkQueue
from pxsec.spec import PxSecuritySpec

logger = logging.getLogger("pxsec.operator")


Observer = Callable[[Key, PxSecuritySpec | None, Mapping[str, Any], Sequence[Condition]], None]


class ObservedReconciler(Reconciler):
    """The reconciler with its end-of-reconcile hook wired to an observer (the runtime's metrics)."""

    observer: Observer | None = None

    def observe(self, key: Key, spec: PxSecuritySpec | None, status: Mapping[str, Any],
                conds: Sequence[Condition]) -> None:
        if self.observer is not None:
            self.observer(key, spec, status, conds)


class Runtime:
    """Process-wide state: the queue, which Secrets/ConfigMaps wake which PxSecurity, the metrics, and
    whether this replica reconciles (`active`: always without leader election, else while leading)."""

    def __init__(self, reconciler: Reconciler, workers: int, metrics: Metrics | None = None,
                 active: bool = True, store: Store | None = None) -> None:
        self.reconciler = reconciler
        self.store = store or Store()
        self.store.notify = self.changed
        self.watchers: dict[Dependency, set[Key]] = defaultdict(set)
        self._deps_of: dict[Key, set[Dependency]] = {}
        self._lock = threading.Lock()  # reconciles update it in worker threads; events read it on the loop
        self._seen: set[Key] = set()
        self._ready: dict[Key, bool] = {}  # what the reconcile of a key (running now) observed
        self._gone: set[Key] = set()  # deleted (their metrics are dropped, also by a reconcile still running)
        self.queue: WorkQueue[Key] = WorkQueue(self._reconcile, workers=workers)
        self.metrics = metrics or Metrics(process_collectors=False)
        self.metrics.track_queue(lambda: self.queue.depth)
        self.metrics.track_store(self.store.size)
        self.active = active  # False for a candidate: until it leads, events only queue keys
        self.loop: asyncio.AbstractEventLoop | None = None  # where wakes run (set at start-up)
        if isinstance(reconciler, ObservedReconciler):
            reconciler.observer = self.observed

    def start(self) -> None:
        """Reconcile from now on: every key queued meanwhile (all objects kopf listed) is processed."""
        self.active = True
        self.store.begin_reconciling()  # every PxSecurity already known is read live once (kube/store.py)
        self.metrics.leader.set(1)
        if not self.queue.running:
            self.queue.start()

    async def stop(self) -> None:
        """Stop reconciling, and wait for the reconciles already running."""
        self.active = False
        self.metrics.leader.set(0)
        await self.queue.stop()

    def observed(self, key: Key, spec: PxSecuritySpec | None, status: Mapping[str, Any],
                 conds: Sequence[Condition]) -> None:
        with self._lock:
            self._ready[key] = self.metrics.observe(key, spec, status, conds)
            if key in self._gone:
                self.metrics.forget(key)

    def deleted(self, key: Key) -> None:
        with self._lock:
            self._gone.add(key)
            self.metrics.forget(key)

    def present(self, key: Key) -> None:
        if key in self._gone:
            with self._lock:
                self._gone.discard(key)

    def _watch(self, key: Key, deps: set[Dependency]) -> None:
        """Make events of exactly `deps` wake `key` (dropping what it no longer depends on)."""
        with self._lock:
            for dep in self._deps_of.pop(key, set()) - deps:
                self.watchers[dep].discard(key)
                if not self.watchers[dep]:
                    del self.watchers[dep]
            for dep in deps:
                self.watchers[dep].add(key)
            if deps:
                self._deps_of[key] = set(deps)

    def _reconcile(self, key: Key) -> Outcome:
        if not self.active:
            return Outcome()  # the Lease was lost: no reconcile starts any more (the process is exiting)
        started = time.monotonic()
        with self._lock:
            self._ready.pop(key, None)
        try:
            # The reconciler registers what it depends on *before* it reads those objects: an object that
            # appears while the reconcile runs then marks the key dirty instead of slipping through.
            with fanout.reconciling():
                result = self.reconciler.reconcile(key, lambda deps: self._watch(key, deps))
        except Exception:
            self.metrics.count("error", time.monotonic() - started)
            raise
        self._watch(key, result.dependencies)
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
            ready = self._ready.pop(key, None)
        self.metrics.count("skipped" if ready is None else "ready" if ready else "not_ready",
                           time.monotonic() - started)
        if first:
            # Once per object per process: shows start-up progress without logging every event.
            logger.info("%s/%s: reconciled (first pass since start)", *key)
        return result.outcome

    def depended_on(self, kind: str, namespace: str, name: str) -> bool:
        """Whether any PxSecurity depends on this object (so its events may matter)."""
        with self._lock:
            return bool(self.watchers.get((kind, namespace, name)) or self.watchers.get((kind, namespace, ANY))
                        or self.watchers.get((kind, ANY, name)))

    def wake(self, kind: str, namespace: str, name: str) -> None:
        """Queue the PxSecurity itself, or every PxSecurity that depends on this object (on the event loop)."""
        if kind == PXSECURITY:
            self.queue.add((namespace, name))
            return
        with self._lock:
            keys = list(self.watchers.get((kind, namespace, name), ())) + list(
                self.watchers.get((kind, namespace, ANY), ())) + list(self.watchers.get((kind, ANY, name), ()))
        for key in keys:
            self.queue.add(key)

    def changed(self, kind: str, namespace: str, name: str) -> None:
        """The store's news, from any thread (watch threads, reconcile workers, the loop): wake on the loop
        whoever it concerns. Objects nobody depends on (the cluster's other Secrets) cost a lookup."""
        if kind != PXSECURITY and not self.depended_on(kind, namespace, name):
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.wake(kind, namespace, name)
        else:
            loop.call_soon_threadsafe(self.wake, kind, namespace, name)


@dataclass(frozen=True)
class Options:
    """What `pxsec operator` was asked for (cli.py sets it before kopf starts)."""

    workers: int = 4
    namespaces: tuple[str, ...] = ()  # the namespaces kopf serves; () = all
    metrics_address: str | None = None  # host:port for /metrics; None: no endpoint
    lease: LeaseConfig | None = None  # None: no leader election, this process reconciles


_options = Options()
_runtime: Runtime | None = None
_watches: Watches | None = None
_elector: LeaderElector | None = None
_election: asyncio.Task[None] | None = None
lost_leadership = False  # the process then exits non-zero: Kubernetes restarts it as a candidate


def configure(options: Options) -> None:
    """Set the options for the next start (cli.py, before kopf.run)."""
    global _options, lost_leadership
    _options = options
    lost_leadership = False


def runtime() -> Runtime:
    assert _runtime is not None, "operator not started"
    return _runtime


def _stopped_leading() -> None:
    global lost_leadership
    lost_leadership = True
    rt = runtime()
    rt.active = False  # at once, before any other reconcile starts; cleanup waits for running ones
    rt.metrics.leader.set(0)
    signal.raise_signal(signal.SIGTERM)  # kopf's own graceful stop: cleanup waits for running reconciles


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the ServiceAccount; elsewhere: $KUBECONFIG — with kopf's own parsers, no client magic."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _runtime, _elector, _election, _watches
    settings.posting.level = logging.WARNING  # kopf's own k8s Events: only problems
    store = Store()
    gateway = Gateway(store, scopes=_options.namespaces)
    _runtime = Runtime(ObservedReconciler(gateway), workers=_options.workers, metrics=Metrics(),
                       active=_options.lease is None, store=store)
    gateway.fence = lambda: _runtime is not None and _runtime.active
    _runtime.loop = asyncio.get_running_loop()
    # Every watch is a reflector of ours (kube/watches.py explains why), PxSecurities' too.
    _watches = Watches(_options.namespaces, store, on_pxsecurity=_pxsecurity_event)
    _watches.start()
    if _options.metrics_address:
        host, port = _runtime.metrics.serve(_options.metrics_address)
        logger.info("metrics on http://%s:%d/metrics", host, port)
    if _options.lease is None:
        _runtime.start()
    else:
        # Until it holds the Lease, this replica only queues keys: its reflector lists every PxSecurity at
        # start, so when it takes over, its queue already names every PxSecurity there is.
        _elector = LeaderElector(_options.lease, KubernetesLeaseStore(_options.lease))
        _election = asyncio.create_task(_elector.run(_runtime.start, _stopped_leading), name="pxsec-leader")
    # Everything imported and set up so far lives as long as the process: out of the collector's sight,
    # so that the full collections a burst of reconciles triggers do not walk it again each time.
    gc.freeze()
    logger.info("px-security-operator started")


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _election is not None:
        _election.cancel()
        await asyncio.gather(_election, return_exceptions=True)
    if _watches is not None:
        _watches.stop()
    if _runtime is not None:
        await _runtime.stop()
    if _elector is not None:
        await asyncio.to_thread(_elector.release)  # after the last write: the next leader starts at once


@kopf.on.probe(id="queue")
def probe(**_: Any) -> str:
    return "ok" if _runtime is not None else "starting"


@kopf.on.probe(id="leader")
def leader_probe(**_: Any) -> str:
    if _elector is None:
        return "no election"
    return "leading" if _elector.leading else "standby"


def _pxsecurity_event(kind: str, namespace: str, name: str) -> None:
    """A PxSecurity's watch event, before the store hears it (the store then wakes the object when it is
    news: a new object, someone's change; not the echo of our own status write). From the reflector's thread."""
    rt = runtime()
    if kind == "DELETED":
        rt.deleted((namespace, name))
    else:
        rt.present((namespace, name))
