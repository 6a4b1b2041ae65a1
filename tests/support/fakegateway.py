"""An in-memory stand-in for `pxsec.controller.kube.gateway.Gateway` (it satisfies `GatewayPort`), for unit tests of the
reconcile steps in the manner of cert-manager's controller tests: given these objects, exactly these
writes.

It keeps what the steps rely on from the API server: a resourceVersion per object that every write
bumps, 409 on a create of an existing object or on a write guarded by a stale resourceVersion, 404 as
None, server-side apply of Secret metadata by a field manager (managedFields recorded, keys the manager
applied before and no longer applies removed), JSON merge patches, and status writes. `writes` lists
every successful write as (verb, kind, name) in order, so a test states the exact writes; `races` lets
a test make another writer act right before one of the step's writes.

The e2e tests prove the same promises against the real API server; this fake only makes them fast.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import tenants
from pxsec.controller.kube.gateway import METADATA_MANAGER, Conflict, CRRef, GatewayError
from pxsec.keyplan import Observed
from pxsec.scmerge import apply_merge_patch

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass
class Recorded:
    type: str
    reason: str
    message: str


@dataclass
class FakeGateway:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[Recorded] = field(default_factory=list)
    reads: list[tuple[str, str, str]] = field(default_factory=list)  # (get, kind, name) of Secret reads
    # (verb, kind, name) -> what another writer does right before that write (once)
    races: dict[tuple[str, str, str], Callable[[FakeGateway], None]] = field(default_factory=dict)
    _version: int = 100

    # -- setting up the world ---------------------------------------------------------------------

    def put(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object as someone else would (not counted in `writes`)."""
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        meta.update({"name": name, "namespace": namespace})
        meta["resourceVersion"] = self._bump()
        self.objects[(kind, namespace, name)] = obj
        return obj

    def put_secret(self, namespace: str, name: str, data: Mapping[str, bytes], *,
                   labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None) -> None:
        self.put("Secret", namespace, name, {"metadata": {"labels": dict(labels or {}),
                                                          "annotations": dict(annotations or {})},
                                             "data": dict(data)})

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(("Secret", namespace, name))

    def data(self, namespace: str, name: str) -> dict[str, bytes]:
        obj = self.secret(namespace, name)
        return dict(obj["data"]) if obj else {}

    def clear_writes(self) -> None:
        self.writes.clear()
        self.events.clear()
        self.reads.clear()

    # -- internals --------------------------------------------------------------------------------

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def _write(self, verb: str, kind: str, name: str) -> None:
        race = self.races.pop((verb, kind, name), None)
        if race is not None:
            race(self)

    def _guard(self, obj: dict[str, Any] | None, resource_version: str, what: str) -> dict[str, Any]:
        """The stored object itself (writes change it in place), or the API server's 404 / 409."""
        if obj is None:
            raise GatewayError(f"{what}: 404 not found", 404)
        if resource_version and obj["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(f"{what}: 409 the object has been modified", 409)
        return obj

    def _done(self, verb: str, kind: str, name: str, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = self._bump()
        self.writes.append((verb, kind, name))

    # -- GatewayPort ------------------------------------------------------------------------------

    def get_pxsecurity(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(("PxSecurity", namespace, name))
        return copy.deepcopy(obj) if obj else None

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._write("patch", "PxSecurity/status", name)
        obj = self.objects.get(("PxSecurity", namespace, name))
        if obj is None:
            return
        obj["status"] = apply_merge_patch(obj.get("status") or {}, copy.deepcopy(dict(status)))
        self._done("patch", "PxSecurity/status", name, obj)

    def read_secret(self, namespace: str, name: str) -> Observed | None:
        self.reads.append(("get", "Secret", name))
        obj = self.secret(namespace, name)
        return None if obj is None else self._observed(name, obj)

    def _observed(self, name: str, obj: Mapping[str, Any]) -> Observed:
        meta = copy.deepcopy(obj["metadata"])
        return Observed(name=name, data=dict(obj["data"]), labels=dict(meta.get("labels") or {}),
                        annotations=dict(meta.get("annotations") or {}),
                        resource_version=str(meta["resourceVersion"]), metadata=meta)

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                      annotations: Mapping[str, str], owners: list[dict[str, Any]] | None = None) -> Observed:
        self._write("create", "Secret", name)
        if self.secret(namespace, name) is not None:
            raise Conflict(f"create secret {name}: 409 already exists", 409)
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels),
                                "annotations": dict(annotations)}
        if owners:
            meta["ownerReferences"] = copy.deepcopy(owners)
        obj = {"metadata": meta, "data": dict(data)}
        self.objects[("Secret", namespace, name)] = obj
        self._done("create", "Secret", name, obj)
        return self._observed(name, obj)

    def add_secret_keys(self, namespace: str, name: str, data: Mapping[str, bytes], resource_version: str) -> None:
        self._write("patch", "Secret", name)
        obj = self._guard(self.secret(namespace, name), resource_version, f"add keys to secret {name}")
        obj["data"].update(data)
        self._done("patch", "Secret", name, obj)

    def update_secret_data(self, namespace: str, name: str, data: Mapping[str, bytes],
                           annotations: Mapping[str, str], resource_version: str) -> Observed:
        self._write("patch", "Secret", name)
        obj = self._guard(self.secret(namespace, name), resource_version, f"update secret {name}")
        obj["data"].update(data)
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        self._done("patch", "Secret", name, obj)
        return self._observed(name, obj)

    def patch_tenant_secret(self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str],
                            annotations: Mapping[str, str], resource_version: str) -> None:
        self._write("patch", "Secret", name)
        obj = self._guard(self.secret(namespace, name), resource_version, f"update secret {name}")
        obj["data"].update(data)
        obj["metadata"].setdefault("labels", {}).update(labels)
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        self._done("patch", "Secret", name, obj)

    # -- tenants: what the watches would hold --------------------------------------------------------

    served: tuple[str, ...] = ()  # () = every namespace

    def namespaces(self) -> list[tenants.Namespace] | None:
        return [tenants.Namespace(name, dict((obj.get("metadata") or {}).get("labels") or {}),
                                  bool((obj.get("metadata") or {}).get("deletionTimestamp")))
                for (kind, _, name), obj in sorted(self.objects.items()) if kind == "Namespace"]

    def tenant_secrets(self, name: str | None = None) -> list[tenants.Existing]:
        out = []
        for (kind, ns, n), obj in sorted(self.objects.items()):
            if kind != "Secret" or (name is not None and n != name):
                continue
            meta = obj.get("metadata") or {}
            kept = copy.deepcopy(meta) if tenants.TENANT_LABEL in (meta.get("labels") or {}) else None
            if name is None and kept is None:
                continue
            out.append(tenants.Existing(ns, n, kept))
        return out

    def volume_secrets(self) -> dict[tuple[str, str], str] | None:
        out: dict[tuple[str, str], str] = {}
        for (kind, _, name), obj in sorted(self.objects.items()):
            if kind == "PersistentVolume":
                for ref in ((obj.get("spec") or {}).get("csi") or {}).values():
                    if isinstance(ref, dict) and "name" in ref:
                        out.setdefault((ref.get("namespace", ""), ref["name"]), name)
        return out

    def secrets_listed(self, namespace: str) -> bool:
        return True

    def serves(self, namespace: str) -> bool:
        return not self.served or namespace in self.served

    may_delete = True  # False: deletes are refused as without the optional RBAC piece (403)
    delete_attempts = 0

    def delete_secret(self, namespace: str, name: str, uid: str, resource_version: str) -> bool:
        self.delete_attempts += 1
        self._write("delete", "Secret", name)
        if not self.may_delete:
            raise GatewayError(f"delete secret {name}: 403 forbidden", 403)
        obj = self.secret(namespace, name)
        if obj is None:
            return False
        self._guard(obj, resource_version, f"delete secret {name}")
        if uid and obj["metadata"].get("uid", uid) != uid:
            raise Conflict(f"delete secret {name}: 409 precondition failed: UID", 409)
        del self.objects[("Secret", namespace, name)]
        self.writes.append(("delete", "Secret", name))
        return True

    def apply_secret_metadata(self, namespace: str, name: str, labels: Mapping[str, str],
                              annotations: Mapping[str, str], owners: list[dict[str, Any]]) -> None:
        """Server-side apply by METADATA_MANAGER: what it applied before and no longer applies goes."""
        self._write("apply", "Secret", name)
        obj = self.secret(namespace, name)
        if obj is None:
            raise GatewayError(f"apply metadata of secret {name}: 404 not found", 404)
        meta = obj["metadata"]
        before = next((e for e in meta.get("managedFields") or [] if e["manager"] == METADATA_MANAGER), None)
        fields = (before or {}).get("fieldsV1", {}).get("f:metadata", {})
        for kind, wanted in (("labels", labels), ("annotations", annotations)):
            current = meta.setdefault(kind, {})
            for key in [k[2:] for k in fields.get(f"f:{kind}", {})]:
                if key not in wanted:
                    current.pop(key, None)
            current.update(wanted)
        owned_uids = {k for k in fields.get("f:ownerReferences", {})}
        kept = [o for o in meta.get("ownerReferences") or [] if f'k:{{"uid":"{o["uid"]}"}}' not in owned_uids]
        meta["ownerReferences"] = kept + copy.deepcopy(owners)
        entry = {"manager": METADATA_MANAGER, "operation": "Apply", "fieldsV1": {"f:metadata": {
            "f:labels": {f"f:{k}": {} for k in labels},
            "f:annotations": {f"f:{k}": {} for k in annotations},
            **({"f:ownerReferences": {f'k:{{"uid":"{o["uid"]}"}}': {} for o in owners}} if owners else {}),
        }}}
        meta["managedFields"] = [e for e in meta.get("managedFields") or [] if e["manager"] != METADATA_MANAGER]
        meta["managedFields"].append(entry)
        self._done("apply", "Secret", name, obj)

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(("ConfigMap", namespace, name))
        return copy.deepcopy(obj) if obj else None

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> None:
        name = str(body["metadata"]["name"])
        self._write("create", "ConfigMap", name)
        if ("ConfigMap", namespace, name) in self.objects:
            raise Conflict(f"create configmap {name}: 409 already exists", 409)
        obj = copy.deepcopy(dict(body))
        self.objects[("ConfigMap", namespace, name)] = obj
        self._done("create", "ConfigMap", name, obj)

    def patch_configmap(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self._write("patch", "ConfigMap", name)
        obj = self._guard(self.objects.get(("ConfigMap", namespace, name)), "", f"patch configmap {name}")
        merged = apply_merge_patch(obj, copy.deepcopy(dict(patch)))
        obj.clear()
        obj.update(merged)
        self._done("patch", "ConfigMap", name, obj)

    def read_storagecluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(("StorageCluster", namespace, name))
        return copy.deepcopy(obj) if obj else None

    def count_storagenodes(self, namespace: str) -> int:
        return sum(1 for kind, ns, _ in self.objects if kind == "StorageNode" and ns == namespace)

    def list_storagenodes(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for (kind, ns, _), obj in sorted(self.objects.items())
                if kind == "StorageNode" and ns == namespace]

    def list_token_secrets(self, namespace: str) -> dict[str, str]:
        self.reads.append(("list", "Secret", ""))
        return {name: obj["data"]["auth-token"].decode("ascii", "replace")
                for (kind, ns, name), obj in sorted(self.objects.items())
                if kind == "Secret" and ns == namespace and obj.get("data", {}).get("auth-token")}

    def patch_storagecluster(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self._write("patch", "StorageCluster", name)
        current = self.objects.get(("StorageCluster", namespace, name))
        guard = str((patch.get("metadata") or {}).get("resourceVersion", ""))
        obj = self._guard(current, guard, f"patch storagecluster {name}")
        body = copy.deepcopy(dict(patch))
        body.get("metadata", {}).pop("resourceVersion", None)
        merged = apply_merge_patch(obj, body)
        obj.clear()
        obj.update(merged)
        self._done("patch", "StorageCluster", name, obj)

    def event(self, cr: CRRef, type_: str, reason: str, message: str) -> None:
        self.events.append(Recorded(type_, reason, message))
