"""The step for initialization parameters: write the renderings into one ConfigMap per PxSecurity
(owned by it), and — only when `spec.storageCluster.apply` is set — merge the `storagecluster` rendering
into the named StorageCluster through `scmerge`, which leaves everything else the user set alone.

The ConfigMap holds exactly `render.render_all(...)`, the same pure function `pxsec render` prints, so
the offline CLI and the operator cannot disagree. Nothing is written when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import coexist, conditions, render, scmerge
from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import Conflict
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.metadata import owner_reference
from pxsec.controller.steps.storagecluster import Seen, storagecluster_name
from pxsec.events import Event
from pxsec.keyplan import MANAGED_BY, MANAGED_BY_LABEL, OWNER_LABEL
from pxsec.spec import PxSecuritySpec


@dataclass
class ParamsOutcome:
    configmap: str = ""
    hash: str = ""
    conditions: list[Condition] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    patched: bool = False  # the StorageCluster was written: what the steps saw of it is the old one


class ParameterSync(BaseStep):
    """Writes the rendered parameters into the ConfigMap and, with `apply: true`, merges them into the
    StorageCluster (read by `StorageClusterCheck`, so the merge starts from what this reconcile saw)."""

    name = "parameters"
    condition = conditions.PARAMETERS_RENDERED
    needs = ("storagecluster",)
    fields = ("parameters",)

    def run(self, ctx: Context) -> Outcome:
        seen: Seen = ctx.product("storagecluster")
        out = self.sync(ctx.cr, ctx.spec, seen.coexistence, seen.body)
        # After a merge into the StorageCluster, look again at once: this reconcile judged (status.storageCluster,
        # TokensAccepted) the StorageCluster as it was before the merge, and the echo of our own write wakes nobody.
        return Outcome(conditions=out.conditions, events=out.events, wake=ctx.now if out.patched else None,
                       status={"parameters": {"configMapName": out.configmap, "hash": out.hash}})

    def sync(self, cr: Mapping[str, Any], spec: PxSecuritySpec, co: coexist.Coexistence | None = None,
             storagecluster: Mapping[str, Any] | None = None) -> ParamsOutcome:
        """`storagecluster`: the StorageCluster as the reconcile already read it (saves a GET)."""
        meta = cr["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        data = render.render_all(spec, ns, cr_name=name)
        out = ParamsOutcome(configmap=render.configmap_name(name), hash=render.content_hash(data))
        self._write_configmap(cr, out.configmap, data)
        out.conditions.append(conditions.true(
            conditions.PARAMETERS_RENDERED, "Rendered",
            f"ConfigMap {out.configmap} holds the parameters for {', '.join(render.TARGETS)}"))
        if spec.storage_cluster.apply:
            sc = co.cluster if co is not None else None
            if sc is not None and sc.exists and sc.deleting:
                # Its finalizer holds it while the Portworx Operator uninstalls: writing it now would
                # only race the uninstall.
                out.conditions.append(conditions.false(
                    conditions.STORAGECLUSTER_APPLIED, "StorageClusterDeleting",
                    f"StorageCluster {sc.name} is being deleted: nothing is applied to it"))
            else:
                out.conditions.append(self._apply(ns, name, spec, out, storagecluster, read=co is not None))
        return out

    def _write_configmap(self, cr: Mapping[str, Any], cm_name: str, data: Mapping[str, str]) -> None:
        ns, name = str(cr["metadata"]["namespace"]), str(cr["metadata"]["name"])
        current = self.gw.read_configmap(ns, cm_name)
        labels = {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: name}
        if current is None:
            try:
                self.gw.create_configmap(ns, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": cm_name, "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner_reference(cr)]},
                    "data": dict(data),
                })
                return
            except Conflict:  # it exists after all (created meanwhile): compare with it instead
                current = self.gw.read_configmap(ns, cm_name)
                if current is None:
                    raise
        have = current.get("data") or {}
        if have == dict(data):
            return
        patch_data: dict[str, Any] = dict(data)
        patch_data.update({k: None for k in have if k not in data})
        self.gw.patch_configmap(ns, cm_name, {"data": patch_data})

    def _apply(self, ns: str, cr_name: str, spec: PxSecuritySpec, out: ParamsOutcome,
               first: Mapping[str, Any] | None, read: bool) -> Condition:
        """`first`: the StorageCluster as already read this reconcile (`read`: it was, None = absent)."""
        sc_name = storagecluster_name(spec, cr_name)
        rendered = render.render(spec, ns, "storagecluster", cr_name=cr_name)
        for attempt in range(3):
            existing = first if attempt == 0 and read else self.gw.read_storagecluster(ns, sc_name)
            if existing is None:  # its appearance is a watch event that wakes us
                return conditions.false(
                    conditions.STORAGECLUSTER_APPLIED, "WaitingForStorageCluster",
                    f"StorageCluster {sc_name} does not exist yet; the settings are applied when it appears")
            result = scmerge.merge(existing, rendered)
            if result.patch is not None:
                try:
                    self.gw.patch_storagecluster(ns, sc_name, result.patch)
                except Conflict:
                    continue  # changed since we read it: read again and merge again
                out.patched = True
                out.events.append(Event("Normal", "StorageClusterUpdated",
                                        f"merged the security settings into StorageCluster {sc_name}"))
            if result.conflicts:
                return conditions.false(conditions.STORAGECLUSTER_APPLIED, "Conflict", "; ".join(result.conflicts))
            return conditions.true(conditions.STORAGECLUSTER_APPLIED, "Applied",
                                   f"StorageCluster {sc_name} carries the rendered security settings")
        raise Conflict(f"StorageCluster {sc_name} kept changing while being updated", 409)
