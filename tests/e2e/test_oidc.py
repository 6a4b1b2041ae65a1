"""The OIDC provider probe against a real HTTPS provider on loopback, with the operator under the
manifests' RBAC: a private CA from a ConfigMap, loud and specific failures, and recovery when the
missing piece appears."""

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

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.e2e.conftest import apply, condition, install_ca, oidc_spec, pxsec, wait_ready
from tests.support.helpers import get_json, wait_for
from tests.support.oidc_provider import OIDCProvider

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("leak_check")]


def cr(oidc: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-oidc"},
            "spec": {"oidc": oidc}}


def oidc_condition(cluster: Cluster, namespace: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = condition(pxsec(cluster, namespace, "px-oidc"), "OIDCReady")
        return cond if cond.get("reason") == reason else None

    result: dict[str, Any] = wait_for(check, 60, what=f"OIDCReady={reason}")
    return result


def test_private_provider_with_its_ca_is_ready(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                               oidc_provider: OIDCProvider, tmp_path: Path) -> None:
    install_ca(cluster, namespace, oidc_provider)
    doc = cr({**oidc_spec(oidc_provider), "customClaimNamespace": "https://pxsec.dev/"})
    apply(cluster, namespace, doc)
    obj = wait_ready(cluster, namespace, "px-oidc")
    cond = condition(obj, "OIDCReady")
    assert cond["status"] == "True" and cond["reason"] == "ProviderReady"
    status = obj["status"]["oidc"]
    assert status["issuerMatches"] is True and status["jwksKeyCount"] == 2
    assert status["algorithms"] == ["RS256", "ES256", "PS256"]
    assert status["jwksHash"].startswith("sha256:") and status["lastProbeTime"].endswith("Z")
    assert obj["status"]["issuers"] == "oidc"

    # A token from this provider, judged by `pxsec token verify` as Portworx would (namespaced roles).
    now = int(dt.datetime.now(dt.UTC).timestamp())
    token = oidc_provider.token({
        "iss": oidc_provider.issuer, "aud": "portworx", "sub": "alice", "email": "alice@example.com",
        "name": "Alice", "iat": now - 5, "exp": now + 300, "https://pxsec.dev/roles": ["system.admin"],
        "https://pxsec.dev/groups": ["storage"]})
    stored = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    (tmp_path / "cr.yaml").write_text(yaml.safe_dump(stored))
    (tmp_path / "jwks.json").write_text(json.dumps(oidc_provider.jwks()))
    result = subprocess.run([sys.executable, "-m", "pxsec", "token", "verify", "-", "-f", str(tmp_path / "cr.yaml"),
                             "--jwks", str(tmp_path / "jwks.json")], input=token, capture_output=True, text=True,
                            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "oidc" in result.stdout and "system.admin" in result.stdout and "storage" in result.stdout


def test_without_the_ca_the_failure_says_what_to_set(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                                     oidc_provider: OIDCProvider) -> None:
    apply(cluster, namespace, cr(oidc_spec(oidc_provider, ca=None)))
    cond = oidc_condition(cluster, namespace, "DiscoveryFailed")
    assert cond["status"] == "False"
    assert "certificate verify failed" in cond["message"] and "certificateAuthority" in cond["message"]
    ready = condition(pxsec(cluster, namespace, "px-oidc"), "Ready")
    assert ready["status"] == "False" and ready["reason"] == "DiscoveryFailed"
    events = wait_for(lambda: get_json(cluster, "events", "-n", namespace,
                                       "--field-selector", "reason=DiscoveryFailed")["items"], 30,
                      what="DiscoveryFailed event")  # posted right after the status write
    assert events[0]["type"] == "Warning"


def test_missing_ca_configmap_is_waited_for(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                            oidc_provider: OIDCProvider) -> None:
    apply(cluster, namespace, cr(oidc_spec(oidc_provider, ca="late-ca")))
    cond = oidc_condition(cluster, namespace, "CAConfigMapMissing")
    assert cond["status"] == "False" and "late-ca" in cond["message"]
    install_ca(cluster, namespace, oidc_provider, name="late-ca")  # its arrival wakes the resource
    wait_ready(cluster, namespace, "px-oidc")


def test_issuer_mismatch_names_both_values(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    with OIDCProvider() as provider:
        provider.stated_issuer = provider.issuer + "/"
        install_ca(cluster, namespace, provider)
        apply(cluster, namespace, cr(oidc_spec(provider)))
        cond = oidc_condition(cluster, namespace, "IssuerMismatch")
        issuer = provider.issuer
    assert issuer in cond["message"] and "trailing slash" in cond["message"]
    assert pxsec(cluster, namespace, "px-oidc")["status"]["oidc"]["issuerMatches"] is False
