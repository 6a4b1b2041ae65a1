"""The one store of what the API server has, as far as the operator knows without asking.

Fed by the watches (the reflectors of kube/watches.py)
and by the gateway's own reads and writes; read only by the gateway. Nothing else holds objects between
reconciles: the steps ask the gateway, the gateway asks the store first.

For each object (kind, namespace, name) an `Entry`: the resourceVersion the watch last reported, the body
where the watch delivers bodies (PxSecurity, StorageCluster, StorageNode; Secrets and ConfigMaps are
watched metadata only), what we last read live or wrote of it and at which version (`held`), the version our last write
returned until its watch event arrives (`echo`), and for PxSecurities whether the body can be trusted.

**The reading rule** — the store answers instead of the API server only when a live GET could not
answer differently as far as anything this process has seen:
1. *Known absent*: a complete listing covers the namespace, nothing since said the object exists, and
   no write of ours to it is in flight. (PxSecurities are never known absent: a reconcile that finds none
   reads live, so that a wake-up can never be mistaken for a deletion.)
2. No write of ours to the object is in flight or still waiting for its echo.
3. The value is at the version the watch last reported: for Secrets and ConfigMaps what we ourselves
   read or wrote at exactly that version; for kinds watched whole the watch's body, unless a live read
   of ours returned a version the watch has not delivered yet.
4. PxSecurities, additionally: the status is the operator's memory (fingerprints, revisions), so a body
   is used only by a reconcile woken by the object's own event (`fresh`, consumed by the read: a
   relist can lose a deletion, a timer-woken reconcile must not resurrect a deleted object) and only
   once it is `trusted` — read live since this process began reconciling, or first seen without any
   status (a new object). After a leader handover each PxSecurity is therefore read live once: the old
   leader's last status writes may still be on their way through this replica's watch.
Otherwise the gateway reads live and tells the store (`read_live`, `absent_live`).

A wrong answer costs a request, never a key: creates are create-only (a 409 marks the object present and
the caller reads live and adopts), guarded writes carry the resourceVersion they were planned from, and
every change the watch reports wakes the PxSecurities that depend on the object, so a decision made on a
view a moment old is made again on the newer one.

**News and echoes.** `observed` returns — and tells `notify` — whether a watch event is news. The event
of our own write (at the version the write returned) is not: it tells nothing we do not know, and would
only cost a second reconcile. An event that arrives while a write of ours to that object is in flight is
parked until the write's response says whether it was the echo (the watch can beat the response to the
worker thread); a write of unknown outcome releases what was parked as news.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pxsec.tenants import TENANT_LABEL

ALL_NAMESPACES = ""
NEWER = "?"  # held_version of a WHOLE kind after a 409 or an unknown outcome: some newer version exists
PXSECURITY = "PxSecurity"
# Kinds whose watch delivers whole objects (bodies are kept); the rest are watched metadata only.
WHOLE = frozenset({PXSECURITY, "StorageCluster", "StorageNode", "PersistentVolume"})


def keeps_meta(kind: str, meta: Mapping[str, Any]) -> bool:
    """Metadata-only kinds whose metadata is kept from the watch, so that a reconcile over thousands of
    them reads none: every Namespace (its labels select tenants), and the Secrets holding tenant tokens."""
    return kind == "Namespace" or (kind == "Secret" and TENANT_LABEL in (meta.get("labels") or {}))


def _reduced(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a whole body: a PersistentVolume only by the Secrets its CSI driver uses (they may be
    many, and nothing else of them is read)."""
    if kind != "PersistentVolume":
        return _trimmed(body)
    spec = body.get("spec") or {}
    csi = spec.get("csi") or {}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    refs = [{"namespace": str(v.get("namespace") or ""), "name": str(v.get("name") or "")}
            for k, v in sorted(csi.items()) if k.endswith("SecretRef") and isinstance(v, Mapping)]
    deletion = (annotations.get("volume.kubernetes.io/provisioner-deletion-secret-namespace"),
                annotations.get("volume.kubernetes.io/provisioner-deletion-secret-name"))
    if all(deletion):
        refs.append({"namespace": str(deletion[0]), "name": str(deletion[1])})
    return {"metadata": {"name": (body.get("metadata") or {}).get("name")}, "secretRefs": refs}

