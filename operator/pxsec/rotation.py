"""Planned rotation of the asymmetric signing key, pure: where a rotation stands and what the world must look
like for its next step (docs/rotation.md has the design and the facts behind it).

The RSA and ECDSA slots of the self-signed issuer take turns. A key is *current* (signs our tokens), *next*
(being introduced: trusted by the nodes once they restarted, signs nothing yet) or *retired* (still
mounted, signs nothing, replaced by the next rotation's key in the same slot, so retiring costs no restart
of its own). Keys made by a rotation live in new, revisioned Secret names: a Secret is never rotated in
place, so each Portworx pod sees exactly the keys its spec names.

One rotation, phase by phase; each phase is left only on what the world shows, so a restart of either
operator resumes it where it stands:

    Mounting       keys = current + next; the StorageCluster must mount both (one rolling restart,
                   approved like any change to a running cluster) and its rollout be over
    Acknowledging  every Portworx node accepts a canary signed with the next key (NodesAcknowledged)
    Resigning      our tokens are signed with the next key (no restart: consumers read Secrets per call)
    Grace          the grace period passes (default: the longest lifetime of a token we mint)
    Revoking       (emergency, instead of Grace) the old key is no longer mounted: a second rolling restart,
                   over when every node rejects a canary signed with it
    Completed      next becomes current, the old current is retired (emergency: gone)

A key no longer mounted (the retired key a rotation replaces, a revoked key) is *dropped*: once no Portworx
pod mounts it any more, its Secret is deleted under `deletionPolicy: Delete` and kept under Retain (the
step says which, `release`).

`plan` is the whole decision: given the recorded state and what was observed, the new state, the keys the
steps must keep and mount, the key tokens are signed with, and when to look again. `effective` applies a
plan to a spec, so the existing steps (keys, rendering, apply with approval, tokens, canaries) carry it out
without knowing about rotations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec.conditions import rfc3339
from pxsec.spec import ECDSAKey, PxSecuritySpec, RSAKey

RSA, ECDSA = "RSA", "ECDSA"  # as tokens.RSA / tokens.ECDSA and spec signingKey values
ANNOTATION = "pxsec.dev/rotate-keys"  # a new value starts one rotation
MOUNTING, ACKNOWLEDGING, RESIGNING, GRACE, REVOKING, COMPLETED = (
    "Mounting", "Acknowledging", "Resigning", "Grace", "Revoking", "Completed")
PHASES = (MOUNTING, ACKNOWLEDGING, RESIGNING, GRACE, REVOKING, COMPLETED)
WAITING_FOR_NODES = (MOUNTING, ACKNOWLEDGING, REVOKING)  # NodesAcknowledged is part of Ready then
DEFAULT_NAMES = {RSA: "px-jwt-rsa", ECDSA: "px-jwt-ecdsa"}
RECHECK = dt.timedelta(seconds=30)  # while a phase waits on the world without an event to wake it
MAX_NAME = 253


@dataclass(frozen=True)
class Key:
    kind: str  # RSA | ECDSA
    secret: str

    def show(self) -> str:
        return f"{self.kind} (Secret {self.secret})"


@dataclass(frozen=True)
class Rotation:
    """`spec.rotation`."""

    every: dt.timedelta | None = None
    grace: dt.timedelta | None = None  # None: the longest lifetime of a token we mint
    emergency: bool = False


@dataclass(frozen=True)
class State:
    """`status.rotation`: where the last rotation stands (phase "" = none yet)."""

    phase: str = ""
    trigger: str = ""  # the annotation value that started it ("" for the schedule)
    started: dt.datetime | None = None
    since: dt.datetime | None = None  # when this phase began
    current: Key | None = None
    next: Key | None = None
    retired: Key | None = None
    revision: int = 0  # of the newest key a rotation made
    dropped: tuple[Key, ...] = ()  # no longer given to Portworx; their Secrets wait for the pods to restart
    revoked: Key | None = None  # the key the last (emergency) rotation revoked


@dataclass(frozen=True)
class Observed:
    now: dt.datetime
    annotation: str | None = None
    mounted: frozenset[str] = frozenset()  # Secrets whose public keys the StorageCluster mounts
    mounted_keys: tuple[Key, ...] = ()  # the same, with their slots
    rollout_done: bool = True  # no rolling restart in progress (its Update condition, or nothing runs)
    awaiting_approval: bool = False  # our change to the StorageCluster waits for approval
    acknowledged: tuple[int, int] | None = None  # nodes that accept the next key, of all; None: not asked
    revoked: tuple[int, int] | None = None  # nodes that reject the revoked key, of all; None: not asked
    running: bool = False  # Portworx runs (StorageNodes): then only the nodes' answer moves a rotation on
    resigned: bool = False  # every token we mint verifies under the next key
    longest_lifetime: dt.timedelta = dt.timedelta(0)
    created: dt.datetime | None = None  # the PxSecurity's creation, where a schedule starts


@dataclass(frozen=True)
class Plan:
    state: State
    keys: tuple[Key, ...]  # the asymmetric keys to keep and mount, current first
    signing: Key | None
    message: str
    wake: dt.datetime | None = None
    started: bool = False  # a rotation began with this plan (an Event says so)
    revoke: Key | None = None  # the key every node must reject (emergency): the nodes are asked about it
    release: tuple[Key, ...] = ()  # dropped keys no pod mounts any more: their Secrets go per deletionPolicy


def other(kind: str) -> str:
    return ECDSA if kind == RSA else RSA


def revisioned(base: str, revision: int) -> str:
    suffix = f"-r{revision}"
    return base[:MAX_NAME - len(suffix)].rstrip("-.") + suffix


def base_name(spec: PxSecuritySpec, kind: str) -> str:
    """The name the spec gives a slot's Secret (its revisions are `<name>-r<n>`), or the default."""
    ss = spec.self_signed
    key = (ss.rsa if kind == RSA else ss.ecdsa) if ss else None
    return key.secret_name if key else DEFAULT_NAMES[kind]


