"""Status conditions as a chain of small pure checks (cert-manager's readiness policy chain).

Each component condition (KeysReady, OIDCReady, TokensReady, ParametersRendered) is computed by the
part of the core that knows about it; `ready()` walks them in order and the first one that is not
True explains why the resource is not Ready. `merge()` keeps `lastTransitionTime` stable when nothing
changed, so a reconcile that finds the world as it was writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pxsec.events import Event

KEYS_READY = "KeysReady"
OIDC_READY = "OIDCReady"
TOKENS_READY = "TokensReady"
PARAMETERS_RENDERED = "ParametersRendered"
STORAGECLUSTER_APPLIED = "StorageClusterApplied"  # only when spec.storageCluster.apply is set
# Only with a targeted StorageCluster that has security on: would Portworx, as that StorageCluster
# configures it, accept every token (ours and the Portworx Operator's)?
TOKENS_ACCEPTED = "TokensAccepted"
# Only when the targeted StorageCluster has a deleteStrategy: what its uninstall does to the key
# Secrets and what the operator does then. Informational: not part of Ready.
KEYS_RETAINED = "KeysRetained"
# Only with a targeted StorageCluster whose Portworx nodes run (StorageNodes): does every node accept a canary
# token signed with each key the StorageCluster gives it (pxsec.nodecheck)? Informational: not part of Ready.
NODES_ACKNOWLEDGED = "NodesAcknowledged"
# Only when the rotation step itself fails (pxsec.rotation): the keys, the rendering and the tokens wait for it.
KEY_ROTATION = "KeyRotation"
# Only with spec.tenants: does every namespace a tenant selects hold its current token (pxsec.tenants)?
TENANTS_READY = "TenantsReady"
READY = "Ready"
# kstatus (Flux, Argo CD's kstatus users) reports Failed only for a True `Stalled` condition: set while a
# component is False for a reason no retry fixes — a person must change the spec, the key material, a
# value someone else set, or the operator's permissions. Absent otherwise. Not part of Ready's chain.
STALLED = "Stalled"
STALLED_REASONS = frozenset({"InvalidSpec", "InvalidKeyMaterial", "SystemSecretIgnored", "CannotSign", "Conflict",
                             "RejectedByAPIServer", "Forbidden"})

INFORMATIONAL = frozenset({KEYS_RETAINED})  # never part of Ready, wherever they are given
# The order matters: it is the order in which a user should fix things.
CHAIN = (KEYS_READY, OIDC_READY, TOKENS_READY, PARAMETERS_RENDERED, STORAGECLUSTER_APPLIED, TOKENS_ACCEPTED)


def rfc3339(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, whole seconds: the form `status` times take everywhere in this operator."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None = Unknown
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def true(type_: str, reason: str, message: str) -> Condition:
    return Condition(type_, True, reason, message)


def false(type_: str, reason: str, message: str) -> Condition:
    return Condition(type_, False, reason, message)


def ready(components: Sequence[Condition]) -> Condition:
    """Ready is True only when every component present is True; else the first failure explains — in the
    order of CHAIN, then the others (NodesAcknowledged while a rotation waits on the nodes, TenantsReady) in
    the order given."""
    by_type = {c.type: c for c in components}
    order = [*CHAIN, *(c.type for c in components if c.type not in CHAIN and c.type not in INFORMATIONAL)]
    for type_ in order:
        cond = by_type.get(type_)
        if cond is not None and cond.status is not True:
            return Condition(READY, False, cond.reason, f"{type_}: {cond.message}")
    return Condition(READY, True, "Ready", "all token sources and key material are in place")


def stalled(components: Sequence[Condition]) -> Condition | None:
    """`Stalled=True` with the first component that needs a person (in the order given), or None. Waiting
    for an approval, for the Portworx Operator or for the API server is progress, not a stall."""
    for cond in components:
        if cond.status is False and cond.reason in STALLED_REASONS:
            where = "" if cond.type == READY else f"{cond.type}: "
            return Condition(STALLED, True, cond.reason, f"{where}{cond.message}")
    return None


def merge(previous: Iterable[Mapping[str, Any]], current: Sequence[Condition], generation: int,
          now: str) -> list[dict[str, Any]]:
    """Status conditions for `current`, keeping lastTransitionTime where the status did not flip."""
    before = {str(c.get("type")): c for c in previous}
    out: list[dict[str, Any]] = []
    for cond in current:
        old = before.get(cond.type)
        transition = now
        if old is not None and old.get("status") == cond.status_text and old.get("lastTransitionTime"):
            transition = str(old["lastTransitionTime"])
        out.append({
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": cond.message,
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        })
    return out


def warnings(previous: Iterable[Mapping[str, Any]], current: Sequence[Condition]) -> list[Event]:
    """Warning Events for the component conditions that turned False or changed their reason or message
    since the last status — once per change, not on every reconcile. Ready itself is not repeated: the
    component that made it False already was."""
    before = {str(c.get("type")): c for c in previous}
    out: list[Event] = []
    for cond in current:
        prev = before.get(cond.type)
        if cond.status is False and cond.type != READY and (
                prev is None or prev.get("reason") != cond.reason or prev.get("message") != cond.message):
            out.append(Event("Warning", cond.reason, cond.message))
    return out


def next_wake(now: dt.datetime, due: Iterable[dt.datetime | None], floor: float = 1.0) -> float | None:
    """Seconds until the earliest of the times something is due (a token renewal, an OIDC probe, a check
    of the Portworx Operator's tokens, a retry), never less than `floor`; None when nothing is due."""
    times = [t for t in due if t is not None]
    return max(floor, (min(times) - now).total_seconds()) if times else None
