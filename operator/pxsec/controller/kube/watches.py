"""The reflectors that feed the store: PxSecurities, StorageClusters, StorageNodes and PersistentVolumes whole
(a PersistentVolume reduced to the Secrets it uses), Secrets, ConfigMaps and Namespaces metadata only.

Why not kopf's watch for Secrets and ConfigMaps: a PxSecurity depends on a handful of them,
but a watch cannot be narrowed to them (ours carry our labels; adopted, shared and the Portworx
Operator's do not), so it sees every Secret and ConfigMap in the cluster. Through kopf each of those
events cost a full object (values included) decoded and walked through its handler machinery, and a
memory entry per object: 5,000 unrelated Secrets cost the operator ~4.7 CPU seconds and 50 MB. Here
the API server sends only metadata (`PartialObjectMetadata`), a thread parses one JSON line, updates
the `Store` and the store calls back only with news (never the echo of our own write), and the
runtime only wakes someone when a PxSecurity depends on the object.

PxSecurities are watched here too (they were kopf's, `on.event`): kopf walked each of their events through its
causes, progress storage, per-object logger and handler invocation — a sixth of the operator's CPU in a
burst of new objects (tests/bench/bench_e2e.py, py-spy), for a handler that only hands the body to the store;
and it stood between each new object and its reconcile. Here an event costs its JSON line and the store's
bookkeeping; the runtime is told of each event (`on_event`: a deletion forgets the object's metrics).

StorageClusters are watched here too, whole (a StorageCluster is read on every reconcile of a PxSecurity
that targets one, and there are few of them), so that a reconcile with nothing to do asks nothing. Their
CRD may not be installed (yet): a listing answered 404 means none exists, and the reflector then watches
that one CRD until it is established (no polling while Portworx is not installed; the moment it is, the
StorageClusters are listed).

The protocol is client-go's reflector: list (paginated), then watch from the list's resourceVersion
with bookmarks; a broken stream resumes from the last version seen; "410 Gone" (too old) lists again,
and what changed meanwhile is reported like any event.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3

from pxsec.controller.kube.gateway import SC_GROUP, SC_PLURAL, SC_VERSION
from pxsec.controller.kube.rest import METADATA_ONLY, HttpError, RestClient, group_path, new_client
from pxsec.controller.kube.store import ALL_NAMESPACES, PXSECURITY, Store, keeps_meta
from pxsec.spec import API_GROUP, API_VERSION, PLURAL

logger = logging.getLogger("pxsec.controller.kube.watches")

METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
PAGE = 500
WATCH_SECONDS = 290  # the server ends each watch after this; it is resumed from the last version
MAX_PAUSE = 30.0
SHORT_WATCH = 1.0  # seconds: a watch cut sooner with nothing delivered is a failure (client-go: "very short watch")



@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    group: str = ""  # "" = core/v1
    version: str = "v1"
    whole: bool = False  # bodies (else metadata only)
    cluster: bool = False  # cluster-scoped: one reflector for all, whatever namespaces are served

    def path(self, scope: str) -> str:
        if self.group:
            return group_path(self.group, self.version, scope, self.plural)
        return f"/api/v1/{self.plural}" if scope == ALL_NAMESPACES else f"/api/v1/namespaces/{scope}/{self.plural}"


PXSECURITIES = Resource(PXSECURITY, PLURAL, API_GROUP, API_VERSION, whole=True)
SECRETS = Resource("Secret", "secrets")
CONFIGMAPS = Resource("ConfigMap", "configmaps")
STORAGECLUSTERS = Resource("StorageCluster", SC_PLURAL, SC_GROUP, SC_VERSION, whole=True)
# Whether Portworx runs, and where each node's REST gateway is (status.network.mgmtIP: pxsec.nodecheck).
STORAGENODES = Resource("StorageNode", "storagenodes", SC_GROUP, SC_VERSION, whole=True)
# Tenants: which namespaces a selector picks (labels), and which volumes still need a tenant's Secret.
NAMESPACES = Resource("Namespace", "namespaces", cluster=True)
PERSISTENTVOLUMES = Resource("PersistentVolume", "persistentvolumes", whole=True, cluster=True)


class Gone(Exception):
    """410: the version to resume from is too old; list again."""


class NotServed(Exception):
    """404 on a collection: the resource is not served (a CRD not installed)."""


OnEvent = Callable[[str, str, str], None]  # (ADDED | MODIFIED | DELETED, namespace, name), before the store hears it


class Reflector:
    """One resource in one scope (a namespace, or all), in its own daemon thread."""

    def __init__(self, api: RestClient, resource: Resource, scope: str, store: Store,
                 on_event: OnEvent | None = None) -> None:
        self.api, self.resource, self.scope, self.store = api, resource, scope, store
        self.on_event = on_event
        self.stopping = threading.Event()
        self.synced = threading.Event()  # set once the first listing is in
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pxsec-watch-{resource.plural}-{scope or 'all'}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        pause = 0.5
        version = ""
        while not self.stopping.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
                pause = 0.5
            except Gone:
                version = ""
            except NotServed:  # no such resource (its CRD is not installed): none exists until it is
                version = ""
                self.stopping.wait(pause)  # brief: an established CRD can take a moment to be served
                pause = min(MAX_PAUSE, pause * 2)
                try:
                    self._await_served()
                except Exception as exc:  # no permission to watch CRDs, a broken stream: the pauses remain
                    logger.info("watch of the %s CRD: %s", self.resource.plural, " ".join(str(exc).split())[:200])
            except Exception as exc:  # network, API server restarting, RBAC: log, wait, resume
                if self.stopping.is_set():
                    return
                logger.warning("watch of %s %s: %s; retrying in %.1f s", self.resource.plural,
                               self.scope or "(all namespaces)", " ".join(str(exc).split())[:200], pause)
                self.stopping.wait(pause)
                pause = min(MAX_PAUSE, pause * 2)

    def _request(self, query: list[tuple[str, str]], watch: bool, timeout: tuple[float, float]) -> Any:
        whole = self.resource.whole
        accept = "application/json" if whole else (METADATA_ONLY if watch else METADATA_LIST)
        try:
            return self.api.open("GET", self.resource.path(self.scope), query, accept=accept, timeout=timeout,
                                 stream=watch)
        except HttpError as exc:
            if exc.status == 410:
                raise Gone() from None
            if exc.status == 404:
                raise NotServed() from None
            raise RuntimeError(f"{exc.status} {exc.body[:300].decode('utf-8', 'replace')}") from None

    def _list(self) -> str:
        listed: list[tuple[str, str, str, dict[str, Any] | None]] = []
        token, version = "", ""
        try:
            while True:
                query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
                page = json.loads(self._request(query, False, (10, 60)).data)
                meta = page.get("metadata") or {}
                version = version or str(meta.get("resourceVersion") or "")
                for item in page.get("items") or []:
                    m = item.get("metadata") or {}
                    # Bodies only where the store keeps them: a listing of 20,000 Secrets holds no 20,000 dicts.
                    listed.append((str(m.get("namespace") or ""), str(m.get("name") or ""),
                                   str(m.get("resourceVersion") or ""), item if self._kept(item) else None))
                token = str(meta.get("continue") or "")
                if not token:
                    break
        except NotServed:
            self.store.listed(self.resource.kind, self.scope, [])
            self._synced(0, served=False)
            raise
        self.store.listed(self.resource.kind, self.scope, listed)
        self._synced(len(listed))
        return version

    def _kept(self, obj: dict[str, Any]) -> bool:
        return self.resource.whole or keeps_meta(self.resource.kind, obj.get("metadata") or {})

    def _await_served(self) -> None:
        """Return once the resource's CRD is established (at once if it already is), or when the watch ends."""
        name = f"{self.resource.plural}.{self.resource.group}"
        query = [("fieldSelector", f"metadata.name={name}"), ("watch", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        resp = self.api.open("GET", CRDS, query, timeout=(10, WATCH_SECONDS + 30), stream=True)
        try:
            for event in _events(resp):
                if self.stopping.is_set() or (event.get("type") in ("ADDED", "MODIFIED")
                                              and _established(event.get("object") or {})):
                    return
        finally:
            resp.release_conn()

    def _synced(self, count: int, served: bool = True) -> None:
        if not self.synced.is_set():
            what = "whole" if self.resource.whole else "metadata only"
            logger.info("watching %s in %s (%s): %s", self.resource.plural, self.scope or "all namespaces", what,
                        f"{count} listed" if served else "not served (no CRD yet), waiting for its CRD")
        self.synced.set()

    def _watch(self, version: str) -> str:
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", version),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        resp = self._request(query, True, (10, WATCH_SECONDS + 30))
        started, delivered = time.monotonic(), False
        try:
            for event in _events(resp):
                if self.stopping.is_set():
                    break
                version = self._apply(event) or version
                delivered = True
        except urllib3.exceptions.HTTPError as exc:
            # A stream cut half way (a load balancer's idle timeout, an API server restart, a proxy) is the
            # end of this watch, not a failure: resume at once from the last version, as client-go's
            # StreamWatcher does on an unexpected EOF. Only a stream that dies at once, with nothing
            # delivered, counts as a failure (the caller backs off, so a broken path never spins).
            if not delivered and time.monotonic() - started < SHORT_WATCH:
                raise
            logger.debug("watch of %s %s cut (%s): resuming", self.resource.plural, self.scope or "(all)", exc)
        finally:
            resp.release_conn()
        return version

    def _apply(self, event: dict[str, Any]) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise RuntimeError(f"watch error: {str(obj.get('message', ''))[:200]}")
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        if kind == "BOOKMARK":
            return version
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if self.on_event is not None:
            self.on_event(str(kind), namespace, name)
        if kind == "DELETED":
            self.store.deleted(self.resource.kind, namespace, name)
        else:
            self.store.observed(self.resource.kind, namespace, name, version, obj if self._kept(obj) else None)
        return version


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _established(crd: dict[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """The watch's JSON lines, as the chunks of the response deliver them."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


class Watches:
    """Every reflector of the operator: PxSecurities, Secrets, ConfigMaps, StorageClusters and StorageNodes,
    cluster-wide or per namespace; Namespaces and PersistentVolumes cluster-wide."""

    def __init__(self, namespaces: tuple[str, ...], store: Store, api: RestClient | None = None,
                 on_pxsecurity: OnEvent | None = None) -> None:
        scopes = namespaces or (ALL_NAMESPACES,)
        resources = (PXSECURITIES, SECRETS, CONFIGMAPS, STORAGECLUSTERS, STORAGENODES)
        # Namespaces: both installs may list them. PersistentVolumes only cluster-wide: a namespaced install
        # reads nothing of other namespaces' objects (a tenant Secret is then never deleted: its volumes
        # cannot be seen).
        cluster = (NAMESPACES,) if namespaces else (NAMESPACES, PERSISTENTVOLUMES)
        # One connection per stream (each reflector holds one while it watches), and a few for listings.
        api = api or new_client(pool=len(resources) * len(scopes) + len(cluster) + 4)
        self.watches = [Reflector(api, r, s, store, on_pxsecurity if r is PXSECURITIES else None)
                        for r in resources for s in scopes]
        self.watches += [Reflector(api, r, ALL_NAMESPACES, store) for r in cluster]

    def start(self) -> None:
        for w in self.watches:
            w.start()

    def stop(self) -> None:
        for w in self.watches:
            w.stop()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in self.watches)
