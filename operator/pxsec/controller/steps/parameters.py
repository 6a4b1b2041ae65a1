"""The step for initialization parameters: write the renderings into one ConfigMap per PxSecurity
(owned by it). Merging them into a StorageCluster is `StorageClusterSync`'s job.

The ConfigMap holds exactly `render.render_all(...)`, the same pure function `pxsec render` prints, so
the offline CLI and the operator cannot disagree. Nothing is written when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import conditions, render
from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import Conflict
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.metadata import owner_reference
from pxsec.events import Event
from pxsec.keyplan import MANAGED_BY, MANAGED_BY_LABEL, OWNER_LABEL
from pxsec.spec import PxSecuritySpec


@dataclass
class ParamsOutcome:
    configmap: str = ""
    hash: str = ""
    conditions: list[Condition] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class ParameterSync(BaseStep):
    """Writes the rendered parameters into the one ConfigMap of the PxSecurity (owned by it)."""

    name = "parameters"
    condition = conditions.PARAMETERS_RENDERED
    needs = ("rotation",)  # the rendered parameters name the keys a rotation keeps
    fields = ("parameters",)

    def run(self, ctx: Context) -> Outcome:
        out = self.sync(ctx.cr, ctx.spec)
        return Outcome(conditions=out.conditions, events=out.events,
                       status={"parameters": {"configMapName": out.configmap, "hash": out.hash}})

    def sync(self, cr: Mapping[str, Any], spec: PxSecuritySpec) -> ParamsOutcome:
        meta = cr["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        data = render.render_all(spec, ns, cr_name=name)
        out = ParamsOutcome(configmap=render.configmap_name(name), hash=render.content_hash(data))
        self._write_configmap(cr, out.configmap, data)
        out.conditions.append(conditions.true(
            conditions.PARAMETERS_RENDERED, "Rendered",
            f"ConfigMap {out.configmap} holds the parameters for {', '.join(render.TARGETS)}"))
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
        patch: dict[str, Any] = {}
        have = current.get("data") or {}
        if have != dict(data):
            patch_data: dict[str, Any] = dict(data)
            patch_data.update({k: None for k in have if k not in data})
            patch["data"] = patch_data
        owners = adopted(current, cr)
        if owners is not None:
            patch["metadata"] = {"ownerReferences": owners}
        if patch:
            self.gw.patch_configmap(ns, cm_name, patch)


def adopted(current: Mapping[str, Any], cr: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The owner references that make this PxSecurity the ConfigMap's owner, or None when it already is.

    A PxSecurity deleted and applied again (GitOps does this) has a new uid while its ConfigMap still names
    the old one: left so, the garbage collector deletes the ConfigMap a moment later, and the parameters are
    gone until the next reconcile writes them again. Taking it over replaces the references to the older
    PxSecurity objects of that name and keeps anyone else's."""
    mine = owner_reference(cr)
    refs = list((current.get("metadata") or {}).get("ownerReferences") or [])
    if any(r.get("uid") == mine["uid"] for r in refs):
        return None
    return [r for r in refs if not (r.get("kind") == mine["kind"] and r.get("name") == mine["name"])] + [mine]
