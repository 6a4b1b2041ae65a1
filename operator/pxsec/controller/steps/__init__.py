"""The reconcile steps, one job each, all of one shape (cert-manager's controller split).

A step reads what it needs from the `Context` (the PxSecurity, its parsed spec, the clock, and the
*products* of the steps before it), may read and write through the gateway, and returns one `Outcome`:
its conditions, its `status` fields, its Events, when it wants to be woken, and its product for later
steps. The reconciler runs them in table order (`Reconciler.steps`) and owns what is common: a step that
fails becomes a False condition of its type and keeps its status fields as they were; a step whose
needs failed is `blocked` instead of run. Neighbours that are independent (`reconciler.AT_ONCE`: keys,
oidc, parameters) may run at once while one reconcile runs alone; their outcomes count in table order.

Names say what a step does: `…Sync` writes, `…Check` only reads and judges.

| step | needs | reads | writes | keeps on failure |
|---|---|---|---|---|
| `StorageClusterCheck` | | StorageCluster | | `storageCluster` |
| `KeyRotationStep` | storagecluster | StorageCluster, StorageNodes, status | replaced key Secrets (5) | `rotation` |
| `KeySync` | storagecluster, rotation | key Secrets, retained copy | key Secrets, retained copy | `secrets` |
| `OIDCCheck` | | CA ConfigMap, the provider | | `oidc` |
| `ParameterSync` | | ConfigMap | ConfigMap | `parameters` |
| `StorageClusterSync` | storagecluster, keys | StorageCluster, (1) | StorageCluster (2) | `pendingChange` |
| `TokenSync` | storagecluster, keys, apply (3) | token Secrets | token Secrets | our `tokens` rows, `nextRenewal` |
| `TenantSync` | storagecluster, keys, apply (3) | Namespaces, tenant Secrets, volumes (4) | their Secrets | `tenants` |
| `TokensAcceptedCheck` | storagecluster, keys, tokens | shared-secret Secret, its token Secrets | | its `tokens` rows |
| `NodesAcknowledgedCheck` | storagecluster, rotation, keys | StorageNodes, each node's REST gateway | | `nodes` |

(1) StorageNodes; every token Secret of the namespace, listed only while a change is pending on a running cluster.
(2) with `apply: true`; a change that restarts a running Portworx or rejects tokens only once approved.
(3) optional: while a new issuer waits for approval, tokens are minted under the one Portworx trusts now.
(4) from the watches only (the store): no request when everything is in order.
(5) deleted under deletionPolicy Delete once no Portworx pod mounts them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import GatewayPort
from pxsec.events import Event
from pxsec.spec import PxSecuritySpec


@dataclass
class Context:
    """What a step is given: the object as read, its spec, the time of this reconcile, and what the
    steps before it produced (by step name)."""

    cr: Mapping[str, Any]
    spec: PxSecuritySpec
    now: dt.datetime
    products: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return str(self.cr["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.cr["metadata"]["name"])

    @property
    def old_status(self) -> Mapping[str, Any]:
        return self.cr.get("status") or {}

    def product(self, step: str) -> Any:
        return self.products[step]


@dataclass
class Outcome:
    """Everything a step tells the reconciler."""

    conditions: list[Condition] = field(default_factory=list)  # part of Ready
    informational: list[Condition] = field(default_factory=list)  # shown, not part of Ready
    status: dict[str, Any] = field(default_factory=dict)  # status fields (list values add up across steps)
    events: list[Event] = field(default_factory=list)
    wake: dt.datetime | None = None  # when to look again (a renewal, a probe, an expiry)
    product: Any = None  # for later steps (by this step's name); never shown


class Step(Protocol):
    @property
    def name(self) -> str:
        """Also the key of its product."""
        ...

    @property
    def condition(self) -> str:
        """The condition type its failure is reported under."""
        ...

    @property
    def needs(self) -> tuple[str, ...]:
        """The steps whose products it reads: when one failed, this one is blocked."""
        ...

    def run(self, ctx: Context) -> Outcome:
        """Do the job; raise to fail (the reconciler turns it into a condition)."""
        ...

    def kept(self, old_status: Mapping[str, Any]) -> dict[str, Any]:
        """The status fields to keep as they were when this step failed or was blocked."""
        ...

    def blocked(self, ctx: Context, by: str) -> Outcome:
        """The outcome when a needed step failed (`by`)."""
        ...


def keep_fields(old_status: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """`kept` for a step that owns whole status fields."""
    return {n: old_status.get(n) for n in names}


# Why a blocked step could not run, by the step that failed: (reason, what failed).
UNAVAILABLE = {
    "storagecluster": ("StorageClusterUnavailable", "the StorageCluster could not be read"),
    "rotation": ("RotationUnavailable", "the key rotation could not be planned"),
    "keys": ("KeysUnavailable", "the key material could not be reconciled"),
    "tokens": ("TokensUnavailable", "the tokens could not be minted"),
}


class BaseStep:
    """The defaults of the `Step` shape: a blocked step reports its condition as Unknown, naming what it
    waits for, and keeps its status fields."""

    name = ""
    condition = ""
    needs: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()  # the status fields it owns whole

    def __init__(self, gateway: GatewayPort) -> None:
        self.gw = gateway

    def kept(self, old_status: Mapping[str, Any]) -> dict[str, Any]:
        return keep_fields(old_status, *self.fields)

    def blocked(self, ctx: Context, by: str) -> Outcome:
        reason, what = UNAVAILABLE.get(by, (f"{by}Unavailable", f"the {by} step failed"))
        return Outcome(conditions=[Condition(self.condition, None, reason, f"not checked: {what}")],
                       status=self.kept(ctx.old_status))