def initial_other(spec: PxSecuritySpec, current: Key) -> Key | None:
    """Before any rotation, the spec's key in the other slot (both configured): trusted, signing nothing,
    kept mounted until the first rotation replaces it — turning rotation on restarts nothing."""
    ss = spec.self_signed
    if ss is None:
        return None
    if current.kind == ECDSA and ss.rsa:
        return Key(RSA, ss.rsa.secret_name)
    if current.kind == RSA and ss.ecdsa:
        return Key(ECDSA, ss.ecdsa.secret_name)
    return None


def initial(spec: PxSecuritySpec) -> Key | None:
    """The current key before any rotation: the spec's ECDSA key, else its RSA key."""
    ss = spec.self_signed
    if ss is None:
        return None
    if ss.ecdsa:
        return Key(ECDSA, ss.ecdsa.secret_name)
    if ss.rsa:
        return Key(RSA, ss.rsa.secret_name)
    return None


def due(rotation: Rotation, state: State, seen: Observed) -> tuple[bool, str, dt.datetime | None]:
    """(start now, the annotation value to record as used, when the schedule is due next). Whatever starts
    a rotation, the annotation's value then is recorded: a value bumped once starts exactly one."""
    used = seen.annotation or state.trigger
    if seen.annotation and seen.annotation != state.trigger:
        return True, used, None
    if rotation.every is None:
        return False, used, None
    at = (state.started or seen.created or seen.now) + rotation.every
    return seen.now >= at, used, at


def recovered(spec: PxSecuritySpec, mounted: tuple[Key, ...]) -> State | None:
    """With no record (status lost, restored from a backup), what the StorageCluster mounts tells where
    rotations left the keys: a Secret `<name>-r<n>` of a slot is a key a rotation made. The newest one is
    taken as the next key of a rotation still to be acknowledged — the nodes are asked before anything is
    signed with it (a completed rotation passes at once), and the other mounted key keeps signing until
    then. None when no rotation made a mounted key."""
    made = []
    for key in mounted:
        base = base_name(spec, key.kind)
        tail = key.secret[len(base) + 2:] if key.secret.startswith(base + "-r") else ""
        if tail.isdigit():
            made.append((int(tail), key))
    if not made:
        return None
    revision, newest = max(made, key=lambda m: m[0])
    other_key = next((k for k in mounted if k.kind != newest.kind), None)
    if other_key is None:
        return State(COMPLETED, current=newest, revision=revision)
    return State(ACKNOWLEDGING, current=other_key, next=newest, revision=revision)


