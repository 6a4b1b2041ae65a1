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
import contextlib
import copy
import datetime as dt
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote

import kubernetes
import urllib3

from pxsec.controller.echoes import ECHOES
from pxsec.controller.objectcache import Bodies, ObjectCache
from pxsec.keyplan import Observed
from pxsec.spec import API_GROUP, API_VERSION, KIND, PLURAL

T = TypeVar("T")

MEMO_LIMIT = 10_000  # Secrets/ConfigMaps remembered (only those PxSecurities read: their own and adopted)
FIELD_MANAGER = "px-security-operator"
METADATA_MANAGER = "px-security-operator-metadata"


class GatewayError(RuntimeError):
    """A call failed; `status` is the HTTP status (0 when unknown)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Conflict(GatewayError):
    """409: the object changed (or appeared) since it was read."""


class NamespaceTerminating(GatewayError):
    """403 because the namespace is being deleted: nothing to do, and nothing to retry."""


class HttpError(Exception):
    """A response other than 2xx (internal: becomes a GatewayError naming what was attempted)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status, self.body = status, body


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


def _resource_version(obj: Mapping[str, Any]) -> str:
    """The resourceVersion of an object as returned by the API server."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _or_none(call: Callable[[], T], what: str) -> T | None:
    """The result of a read, or None when the object (or its kind) does not exist."""
    try:
        return call()
    except HttpError as exc:
        if exc.status == 404:
            return None
        raise _err(exc, what) from None


REQUEST_TIMEOUT = (10.0, 60.0)  # connect, read: a hung API server fails the reconcile, it is retried
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is YAML


def _trimmed(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as the steps use it: without the other managers' managedFields, which are most of an
    object's size and nothing the operator reads (it remembers objects between reconciles)."""
    out = {k: v for k, v in meta.items() if k != "managedFields"}
    ours = [m for m in meta.get("managedFields") or [] if m.get("manager") == METADATA_MANAGER]
    if ours:
        out["managedFields"] = ours
    return out


def _trimmed_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({**obj, "metadata": _trimmed(obj.get("metadata") or {})})


