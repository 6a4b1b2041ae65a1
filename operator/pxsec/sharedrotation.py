"""Rotation of the shared secret (HS256), pure: on demand only, because it cannot overlap.

Portworx holds one HS key per issuer and reads it once, when a pod starts. So while the Portworx pods restart
onto a new shared secret, a token signed with the old one is rejected by every node that has restarted, and
one signed with the new one by every node that has not: the *window* lasts the rolling restart. Nothing
removes it; what is built here states it, keeps it to one rollout, and says when it is over.

A new value of the annotation `pxsec.dev/rotate-shared-secret` starts one rotation:

    Switching      a new shared secret in a new Secret `<name>-r<n>` (never edited in place), named in the
                   StorageCluster (approved like any change to a running cluster): the Portworx Operator
                   restarts Portworx and re-mints its own tokens at once, and ours are re-minted in the same
                   reconcile that switches it. Left when the StorageCluster names it and its rollout is over
    Acknowledging  every Portworx node accepts a canary signed with the new secret (NodesAcknowledged)
    Completed      the old Secret is dropped: once no pod uses it, deleted under deletionPolicy Delete

Without a record (status lost), a StorageCluster that names `<name>-r<n>` says a rotation made it: that is
the current secret, and nothing is switched back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec.conditions import rfc3339
from pxsec.rotation import RECHECK, parse_time, revisioned

ANNOTATION = "pxsec.dev/rotate-shared-secret"  # a new value starts one rotation of the shared secret
SWITCHING, ACKNOWLEDGING, COMPLETED = "Switching", "Acknowledging", "Completed"
PHASES = (SWITCHING, ACKNOWLEDGING, COMPLETED)
WAITING_FOR_NODES = (SWITCHING, ACKNOWLEDGING)


@dataclass(frozen=True)
class State:
    """`status.rotation.sharedSecret`."""

    phase: str = ""
    trigger: str = ""  # the annotation value last used
    started: dt.datetime | None = None
    since: dt.datetime | None = None  # when this phase began
    switched: dt.datetime | None = None  # when the StorageCluster was first seen naming the new Secret
    current: str | None = None  # the Secret holding the shared secret Portworx trusts (from, while switching)
    next: str | None = None  # Switching / Acknowledging: the new Secret
    revision: int = 0
    dropped: tuple[str, ...] = ()  # Secrets no longer given to Portworx, until no pod uses them


@dataclass(frozen=True)
class Observed:
    now: dt.datetime
    annotation: str | None = None
    given: str | None = None  # the Secret the StorageCluster names for the shared secret now
    rollout_done: bool = True
    awaiting_approval: bool = False
    acknowledged: tuple[int, int] | None = None  # nodes that accept the new secret, of all; None: not asked
    running: bool = False  # Portworx runs (StorageNodes)


@dataclass(frozen=True)
class Plan:
    state: State
    secret: str | None  # the Secret the spec should name for the shared secret (None: no shared secret)
    message: str = ""
    wake: dt.datetime | None = None
    started: bool = False
    release: tuple[str, ...] = ()  # dropped Secrets no pod uses any more


def recovered(base: str, given: str | None, annotation: str | None) -> State | None:
    """With no record, a StorageCluster naming `<base>-r<n>`: a rotation made it, it is current."""
    if not given or not given.startswith(base + "-r") or not given[len(base) + 2:].isdigit():
        return None
    return State(COMPLETED, annotation or "", current=given, revision=int(given[len(base) + 2:]))


def window(state: State, now: dt.datetime) -> str:
    """The window, in words, as far as it is known."""
    if state.switched is None:
        return "it opens when the StorageCluster names the new Secret"
    return f"open since {_rfc3339(state.switched)} ({int((now - state.switched).total_seconds())} s)"


def plan(base: str | None, state: State, seen: Observed) -> Plan:
    """`base` is the Secret spec.selfSigned.sharedSecret names (None: no shared secret, nothing to rotate)."""
    if base is None:
        msg = ("no shared secret to rotate (spec.selfSigned.sharedSecret)" if seen.annotation else "")
        return Plan(state, None, msg)
    if not state.phase:
        found = recovered(base, seen.given, seen.annotation)
        if found is not None:
            state = found
    current = state.current or base
    now = seen.now
    if state.phase in ("", COMPLETED):
        if seen.annotation and seen.annotation != state.trigger:
            revision = state.revision + 1
            began = State(SWITCHING, seen.annotation, now, now, None, current, revisioned(base, revision),
                          revision, state.dropped)
            return _released(dataclasses.replace(_switching(began, seen), started=True), seen)
        steady = dataclasses.replace(state, current=current, trigger=seen.annotation or state.trigger)
        msg = f"the shared secret is in Secret {current}{_last(state)}" if state.phase else ""
        return _released(Plan(steady, current, msg), seen)
    if state.next is None:  # a phase recorded without its new Secret: as if none ran
        return plan(base, dataclasses.replace(state, phase=""), seen)
    if state.phase == SWITCHING:
        return _released(_switching(dataclasses.replace(state, current=current), seen), seen)
    if state.phase == ACKNOWLEDGING:
        return _released(_acknowledging(dataclasses.replace(state, current=current), seen), seen)
    return Plan(state, current, f"unknown shared-secret rotation phase {state.phase!r}: ignored")


def _switching(state: State, seen: Observed) -> Plan:
    assert state.next is not None
    nxt, old = state.next, state.current
    if seen.given == nxt and state.switched is None:
        state = dataclasses.replace(state, switched=seen.now)
    cost = (f"tokens signed with the shared secret of Secret {old} are rejected by each node once its pod "
            f"restarted, and those signed with the new one (ours and the Portworx Operator's, re-minted at "
            f"once) by each node not yet restarted, until the rolling restart ends")
    if seen.given == nxt and seen.rollout_done:
        moved = dataclasses.replace(state, phase=ACKNOWLEDGING, since=seen.now)
        return _acknowledging(moved, seen)
    if seen.given == nxt:
        why = f"the Portworx pods are restarting to read it: {cost} (window {window(state, seen.now)})"
    elif seen.awaiting_approval:
        why = f"the restart that switches it waits for approval (status.pendingChange); once approved, {cost}"
    else:
        why = f"generating it and naming it in the StorageCluster; then {cost}"
    return Plan(state, nxt, f"rotating the shared secret to Secret {nxt}: {why}", wake=seen.now + RECHECK)


def _acknowledging(state: State, seen: Observed) -> Plan:
    assert state.next is not None
    nxt, old = state.next, state.current
    ack = seen.acknowledged
    if seen.running and (ack is None or not (ack[1] > 0 and ack[0] == ack[1])):
        told = f"{ack[0]}/{ack[1]} Portworx nodes accept it" if ack else "asking the Portworx nodes"
        return Plan(state, nxt, f"rotating the shared secret to Secret {nxt}: {told} (window "
                    f"{window(state, seen.now)})", wake=seen.now + RECHECK)
    done = State(COMPLETED, state.trigger, state.started, seen.now, state.switched, nxt, None, state.revision,
                 state.dropped + tuple(k for k in (old,) if k is not None and k != nxt))
    return Plan(done, nxt, f"rotated the shared secret to Secret {nxt}; the one in Secret {old} is rejected by "
                f"every node{_last(done)}", wake=seen.now)


def _last(state: State) -> str:
    """The window of the last rotation, once it is over."""
    if state.phase != COMPLETED or state.switched is None or state.since is None:
        return ""
    return (f"; in its last rotation tokens of either secret could be rejected from {_rfc3339(state.switched)} "
            f"for {int((state.since - state.switched).total_seconds())} s")


def _released(p: Plan, seen: Observed) -> Plan:
    gone = tuple(n for n in p.state.dropped if n != p.secret and n != seen.given and seen.rollout_done)
    left = tuple(n for n in p.state.dropped if n != p.secret and n not in gone)
    return dataclasses.replace(p, state=dataclasses.replace(p.state, dropped=left), release=gone)


# -- status.rotation.sharedSecret, both ways ----------------------------------------------------------------


def read_state(raw: Any) -> State:
    if not isinstance(raw, Mapping):
        return State()
    phase = raw.get("phase") if raw.get("phase") in PHASES else ""
    revision = raw.get("revision")
    dropped = raw.get("dropped")
    done = phase == COMPLETED
    return State(str(phase), str(raw.get("trigger") or ""), parse_time(raw.get("startedAt")),
                 parse_time(raw.get("since")), parse_time(raw.get("switchedAt")),
                 _name(raw.get("to") if done else raw.get("from")), None if done else _name(raw.get("to")),
                 revision if isinstance(revision, int) and not isinstance(revision, bool) else 0,
                 tuple(str(n) for n in dropped if isinstance(n, str) and n) if isinstance(dropped, list) else ())


def write_state(p: Plan, acknowledged: tuple[int, int] | None = None) -> dict[str, Any] | None:
    s = p.state
    if not s.phase:
        return None
    done = s.phase == COMPLETED
    out: dict[str, Any] = {
        "phase": s.phase, "trigger": s.trigger or None, "startedAt": _rfc3339(s.started),
        "since": _rfc3339(s.since), "switchedAt": _rfc3339(s.switched),
        "from": None if done else s.current, "to": s.current if done else s.next, "revision": s.revision,
        "acknowledged": f"{acknowledged[0]}/{acknowledged[1]}" if acknowledged else None,
        "dropped": list(s.dropped) or None, "message": p.message,
    }
    return {k: v for k, v in out.items() if v is not None}


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rfc3339(when: dt.datetime | None) -> str | None:
    return rfc3339(when) if when else None
