"""The one small Kubernetes gateway: every read and write the operator makes goes through here.

Writes are shaped so that key material can never be replaced by accident:
- new Secrets are *created* (POST), never applied: if one appeared meanwhile the create fails with
  409 and the caller re-reads and adopts it;
- adding keys to an existing Secret is a merge patch carrying the resourceVersion it was planned
  from, so a concurrent change turns into a 409 and a re-plan instead of an overwrite;
- Secret metadata (template labels/annotations, owner references) is server-side applied under a
  field manager that never owns `data`, so applying metadata cannot remove a key.
Errors never carry Secret values: only names, reasons and HTTP codes.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import kubernetes
import urllib3

from pxsec import tenants
from pxsec.controller.kube.rest import (
    APPLY_PATCH,
    MERGE_PATCH,
    METADATA_ONLY,
    HttpError,
    RestClient,
    api_client,
    core_path,
    group_path,
)
from pxsec.controller.kube.store import ALL_NAMESPACES, PXSECURITY, Store, version_of
from pxsec.keyplan import Observed
from pxsec.spec import API_GROUP, API_VERSION, KEY_AUTH_TOKEN, KIND, PLURAL

logger = logging.getLogger(__name__)
EVENT_ATTEMPTS = 5  # 0.1 + 0.2 + 0.4 + 0.8 s of waiting at most between them
EVENT_BACKOFF = 0.1

T = TypeVar("T")

FIELD_MANAGER = "px-security-operator"
METADATA_MANAGER = "px-security-operator-metadata"


class GatewayError(RuntimeError):
    """A call failed; `status` is the HTTP status (0 when unknown)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Conflict(GatewayError):
    """409: the object changed (or appeared) since it was read."""


class NotLeading(GatewayError):
    """This replica lost the Lease: a reconcile still running writes nothing more (the new leader does)."""


class NamespaceTerminating(GatewayError):
    """403 because the namespace is being deleted: nothing to do, and nothing to retry."""


def _err(exc: HttpError, what: str) -> GatewayError:
    """The API server's own message (Status.message: names and reasons, never a request body)."""
    try:
        reason = str(json.loads(exc.body or b"{}").get("message", ""))
    except (ValueError, AttributeError):
        reason = ""
    cls: type[GatewayError] = GatewayError
    if exc.status == 409:
        cls = Conflict
    elif exc.status == 403 and "being terminated" in reason:
        cls = NamespaceTerminating
    return cls(f"{what}: {exc.status} {reason}".strip(), int(exc.status or 0))


