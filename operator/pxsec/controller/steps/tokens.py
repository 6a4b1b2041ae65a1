"""The step for minted tokens: for each `spec.tokens` entry keep a valid token under `auth-token`
in its Secret, re-minting when `tokens.remint_reason` says so (missing, expiring, signing key or issuer
changed, …), and tell the reconciler when the next renewal is due, so a timer — not a loop — wakes it.

Token Secrets are derived material (re-mintable at any time), so they always carry an owner reference
to the PxSecurity, as the Portworx Operator's own token Secrets do; `deletionPolicy` governs the keys.
The key fingerprint a token was signed with is kept in an annotation on its Secret: a fingerprint, safe
to show, never the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pxsec import coexist, conditions, keyplan, tokens
from pxsec.conditions import Condition, rfc3339
from pxsec.controller.kube.gateway import Conflict, GatewayPort
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.apply import Trusted
from pxsec.controller.steps.metadata import Fixed, owner_reference, sync_metadata
from pxsec.controller.steps.storagecluster import Seen
from pxsec.events import Event
from pxsec.spec import KEY_AUTH_TOKEN, PxSecuritySpec, TokenSpec

KEY_FINGERPRINT_ANNOTATION = "pxsec.dev/signing-key-fingerprint"
TOKEN_PURPOSE = "token"


@dataclass
class TokensOutcome:
    entries: list[dict[str, Any]] = field(default_factory=list)
    condition: Condition | None = None
    events: list[Event] = field(default_factory=list)
    next_renewal: dt.datetime | None = None
    # Secret name -> the token it now holds, for TokensAcceptedCheck (never logged or shown).
    current: dict[str, str] = field(default_factory=dict, repr=False)


Times = tuple[dt.datetime, dt.datetime]  # (expires, renewal)


def _judge_existing(text: str | None, token: TokenSpec, spec: PxSecuritySpec, ring: tokens.KeyRing,
                    recorded: str | None, now: dt.datetime) -> tuple[str | None, Times | None]:
    """(why to re-mint or None, (expires, renewal) of a token that is kept).

    The token in a Secret is input like any other: someone may have put anything there (a `crit`
    header, claims nested a hundred thousand deep, an `exp` past the calendar). Whatever the core
    makes of it, a token that cannot be judged is `unreadable` and replaced — it never stops the
    reconcile of its PxSecurity.
    """
    try:
        found = tokens.assess(text, token, spec, ring, recorded, now)
        if found.reason is not None or found.expires_at is None or found.renewal_time is None:
            return found.reason, None
        return None, (found.expires_at, found.renewal_time)
    except Exception:  # RecursionError included: the token, not the operator, is what is broken
        return tokens.UNREADABLE, None


def _previous_message(cr: Mapping[str, Any], type_: str) -> str:
    for cond in (cr.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("message") or "")
    return ""


def trusted_view(gw: GatewayPort, ctx: Context, spec: PxSecuritySpec, keys: Mapping[str, Mapping[str, bytes]]
                 ) -> tuple[PxSecuritySpec, Mapping[str, Mapping[str, bytes]]]:
    """The spec and key material to sign with: while a change waits for approval (`Trusted`, the apply
    step's product), the issuer and the shared secret Portworx trusts now — so that our tokens keep working
    until the change is applied."""
    trusted = ctx.products.get("apply")
    ss = spec.self_signed
    if not isinstance(trusted, Trusted) or ss is None:
        return spec, keys
    if trusted.issuer and trusted.issuer != ss.issuer:
        ss = replace(ss, issuer=trusted.issuer)
    if ss.shared_secret and trusted.shared_secret and trusted.shared_secret != ss.shared_secret:
        # A new shared secret (its rotation) waits: HS tokens stay signed with the one Portworx has.
        observed = gw.read_secret(ctx.namespace, trusted.shared_secret)
        if observed is not None:
            ss = replace(ss, shared_secret=trusted.shared_secret)
            keys = {**keys, trusted.shared_secret: observed.data}
    return replace(spec, self_signed=ss), keys


def ours(rows: Any) -> list[dict[str, Any]]:
    """The rows of `status.tokens` this step writes (the Portworx Operator's carry `mintedBy`)."""
    return [r for r in rows or [] if isinstance(r, dict) and "mintedBy" not in r]


class TokenSync(BaseStep):
    name = "tokens"
    condition = conditions.TOKENS_READY
    needs = ("storagecluster", "rotation", "keys")

    def run(self, ctx: Context) -> Outcome:
        seen: Seen = ctx.product("storagecluster")
        spec = ctx.spec
        spec, keys = trusted_view(self.gw, ctx, spec, ctx.product("keys"))
        out = self.sync(ctx.cr, spec, keys, ctx.now, seen.coexistence)
        return Outcome(conditions=[c for c in (out.condition,) if c is not None],
                       status={"tokens": out.entries,
                               "nextRenewal": rfc3339(out.next_renewal) if out.next_renewal else None},
                       events=out.events, wake=out.next_renewal, product=out.current)

    def kept(self, old_status: Mapping[str, Any]) -> dict[str, Any]:
        return {"tokens": ours(old_status.get("tokens")), "nextRenewal": old_status.get("nextRenewal")}

    def blocked(self, ctx: Context, by: str) -> Outcome:
        return super().blocked(ctx, by) if ctx.spec.tokens else Outcome(status=self.kept(ctx.old_status))

    def sync(self, cr: Mapping[str, Any], spec: PxSecuritySpec, key_data: Mapping[str, Mapping[str, bytes]],
             now: dt.datetime, co: coexist.Coexistence | None = None) -> TokensOutcome:
        out = TokensOutcome()
        if not spec.tokens:
            return out
        co = co or coexist.Coexistence()
        ns, cr_name = str(cr["metadata"]["namespace"]), str(cr["metadata"]["name"])
        ring = tokens.KeyRing.from_secrets(spec, key_data)
        problems: list[str] = []
        theirs = [t.secret_name for t in spec.tokens if t.secret_name in co.operator_tokens]
        for token in spec.tokens:
            if token.secret_name in co.operator_tokens:
                continue  # the Portworx Operator's: never written here (checked by TokensAcceptedCheck)
            try:
                entry, renewal = self._ensure(cr, ns, cr_name, spec, token, ring, now, out)
            except ValueError as exc:  # NoSigningKey, SigningError, or a lifetime the minting code refuses
                problems.append(f"{token.secret_name}: {exc}")
                continue
            out.entries.append(entry)
            if out.next_renewal is None or renewal < out.next_renewal:
                out.next_renewal = renewal
        left = ""
        if theirs and co.cluster is not None:
            left = (f"; {', '.join(theirs)} listed in spec.tokens but minted by the Portworx Operator for "
                    f"StorageCluster {co.cluster.name}, so not here: remove them from spec.tokens")
        if problems:
            out.condition = conditions.false(conditions.TOKENS_READY, "CannotSign", " | ".join(problems) + left)
        else:
            out.condition = conditions.true(conditions.TOKENS_READY, "TokensValid",
                                            f"{len(out.entries)} token(s) minted and current{left}")
        if left and left not in _previous_message(cr, conditions.TOKENS_READY):
            out.events.append(Event("Warning", "TokenLeftToPortworxOperator", left[2:]))
        return out

    def _ensure(self, cr: Mapping[str, Any], ns: str, cr_name: str, spec: PxSecuritySpec, token: TokenSpec,
                ring: tokens.KeyRing, now: dt.datetime, out: TokensOutcome) -> tuple[dict[str, Any], dt.datetime]:
        labels, annotations = keyplan.desired_metadata(
            cr_name, TOKEN_PURPOSE, spec.secret_template.labels, spec.secret_template.annotations)
        owner = owner_reference(cr, controller=False)
        owners = [owner]
        # Created with our markers and the owner reference, which never change for a token Secret: the
        # metadata apply is only needed for template entries.
        fixed = Fixed(*keyplan.desired_metadata(cr_name, TOKEN_PURPOSE, {}, {}), owners=(owner,))
        for _attempt in range(3):
            observed = self.gw.read_secret(ns, token.secret_name)
            existing = observed.data.get(KEY_AUTH_TOKEN) if observed else None
            recorded = observed.annotations.get(KEY_FINGERPRINT_ANNOTATION) if observed else None
            text = existing.decode("ascii", "replace") if existing else None
            reason, times = _judge_existing(text, token, spec, ring, recorded, now)
            if reason == tokens.NO_SIGNING_KEY:
                kind = tokens.choose_signing_key(token, spec, ring)
                raise tokens.NoSigningKey(
                    f"no usable {kind or 'signing'} key to sign with (is its Secret's private.pem present?)")
            if reason is None and text is not None and times is not None:
                out.current[token.secret_name] = text
                kind = tokens.choose_signing_key(token, spec, ring) or ""
                expires, renewal = times
                sync_metadata(self.gw, ns, token.secret_name, labels, annotations, owners, observed, fixed=fixed)
                return self._entry(token, expires, renewal, kind), renewal
            minted = tokens.mint(token, spec, ring, now)
            data = {KEY_AUTH_TOKEN: minted.token.encode("ascii")}
            try:
                if observed is None:
                    written = self.gw.create_secret(
                        ns, token.secret_name, data, fixed.labels,
                        {**fixed.annotations, KEY_FINGERPRINT_ANNOTATION: minted.key_fingerprint}, owners=owners)
                else:
                    written = self.gw.update_secret_data(ns, token.secret_name, data,
                                                         {KEY_FINGERPRINT_ANNOTATION: minted.key_fingerprint},
                                                         observed.resource_version)
            except Conflict:
                continue
            out.current[token.secret_name] = minted.token
            # The fingerprint annotation belongs to the data writes above; the metadata manager owns the rest.
            sync_metadata(self.gw, ns, token.secret_name, labels, annotations, owners, written, fixed=fixed)
            out.events.append(Event("Normal", "TokenMinted", (
                f"minted {token.secret_name} ({reason}) with the {minted.signing_key} key ({minted.algorithm}); "
                f"expires {rfc3339(minted.expires_at)}, renewal at {rfc3339(minted.renewal_time)}")))
            return self._entry(token, minted.expires_at, minted.renewal_time, minted.signing_key), minted.renewal_time
        raise Conflict(f"Secret {token.secret_name} kept changing while being reconciled", 409)

    @staticmethod
    def _entry(token: TokenSpec, expires: dt.datetime, renewal: dt.datetime, kind: str) -> dict[str, Any]:
        return {"secretName": token.secret_name, "expiresAt": rfc3339(expires), "renewalTime": rfc3339(renewal),
                "signingKey": kind}
