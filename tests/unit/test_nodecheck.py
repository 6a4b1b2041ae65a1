"""The data-plane acknowledgement's pure half (pxsec.nodecheck): where each node's REST gateway is, which
keys can be probed, the canary's claims, and the verdict from every node's answers."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pxsec import nodecheck, tokens
from pxsec.coexist import MountedKey, StorageClusterView
from pxsec.nodecheck import CanaryKey, Node, Outcome, Probe

NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def storagenode(name: str, ip: str | None = None) -> dict[str, object]:
    return {"metadata": {"name": name}, **({"status": {"network": {"mgmtIP": ip}}} if ip else {})}


@pytest.mark.parametrize("storagecluster, port", [
    (None, 9021),
    ({"spec": {}}, 9021),
    ({"spec": {"startPort": 9001}}, 9021),
    ({"spec": {"startPort": 30000}}, 30017),
    ({"metadata": {"annotations": {"portworx.io/is-openshift": "true"}}, "spec": {}}, 17018),
    ({"metadata": {"annotations": {"portworx.io/is-openshift": "true"}}, "spec": {"startPort": 9001}}, 9021),
    ({"spec": {"startPort": "9001"}}, 9021),  # not a number (the CRD says int): the default
])
def test_the_rest_gateway_port_follows_the_start_port(storagecluster: dict[str, object] | None, port: int) -> None:
    assert nodecheck.rest_gateway_port(storagecluster) == port


def test_nodes_are_the_storagenodes_at_their_mgmt_ip() -> None:
    found = nodecheck.nodes([storagenode("b", "10.0.0.2"), storagenode("a", "fd00::1"), storagenode("c")],
                            {"spec": {"startPort": 30000}})
    assert found == [Node("a", "[fd00::1]:30017"), Node("b", "10.0.0.2:30017"), Node("c", None)]


def ecdsa_pem() -> bytes:
    return ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_the_keys_probed_are_those_the_storagecluster_gives_portworx_that_we_can_sign_with() -> None:
    sc = StorageClusterView("px", exists=True, auth_enabled=True, issuer="op.io", shared_secret="shared",
                            rsa_key=MountedKey("/etc/pwx/pxsec/rsa/public.pem", "theirs-rsa", "public.pem"),
                            ecdsa_key=MountedKey("/etc/pwx/pxsec/ecdsa/public.pem", "px-jwt-ecdsa", "public.pem"))
    secrets = {"shared": {"shared-secret": b"s" * 40}, "theirs-rsa": {"public.pem": b"-----BEGIN PUBLIC KEY..."},
               "px-jwt-ecdsa": {"private.pem": ecdsa_pem(), "public.pem": b"..."}}
    keys, notes = nodecheck.canary_keys(sc, secrets)
    assert [k.label for k in keys] == ["HS256 (Secret shared)", "ES384 (Secret px-jwt-ecdsa)"]
    assert notes == ["Secret theirs-rsa has no private.pem: its public key is not probed"]


def test_the_canary_is_short_lived_read_only_and_has_every_claim_portworx_requires() -> None:
    claims = nodecheck.canary_claims("op.io", NOW)
    assert claims["roles"] == ["system.view"] and claims["groups"] == []
    assert claims["sub"] == "pxsec-canary" and claims["iss"] == "op.io"
    assert {"iss", "sub", "exp", "iat", "name", "email"} <= set(claims)
    assert claims["exp"] - int(NOW.timestamp()) == 300


KEYS = [CanaryKey("HS256 (Secret s)", tokens.SHARED_SECRET, tokens.KeyRing(shared_secret=b"x")),
        CanaryKey("ES256 (Secret e)", tokens.ECDSA, tokens.KeyRing())]
NODES = [Node("n1", "127.0.0.10:9021"), Node("n2", "127.0.0.11:9021"), Node("n3", "127.0.0.12:9021")]


def answers(*rejected: tuple[str, str], unreachable: tuple[str, ...] = ()) -> list[Probe]:
    out = []
    for node in NODES:
        for key in KEYS:
            if node.name in unreachable:
                out.append(Probe(node.name, key.label, Outcome.UNREACHABLE, f"{node.address}: refused"))
            elif (node.name, key.label) in rejected:
                out.append(Probe(node.name, key.label, Outcome.REJECTED))
            else:
                out.append(Probe(node.name, key.label, Outcome.ACCEPTED))
    return out


def test_every_node_accepting_every_key_is_acknowledged() -> None:
    cond, status = nodecheck.verdict(NODES, KEYS, answers())
    assert (cond.status, cond.reason) == (True, "Acknowledged")
    assert status == {"acknowledged": "3/3", "keys": ["HS256 (Secret s)", "ES256 (Secret e)"]}
    assert "3/3" in cond.message


def test_a_node_that_rejects_a_key_is_named_with_the_key_and_what_to_do() -> None:
    cond, status = nodecheck.verdict(NODES, KEYS, answers(("n2", "ES256 (Secret e)")))
    assert (cond.status, cond.reason) == (False, "NotAcknowledged")
    assert "n2 reject ES256 (Secret e)" in cond.message and "restart" in cond.message
    assert status["acknowledged"] == "2/3"
    assert status["notAcknowledging"] == [{"node": "n2", "rejects": ["ES256 (Secret e)"]}]


def test_rejection_outranks_an_unreachable_node_and_both_are_listed() -> None:
    cond, status = nodecheck.verdict(NODES, KEYS, answers(("n1", "HS256 (Secret s)"), unreachable=("n3",)))
    assert cond.reason == "NotAcknowledged" and status["acknowledged"] == "1/3"
    assert [r["node"] for r in status["notAcknowledging"]] == ["n1", "n3"]


def test_an_unreachable_node_or_one_without_an_address_is_unknown_never_false() -> None:
    nodes = [*NODES[:2], Node("n3", None)]
    cond, status = nodecheck.verdict(nodes, KEYS, [p for p in answers() if p.node != "n3"])
    assert (cond.status, cond.reason) == (None, "ProbeUnreachable")
    assert status["notAcknowledging"] == [{"node": "n3", "unreachable": "no status.network.mgmtIP yet"}]


def test_with_no_key_to_sign_a_canary_nothing_is_claimed() -> None:
    cond, _ = nodecheck.verdict(NODES, [], [], ["Secret theirs has no private.pem: its public key is not probed"])
    assert (cond.status, cond.reason) == (None, "NothingToProbe") and "theirs" in cond.message


@pytest.mark.parametrize(("security", "expected"), [
    (None, None),
    ({"enabled": True}, None),
    ({"enabled": False, "tls": {"enabled": True}}, None),  # IsTLSEnabledOnCluster: both must be true
    ({"enabled": True, "tls": {"enabled": True}}, nodecheck.ApiTLS()),  # a well-known CA: the system's
    ({"enabled": True, "tls": {"enabled": True, "rootCA": {"secretRef": {"secretName": "ca", "secretKey": "c"}}}},
     nodecheck.ApiTLS("ca", "c")),
    ({"enabled": True, "tls": {"enabled": True, "rootCA": {"filename": "/etc/pwx/ca.crt"}}},
     nodecheck.ApiTLS("px-api-root-ca", "root-ca")),  # on the hosts: uploaded to the default Secret too
])
def test_the_ca_of_an_api_served_over_tls_is_where_the_portworx_operator_tells_clients(
        security: dict[str, object] | None, expected: nodecheck.ApiTLS | None) -> None:
    assert nodecheck.api_tls({"spec": {"security": security}} if security is not None else None) == expected
