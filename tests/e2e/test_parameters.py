"""Initialization parameters against the real control plane: the ConfigMap, the status hash, byte
equality between `pxsec render` and what the operator wrote, and the opt-in StorageCluster apply path
(merge with the user's env, conflicts reported not forced, a late StorageCluster picked up)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec import render
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from tests.e2e.conftest import apply, condition, install_ca, oidc_spec, pxsec, wait_ready
from tests.support.helpers import get_json, wait_for
from tests.support.oidc_provider import OIDCProvider

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("storagecluster_crd", "leak_check")]

EXAMPLES = sorted((project_root() / "examples").glob("*.yaml"))
USER_ENV = {"name": "USER_SETTING", "value": "keep-me"}


def configmap(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "configmap", render.configmap_name(name), "-n", namespace)


def wait_condition(cluster: Cluster, namespace: str, name: str, type_: str, reason: str,
                   timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = condition(pxsec(cluster, namespace, name), type_)
        return cond if cond.get("reason") == reason else None

    result: dict[str, Any] = wait_for(check, timeout, what=f"{type_}={reason}")
    return result


def storagecluster(namespace: str, name: str = "px-cluster", env: list[dict[str, Any]] | None = None) -> str:
    return yaml.safe_dump({
        "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "portworx/oci-monitor:3.2.0", "env": env if env is not None else [dict(USER_ENV)]},
    })


def sc_env(cluster: Cluster, namespace: str, name: str = "px-cluster") -> dict[str, Any]:
    sc = get_json(cluster, "storagecluster", name, "-n", namespace)
    return {e["name"]: e for e in sc.get("spec", {}).get("env") or []}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_every_example_renders_the_same_bytes_as_the_cli(cluster: Cluster, operator: OperatorProcess,
                                                         namespace: str, example: Path) -> None:
    doc = yaml.safe_load(example.read_text())
    name = doc["metadata"]["name"]
    apply(cluster, namespace, example.read_text())
    cond = wait_condition(cluster, namespace, name, "ParametersRendered", "Rendered")
    assert cond["status"] == "True"
    cm = configmap(cluster, namespace, name)
    data = cm["data"]
    assert set(data) == {render.configmap_key(t) for t in render.TARGETS}
    owner = cm["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "PxSecurity" and owner["name"] == name
    status = pxsec(cluster, namespace, name)["status"]
    assert status["parameters"] == {"configMapName": render.configmap_name(name), "hash": render.content_hash(data)}
    for target in render.TARGETS:
        cli = subprocess.run([sys.executable, "-m", "pxsec", "render", "-f", str(example), "--target", target,
                              "--namespace", namespace], capture_output=True, text=True, check=True)
        assert cli.stdout == data[render.configmap_key(target)], target


def test_deleted_configmap_is_rendered_again(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    apply(cluster, namespace, (project_root() / "examples" / "self-signed-shared-secret.yaml").read_text())
    name = "px-cluster"
    wait_ready(cluster, namespace, name)
    before = configmap(cluster, namespace, name)["data"]
    cluster.kubectl("delete", "configmap", render.configmap_name(name), "-n", namespace)
    wait_for(lambda: configmap(cluster, namespace, name).get("data") == before, 60, what="ConfigMap re-rendered")


def _apply_spec(cluster: Cluster, namespace: str, provider: OIDCProvider) -> dict[str, Any]:
    install_ca(cluster, namespace, provider)
    return {
        "apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-sec"},
        "spec": {
            "storageCluster": {"name": "px-cluster", "apply": True},
            "usernameClaim": "email",
            "oidc": oidc_spec(provider),
            "selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                           "ecdsa": {"secretName": "px-jwt-ecdsa"}},
        },
    }


def test_apply_merges_into_the_users_storagecluster(cluster: Cluster, operator: OperatorProcess,
                                                    namespace: str, oidc_provider: OIDCProvider) -> None:
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace))
    doc = _apply_spec(cluster, namespace, oidc_provider)
    apply(cluster, namespace, doc)
    wait_condition(cluster, namespace, "px-sec", "StorageClusterApplied", "Applied")
    wait_ready(cluster, namespace, "px-sec")
    env = sc_env(cluster, namespace)
    assert env["USER_SETTING"] == USER_ENV  # the user's entry survives
    assert env["PORTWORX_AUTH_OIDC_ISSUER"]["value"] == oidc_provider.issuer
    assert env["PORTWORX_AUTH_USERNAME_CLAIM"]["value"] == "email"
    assert env["PORTWORX_AUTH_JWT_ECDS_PUBKEY"]["value"].startswith("/etc/pwx/")
    sc = get_json(cluster, "storagecluster", "px-cluster", "-n", namespace)
    assert sc["spec"]["security"]["enabled"] is True
    assert sc["spec"]["security"]["auth"]["selfSigned"]["sharedSecret"] == "px-shared-secret"
    assert any(v["name"] for v in sc["spec"]["volumes"])

    # The user adds another env entry later: we keep it, and turning OIDC off removes only ours.
    user_env = [*sc["spec"]["env"], {"name": "LATER", "value": "1"}]
    cluster.kubectl("patch", "storagecluster", "px-cluster", "-n", namespace, "--type=merge",
                    "-p", yaml.safe_dump({"spec": {"env": user_env}}))
    without_oidc = copy.deepcopy(doc)
    del without_oidc["spec"]["oidc"]
    apply(cluster, namespace, without_oidc)
    wait_for(lambda: "PORTWORX_AUTH_OIDC_ISSUER" not in sc_env(cluster, namespace), 60, what="OIDC env removed")
    env = sc_env(cluster, namespace)
    assert env["LATER"] == {"name": "LATER", "value": "1"} and env["USER_SETTING"] == USER_ENV


def test_conflicting_value_is_reported_not_forced(cluster: Cluster, operator: OperatorProcess,
                                                  namespace: str, oidc_provider: OIDCProvider) -> None:
    theirs = {"name": "PORTWORX_AUTH_USERNAME_CLAIM", "value": "name"}
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace, env=[dict(USER_ENV), theirs]))
    apply(cluster, namespace, _apply_spec(cluster, namespace, oidc_provider))
    cond = wait_condition(cluster, namespace, "px-sec", "StorageClusterApplied", "Conflict")
    assert cond["status"] == "False" and "PORTWORX_AUTH_USERNAME_CLAIM" in cond["message"]
    assert condition(pxsec(cluster, namespace, "px-sec"), "Ready")["status"] == "False"
    env = sc_env(cluster, namespace)
    assert env["PORTWORX_AUTH_USERNAME_CLAIM"] == theirs  # not overwritten
    assert "PORTWORX_AUTH_OIDC_ISSUER" in env  # the rest still went through


def test_late_storagecluster_is_picked_up(cluster: Cluster, operator: OperatorProcess, namespace: str,
                                          oidc_provider: OIDCProvider) -> None:
    apply(cluster, namespace, _apply_spec(cluster, namespace, oidc_provider))
    cond = wait_condition(cluster, namespace, "px-sec", "StorageClusterApplied", "WaitingForStorageCluster")
    assert cond["status"] == "False"
    assert condition(pxsec(cluster, namespace, "px-sec"), "Ready")["status"] == "False"
    cluster.kubectl("apply", "-f", "-", input=storagecluster(namespace))
    wait_condition(cluster, namespace, "px-sec", "StorageClusterApplied", "Applied")
    assert "PORTWORX_AUTH_OIDC_ISSUER" in sc_env(cluster, namespace)
    wait_ready(cluster, namespace, "px-sec")


def test_oidc_beside_a_storagecluster_says_which_shared_secret_portworx_also_trusts(
        cluster: Cluster, operator: OperatorProcess, namespace: str, oidc_provider: OIDCProvider) -> None:
    # A StorageCluster that already runs with auth on and an issuer of its own (as the Portworx Operator
    # would have filled it); the PxSecurity asks for OIDC only.
    sc = yaml.safe_load(storagecluster(namespace))
    sc["spec"]["security"] = {"enabled": True, "auth": {"selfSigned": {
        "issuer": "corp.example", "sharedSecret": "corp-shared", "tokenLifetime": "24h"}}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(sc))
    both = _apply_spec(cluster, namespace, oidc_provider)
    doc = copy.deepcopy(both)
    del doc["spec"]["selfSigned"]
    apply(cluster, namespace, doc)

    def said() -> list[str]:
        return list((pxsec(cluster, namespace, "px-sec").get("status") or {}).get("warnings") or [])

    warnings = wait_for(said, 60, what="status.warnings")
    assert len(warnings) == 1 and warnings[0].startswith("not OIDC-only")
    assert "self-signed issuer (corp.example) with the shared secret in Secret corp-shared" in warnings[0]
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=SpecCaveat")["items"]
    assert [(e["type"], e["message"]) for e in events] == [("Warning", warnings[0])]
    # Both token sources: nothing to say any more.
    apply(cluster, namespace, both)
    wait_for(lambda: not said(), 60, what="status.warnings gone")
