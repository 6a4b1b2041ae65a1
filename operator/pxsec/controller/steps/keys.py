"""The step that makes the key-material plan true: read each Secret, plan, generate what is missing (in
the calling worker thread, never on the event loop), write with guarded calls, and report status entries,
a KeysReady condition (and KeysRetained beside a StorageCluster with a deleteStrategy) and the Events worth
telling a person. Its product, the key Secrets' data by name, is what the token steps sign and verify with.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import coexist, conditions, keymaterial, keyplan, keypolicy
from pxsec.conditions import Condition
from pxsec.controller import fanout
from pxsec.controller.kube.gateway import Conflict, GatewayPort
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.metadata import Fixed, owner_reference, sync_metadata
from pxsec.events import Event
from pxsec.keyplan import Action, Observed, Origin, Recorded, SecretPlan
from pxsec.spec import PxSecuritySpec


@dataclass
class KeysOutcome:
    entries: list[dict[str, Any]] = field(default_factory=list)
    condition: Condition | None = None
    events: list[Event] = field(default_factory=list)
    data: dict[str, Mapping[str, bytes]] = field(default_factory=dict)  # secret name -> data, for signing
    retained: Condition | None = None  # KeysRetained, when the StorageCluster has a deleteStrategy


def recorded_from_status(status: Mapping[str, Any] | None) -> dict[str, Recorded]:
    out: dict[str, Recorded] = {}
    for entry in (status or {}).get("secrets") or []:
        try:
            out[str(entry["name"])] = Recorded(str(entry["fingerprint"]), int(entry["revision"]),
                                               str(entry.get("origin", "")))
        except (KeyError, TypeError, ValueError):
            continue
    return out


class KeySync(BaseStep):
    """Writes the key Secrets (create-only, guarded adds); its product is their data, to sign and verify with."""

    name = "keys"
    condition = conditions.KEYS_READY
    needs = ("storagecluster", "rotation")
    fields = ("secrets",)

    def run(self, ctx: Context) -> Outcome:
        out = self.sync(ctx.cr, ctx.spec, ctx.product("storagecluster").coexistence)
        return Outcome(conditions=[c for c in (out.condition,) if c is not None],
                       informational=[c for c in (out.retained,) if c is not None],
                       status={"secrets": out.entries}, events=out.events, product=out.data)

    def sync(self, cr: Mapping[str, Any], spec: PxSecuritySpec,
             co: coexist.Coexistence | None = None) -> KeysOutcome:
        co = co or coexist.Coexistence()
        meta = cr["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        recorded = recorded_from_status(cr.get("status"))
        owner = owner_reference(cr) if spec.deletion_policy == "Delete" else None
        out = KeysOutcome()
        copy = _RetainedCopy(self.gw, ns, coexist.retained_secret_name(name))
        invalid: list[str] = []
        lost: list[str] = []
        unretained: list[str] = []
        notes: list[str] = []
        reqs = keyplan.requirements(spec)
        # The Secrets do not depend on each other: read, plan and write each at once (`fanout`), then take
        # the results in the requirements' order, so status, Events and conditions read as before.
        scratch = [KeysOutcome() for _ in reqs]
        ensured = fanout.run_all([functools.partial(self._ensure, ns, name, req, recorded.get(req.name), spec,
                                                    news, co, copy) for req, news in zip(reqs, scratch, strict=True)])
        for req, news, (observed, plan) in zip(reqs, scratch, ensured, strict=True):
            out.events += news.events
            shared = req.name in co.shared_secrets
            prev = recorded.get(req.name)
            if plan.action is Action.INVALID:
                invalid.append(f"Secret {req.name}: {'; '.join(plan.problems)}")
                if observed is not None:
                    out.entries.append(self._entry(req, observed, plan, prev.revision if prev else 1, co))
                continue
            if plan.action is Action.STAND_ASIDE:
                if observed is None:
                    unretained.append(req.name)
                    if prev is not None:
                        out.entries.append(self._recorded_entry(req, prev, co))
                    continue
                out.data[req.name] = observed.data
                out.entries.append(self._entry(req, observed, plan, prev.revision if prev else 1, co))
                continue
            assert observed is not None
            if plan.lost:
                lost.append(req.name)
            notes += [f"Secret {req.name}: {note}" for note in plan.notes]
            fp = keyplan.secret_fingerprint(req, observed.data)
            revision, changed = keypolicy.revision(prev, fp, plan.lost)
            out.events += keypolicy.news(req, revision, fp, lost=plan.lost,
                                         changed_by_hand=changed and plan.action is Action.NONE)
            if plan.origin is Origin.GENERATED and not shared:
                self._sync_metadata(ns, name, req, spec, owner, observed)
            out.data[req.name] = observed.data
            out.entries.append(self._entry(req, observed, plan, revision, co, fingerprint=fp))
        if co.retained and co.cluster is not None and not co.cluster.deleting:
            copy.keep(coexist.retained_data(out.data, co.retained, {r.name: r.keys for r in
                                                                     keyplan.requirements(spec)}),
                      name, owner)
        out.retained = coexist.retained_condition(co, copy.name, unretained)
        previous: Mapping[str, Any] = next((c for c in (cr.get("status") or {}).get("conditions") or []
                                            if c.get("type") == conditions.KEYS_READY), {})
        out.condition = keypolicy.keys_condition(
            invalid=invalid, uninstalled=unretained, storagecluster=co.cluster.name if co.cluster else "",
            ignored=coexist.system_secret_problem(spec, co), lost=lost, notes=notes, count=len(out.entries),
            previous=previous, generation=cr["metadata"].get("generation"))
        return out

    def _ensure(self, ns: str, cr_name: str, req: keyplan.Requirement, recorded: Recorded | None,
                spec: PxSecuritySpec, out: KeysOutcome, co: coexist.Coexistence,
                copy: _RetainedCopy) -> tuple[Observed | None, SecretPlan]:
        """Plan and execute for one Secret; on a write race re-read and re-plan (existing wins)."""
        shared = req.name in co.shared_secrets
        for _attempt in range(3):
            observed = self.gw.read_secret(ns, req.name)
            retained = None
            if observed is None and co.targeted and req.name in coexist.UNINSTALL_DELETES:
                retained = coexist.from_retained(copy.read(), req.name, req.keys)
            plan = keyplan.plan_secret(req, observed, recorded, spec, shared=shared,
                                       aside=req.name in co.standing_aside, retained=retained)
            # The Portworx Operator's shape on the Secrets it shares, or else only our constant markers
            # (template metadata and the owner reference are applied right after under the metadata
            # field manager, so that later template or policy changes can remove what they no longer want).
            labels, annotations = (({}, dict(coexist.SHARED_ANNOTATIONS)) if shared
                                   else keyplan.desired_metadata(cr_name, req.purpose.value, {}, {}))
            try:
                if plan.action is Action.STAND_ASIDE:
                    return (Observed(req.name, plan.restore) if plan.restore else None), plan
                if plan.action in (Action.CREATE, Action.RESTORE):
                    data = dict(plan.restore) if plan.action is Action.RESTORE else keymaterial.materialize(
                        plan.recipes, {})
                    if plan.lost and not shared:
                        annotations = {**annotations, **keyplan.regenerated_mark(recorded)}
                    created = self.gw.create_secret(ns, req.name, data, labels, annotations)
                    if plan.action is Action.RESTORE:
                        out.events.append(Event("Normal", "SecretRestored", (
                            f"recreated Secret {req.name} ({req.purpose.value}) with its previous values from "
                            f"Secret {copy.name} after the StorageCluster uninstall: same keys, tokens stay valid")))
                    elif not plan.lost:
                        out.events.append(Event("Normal", "SecretGenerated",
                                                f"generated Secret {req.name} ({req.purpose.value}) "
                                                f"with keys {', '.join(sorted(data))}"))
                    return created, plan
                if plan.action is Action.ADD_KEYS:
                    assert observed is not None
                    added = keymaterial.materialize(plan.recipes, observed.data)
                    self.gw.add_secret_keys(ns, req.name, added, observed.resource_version)
                    out.events.append(Event("Normal", "KeysAdded",
                                            f"added missing keys {', '.join(sorted(added))} to Secret {req.name}"))
                    merged = {**observed.data, **added}
                    return Observed(req.name, merged, observed.labels, observed.annotations), plan
                return observed, plan
            except Conflict:
                continue  # someone wrote it meanwhile: read again, what exists wins
        raise Conflict(f"Secret {req.name} kept changing while being reconciled", 409)

    def _sync_metadata(self, ns: str, cr_name: str, req: keyplan.Requirement, spec: PxSecuritySpec,
                       owner: dict[str, Any] | None, observed: Observed) -> None:
        labels, annotations = keyplan.desired_metadata(
            cr_name, req.purpose.value, spec.secret_template.labels, spec.secret_template.annotations)
        markers = keyplan.desired_metadata(cr_name, req.purpose.value, {}, {})  # what the create wrote
        sync_metadata(self.gw, ns, req.name, labels, annotations, [owner] if owner else [], observed,
                      fixed=Fixed(*markers))

    @staticmethod
    def _notes(req: keyplan.Requirement, plan: SecretPlan, co: coexist.Coexistence) -> list[str]:
        notes = list(plan.notes)
        if req.name in co.shared_secrets:
            notes.append(coexist.SHARED_NOTE)
        if plan.action is Action.STAND_ASIDE:
            notes.append("deleted by the StorageCluster's uninstall; recreated with the same values when it is over")
        return notes

    @classmethod
    def _entry(cls, req: keyplan.Requirement, observed: Observed, plan: SecretPlan, revision: int,
               co: coexist.Coexistence, fingerprint: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": req.name,
            "purpose": req.purpose.value,
            "keys": sorted(k for k in observed.data if k in req.keys),
            "fingerprint": fingerprint or keyplan.secret_fingerprint(req, observed.data),
            "origin": plan.origin.value,
            "revision": revision,
        }
        if req.name in co.shared_secrets:
            entry["sharedWith"] = coexist.PORTWORX_OPERATOR
        notes = cls._notes(req, plan, co)
        if notes:
            entry["notes"] = notes
        return entry

    @staticmethod
    def _recorded_entry(req: keyplan.Requirement, prev: Recorded, co: coexist.Coexistence) -> dict[str, Any]:
        """A Secret that is gone for now (uninstall running, no copy): what status knew of it."""
        entry: dict[str, Any] = {"name": req.name, "purpose": req.purpose.value, "keys": [],
                                 "fingerprint": prev.fingerprint, "origin": prev.origin or Origin.GENERATED.value,
                                 "revision": prev.revision,
                                 "notes": ["deleted by the StorageCluster's uninstall, no copy of its values"]}
        if req.name in co.shared_secrets:
            entry["sharedWith"] = coexist.PORTWORX_OPERATOR
        return entry


class _RetainedCopy:
    """Our own Secret holding the values a StorageCluster uninstall deletes (`pxsec.coexist`): read at
    most once per reconcile (the key Secrets are ensured at once, so under a lock), written only when the
    values it should hold differ from what it holds."""

    def __init__(self, gw: GatewayPort, namespace: str, name: str) -> None:
        self.gw, self.namespace, self.name = gw, namespace, name
        self._observed: Observed | None = None
        self._read = False
        self._lock = threading.Lock()

    def read(self) -> Mapping[str, bytes]:
        with self._lock:
            if not self._read:
                self._observed = self.gw.read_secret(self.namespace, self.name)
                self._read = True
        return self._observed.data if self._observed is not None else {}

    def keep(self, values: Mapping[str, bytes], cr_name: str, owner: dict[str, Any] | None) -> None:
        if not values:
            return
        have = self.read()
        if all(have.get(k) == v for k, v in values.items()):
            return
        if self._observed is None:
            labels, annotations = keyplan.desired_metadata(cr_name, RETAINED_PURPOSE, {}, {})
            self.gw.create_secret(self.namespace, self.name, values, labels, annotations,
                                  owners=[owner] if owner else [])
        else:
            self.gw.update_secret_data(self.namespace, self.name, values, {}, self._observed.resource_version)


RETAINED_PURPOSE = "retained-copy"
