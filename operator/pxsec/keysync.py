"""The shell step that makes the key-material plan true: read each Secret, plan, generate what is
missing (in the calling worker thread, never on the event loop), write with guarded calls, and report
status entries, a KeysReady condition and the Events worth telling a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import coexist, conditions, keyplan
from pxsec.conditions import Condition
from pxsec.gateway import METADATA_MANAGER, Conflict, CRRef, GatewayPort
from pxsec.keyplan import Action, Observed, Origin, Recorded, SecretPlan
from pxsec.spec import PxSecuritySpec


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


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


class KeySync:
    def __init__(self, gateway: GatewayPort) -> None:
        self.gw = gateway

    def run(self, cr: Mapping[str, Any], spec: PxSecuritySpec,
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
        for req in keyplan.requirements(spec):
            shared = req.name in co.shared_secrets
            observed, plan = self._ensure(ns, name, req, recorded.get(req.name), spec, out, co, copy)
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
            fp = keyplan.secret_fingerprint(req, observed.data)
            revision, changed = keyplan.next_revision(prev, fp)
            if plan.lost:
                revision = (prev.revision if prev else 0) + 1
                out.events.append(Event("Warning", "SecretLost", (
                    f"Secret {req.name} ({req.purpose.value}) was deleted and has been regenerated as revision "
                    f"{revision} ({fp[:19]}…): every token signed with the previous key is now invalid; "
                    "restart Portworx pods to pick up the new value")))
            elif changed and plan.action is Action.NONE:
                out.events.append(Event("Warning", "SecretChanged", (
                    f"Secret {req.name} ({req.purpose.value}) changed outside the operator: now revision "
                    f"{revision} ({fp[:19]}…); tokens signed with it are re-minted")))
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
        generation = cr["metadata"].get("generation")
        ignored = coexist.system_secret_problem(spec, co)
        if invalid:
            out.condition = conditions.false(conditions.KEYS_READY, "InvalidKeyMaterial", " | ".join(invalid))
        elif ignored:
            out.condition = conditions.false(conditions.KEYS_READY, "SystemSecretIgnored", ignored)
        elif unretained:
            out.condition = conditions.false(
                conditions.KEYS_READY, "StorageClusterUninstalling",
                f"{', '.join(unretained)} deleted by the uninstall of StorageCluster "
                f"{co.cluster.name if co.cluster else ''} and no copy of their values: generated again when "
                "the uninstall is over")
        elif lost:
            out.condition = conditions.true(
                conditions.KEYS_READY, "SecretRegenerated",
                f"regenerated after loss: {', '.join(lost)} (tokens signed with the old keys are invalid)")
        elif previous.get("reason") == "SecretRegenerated" and previous.get("observedGeneration") == generation:
            # The news of a loss stays visible on the object until the spec next changes,
            # not just for the one reconcile that noticed it.
            out.condition = conditions.true(conditions.KEYS_READY, "SecretRegenerated", str(previous.get("message")))
        else:
            out.condition = conditions.true(conditions.KEYS_READY, "KeysReady",
                                            f"{len(out.entries)} Secret(s) hold the key material")
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
                    data = dict(plan.restore) if plan.action is Action.RESTORE else keyplan.materialize(
                        plan.recipes, {})
                    self.gw.create_secret(ns, req.name, data, labels, annotations)
                    if plan.action is Action.RESTORE:
                        out.events.append(Event("Normal", "SecretRestored", (
                            f"recreated Secret {req.name} ({req.purpose.value}) with its previous values from "
                            f"Secret {copy.name} after the StorageCluster uninstall: same keys, tokens stay valid")))
                    elif not plan.lost:
                        out.events.append(Event("Normal", "SecretGenerated",
                                                f"generated Secret {req.name} ({req.purpose.value}) "
                                                f"with keys {', '.join(sorted(data))}"))
                    return Observed(req.name, data, labels, annotations), plan
                if plan.action is Action.ADD_KEYS:
                    assert observed is not None
                    added = keyplan.materialize(plan.recipes, observed.data)
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
        sync_metadata(self.gw, ns, req.name, labels, annotations, [owner] if owner else [], observed)

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
    most once per reconcile, written only when the values it should hold differ from what it holds."""

    def __init__(self, gw: GatewayPort, namespace: str, name: str) -> None:
        self.gw, self.namespace, self.name = gw, namespace, name
        self._observed: Observed | None = None
        self._read = False

    def read(self) -> Mapping[str, bytes]:
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
