"""The step that moves a key rotation on (`pxsec.rotation`) and hands the later steps the spec that carries
it out: the slots hold the plan's keys (KeySync makes a new one, ParameterSync and StorageClusterSync give
it to Portworx, through approval on a running cluster), tokens are signed with the plan's key (TokenSync),
and NodesAcknowledged asks the nodes about each key (and counts towards Ready while a rotation runs).

It reads only what earlier reconciles and the watches already know: the StorageCluster (what it mounts, its
rollout), the PxSecurity's own status (a waiting change, what the nodes answered, which key signed each
token) and the StorageNodes. It writes `status.rotation` and says when a rotation starts and completes.
Without `spec.rotation` it does nothing and the spec passes through unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pxsec import conditions, rotation, tokens
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.storagecluster import Seen
from pxsec.events import Event


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


def rollout_done(storagecluster: Mapping[str, Any] | None) -> bool:
    """The Portworx Operator's `Update` condition is not InProgress (or Failed): no restart is going on."""
    for cond in ((storagecluster or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Update":
            return cond.get("status") not in ("InProgress", "Failed")
    return True


def _lifetime(text: str | None) -> dt.timedelta | None:
    return tokens.parse_lifetime(text) if text else None


class KeyRotationStep(BaseStep):
    name = "rotation"
    condition = conditions.KEY_ROTATION
    needs = ("storagecluster",)
    fields = ("rotation",)

    def run(self, ctx: Context) -> Outcome:
        ss, spec_rotation = ctx.spec.self_signed, ctx.spec.rotation
        if ss is None or spec_rotation is None:
            return Outcome(status={"rotation": None}, product=None)
        old = ctx.old_status
        state = rotation.read_state(old)
        seen: Seen = ctx.product("storagecluster")
        sc = seen.coexistence.cluster
        slots = ((rotation.RSA, sc.rsa_key), (rotation.ECDSA, sc.ecdsa_key)) if sc else ()
        mounted_keys = tuple(rotation.Key(kind, k.secret) for kind, k in slots if k is not None and k.secret)
        mounted = frozenset(k.secret for k in mounted_keys)
        nxt = state.next.secret if state.next else None
        observed = rotation.Observed(
            now=ctx.now,
            annotation=((ctx.cr.get("metadata") or {}).get("annotations") or {}).get(rotation.ANNOTATION),
            mounted=mounted,
            mounted_keys=mounted_keys,
            rollout_done=rollout_done(seen.body),
            awaiting_approval=bool(old.get("pendingChange")),
            acknowledged=acknowledged(old, nxt) if nxt else None,
            running=self.gw.count_storagenodes(ctx.namespace) > 0,
            resigned=nxt is not None and state.next is not None and all(
                row.get("signingKey") == state.next.kind for row in old.get("tokens") or []
                if isinstance(row, Mapping) and "mintedBy" not in row and row.get("signingKey") != "SharedSecret"),
            longest_lifetime=tokens.parse_lifetime(ss.token_lifetime),
            created=rotation.parse_time((ctx.cr.get("metadata") or {}).get("creationTimestamp")),
        )
        policy = rotation.Rotation(every=_lifetime(spec_rotation.every), grace=_lifetime(spec_rotation.grace_period),
                                   emergency=spec_rotation.emergency)
        p = rotation.plan(ctx.spec, policy, state, observed)
        ctx.spec = rotation.effective(ctx.spec, p)
        events = []
        if p.started and p.state.next is not None and p.state.current is not None:
            events.append(Event("Normal", "RotationStarted", (
                f"rotating the signing key from {p.state.current.show()} to {p.state.next.show()}; "
                "the StorageCluster will mount both (one rolling restart)")))
        if p.state.phase == rotation.COMPLETED and state.phase != rotation.COMPLETED:
            events.append(Event("Normal", "RotationCompleted", p.message))
        ack = observed.acknowledged if p.state.phase in (rotation.MOUNTING, rotation.ACKNOWLEDGING) else None
        return Outcome(status={"rotation": rotation.write_state(p, ack)}, events=events, wake=p.wake, product=p)