def plan(spec: PxSecuritySpec, rotation: Rotation, state: State, seen: Observed) -> Plan:
    if not state.phase:
        found = recovered(spec, seen.mounted_keys)
        if found is not None:  # the annotation's value now is taken as used: it started what is mounted
            state = dataclasses.replace(found, trigger=seen.annotation or "")
    current = state.current or initial(spec)
    if current is None:
        return Plan(state, (), None, "no RSA or ECDSA key to rotate: rotation needs spec.selfSigned.rsa or .ecdsa")
    now = seen.now
    if not state.phase:
        state = dataclasses.replace(state, current=current, retired=initial_other(spec, current))
    if state.phase in ("", COMPLETED):
        start, trigger, next_due = due(rotation, state, seen)
        steady = tuple(k for k in (current, state.retired) if k is not None)
        if not start:
            done = State(state.phase, trigger, state.started, state.since, current, None, state.retired,
                         state.revision, state.dropped, state.revoked)
            return _released(Plan(done, steady, current, _steady_message(state, current), wake=next_due), seen)
        revision = state.revision + 1
        nxt = Key(other(current.kind), revisioned(base_name(spec, other(current.kind)), revision))
        dropped = state.dropped + tuple(k for k in (state.retired,) if k is not None)
        began = State(MOUNTING, trigger, now, now, current, nxt, None, revision, dropped)
        return _released(_mounting(began, seen, started=True), seen)
    if state.next is None:  # a recorded phase without its next key: start the phase over from the schedule
        return plan(spec, rotation, dataclasses.replace(state, phase=""), seen)
    return _released(_rotating(rotation, dataclasses.replace(state, current=current), seen), seen)


def _rotating(rotation: Rotation, state: State, seen: Observed) -> Plan:
    """The plan of a rotation under way (Mounting to Completed)."""
    assert state.current is not None and state.next is not None
    current, nxt, now = state.current, state.next, seen.now
    if state.phase == MOUNTING:
        return _mounting(state, seen)
    if state.phase == ACKNOWLEDGING:
        both = (current, nxt)
        ack = seen.acknowledged
        if ack is None and seen.running:
            return Plan(state, both, current,
                        f"rotating to {nxt.show()}: waiting for the Portworx nodes to be asked whether they accept "
                        "it (NodesAcknowledged; spec.storageCluster.probeNodes must not be false)", wake=now + RECHECK)
        if ack is not None and not (ack[1] > 0 and ack[0] == ack[1]):
            return Plan(state, both, current,
                        f"rotating to {nxt.show()}: {ack[0]}/{ack[1]} Portworx nodes accept it; waiting for all",
                        wake=now + RECHECK)
        moved = dataclasses.replace(state, phase=RESIGNING, since=now)
        return _resigning(moved, seen)
    if state.phase == RESIGNING:
        return _resigning(state, seen)
    if state.phase == GRACE:
        grace = rotation.grace if rotation.grace is not None else seen.longest_lifetime
        ends = (state.since or now) + grace
        if rotation.emergency:
            return _revoking(dataclasses.replace(state, phase=REVOKING, since=now), seen)
        if now >= ends:
            done = State(COMPLETED, state.trigger, state.started, now, nxt, None, current, state.revision,
                         state.dropped)
            return Plan(done, (nxt, current), nxt,
                        f"rotated to {nxt.show()}; {current.show()} is retired (still trusted until the next "
                        "rotation replaces it)")
        return Plan(state, (current, nxt), nxt,
                    f"rotating to {nxt.show()}: every token is signed with it; {current.show()} stays trusted "
                    f"until {ends.isoformat()} (grace)", wake=ends)
    if state.phase == REVOKING:
        return _revoking(state, seen)
    return Plan(state, (current,), current, f"unknown rotation phase {state.phase!r}: ignored")


