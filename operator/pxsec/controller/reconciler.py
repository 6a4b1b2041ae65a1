"""Reconcile one PxSecurity: read it, run the table of steps, compute Ready, write only the difference.

The steps (`steps/`, one job each, one shape) run in the order of `Reconciler.steps`. What is common to
all of them lives here, once: a step that raises becomes a False condition of its type (one bad object
never wedges its reconcile), a step whose needs failed is blocked, a failed or blocked step keeps its
status fields as they were (status.secrets in particular holds the fingerprints and revisions that tell a
lost Secret from a new one), and the earliest wake-up any step asked for becomes the requeue. Status is
written only when it differs from what is there, so a reconcile of a Ready resource changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pxsec import coexist, conditions, keyplan
from pxsec.conditions import Condition, rfc3339
from pxsec.controller import fanout
from pxsec.controller.kube.gateway import GatewayError, GatewayPort, NamespaceTerminating
from pxsec.controller.nodeprobe import NodeProber
from pxsec.controller.oidcprobe import Prober
from pxsec.controller.steps import Context, Outcome, Step
from pxsec.controller.steps.apply import StorageClusterSync
from pxsec.controller.steps.keys import KeySync
from pxsec.controller.steps.metadata import cr_ref
from pxsec.controller.steps.nodes import NodesAcknowledgedCheck
from pxsec.controller.steps.oidc import OIDCCheck
from pxsec.controller.steps.parameters import ParameterSync
from pxsec.controller.steps.rotation import KeyRotationStep
from pxsec.controller.steps.storagecluster import StorageClusterCheck, storagecluster_name
from pxsec.controller.steps.tenants import TenantSync
from pxsec.controller.steps.tokens import TokenSync
from pxsec.controller.steps.tokensaccepted import TokensAcceptedCheck
from pxsec.controller.workqueue import Outcome as Done
from pxsec.events import Event, coalesce
from pxsec.render import configmap_name
from pxsec.spec import PxSecuritySpec, SpecError, parse_spec

logger = logging.getLogger("pxsec.controller.reconciler")

Key = tuple[str, str]  # (namespace, name)
Dependency = tuple[str, str, str]  # (kind, namespace, name)
ANY = "*"  # as a Dependency's name: every object of that kind in the namespace; as its namespace: that name anywhere

REFUSED = frozenset({400, 403, 413, 422})  # a request the API server refuses as such, not for now


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
    if spec.tenants:
        # A namespace labelled in or out, a tenant Secret changed or gone anywhere, a volume released.
        deps.add(("Namespace", "", ANY))
        deps |= {("Secret", ANY, t.secret_name) for t in spec.tenants}
        deps.add(("PersistentVolume", "", ANY))
    if spec.storage_cluster.targeted:
        # Beside the Portworx Operator: its tokens are checked, the StorageCluster's security settings
        # and deleteStrategy decide who writes what, and the retained copy may be needed.
        deps.add(("StorageCluster", namespace, storagecluster_name(spec, name)))
        deps.add(("StorageNode", namespace, ANY))  # a node added, gone or moved: ask the nodes again
        deps |= {("Secret", namespace, t) for t in coexist.OPERATOR_TOKENS}
        deps |= {("Secret", namespace, n) for n in coexist.UNINSTALL_DELETES}
        deps.add(("Secret", namespace, coexist.retained_secret_name(name)))
    return deps


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: a key that is gone is null. (Patching
    with `new` alone would keep, in a nested object, every key it no longer has.)"""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    out: dict[str, Any] = {k: None for k in old if k not in new}
    out.update({k: merge_diff(old.get(k), v) for k, v in new.items() if k not in old or old[k] != v})
    return out


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields this reconcile computed that differ, as a merge patch: fields it does not compute
    (kopf's bookkeeping) are left alone, and a key gone from a nested object is removed."""
    return {k: merge_diff(old.get(k), v) for k, v in new.items() if old.get(k) != v}


def describe(exc: BaseException) -> str:
    """An exception as one line for a condition: its type and the start of its message. Core exceptions
    never carry key material (the core's rule); the cap keeps a runaway message out of status."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def failure(step: Step, exc: Exception) -> Condition | None:
    """The condition a failed step reports, or None when the failure is the work queue's to retry:
    unavailable, throttled, raced (transient API errors) and a namespace being deleted. A request the
    API server refuses as such (400, 403, 413, 422) will not pass by retrying at once, so it is said
    on the object (and looked at again with back-off); so is any exception of the core."""
    if isinstance(exc, NamespaceTerminating):
        return None
    if isinstance(exc, GatewayError):
        if exc.status not in REFUSED:
            return None
        reason = "Forbidden" if exc.status == 403 else "RejectedByAPIServer"
        return conditions.false(step.condition, reason, f"the {step.name} step was refused: {exc}")
    return conditions.false(step.condition, "InternalError", f"the {step.name} step failed: {describe(exc)}")


@dataclass
class Result:
    outcome: Done = field(default_factory=Done)
    dependencies: set[Dependency] = field(default_factory=set)


@dataclass
class Report:
    """What the steps of one reconcile said, merged."""

    conditions: list[Condition] = field(default_factory=list)
    informational: list[Condition] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    wakes: list[dt.datetime] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.conditions += outcome.conditions
        self.informational += outcome.informational
        for name, value in outcome.status.items():
            have = self.status.get(name)
            self.status[name] = have + value if isinstance(have, list) and isinstance(value, list) else value
        self.events += outcome.events
        if outcome.wake is not None:
            self.wakes.append(outcome.wake)


# Steps that are neighbours in the table and independent: none needs another's product, none reads what
# another writes (the key Secrets; the OIDC provider; the parameters ConfigMap, which names the keys, never
# their values). They may run at once (`fanout`: only while one reconcile runs alone), which saves a new
# object one round trip to the API server.
AT_ONCE: tuple[frozenset[str], ...] = (frozenset({"keys", "oidc", "parameters"}),)


def _groups(steps: Sequence[Step], at_once: Sequence[frozenset[str]]) -> list[list[Step]]:
    """The table cut into runs: a step joins the run before it when both are in one AT_ONCE set."""
    groups: list[list[Step]] = []
    for step in steps:
        last = groups[-1] if groups else None
        if last is not None and any(step.name in s and all(x.name in s for x in last) for s in at_once):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _attempt(step: Step, ctx: Context) -> Outcome | Exception:
    try:
        return step.run(ctx)
    except Exception as exc:
        return exc


def run_steps(steps: Sequence[Step], ctx: Context, key: Key,
              at_once: Sequence[frozenset[str]] = AT_ONCE) -> Report:
    """Run the table: each step, or its `blocked` outcome when a step it needs failed. Steps of one
    AT_ONCE run may run at once; their outcomes are taken in table order all the same, and a failure
    that is the work queue's to retry is raised once all of them have ended."""
    report = Report()
    for group in _groups(steps, at_once):
        # None of a run's steps needs another of it: what blocks them is known before any runs.
        blockers = {step.name: next((n for n in step.needs if n in report.failed), None) for step in group}
        runnable = [step for step in group if blockers[step.name] is None]
        done = dict(zip((step.name for step in runnable),
                        fanout.run_all([functools.partial(_attempt, step, ctx) for step in runnable]), strict=True))
        for step in group:
            blocker = blockers[step.name]
            if blocker is not None:
                report.failed.append(step.name)
                report.add(step.blocked(ctx, blocker))
                continue
            result = done[step.name]
            if isinstance(result, Exception):
                cond = failure(step, result)
                if cond is None:
                    raise result
                logger.warning("%s/%s: %s", *key, cond.message)
                report.failed.append(step.name)
                report.add(Outcome(conditions=[cond], status=step.kept(ctx.old_status)))
                continue
            ctx.products[step.name] = result.product
            report.add(result)
    return report


class Reconciler:
    def __init__(self, gateway: GatewayPort, clock: Callable[[], dt.datetime] = _now,
                 prober: Prober | None = None, node_prober: NodeProber | None = None) -> None:
        self.gw = gateway
        self.clock = clock
        # The table, in order (steps/__init__.py has what each needs, reads, writes and keeps).
        self.steps: list[Step] = [StorageClusterCheck(gateway), KeyRotationStep(gateway), KeySync(gateway),
                                  OIDCCheck(gateway, prober), ParameterSync(gateway), StorageClusterSync(gateway),
                                  TokenSync(gateway), TenantSync(gateway), TokensAcceptedCheck(gateway),
                                  NodesAcknowledgedCheck(gateway, node_prober)]

    def reconcile(self, key: Key, watch: Callable[[set[Dependency]], None] | None = None) -> Result:
        """Bring one PxSecurity's world in line with its spec. `watch` is told the objects it depends on
        as soon as the spec is known, before any of them is read."""
        namespace, name = key
        cr = self.gw.get_pxsecurity(namespace, name)
        if cr is None or cr["metadata"].get("deletionTimestamp"):
            return Result()  # gone or going: nothing to ensure (Retain needs no cleanup)
        generation = int(cr["metadata"].get("generation", 0))
        old_status: Mapping[str, Any] = cr.get("status") or {}
        try:
            spec = parse_spec(cr.get("spec"))
        except Exception as exc:  # SpecError, or anything a spec the API server let through provokes
            message = str(exc) if isinstance(exc, SpecError) else f"the spec cannot be read: {describe(exc)}"
            cond = conditions.false(conditions.READY, "InvalidSpec", message)
            stall = conditions.stalled([cond])
            self._write_status(cr, {"observedGeneration": generation}, [cond, *([stall] if stall else [])],
                               old_status, [Event("Warning", "InvalidSpec", message)])
            self.observe(key, None, {}, [cond])
            return Result()

        deps = dependencies_of(namespace, name, spec)
        if watch is not None:
            watch(deps)
        now = self.clock()
        ctx = Context(cr, spec, now)
        try:
            report = run_steps(self.steps, ctx, key)
        except NamespaceTerminating:
            logger.info("%s/%s: namespace is being deleted; not recreating anything", namespace, name)
            return Result()
        if ctx.spec is not spec:  # a rotation keeps keys the spec does not name: they wake this one too
            more = dependencies_of(namespace, name, ctx.spec) - deps
            if more:
                deps |= more
                if watch is not None:
                    watch(deps)
        ready = conditions.ready(report.conditions)
        stall = conditions.stalled(report.conditions)
        status: dict[str, Any] = {"observedGeneration": generation, "issuers": issuers_summary(spec),
                                  **report.status}
        self._write_status(cr, status, [ready, *report.conditions, *([stall] if stall else []),
                                        *report.informational], old_status, report.events)
        self.observe(key, spec, status, [ready, *report.conditions])
        return Result(Done(requeue_after=conditions.next_wake(now, report.wakes), failed=bool(report.failed)), deps)

    def observe(self, key: Key, spec: PxSecuritySpec | None, status: Mapping[str, Any],
                conds: list[Condition]) -> None:
        """Hook: called at the end of every reconcile that wrote a status, with what it computed (metrics);
        `spec` is None when it cannot be read (Ready False, InvalidSpec). No-op here."""

    def _write_status(self, cr: Mapping[str, Any], fields: dict[str, Any], conds: list[Condition],
                      old: Mapping[str, Any], events: list[Event]) -> None:
        generation = int(cr["metadata"].get("generation", 0))
        new = dict(fields)
        new["conditions"] = conditions.merge(old.get("conditions") or [], conds, generation, rfc3339(self.clock()))
        events = events + conditions.warnings(old.get("conditions") or [], conds)
        changed = sorted(k for k, v in new.items() if old.get(k) != v)
        ref = cr_ref(cr)
        # Events first: news is computed against the status read, so once that status is written (even
        # if its response is lost) the next reconcile has no news to say. Said before, a failed status
        # write makes the retry say it again, which counts the same Event (`Gateway.event`).
        # Each says other news: posted at once (`fanout`), all of them before the status.
        fanout.run_all([functools.partial(self.gw.event, ref, ev.type, ev.reason, ev.message)
                        for ev in coalesce(events)])
        if changed:
            self.gw.patch_status(ref.namespace, ref.name, status_patch(old, new))
            logger.info("%s/%s: status updated (%s; Ready=%s, %s)", ref.namespace, ref.name, ", ".join(changed),
                        new["conditions"][0]["status"], new["conditions"][0]["reason"])
