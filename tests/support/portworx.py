"""Run the Portworx Operator stand-in (tests/support/portworx_standin.py) as a real subprocess under its own
ServiceAccount, with its output captured to a file — like OperatorProcess does for our operator.

    px = PortworxOperatorStandIn(cluster, namespace, tmp_path / "portworx.log").start()
    px.wait_for_passes(2)             # two more complete passes (observed in its log)
    px.restarts()                     # Portworx pods it restarted (every process of this log)
    px.restart()                      # a new process: its token cache starts empty, so it re-mints
    px.stop()

    create_storage_nodes(cluster, namespace, 3)   # its model of the Portworx pods (and of the wiper's nodes)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pxsec.devcluster.cluster import Cluster, project_root
from pxsec.devcluster.controlplane import _die_with_parent

NAMESPACE = "portworx-operator"
SERVICE_ACCOUNT = "portworx-operator"
USERNAME = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"  # as the audit log names it
USER_AGENT = "portworx-operator"
RBAC = project_root() / "tests" / "fixtures" / "portworx-standin-rbac.yaml"
FINALIZER = "operator.libopenstorage.org/delete"  # the stand-in's finalizer on StorageClusters

_STARTED = "portworx-operator stand-in started"
_PASS = re.compile(r"^pass (\d+) done", re.MULTILINE)
_RESTART = re.compile(r"^restart Portworx pod ", re.MULTILINE)
STORAGENODES = "storagenodes.core.libopenstorage.org"


def install_rbac(cluster: Cluster) -> None:
    """The stand-in's Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(RBAC))


def create_storage_nodes(cluster: Cluster, namespace: str, count: int, prefix: str = "node") -> list[str]:
    """`count` StorageNodes in the namespace (names prefix-1 …): to the stand-in, the Portworx pods it
    restarts on a new revision and the nodes its uninstall's node wiper must wipe; to our operator, a
    sign that Portworx runs. Made by the test (upstream Portworx makes them), with no status."""
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    docs = [{"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageNode",
             "metadata": {"name": name, "namespace": namespace}} for name in names]
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    return names


@dataclass
class PortworxOperatorStandIn:
    cluster: Cluster
    namespace: str
    log_path: Path
    period: float = 1.0
    write_delay: float = 0.0  # seconds between its read of a StorageCluster and its update (--write-delay)
    pods_binary: Path | None = None  # the Portworx pods as processes of pxsec-interop (node mode)
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60) -> PortworxOperatorStandIn:
        """Start it with a fresh TokenRequest token and wait until it says it started."""
        kubeconfig = self.cluster.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)
        env = dict(os.environ)
        env.update({"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = self.output().count(_STARTED)
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "tests.support.portworx_standin", "--namespace", self.namespace,
                 "--period", str(self.period), "--write-delay", str(self.write_delay),
                 *(("--pods-binary", str(self.pods_binary), "--pods-dir", str(self.log_path.parent / "pods"))
                   if self.pods_binary else ())],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=project_root(),
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        self._wait(lambda: self.output().count(_STARTED) > started, timeout, "its start")
        return self

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM (it finishes the pass it is in), SIGKILL after `timeout`; the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def restart(self) -> PortworxOperatorStandIn:
        self.stop()
        return self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def passes(self) -> int:
        """Passes completed by the current process (0 before its first)."""
        text = self.output()
        current = text[text.rfind(_STARTED):] if _STARTED in text else ""
        found = _PASS.findall(current)
        return int(found[-1]) if found else 0

    def restarts(self) -> int:
        """Portworx pods it restarted (one log line each), over every process of this log file: its
        running revision lives in memory, so a restart of the stand-in does not restart pods by itself,
        and counting across processes keeps a test's count meaningful over a restart."""
        return len(_RESTART.findall(self.output()))

    def wait_for_passes(self, count: int = 1, timeout: float = 60) -> None:
        """Wait until `count` more passes have completed (each one read the world after this call)."""
        target = self.passes() + count + 1  # +1: the pass running now may have read the world before
        self._wait(lambda: self.passes() >= target, timeout, f"{count} more passes")

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        self._wait(lambda: text in self.output(), timeout, repr(text))

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"the Portworx Operator stand-in exited ({self.popen.returncode}):\n"
                                   f"{self.output()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"the Portworx Operator stand-in never showed {what} within {timeout:.0f}s:\n"
                           f"{self.output()[-3000:]}")


def storagecluster_on_port(cluster: Cluster, namespace: str, rest_port: int, name: str = "px-cluster") -> None:
    """A StorageCluster with security on whose Portworx nodes answer their SDK REST gateway on `rest_port`
    (startPort + 17, as the Portworx Operator maps it): for the stand-in's pods as processes."""
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "portworx/oci-monitor:3.2.0", "startPort": rest_port - 17,
                 "security": {"enabled": True, "auth": {"selfSigned": {
                     "issuer": "operator.portworx.io", "sharedSecret": "px-shared-secret"}}}}}))
