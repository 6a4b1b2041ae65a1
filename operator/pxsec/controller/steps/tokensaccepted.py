"""The step that checks the cluster's tokens the way Portworx will see them, beside the Portworx Operator:
its own `px-admin-token` / `px-user-token` (which we never write) and ours, verified with the issuer and
keys the targeted StorageCluster names (`pxsec.coexist.judge_tokens`). Reads only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pxsec import coexist, conditions
from pxsec.coexist import PORTWORX_OPERATOR, PXSECURITY, TokenCheck
from pxsec.controller.kube.gateway import GatewayPort
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.storagecluster import Seen
from pxsec.spec import KEY_AUTH_TOKEN


def key_secrets(gw: GatewayPort, namespace: str, key_data: Mapping[str, Mapping[str, bytes]],
                clusters: Iterable[coexist.StorageClusterView]) -> dict[str, Mapping[str, bytes] | None]:
    """The key Secrets' data Portworx would verify with: ours, and those each StorageCluster view names that
    are not ours (apply: false, or a conflict): its shared secret, the Secrets behind its public keys."""
    secrets: dict[str, Mapping[str, bytes] | None] = dict(key_data)
    for sc in clusters:
        for name in coexist.mounted_secrets(sc):
            if name not in secrets:
                observed = gw.read_secret(namespace, name)
                secrets[name] = observed.data if observed is not None else None
    return secrets


def theirs(rows: Any) -> list[dict[str, Any]]:
    """The rows of `status.tokens` this step writes: the Portworx Operator's tokens."""
    return [r for r in rows or [] if isinstance(r, dict) and "mintedBy" in r]


class TokensAcceptedCheck(BaseStep):
    name = "tokensaccepted"
    condition = conditions.TOKENS_ACCEPTED
    needs = ("storagecluster", "keys", "tokens")

    def kept(self, old_status: Mapping[str, Any]) -> dict[str, Any]:
        return {"tokens": theirs(old_status.get("tokens"))}

    def blocked(self, ctx: Context, by: str) -> Outcome:
        return Outcome(status=self.kept(ctx.old_status))  # as before: nothing to say until keys are in

    def run(self, ctx: Context) -> Outcome:
        seen: Seen = ctx.product("storagecluster")
        co = seen.coexistence
        if not co.checks_tokens or co.cluster is None:
            return Outcome(status={"tokens": []})
        ns, spec = ctx.namespace, ctx.spec
        ours: Mapping[str, str] = ctx.product("tokens")
        sc = co.cluster
        secrets = key_secrets(self.gw, ns, ctx.product("keys"), [sc])
        checks = [TokenCheck(name, PXSECURITY, token) for name, token in sorted(ours.items())]
        for name in sorted(co.operator_tokens):
            observed = self.gw.read_secret(ns, name)
            value = observed.data.get(KEY_AUTH_TOKEN) if observed is not None else None
            checks.append(TokenCheck(name, PORTWORX_OPERATOR, value.decode("ascii", "replace") if value else None))
        judged = coexist.judge_tokens(spec, co, checks, coexist.verify_keys_for(spec, sc, secrets), ctx.now)
        return Outcome(conditions=[c for c in (judged.condition,) if c is not None],
                       status={"tokens": judged.entries}, wake=judged.next_check)
