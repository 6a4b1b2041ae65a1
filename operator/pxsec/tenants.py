"""Tenant tokens, pure: which namespace gets which tenant's token Secret, which must be minted again, which
Secret goes, and what to say about it (docs/tenants.md has the design; issue 21 the facts).

Portworx multi-tenancy (the shared-secret model) wants one token per tenant in every namespace the tenant
owns, in a Secret the tenant StorageClass names with `${pvc.namespace}`; Portworx records the token's `sub`
as the owner of the volumes it creates. Here a tenant is a label selector over Namespaces; `plan` decides,
from what the watches already hold — every Namespace's labels, the metadata of every tenant Secret, the
Secrets the PersistentVolumes use — with no read of its own, so a pass over thousands of namespaces that
finds everything in order costs no request.

Whether a tenant Secret is current is told by its annotations, never by reading its token: the digest of
what the token says and of the key that signed it (`TOKEN_ANNOTATION`), and when it is due
(`RENEW_ANNOTATION`). Renewals are spread: a token is renewed between half and three quarters of its
lifetime, at a point fixed by its tenant and namespace, so thousands minted at once do not come due at once.

Safety rules, each a problem said in status rather than a write:
- never the PxSecurity's own namespace (the StorageCluster's, where px-user-token is the Portworx Operator's);
- a namespace two tenants select gets nothing (Conflict, for both);
- a Secret of that name that this PxSecurity did not make is never touched;
- a namespace that is not served (a namespaced install) is said, not written;
- a Secret is deleted (onNamespaceExit: Delete) only while no PersistentVolume uses it: its volume could not
  be deleted without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pxsec.spec import LabelSelector, TenantSpec

TENANT_LABEL = "pxsec.dev/tenant"  # the tenant's name (also how the store knows to keep the Secret's metadata)
PXSECURITY_ANNOTATION = "pxsec.dev/pxsecurity"  # <namespace>/<name> of the PxSecurity that made it
TOKEN_ANNOTATION = "pxsec.dev/tenant-token"  # digest of the claims, issuer, lifetime and signing key
RENEW_ANNOTATION = "pxsec.dev/renew-at"  # when it is minted again
SKIP_BACKUP_ANNOTATION = "stork.libopenstorage.org/skip-resource"  # tenant tokens are per cluster
MAX_PROBLEMS = 20
RENEW_FROM, RENEW_SPREAD = 0.5, 0.25  # renewed at lifetime * [0.5, 0.75), by tenant and namespace


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    terminating: bool = False


@dataclass(frozen=True)
class Existing:
    """A Secret of a tenant's name in a namespace, as the store knows it."""

    namespace: str
    name: str
    meta: Mapping[str, Any] | None  # None: not ours to judge (someone else's, or our write still under way)

    @property
    def version(self) -> str:
        return str((self.meta or {}).get("resourceVersion") or "")

    @property
    def uid(self) -> str:
        return str((self.meta or {}).get("uid") or "")

    def annotation(self, key: str) -> str:
        return str(((self.meta or {}).get("annotations") or {}).get(key) or "")

    def tenant(self) -> str:
        return str(((self.meta or {}).get("labels") or {}).get(TENANT_LABEL) or "")


@dataclass(frozen=True)
class Desired:
    """What a tenant's tokens must be now: their digest (None: no key can sign them) and lifetime."""

    digest: str | None
    lifetime: dt.timedelta


@dataclass(frozen=True)
class Write:
    action: str  # create | update | delete
    namespace: str
    secret: str
    tenant: str
    version: str = ""  # update, delete: guarded by the version planned from
    uid: str = ""
    why: str = ""  # update: missing, due, changed


@dataclass
class Report:
    """`status.tenants[]` for one tenant."""

    name: str
    selected: int = 0
    ready: int = 0
    next_renewal: dt.datetime | None = None
    problems: list[str] = field(default_factory=list)
    more: int = 0  # problems beyond MAX_PROBLEMS

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more += 1

    def renews(self, when: dt.datetime) -> None:
        if self.next_renewal is None or when < self.next_renewal:
            self.next_renewal = when


@dataclass
class Plan:
    writes: list[Write] = field(default_factory=list)
    reports: dict[str, Report] = field(default_factory=dict)
    waiting: bool = False  # something is not known yet (a listing not complete): looked at again soon


# -- the pieces -----------------------------------------------------------------------------------------


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels entry and every expression holds."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for key, operator, values in selector.match_expressions:
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # refused by the CRD; offline, select nothing rather than everything
    return True


def identity(tenant: TenantSpec) -> dict[str, Any]:
    """The claims that say who the token is: sub, email and name are the tenant's subject (Portworx records
    the configured username claim as the volume's owner, whichever it is)."""
    who = tenant.identity
    return {"name": who, "email": who, "sub": who, "roles": list(tenant.roles), "groups": list(tenant.groups)}


