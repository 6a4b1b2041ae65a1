"""What a change to a StorageCluster does to a running Portworx cluster — said before it is made.

The Portworx Operator restarts every Portworx pod (rolling, `spec.updateStrategy`) when, between the running
pods and the spec, `spec.env` differs as a set, `spec.volumes` differ, security or TLS toggles, or the
self-signed issuer or shared-secret Secret *name* changes (libopenstorage/operator
pkg/controller/storagecluster/update.go, isSecurityBounceRequired / matchSelectedFields). A new issuer or
shared secret also makes every self-signed token minted under the old one fail once the pods restart.

`assess` turns (the StorageCluster as it is, the merge patch we would send) into an `Impact`: the fields
that change (values shown only where they are not secret), the effects (`RollingRestart`,
`TokensInvalidated`, `KeysUnmounted`), and a stable id — a hash of the patch without its resourceVersion —
so that the same change gets the same id in the operator's `status.pendingChange` and in `pxsec plan`,
and can be approved from Git. A StorageCluster that runs nothing yet is not gated (`running`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pxsec import coexist, render
from pxsec.scmerge import apply_merge_patch
from pxsec.spec import PxSecuritySpec

ROLLING_RESTART: Final = "RollingRestart"
TOKENS_INVALIDATED: Final = "TokensInvalidated"
KEYS_UNMOUNTED: Final = "KeysUnmounted"

RUNNING_PHASES: Final = frozenset({"Running", "Degraded"})  # pkg/apis/core/v1 ClusterStateRunning/Degraded
# spec.security leaves whose change restarts Portworx (isSecurityBounceRequired)
SECURITY_BOUNCE: Final = ("enabled", "auth.enabled", "tls.enabled", "auth.selfSigned.issuer",
                          "auth.selfSigned.sharedSecret")
# Env entries whose plain values are not secret, so a change can show them.
SHOWN_ENV: Final = frozenset({render.ENV_JWT_ISSUER, render.ENV_OIDC_ISSUER, render.ENV_OIDC_CLIENT_ID,
                              render.ENV_OIDC_NAMESPACE, render.ENV_USERNAME_CLAIM, render.ENV_RSA_PUBKEY,
                              render.ENV_ECDS_PUBKEY})
PUBKEY_ENV: Final = (render.ENV_RSA_PUBKEY, render.ENV_ECDS_PUBKEY)
ID_LENGTH: Final = 12
MANUAL: Final = "Manual"


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. spec.security.auth.selfSigned.issuer, spec.env[PORTWORX_AUTH_OIDC_ISSUER]
    before: str | None  # shown, never a secret value (None: absent)
    after: str | None

    def show(self) -> str:
        return f"{self.path}: {self.before or '(none)'} → {self.after or '(none)'}"


@dataclass(frozen=True)
class TokenVerdict:
    """One token Secret of the namespace, judged as Portworx would before and after the change."""

    secret_name: str
    minted_by: str  # PxSecurity | PortworxOperator | "" (someone else: pxctl, a CI system, a Stork config)
    accepted_before: bool
    accepted_after: bool


@dataclass(frozen=True)
class Effect:
    type: str
    message: str

    def as_status(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True)
class Impact:
    id: str
    fields: tuple[FieldChange, ...]
    effects: tuple[Effect, ...]
    notes: tuple[str, ...] = ()  # what changes later, without a restart (never gates the change)

    @property
    def disruptive(self) -> bool:
        return bool(self.effects)

    def summary(self) -> str:
        """One paragraph a person can act on (names and non-secret values only)."""
        if not self.effects:
            return "no restart, no token rejected"
        return "; ".join(e.message for e in self.effects)


def running(storagecluster: Mapping[str, Any] | None, storage_nodes: int) -> bool:
    """Whether Portworx runs for this StorageCluster: its phase is Running or Degraded, or StorageNodes of it
    exist. A fresh install (no phase, Initializing, no node) gets changes at once."""
    if storagecluster is None:
        return False
    phase = (storagecluster.get("status") or {}).get("phase")
    return phase in RUNNING_PHASES or storage_nodes > 0


def change_id(patch: Mapping[str, Any]) -> str:
    """The same id for the same change: a hash of the patch without the resourceVersion that guards it."""
    body = json.loads(json.dumps(patch))
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("resourceVersion", None)
        if not meta:
            body.pop("metadata")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _leaf(node: Mapping[str, Any], path: str) -> Any:
    value: Any = node
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _auth_on(security: Mapping[str, Any]) -> bool:
    return security.get("enabled") is True and _map(security.get("auth")).get("enabled") is not False


def _show_env(entry: Mapping[str, Any] | None) -> str | None:
    if entry is None:
        return None
    ref = _map(_map(entry.get("valueFrom")).get("secretKeyRef"))
    if ref:
        return f"Secret {ref.get('name')}/{ref.get('key')}"
    if entry.get("name") in SHOWN_ENV and isinstance(entry.get("value"), str):
        return str(entry["value"])
    return "(a value)" if "value" in entry else "(set)"


def _show_volume(entry: Mapping[str, Any] | None) -> str | None:
    if entry is None:
        return None
    secret = _map(entry.get("secret")).get("secretName")
    return f"Secret {secret} at {entry.get('mountPath', '?')}" if secret else f"at {entry.get('mountPath', '?')}"


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    return {str(i.get("name")): i for i in items or [] if isinstance(i, Mapping)}


def _list_changes(kind: str, before: Any, after: Any) -> list[FieldChange]:
    old, new = _by_name(before), _by_name(after)
    shown = _show_env if kind == "env" else _show_volume
    out = []
    for name in sorted(set(old) | set(new)):
        if _canon(old.get(name)) != _canon(new.get(name)):
            out.append(FieldChange(f"spec.{kind}[{name}]", shown(old.get(name)), shown(new.get(name))))
    return out


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _security_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    out = []
    for path in SECURITY_BOUNCE:
        old, new = _leaf(before, path), _leaf(after, path)
        if old != new:
            out.append(FieldChange(f"spec.security.{path}", None if old is None else str(old),
                                   None if new is None else str(new)))
    return out


def _other_security_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Leaves that change nothing in the running pods (guestAccess, tokenLifetime), shown for completeness."""
    out = []
    for path in ("auth.guestAccess", "auth.selfSigned.tokenLifetime"):
        old, new = _leaf(before, path), _leaf(after, path)
        if old != new:
            out.append(FieldChange(f"spec.security.{path}", None if old is None else str(old),
                                   None if new is None else str(new)))
    return out


