"""Admission warnings from the real API server (crds/warnings.yaml, a ValidatingAdmissionPolicy bound with
Warn): OIDC with a StorageCluster is stored and `kubectl apply` says it is not OIDC-only; a token lifetime
below the minimum is refused for a new object by the CRD, while an object stored before the rule existed
keeps working — edits that leave its lifetime alone are accepted with a warning, a new short lifetime is
refused. The stored-before case is made as it happens to users: the CRD without the rule, an object, then
the CRD as it ships."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.caveats import MIN_LIFETIME_TEXT
from pxsec.crdgen import build_crd
from pxsec.devcluster.cluster import Cluster
from tests.support.helpers import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULE = "token-lifetime-min-with-storagecluster"
POLICY = ("Warning: Validation failed for ValidatingAdmissionPolicy 'pxsecurity-warnings.pxsec.dev' with binding "
          "'pxsecurity-warnings.pxsec.dev': ")
NOT_OIDC_ONLY = POLICY + "spec.oidc without spec.selfSigned is not OIDC-only"
REFUSED = f"spec.selfSigned.tokenLifetime must be at least {MIN_LIFETIME_TEXT} when spec.storageCluster is set"


def apply(cluster: Cluster, namespace: str, doc: dict[str, Any], dry_run: bool = False) -> Any:
    args = ["apply", "-n", namespace, "-f", "-", *(["--dry-run=server"] if dry_run else [])]
    return cluster.kubectl(*args, input=yaml.safe_dump(doc), check=False)


def pxsecurity(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": name}, "spec": spec}


def test_oidc_beside_a_storagecluster_is_stored_with_a_warning(cluster: Cluster, crds_installed: Any,
                                                               namespace: str) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "oidc-only.yaml").read_text())

    def warned() -> Any:  # the policy reaches the admission plugin through an informer: a moment
        result = apply(cluster, namespace, doc, dry_run=True)
        return result if NOT_OIDC_ONLY in result.stderr else None

    wait_for(warned, 30, what="the admission warning")
    stored = apply(cluster, namespace, doc)
    assert stored.returncode == 0 and NOT_OIDC_ONLY in stored.stderr
    assert "Portworx also trusts HS256 tokens signed with that secret" in stored.stderr
    # Nothing to say about OIDC without a StorageCluster, nor with both token sources.
    alone = pxsecurity("oidc-alone", oidc=doc["spec"]["oidc"])
    both = pxsecurity("both", oidc=doc["spec"]["oidc"], selfSigned={"sharedSecret": {}},
                      storageCluster={"name": "px-cluster"})
    for quiet in (alone, both):
        result = apply(cluster, namespace, quiet)
        assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr


@pytest.fixture
def crd_without_the_rule(cluster: Cluster, crds_installed: Any) -> Iterator[None]:
    """The CRD as it was before the minimum existed; the shipped one again afterwards."""
    old = copy.deepcopy(build_crd())
    spec_schema = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec_schema["x-kubernetes-validations"]
    spec_schema["x-kubernetes-validations"] = [r for r in rules if "must be at least" not in r["message"]]
    assert len(spec_schema["x-kubernetes-validations"]) == len(rules) - 1
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(old))
        cluster.wait_established("pxsecurities.pxsec.dev")
        yield
    finally:
        cluster.install_crds(ROOT)


def test_a_short_lifetime_stored_before_the_rule_keeps_working_with_a_warning(
        cluster: Cluster, crds_installed: Any, namespace: str, crd_without_the_rule: None) -> None:
    short = pxsecurity("short", storageCluster={"name": "px-cluster"},
                       selfSigned={"sharedSecret": {}, "tokenLifetime": "60s"})
    wait_for(lambda: apply(cluster, namespace, short).returncode == 0, 30, what="the old CRD to accept 60s")

    cluster.install_crds(ROOT)
    new = pxsecurity("new", storageCluster={"name": "px-cluster"},
                     selfSigned={"sharedSecret": {}, "tokenLifetime": "60s"})
    refused = wait_for(lambda: (r := apply(cluster, namespace, new, dry_run=True)).returncode != 0 and r, 30,
                       what="the shipped CRD to refuse a new short lifetime")
    assert REFUSED in refused.stderr

    # The stored one: another edit is accepted and warned about, its lifetime named.
    edited = copy.deepcopy(short)
    edited["spec"]["tokens"] = [{"secretName": "px-ops-token", "roles": ["system.admin"]}]
    result = wait_for(lambda: (r := apply(cluster, namespace, edited)).returncode == 0
                      and "is below the minimum" in r.stderr and r, 30, what="an accepted edit with a warning")
    assert POLICY + "spec.selfSigned.tokenLifetime 60s is below the minimum of 3m" in result.stderr
    # A new short lifetime is a change: refused. The minimum itself is fine, and then nothing to say.
    edited["spec"]["selfSigned"]["tokenLifetime"] = "90s"
    worse = apply(cluster, namespace, edited)
    assert worse.returncode != 0 and REFUSED in worse.stderr
    edited["spec"]["selfSigned"]["tokenLifetime"] = MIN_LIFETIME_TEXT
    fixed = apply(cluster, namespace, edited)
    assert fixed.returncode == 0 and "Warning" not in fixed.stderr, fixed.stderr
