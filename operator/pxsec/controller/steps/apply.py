"""The step that merges the rendered settings into the StorageCluster (`spec.storageCluster.apply`), and
never surprises a running cluster: a change that would restart Portworx pods or make tokens fail
(`pxsec.impact`) on a StorageCluster that runs waits for approval under `changePolicy: Manual` — announced
in `status.pendingChange`, on StorageClusterApplied (reason AwaitingApproval, which is also a Warning Event
whenever it starts or its message changes) — and
is applied once `approvedChange` names its id. A StorageCluster that runs nothing yet gets it at once.
While a new issuer or shared secret waits, the product of this step is what Portworx trusts now (`Trusted`),
and `TokenSync` mints under it: our tokens keep working until the change is approved.

The merge itself is `scmerge.merge` (everything else the user set stays), sent as a JSON merge patch
guarded by the resourceVersion it was computed from.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec import coexist, conditions, impact, render, scmerge, verify
from pxsec.conditions import Condition, rfc3339
from pxsec.controller.kube.gateway import Conflict
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.storagecluster import Seen, storagecluster_name
from pxsec.controller.steps.tokensaccepted import key_secrets
from pxsec.events import Event


@dataclass(frozen=True)
class Trusted:
    """The product while a change waits for approval: what Portworx trusts until it is applied, which
    TokenSync mints under (the issuer; the Secret of the shared secret, e.g. during its rotation)."""

    issuer: str | None
    shared_secret: str | None


class StorageClusterSync(BaseStep):
    """Writes the StorageCluster (a guarded merge patch), or holds a disruptive change for approval."""

    name = "apply"
    condition = conditions.STORAGECLUSTER_APPLIED
    needs = ("storagecluster", "rotation", "keys")
    fields = ("pendingChange",)

    def run(self, ctx: Context) -> Outcome:
        spec = ctx.spec
        if not spec.storage_cluster.apply:
            return Outcome(status={"pendingChange": None})
        seen: Seen = ctx.product("storagecluster")
        sc = seen.coexistence.cluster
        if sc is not None and sc.exists and sc.deleting:
            # Its finalizer holds it while the Portworx Operator uninstalls: writing now would only race it.
            return Outcome(status={"pendingChange": None}, conditions=[conditions.false(
                self.condition, "StorageClusterDeleting",
                f"StorageCluster {sc.name} is being deleted: nothing is applied to it")])
        sc_name = storagecluster_name(spec, ctx.name)
        rendered = render.render(spec, ctx.namespace, "storagecluster", cr_name=ctx.name)
        existing = seen.body
        for attempt in range(3):
            if attempt:
                existing = self.gw.read_storagecluster(ctx.namespace, sc_name)
            if existing is None:  # its appearance is a watch event that wakes us
                return Outcome(status={"pendingChange": None}, conditions=[conditions.false(
                    self.condition, "WaitingForStorageCluster",
                    f"StorageCluster {sc_name} does not exist yet; the settings are applied when it appears")])
            try:
                return self._merge(ctx, sc_name, existing, scmerge.merge(existing, rendered))
            except Conflict:
                continue  # changed since we read it: read again and merge again
        raise Conflict(f"StorageCluster {sc_name} kept changing while being updated", 409)

    def _merge(self, ctx: Context, sc_name: str, existing: Mapping[str, Any], result: scmerge.MergeResult) -> Outcome:
        out = Outcome(status={"pendingChange": None})
        if result.patch is not None:
            nodes = self.gw.count_storagenodes(ctx.namespace)
            live = impact.running(existing, nodes)
            found = impact.assess(existing, result.patch, storage_nodes=nodes,
                                  tokens=self._verdicts(ctx, existing, result.patch) if live else ())
            policy, approved = ctx.spec.storage_cluster.change_policy, ctx.spec.storage_cluster.approved_change
            if impact.waits(found, live, policy, approved):
                return self._waiting(ctx, sc_name, existing, found, approved, result.conflicts)
            self.gw.patch_storagecluster(ctx.namespace, sc_name, result.patch)
            # Judged (status.storageCluster, TokensAccepted) from the StorageCluster before the merge, and the
            # echo of our own write wakes nobody: look again at once.
            out.wake = ctx.now
            out.events.append(Event("Normal", "StorageClusterUpdated",
                                    f"merged the security settings into StorageCluster {sc_name}"
                                    + "".join(f"; {n}" for n in found.notes)))
            if live and found.disruptive:
                how = "approved" if policy == impact.MANUAL else "changePolicy Automatic"
                out.events.append(Event("Normal", "ChangeApplied",
                                        f"applied change {found.id} to StorageCluster {sc_name} ({how}): "
                                        f"{found.summary()}"))
        if result.conflicts:
            out.conditions.append(conditions.false(self.condition, "Conflict", "; ".join(result.conflicts)))
        else:
            out.conditions.append(conditions.true(self.condition, "Applied",
                                                  f"StorageCluster {sc_name} carries the rendered security settings"))
        return out

    def _waiting(self, ctx: Context, sc_name: str, existing: Mapping[str, Any], found: impact.Impact,
                 approved: str | None, conflicts: list[str]) -> Outcome:
        before = ctx.old_status.get("pendingChange") or {}
        same = isinstance(before, Mapping) and before.get("id") == found.id
        pending = {"id": found.id, "effects": [e.as_status() for e in found.effects],
                   "fields": [f.show() for f in found.fields],
                   "since": str(before.get("since")) if same and before.get("since") else rfc3339(ctx.now)}
        message = f"a change to StorageCluster {sc_name} waits for approval: {found.summary()}"
        if approved:
            message += f"; spec.storageCluster.approvedChange {approved} approves another change, not this one"
        message += f"; approve: set spec.storageCluster.approvedChange: {found.id}"
        if conflicts:
            message += "; and: " + "; ".join(conflicts)
        # Until it is applied, our tokens are minted under the issuer and shared secret Portworx trusts now.
        now = coexist.view(sc_name, existing)
        trusted = Trusted(now.issuer, now.shared_secret) if now.auth_enabled else None
        out = Outcome(status={"pendingChange": pending}, product=trusted,
                      conditions=[Condition(self.condition, False, "AwaitingApproval", message)])
        return out  # the condition turning AwaitingApproval is the Warning Event (conditions.warnings)

    def _verdicts(self, ctx: Context, existing: Mapping[str, Any],
                  patch: Mapping[str, Any]) -> list[impact.TokenVerdict]:
        """Every token Secret of the namespace, judged as Portworx would before and after the change."""
        name = storagecluster_name(ctx.spec, ctx.name)
        before = coexist.view(name, existing)
        after = coexist.view(name, scmerge.apply_merge_patch(copy.deepcopy(dict(existing)), copy.deepcopy(dict(patch))))
        secrets = key_secrets(self.gw, ctx.namespace, ctx.product("keys"), [before, after])
        keys = {v: coexist.verify_keys_for(ctx.spec, v, secrets) for v in (before, after)}
        out = impact.our_token_verdicts(ctx.spec, before, after)
        ours = {v.secret_name for v in out}
        for secret, token in sorted(self.gw.list_token_secrets(ctx.namespace).items()):
            if secret in ours:
                continue
            minted_by = coexist.PORTWORX_OPERATOR if secret in coexist.OPERATOR_TOKENS else ""
            # With auth off nothing is checked: every token "works".
            accepted = [not v.auth_enabled or verify.verify(
                token, coexist.portworx_spec(ctx.spec, v), keys[v], ctx.now).accepted for v in (before, after)]
            out.append(impact.TokenVerdict(secret, minted_by, *accepted))
        return out