def _revoking(state: State, seen: Observed) -> Plan:
    """Emergency: the old key is no longer mounted (the rolling restart this causes ends its trust); the
    rotation completes once every node rejects a canary signed with it, or when no Portworx node runs."""
    assert state.current is not None and state.next is not None
    old, nxt = state.current, state.next
    downtime = (f"tokens signed with {old.show()} outside our Secrets are rejected by each node as its pod "
                "restarts")
    if old.secret not in seen.mounted and seen.rollout_done:
        rejected = seen.revoked
        if not seen.running or (rejected is not None and rejected[1] > 0 and rejected[0] == rejected[1]):
            done = State(COMPLETED, state.trigger, state.started, seen.now, nxt, None, None, state.revision,
                         (*state.dropped, old), revoked=old)
            proof = f"every Portworx node ({rejected[1]}) rejects it" if rejected and seen.running else \
                "no Portworx node runs"
            return Plan(done, (nxt,), nxt, f"rotated to {nxt.show()} in an emergency: {old.show()} is revoked — "
                        f"{proof}", wake=seen.now)
        told = f"{rejected[0]}/{rejected[1]} Portworx nodes reject it" if rejected else "asking the nodes"
        return Plan(state, (nxt,), nxt, f"revoking {old.show()} (emergency): no longer mounted; {told}",
                    wake=seen.now + RECHECK, revoke=old)
    why = ("the restart that unmounts it waits for approval (status.pendingChange)" if seen.awaiting_approval
           else "the Portworx pods are restarting without it")
    return Plan(state, (nxt,), nxt, f"revoking {old.show()} (emergency): {why}; {downtime}",
                wake=seen.now + RECHECK, revoke=old)


def _released(p: Plan, seen: Observed) -> Plan:
    """Split the dropped keys into those no pod mounts any more (released: their Secrets can go) and the
    rest. A key the plan keeps (a spec edited back to it) is not dropped at all."""
    kept = {k.secret for k in p.keys} | {k.secret for k in (p.revoke,) if k is not None}
    gone = tuple(k for k in p.state.dropped if k.secret not in kept and k.secret not in seen.mounted
                 and seen.rollout_done)
    left = tuple(k for k in p.state.dropped if k.secret not in kept and k not in gone)
    return dataclasses.replace(p, state=dataclasses.replace(p.state, dropped=left), release=gone)


def _mounting(state: State, seen: Observed, started: bool = False) -> Plan:
    assert state.current is not None and state.next is not None
    current, nxt = state.current, state.next
    both = (current, nxt)
    if nxt.secret in seen.mounted and current.secret in seen.mounted and seen.rollout_done:
        moved = dataclasses.replace(state, phase=ACKNOWLEDGING, since=seen.now)
        return Plan(moved, both, current, f"rotating to {nxt.show()}: mounted on every Portworx pod; asking the "
                    "nodes", wake=seen.now, started=started)
    if seen.awaiting_approval:
        why = "the restart that mounts it waits for approval (status.pendingChange)"
    elif nxt.secret in seen.mounted:
        why = "the Portworx pods are restarting to read it"
    else:
        why = "generating it and giving it to the StorageCluster beside the current key"
    return Plan(state, both, current, f"rotating to {nxt.show()}: {why}", wake=seen.now + RECHECK, started=started)


def _resigning(state: State, seen: Observed) -> Plan:
    assert state.current is not None and state.next is not None
    current, nxt = state.current, state.next
    if seen.resigned:
        moved = dataclasses.replace(state, phase=GRACE, since=seen.now)
        return Plan(moved, (current, nxt), nxt, f"rotating to {nxt.show()}: every token is signed with it",
                    wake=seen.now)
    # Tokens are signed again in the same reconcile: the next one finds them so.
    return Plan(state, (current, nxt), nxt, f"rotating to {nxt.show()}: re-signing every token with it",
                wake=seen.now)