def digest(tenant: TenantSpec, issuer: str, key_fingerprint: str, lifetime: dt.timedelta) -> str:
    """What a tenant token is, short of its times: a change re-mints every one of the tenant's tokens."""
    text = json.dumps({"identity": identity(tenant), "issuer": issuer, "key": key_fingerprint,
                       "lifetime": lifetime.total_seconds()}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def renewal(tenant: str, namespace: str, issued: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    """When a token minted at `issued` is minted again: at a fraction of its lifetime in [0.5, 0.75) fixed by
    tenant and namespace, so that tokens minted together come due apart."""
    spread = int(hashlib.sha256(f"{tenant}/{namespace}".encode()).hexdigest()[:8], 16) / 2**32
    return issued + lifetime * (RENEW_FROM + RENEW_SPREAD * spread)


def parse_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


# -- the plan -------------------------------------------------------------------------------------------


def plan(cr: str, own_namespace: str, tenants: Sequence[TenantSpec], desired: Mapping[str, Desired],
         namespaces: Sequence[Namespace], existing: Mapping[tuple[str, str], Existing],
         ours: Sequence[Existing], used_by_volumes: Callable[[str, str], str | None],
         served: Callable[[str], bool], listed: Callable[[str], bool], now: dt.datetime) -> Plan:
    """The writes that make every selected namespace hold its tenant's current token, and what to say.

    `cr` is the PxSecurity as `<namespace>/<name>`; `existing` the Secrets of the tenants' names by
    (namespace, name); `ours` every Secret this PxSecurity made for a tenant (wherever, whatever its name);
    `used_by_volumes` names a PersistentVolume that uses a Secret (or None; it is None for all when volumes
    cannot be seen, and then `served` is false for namespaces not served); `listed` whether the Secrets of a
    namespace are known (a complete listing)."""
    out = Plan(reports={t.name: Report(t.name) for t in tenants})
    by_name = {t.name: t for t in tenants}
    wanted: set[tuple[str, str]] = set()
    untouchable: set[str] = set()  # namespaces where nothing is written (conflicts, not served, ours)
    for ns in namespaces:
        picked = [t for t in tenants if selects(t.selector, ns.labels)]
        if not picked:
            continue
        if ns.name == own_namespace:
            untouchable.add(ns.name)
            for t in picked:
                out.reports[t.name].problem(
                    f"namespace {ns.name} is the PxSecurity's (the StorageCluster's, where {t.secret_name} may be "
                    "the Portworx Operator's): never written")
            continue
        if len(picked) > 1:
            untouchable.add(ns.name)
            names = ", ".join(t.name for t in picked)
            for t in picked:
                out.reports[t.name].selected += 1
                out.reports[t.name].problem(f"Conflict: namespace {ns.name} is selected by tenants {names}: "
                                            "nothing is written there")
            continue
        tenant = picked[0]
        report = out.reports[tenant.name]
        report.selected += 1
        if not served(ns.name):
            untouchable.add(ns.name)
            report.problem(f"namespace {ns.name} is not served by this operator (a namespaced install): "
                           "add it to the served namespaces")
            continue
        if ns.terminating:
            untouchable.add(ns.name)
            continue
        if not listed(ns.name):
            out.waiting = True
            continue
        wanted.add((ns.name, tenant.secret_name))
        _keep(cr, tenant, desired[tenant.name], ns.name, existing.get((ns.name, tenant.secret_name)), now, out)
    for found in ours:
        if (found.namespace, found.name) in wanted or found.namespace in untouchable:
            continue
        tenant_spec = by_name.get(found.tenant())
        policy = tenant_spec.on_namespace_exit if tenant_spec is not None else "Orphan"
        if policy != "Delete":
            continue  # Orphan: kept as it is, no longer renewed
        volume = used_by_volumes(found.namespace, found.name)
        said = out.reports.get(found.tenant())
        if volume is not None:
            if said is not None:
                said.problem(f"Secret {found.namespace}/{found.name} is kept although its namespace left the "
                               f"tenant: PersistentVolume {volume} uses it (its volume could not be deleted)")
            continue
        out.writes.append(Write("delete", found.namespace, found.name, found.tenant(), found.version, found.uid))
    return out


def _keep(cr: str, tenant: TenantSpec, want: Desired, namespace: str, found: Existing | None,
          now: dt.datetime, out: Plan) -> None:
    report = out.reports[tenant.name]
    if want.digest is None:
        report.problem(f"namespace {namespace}: no key can sign the tenant's tokens (signingKey)")
        return
    if found is None:
        out.writes.append(Write("create", namespace, tenant.secret_name, tenant.name, why="missing"))
        return
    if found.meta is None or found.annotation(PXSECURITY_ANNOTATION) != cr:
        report.problem(f"Secret {namespace}/{tenant.secret_name} exists and is not this PxSecurity's: not touched")
        return
    due = parse_time(found.annotation(RENEW_ANNOTATION))
    if found.annotation(TOKEN_ANNOTATION) != want.digest or found.tenant() != tenant.name:
        out.writes.append(Write("update", namespace, tenant.secret_name, tenant.name, found.version, found.uid,
                                "changed"))
    elif due is None or due <= now:
        out.writes.append(Write("update", namespace, tenant.secret_name, tenant.name, found.version, found.uid,
                                "due"))
    else:
        report.ready += 1
        report.renews(due)


def secret_annotations(cr: str, want: Desired, renew_at: dt.datetime) -> dict[str, str]:
    """The annotations of a tenant Secret: who made it, what it holds, when it is due, and no backups."""
    assert want.digest is not None
    return {PXSECURITY_ANNOTATION: cr, TOKEN_ANNOTATION: want.digest,
            RENEW_ANNOTATION: renew_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            SKIP_BACKUP_ANNOTATION: "true"}


def status(reports: Mapping[str, Report]) -> list[dict[str, Any]]:
    """`status.tenants`: bounded whatever the number of namespaces."""
    out = []
    for r in reports.values():
        row: dict[str, Any] = {"name": r.name, "selected": r.selected, "ready": r.ready}
        if r.next_renewal is not None:
            row["nextRenewal"] = r.next_renewal.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if r.problems:
            row["problems"] = r.problems + ([f"and {r.more} more"] if r.more else [])
        out.append(row)
    return out