Key = tuple[str, str, str]  # (kind, namespace, name)
Notify = Callable[[str, str, str], None]  # (kind, namespace, name): may be called from any thread


@dataclass(slots=True)
class Entry:
    version: str = ""  # what the watch last reported ("" = exists, version not reported yet)
    body: dict[str, Any] | None = None  # the watch's body at `version` (WHOLE kinds)
    held_version: str = ""  # what we last read live or wrote ...
    held: Any = None  # ... and its value (Secrets, ConfigMaps; WHOLE kinds keep only the version)
    meta: dict[str, Any] | None = None  # the watch's metadata where kept (`keeps_meta`), at `version`
    echo: str = ""  # the version our last write returned, until the watch reports it
    trusted: bool = False  # PxSecurity: see rule 4
    fresh: bool = False  # PxSecurity: an event of its own arrived since the last read


@dataclass
class _Writing:
    count: int = 0
    parked: list[str] = field(default_factory=list)  # versions the watch reported meanwhile


@dataclass(frozen=True)
class Hit:
    """An answer from the store: `value` None means known absent."""

    value: Any


def _trimmed(body: Mapping[str, Any]) -> dict[str, Any]:
    """A body without managedFields (most of an object's size, and nothing a reconcile reads from the watch)."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return copy.deepcopy({**body, "metadata": meta})


def version_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


class Store:
    def __init__(self, notify: Notify | None = None) -> None:
        self._lock = threading.Lock()  # fed from watch threads and the loop, read from reconcile threads
        self._entries: dict[Key, Entry] = {}
        self._synced: dict[str, set[str]] = {}  # kind -> namespaces listed completely ("" = all)
        self._writing: dict[Key, _Writing] = {}
        self._reconciling = False
        self.notify: Notify = notify or (lambda kind, namespace, name: None)

    # -- fed by the watches -------------------------------------------------------------------------

    def observed(self, kind: str, namespace: str, name: str, version: str,
                 body: Mapping[str, Any] | None = None) -> bool:
        """The watch reports the object at `version` (with its body for WHOLE kinds). Returns whether
        this is news (and then tells `notify`); our own write's echo and parked events are not."""
        key = (kind, namespace, name)
        with self._lock:
            news = self._observe(key, version, body)
        if news:
            self.notify(*key)
        return news

    def _observe(self, key: Key, version: str, body: Mapping[str, Any] | None) -> bool:
        entry = self._entries.get(key)
        first = entry is None
        if entry is None:
            entry = self._entries[key] = Entry()
        entry.version = version
        if key[0] in WHOLE and body is not None:
            entry.body = _reduced(key[0], body)
        elif key[0] not in WHOLE:  # the watch gives a body only where the metadata is kept
            meta = (body or {}).get("metadata") or {}
            entry.meta = ({k: copy.deepcopy(v) for k, v in meta.items() if k != "managedFields"}
                          if body is not None and keeps_meta(key[0], meta) else None)
        if key[0] == PXSECURITY:
            entry.fresh = True
            if first and self._reconciling and not (body or {}).get("status"):
                entry.trusted = True  # a new object: nobody has written a status yet
        if entry.held_version and entry.held_version != version and not entry.echo and key[0] not in WHOLE:
            entry.held, entry.held_version = None, ""  # someone else's newer version: ours is stale
        if key[0] in WHOLE and entry.held_version == version:
            entry.held_version = ""  # the watch caught up with what we read or wrote
        writing = self._writing.get(key)
        if writing is not None:
            writing.parked.append(version)
            return False
        if entry.echo and entry.echo == version:
            entry.echo = ""
            return False
        return True

    def deleted(self, kind: str, namespace: str, name: str) -> None:
        """The watch reports a deletion: always news."""
        with self._lock:
            self._entries.pop((kind, namespace, name), None)
        self.notify(kind, namespace, name)

    def listed(self, kind: str, scope: str, items: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> None:
        """A complete listing of `scope` (a namespace, or "" for all) as (namespace, name, version, body):
        it becomes the truth there; what changed or vanished since is news (a relist after "410 Gone" loses
        no change)."""
        fresh = {(kind, ns, name): (version, body) for ns, name, version, body in items}
        news: list[Key] = []
        with self._lock:
            old = [k for k in self._entries if k[0] == kind and (scope == ALL_NAMESPACES or k[1] == scope)]
            for key in old:
                if key not in fresh and key not in self._writing:
                    del self._entries[key]
                    news.append(key)
            for key, (version, body) in fresh.items():
                entry = self._entries.get(key)
                if entry is not None and entry.version == version:
                    continue
                if self._observe(key, version, body):
                    news.append(key)
            if kind != PXSECURITY:  # rule 1: a PxSecurity is never known absent
                self._synced.setdefault(kind, set()).add(scope)
        for key in news:
            self.notify(*key)

    def synced(self, kind: str, scope: str) -> bool:
        with self._lock:
            return scope in self._synced.get(kind, set())

    def begin_reconciling(self) -> None:
        """This process starts reconciling (at start, or on becoming the leader): no PxSecurity body is
        trusted until read live or seen new (rule 4)."""
        with self._lock:
            self._reconciling = True
            for key, entry in self._entries.items():
                if key[0] == PXSECURITY:
                    entry.trusted = False

    # -- read by the gateway ------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Hit | None:
        """The store's answer under the reading rule (a copy), or None: read live."""
        key = (kind, namespace, name)
        with self._lock:
            entry = self._entries.get(key)
            fresh = entry is not None and entry.fresh
            if entry is not None:
                entry.fresh = False
            if key in self._writing:
                return None
            if entry is None:
                listed = self._synced.get(kind, set())
                return Hit(None) if (ALL_NAMESPACES in listed or namespace in listed) else None
            if entry.echo:
                return None
            if kind in WHOLE:
                if entry.held_version or entry.body is None:
                    return None
                if kind == PXSECURITY and not (fresh and entry.trusted):
                    return None
                return Hit(copy.deepcopy(entry.body))
            if entry.held_version and entry.held_version == entry.version:
                return Hit(copy.deepcopy(entry.held))
            return None

    def size(self) -> int:
        """Objects held and complete listings: what must stay flat while nothing is added (watched by the
        soak test through the pxsec_store_entries metric). Writes in flight are left out: one may be under
        way at any moment, and each is forgotten when it ends (`writing`)."""
        with self._lock:
            return len(self._entries) + sum(len(s) for s in self._synced.values())

    def bodies(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        """The watch's bodies of every object of a WHOLE kind in `namespace` (copies), by name."""
        with self._lock:
            found = sorted((k[2], e.body) for k, e in self._entries.items()
                           if k[0] == kind and k[1] == namespace and e.body is not None)
        return [copy.deepcopy(body) for _, body in found]

    def metas(self, kind: str, name: str | None = None,
              kept_only: bool = False) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(namespace, name, kept metadata or None) of every object of `kind` the store knows (of that
        `name` only, when given; only those with kept metadata, with `kept_only`). None: it exists, and its
        metadata is not kept (not ours), or a write of ours to it is under way (its outcome not known yet).
        The dicts are the store's own: read only."""
        with self._lock:
            return [(k[1], k[2], None if k in self._writing else e.meta) for k, e in self._entries.items()
                    if k[0] == kind and (name is None or k[2] == name) and (not kept_only or e.meta is not None)]

    def count(self, kind: str, namespace: str) -> int:
        """How many objects of `kind` the watch knows in `namespace`."""
        with self._lock:
            return sum(1 for k in self._entries if k[0] == kind and k[1] == namespace)

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        """The version the watch last reported (None: not known to exist)."""
        with self._lock:
            entry = self._entries.get((kind, namespace, name))
            return entry.version if entry is not None else None

    def read_live(self, kind: str, namespace: str, name: str, version: str, value: Any = None) -> None:
        """A live GET returned the object at `version` (`value`: what to answer later, for metadata kinds)."""
        with self._lock:
            entry = self._entries.setdefault((kind, namespace, name), Entry())
            self._hold(kind, entry, version, value)
            if kind == PXSECURITY and self._reconciling:
                entry.trusted = True

    def absent_live(self, kind: str, namespace: str, name: str) -> None:
        """A live GET answered 404: not there (whatever the watch has not reported yet)."""
        key = (kind, namespace, name)
        with self._lock:
            if key not in self._writing:
                self._entries.pop(key, None)

    @staticmethod
    def _hold(kind: str, entry: Entry, version: str, value: Any) -> None:
        if kind in WHOLE:
            entry.held, entry.held_version = None, ("" if version == entry.version else version)
        else:
            entry.held, entry.held_version = (copy.deepcopy(value), version) if value is not None else (None, "")

    # -- our writes ---------------------------------------------------------------------------------

    @contextmanager
    def writing(self, kind: str, namespace: str, name: str) -> Iterator[Write]:
        """Around one write of ours to the object: watch events meanwhile are parked until the outcome
        says whether they were its echo. The caller reports the outcome on the yielded `Write`; leaving
        without one (an exception) means the outcome is unknown."""
        key = (kind, namespace, name)
        with self._lock:
            self._writing.setdefault(key, _Writing()).count += 1
        write = Write()
        try:
            yield write
        finally:
            news = self._finish(key, write)
            if news:
                self.notify(*key)

    def _finish(self, key: Key, write: Write) -> bool:
        with self._lock:
            state = self._writing[key]
            state.count -= 1
            parked = list(state.parked)
            if state.count == 0:
                del self._writing[key]
            else:
                state.parked.clear()
            entry = self._entries.get(key)
            if write.outcome == "done":
                if entry is None:
                    entry = self._entries[key] = Entry()  # exists now, before its event says so
                meta = write.meta or {}
                if key[0] not in WHOLE and keeps_meta(key[0], meta):
                    entry.meta = {k: copy.deepcopy(v) for k, v in meta.items() if k != "managedFields"}
                if write.version in parked:
                    parked = [v for v in parked if v != write.version]
                else:
                    entry.echo = write.version
                self._hold(key[0], entry, write.version, write.value)
            elif write.outcome == "conflict":
                if entry is None:
                    entry = self._entries[key] = Entry()  # it exists, at a version we do not know
                entry.meta = None
                # A newer version than anything we hold exists: read live until a read says which.
                entry.held, entry.held_version = None, (NEWER if key[0] in WHOLE else "")
            elif write.outcome == "unknown" and entry is not None:  # it may or may not have been written
                entry.held, entry.held_version, entry.echo = None, (NEWER if key[0] in WHOLE else ""), ""
                entry.meta = None
                entry.trusted = False
            # "refused" (any other answer of the API server): nothing was written, nothing changes
            return bool(parked)


class Write:
    """The outcome of one write, told to the store by the gateway."""

    def __init__(self) -> None:
        self.outcome = "unknown"
        self.version = ""
        self.value: Any = None
        self.meta: Mapping[str, Any] | None = None

    def done(self, response: Mapping[str, Any], value: Any = None) -> None:
        """It succeeded; `response` is what the API server returned (its version is the echo to come),
        `value` what a later read of that version should answer (metadata kinds)."""
        self.outcome, self.version, self.value = "done", version_of(response), value
        self.meta = response.get("metadata") or {}
        if not self.version:
            self.outcome = "unknown"

    def conflict(self) -> None:
        """409: the object exists, at a version we do not hold (the next read is live)."""
        self.outcome = "conflict"

    def refused(self) -> None:
        """The API server answered, and wrote nothing (404, 403, 422, ...)."""
        self.outcome = "refused"
