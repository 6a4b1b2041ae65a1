"""`pxsec dev up`: the main job, locally, in one command.

Start the local control plane (or use $KUBECONFIG when it points at a real cluster), install the CRDs
and the operator's RBAC from this checkout, run the operator as its ServiceAccount, apply a sample,
wait until it is Ready, show `kubectl get pxsec -o wide` and the *names* of the Secrets made (never
their values), and say how to point your own kubectl at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster, KubectlError, OperatorProcess, project_root
from pxsec.devcluster.controlplane import ControlPlaneError

DEMO_NAMESPACE = "portworx"


def _say(msg: str) -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def _cluster() -> Iterator[Cluster]:
    external = os.environ.get("KUBECONFIG")
    if external:
        _say(f"Using the cluster in KUBECONFIG={external}")
        found = assets.locate("kubectl")
        if found is None:
            raise assets.AssetError("kubectl not found: install the dev extras (`pip install -e '.[dev]'`)")
        yield Cluster(kubeconfig=Path(external), kubectl_bin=found)
        return
    _say("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)…")
    started = time.monotonic()
    with Cluster.local(assets.ensure(build=True, log=_say)) as cluster:
        _say(f"  up in {time.monotonic() - started:.1f}s at {cluster.server}")
        yield cluster


def _wait_ready(cluster: Cluster, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", "pxsecurity", name, "-n", DEMO_NAMESPACE, "-o",
                              "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout
        if out == "True":
            return True
        time.sleep(0.5)
    return False


def run_demo(example: str = "self-signed-rsa-ecdsa.yaml", keep: bool = True, timeout: float = 120) -> int:
    root = project_root()
    sample = root / "examples" / example
    if not sample.is_file():
        print(f"pxsec: error: no such example: {sample}", file=sys.stderr)
        return 2
    name = str(yaml.safe_load(sample.read_text())["metadata"]["name"])
    # Ctrl-C and SIGTERM unwind through the context managers below, which stop every process — also
    # when started from a script that left SIGINT ignored, and during start-up, not only while waiting.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with _cluster() as cluster:
            _say("Installing crds/ and manifests/rbac …")
            cluster.install_crds(root)
            cluster.install_rbac(root)
            log = Path(tempfile.mkdtemp(prefix="pxsec-operator-")) / "operator.log"
            operator = OperatorProcess(kubeconfig=cluster.service_account_kubeconfig(), log=log)
            try:  # the operator stops before the control plane it talks to
                operator.start()
                return _show(cluster, operator, example, name, keep, timeout, log)
            finally:
                operator.stop()
    except (assets.AssetError, ControlPlaneError, KubectlError, TimeoutError, RuntimeError) as exc:
        print(f"pxsec: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


def _show(cluster: Cluster, operator: OperatorProcess, example: str, name: str, keep: bool, timeout: float,
          log: Path) -> int:
    operator.wait_for_log("px-security-operator started")
    _say(f"Operator running as system:serviceaccount:pxsec-system:px-security-operator (log: {log})")
    cluster.kubectl("create", "namespace", DEMO_NAMESPACE, check=False)
    cluster.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", str(project_root() / "examples" / example))
    _say(f"Applied examples/{example} to namespace {DEMO_NAMESPACE}; waiting for Ready …")
    ready = _wait_ready(cluster, name, timeout)
    _say("")
    _say(cluster.kubectl("get", "pxsec", "-n", DEMO_NAMESPACE, "-o", "wide").stdout.rstrip())
    _say("")
    # From status, not from labels: the Secrets shared with the Portworx Operator carry no labels of ours.
    status = json.loads(cluster.kubectl("get", "pxsec", name, "-n", DEMO_NAMESPACE, "-o", "json").stdout).get(
        "status") or {}
    secrets = sorted({s["name"] for s in status.get("secrets") or [] if s.get("origin") == "Generated"}
                     | {t["secretName"] for t in status.get("tokens") or [] if "mintedBy" not in t})
    _say("Secrets made by the operator (names only): " + (", ".join(secrets) or "none"))
    if not ready:
        _say(cluster.kubectl("describe", "pxsecurity", name, "-n", DEMO_NAMESPACE).stdout)
        print(f"pxsec: error: {name} did not become Ready within {timeout:.0f}s", file=sys.stderr)
        return 1
    _say("")
    _say(f"Point your own kubectl at it:  export KUBECONFIG={cluster.kubeconfig}")
    if keep:
        _say("Running; press Ctrl-C to stop everything.")
        with contextlib.suppress(KeyboardInterrupt):
            while operator.popen is not None and operator.popen.poll() is None:
                time.sleep(1)
        _say("Stopping …")
    return 0