def _pods(storage_nodes: int) -> str:
    return f"all {storage_nodes} Portworx pods" if storage_nodes else "every Portworx pod"


def _strategy(spec: Mapping[str, Any]) -> str:
    strategy = _map(spec.get("updateStrategy"))
    kind = str(strategy.get("type") or "RollingUpdate")
    if kind == "OnDelete":
        return "each when its pod is deleted (updateStrategy OnDelete)"
    unavailable = _map(strategy.get("rollingUpdate")).get("maxUnavailable", 1)
    return f"rolling, {unavailable} at a time (updateStrategy RollingUpdate)"


def _token_effect(verdicts: Iterable[TokenVerdict], cause: str) -> Effect | None:
    broken = [v for v in verdicts if v.accepted_before and not v.accepted_after]
    if not broken:
        return None

    def who(v: TokenVerdict) -> str:
        if v.minted_by == "PxSecurity":
            return f"{v.secret_name} (minted here: re-minted at once)"
        if v.minted_by == "PortworxOperator":
            return f"{v.secret_name} (the Portworx Operator's: it re-mints it)"
        return f"{v.secret_name} (made by someone else: it breaks until re-made)"
    names = ", ".join(who(v) for v in sorted(broken, key=lambda v: v.secret_name))
    return Effect(TOKENS_INVALIDATED, f"{len(broken)} token(s) signed under the old {cause} would be rejected: {names}")


def assess(existing: Mapping[str, Any], patch: Mapping[str, Any] | None, *, storage_nodes: int = 0,
           tokens: Sequence[TokenVerdict] = ()) -> Impact:
    """The impact of sending `patch` (a JSON merge patch from `scmerge.merge`) to `existing`."""
    if not patch:
        return Impact("", (), ())
    after = apply_merge_patch(json.loads(json.dumps(existing)), json.loads(json.dumps(patch)))
    old_spec, new_spec = _map(existing.get("spec")), _map(after.get("spec"))
    old_sec, new_sec = _map(old_spec.get("security")), _map(new_spec.get("security"))
    bounce = _security_changes(old_sec, new_sec)
    env = _list_changes("env", old_spec.get("env"), new_spec.get("env"))
    volumes = _list_changes("volumes", old_spec.get("volumes"), new_spec.get("volumes"))
    restart_fields = bounce + env + volumes
    effects: list[Effect] = []
    if restart_fields:
        why = ", ".join(f.show() for f in restart_fields)
        effects.append(Effect(ROLLING_RESTART, f"would restart {_pods(storage_nodes)}, {_strategy(new_spec)} ({why})"))
    token_causes = [f.path.rsplit(".", 1)[-1] for f in bounce
                    if f.path.endswith(("selfSigned.issuer", "selfSigned.sharedSecret")) and f.before is not None]
    if _auth_on(old_sec) and _auth_on(new_sec) and token_causes:
        effect = _token_effect(tokens, " and ".join(token_causes))
        if effect is not None:
            effects.append(effect)
    unmounted = [f for f in env if f.path[len("spec.env["):-1] in PUBKEY_ENV and f.before is not None]
    if unmounted:
        effects.append(Effect(KEYS_UNMOUNTED, "would stop trusting tokens signed with "
                              + ", ".join(f"{f.path[len('spec.env['):-1]} ({f.before})" for f in unmounted)
                              + " once the pods restart"))
    others = _other_security_changes(old_sec, new_sec)
    notes = tuple(f"{f.show()} reaches the Portworx Operator's tokens when they expire (it re-mints within 1 "
                  "minute of expiry, on its ~30 s pass); ours are re-minted at once"
                  for f in others if f.path.endswith(".tokenLifetime") and f.before is not None)
    return Impact(change_id(patch), tuple(restart_fields + others), tuple(effects), notes)


def waits(found: Impact, live: bool, policy: str, approved: str | None) -> bool:
    """Whether the change waits for approval: it disrupts a StorageCluster that runs, under changePolicy
    Manual, and approvedChange does not name it."""
    return live and found.disruptive and policy == MANUAL and approved != found.id


def our_token_verdicts(spec: PxSecuritySpec, before: coexist.StorageClusterView,
                       after: coexist.StorageClusterView) -> list[TokenVerdict]:
    """The tokens this PxSecurity mints: always minted under what Portworx trusts (so accepted now), each is
    rejected exactly when the issuer or the shared secret moves — and re-minted in the same reconcile. They
    need not exist yet."""
    moves = (before.issuer, before.shared_secret) != (after.issuer, after.shared_secret)
    ours = sorted({t.secret_name for t in spec.tokens} - set(coexist.OPERATOR_TOKENS))
    return [TokenVerdict(name, coexist.PXSECURITY, True, not moves) for name in ours]
