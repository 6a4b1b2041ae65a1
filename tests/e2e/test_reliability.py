"""One bad object never wedges the operator (issue: reliability), on the real control plane: whatever is
put into a token Secret, the token is replaced and the resource goes on to Ready; the status is never
left stale behind an endless back-off."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, pxsec, secret_data, wait_ready
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_with(header: dict[str, Any], claims_json: bytes) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(claims_json)}.{b64url(b'x' * 32)}"


CLAIMS = b'{"iss":"operator.portworx.io","sub":"a","email":"a","name":"a","roles":["system.admin"],' \
         b'"groups":["*"],"iat":1,"exp":4102444800}'
HOSTILE = {
    "crit-header": token_with({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}, CLAIMS),
    "nested-100000-deep": token_with({"alg": "HS256"}, b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "not-base64": "a.b!.c",
    "exp-past-the-calendar": token_with({"alg": "HS256"}, CLAIMS.replace(b"4102444800", b"1e400")),
    "binary": "\u00ff\u00fe",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_token_secret_is_replaced_not_a_wedge(cluster: Cluster, operator: OperatorProcess,
                                                        namespace: str, case: str, tmp_path: Path) -> None:
    apply(cluster, namespace, {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
        "spec": {"selfSigned": {"sharedSecret": {}},
                 "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"]}]},
    })
    wait_ready(cluster, namespace, "px")
    hostile = HOSTILE[case].encode("utf-8")
    patch = tmp_path / "patch.json"  # a file: 270 kB would not fit on a command line
    patch.write_text(json.dumps({"data": {"auth-token": base64.b64encode(hostile).decode()}}))
    cluster.kubectl("patch", "secret", "px-ops-token", "-n", namespace, "--type=merge", f"--patch-file={patch}")

    def replaced() -> bytes | None:
        value = secret_data(cluster, namespace, "px-ops-token").get("auth-token", b"")
        return value if value and value != hostile else None

    token = wait_for(replaced, 60, what="the hostile token replaced").decode()
    key = secret_data(cluster, namespace, "px-shared-secret")["shared-secret"]
    assert jwt.decode(token, key, algorithms=["HS256"], issuer="operator.portworx.io")["name"] == "px-ops-token"
    obj = wait_ready(cluster, namespace, "px")
    assert condition(obj, "TokensReady")["reason"] == "TokensValid"
    minted = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=TokenMinted")
    # Re-minted as unreadable, or (a crit header is ignored as Go's library ignores it) as badly signed.
    assert any(f"px-ops-token ({why})" in e["message"] for e in minted.get("items", [])
               for why in ("unreadable", "signing key changed"))
    assert "InternalError" not in json.dumps(pxsec(cluster, namespace, "px")["status"])


@pytest.mark.usefixtures("storagecluster_crd")
def test_rendered_names_that_look_like_numbers_reach_kubectl_as_strings(cluster: Cluster, operator: OperatorProcess,
                                                                        namespace: str) -> None:
    """`1e3`, `2e5` and `0o17` are valid Secret names; the ConfigMap's YAML must not turn them into numbers
    on their way through kubectl (which reads YAML the 1.2 way)."""
    apply(cluster, namespace, json.dumps({  # JSON: PyYAML would write these plain, and kubectl misread them
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
        "spec": {"system": {"secretName": "1e3"}, "selfSigned": {"sharedSecret": {"secretName": "2e5"}},
                 "tokens": [{"secretName": "0o17", "roles": ["system.user"]}]},
    }))
    wait_ready(cluster, namespace, "px")
    data = get_json(cluster, "configmap", "px-px-security", "-n", namespace)["data"]
    created = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-n", namespace, "-f", "-",
                              input=data["storagecluster.yaml"]).stdout
    env = {e["name"]: e for e in json.loads(created)["spec"]["env"]}
    assert env["PORTWORX_AUTH_SYSTEM_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "1e3"
    storageclass = yaml.safe_load(data["storageclass.yaml"])
    assert storageclass["tokenSecret"]["name"] == "0o17"
    assert "'2e5'" in data["daemonset.yaml"] or '"2e5"' in data["daemonset.yaml"]
