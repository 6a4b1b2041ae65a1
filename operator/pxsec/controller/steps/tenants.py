"""The step that keeps every tenant's token in every namespace its selector picks (`pxsec.tenants` decides).

It reads nothing of its own: Namespaces, tenant Secrets and PersistentVolumes come from the watches (the
gateway answers from the store), so a pass that finds every token current makes no request, whatever the
number of namespaces. It writes what the plan says — a create per new namespace, a guarded update per token
due or changed, a guarded delete per Secret that leaves under onNamespaceExit: Delete — a few at a time,
and says it once per reconcile (one Event with the counts, never one per namespace).

Tenant tokens are signed like spec.tokens: the key the tenant names, or the best available, under the
issuer Portworx trusts now (while a new issuer or shared secret waits for approval), and a rotation moves
RSA/ECDSA tokens with it (the effective spec).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
from collections.abc import Mapping
from typing import Any

from pxsec import conditions, keyplan, tenants, tokens
from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import Conflict, GatewayError, GatewayPort
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.rotation import DELETE_GRANT
from pxsec.controller.steps.tokens import trusted_view
from pxsec.events import Event
from pxsec.spec import KEY_AUTH_TOKEN, PxSecuritySpec, TenantSpec, TokenSpec

WRITERS = 8  # writes in flight at once: 2,000 namespaces are 2,000 creates
WAIT = dt.timedelta(seconds=2)  # a listing not in yet, or a write that raced: looked at again this soon
PURPOSE = "tenant-token"
FORBIDDEN_PAUSE = dt.timedelta(minutes=10)  # after a refused delete: the RBAC is not granted in a second


def token_spec(tenant: TenantSpec) -> TokenSpec:
    return TokenSpec(tenant.secret_name, tenant.roles, tenant.groups, tenant.signing_key)


class TenantSync(BaseStep):
    name = "tenants"
    condition = conditions.TENANTS_READY
    needs = ("storagecluster", "rotation", "keys")
    fields = ("tenants",)

    def __init__(self, gateway: GatewayPort) -> None:
        super().__init__(gateway)
        self.forbidden_until: dt.datetime | None = None  # a delete was refused (403): not tried before then

    def run(self, ctx: Context) -> Outcome:
        spec = ctx.spec
        if not spec.tenants or spec.self_signed is None:
            return Outcome(status={"tenants": None})
        spec, keys = trusted_view(self.gw, ctx, spec, ctx.product("keys"))
        assert spec.self_signed is not None
        ring = tokens.KeyRing.from_secrets(spec, keys)
        desired: dict[str, tenants.Desired] = {}
        signers: dict[str, str | None] = {}
        for tenant in spec.tenants:
            kind = tokens.choose_signing_key(token_spec(tenant), spec, ring)
            lifetime = tokens.parse_lifetime(tenant.token_lifetime or spec.self_signed.token_lifetime)
            fingerprint = tokens.key_fingerprint(kind, ring) if kind else ""
            desired[tenant.name] = tenants.Desired(
                tenants.digest(tenant, spec.self_signed.issuer, fingerprint, lifetime) if kind else None, lifetime)
            signers[tenant.name] = kind
        namespaces = self.gw.namespaces()
        if namespaces is None:
            return self._unchanged(ctx)
        existing = {(e.namespace, e.name): e for t in {t.secret_name for t in spec.tenants}
                    for e in self.gw.tenant_secrets(t)}
        cr = f"{ctx.namespace}/{ctx.name}"
        ours = [e for e in self.gw.tenant_secrets() if e.annotation(tenants.PXSECURITY_ANNOTATION) == cr]
        volumes = self.gw.volume_secrets()

        def used(namespace: str, name: str) -> str | None:
            if volumes is None:
                return "(unknown: the volumes cannot be seen by this install)"
            return volumes.get((namespace, name))

        p = tenants.plan(cr, ctx.namespace, spec.tenants, desired, namespaces, existing, ours, used,
                         self.gw.serves, self.gw.secrets_listed, ctx.now)
        by_name = {t.name: t for t in spec.tenants}
        done, raced = self._write(ctx, spec, p, by_name, desired, signers, ring)
        if p.waiting and not done:
            return self._unchanged(ctx)
        return self._outcome(ctx, p, done, raced)

    def _unchanged(self, ctx: Context) -> Outcome:
        """Just started: a listing (the namespaces, the Secrets of some) is not in yet. What was said stays
        said — a restart changes nothing on the object — and the listing's news wakes this PxSecurity."""
        before = next((c for c in ctx.old_status.get("conditions") or []
                       if isinstance(c, Mapping) and c.get("type") == self.condition), None)
        said = (Condition(self.condition, {"True": True, "False": False}.get(str(before.get("status"))),
                          str(before.get("reason") or ""), str(before.get("message") or ""))
                if before else Condition(self.condition, None, "Waiting", "the namespaces are being listed"))
        return Outcome(conditions=[said], status=self.kept(ctx.old_status), wake=ctx.now + WAIT)

    def _write(self, ctx: Context, spec: PxSecuritySpec, p: tenants.Plan, by_name: Mapping[str, TenantSpec],
               desired: Mapping[str, tenants.Desired], signers: Mapping[str, str | None],
               ring: tokens.KeyRing) -> tuple[list[tuple[tenants.Write, dt.datetime | None]], int]:
        """Carry out the plan's writes, a few at a time. The writes that succeeded (with the renewal of the
        token written), and how many raced."""
        assert spec.self_signed is not None
        issuer = spec.self_signed.issuer
        cr = f"{ctx.namespace}/{ctx.name}"
        labels, template = keyplan.desired_metadata(ctx.name, PURPOSE, spec.secret_template.labels,
                                                    spec.secret_template.annotations)

        def one(w: tenants.Write) -> tuple[tenants.Write, dt.datetime | None] | None:
            try:
                if w.action == "delete":
                    try:
                        self.gw.delete_secret(w.namespace, w.secret, w.uid, w.version)
                    except GatewayError as exc:
                        if exc.status != 403:
                            raise
                        refused.append(w)
                        return None
                    return w, None
                tenant, want, kind = by_name[w.tenant], desired[w.tenant], signers[w.tenant]
                assert kind is not None
                claims = tokens.identity_claims(issuer, tenants.identity(tenant), ctx.now, want.lifetime)
                token, _ = tokens.sign_claims(claims, kind, ring)
                renew = tenants.renewal(tenant.name, w.namespace, ctx.now, want.lifetime)
                marked = {**labels, tenants.TENANT_LABEL: tenant.name}
                annotations = {**template, **tenants.secret_annotations(cr, want, renew)}
                data = {KEY_AUTH_TOKEN: token.encode("ascii")}
                if w.action == "create":
                    self.gw.create_secret(w.namespace, w.secret, data, marked, annotations)
                else:
                    self.gw.patch_tenant_secret(w.namespace, w.secret, data, marked, annotations, w.version)
                return w, renew
            except Conflict:
                return None  # someone wrote it meanwhile: the watch says what, and the next pass decides

        refused: list[tenants.Write] = []
        if self.forbidden_until is not None and ctx.now < self.forbidden_until:
            # Refused before (no delete permission): not asked again for a while, said instead.
            refused = [w for w in p.writes if w.action == "delete"]
            p.writes = [w for w in p.writes if w.action != "delete"]
        if p.writes:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(WRITERS, len(p.writes)),
                                                       thread_name_prefix="pxsec-tenants") as pool:
                results = list(pool.map(one, p.writes))
        else:
            results = []
        done = [r for r in results if r is not None]
        if refused:
            if self.forbidden_until is None or ctx.now >= self.forbidden_until:
                self.forbidden_until = ctx.now + FORBIDDEN_PAUSE
            for w in refused:
                if w.tenant in p.reports:
                    p.reports[w.tenant].problem(
                        f"Secret {w.namespace}/{w.secret} is kept although its namespace left the tenant "
                        f"(onNamespaceExit Delete): the operator may not delete Secrets; {DELETE_GRANT}")
        return done, len(results) - len(done) - sum(1 for w in refused if w in p.writes)

    def _outcome(self, ctx: Context, p: tenants.Plan, done: list[tuple[tenants.Write, dt.datetime | None]],
                 raced: int) -> Outcome:
        counts: dict[str, dict[str, int]] = {}
        for w, renew in done:
            counts.setdefault(w.tenant, {}).setdefault(w.action, 0)
            counts[w.tenant][w.action] += 1
            report = p.reports.get(w.tenant)
            if report is not None and renew is not None:
                report.ready += 1
                report.renews(renew)
        events = []
        if counts:
            words = {"create": "created", "update": "renewed or re-minted", "delete": "deleted"}
            said = "; ".join(f"{t}: " + ", ".join(f"{n} {words[a]}" for a, n in sorted(c.items()))
                             for t, c in sorted(counts.items()))
            events.append(Event("Normal", "TenantTokensWritten", f"tenant token Secrets: {said}"))
        selected = sum(r.selected for r in p.reports.values())
        ready = sum(r.ready for r in p.reports.values())
        problems = [f"{r.name}: {text}" for r in p.reports.values() for text in r.problems]
        if problems:
            cond = conditions.false(self.condition, "TenantProblems", f"{ready}/{selected} selected namespaces hold "
                                    f"their tenant's current token; " + "; ".join(problems[:3])
                                    + (f"; and {len(problems) - 3} more (status.tenants)" if len(problems) > 3 else ""))
        elif p.waiting or raced or ready < selected:
            cond = Condition(self.condition, None, "Progressing",
                             f"{ready}/{selected} selected namespaces hold their tenant's current token")
        else:
            cond = conditions.true(self.condition, "TenantsReady",
                                   f"{ready}/{selected} selected namespaces hold their tenant's current token")
        renewals = [r.next_renewal for r in p.reports.values() if r.next_renewal is not None]
        wake = min(renewals) if renewals else None
        if p.waiting or raced:
            wake = ctx.now + WAIT
        status: dict[str, Any] = {"tenants": tenants.status(p.reports)}
        return Outcome(conditions=[cond], status=status, events=events, wake=wake)
