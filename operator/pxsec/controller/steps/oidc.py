"""The step for the OIDC provider: read the CA bundle the spec names (if any), probe discovery and
JWKS through the process-wide `Prober` (cached, so frequent reconciles do not hammer the provider), and
report `OIDCReady`, `status.oidc` and when the next probe is due.

Runs in a reconcile worker thread: a probe may block for seconds on the network, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pxsec import conditions, oidc
from pxsec.conditions import Condition
from pxsec.controller.kube.gateway import GatewayPort
from pxsec.controller.oidcprobe import Prober
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.spec import PxSecuritySpec


@dataclass
class OIDCOutcome:
    condition: Condition | None = None
    status: dict[str, Any] | None = None
    next_probe: dt.datetime | None = None


class OIDCCheck(BaseStep):
    name = "oidc"
    condition = conditions.OIDC_READY
    fields = ("oidc",)

    def __init__(self, gateway: GatewayPort, prober: Prober | None = None) -> None:
        super().__init__(gateway)
        self.prober = prober or Prober()  # one prober (and its cache) for every resource

    def run(self, ctx: Context) -> Outcome:
        out = self.check(ctx.cr, ctx.spec, ctx.now)
        return Outcome(conditions=[c for c in (out.condition,) if c is not None], status={"oidc": out.status},
                       wake=out.next_probe)

    def check(self, cr: Mapping[str, Any], spec: PxSecuritySpec, now: dt.datetime) -> OIDCOutcome:
        if spec.oidc is None:
            return OIDCOutcome()
        ns = str(cr["metadata"]["namespace"])
        issuer = spec.oidc.issuer
        ca_pem: bytes | None = None
        ref = spec.oidc.certificate_authority
        if ref is not None:
            bundle = oidc.ca_bundle(self.gw.read_configmap(ns, ref.config_map), ref, ns)
            if isinstance(bundle, oidc.CAProblem):
                # Not cached and no timer: the ConfigMap is a dependency, its arrival wakes us up.
                result = oidc.judge(issuer, None, None, now, error=bundle.message, stage=bundle.stage)
                return OIDCOutcome(result.condition, oidc.status_fields(result), None)
            ca_pem = bundle
        result = self.prober.probe(issuer, ca_pem, now)
        return OIDCOutcome(result.condition, oidc.status_fields(result), self.prober.next_probe(issuer, ca_pem))
