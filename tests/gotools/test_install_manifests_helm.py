"""The Helm chart renders what manifests/ (kustomize) renders, with the real helm (helm.sh/helm/v3 as
tests/tools/helm pins it, built with Go once per machine: `make tools`): the same RBAC and the same operator
container; its Deployment is hardened; `helm lint --strict` is clean; the values people look for reach the
objects; more than one replica without leader election is refused. The kustomize side and the helpers are
tests/unit/test_install_manifests.py.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.support.installed import tool_or_fail
from tests.tools.build import HELM
from tests.unit.test_install_manifests import (
    CHART,
    assert_hardened,
    container_contract,
    deployment,
    kustomize,
    rbac,
)

pytestmark = pytest.mark.go

# The kustomize install and the chart values that render the same objects.
PAIRS = {
    "cluster-wide": ("manifests/cluster-wide", ()),
    "namespaced": ("manifests/namespaced", ("watchNamespaces={portworx}",)),
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(tool_or_fail(HELM)), *args], capture_output=True, text=True, check=False,
                            env={"HOME": "/nonexistent", "HELM_CACHE_HOME": "/tmp/pxsec-helm-cache",
                                 "HELM_CONFIG_HOME": "/tmp/pxsec-helm-config", "HELM_DATA_HOME": "/tmp/pxsec-helm-data",
                                 "PATH": "/usr/bin:/bin"})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def template(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "px-security-operator", str(CHART), "--namespace", "pxsec-system"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


@pytest.mark.parametrize("mode", PAIRS)
def test_helm_and_kustomize_render_the_same_rbac(mode: str) -> None:
    path, sets = PAIRS[mode]
    assert rbac(template(*sets)) == rbac(kustomize(path))


@pytest.mark.parametrize("mode", PAIRS)
def test_helm_and_kustomize_run_the_same_operator(mode: str) -> None:
    path, sets = PAIRS[mode]
    assert container_contract(deployment(template(*sets))) == container_contract(deployment(kustomize(path)))


@pytest.mark.parametrize("sets", [
    pytest.param((), id="helm"),
    pytest.param(("watchNamespaces={a,b}", "replicaCount=3"), id="helm-namespaced"),
])
def test_the_deployment_is_hardened(sets: tuple[str, ...]) -> None:
    assert_hardened(deployment(template(*sets)))


def test_helm_lint_is_clean() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout
    result = helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={portworx}",
                  "--set", "metrics.serviceMonitor.enabled=true")
    assert "0 chart(s) failed" in result.stdout


def test_chart_values_people_look_for() -> None:
    docs = template("watchNamespaces={portworx,storage}", "replicaCount=3", "image.repository=registry.local/pxsec",
                    "image.tag=dev", "commonLabels.team=storage", "podLabels.tier=control",
                    "resources.limits.memory=512Mi", "metrics.serviceMonitor.enabled=true",
                    "metrics.serviceMonitor.labels.release=prometheus")
    deploy = deployment(docs)
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert deploy["spec"]["replicas"] == 3 and c["image"] == "registry.local/pxsec:dev"
    assert "--namespace=portworx" in c["args"] and "--namespace=storage" in c["args"]
    assert c["resources"]["limits"]["memory"] == "512Mi"
    assert all(d["metadata"]["labels"]["team"] == "storage" for d in docs)
    assert deploy["spec"]["template"]["metadata"]["labels"]["tier"] == "control"
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "Role"}
    assert roles == {("portworx", "px-security-operator"), ("storage", "px-security-operator"),
                     ("pxsec-system", "px-security-operator-leader-election")}
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # our namespace label is the PxSecurity's
    off = template("metrics.enabled=false")
    assert not [d for d in off if d["kind"] in ("Service", "ServiceMonitor")]
    off_args = deployment(off)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--metrics") for a in off_args)


def test_more_than_one_replica_without_leader_election_is_refused() -> None:
    result = helm("template", "x", str(CHART), "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0 and "only one replica may reconcile" in result.stderr
    single = template("leaderElection.enabled=false", "replicaCount=1")
    args = deployment(single)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect" not in args
    assert not [d for d in single if d["kind"] == "Role"]


def test_lease_durations_reach_the_operator() -> None:
    args = deployment(template("leaderElection.leaseDuration=30", "leaderElection.renewDeadline=20",
                               "leaderElection.retryPeriod=4"))["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--leader-election-lease-duration=30", "--leader-election-renew-deadline=20",
            "--leader-election-retry-period=4"} <= set(args)


def test_the_admission_warnings_are_the_same_objects_as_crds_and_can_be_left_out() -> None:
    from pxsec import admissionwarnings

    policy_kinds = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    rendered = [d for d in template("commonLabels.team=storage") if d["kind"] in policy_kinds]
    assert all(d["metadata"].pop("labels")["team"] == "storage" for d in rendered)
    assert rendered == admissionwarnings.build()
    assert not [d for d in template("admissionWarnings=false") if d["kind"] in policy_kinds]
