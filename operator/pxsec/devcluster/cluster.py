"""A local cluster session: the control plane plus the few things tests and the demo do with it —
run kubectl as admin, install the CRDs and the operator's RBAC from the project's own files, mint a
ServiceAccount kubeconfig through TokenRequest, and run the operator as a real subprocess under it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pxsec.devcluster import kubeconfig
from pxsec.devcluster.assets import Assets
from pxsec.devcluster.controlplane import ControlPlane, _die_with_parent

OPERATOR_NAMESPACE = "pxsec-system"
OPERATOR_SERVICE_ACCOUNT = "px-security-operator"


def project_root() -> Path:
    """The checkout this package was installed from (editable install): crds/, manifests/, examples/."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "crds").is_dir() and (parent / "manifests").is_dir():
            return parent
    raise FileNotFoundError("crds/ and manifests/ not found above the package: run from a checkout")


class KubectlError(RuntimeError):
    pass


@dataclass
class Cluster:
    """Either a local control plane we started, or an existing cluster named by a kubeconfig.

    `audit_log` is kube-apiserver's JSON audit log (Metadata-level events of the write verbs; see
    controlplane.AUDIT_POLICY) for a local control plane, None for an existing cluster.
    """

    kubeconfig: Path
    kubectl_bin: Path
    control_plane: ControlPlane | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pxsec-session-")))
    audit_log: Path | None = None

    @classmethod
    def local(cls, assets: Assets) -> Cluster:
        cp = ControlPlane(assets)
        cp.start()
        return cls(kubeconfig=cp.admin_kubeconfig, kubectl_bin=assets.kubectl, control_plane=cp,
                   audit_log=cp.audit_log)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.control_plane is not None:
            self.control_plane.stop()

    @property
    def server(self) -> str:
        import yaml

        doc = yaml.safe_load(self.kubeconfig.read_text())
        return str(doc["clusters"][0]["cluster"]["server"])

    # -- kubectl ----------------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig_path: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl (as admin unless another kubeconfig is given); raise KubectlError with its stderr."""
        cmd = [str(self.kubectl_bin), f"--kubeconfig={kubeconfig_path or self.kubeconfig}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def install_crds(self, root: Path | None = None) -> None:
        root = root or project_root()
        self.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(root / "crds"))
        self.wait_established("pxsecurities.pxsec.dev")

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Poll (not `kubectl wait`, which errors out before the CRD has any status conditions)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.kubectl("get", "crd", crd, "-o",
                                  "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                                  check=False).stdout
            if status == "True":
                return
            time.sleep(0.2)
        raise KubectlError(f"CRD {crd} not Established after {timeout:.0f}s")

    def install_rbac(self, root: Path | None = None) -> None:
        root = root or project_root()
        self.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(root / "manifests" / "rbac"))

    # -- the operator's identity ------------------------------------------------------------------

    def service_account_kubeconfig(self, namespace: str = OPERATOR_NAMESPACE,
                                   name: str = OPERATOR_SERVICE_ACCOUNT, duration: str = "24h") -> Path:
        """A kubeconfig that authenticates as the ServiceAccount (token from the TokenRequest API)."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        import yaml

        doc = yaml.safe_load(self.kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        ca = self.workdir / "ca.crt"
        import base64

        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        return kubeconfig.write_token_kubeconfig(
            self.workdir / f"{namespace}-{name}.kubeconfig", cluster["server"], ca, token)


@dataclass
class OperatorProcess:
    """`pxsec operator` as a real subprocess with its log captured to a file."""

    kubeconfig: Path
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = dict(os.environ)
        env.update({"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}, **self.extra_env)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "pxsec", "operator", *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        return self

    def stop(self, timeout: float = 15) -> int | None:
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

    def restart(self) -> OperatorProcess:
        self.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would: no cleanup, no finishing of anything."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"operator exited ({self.popen.returncode}):\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"operator log never showed {text!r}:\n{self.output()[-3000:]}")
