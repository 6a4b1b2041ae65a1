"""Every token the operator mints is accepted by Portworx's own libraries (golang-jwt v4.3.0 on OpenStorage's
rules, tests/interop/main.go), configured with exactly what the rendered parameters name: the issuer and
username claim they set, and the values of the Secret keys their env and volumes point at."""

from __future__ import annotations

import datetime as dt
import posixpath
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from pxsec.spec import parse_spec
from pxsec.verify import APPS_ISSUER, VerifyKeys, verify
from tests.e2e.conftest import apply, secret_data, wait_ready
from tests.interop import checker
from tests.interop.tokens import forge
from tests.support.helpers import get_json

pytestmark = [pytest.mark.e2e, pytest.mark.go, pytest.mark.usefixtures("leak_check")]

ISSUER = "interop.portworx.example"
TOKENS = [
    {"secretName": "px-admin-token", "roles": ["system.admin"], "groups": ["*"], "signingKey": "SharedSecret"},
    {"secretName": "px-user-token", "roles": ["system.user"], "groups": ["team-a"], "signingKey": "RSA"},
    {"secretName": "px-robot-token", "roles": ["system.view"], "signingKey": "ECDSA"},
]


def doc() -> dict[str, Any]:
    return {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-interop"},
        "spec": {
            "usernameClaim": "email",
            "selfSigned": {
                "issuer": ISSUER, "tokenLifetime": "2h", "sharedSecret": {},
                "rsa": {"secretName": "px-jwt-rsa", "size": 2048},
                "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-384"},
            },
            "tokens": TOKENS,
        },
    }


class Rendered:
    """What a DaemonSet-installed Portworx receives, resolved from the rendering to values."""

    def __init__(self, cluster: Cluster, namespace: str, rendering: dict[str, Any]) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.env = {e["name"]: e for e in rendering["env"]}
        self.mounts = rendering.get("volumeMounts", [])
        self.volumes = {v["name"]: v for v in rendering.get("volumes", [])}

    def value(self, name: str) -> str | None:
        entry = self.env.get(name)
        return entry.get("value") if entry else None

    def secret_value(self, name: str) -> bytes | None:
        """An env var's value from its secretKeyRef, or the content of the file its path names."""
        entry = self.env.get(name)
        if entry is None:
            return None
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            return secret_data(self.cluster, self.namespace, ref["name"])[ref["key"]]
        path = entry["value"]
        mount = next(m for m in self.mounts if path.startswith(m["mountPath"].rstrip("/") + "/"))
        secret = self.volumes[mount["name"]]["secret"]
        relative = posixpath.relpath(path, mount["mountPath"])
        key = next(item["key"] for item in secret["items"] if item["path"] == relative)
        return secret_data(self.cluster, self.namespace, secret["secretName"])[key]


def test_every_minted_token_is_accepted_by_the_go_libraries_under_the_rendered_parameters(
        cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    binary = checker.checker_or_fail()
    body = doc()
    apply(cluster, namespace, body)
    obj = wait_ready(cluster, namespace, "px-interop")
    configmap = get_json(cluster, "configmap", "px-interop-px-security", "-n", namespace)
    rendered = Rendered(cluster, namespace, yaml.safe_load(configmap["data"]["daemonset.yaml"]))

    issuer = rendered.value("PORTWORX_AUTH_JWT_ISSUER")
    assert issuer == ISSUER
    shared = rendered.secret_value("PORTWORX_AUTH_JWT_SHAREDSECRET")
    rsa_pem = rendered.secret_value("PORTWORX_AUTH_JWT_RSA_PUBKEY")
    ecdsa_pem = rendered.secret_value("PORTWORX_AUTH_JWT_ECDS_PUBKEY")
    apps = rendered.secret_value("PORTWORX_AUTH_SYSTEM_APPS_KEY")
    assert shared and rsa_pem and ecdsa_pem and apps
    username_claim = rendered.value("PORTWORX_AUTH_USERNAME_CLAIM") or "sub"

    spec = parse_spec(body["spec"])
    keys = VerifyKeys(shared_secret=shared, rsa_public_pem=rsa_pem, ecdsa_public_pem=ecdsa_pem, apps_secret=apps)
    now = dt.datetime.now(dt.UTC)
    cases, expected = [], {}
    for entry in obj["status"]["tokens"]:
        name = entry["secretName"]
        token = secret_data(cluster, namespace, name)["auth-token"].decode()
        case = checker.case_for(name, token, spec, keys, now)
        assert case["usernameClaim"] == username_claim
        assert case["selfSigned"][0] == {
            "issuer": issuer, "sharedSecret": checker.b64(shared), "rsaPublicPem": rsa_pem.decode(),
            "ecdsaPublicPem": ecdsa_pem.decode()}
        cases.append(case)
        expected[name] = (token, next(t for t in TOKENS if t["secretName"] == name))
    assert sorted(expected) == sorted(t["secretName"] for t in TOKENS)

    for verdict in checker.judge(binary, cases):
        token, spec_token = expected[verdict["id"]]
        assert verdict["accepted"], f"{verdict['id']}: Portworx's libraries reject it: {verdict.get('error')}"
        assert verdict["issuer"] == ISSUER
        assert verdict["username"] == f"{verdict['id']}@{ISSUER}"
        assert verdict["roles"] == spec_token["roles"] and verdict["groups"] == spec_token.get("groups", [])
        ours = verify(token, spec, keys, now)  # and pxsec, asked the same question, says the same
        assert ours.accepted and ours.cause == "accepted" and ours.warnings == ()
        assert (list(ours.roles), list(ours.groups), ours.username) == (
            verdict["roles"], verdict["groups"], verdict["username"])

    # The apps key the rendering hands Portworx verifies Stork's tokens (issuer apps.portworx.io), as the
    # stork rendering tells Stork to sign them.
    stork = {e["name"]: e for e in yaml.safe_load(configmap["data"]["stork.yaml"])["env"]}
    assert stork["PX_JWT_ISSUER"]["value"] == APPS_ISSUER
    assert stork["PX_SHARED_SECRET"]["valueFrom"]["secretKeyRef"] == \
        rendered.env["PORTWORX_AUTH_SYSTEM_APPS_KEY"]["valueFrom"]["secretKeyRef"]
    iat = int(now.timestamp()) - 60
    stork_token = forge({"alg": "HS256", "typ": "JWT"}, {
        "iss": APPS_ISSUER, "sub": "stork@apps", "email": "stork@apps", "name": "stork",
        "roles": ["system.admin"], "groups": ["*"], "iat": iat, "exp": iat + 3600}, apps)
    [apps_verdict] = checker.judge(binary, [checker.case_for("stork", stork_token, spec, keys, now)])
    assert apps_verdict["accepted"] and apps_verdict["issuer"] == APPS_ISSUER, apps_verdict
    assert verify(stork_token, spec, keys, now).accepted
