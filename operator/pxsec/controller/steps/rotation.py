"""The step that moves key rotations on — the asymmetric signing key (`pxsec.rotation`) and the shared secret
(`pxsec.sharedrotation`) — and hands the later steps the spec that carries them out: the slots and the shared
secret name the plans' Secrets (KeySync makes a new one, ParameterSync and StorageClusterSync give it to
Portworx, through approval on a running cluster), tokens are signed with the plan's key (TokenSync), and
NodesAcknowledged asks the nodes about each key (and counts towards Ready while a rotation runs).

It reads only what earlier reconciles and the watches already know: the StorageCluster (what it mounts, its
rollout), the PxSecurity's own status (a waiting change, what the nodes answered, which key signed each
token) and the StorageNodes. It writes `status.rotation`, says when a rotation starts and completes, and
settles the Secrets of keys no Portworx pod mounts any more: deleted under `deletionPolicy: Delete` (they
carry our owner reference: the garbage collector would delete them with the PxSecurity anyway), kept and
said under Retain. Without `spec.rotation` and with no rotation on record it does nothing and the spec
passes through unchanged; with one on record it keeps the keys rotations made (starting none).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec import conditions, rotation, sharedrotation, tokens
from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import GatewayError
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.storagecluster import Seen
from pxsec.events import Event
from pxsec.spec import KeyRotation, PxSecuritySpec

DELETE_GRANT = ("the optional RBAC piece manifests/optional/delete-secrets (chart: rbac.deleteSecrets) lets it "
                "delete a Secret")


@dataclass(frozen=True)
class Rotations:
    """The product: the plans later steps follow (None: that kind of rotation does not apply)."""

    keys: rotation.Plan | None = None
    shared: sharedrotation.Plan | None = None

    @property
    def waiting_for_nodes(self) -> bool:
        """A rotation waits on the nodes' answer: NodesAcknowledged is then part of Ready."""
        return bool((self.keys and self.keys.state.phase in rotation.WAITING_FOR_NODES)
                    or (self.shared and self.shared.state.phase in sharedrotation.WAITING_FOR_NODES))

    def awaited(self) -> list[str]:
        """The Secrets whose keys the nodes must accept for a rotation to move on."""
        out = []
        if self.keys and self.keys.state.next and self.keys.state.phase in rotation.WAITING_FOR_NODES:
            out.append(self.keys.state.next.secret)
        if self.shared and self.shared.state.next and self.shared.state.phase in sharedrotation.WAITING_FOR_NODES:
            out.append(self.shared.state.next)
        return out


def acknowledged(status: Mapping[str, Any], secret: str) -> tuple[int, int] | None:
    """From `status.nodes`: the nodes that accept the key kept in `secret`, of all (None: not asked)."""
    nodes = status.get("nodes") or {}
    total = str(nodes.get("acknowledged") or "").partition("/")[2]
    label = f"(Secret {secret})"
    if not total.isdigit() or not any(label in str(k) for k in nodes.get("keys") or []):
        return None
    failing = sum(1 for row in nodes.get("notAcknowledging") or []
                  if row.get("unreachable") or any(label in str(k) for k in row.get("rejects") or []))
    return int(total) - failing, int(total)


def revoked(status: Mapping[str, Any], secret: str) -> tuple[int, int] | None:
    """From `status.nodes.revoked`: the nodes that reject the key kept in `secret`, of all."""
    row = (status.get("nodes") or {}).get("revoked") or {}
    if not isinstance(row, Mapping) or f"(Secret {secret})" not in str(row.get("key") or ""):
        return None
    rejecting, _, total = str(row.get("rejecting") or "").partition("/")
    return (int(rejecting), int(total)) if rejecting.isdigit() and total.isdigit() else None


