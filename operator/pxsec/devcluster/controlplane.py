"""Start and stop a real local control plane: etcd, kube-apiserver (RBAC on) and
kube-controller-manager (garbage collector, namespace and serviceaccount controllers) on loopback.

Like controller-runtime's envtest, but with the controller manager, because deletionPolicy=Delete and
namespace teardown are only real when the real garbage collector runs. Children are started in their
own process group with PR_SET_PDEATHSIG, so even a SIGKILLed parent leaves no etcd or kube-* behind;
`stop()` (also run by the context manager, atexit and on startup failure) terminates them in order.

kube-apiserver writes a JSON audit log (`ControlPlane.audit_log`, one event per line): Metadata level
for the write verbs, nothing else. Blocking mode: the request's own goroutine writes the event as the
request completes (no background batch), so a write's line is on disk at the latest a moment after the
client has its response. Tests read it to count who wrote what (tests/support/audit.py).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pxsec.devcluster import kubeconfig, pki
from pxsec.devcluster.assets import Assets

# The operator's ServiceAccount, as the tests and `pxsec dev up` run it (manifests/identity).
OPERATOR_USER = "system:serviceaccount:pxsec-system:px-security-operator"

# audit.k8s.io/v1 Policy: who wrote what, never a request or response body (Metadata), and only the
# final stage of each request (RequestReceived omitted): every write, and the operator's get and list
# (its round trips are counted: tests/e2e/test_requests.py, tests/bench/bench_e2e.py). Watches and everyone
# else's reads: None, so the log and the API server's extra work stay small.
AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: Metadata
    users: ["{OPERATOR_USER}"]
    verbs: [get, list]
  - level: None
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message is one line (plus a log tail for diagnosis)."""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A loopback port free right now (the kernel picks it; the window for a clash is tiny)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def terminate_group(popen: subprocess.Popen[bytes], grace: float = 10) -> int:
    """SIGTERM to a child's process group, SIGKILL after `grace` seconds; its exit code once it is gone."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
    return int(popen.returncode)


def _terminate(proc: _Proc, grace: float = 10) -> None:
    terminate_group(proc.popen, grace)


@dataclass
class ControlPlane:
    """A running control plane. Use as a context manager, or call start()/stop()."""

    assets: Assets
    workdir: Path | None = None
    startup_timeout: float = 120.0
    etcd_port: int | None = None  # None: a free loopback port
    apiserver_port: int | None = None
    procs: list[_Proc] = field(default_factory=list)
    etcd_url: str = ""
    server: str = ""
    admin_kubeconfig: Path = Path()
    pki: pki.PKI | None = None
    audit_log: Path = Path()
    _owns_workdir: bool = False
    _etcd_peer_port: int | None = None

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for label, path in (("etcd", self.assets.etcd), ("kube-apiserver", self.assets.kube_apiserver),
                            ("kube-controller-manager", self.assets.kube_controller_manager)):
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ControlPlaneError(f"{label} binary not found or not executable: {path}")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pxsec-controlplane-"))
            self._owns_workdir = True
        atexit.register(self.stop)
        try:
            self.pki = pki.generate(self.workdir / "pki")
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate every child, newest first and one at a time (kube-apiserver exits in about a second
        while etcd is still there, but hangs when etcd goes first), escalating to SIGKILL; then remove
        the work directory."""
        for proc in reversed(self.procs):
            _terminate(proc)
        self.procs.clear()
        if self._owns_workdir and self.workdir is not None and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def restart_apiserver_and_etcd(self, pause: float) -> None:
        """An outage of the API: stop kube-apiserver and etcd, wait `pause` seconds, start them again on
        the same ports with the same data and certificates (clients and their tokens keep working).
        kube-controller-manager stays up and reconnects, as it would in a real cluster."""
        going = [p for p in self.procs if p.name in ("kube-apiserver", "etcd")]
        for proc in sorted(going, key=lambda p: p.name != "kube-apiserver"):  # the API server first
            _terminate(proc)
            self.procs.remove(proc)
        time.sleep(pause)
        self._start_etcd()
        self._start_apiserver()

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs if p.popen.poll() is None]

    # -- the three processes ---------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        proc = _Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait(self, proc: _Proc, url: str, context: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(self._explain(proc, f"{proc.name} exited with {proc.popen.returncode}"))
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(self._explain(
            proc, f"{proc.name} not healthy at {url} after {self.startup_timeout:.0f}s ({last})"))

    @staticmethod
    def _explain(proc: _Proc, headline: str) -> str:
        tail = proc.tail()
        if "address already in use" in tail:
            headline = f"{proc.name}: port already in use ({headline})"
        return f"{headline}\n--- last lines of {proc.log} ---\n{tail}"

    def _start_etcd(self) -> None:
        assert self.workdir is not None
        client, peer = self.etcd_port or free_port(), self._etcd_peer_port or free_port()
        # Kept, so that restart_apiserver_and_etcd() brings etcd back where its data says it lives.
        self.etcd_port, self._etcd_peer_port = client, peer
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        proc = self._spawn("etcd", [
            str(self.assets.etcd),
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync=true",  # throwaway data: trade durability for test speed
            "--log-level=warn",
        ])
        self._wait(proc, f"{self.etcd_url}/health", None)

    def _start_apiserver(self) -> None:
        assert self.workdir is not None and self.pki is not None
        port = self.apiserver_port or free_port()
        self.apiserver_port = port
        self.server = f"https://127.0.0.1:{port}"
        p = self.pki
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.audit_log = self.workdir / "audit.log"
        proc = self._spawn("kube-apiserver", [
            str(self.assets.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p.serving.cert}", f"--tls-private-key-file={p.serving.key}",
            f"--client-ca-file={p.ca.cert}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_public}",
            f"--service-account-signing-key-file={p.sa_private}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            "--endpoint-reconciler-type=none",  # loopback advertise address: no kubernetes Endpoints
            "--enable-priority-and-fairness=false",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",  # written by the request's own goroutine, not a background batch
            "--profiling=false",
            "-v=1",
        ])
        self.admin_kubeconfig = kubeconfig.write_cert_kubeconfig(
            self.workdir / "admin.kubeconfig", self.server, p.ca.cert, p.admin.cert, p.admin.key)
        context = ssl.create_default_context(cafile=str(p.ca.cert))
        context.load_cert_chain(str(p.admin.cert), str(p.admin.key))
        self._wait(proc, f"{self.server}/readyz", context)

    def _start_controller_manager(self) -> None:
        assert self.workdir is not None and self.pki is not None
        p = self.pki
        kcm_config = kubeconfig.write_cert_kubeconfig(
            self.workdir / "controller-manager.kubeconfig", self.server, p.ca.cert,
            p.controller_manager.cert, p.controller_manager.key)
        port = free_port()
        proc = self._spawn("kube-controller-manager", [
            str(self.assets.kube_controller_manager),
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}", f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--leader-elect=false",
            "--controllers=garbagecollector,namespace,serviceaccount",
            f"--root-ca-file={p.ca.cert}",
            "--use-service-account-credentials=false",
            "-v=1",
        ])
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its own self-signed serving cert; /healthz carries no data
        self._wait(proc, f"https://127.0.0.1:{port}/healthz", insecure)
