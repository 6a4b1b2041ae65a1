"""Minted tokens against the real control plane: they verify with an independent JOSE library using only
what the Secrets hold, and with `pxsec token verify`; a short lifetime is refreshed before expiry
(observed, not slept for); replacing the shared secret by hand re-mints every token."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jwcrypto import jwk, jwt

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, pxsec, secret_data, wait_ready
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]

ISSUER = "operator.portworx.io"


def doc(lifetime: str = "1h") -> dict[str, Any]:
    return {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-cluster"},
        "spec": {
            "selfSigned": {
                "issuer": ISSUER, "tokenLifetime": lifetime, "sharedSecret": {},
                "rsa": {"secretName": "px-jwt-rsa", "size": 2048},
                "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-256"},
            },
            "tokens": [
                {"secretName": "px-admin-token", "roles": ["system.admin"], "groups": ["*"]},
                {"secretName": "px-user-token", "roles": ["system.user"], "signingKey": "RSA"},
                {"secretName": "px-robot-token", "roles": ["system.view"], "groups": ["ops"], "signingKey": "ECDSA"},
            ],
        },
    }


def token(cluster: Cluster, namespace: str, name: str) -> str:
    return secret_data(cluster, namespace, name).get("auth-token", b"").decode()


def verify_independently(tok: str, key: jwk.JWK, alg: str) -> dict[str, Any]:
    """jwcrypto, not pyjwt: checks the signature and algorithm with the key from the Secret only."""
    parsed = jwt.JWT(jwt=tok, key=key, algs=[alg], check_claims=False)
    claims: dict[str, Any] = json.loads(parsed.claims)
    return claims


def keys(cluster: Cluster, namespace: str) -> dict[str, tuple[jwk.JWK, str]]:
    shared = secret_data(cluster, namespace, "px-shared-secret")["shared-secret"]
    rsa_pub = secret_data(cluster, namespace, "px-jwt-rsa")["public.pem"]
    ec_pub = secret_data(cluster, namespace, "px-jwt-ecdsa")["public.pem"]
    return {
        "px-admin-token": (jwk.JWK(kty="oct", k=jwk.base64url_encode(shared)), "HS256"),  # the ASCII bytes
        "px-user-token": (jwk.JWK.from_pem(rsa_pub), "RS256"),
        "px-robot-token": (jwk.JWK.from_pem(ec_pub), "ES256"),
    }


def test_minted_tokens_verify_with_an_independent_library_and_the_cli(
        cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path) -> None:
    body = doc()
    apply(cluster, namespace, body)
    obj = wait_ready(cluster, namespace, "px-cluster")
    assert condition(obj, "TokensReady")["status"] == "True"
    entries = {t["secretName"]: t for t in obj["status"]["tokens"]}
    assert {k: v["signingKey"] for k, v in entries.items()} == {
        "px-admin-token": "SharedSecret", "px-user-token": "RSA", "px-robot-token": "ECDSA"}
    assert obj["status"]["nextRenewal"] == min(t["renewalTime"] for t in entries.values())

    now = dt.datetime.now(dt.UTC).timestamp()
    for spec_token in body["spec"]["tokens"]:
        name = spec_token["secretName"]
        key, alg = keys(cluster, namespace)[name]
        claims = verify_independently(token(cluster, namespace, name), key, alg)
        assert claims["iss"] == ISSUER
        assert claims["sub"] == claims["email"] == f"{name}@{ISSUER}" and claims["name"] == name
        assert claims["roles"] == spec_token["roles"] and claims["groups"] == spec_token.get("groups", [])
        assert claims["iat"] <= now - 9 * 60  # backdated for clock skew
        assert 3590 <= claims["exp"] - now <= 3610
        expires = dt.datetime.fromtimestamp(claims["exp"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert entries[name]["expiresAt"] == expires
        owners = get_json(cluster, "secret", name, "-n", namespace)["metadata"]["ownerReferences"]
        assert owners[0]["kind"] == "PxSecurity"

    cr_file = tmp_path / "cr.yaml"
    cr_file.write_text(yaml.safe_dump(body))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    for name in ("px-admin-token", "px-user-token", "px-robot-token"):
        result = subprocess.run(
            [sys.executable, "-m", "pxsec", "token", "verify", "-", "-f", str(cr_file), "--from-cluster",
             "-n", namespace], input=token(cluster, namespace, name), capture_output=True, text=True, env=env,
            check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "self-signed" in result.stdout
        assert token(cluster, namespace, name) not in result.stdout + result.stderr


def test_short_lifetime_is_refreshed_before_expiry(cluster: Cluster, operator: OperatorProcess,
                                                   namespace: str) -> None:
    apply(cluster, namespace, doc("1h"))
    wait_ready(cluster, namespace, "px-cluster")
    long_lived = token(cluster, namespace, "px-admin-token")

    apply(cluster, namespace, doc("30s"))  # shortened: re-minted at once ("lifetime changed")
    first = wait_for(lambda: (t := token(cluster, namespace, "px-admin-token")) != long_lived and t, 60,
                     what="re-mint after the lifetime was shortened")
    key, alg = keys(cluster, namespace)["px-admin-token"]
    exp = verify_independently(first, key, alg)["exp"]

    second = wait_for(lambda: (t := token(cluster, namespace, "px-admin-token")) != first and t, 60,
                      interval=0.5, what="refresh before expiry")
    refreshed_at = dt.datetime.now(dt.UTC).timestamp()
    assert refreshed_at < exp, "the token was refreshed only after it had expired"
    assert verify_independently(second, key, alg)["exp"] > exp

    def expiring_event() -> bool:
        # Events are posted at the end of the reconcile, after the Secret was written: poll for it.
        events = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=TokenMinted")["items"]
        return any("px-admin-token (expiring)" in e["message"] for e in events)

    wait_for(expiring_event, 30, what="TokenMinted event with reason expiring")


def test_replacing_the_shared_secret_by_hand_remints_every_token(cluster: Cluster, operator: OperatorProcess,
                                                                 namespace: str) -> None:
    body = doc()
    for t in body["spec"]["tokens"]:
        t.pop("signingKey", None)  # all HS256 with the shared secret
    apply(cluster, namespace, body)
    wait_ready(cluster, namespace, "px-cluster")
    before = {t["secretName"]: token(cluster, namespace, t["secretName"]) for t in body["spec"]["tokens"]}
    replacement = "R" * 64
    cluster.kubectl("patch", "secret", "px-shared-secret", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"stringData": {"shared-secret": replacement}}))

    def all_reminted() -> bool:
        return all(token(cluster, namespace, n) not in ("", old) for n, old in before.items())

    wait_for(all_reminted, 60, what="every token re-minted")
    key = jwk.JWK(kty="oct", k=jwk.base64url_encode(replacement.encode()))
    for name in before:
        assert verify_independently(token(cluster, namespace, name), key, "HS256")["name"] == name
    wait_ready(cluster, namespace, "px-cluster")
    assert condition(pxsec(cluster, namespace, "px-cluster"), "TokensReady")["status"] == "True"