def rollout_done(storagecluster: Mapping[str, Any] | None) -> bool:
    """The Portworx Operator's `Update` condition is not InProgress (or Failed): no restart is going on."""
    for cond in ((storagecluster or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Update":
            return cond.get("status") not in ("InProgress", "Failed")
    return True


def _lifetime(text: str | None) -> dt.timedelta | None:
    return tokens.parse_lifetime(text) if text else None


def _annotation(cr: Mapping[str, Any], name: str) -> str | None:
    value = ((cr.get("metadata") or {}).get("annotations") or {}).get(name)
    return str(value) if value else None


class KeyRotationStep(BaseStep):
    name = "rotation"
    condition = conditions.KEY_ROTATION
    needs = ("storagecluster",)
    fields = ("rotation",)

    def run(self, ctx: Context) -> Outcome:
        ss, old = ctx.spec.self_signed, ctx.old_status
        raw = old.get("rotation")
        recorded: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        state = rotation.read_state(old)
        shared_state = sharedrotation.read_state(recorded.get("sharedSecret"))
        if ss is None or (ctx.spec.rotation is None and not state.phase and not shared_state.phase):
            return Outcome(status={"rotation": None}, product=Rotations())
        policy_spec = ctx.spec.rotation or KeyRotation()
        # Triggers count only while spec.rotation asks for rotations; what rotations made is kept regardless.
        triggers = ctx.spec.rotation is not None
        seen: Seen = ctx.product("storagecluster")
        running = self.gw.count_storagenodes(ctx.namespace) > 0
        done = rollout_done(seen.body)
        waiting = bool(old.get("pendingChange"))
        out = Outcome()

        keys_plan = None
        key_trigger = _annotation(ctx.cr, rotation.ANNOTATION) if triggers else state.trigger or None
        if rotation.initial(ctx.spec) is not None or state.phase:
            keys_plan = self._keys(ctx, state, policy_spec, seen, running, done, waiting, key_trigger, triggers)
        nothing = []
        if keys_plan is None and triggers and key_trigger:
            nothing.append(f"{rotation.ANNOTATION} asks for a rotation of the signing key, but there is none to "
                           "rotate: it needs spec.selfSigned.rsa or .ecdsa")
        sc = seen.coexistence.cluster
        shared_next = shared_state.next
        shared_plan = sharedrotation.plan(ss.shared_secret, shared_state, sharedrotation.Observed(
            now=ctx.now,
            annotation=_annotation(ctx.cr, sharedrotation.ANNOTATION) if triggers else shared_state.trigger or None,
            given=sc.shared_secret if sc else None, rollout_done=done, awaiting_approval=waiting,
            acknowledged=acknowledged(old, shared_next) if shared_next else None, running=running))
        if shared_plan.message and not shared_plan.secret:
            nothing.append(f"{sharedrotation.ANNOTATION}: {shared_plan.message}")
        if nothing:
            out.informational.append(Condition(self.condition, False, "NothingToRotate", "; ".join(nothing)))

        ctx.spec = self._effective(ctx.spec, keys_plan, shared_plan)
        out.events += self._events(keys_plan, state, shared_plan, shared_state)
        out.events += self._settle(ctx, keys_plan, shared_plan)
        status: dict[str, Any] = {}
        if keys_plan is not None:
            nxt = keys_plan.state.next
            waits = nxt is not None and keys_plan.state.phase in rotation.WAITING_FOR_NODES
            status.update(rotation.write_state(
                keys_plan, acknowledged(old, nxt.secret) if waits and nxt else None,
                revoked(old, keys_plan.revoke.secret) if keys_plan.revoke else None) or {})
        shared_status = sharedrotation.write_state(
            shared_plan, acknowledged(old, shared_plan.state.next) if shared_plan.state.next else None)
        if shared_status:
            status["sharedSecret"] = shared_status
        out.status = {"rotation": status or None}
        wakes = [w for w in (keys_plan.wake if keys_plan else None, shared_plan.wake) if w is not None]
        if shared_plan.started or (keys_plan and keys_plan.started):
            # The later steps of this reconcile make what a started rotation waits for (a new Secret, a
            # change held for approval): looked at again at once, so that status.rotation says it.
            wakes.append(ctx.now)
        out.wake = min(wakes) if wakes else None
        out.product = Rotations(keys_plan, shared_plan if shared_plan.secret else None)
        return out

    def _keys(self, ctx: Context, state: rotation.State, spec_rotation: KeyRotation, seen: Seen, running: bool,
              done: bool, waiting: bool, trigger: str | None, triggers: bool) -> rotation.Plan:
        """`trigger`: the annotation's value (the one last used when `triggers` is off: nothing starts)."""
        old = ctx.old_status
        ss = ctx.spec.self_signed
        assert ss is not None
        sc = seen.coexistence.cluster
        slots = ((rotation.RSA, sc.rsa_key), (rotation.ECDSA, sc.ecdsa_key)) if sc else ()
        mounted_keys = tuple(rotation.Key(kind, k.secret) for kind, k in slots if k is not None and k.secret)
        nxt = state.next
        observed = rotation.Observed(
            now=ctx.now,
            annotation=trigger,
            mounted=frozenset(k.secret for k in mounted_keys),
            mounted_keys=mounted_keys,
            rollout_done=done,
            awaiting_approval=waiting,
            acknowledged=acknowledged(old, nxt.secret) if nxt else None,
            revoked=revoked(old, state.current.secret) if state.current and state.phase == rotation.REVOKING
            else None,
            running=running,
            resigned=nxt is not None and all(
                row.get("signingKey") == nxt.kind for row in old.get("tokens") or []
                if isinstance(row, Mapping) and "mintedBy" not in row and row.get("signingKey") != "SharedSecret"),
            longest_lifetime=tokens.parse_lifetime(ss.token_lifetime),
            created=rotation.parse_time((ctx.cr.get("metadata") or {}).get("creationTimestamp")),
        )
        policy = rotation.Rotation(every=_lifetime(spec_rotation.every) if triggers else None,
                                   grace=_lifetime(spec_rotation.grace_period), emergency=spec_rotation.emergency)
        return rotation.plan(ctx.spec, policy, state, observed)

    @staticmethod
    def _effective(spec: PxSecuritySpec, keys_plan: rotation.Plan | None,
                   shared_plan: sharedrotation.Plan) -> PxSecuritySpec:
        if keys_plan is not None:
            spec = rotation.effective(spec, keys_plan)
        ss = spec.self_signed
        if ss is not None and shared_plan.secret and shared_plan.secret != ss.shared_secret:
            spec = dataclasses.replace(spec, self_signed=dataclasses.replace(ss, shared_secret=shared_plan.secret))
        return spec

    @staticmethod
    def _events(keys_plan: rotation.Plan | None, state: rotation.State, shared_plan: sharedrotation.Plan,
                shared_state: sharedrotation.State) -> list[Event]:
        events = []
        if keys_plan is not None:
            s = keys_plan.state
            if keys_plan.started and s.next is not None and s.current is not None:
                events.append(Event("Normal", "RotationStarted", (
                    f"rotating the signing key from {s.current.show()} to {s.next.show()}; the StorageCluster "
                    "will mount both (one rolling restart)")))
            if s.phase == rotation.REVOKING and state.phase != rotation.REVOKING:
                events.append(Event("Warning", "KeyRevoking", keys_plan.message))
            if s.phase == rotation.COMPLETED and state.phase != rotation.COMPLETED:
                events.append(Event("Normal", "RotationCompleted", keys_plan.message))
        s2 = shared_plan.state
        if shared_plan.started:
            events.append(Event("Warning", "SharedSecretRotationStarted", shared_plan.message))
        if s2.phase == sharedrotation.COMPLETED and shared_state.phase != sharedrotation.COMPLETED:
            events.append(Event("Normal", "SharedSecretRotationCompleted", shared_plan.message))
        return events

    def _settle(self, ctx: Context, keys_plan: rotation.Plan | None,
                shared_plan: sharedrotation.Plan) -> list[Event]:
        """The Secrets of keys no pod mounts any more: deleted under Delete when they carry our owner
        reference (exactly the Secret read: uid and resourceVersion), else kept and said, once."""
        released = [(k.secret, f"{k.kind} key") for k in (keys_plan.release if keys_plan else ())]
        released += [(name, "shared secret") for name in shared_plan.release]
        uid = str((ctx.cr.get("metadata") or {}).get("uid") or "")
        events = []
        for name, what in released:
            observed = self.gw.read_secret(ctx.namespace, name)
            if observed is None:
                continue
            meta = observed.metadata or {}
            ours = any(o.get("uid") == uid for o in meta.get("ownerReferences") or []) and bool(uid)
            why = (f"deletionPolicy {ctx.spec.deletion_policy}" if ctx.spec.deletion_policy != "Delete"
                   else "it was not made by this PxSecurity")
            if ctx.spec.deletion_policy == "Delete" and ours:
                try:
                    if self.gw.delete_secret(ctx.namespace, name, str(meta.get("uid") or ""),
                                             observed.resource_version):
                        events.append(Event("Normal", "ReplacedKeyDeleted", (
                            f"deleted Secret {name}: its {what} was replaced by a rotation and no Portworx pod "
                            "mounts it any more (deletionPolicy Delete)")))
                    continue
                except GatewayError as exc:
                    if exc.status != 403:
                        raise
                    why = f"the operator may not delete Secrets: {DELETE_GRANT}"
            events.append(Event("Normal", "ReplacedKeyKept", (
                f"Secret {name} is no longer given to Portworx (its {what} was replaced by a rotation) and "
                f"is kept ({why}): delete it when no copy of a token signed with it matters")))
        return events
