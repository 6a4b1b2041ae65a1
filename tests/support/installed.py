"""The install paths as a user takes them, on a control plane of their own, and the operator run exactly as
its Deployment would run it: the Deployment's args and env, its ServiceAccount's token, its probe and
metrics ports (moved to free loopback ports). No container runtime exists here, so the process runs
locally — but everything it is given comes from the installed objects.

Shared by tests/e2e/test_install*.py, test_ha.py, test_metrics.py and test_gitops.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from pxsec.devcluster.controlplane import free_port
from tests.support import audit
from tests.support.helpers import get_json, wait_for
from tests.tools import build as tools

ROOT = project_root()
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A local control plane of its own (a few seconds to start): cluster-scoped installs, a Lease and the
    audit log are then the test's alone, whatever else the session runs."""
    with Cluster.local(assets.ensure(build=True)) as cluster:
        yield cluster


def tool_or_fail(tool: tools.GoTool) -> Path:
    """A tool of tests/tools; a clear failure (never a skip) when it cannot be had."""
    try:
        return tools.ensure(tool, log=True)
    except tools.ToolUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def apply_file(cluster: Cluster, namespace: str, path: Path) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))


def apply_doc(cluster: Cluster, namespace: str, doc: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def sa_kubeconfig(cluster: Cluster, namespace: str, name: str, dest: Path) -> Path:
    """A kubeconfig with a token of its own (TokenRequest) for the ServiceAccount, at `dest`: two processes
    under one ServiceAccount get two credentials, which the audit log tells apart."""
    made = cluster.service_account_kubeconfig(namespace, name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(made, dest)
    return dest


def token_id(kubeconfig: Path) -> str:
    """The credential id the API server logs for the kubeconfig's ServiceAccount token ("JTI=<jti>")."""
    doc = yaml.safe_load(kubeconfig.read_text())
    token = str(doc["users"][0]["user"]["token"])
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"JTI={claims['jti']}"


@dataclass(frozen=True)
class CredentialWrite:
    credential: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    at: dt.datetime


def writes_by_credential(log: Path, since: dt.datetime | None = None) -> list[CredentialWrite]:
    """The successful, completed writes in kube-apiserver's audit log with the credential that made them."""
    out: list[CredentialWrite] = []
    for event in audit.events(log):
        if event.get("stage") != "ResponseComplete" or event.get("verb") not in audit.WRITE_VERBS:
            continue  # the log also has the operator's reads
        if not 200 <= int((event.get("responseStatus") or {}).get("code") or 0) < 300:
            continue
        at = dt.datetime.fromisoformat(str(event["stageTimestamp"]))
        if since is not None and at < since:
            continue
        ref = event.get("objectRef") or {}
        extra = (event.get("user") or {}).get("extra") or {}
        out.append(CredentialWrite(
            credential=",".join(extra.get(CREDENTIAL_ID) or []), verb=str(event.get("verb")),
            resource=str(ref.get("resource", "")), subresource=str(ref.get("subresource", "")),
            namespace=str(ref.get("namespace", "")), name=str(ref.get("name", "")), at=at))
    return out


@dataclass
class Deployed:
    """The operator process of an installed Deployment."""

    process: OperatorProcess
    kubeconfig: Path
    health_url: str
    readiness_url: str
    metrics_url: str | None
    args: list[str]

    @property
    def credential(self) -> str:
        return token_id(self.kubeconfig)

    def health(self) -> int:
        return http_status(self.health_url)

    def readiness(self) -> int:
        return http_status(self.readiness_url)

    def metrics(self) -> Metrics:
        assert self.metrics_url is not None, "the Deployment serves no metrics"
        return scrape(self.metrics_url)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found = get_json(cluster, "deployment", name, "-n", namespace)
    assert found, f"Deployment {namespace}/{name} is not installed"
    return found


def run_as_deployment(cluster: Cluster, deploy: dict[str, Any], workdir: Path, label: str,
                      extra_args: tuple[str, ...] = (),
                      route: Callable[[Path], Path] | None = None) -> Deployed:
    """Start `pxsec operator` with the Deployment's container args and env under its ServiceAccount; the
    listening addresses move to free loopback ports. Waits until it logged its start. `route` makes the
    kubeconfig it runs with from the ServiceAccount's (e.g. through a fault proxy)."""
    namespace = str(deploy["metadata"]["namespace"])
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = list(container.get("args") or [])
    assert args and args[0] == "operator", f"the container does not run `pxsec operator`: {args}"
    ports = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or []}
    moved = {port: free_port() for port in ports.values()}
    run_args: list[str] = []
    for arg in args[1:]:
        for old, new in moved.items():
            arg = arg.replace(f"0.0.0.0:{old}", f"127.0.0.1:{new}")
        run_args.append(arg)
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = namespace
        else:
            raise AssertionError(f"env {var['name']}: a source this test cannot provide: {var}")

    def probe_url(probe: dict[str, Any]) -> str:
        get = probe["httpGet"]
        port = get["port"]
        number = ports[port] if isinstance(port, str) else int(port)
        return f"http://127.0.0.1:{moved[number]}{get['path']}"

    kubeconfig = sa_kubeconfig(cluster, namespace, str(pod["serviceAccountName"]), workdir / f"{label}.kubeconfig")
    if route is not None:
        kubeconfig = route(kubeconfig)
    metrics = next((a.split("=", 1)[1] for a in run_args if a.startswith("--metrics-bind-address=")), None)
    process = OperatorProcess(kubeconfig=kubeconfig, log=workdir / f"{label}.log", extra_env=env,
                              args=(*run_args, *extra_args)).start()
    deployed = Deployed(process, kubeconfig, probe_url(container["livenessProbe"]),
                        probe_url(container["readinessProbe"]),
                        f"http://{metrics}/metrics" if metrics else None, [*run_args, *extra_args])
    process.wait_for_log("px-security-operator started")
    return deployed


# -- metrics ----------------------------------------------------------------------------------------

Sample = tuple[str, frozenset[tuple[str, str]]]


class Metrics(dict[Sample, float]):
    """One scrape: (sample name, labels) -> value."""

    def value(self, name: str, **labels: str) -> float | None:
        return self.get((name, frozenset(labels.items())))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: v for (n, labels), v in self.items() if n == name}


def scrape(url: str) -> Metrics:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out = Metrics()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


def raw_metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def wait_metric(deployed: Deployed, name: str, want: float, timeout: float = 60, **labels: str) -> Metrics:
    def check() -> Metrics | None:
        got = deployed.metrics()
        return got if got.value(name, **labels) == want else None

    result: Metrics = wait_for(check, timeout, what=f"{name}{labels} == {want}")
    return result


class Restarting:
    """Restarts the processes that exit, as the kubelet restarts a Deployment's containers (a crash, a
    leader that lost its Lease and exited, a SIGKILL): each exit is recorded as (label, exit code)."""

    def __init__(self, *deployed: Deployed) -> None:
        self.deployed = list(deployed)
        self.exits: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="restarting", daemon=True)

    def __enter__(self) -> Restarting:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for d in self.deployed:
            d.process.stop()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for d in self.deployed:
                popen = d.process.popen
                if popen is not None and popen.poll() is not None and not self._stop.is_set():
                    self.exits.append((d.process.log.stem, int(popen.returncode)))
                    d.process.start()
