"""Whether every Portworx node has loaded the keys its StorageCluster gives it: the data-plane
acknowledgement (issue 20), pure.

Portworx reads its keys once, at start (env and files), so a StorageCluster that says "trust this key" proves
nothing about the nodes until each of them restarted. The only proof is to ask each node: a short-lived
canary token signed with the key under test, sent to the node's SDK REST gateway
(`GET /v1/identities/version`, OpenStorage api/api.proto), which answers 200 when the node verifies it and
403 when it does not. A token is present, so there is no guest fallback to hide a rejection (OpenStorage
pkg/auth/token.go IsGuest is "no header").

- Nodes: the namespace's StorageNodes, at `status.network.mgmtIP` (the Portworx Operator's StorageNode
  controller copies it from the node), on the REST gateway port of the StorageCluster's startPort
  (libopenstorage/operator component/portworx_api.go: 9021 for the default 9001, else startPort + 17;
  OpenShift's default start port is 17001).
- Keys: the ones the StorageCluster gives Portworx for our issuer — its shared secret (HS256), and the public
  keys it mounts whose private halves are in the same Secret (RS256, ES256/384/512). A key we cannot sign
  with is said, not probed.
- Canary: `sub`/`email` pxsec-canary, role `system.view` (allowed `identity/*`, OpenStorage
  pkg/role/sdkserviceapi.go), no groups, 5 minutes; never a real user's token.

The verdict is the NodesAcknowledged condition and `status.nodes`; the probing itself (HTTP, threads) is
`pxsec.controller.nodeprobe`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pxsec import conditions, tokens
from pxsec.coexist import StorageClusterView
from pxsec.conditions import Condition
from pxsec.spec import KEY_PRIVATE_PEM, KEY_SHARED_SECRET

PROBE_PATH = "/v1/identities/version"
DEFAULT_START_PORT = 9001
OPENSHIFT_START_PORT = 17001
DEFAULT_REST_GATEWAY_PORT = 9021
REST_GATEWAY_OFFSET = 17
OPENSHIFT_ANNOTATION = "portworx.io/is-openshift"
CANARY_SUBJECT = "pxsec-canary"
CANARY_ROLE = "system.view"
CANARY_LIFETIME = dt.timedelta(minutes=5)
RECHECK = dt.timedelta(seconds=60)  # nodes restart without telling anyone: asked again this often
SHOWN = 5  # nodes named in a message; status lists them all (up to its cap)
MAX_LISTED = 64


class Outcome(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNREACHABLE = "Unreachable"


@dataclass(frozen=True)
class Node:
    name: str
    address: str | None  # host:port of its SDK REST gateway; None while the StorageNode has no mgmtIP


@dataclass(frozen=True)
class CanaryKey:
    """A key the nodes should verify: how to say it, and the ring holding its signing half."""

    label: str  # e.g. "ES256 (Secret px-jwt-ecdsa)"
    kind: str  # tokens.SHARED_SECRET / RSA / ECDSA
    ring: tokens.KeyRing


@dataclass(frozen=True)
class Probe:
    node: str
    key: str  # CanaryKey.label
    outcome: Outcome
    detail: str = ""  # for Unreachable: why (never a token)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def rest_gateway_port(storagecluster: Mapping[str, Any] | None) -> int:
    obj = _map(storagecluster)
    spec = _map(obj.get("spec"))
    start = spec.get("startPort")
    if not isinstance(start, int) or isinstance(start, bool) or start <= 0:
        openshift = _map(_map(obj.get("metadata")).get("annotations")).get(OPENSHIFT_ANNOTATION) == "true"
        start = OPENSHIFT_START_PORT if openshift else DEFAULT_START_PORT
    return DEFAULT_REST_GATEWAY_PORT if start == DEFAULT_START_PORT else start + REST_GATEWAY_OFFSET


@dataclass(frozen=True)
class ApiTLS:
    """Portworx serves its API (the REST gateway too) over TLS: where the CA that signed its certificates is.
    As the Portworx Operator tells Portworx's own clients (util.go AppendTLSEnv): `rootCA.secretRef`; a
    `rootCA.filename` (on the hosts) means the same CA uploaded to Secret px-api-root-ca, key root-ca; no
    rootCA means a well-known CA (the system's trust store: `secret` None)."""

    secret: str | None = None
    key: str | None = None

    def show(self) -> str:
        return f"Secret {self.secret} key {self.key}" if self.secret else "the system's trusted CAs"


DEFAULT_CA_SECRET, DEFAULT_CA_KEY = "px-api-root-ca", "root-ca"


def api_tls(storagecluster: Mapping[str, Any] | None) -> ApiTLS | None:
    """None unless spec.security.enabled and spec.security.tls.enabled (IsTLSEnabledOnCluster)."""
    security = _map(_map(_map(storagecluster).get("spec")).get("security"))
    tls = _map(security.get("tls"))
    if security.get("enabled") is not True or tls.get("enabled") is not True:
        return None
    root = _map(tls.get("rootCA"))
    ref = _map(root.get("secretRef"))
    if ref.get("secretName") and ref.get("secretKey"):
        return ApiTLS(str(ref["secretName"]), str(ref["secretKey"]))
    if root.get("filename") or ref:
        return ApiTLS(DEFAULT_CA_SECRET, DEFAULT_CA_KEY)
    return ApiTLS()


def nodes(storagenodes: Iterable[Mapping[str, Any]], storagecluster: Mapping[str, Any] | None) -> list[Node]:
    """The namespace's StorageNodes as probe targets, by name."""
    port = rest_gateway_port(storagecluster)
    out = []
    for obj in storagenodes:
        name = str(_map(obj.get("metadata")).get("name") or "")
        ip = _map(_map(_map(obj.get("status")).get("network"))).get("mgmtIP")
        if not name:
            continue
        address = None
        if isinstance(ip, str) and ip:
            address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        out.append(Node(name, address))
    return sorted(out, key=lambda n: n.name)


def canary_keys(sc: StorageClusterView,
                secrets: Mapping[str, Mapping[str, bytes] | None]) -> tuple[list[CanaryKey], list[str]]:
    """The keys to probe and what cannot be probed (a mounted public key whose private half we lack)."""
    keys: list[CanaryKey] = []
    notes: list[str] = []
    if sc.shared_secret:
        value = (secrets.get(sc.shared_secret) or {}).get(KEY_SHARED_SECRET)
        if value:
            keys.append(CanaryKey(f"HS256 (Secret {sc.shared_secret})", tokens.SHARED_SECRET,
                                  tokens.KeyRing(shared_secret=value)))
        else:
            notes.append(f"Secret {sc.shared_secret} has no shared-secret: the HS256 key is not probed")
    for kind, mounted in ((tokens.RSA, sc.rsa_key), (tokens.ECDSA, sc.ecdsa_key)):
        if mounted is None or not mounted.secret:
            continue
        key, note = asymmetric_key(kind, mounted.secret, secrets.get(mounted.secret))
        keys += [key] if key else []
        notes += [note] if note else []
    return keys, notes


def asymmetric_key(kind: str, secret: str, data: Mapping[str, bytes] | None) -> tuple[CanaryKey | None, str]:
    """The canary key of an RSA/ECDSA key pair kept in `secret`, or why there is none."""
    private = (data or {}).get(KEY_PRIVATE_PEM)
    if not private:
        return None, f"Secret {secret} has no private.pem: its public key is not probed"
    ring = tokens.KeyRing(**{"rsa_private_pem" if kind == tokens.RSA else "ecdsa_private_pem": private})
    try:
        algorithm = tokens.algorithm_for(kind, ring)
    except ValueError:
        return None, f"Secret {secret}: its private.pem cannot sign: its public key is not probed"
    return CanaryKey(f"{algorithm} (Secret {secret})", kind, ring), ""


def revocation(all_nodes: Sequence[Node], key: CanaryKey, probes: Iterable[Probe]) -> dict[str, Any]:
    """`status.nodes.revoked`: how many nodes reject a canary signed with a revoked key, and the nodes
    that still accept it or could not be asked (an unanswered node is not counted as rejecting)."""
    answers = {p.node: p for p in probes if p.key == key.label}
    rejecting = [n.name for n in all_nodes if n.name in answers and answers[n.name].outcome is Outcome.REJECTED]
    others = [n.name for n in all_nodes if n.name not in rejecting]
    return {"key": key.label, "rejecting": f"{len(rejecting)}/{len(all_nodes)}",
            **({"notRejecting": others[:MAX_LISTED]} if others else {})}


def canary_claims(issuer: str, now: dt.datetime) -> dict[str, Any]:
    return tokens.identity_claims(issuer, {"sub": CANARY_SUBJECT, "email": f"{CANARY_SUBJECT}@pxsec.dev",
                                           "name": "pxsec canary", "roles": [CANARY_ROLE], "groups": []},
                                  now, CANARY_LIFETIME)


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def verdict(all_nodes: Sequence[Node], keys: Sequence[CanaryKey], probes: Iterable[Probe],
            notes: Sequence[str] = ()) -> tuple[Condition, dict[str, Any]]:
    """NodesAcknowledged and `status.nodes` from every node's answer to every key's canary."""
    by_node: dict[str, dict[str, Probe]] = {}
    for p in probes:
        by_node.setdefault(p.node, {})[p.key] = p
    labels = [k.label for k in keys]
    rejecting: list[str] = []
    unreachable: list[str] = []
    rows: list[dict[str, Any]] = []
    for node in all_nodes:
        answers = by_node.get(node.name, {})
        rejects = [k for k in labels if k in answers and answers[k].outcome is Outcome.REJECTED]
        missing = [answers[k].detail for k in labels if k in answers and answers[k].outcome is Outcome.UNREACHABLE]
        if node.address is None:
            missing = ["no status.network.mgmtIP yet"]
        if rejects:
            rejecting.append(node.name)
            rows.append({"node": node.name, "rejects": rejects})
        elif missing:
            unreachable.append(node.name)
            rows.append({"node": node.name, "unreachable": missing[0][:256]})
    total = len(all_nodes)
    acknowledged = total - len(rejecting) - len(unreachable)
    status: dict[str, Any] = {"acknowledged": f"{acknowledged}/{total}", "keys": labels,
                              **({"notAcknowledging": rows[:MAX_LISTED]} if rows else {})}
    said = "; ".join(notes)
    tail = f" ({said})" if said else ""
    if not keys:
        cond = Condition(conditions.NODES_ACKNOWLEDGED, None, "NothingToProbe",
                         f"no key of the StorageCluster can sign a canary{tail}")
    elif rejecting:
        first = next(r for r in rows if r["node"] == rejecting[0])
        cond = conditions.false(
            conditions.NODES_ACKNOWLEDGED, "NotAcknowledged",
            f"{acknowledged}/{total} Portworx nodes accept tokens signed with every current key; "
            f"{_names(rejecting)} reject {', '.join(first['rejects'])}: they run the keys they read when they "
            f"started — restart their Portworx pods (a rolling update of the StorageCluster does){tail}")
    elif unreachable:
        first = next(r for r in rows if r["node"] == unreachable[0])
        cond = Condition(conditions.NODES_ACKNOWLEDGED, None, "ProbeUnreachable",
                         f"{acknowledged}/{total} Portworx nodes acknowledged; {_names(unreachable)} could not be "
                         f"asked ({first['unreachable']}): a NetworkPolicy or firewall between the operator and "
                         f"the nodes' REST gateway port, or the node is down{tail}")
    else:
        cond = conditions.true(conditions.NODES_ACKNOWLEDGED, "Acknowledged",
                               f"{total}/{total} Portworx nodes accept tokens signed with {', '.join(labels)}{tail}")
    return cond, status
