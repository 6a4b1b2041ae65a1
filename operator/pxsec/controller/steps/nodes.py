"""The step that asks every Portworx node whether it accepts the keys its StorageCluster gives it
(`pxsec.nodecheck`): NodesAcknowledged and `status.nodes`. Reads only; informational (not part of Ready).

It runs when the PxSecurity targets a StorageCluster with security on, StorageNodes exist in the namespace
and `spec.storageCluster.probeNodes` is not false. Canary tokens are kept per key and issuer and signed
again only when half their lifetime is gone, so a reconcile probes but rarely signs. The nodes are asked
again every `nodecheck.RECHECK` (a node restarts without any object telling us) and at once when a
StorageNode changes; in between, a reconcile woken for something else reuses their answers (`Answers`), so
the nodes are not on its path — except while a rotation waits on them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Mapping

from pxsec import conditions, nodecheck, tokens
from pxsec.controller.kube.gateway import GatewayPort
from pxsec.controller.nodeprobe import NodeProber
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.controller.steps.rotation import Rotations
from pxsec.controller.steps.storagecluster import Seen
from pxsec.controller.steps.tokensaccepted import key_secrets


class Canaries:
    """Canary tokens by (key fingerprint, issuer): reused until half their lifetime is gone."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
        self._lock = threading.Lock()  # reconciles of several PxSecurities run in worker threads

    def token(self, key: nodecheck.CanaryKey, issuer: str, now: dt.datetime) -> str:
        ident = (tokens.key_fingerprint(key.kind, key.ring), issuer)
        with self._lock:
            kept = self._tokens.get(ident)
            if kept is not None and now < kept[1]:
                return kept[0]
            token, _ = tokens.sign_claims(nodecheck.canary_claims(issuer, now), key.kind, key.ring)
            self._tokens[ident] = (token, now + nodecheck.CANARY_LIFETIME / 2)
            for stale in [k for k, (_, due) in self._tokens.items() if due <= now]:
                del self._tokens[stale]
            return token


Ident = tuple[str, str, str, str, str, str]  # namespace, node, its resourceVersion, address, key label, key


class Answers:
    """What each node last answered about each key, reused for `FRESH` while nothing about the node (its
    StorageNode's resourceVersion, its address) or the key (label and fingerprint) changed: a reconcile woken
    for another reason costs no request to the nodes. `FRESH` is shorter than the recheck period, so the
    timed recheck always asks again; a rotation waiting on the nodes never uses it."""

    FRESH = nodecheck.RECHECK - dt.timedelta(seconds=5)

    def __init__(self) -> None:
        self._kept: dict[Ident, tuple[nodecheck.Probe, dt.datetime]] = {}
        self._lock = threading.Lock()

    def get(self, ident: Ident, now: dt.datetime) -> nodecheck.Probe | None:
        with self._lock:
            kept = self._kept.get(ident)
        return kept[0] if kept is not None and now < kept[1] else None

    def keep(self, answers: list[tuple[Ident, nodecheck.Probe]], now: dt.datetime) -> None:
        with self._lock:
            for stale in [i for i, (_, until) in self._kept.items() if until <= now]:
                del self._kept[stale]
            for ident, probe in answers:
                self._kept[ident] = (probe, now + self.FRESH)