class RestClient:
    """JSON in, JSON out, over the Kubernetes client's connection pool and credentials.

    Why not the generated API classes: each call went through pydantic argument validation, model
    serialization and deserialization into typed models that the callers turned back into dicts — most
    of the operator's CPU in a burst, with nothing gained (the API server validates; the callers want
    dicts). Authentication (tokens, refreshed ServiceAccount tokens, client certificates, CA) stays the
    client's."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client

    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        resp = self.open(method, path, query, body, content_type)
        return cast(dict[str, Any], json.loads(resp.data)) if resp.data else {}

    def open(self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None,
             content_type: str = "application/json", accept: str = "application/json",
             timeout: tuple[float, float] = REQUEST_TIMEOUT, stream: bool = False) -> urllib3.BaseHTTPResponse:
        """The response of a 2xx request (`stream`: not read yet, e.g. a watch); HttpError otherwise."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, _, _ = self.client.param_serialize(
            method, path, query_params=query or [], header_params=headers, auth_settings=["BearerToken"])
        payload = None if body is None else json.dumps(body).encode()
        resp = self.client.rest_client.pool_manager.request(
            method, url, body=payload, headers=headers, preload_content=not stream,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        if not 200 <= resp.status < 300:
            data = resp.read() if stream else resp.data
            resp.release_conn()
            raise HttpError(resp.status, data or b"")
        return resp


def _core(namespace: str, plural: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}" + (f"/{quote(name, safe='')}" if name else "")


def _custom(group: str, version: str, namespace: str, plural: str, name: str, sub: str = "") -> str:
    return (f"/apis/{group}/{version}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"
            + (f"/{sub}" if sub else ""))


@dataclass(frozen=True)
class CRRef:
    namespace: str
    name: str
    uid: str = ""


class GatewayPort(Protocol):
    """What the reconcile steps need from the API: the real `Gateway`, or an in-memory fake in the unit
    tests (tests/fakegateway.py), so that each step's promises — which writes, in which order, none when
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
    def update_secret_data(self, namespace: str, name: str, data: Mapping[str, bytes],
                           annotations: Mapping[str, str], resource_version: str) -> Observed: ...
    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None: ...
    def patch_configmap(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def read_storagecluster(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def patch_storagecluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def event(self, cr: CRRef, type_: str, reason: str, message: str) -> None: ...


_config_lock = threading.Lock()
_api_client: kubernetes.client.ApiClient | None = None


def api_client() -> kubernetes.client.ApiClient:
    """A shared client: in-cluster config when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    global _api_client
    with _config_lock:
        if _api_client is None:
            configuration = kubernetes.client.Configuration()
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            else:
                kubernetes.config.load_kube_config(client_configuration=configuration)
            _api_client = kubernetes.client.ApiClient(configuration)
        return _api_client


class Gateway:
    """Typed reads and guarded writes; one instance per operator process."""

    def __init__(self, client: kubernetes.client.ApiClient | None = None, cache: ObjectCache | None = None,
                 bodies: Bodies | None = None) -> None:
        self.client = client or api_client()
        # PxSecurities as the watch delivered them, where that is as good as a GET (objectcache.Bodies).
        self.bodies = bodies
        # What the watches say exists (objectcache.py): a Secret or ConfigMap known to be absent is not
        # asked for; created ones are recorded at once, and a create that finds one marks it present.
        self.cache = cache if cache is not None else ObjectCache()
        # What we last read or wrote of each Secret/ConfigMap we depend on, by resourceVersion: while the
        # watch says the object is still at that version, reading it again would return the same bytes.
        self._memo: OrderedDict[tuple[str, str, str], tuple[str, Any]] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.api = RestClient(self.client)

    # -- the custom resource ----------------------------------------------------------------------

    def get_pxsecurity(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.bodies is not None:
            held = self.bodies.get((namespace, name))
            if held is not None:
                return held
        body = _or_none(lambda: self.api.request("GET", _custom(API_GROUP, API_VERSION, namespace, PLURAL, name)),
                        f"get {PLURAL}/{name}")
        if body is not None and self.bodies is not None:
            self.bodies.read_live((namespace, name), _resource_version(body))
        return body

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            done = self.api.request("PATCH", _custom(API_GROUP, API_VERSION, namespace, PLURAL, name, "status"),
                                    [("fieldManager", FIELD_MANAGER)], {"status": dict(status)}, MERGE_PATCH)
        except HttpError as exc:
            if exc.status == 404:
                return
            self._status_unknown(namespace, name)
            raise _err(exc, f"patch {PLURAL}/{name}/status") from None
        except BaseException:  # timeout, connection reset: it may or may not have been written
            self._status_unknown(namespace, name)
            raise
        ECHOES.wrote("PxSecurity", namespace, name, _resource_version(done))
        if self.bodies is not None:
            self.bodies.wrote((namespace, name), _resource_version(done))

    def _status_unknown(self, namespace: str, name: str) -> None:
        if self.bodies is not None:
            self.bodies.failed((namespace, name))

    def _wrote(self, kind: str, namespace: str, name: str, response: Any, value: Any = None) -> None:
        """A write succeeded: the object exists from now on (before its watch event says so), and `value`
        (the response as the callers see a read) is what a read gets once the watch reports the response's
        version. The cache's version is left to the watch: someone else's later write may already be
        there, and our older version must not hide it."""
        version = _resource_version(response)
        ECHOES.wrote(kind, namespace, name, version)
        self.cache.exists(kind, namespace, name)
        self._remember(kind, namespace, name, version, value)

    def _remember(self, kind: str, namespace: str, name: str, version: str, value: Any) -> None:
        key = (kind, namespace, name)
        with self._memo_lock:
            if value is None or not version:
                self._memo.pop(key, None)
                return
            self._memo[key] = (version, value)
            self._memo.move_to_end(key)
            while len(self._memo) > MEMO_LIMIT:
                self._memo.popitem(last=False)

    def _recall(self, kind: str, namespace: str, name: str) -> Any:
        """The remembered value when the watch still has the object at the remembered version, else None
        (and a read goes to the API server)."""
        version = self.cache.resource_version(kind, namespace, name)
        key = (kind, namespace, name)
        with self._memo_lock:
            held = self._memo.get(key)
            if held is None:
                return None
            if version is None:  # gone from the watch's view: forget it
                del self._memo[key]
                return None
            return held[1] if version and held[0] == version else None

    def _conflicted(self, kind: str, namespace: str, name: str) -> None:
        """A create or a guarded write got 409: it exists at a version we do not hold, so the next read is
        a live one."""
        self.cache.present(kind, namespace, name)

    # -- Secrets ----------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> Observed | None:
        if self.cache.known_absent("Secret", namespace, name):
            return None
        held = self._recall("Secret", namespace, name)
        if held is not None:
            return cast(Observed, held)
        secret = _or_none(lambda: self.api.request("GET", _core(namespace, "secrets", name)), f"get secret {name}")
        if secret is None:
            return None
        observed = self._observed(name, secret)
        self._remember("Secret", namespace, name, observed.resource_version, observed)
        return observed

    @staticmethod
    def _observed(name: str, secret: Mapping[str, Any]) -> Observed:
        """A Secret as the API server returned it (from a read, or the response to our own write, which
        saves reading it again)."""
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        meta = _trimmed(secret.get("metadata") or {})
        return Observed(
            name=name, data=data, labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=str(meta.get("resourceVersion") or ""), metadata=meta)

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                      annotations: Mapping[str, str], owners: list[dict[str, Any]] | None = None) -> Observed:
        """Create only: raises Conflict if the Secret exists (the caller adopts it instead). Returns the
        Secret as created."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": dict(annotations)}
        if labels:
            metadata["labels"] = dict(labels)
        if owners:
            metadata["ownerReferences"] = owners
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": metadata,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            created = self.api.request("POST", _core(namespace, "secrets"), [("fieldManager", FIELD_MANAGER)], body)
        except HttpError as exc:
            if exc.status == 409:
                self._conflicted("Secret", namespace, name)
            raise _err(exc, f"create secret {name}") from None
        observed = self._observed(name, created)
        self._wrote("Secret", namespace, name, created, observed)
        return observed

    def add_secret_keys(self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str) -> None:
        """Add keys, guarded by the resourceVersion the plan was made from (409 on any change)."""
        body = {
            "metadata": {"resourceVersion": resource_version},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            done = self.api.request("PATCH", _core(namespace, "secrets", name), [("fieldManager", FIELD_MANAGER)],
                                    body, MERGE_PATCH)
        except HttpError as exc:
            if exc.status == 409:
                self._conflicted("Secret", namespace, name)
            raise _err(exc, f"add keys to secret {name}") from None
        self._wrote("Secret", namespace, name, done, self._observed(name, done))

    def apply_secret_metadata(self, namespace: str, name: str, labels: Mapping[str, str],
                              annotations: Mapping[str, str], owners: list[dict[str, Any]]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "annotations": dict(annotations), "ownerReferences": owners},
        }
        try:
            done = self.api.request("PATCH", _core(namespace, "secrets", name),
                                    [("fieldManager", METADATA_MANAGER), ("force", "true")], body, APPLY_PATCH)
        except HttpError as exc:
            raise _err(exc, f"apply metadata of secret {name}") from None
        self._wrote("Secret", namespace, name, done, self._observed(name, done))

    def update_secret_data(self, namespace: str, name: str, data: Mapping[str, bytes],
                           annotations: Mapping[str, str], resource_version: str) -> Observed:
        """Replace keys of a Secret the operator owns outright (minted tokens), guarded by resourceVersion.
        Returns the Secret as updated."""
        body = {
            "metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            updated = self.api.request("PATCH", _core(namespace, "secrets", name),
                                       [("fieldManager", FIELD_MANAGER)], body, MERGE_PATCH)
        except HttpError as exc:
            if exc.status == 409:
                self._conflicted("Secret", namespace, name)
            raise _err(exc, f"update secret {name}") from None
        observed = self._observed(name, updated)
        self._wrote("Secret", namespace, name, updated, observed)
        return observed

    # -- ConfigMaps -------------------------------------------------------------------------------

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.cache.known_absent("ConfigMap", namespace, name):
            return None
        held = self._recall("ConfigMap", namespace, name)
        if held is not None:
            return copy.deepcopy(cast(dict[str, Any], held))
        body = _or_none(lambda: self.api.request("GET", _core(namespace, "configmaps", name)),
                        f"get configmap {name}")
        if body is None:
            return None
        self._remember("ConfigMap", namespace, name, _resource_version(body), _trimmed_object(body))
        return body

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None:
        try:
            done = self.api.request("POST", _core(namespace, "configmaps"), [("fieldManager", FIELD_MANAGER)],
                                    dict(body))
        except HttpError as exc:
            if exc.status == 409:
                self._conflicted("ConfigMap", namespace, str(body["metadata"]["name"]))
            raise _err(exc, f"create configmap {body['metadata']['name']}") from None
        self._wrote("ConfigMap", namespace, str(body["metadata"]["name"]), done, _trimmed_object(done))

    def patch_configmap(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        try:
            done = self.api.request("PATCH", _core(namespace, "configmaps", name), [("fieldManager", FIELD_MANAGER)],
                                    dict(patch), MERGE_PATCH)
        except HttpError as exc:
            raise _err(exc, f"patch configmap {name}") from None
        self._wrote("ConfigMap", namespace, name, done, _trimmed_object(done))

    # -- StorageClusters (core.libopenstorage.org/v1) ----------------------------------------------

    def read_storagecluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        """None when the StorageCluster (or its CRD) does not exist (yet)."""
        return _or_none(lambda: self.api.request(
            "GET", _custom("core.libopenstorage.org", "v1", namespace, "storageclusters", name)),
            f"get storagecluster {name}")

    def patch_storagecluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (it carries the resourceVersion it was computed from: 409 on a race)."""
        try:
            done = self.api.request(
                "PATCH", _custom("core.libopenstorage.org", "v1", namespace, "storageclusters", name),
                [("fieldManager", FIELD_MANAGER)], dict(patch), MERGE_PATCH)
        except HttpError as exc:
            raise _err(exc, f"patch storagecluster {name}") from None
        ECHOES.wrote("StorageCluster", namespace, name, _resource_version(done))

    # -- Events -----------------------------------------------------------------------------------

    def event(self, cr: CRRef, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the PxSecurity. Messages name Secrets and fingerprints, never values."""
        now = dt.datetime.now(dt.UTC)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{cr.name}.", "namespace": cr.namespace},
            "involvedObject": {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                               "name": cr.name, "namespace": cr.namespace, "uid": cr.uid},
            "type": type_,
            "reason": reason,
            "message": message if len(message) <= 4000 else message[:3999] + "…",
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": os.environ.get("HOSTNAME", "local"),
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        # An Event is best effort; the condition carries the same news.
        with contextlib.suppress(HttpError):
            self.api.request("POST", _core(cr.namespace, "events"), None, body)
