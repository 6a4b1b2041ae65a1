"""kopf wiring: watch events become work-queue keys; nothing else happens here.

Why `on.event` and a work queue instead of kopf's create/update handlers: the reconcile is
level-triggered (it recomputes the desired state every time), so it needs no per-handler progress
annotations, no `last-handled-configuration` on users' objects (GitOps tools would see drift), and no
finalizers (deletionPolicy Retain needs none; Delete uses owner references and the real garbage
collector). kopf keeps doing what it is best at: login, watch streams with reconnects, liveness.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from typing import Any

import kopf

from pxsec.gateway import Gateway
from pxsec.reconciler import Dependency, Key, Reconciler
from pxsec.spec import API_GROUP, API_VERSION, PLURAL
from pxsec.workqueue import Outcome, WorkQueue

logger = logging.getLogger("pxsec.operator")


class Runtime:
    """Process-wide state: the queue and which Secrets/ConfigMaps wake which PxSecurity."""

    def __init__(self, reconciler: Reconciler, workers: int) -> None:
        self.reconciler = reconciler
        self.watchers: dict[Dependency, set[Key]] = defaultdict(set)
        self._deps_of: dict[Key, set[Dependency]] = {}
        self._lock = threading.Lock()  # reconciles update it in worker threads; events read it on the loop
        self._seen: set[Key] = set()
        self.queue: WorkQueue[Key] = WorkQueue(self._reconcile, workers=workers)

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
        # The reconciler registers what it depends on *before* it reads those objects: an object that
        # appears while the reconcile runs then marks the key dirty instead of slipping through.
        result = self.reconciler.reconcile(key, lambda deps: self._watch(key, deps))
        self._watch(key, result.dependencies)
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
        if first:
            # Once per object per process: shows start-up progress without logging every event.
            logger.info("%s/%s: reconciled (first pass since start)", *key)
        return result.outcome

    def wake(self, kind: str, namespace: str, name: str) -> None:
        """Queue every PxSecurity that depends on this object (called on the event loop)."""
        with self._lock:
            keys = list(self.watchers.get((kind, namespace, name), ()))
        for key in keys:
            self.queue.add(key)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    assert _runtime is not None, "operator not started"
    return _runtime


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the ServiceAccount; elsewhere: $KUBECONFIG — with kopf's own parsers, no client magic."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _runtime
    settings.posting.level = logging.WARNING  # kopf's own k8s Events: only problems
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    _runtime = Runtime(Reconciler(Gateway()), workers=4)
    _runtime.queue.start()
    logger.info("px-security-operator started")


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _runtime is not None:
        await _runtime.queue.stop()


@kopf.on.probe(id="queue")
def probe(**_: Any) -> str:
    return "ok" if _runtime is not None else "starting"


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def pxsecurity_event(namespace: str | None, name: str, **_: Any) -> None:
    runtime().queue.add((namespace or "", name))


@kopf.on.event("", "v1", "secrets")
async def secret_event(namespace: str | None, name: str, **_: Any) -> None:
    runtime().wake("Secret", namespace or "", name)


@kopf.on.event("", "v1", "configmaps")
async def configmap_event(namespace: str | None, name: str, **_: Any) -> None:
    runtime().wake("ConfigMap", namespace or "", name)


@kopf.on.event("core.libopenstorage.org", "v1", "storageclusters")
async def storagecluster_event(namespace: str | None, name: str, **_: Any) -> None:
    """A StorageCluster appeared or changed: re-apply where spec.storageCluster.apply asks for it."""
    runtime().wake("StorageCluster", namespace or "", name)