class NodesAcknowledgedCheck(BaseStep):
    """Asks the nodes (over https with the cluster's CA when Portworx serves its API over TLS)."""

    name = "nodes"
    condition = conditions.NODES_ACKNOWLEDGED
    needs = ("storagecluster", "rotation", "keys")
    fields = ("nodes",)

    def __init__(self, gateway: GatewayPort, prober: NodeProber | None = None) -> None:
        super().__init__(gateway)
        self.prober = prober or NodeProber()
        self.canaries = Canaries()
        self.answers = Answers()

    def blocked(self, ctx: Context, by: str) -> Outcome:
        return Outcome(status=self.kept(ctx.old_status))

    def _ca(self, namespace: str, tls: nodecheck.ApiTLS | None) -> tuple[bytes | None, str]:
        """The CA bundle the nodes' certificates must chain to (None: the system's), or why it is missing."""
        if tls is None or tls.secret is None or tls.key is None:
            return None, ""
        observed = self.gw.read_secret(namespace, tls.secret)
        ca = (observed.data if observed else {}).get(tls.key)
        if not ca:
            return None, (f"Portworx serves its API over TLS and the CA is not in {tls.show()} (the StorageCluster's "
                          "spec.security.tls.rootCA): the nodes cannot be asked")
        return ca, ""

    def run(self, ctx: Context) -> Outcome:
        seen: Seen = ctx.product("storagecluster")
        co = seen.coexistence
        sc = co.cluster
        if not ctx.spec.storage_cluster.probe_nodes or not co.checks_tokens or sc is None or not sc.issuer:
            return Outcome(status={"nodes": None})
        storagenodes = self.gw.list_storagenodes(ctx.namespace)
        if not storagenodes:
            return Outcome(status={"nodes": None})
        targets = nodecheck.nodes(storagenodes, seen.body)
        secrets: Mapping[str, Mapping[str, bytes] | None] = key_secrets(
            self.gw, ctx.namespace, ctx.product("keys"), [sc])
        keys, notes = nodecheck.canary_keys(sc, secrets)
        rot: Rotations = ctx.product("rotation")
        revoke = rot.keys.revoke if rot.keys else None
        gone = None
        if revoke is not None:  # an emergency rotation: every node must now reject the old key
            observed = self.gw.read_secret(ctx.namespace, revoke.secret)
            gone, note = nodecheck.asymmetric_key(revoke.kind, revoke.secret, observed.data if observed else None)
            notes += [note] if note else []
        versions = {str((n.get("metadata") or {}).get("name") or ""): str((n.get("metadata") or {}).get(
            "resourceVersion") or "") for n in storagenodes}
        fresh = not rot.waiting_for_nodes and gone is None  # a rotation waiting on the nodes asks every time
        tls = nodecheck.api_tls(seen.body)
        ca, missing = self._ca(ctx.namespace, tls)
        how = "http" if tls is None else f"https {hashlib.sha256(ca or b'').hexdigest()[:16]}"
        probes: list[nodecheck.Probe] = []
        asks: list[tuple[str, str, str, str]] = []
        idents: list[Ident] = []
        for key in keys + ([gone] if gone else []):
            fingerprint = tokens.key_fingerprint(key.kind, key.ring)
            for n in targets:
                if n.address is None:
                    continue
                ident = (ctx.namespace, n.name, versions.get(n.name, ""), f"{how} {n.address}", key.label,
                         fingerprint)
                kept = self.answers.get(ident, ctx.now) if fresh else None
                if kept is not None:
                    probes.append(kept)
                    continue
                if missing:
                    probes.append(nodecheck.Probe(n.name, key.label, nodecheck.Outcome.UNREACHABLE, missing))
                    continue
                asks.append((n.name, n.address, key.label, self.canaries.token(key, sc.issuer, ctx.now)))
                idents.append(ident)
        answered = self.prober.probe(asks, tls=tls is not None, ca=ca)
        self.answers.keep(list(zip(idents, answered, strict=True)), ctx.now)
        probes += answered
        condition, status = nodecheck.verdict(targets, keys, probes, notes)
        wake = ctx.now + nodecheck.RECHECK
        if gone is not None:
            status["revoked"] = nodecheck.revocation(targets, gone, probes)
            if status["revoked"]["rejecting"] == f"{len(targets)}/{len(targets)}":
                wake = ctx.now  # the rotation completes on the next reconcile
        if rot.waiting_for_nodes:
            # While a rotation runs, the nodes' answer is part of Ready, and the one the rotation waits for:
            # the next reconcile moves it on as soon as every node accepts the new key.
            awaited = rot.awaited()
            if awaited and status.get("acknowledged") == f"{len(targets)}/{len(targets)}" and all(
                    any(f"(Secret {secret})" in label for label in status["keys"]) for secret in awaited):
                wake = ctx.now
            return Outcome(conditions=[condition], status={"nodes": status}, wake=wake)
        return Outcome(informational=[condition], status={"nodes": status}, wake=wake)
