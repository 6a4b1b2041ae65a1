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

import threading
from collections.abc import Iterable

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
