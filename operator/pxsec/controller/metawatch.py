"""Lean watches of Secrets and ConfigMaps: metadata only, names and resourceVersions only.

Why not kopf's watch, as for PxSecurities: a PxSecurity depends on a handful of Secrets and ConfigMaps,
but a watch cannot be narrowed to them (ours carry our labels; adopted, shared and the Portworx
Operator's do not), so it sees every Secret and ConfigMap in the cluster. Through kopf each of those
events cost a full object (values included) decoded and walked through its handler machinery, and a
memory entry per object: 5,000 unrelated Secrets cost the operator ~4.7 CPU seconds and 50 MB. Here
the API server sends only metadata (`PartialObjectMetadata`), a thread parses one JSON line, updates
`ObjectCache` and calls back only when someone depends on the object.

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

import kubernetes

from pxsec.controller.gateway import HttpError, RestClient, api_client
from pxsec.controller.objectcache import ALL_NAMESPACES, ObjectCache

logger = logging.getLogger("pxsec.controller.metawatch")

LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
PAGE = 500
WATCH_SECONDS = 290  # the server ends each watch after this; it is resumed from the last version
MAX_PAUSE = 30.0

# (kind, namespace, name, resourceVersion or "" when deleted), called on the watch thread
OnChange = Callable[[str, str, str, str], None]


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str  # a core/v1 resource


SECRETS = Resource("Secret", "secrets")
CONFIGMAPS = Resource("ConfigMap", "configmaps")


class Gone(Exception):
    """410: the version to resume from is too old; list again."""


class MetadataWatch:
    """One resource in one scope (a namespace, or all), in its own daemon thread."""

    def __init__(self, api: RestClient, resource: Resource, scope: str,
                 cache: ObjectCache, on_change: OnChange) -> None:
        self.api, self.resource, self.scope = api, resource, scope
        self.cache, self.on_change = cache, on_change
        self.stopping = threading.Event()
        self.synced = threading.Event()  # set once the first listing is in
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pxsec-watch-{resource.plural}-{scope or 'all'}")

    @property
    def path(self) -> str:
        if self.scope == ALL_NAMESPACES:
            return f"/api/v1/{self.resource.plural}"
        return f"/api/v1/namespaces/{self.scope}/{self.resource.plural}"

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
            except Exception as exc:  # network, API server restarting, RBAC: log, wait, resume
                if self.stopping.is_set():
                    return
                logger.warning("watch of %s %s: %s; retrying in %.1f s", self.resource.plural,
                               self.scope or "(all namespaces)", " ".join(str(exc).split())[:200], pause)
                self.stopping.wait(pause)
                pause = min(MAX_PAUSE, pause * 2)

    def _request(self, query: list[tuple[str, str]], accept: str, timeout: tuple[float, float],
                 stream: bool = False) -> Any:
        try:
            return self.api.open("GET", self.path, query, accept=accept, timeout=timeout, stream=stream)
        except HttpError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise RuntimeError(f"{exc.status} {exc.body[:300].decode('utf-8', 'replace')}") from None

    def _list(self) -> str:
        listed: list[tuple[tuple[str, str], str]] = []
        token, version = "", ""
        while True:
            query = [("limit", str(PAGE))] + ([("continue", token)] if token else [])
            page = json.loads(self._request(query, LIST_ACCEPT, (10, 60)).data)
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            for item in page.get("items") or []:
                m = item.get("metadata") or {}
                listed.append(((str(m.get("namespace") or ""), str(m.get("name") or "")),
                               str(m.get("resourceVersion") or "")))
            token = str(meta.get("continue") or "")
            if not token:
                break
        changed = self.cache.replace(self.resource.kind, self.scope, listed)
        if not self.synced.is_set():
            logger.info("watching %s in %s (metadata only): %d listed", self.resource.plural,
                        self.scope or "all namespaces", len(listed))
        self.synced.set()
        for namespace, name in changed:
            self.on_change(self.resource.kind, namespace, name,
                           self.cache.resource_version(self.resource.kind, namespace, name) or "")
        return version

    def _watch(self, version: str) -> str:
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", version),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        resp = self._request(query, WATCH_ACCEPT, (10, WATCH_SECONDS + 30), stream=True)
        try:
            for event in _events(resp):
                if self.stopping.is_set():
                    break
                version = self._apply(event) or version
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
        if kind == "DELETED":
            self.cache.drop(self.resource.kind, namespace, name)
            self.on_change(self.resource.kind, namespace, name, "")
        else:
            self.cache.put(self.resource.kind, namespace, name, version)
            self.on_change(self.resource.kind, namespace, name, version)
        return version


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """The watch's JSON lines, as the chunks of the response deliver them."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)


def new_client() -> RestClient:
    """A client of its own (its own connection pool: the long-lived watch connections must not crowd out
    the reconciles' requests), configured as the gateway's."""
    return RestClient(kubernetes.client.ApiClient(api_client().configuration))


class Watches:
    """Every metadata watch of the operator: Secrets and ConfigMaps, cluster-wide or per namespace."""

    def __init__(self, namespaces: tuple[str, ...], cache: ObjectCache, on_change: OnChange,
                 api: RestClient | None = None) -> None:
        api = api or new_client()
        scopes = namespaces or (ALL_NAMESPACES,)
        self.watches = [MetadataWatch(api, r, s, cache, on_change)
                        for r in (SECRETS, CONFIGMAPS) for s in scopes]

    def start(self) -> None:
        for w in self.watches:
            w.start()

    def stop(self) -> None:
        for w in self.watches:
            w.stop()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in self.watches)
