"""The step that reads the targeted StorageCluster (through the store: a no-op reconcile asks nothing) and
decides who writes what beside the Portworx Operator (`pxsec.coexist.plan`). It writes nothing; every
later step that shares objects with the Portworx Operator needs its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec import caveats, coexist, conditions
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.events import Event
from pxsec.spec import PxSecuritySpec


@dataclass(frozen=True)
class Seen:
    """The product: the StorageCluster as read (None: absent or not targeted) and the split of work."""

    body: Mapping[str, Any] | None
    coexistence: coexist.Coexistence


def storagecluster_name(spec: PxSecuritySpec, cr_name: str) -> str:
    return spec.storage_cluster.name or cr_name


def storagecluster_status(co: coexist.Coexistence) -> dict[str, Any] | None:
    """`status.storageCluster`: what the targeted StorageCluster tells Portworx (names, never values)."""
    sc = co.cluster
    if sc is None:
        return None
    optional = {"issuer": sc.issuer, "sharedSecret": sc.shared_secret, "deleteStrategy": sc.delete_strategy,
                "deleting": sc.deleting or None}
    return {"name": sc.name, "exists": sc.exists, "securityEnabled": sc.auth_enabled,
            **{k: v for k, v in optional.items() if v is not None}}


class StorageClusterCheck(BaseStep):
    name = "storagecluster"
    condition = conditions.STORAGECLUSTER_APPLIED
    fields = ("storageCluster", "warnings")

    def run(self, ctx: Context) -> Outcome:
        spec = ctx.spec
        body = (self.gw.read_storagecluster(ctx.namespace, storagecluster_name(spec, ctx.name))
                if spec.storage_cluster.targeted else None)
        co = coexist.plan(spec, ctx.name, body)
        sc = co.cluster
        said = (caveats.caveats(spec, sc.issuer, sc.shared_secret) if sc is not None and sc.auth_enabled
                else caveats.caveats(spec))
        # `status.warnings`: what Portworx will not give as written; a Warning Event when one first appears.
        before = ctx.old_status.get("warnings") or []
        events = [Event("Warning", "SpecCaveat", text) for text in said if text not in before]
        return Outcome(status={"storageCluster": storagecluster_status(co), "warnings": said or None},
                       events=events, product=Seen(body, co))