def _steady_message(state: State, current: Key) -> str:
    if state.phase == COMPLETED and state.revoked is not None:
        return (f"{current.show()} signs; {state.revoked.show()} is revoked (emergency rotation completed "
                f"{_rfc3339(state.since)}: no longer given to Portworx, every node rejected it)")
    if state.phase == COMPLETED and state.retired is not None:
        return f"{current.show()} signs; {state.retired.show()} is retired"
    return f"{current.show()} signs"


def effective(spec: PxSecuritySpec, p: Plan) -> PxSecuritySpec:
    """The spec the steps carry out: the slots hold the plan's keys (a slot without one is empty), and every
    token not signed with the shared secret is signed with the plan's signing key."""
    ss = spec.self_signed
    if ss is None or not p.keys:
        return spec
    by_kind = {k.kind: k for k in p.keys}
    rsa = by_kind.get(RSA)
    ecdsa = by_kind.get(ECDSA)
    new_ss = dataclasses.replace(
        ss,
        rsa=RSAKey(rsa.secret, **({"size": ss.rsa.size} if ss.rsa else {})) if rsa else None,
        ecdsa=ECDSAKey(ecdsa.secret, **({"curve": ss.ecdsa.curve} if ss.ecdsa else {})) if ecdsa else None,
    )
    signing = p.signing.kind if p.signing else None
    tokens = tuple(t if t.signing_key == "SharedSecret" or signing is None
                   else dataclasses.replace(t, signing_key=signing) for t in spec.tokens)
    tenants = tuple(t if t.signing_key == "SharedSecret" or signing is None
                    else dataclasses.replace(t, signing_key=signing) for t in spec.tenants)
    return dataclasses.replace(spec, self_signed=new_ss, tokens=tokens, tenants=tenants)


# -- status.rotation, both ways ----------------------------------------------------------------------------


def _key(value: Any) -> Key | None:
    if not isinstance(value, Mapping) or value.get("kind") not in (RSA, ECDSA) or not value.get("secret"):
        return None
    return Key(str(value["kind"]), str(value["secret"]))


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time as the API server writes it (None for anything else)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def read_state(status: Mapping[str, Any] | None) -> State:
    raw = (status or {}).get("rotation")
    if not isinstance(raw, Mapping):
        return State()
    phase = raw.get("phase") if raw.get("phase") in PHASES else ""
    revision = raw.get("revision")
    dropped = raw.get("dropped")
    return State(str(phase), str(raw.get("trigger") or ""), parse_time(raw.get("startedAt")),
                 parse_time(raw.get("since")),
                 _key(raw.get("from") if phase != COMPLETED else raw.get("to")), _key(raw.get("to"))
                 if phase != COMPLETED else None, _key(raw.get("retired")),
                 revision if isinstance(revision, int) and not isinstance(revision, bool) else 0,
                 tuple(k for k in map(_key, dropped if isinstance(dropped, list) else []) if k is not None),
                 _key(raw.get("revokedKey")) if phase == COMPLETED else None)


def write_state(p: Plan, acknowledged: tuple[int, int] | None = None,
                revoked: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """`status.rotation` for a plan (None before the first rotation)."""
    s = p.state
    if not s.phase:
        return None
    def show(k: Key | None) -> dict[str, str] | None:
        return {"kind": k.kind, "secret": k.secret} if k else None

    completed = s.phase == COMPLETED
    out: dict[str, Any] = {
        "phase": s.phase, "trigger": s.trigger or None,
        "startedAt": _rfc3339(s.started), "since": _rfc3339(s.since),
        "from": show(s.retired if completed else s.current), "to": show(s.current if completed else s.next),
        "retired": show(s.retired), "revision": s.revision, "message": p.message,
        "acknowledged": f"{acknowledged[0]}/{acknowledged[1]}" if acknowledged else None,
        "revoked": f"{revoked[0]}/{revoked[1]}" if revoked else None,
        "dropped": [show(k) for k in s.dropped] or None,
        "revokedKey": show(s.revoked),
    }
    return {k: v for k, v in out.items() if v is not None}


def _rfc3339(when: dt.datetime | None) -> str | None:
    return rfc3339(when) if when else None
