"""What the reconcile steps share about the objects they write: owner references to the PxSecurity, the
metadata of Secrets they generate (applied by a field manager that never owns `data`, removing what it no
longer wants), and the PxSecurity's reference for Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pxsec.gateway import METADATA_MANAGER, CRRef, GatewayPort
from pxsec.keyplan import Observed


def owner_reference(cr: Mapping[str, Any], controller: bool = True) -> dict[str, Any]:
    """An owner reference to the PxSecurity. `controller=False` where another controller may own the
    object too (the Portworx Operator owns px-admin-token / px-user-token by its StorageCluster, and an
    object may have only one controller reference)."""
    meta = cr["metadata"]
    return {"apiVersion": cr["apiVersion"], "kind": cr["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": True}


def owned_metadata_keys(managed_fields: list[Mapping[str, Any]] | None,
                        manager: str) -> tuple[set[str], set[str], bool]:
    """(labels, annotations, owns-ownerReferences) the metadata field manager applied last time."""
    labels: set[str] = set()
    annotations: set[str] = set()
    owners = False
    for entry in managed_fields or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        meta = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
        labels |= {k[2:] for k in (meta.get("f:labels") or {}) if k.startswith("f:")}
        annotations |= {k[2:] for k in (meta.get("f:annotations") or {}) if k.startswith("f:")}
        owners = owners or bool(meta.get("f:ownerReferences"))
    return labels, annotations, owners


def sync_metadata(gw: GatewayPort, ns: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str],
                  owners: list[dict[str, Any]], observed: Observed | None = None) -> None:
    """Make a generated Secret's labels, annotations and owner references exactly what the spec asks,
    removing what an earlier template applied and no longer does — writing only when something differs.
    `observed` saves a read when it came from one; after a write the Secret is read again."""
    if observed is None or observed.metadata is None:
        observed = gw.read_secret(ns, name)
    if observed is None or observed.metadata is None:
        return
    meta = observed.metadata
    own_labels, own_annotations, own_owners = owned_metadata_keys(meta.get("managedFields"), METADATA_MANAGER)
    current_labels = meta.get("labels") or {}
    current_annotations = meta.get("annotations") or {}
    current_owner_uids = {o.get("uid") for o in meta.get("ownerReferences") or []}
    in_sync = (
        own_labels == set(labels) and own_annotations == set(annotations)
        and all(current_labels.get(k) == v for k, v in labels.items())
        and all(current_annotations.get(k) == v for k, v in annotations.items())
        and own_owners == bool(owners)
        and all(o["uid"] in current_owner_uids for o in owners)
    )
    if not in_sync:
        gw.apply_secret_metadata(ns, name, labels, annotations, owners)


def cr_ref(cr: Mapping[str, Any]) -> CRRef:
    meta = cr["metadata"]
    return CRRef(str(meta["namespace"]), str(meta["name"]), str(meta.get("uid", "")))