def _trimmed(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as the steps use it: without the other managers' managedFields, which are most of an
    object's size and nothing the operator reads (the store keeps what it read between reconciles)."""
    out = {k: v for k, v in meta.items() if k != "managedFields"}
    ours = [m for m in meta.get("managedFields") or [] if m.get("manager") == METADATA_MANAGER]
    if ours:
        out["managedFields"] = ours
    return out


def _trimmed_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({**obj, "metadata": _trimmed(obj.get("metadata") or {})})


@dataclass(frozen=True)
class CRRef:
    namespace: str
    name: str
    uid: str = ""


class GatewayPort(Protocol):
    """What the reconcile steps need from the API: the real `Gateway`, or an in-memory fake in the unit
    tests (tests/support/fakegateway.py), so that each step's promises — which writes, in which order, none when
    nothing changed, a conflict retried with a fresh read — are checked in milliseconds, and the e2e
    tests prove the same against the real API server."""

    def get_pxsecurity(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...
    def read_secret(self, namespace: str, name: str) -> Observed | None: ...
    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                      annotations: Mapping[str, str], owners: list[dict[str, Any]] | None = None) -> Observed: ...
    def add_secret_keys(self, namespace: str, name: str, data: Mapping[str, bytes],
                        resource_version: str) -> None: ...
    def apply_secret_metadata(self, namespace: str, name: str, labels: Mapping[str, str],
                              annotations: Mapping[str, str], owners: list[dict[str, Any]]) -> None: ...
    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> bool: ...
    def update_secret_data(self, namespace: str, name: str, data: Mapping[str, bytes],
                           annotations: Mapping[str, str], resource_version: str) -> Observed: ...
    def patch_tenant_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                            annotations: Mapping[str, str], resource_version: str) -> None: ...
    def namespaces(self) -> list[tenants.Namespace] | None: ...
    def tenant_secrets(self, name: str | None = None) -> list[tenants.Existing]: ...
    def volume_secrets(self) -> dict[tuple[str, str], str] | None: ...
    def secrets_listed(self, namespace: str) -> bool: ...
    def serves(self, namespace: str) -> bool: ...
    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None: ...
    def patch_configmap(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def read_storagecluster(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def count_storagenodes(self, namespace: str) -> int: ...
    def list_storagenodes(self, namespace: str) -> list[dict[str, Any]]: ...
    def list_token_secrets(self, namespace: str) -> dict[str, str]: ...
    def patch_storagecluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def event(self, cr: CRRef, type_: str, reason: str, message: str) -> None: ...


SC_GROUP, SC_VERSION, SC_PLURAL = "core.libopenstorage.org", "v1", "storageclusters"


class Gateway:
    """Typed reads and guarded writes; one instance per operator process, with the process's `Store`.

    Every read asks the store first (its docstring has the rule) and tells it what a live read found;
    every write runs inside `Store.writing`, so the store knows the echo to come and what a later read
    of that version should answer.

    `fence`, when set, says whether this process may write now (the runtime: while it holds the Lease).
    Every write asks it first — each attempt of an Event too — so a reconcile that was running when the
    Lease was lost, slowed by a throttling or failing API server, writes nothing after it."""

    fence: Callable[[], bool] | None = None

    def _fenced(self, what: str) -> None:
        if self.fence is not None and not self.fence():
            raise NotLeading(f"{what}: not written, this replica no longer holds the Lease")

    def __init__(self, store: Store, client: kubernetes.client.ApiClient | None = None,
                 scopes: tuple[str, ...] = ()) -> None:
        self.store = store
        self.api = RestClient(client or api_client())
        self.scopes = scopes  # the namespaces served; () = all

    def _read(self, kind: str, namespace: str, name: str, path: str,
              keep: Callable[[dict[str, Any]], T]) -> T | None:
        """The object (as `keep` makes it) from the store, or from a live GET that the store is told of."""
        hit = self.store.get(kind, namespace, name)
        if hit is not None:
            return cast("T | None", hit.value)
        try:
            body = self.api.request("GET", path)
        except HttpError as exc:
            if exc.status == 404:
                self.store.absent_live(kind, namespace, name)
                return None
            raise _err(exc, f"get {kind.lower()} {name}") from None
        kept = keep(body)
        self.store.read_live(kind, namespace, name, version_of(body), kept)
        return kept

    def _write(self, kind: str, namespace: str, name: str, what: str, method: str, path: str, body: Any,
               content_type: str = "application/json", manager: str = FIELD_MANAGER, force: bool = False,
               keep: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
        """One write, its outcome told to the store; `keep` makes what a later read of the response's
        version answers (None: nothing is kept, the next read is live — and only the response's metadata
        is asked for)."""
        self._fenced(what)
        query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
        with self.store.writing(kind, namespace, name) as write:
            try:
                done = self.api.request(method, path, query, body, content_type,
                                        "application/json" if keep is not None else METADATA_ONLY)
            except HttpError as exc:
                if exc.status == 409:
                    write.conflict()
                else:
                    write.refused()
                raise _err(exc, what) from None
            write.done(done, keep(done) if keep is not None else None)
        return done

    # -- the custom resource ----------------------------------------------------------------------

    def get_pxsecurity(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(PXSECURITY, namespace, name, group_path(API_GROUP, API_VERSION, namespace, PLURAL, name),
                          lambda body: body)

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            self._write(PXSECURITY, namespace, name, f"patch {PLURAL}/{name}/status", "PATCH",
                        group_path(API_GROUP, API_VERSION, namespace, PLURAL, name, "status"),
                        {"status": dict(status)}, MERGE_PATCH)
        except GatewayError as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to write
                raise

    # -- Secrets ----------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> Observed | None:
        return self._read("Secret", namespace, name, core_path(namespace, "secrets", name),
                          lambda body: _observed(name, body))

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                      annotations: Mapping[str, str], owners: list[dict[str, Any]] | None = None) -> Observed:
        """Create only: raises Conflict if the Secret exists (the caller adopts it instead). Returns the
        Secret as created."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": dict(annotations)}
        if labels:
            metadata["labels"] = dict(labels)
        if owners:
            metadata["ownerReferences"] = owners
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": _encoded(data)}
        return self._write_secret(namespace, name, f"create secret {name}", "POST", body,
                                  path=core_path(namespace, "secrets"))

    def add_secret_keys(self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str) -> None:
        """Add keys, guarded by the resourceVersion the plan was made from (409 on any change)."""
        self._write_secret(namespace, name, f"add keys to secret {name}", "PATCH",
                           {"metadata": {"resourceVersion": resource_version}, "data": _encoded(data)})

    def apply_secret_metadata(self, namespace: str, name: str, labels: Mapping[str, str],
                              annotations: Mapping[str, str], owners: list[dict[str, Any]]) -> None:
        body = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                             "annotations": dict(annotations), "ownerReferences": owners}}
        self._write_secret(namespace, name, f"apply metadata of secret {name}", "PATCH", body,
                           content_type=APPLY_PATCH, manager=METADATA_MANAGER, force=True)

    def update_secret_data(self, namespace: str, name: str, data: Mapping[str, bytes],
                           annotations: Mapping[str, str], resource_version: str) -> Observed:
        """Replace keys of a Secret the operator owns outright (minted tokens), guarded by resourceVersion.
        Returns the Secret as updated."""
        body = {"metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)},
                "data": _encoded(data)}
        return self._write_secret(namespace, name, f"update secret {name}", "PATCH", body)

    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> bool:
        """Delete exactly the Secret that was read (409 if it changed or was replaced since). False when it
        was already gone. The store learns it is absent at once; the watch's DELETED event wakes nobody (no
        PxSecurity depends on a Secret it deletes)."""
        self._fenced(f"delete secret {name}")
        body = {"apiVersion": "v1", "kind": "DeleteOptions",
                "preconditions": {"uid": uid, "resourceVersion": resource_version}}
        try:
            self.api.request("DELETE", core_path(namespace, "secrets", name), None, body)
        except HttpError as exc:
            if exc.status == 404:
                self.store.absent_live("Secret", namespace, name)
                return False
            raise _err(exc, f"delete secret {name}") from None
        self.store.absent_live("Secret", namespace, name)
        return True

    def patch_tenant_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                            annotations: Mapping[str, str], resource_version: str) -> None:
        """A tenant token minted again: its data, labels and annotations, guarded by the version planned from."""
        self._write_secret(namespace, name, f"update secret {name}", "PATCH", {
            "metadata": {"resourceVersion": resource_version, "labels": dict(labels),
                         "annotations": dict(annotations)}, "data": _encoded(data)})

    # -- tenants: answered from the watches alone ------------------------------------------------

    def namespaces(self) -> list[tenants.Namespace] | None:
        """Every Namespace with its labels (None until the first listing is in)."""
        if not self.store.synced("Namespace", ALL_NAMESPACES):
            return None
        return [tenants.Namespace(name, dict((meta or {}).get("labels") or {}),
                                  bool((meta or {}).get("deletionTimestamp")))
                for _, name, meta in self.store.metas("Namespace")]

    def tenant_secrets(self, name: str | None = None) -> list[tenants.Existing]:
        """The Secrets named `name` in any namespace (each with its metadata if it is a tenant Secret), or,
        without a name, every tenant Secret."""
        found = self.store.metas("Secret", name, kept_only=name is None)
        return [tenants.Existing(ns, n, meta) for ns, n, meta in found]

    def volume_secrets(self) -> dict[tuple[str, str], str] | None:
        """(namespace, name) of each Secret a PersistentVolume's CSI driver uses -> that volume; None when
        volumes cannot be seen (a namespaced install, or before their first listing)."""
        if not self.store.synced("PersistentVolume", ALL_NAMESPACES):
            return None
        out: dict[tuple[str, str], str] = {}
        for body in self.store.bodies("PersistentVolume", ALL_NAMESPACES):
            for ref in body.get("secretRefs") or []:
                out.setdefault((ref["namespace"], ref["name"]), str((body.get("metadata") or {}).get("name")))
        return out

    def secrets_listed(self, namespace: str) -> bool:
        return self.store.synced("Secret", ALL_NAMESPACES) or self.store.synced("Secret", namespace)

    def serves(self, namespace: str) -> bool:
        return not self.scopes or namespace in self.scopes

    def _write_secret(self, namespace: str, name: str, what: str, method: str, body: Any, path: str = "",
                      content_type: str = MERGE_PATCH, manager: str = FIELD_MANAGER, force: bool = False) -> Observed:
        done = self._write("Secret", namespace, name, what, method, path or core_path(namespace, "secrets", name),
                           body, content_type if method == "PATCH" else "application/json", manager, force,
                           keep=lambda response: _observed(name, response))
        return _observed(name, done)

    # -- ConfigMaps -------------------------------------------------------------------------------

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read("ConfigMap", namespace, name, core_path(namespace, "configmaps", name), _trimmed_object)

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None:
        name = str(body["metadata"]["name"])
        self._write("ConfigMap", namespace, name, f"create configmap {name}", "POST",
                    core_path(namespace, "configmaps"), dict(body), keep=_trimmed_object)

    def patch_configmap(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self._write("ConfigMap", namespace, name, f"patch configmap {name}", "PATCH",
                    core_path(namespace, "configmaps", name), dict(patch), MERGE_PATCH, keep=_trimmed_object)

    # -- StorageClusters (core.libopenstorage.org/v1) ----------------------------------------------

    def read_storagecluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        """None when the StorageCluster (or its CRD) does not exist (yet)."""
        return self._read("StorageCluster", namespace, name,
                          group_path(SC_GROUP, SC_VERSION, namespace, SC_PLURAL, name), _trimmed_object)

    def count_storagenodes(self, namespace: str) -> int:
        """How many StorageNodes the watch knows in the namespace (Portworx runs there if any)."""
        return self.store.count("StorageNode", namespace)

    def list_storagenodes(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's StorageNodes as the watch last delivered them (no request: the watch keeps them)."""
        return self.store.bodies("StorageNode", namespace)

    def list_token_secrets(self, namespace: str) -> dict[str, str]:
        """Every token (`auth-token`) in the namespace's Secrets, by Secret name: a live list, made only to
        say which tokens a pending change would make fail."""
        try:
            listed = self.api.request("GET", core_path(namespace, "secrets"))
        except HttpError as exc:
            raise _err(exc, "list secrets") from None
        out = {}
        for item in listed.get("items") or []:
            value = (item.get("data") or {}).get(KEY_AUTH_TOKEN)
            if value:
                out[str(item["metadata"]["name"])] = base64.b64decode(value).decode("ascii", "replace")
        return out

    def patch_storagecluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (it carries the resourceVersion it was computed from: 409 on a race)."""
        self._write("StorageCluster", namespace, name, f"patch storagecluster {name}", "PATCH",
                    group_path(SC_GROUP, SC_VERSION, namespace, SC_PLURAL, name), dict(patch), MERGE_PATCH)

    # -- Events -----------------------------------------------------------------------------------

    def event(self, cr: CRRef, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the PxSecurity. Messages name Secrets and fingerprints, never values.

        Named for what it says (`event_name`): the same news said again — a reconcile retried after a
        lost response, a renewal that says what the last one said — finds its Event and counts it
        (count + 1, lastTimestamp), as client-go's recorder aggregates, instead of a second object."""
        now = dt.datetime.now(dt.UTC).isoformat()
        message = message if len(message) <= 4000 else message[:3999] + "…"
        name = event_name(cr, type_, reason, message)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": cr.namespace},
            "involvedObject": {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                               "name": cr.name, "namespace": cr.namespace, "uid": cr.uid},
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": os.environ.get("HOSTNAME", "local"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # An Event is the loud half of a change (a lost key, a change waiting for approval): retried through
        # an API server that throttles, fails or drops the connection, as client-go's recorder retries, then
        # given up (the condition carries the same news).
        for attempt in range(EVENT_ATTEMPTS):
            if self.fence is not None and not self.fence():
                return  # the Lease is lost: the new leader says what is still news
            try:
                try:
                    self.api.request("POST", core_path(cr.namespace, "events"), None, body, accept=METADATA_ONLY)
                except HttpError as error:
                    if error.status != 409:
                        raise
                    if attempt == 0:  # else it is our own earlier attempt, whose response was lost
                        self._count_again(cr.namespace, name, now)
                return
            except HttpError as error:
                if error.status != 429 and error.status < 500:
                    return  # refused as such: retrying will not help
            except urllib3.exceptions.HTTPError:
                pass
            if attempt + 1 < EVENT_ATTEMPTS:
                time.sleep(EVENT_BACKOFF * 2 ** attempt)
        logger.warning("%s/%s: Event %s not posted after %d attempts", cr.namespace, cr.name, reason,
                       EVENT_ATTEMPTS)

    def _count_again(self, namespace: str, name: str, now: str) -> None:
        """The Event exists: one more occurrence of it."""
        path = f"{core_path(namespace, 'events')}/{name}"
        have = self.api.request("GET", path)
        count = int(have.get("count") or 1) + 1
        self.api.request("PATCH", path, None, {"count": count, "lastTimestamp": now}, MERGE_PATCH)


def event_name(cr: CRRef, type_: str, reason: str, message: str) -> str:
    """`<object>.<16 hex>`: the hex a digest of the object's uid and the news, so that saying the same
    thing again is the same Event (the object's part cut so the name stays within 253 characters)."""
    digest = hashlib.sha256("\0".join((cr.uid, type_, reason, message)).encode()).hexdigest()[:16]
    return f"{cr.name[:236].rstrip('.-')}.{digest}"


def _encoded(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _observed(name: str, secret: Mapping[str, Any]) -> Observed:
    """A Secret as the API server returned it (from a read, or the response to our own write, which saves
    reading it again)."""
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    meta = _trimmed(secret.get("metadata") or {})
    return Observed(name=name, data=data, labels=dict(meta.get("labels") or {}),
                    annotations=dict(meta.get("annotations") or {}),
                    resource_version=str(meta.get("resourceVersion") or ""), metadata=meta)
