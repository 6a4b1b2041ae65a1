"""e2e helpers, and the check that runs after every e2e test: no Secret value of the test's namespace
appears in the operator's log, in any Event, in any PxSecurity status or in any ConfigMap."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.interop import build as interop_build
from tests.support.helpers import get_json, wait_for
from tests.support.oidc_provider import OIDCProvider
from tests.support.portworx import PortworxOperatorStandIn
from tests.support.portworx import install_rbac as install_portworx_rbac


def secret_values(cluster: Cluster, namespace: str) -> dict[str, bytes]:
    """Every value (decoded) of every Secret in the namespace, keyed "secret/key"."""
    out: dict[str, bytes] = {}
    for item in get_json(cluster, "secrets", "-n", namespace).get("items", []):
        for key, value in (item.get("data") or {}).items():
            out[f"{item['metadata']['name']}/{key}"] = base64.b64decode(value)
    return out


def _needles(value: bytes) -> list[str]:
    """What a leak could look like: the value, a PEM body line, its base64 form."""
    text = value.decode("utf-8", errors="replace")
    needles = []
    if "-----BEGIN" in text:
        # Any base64 body line of a PEM is specific enough to be a leak on its own.
        needles += [line for line in text.splitlines() if line and not line.startswith("-----")][:3]
    elif len(text) >= 16:
        needles.append(text)
    needles.append(base64.b64encode(value).decode()[:40])
    return [n for n in needles if len(n) >= 16]


def assert_no_leaks(cluster: Cluster, namespace: str, operator_log: str) -> None:
    values = secret_values(cluster, namespace)
    haystacks = {
        "operator log": operator_log,
        "events": json.dumps(get_json(cluster, "events", "-n", namespace)),
        "pxsecurity status": json.dumps(
            [i.get("status") for i in get_json(cluster, "pxsecurities", "-n", namespace).get("items", [])]
        ),
        "configmaps": json.dumps(get_json(cluster, "configmaps", "-n", namespace)),
        # What a person reads when troubleshooting: describe of every PxSecurity, ConfigMap and Secret
        # (Secrets show key sizes only, but their annotations and the Events below them are printed).
        "kubectl describe": cluster.kubectl("describe", "pxsecurities,configmaps,secrets", "-n", namespace,
                                            check=False).stdout,
    }
    for where, text in haystacks.items():
        for ref, value in values.items():
            for needle in _needles(value):
                assert needle not in text, f"the value of Secret {ref} leaked into the {where}"


@pytest.fixture()
def leak_check(cluster: Cluster, operator: OperatorProcess, namespace: str) -> Iterator[None]:
    yield
    assert_no_leaks(cluster, namespace, operator.output())


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCProvider]:
    """A real OIDC provider on loopback (HTTPS, its own CA), reachable by the operator under test."""
    with OIDCProvider() as provider:
        yield provider


def install_ca(cluster: Cluster, namespace: str, provider: OIDCProvider, name: str = "oidc-ca") -> None:
    cluster.kubectl("create", "configmap", name, "-n", namespace, f"--from-literal=ca.crt={provider.ca_pem.decode()}")


def oidc_spec(provider: OIDCProvider, ca: str | None = "oidc-ca") -> dict[str, Any]:
    spec: dict[str, Any] = {"issuer": provider.issuer, "clientID": "portworx"}
    if ca:
        spec["certificateAuthority"] = {"configMapRef": {"name": ca, "key": "ca.crt"}}
    return spec


def apply(cluster: Cluster, namespace: str, doc: dict[str, Any] | str) -> None:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def pxsec(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "pxsecurity", name, "-n", namespace)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = pxsec(cluster, namespace, name)
        cond = condition(obj, "Ready")
        gen = obj.get("metadata", {}).get("generation")
        if cond.get("status") == "True" and cond.get("observedGeneration") == gen:
            return obj
        return None

    result: dict[str, Any] = wait_for(ready, timeout, what=f"{namespace}/{name} Ready")
    return result


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, bytes]:
    item = get_json(cluster, "secret", name, "-n", namespace)
    return {k: base64.b64decode(v) for k, v in (item.get("data") or {}).items()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, show the end of the operator's log next to the assertion."""
    outcome = yield
    report = outcome.get_result()
    proc = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(proc, OperatorProcess):
        report.sections.append(("operator log (tail)", proc.output()[-6000:]))


# -- the Portworx Operator stand-in (tests/support/portworx_standin.py) ---------------------------------------


@pytest.fixture(scope="session")
def portworx_rbac(cluster: Cluster) -> None:
    """The stand-in's own identity: ServiceAccount portworx-operator/portworx-operator and its ClusterRole
    (tests/fixtures/portworx-standin-rbac.yaml)."""
    install_portworx_rbac(cluster)


@pytest.fixture()
def portworx_operator(cluster: Cluster, namespace: str, storagecluster_crd: None, portworx_rbac: None,
                      tmp_path: Path) -> Iterator[PortworxOperatorStandIn]:
    """The Portworx Operator stand-in managing the test's namespace (period 1 s), as its ServiceAccount."""
    yield from _standin(cluster, namespace, PortworxOperatorStandIn(cluster, namespace,
                                                                    tmp_path / "portworx-operator.log"))


@pytest.fixture()
def portworx_with_pods(cluster: Cluster, namespace: str, storagecluster_crd: None, portworx_rbac: None,
                       tmp_path: Path) -> Iterator[PortworxOperatorStandIn]:
    """The same, with its Portworx pods as processes: Portworx nodes' authentication (tests/interop, node
    mode), one per StorageNode, replaced by its rolling update."""
    binary = interop_build.ensure()
    yield from _standin(cluster, namespace, PortworxOperatorStandIn(
        cluster, namespace, tmp_path / "portworx-operator.log", pods_binary=binary))


def _standin(cluster: Cluster, namespace: str, proc: PortworxOperatorStandIn) -> Iterator[PortworxOperatorStandIn]:
    proc.start()
    yield proc
    values = secret_values(cluster, namespace)
    code = proc.stop()
    # Its finalizer would keep the StorageClusters (and so the namespace) forever once it is gone.
    for item in get_json(cluster, "storageclusters.core.libopenstorage.org", "-n", namespace).get("items", []):
        cluster.kubectl("patch", "storageclusters.core.libopenstorage.org", item["metadata"]["name"],
                        "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
    print(f"--- Portworx Operator stand-in log (tail) ---\n{proc.output()[-6000:]}")  # shown on failure
    assert code == 0 and proc.output().rstrip().endswith("portworx-operator stand-in stopped"), \
        f"the stand-in did not stop cleanly on SIGTERM (exit {code})"
    for ref, secret_value in values.items():  # it logs names, never values
        for needle in _needles(secret_value):
            assert needle not in proc.output(), f"the value of Secret {ref} leaked into the stand-in's log"
