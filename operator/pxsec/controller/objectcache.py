"""What the watch streams say exists: for each Secret and ConfigMap in the watched namespaces, its name
and resourceVersion, and nothing else (no data, no labels).

Why: before this, every reconcile of a new object first asked the API server for each Secret and
ConfigMap it needs (four or five GETs that answered 404) before creating them. The watches already
deliver every such object, so the gateway asks this cache first: an object the cache *knows* is absent
is created at once, without a GET.

It is only ever a hint, and a wrong hint costs a request, never a key:
- creates are create-only (a Secret that appeared meanwhile makes the create fail with 409, the cache
  then marks it present and the caller reads it live and adopts it);
- "present" always means a live GET for the data (the cache holds no values);
- until the first full listing of a namespace is in (`synced`), nothing is known absent there;
- every change seen on the watch also wakes the PxSecurity that depends on the object (handlers.py), so
  a decision made on a view a moment old is made again on the newer one.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

Name = tuple[str, str]  # (namespace, name)
ALL_NAMESPACES = ""


class ObjectCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # fed from watch threads, read from reconcile threads
        self._objects: dict[str, dict[Name, str]] = {}  # kind -> (namespace, name) -> resourceVersion
        self._synced: dict[str, set[str]] = {}  # kind -> namespaces listed ("" = all)

    def known_absent(self, kind: str, namespace: str, name: str) -> bool:
        """True only when a complete listing covers `namespace` and the object is not in it (now)."""
        with self._lock:
            synced = self._synced.get(kind, set())
            if ALL_NAMESPACES not in synced and namespace not in synced:
                return False
            return (namespace, name) not in self._objects.get(kind, {})

    def resource_version(self, kind: str, namespace: str, name: str) -> str | None:
        with self._lock:
            return self._objects.get(kind, {}).get((namespace, name))

    def put(self, kind: str, namespace: str, name: str, resource_version: str) -> None:
        with self._lock:
            self._objects.setdefault(kind, {})[(namespace, name)] = resource_version

    def exists(self, kind: str, namespace: str, name: str) -> None:
        """We created or wrote it: not absent, at whatever version the watch reports (or "" until then)."""
        with self._lock:
            self._objects.setdefault(kind, {}).setdefault((namespace, name), "")

    def present(self, kind: str, namespace: str, name: str) -> None:
        """The object exists at a version we do not know (a create or a guarded write answered 409):
        the next read is a live one, until the watch tells the version."""
        with self._lock:
            self._objects.setdefault(kind, {})[(namespace, name)] = ""

    def drop(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.get(kind, {}).pop((namespace, name), None)

    def replace(self, kind: str, scope: str, listed: Iterable[tuple[Name, str]]) -> list[Name]:
        """A complete listing of `scope` (a namespace, or "" for all): make it the truth there and return
        the names whose version changed or that vanished since (their dependents need a look)."""
        fresh = dict(listed)
        with self._lock:
            objects = self._objects.setdefault(kind, {})
            old = {k: v for k, v in objects.items() if scope == ALL_NAMESPACES or k[0] == scope}
            for k in old:
                del objects[k]
            objects.update(fresh)
            self._synced.setdefault(kind, set()).add(scope)
        changed = [k for k, v in old.items() if fresh.get(k) != v]
        changed += [k for k in fresh if k not in old]
        return changed

    def synced(self, kind: str, scope: str) -> bool:
        with self._lock:
            return scope in self._synced.get(kind, set())

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._objects.values())


Key = tuple[str, str]  # (namespace, name) of a PxSecurity


class Bodies:
    """The PxSecurities as kopf's watch last delivered them, used instead of a GET when that is as good
    as a GET: the reconcile of a new object, and one that finds nothing to do, then read nothing.

    Only a reconcile woken by an event of the PxSecurity itself uses it (`seen` marks the key fresh, the
    next `get` consumes the mark): that event proves the object existed, and a deletion after it comes
    as a later event (`gone`). A reconcile woken by a timer or by a Secret reads the PxSecurity live —
    the watch may have lost a deletion across a "410 Gone" relist, and a stale body would then recreate
    Secrets for an object that no longer exists.

    The status of a PxSecurity is the operator's memory (fingerprints, revisions, when a loss was seen);
    reconciling from a status older than the operator's own last write would misjudge. So a body is
    used only when it cannot be older than anything this process wrote or relied on:
    - while a status patch of ours, or the version a live GET returned, has not come back through the
      watch (`wrote`/`read_live` until `seen` with that resourceVersion), a live GET is made;
    - a key is *trusted* once a live GET was made for it since this process started reconciling, or
      when its first body seen since then had no status (a new object: nobody has written one). After
      a leader handover the new leader therefore reads each object live once: the old leader's last
      writes may still be on their way through this replica's watch;
    - a status write that failed in an unknown way makes the key untrusted again.
    Other writers change only spec and metadata; their change arrives as a newer event, which wakes
    the key again, as for Secrets (`ObjectCache`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # events arrive on the loop, reconciles read in worker threads
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._pending: dict[Key, str] = {}
        self._trusted: set[Key] = set()
        self._fresh: set[Key] = set()  # woken by an event of the object itself, not used yet
        self._reconciling = False

    def start(self) -> None:
        """This process begins to reconcile (at start, or on becoming the leader): trust nothing yet."""
        with self._lock:
            self._trusted.clear()
            self._reconciling = True

    def seen(self, key: Key, body: Mapping[str, Any]) -> None:
        # Kept without managedFields: most of an object's size, and nothing a reconcile reads.
        meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
        copied = copy.deepcopy({**body, "metadata": meta})
        version = str((copied.get("metadata") or {}).get("resourceVersion") or "")
        with self._lock:
            if key not in self._bodies and self._reconciling and not copied.get("status"):
                self._trusted.add(key)
            self._bodies[key] = copied
            self._fresh.add(key)
            if version and self._pending.get(key) == version:
                del self._pending[key]

    def gone(self, key: Key) -> None:
        with self._lock:
            self._bodies.pop(key, None)
            self._pending.pop(key, None)
            self._trusted.discard(key)
            self._fresh.discard(key)

    def wrote(self, key: Key, resource_version: str) -> None:
        """Our status patch returned this version: wait for the watch to deliver it — unless it already
        has (the event can beat the response to the thread that made the write)."""
        with self._lock:
            if not resource_version:
                self._trusted.discard(key)
            elif self._version(key) != resource_version:
                self._pending[key] = resource_version

    def _version(self, key: Key) -> str:
        return str(((self._bodies.get(key) or {}).get("metadata") or {}).get("resourceVersion") or "")

    def failed(self, key: Key) -> None:
        with self._lock:
            self._trusted.discard(key)

    def read_live(self, key: Key, resource_version: str) -> None:
        """A live GET returned this version: trusted from now on, once the watch has delivered it too
        (at once if it already has; a watch that is ahead only means more live reads meanwhile)."""
        with self._lock:
            if not self._reconciling:
                return
            self._trusted.add(key)
            if resource_version and self._version(key) != resource_version:
                self._pending[key] = resource_version
            else:
                self._pending.pop(key, None)

    def get(self, key: Key) -> dict[str, Any] | None:
        """A copy of the body, when it is as good as a live read (see above); else None."""
        with self._lock:
            fresh = key in self._fresh
            self._fresh.discard(key)
            if not fresh or key not in self._trusted or key in self._pending:
                return None
            body = self._bodies.get(key)
            return copy.deepcopy(body) if body is not None else None
