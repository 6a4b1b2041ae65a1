"""Reconcile one PxSecurity: read it fresh, run each step, compute conditions, write only the difference.

Steps are separate modules (keys now; OIDC probe, tokens and rendering plug in the same way), each
returning a condition and the Events worth telling. Status is written only when it differs from what
is there, so a reconcile of a Ready resource changes no resourceVersion anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pxsec import coexist, conditions, keyplan
from pxsec.conditions import Condition, rfc3339
from pxsec.gateway import Gateway, NamespaceTerminating
from pxsec.keysync import Event, KeySync, cr_ref
from pxsec.oidcsync import OIDCSync
from pxsec.paramsync import ParamSync, storagecluster_name
from pxsec.portworxsync import PortworxSync
from pxsec.render import configmap_name
from pxsec.spec import PxSecuritySpec, SpecError, parse_spec
from pxsec.tokensync import TokenSync
from pxsec.workqueue import Outcome

logger = logging.getLogger("pxsec.reconciler")

Key = tuple[str, str]  # (namespace, name)
Dependency = tuple[str, str, str]  # (kind, namespace, name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def issuers_summary(spec: PxSecuritySpec) -> str:
    parts = []
    if spec.oidc is not None:
        parts.append("oidc")
    if spec.self_signed is not None:
        parts.append("self-signed")
    return ",".join(parts) or "none"


def dependencies_of(namespace: str, name: str, spec: PxSecuritySpec) -> set[Dependency]:
    """The objects whose changes should wake this resource up."""
    deps = {("Secret", namespace, r.name) for r in keyplan.requirements(spec)}
    deps |= {("Secret", namespace, t.secret_name) for t in spec.tokens}
    if spec.oidc and spec.oidc.certificate_authority:
        deps.add(("ConfigMap", namespace, spec.oidc.certificate_authority.config_map))
    deps.add(("ConfigMap", namespace, configmap_name(name)))
    if spec.storage_cluster.targeted:
        # Beside the Portworx Operator: its tokens are checked, the StorageCluster's security settings
        # and deleteStrategy decide who writes what, and the retained copy may be needed.
        deps.add(("StorageCluster", namespace, storagecluster_name(spec, name)))
        deps |= {("Secret", namespace, t) for t in coexist.OPERATOR_TOKENS}
        deps |= {("Secret", namespace, n) for n in coexist.UNINSTALL_DELETES}
        deps.add(("Secret", namespace, coexist.retained_secret_name(name)))
    return deps


def storagecluster_status(co: coexist.Coexistence) -> dict[str, Any] | None:
    """`status.storageCluster`: what the targeted StorageCluster tells Portworx (names, never values)."""
    sc = co.cluster
    if sc is None:
        return None
    out: dict[str, Any] = {"name": sc.name, "exists": sc.exists, "securityEnabled": sc.auth_enabled}
    if sc.issuer is not None:
        out["issuer"] = sc.issuer
    if sc.shared_secret is not None:
        out["sharedSecret"] = sc.shared_secret
    if sc.delete_strategy is not None:
        out["deleteStrategy"] = sc.delete_strategy
    if sc.deleting:
        out["deleting"] = True
    return out


@dataclass
class Result:
    outcome: Outcome
    dependencies: set[Dependency] = field(default_factory=set)


class Reconciler:
    def __init__(self, gateway: Gateway, clock: Callable[[], dt.datetime] = _now) -> None:
        self.gw = gateway
        self.clock = clock
        self.keys = KeySync(gateway)
        self.tokens = TokenSync(gateway)
        self.params = ParamSync(gateway)
        self.oidc = OIDCSync(gateway)  # one prober (and its cache) for every resource
        self.portworx = PortworxSync(gateway)

    def reconcile(self, key: Key, watch: Callable[[set[Dependency]], None] | None = None) -> Result:
        """Bring one PxSecurity's world in line with its spec. `watch` is told the objects it depends on
        as soon as the spec is known, before any of them is read."""
        namespace, name = key
        cr = self.gw.get_pxsecurity(namespace, name)
        if cr is None or cr["metadata"].get("deletionTimestamp"):
            return Result(Outcome())  # gone or going: nothing to ensure (Retain needs no cleanup)
        generation = int(cr["metadata"].get("generation", 0))
        old_status: Mapping[str, Any] = cr.get("status") or {}
        events: list[Event] = []
        try:
            spec = parse_spec(cr.get("spec"))
        except SpecError as exc:
            cond = conditions.false(conditions.READY, "InvalidSpec", str(exc))
            self._write_status(cr, {"observedGeneration": generation}, [cond], old_status,
                               [Event("Warning", "InvalidSpec", str(exc))])
            return Result(Outcome())

        deps = dependencies_of(namespace, name, spec)
        if watch is not None:
            watch(deps)
        now = self.clock()
        try:
            storagecluster = (self.gw.read_storagecluster(namespace, storagecluster_name(spec, name))
                              if spec.storage_cluster.targeted else None)
            co = coexist.plan(spec, name, storagecluster)
            keys = self.keys.run(cr, spec, co)
            minted = self.tokens.run(cr, spec, keys.data, now, co)
            params = self.params.run(cr, spec, co, storagecluster)
            probed = self.oidc.run(cr, spec, now)
            judged = self.portworx.run(cr, spec, co, keys.data, minted.current, now)
        except NamespaceTerminating:
            logger.info("%s/%s: namespace is being deleted; not recreating anything", namespace, name)
            return Result(Outcome())
        events += keys.events + minted.events + params.events
        components: list[Condition] = [
            c for c in (keys.condition, probed.condition, minted.condition) if c is not None]
        components += params.conditions
        if judged.condition is not None:
            components.append(judged.condition)
        ready = conditions.ready(components)
        informational = [c for c in (keys.retained,) if c is not None]
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "issuers": issuers_summary(spec),
            "secrets": keys.entries,
            "tokens": minted.entries + judged.entries,
            "nextRenewal": rfc3339(minted.next_renewal) if minted.next_renewal else None,
            "parameters": {"configMapName": params.configmap, "hash": params.hash},
            "oidc": probed.status,
            "storageCluster": storagecluster_status(co),
        }
        self._write_status(cr, status, [ready, *components, *informational], old_status, events)
        due = [t for t in (minted.next_renewal, probed.next_probe, judged.next_check) if t is not None]
        if params.recheck_after is not None:
            due.append(now + dt.timedelta(seconds=params.recheck_after))
        requeue = max(1.0, (min(due) - now).total_seconds()) if due else None
        return Result(Outcome(requeue_after=requeue), deps)

    def _write_status(self, cr: Mapping[str, Any], fields: dict[str, Any], conds: list[Condition],
                      old: Mapping[str, Any], events: list[Event]) -> None:
        generation = int(cr["metadata"].get("generation", 0))
        new = dict(fields)
        new["conditions"] = conditions.merge(old.get("conditions") or [], conds, generation, rfc3339(self.clock()))
        # Tell a person when a condition turns bad or changes its reason (not on every reconcile).
        before = {c.get("type"): c for c in old.get("conditions") or []}
        for cond in conds:
            prev = before.get(cond.type)
            if cond.status is False and cond.type != conditions.READY and (
                    prev is None or prev.get("reason") != cond.reason or prev.get("message") != cond.message):
                events.append(Event("Warning", cond.reason, cond.message))
        changed = sorted(k for k, v in new.items() if old.get(k) != v)
        ref = cr_ref(cr)
        if changed:
            self.gw.patch_status(ref.namespace, ref.name, new)
            logger.info("%s/%s: status updated (%s; Ready=%s, %s)", ref.namespace, ref.name, ", ".join(changed),
                        new["conditions"][0]["status"], new["conditions"][0]["reason"])
        for ev in events:
            self.gw.event(ref, ev.type, ev.reason, ev.message)
