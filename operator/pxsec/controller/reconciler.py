"""Reconcile one PxSecurity: read it live, run each step, compute conditions, write only the difference.

Steps are separate modules (keys now; OIDC probe, tokens and rendering plug in the same way), each
returning a condition and the Events worth telling. Status is written only when it differs from what
is there, so a reconcile of a Ready resource changes no resourceVersion anywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pxsec import coexist, conditions, keyplan
from pxsec.coexist import TokensJudged
from pxsec.conditions import Condition, rfc3339
from pxsec.controller.gateway import GatewayError, GatewayPort, NamespaceTerminating
from pxsec.controller.keysync import KeysOutcome, KeySync
from pxsec.controller.objectmeta import cr_ref
from pxsec.controller.oidcsync import OIDCOutcome, OIDCSync
from pxsec.controller.paramsync import ParamsOutcome, ParamSync, storagecluster_name
from pxsec.controller.portworxsync import PortworxSync
from pxsec.controller.tokensync import TokensOutcome, TokenSync
from pxsec.controller.workqueue import Outcome
from pxsec.events import Event, coalesce
from pxsec.render import configmap_name
from pxsec.spec import PxSecuritySpec, SpecError, parse_spec

logger = logging.getLogger("pxsec.controller.reconciler")

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
    optional = {"issuer": sc.issuer, "sharedSecret": sc.shared_secret, "deleteStrategy": sc.delete_strategy,
                "deleting": sc.deleting or None}
    return {"name": sc.name, "exists": sc.exists, "securityEnabled": sc.auth_enabled,
            **{k: v for k, v in optional.items() if v is not None}}


REFUSED = frozenset({400, 403, 413, 422})  # a request the API server refuses as such, not for now
FIRST_RETRY = 5.0
MAX_RETRY = 300.0
T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    """An exception as one line for a condition: its type and the start of its message. Core exceptions
    never carry key material (the core's rule); the cap keeps a runaway message out of status."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _blocked(type_: str) -> Condition:
    return Condition(type_, None, "KeysUnavailable", "not checked: the key material could not be reconciled")


class _Steps:
    """Runs the reconcile steps so that one bad object never wedges its reconcile: an exception from the
    core becomes a False condition of the step's type with reason InternalError, a request the API server
    refuses (400, 403, 413, 422) one with reason RejectedByAPIServer or Forbidden, and the other steps
    still run. Transient API errors (unavailable, throttled, conflicts) go to the work queue's back-off."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self._conditions: dict[str, Condition] = {}

    def run(self, step: str, type_: str, call: Callable[[], T], fallback: T) -> T:
        try:
            return call()
        except NamespaceTerminating:
            raise
        except GatewayError as exc:
            if exc.status not in REFUSED:
                raise  # unavailable, throttled, raced: the work queue retries with back-off
            # The API server refused what this object makes us send: that will not change by retrying
            # at once, so it is said on the object (and looked at again with back-off).
            logger.warning("%s/%s: the %s step was refused: %s", *self.key, step, exc)
            reason = "Forbidden" if exc.status == 403 else "RejectedByAPIServer"
            self._conditions[step] = conditions.false(type_, reason, f"the {step} step was refused: {exc}")
            return fallback
        except Exception as exc:
            logger.warning("%s/%s: the %s step failed: %s", *self.key, step, _describe(exc))
            self._conditions[step] = conditions.false(type_, "InternalError",
                                                      f"the {step} step failed: {_describe(exc)}")
            return fallback

    def failed(self, step: str) -> bool:
        return step in self._conditions

    def condition(self, step: str) -> Condition | None:
        return self._conditions.get(step)

    @property
    def any_failed(self) -> bool:
        return bool(self._conditions)


@dataclass
class Result:
    outcome: Outcome
    dependencies: set[Dependency] = field(default_factory=set)


class Reconciler:
    def __init__(self, gateway: GatewayPort, clock: Callable[[], dt.datetime] = _now) -> None:
        self.gw = gateway
        self.clock = clock
        self.keys = KeySync(gateway)
        self.tokens = TokenSync(gateway)
        self.params = ParamSync(gateway)
        self.oidc = OIDCSync(gateway)  # one prober (and its cache) for every resource
        self.portworx = PortworxSync(gateway)
        self._failures: dict[Key, int] = {}  # consecutive reconciles with a failed step, per key

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
        except Exception as exc:  # SpecError, or anything a spec the API server let through provokes
            message = str(exc) if isinstance(exc, SpecError) else f"the spec cannot be read: {_describe(exc)}"
            cond = conditions.false(conditions.READY, "InvalidSpec", message)
            self._write_status(cr, {"observedGeneration": generation}, [cond], old_status,
                               [Event("Warning", "InvalidSpec", message)])
            return Result(Outcome())

        deps = dependencies_of(namespace, name, spec)
        if watch is not None:
            watch(deps)
        now = self.clock()
        steps = _Steps(key)
        try:
            storagecluster = (self.gw.read_storagecluster(namespace, storagecluster_name(spec, name))
                              if spec.storage_cluster.targeted else None)
            co = steps.run("coexistence", conditions.STORAGECLUSTER_APPLIED,
                           lambda: coexist.plan(spec, name, storagecluster),
                           coexist.Coexistence(targeted=spec.storage_cluster.targeted))
            keys = steps.run("keys", conditions.KEYS_READY, lambda: self.keys.run(cr, spec, co), KeysOutcome())
            if steps.failed("keys"):
                minted = TokensOutcome(condition=_blocked(conditions.TOKENS_READY)) if spec.tokens else TokensOutcome()
            else:
                minted = steps.run("tokens", conditions.TOKENS_READY,
                                   lambda: self.tokens.run(cr, spec, keys.data, now, co), TokensOutcome())
            params = steps.run("parameters", conditions.PARAMETERS_RENDERED,
                               lambda: self.params.run(cr, spec, co, storagecluster), ParamsOutcome())
            probed = steps.run("oidc", conditions.OIDC_READY, lambda: self.oidc.run(cr, spec, now), OIDCOutcome())
            judged = TokensJudged() if steps.failed("keys") else steps.run(
                "portworx", conditions.TOKENS_ACCEPTED,
                lambda: self.portworx.run(cr, spec, co, keys.data, minted.current, now), TokensJudged())
        except NamespaceTerminating:
            logger.info("%s/%s: namespace is being deleted; not recreating anything", namespace, name)
            return Result(Outcome())
        keys.condition = steps.condition("keys") or keys.condition
        minted.condition = steps.condition("tokens") or minted.condition
        params.conditions = [c for c in (steps.condition("parameters"), steps.condition("coexistence")) if c] \
            or params.conditions
        probed.condition = steps.condition("oidc") or probed.condition
        judged.condition = steps.condition("portworx") or judged.condition
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
        # What a failed step would have reported is kept as it was: status.secrets in particular holds
        # the fingerprints and revisions that tell a lost Secret from a new one.
        for step, fields in (("keys", ("secrets",)), ("tokens", ("tokens", "nextRenewal")),
                             ("parameters", ("parameters",)), ("oidc", ("oidc",))):
            if steps.failed(step):
                for field_name in fields:
                    status[field_name] = old_status.get(field_name)
        self._write_status(cr, status, [ready, *components, *informational], old_status, events)
        retry = self._retry_after(key, steps.any_failed)
        requeue = conditions.next_wake(now, [
            minted.next_renewal, probed.next_probe, judged.next_check,
            now + dt.timedelta(seconds=retry) if retry is not None else None,
            now + dt.timedelta(seconds=params.recheck_after) if params.recheck_after is not None else None])
        self.observe(key, spec, status, [ready, *components])
        return Result(Outcome(requeue_after=requeue), deps)

    def observe(self, key: Key, spec: PxSecuritySpec, status: Mapping[str, Any], conds: list[Condition]) -> None:
        """Hook: called at the end of every full reconcile with what it computed (metrics); no-op here."""

    def _retry_after(self, key: Key, failed: bool) -> float | None:
        """After a step failed: look again later, backing off (5 s doubling to 5 min), with the failure
        already in status — not a tight loop, and not a stale object."""
        if not failed:
            self._failures.pop(key, None)
            return None
        count = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(MAX_RETRY, FIRST_RETRY * 2 ** (count - 1)))

    def _write_status(self, cr: Mapping[str, Any], fields: dict[str, Any], conds: list[Condition],
                      old: Mapping[str, Any], events: list[Event]) -> None:
        generation = int(cr["metadata"].get("generation", 0))
        new = dict(fields)
        new["conditions"] = conditions.merge(old.get("conditions") or [], conds, generation, rfc3339(self.clock()))
        events = events + conditions.warnings(old.get("conditions") or [], conds)
        changed = sorted(k for k, v in new.items() if old.get(k) != v)
        ref = cr_ref(cr)
        if changed:
            self.gw.patch_status(ref.namespace, ref.name, new)
            logger.info("%s/%s: status updated (%s; Ready=%s, %s)", ref.namespace, ref.name, ", ".join(changed),
                        new["conditions"][0]["status"], new["conditions"][0]["reason"])
        for ev in coalesce(events):
            self.gw.event(ref, ev.type, ev.reason, ev.message)
