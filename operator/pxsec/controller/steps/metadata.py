"""What the reconcile steps share about the objects they write: owner references to the PxSecurity, the
metadata of Secrets they generate (applied by a field manager that never owns `data`, removing what it no
longer wants), and the PxSecurity's reference for Events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec.controller.kube.gateway import METADATA_MANAGER, CRRef, GatewayPort
from pxsec.keyplan import Observed


def owner_reference(cr: Mapping[str, Any], controller: bool = True) -> dict[str, Any]:
    """An owner reference to the PxSecurity. `controller=False` where another controller may own the
    object too (the Portworx Operator owns px-admin-token / px-user-token by its StorageCluster, and an
    object may have only one controller reference)."""
    meta = cr["metadata"]
    return {"apiVersion": cr["apiVersion"], "kind": cr["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": True}


def owned_metadata_keys(managed_fields: list[Mapping[str, Any]] | None,
                        manager: str) -> tuple[set[str], set[str], set[str]]:
    """(labels, annotations, owner reference UIDs) the metadata field manager applied last time. An owner
    reference appears in managedFields as `k:{"uid":"..."}` (its list-map key)."""
    labels: set[str] = set()
    annotations: set[str] = set()
    owners: set[str] = set()
    for entry in managed_fields or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        meta = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
        labels |= {k[2:] for k in (meta.get("f:labels") or {}) if k.startswith("f:")}
        annotations |= {k[2:] for k in (meta.get("f:annotations") or {}) if k.startswith("f:")}
        for key in meta.get("f:ownerReferences") or {}:
            if key.startswith("k:"):
                try:
                    owners.add(str(json.loads(key[2:]).get("uid", "")))
                except (ValueError, AttributeError):
                    continue
    return labels, annotations, owners


def sync_metadata(gw: GatewayPort, ns: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str],
                  owners: list[dict[str, Any]], observed: Observed | None = None, *,
                  fixed: Fixed | None = None) -> None:
    """Make a generated Secret's labels, annotations and owner references exactly what the spec asks,
    removing what an earlier template applied and no longer does — writing only when something differs.

    `observed` saves a read (it may be the response to our own create or update). `fixed` is what the
    create already wrote and never changes (our constant markers, a token's owner reference): it needs no
    ownership by the metadata manager, so a Secret created with it and nothing else to apply costs no
    second write. Everything else (template entries, a deletionPolicy owner reference) is server-side
    applied, so that the manager owns it and a later apply can remove it."""
    if observed is None or observed.metadata is None:
        observed = gw.read_secret(ns, name)
    if observed is None or observed.metadata is None:
        return
    fixed = fixed or Fixed()
    meta = observed.metadata
    own_labels, own_annotations, own_owners = owned_metadata_keys(meta.get("managedFields"), METADATA_MANAGER)
    current_labels = meta.get("labels") or {}
    current_annotations = meta.get("annotations") or {}
    current_owner_uids = {o.get("uid") for o in meta.get("ownerReferences") or []}
    applied_owners = {o["uid"] for o in owners} - {o["uid"] for o in fixed.owners}
    in_sync = (
        own_labels - set(fixed.labels) == set(labels) - set(fixed.labels)
        and own_annotations - set(fixed.annotations) == set(annotations) - set(fixed.annotations)
        and all(current_labels.get(k) == v for k, v in labels.items())
        and all(current_annotations.get(k) == v for k, v in annotations.items())
        and own_owners - {o["uid"] for o in fixed.owners} == applied_owners
        and all(o["uid"] in current_owner_uids for o in owners)
    )
    if not in_sync:
        gw.apply_secret_metadata(ns, name, labels, annotations, owners)


@dataclass(frozen=True)
class Fixed:
    """Metadata a Secret was created with that never changes for its purpose: no apply has to own it."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[dict[str, Any], ...] = ()


def cr_ref(cr: Mapping[str, Any]) -> CRRef:
    meta = cr["metadata"]
    return CRRef(str(meta["namespace"]), str(meta["name"]), str(meta.get("uid", "")))
