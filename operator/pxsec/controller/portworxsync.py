"""The shell step that checks the cluster's tokens the way Portworx will see them, beside the Portworx
Operator: its own `px-admin-token` / `px-user-token` (which we never write) and ours, verified with the
issuer and keys the targeted StorageCluster names (`pxsec.coexist.judge_tokens`). Reads only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pxsec import coexist
from pxsec.coexist import PORTWORX_OPERATOR, PXSECURITY, TokenCheck, TokensJudged
from pxsec.controller.gateway import GatewayPort
from pxsec.spec import KEY_AUTH_TOKEN, PxSecuritySpec


class PortworxSync:
    def __init__(self, gateway: GatewayPort) -> None:
        self.gw = gateway

    def run(self, cr: Mapping[str, Any], spec: PxSecuritySpec, co: coexist.Coexistence,
            key_data: Mapping[str, Mapping[str, bytes]], ours: Mapping[str, str], now: dt.datetime) -> TokensJudged:
        if not co.checks_tokens or co.cluster is None:
            return TokensJudged()
        ns = str(cr["metadata"]["namespace"])
        secrets: dict[str, Mapping[str, bytes] | None] = dict(key_data)
        sc = co.cluster
        if sc.shared_secret and sc.shared_secret not in secrets:
            # apply: false, or a conflict: the StorageCluster names a shared secret that is not ours.
            observed = self.gw.read_secret(ns, sc.shared_secret)
            secrets[sc.shared_secret] = observed.data if observed is not None else None
        checks = [TokenCheck(name, PXSECURITY, token) for name, token in sorted(ours.items())]
        for name in sorted(co.operator_tokens):
            observed = self.gw.read_secret(ns, name)
            value = observed.data.get(KEY_AUTH_TOKEN) if observed is not None else None
            checks.append(TokenCheck(name, PORTWORX_OPERATOR, value.decode("ascii", "replace") if value else None))
        keys = coexist.verify_keys_for(spec, sc, secrets)
        return coexist.judge_tokens(spec, co, checks, keys, now)
