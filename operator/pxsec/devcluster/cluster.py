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
from pxsec.devcluster.controlplane import ControlPlane, _die_with_parent, terminate_group

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


def parse_can_i_list(table: str) -> set[tuple[str, str, str, str]]:
    """The rows of `kubectl auth can-i --list` (Resources, Non-Resource URLs, Resource Names, Verbs) as
    (resource, url, resource name, verb) atoms; list cells ("[a b]") are split into one atom each."""
    lines = [line for line in table.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Resources"):
        raise KubectlError(f"unexpected `kubectl auth can-i --list` output: {table[:200]!r}")
    header = lines[0]
    starts = [header.index(col) for col in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    bounds = [*starts[1:], None]
    atoms: set[tuple[str, str, str, str]] = set()
    for line in lines[1:]:
        cells = [line[a:b].strip() if b is not None else line[a:].strip() for a, b in zip(starts, bounds, strict=True)]

        def items(cell: str) -> list[str]:
            inner = cell.strip("[]").split()
            return inner or [""]

        resource = cells[0]
        for url in items(cells[1]):
            for name in items(cells[2]):
                for verb in items(cells[3]):
                    atoms.add((resource, url, name, verb))
    return atoms


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
        """`kubectl apply -f crds/`, as the README says (server-side: the CRD is too large to carry a
        last-applied annotation comfortably). A checkout from before crds/ lost its kustomization.yaml
        (tests/bench/measure_coexistence.py runs old versions) is applied with -k, as it was then."""
        crds = (root or project_root()) / "crds"
        how = "-k" if (crds / "kustomization.yaml").is_file() else "-f"
        self.kubectl("apply", "--server-side", "--force-conflicts", how, str(crds))
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
        """The operator's identity and cluster-wide RBAC (manifests/rbac), without its Deployment."""
        root = root or project_root()
        self.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(root / "manifests" / "rbac"))

    def install_kustomization(self, path: Path) -> str:
        """`kubectl apply --server-side -k PATH` (an install path under manifests/); returns kubectl's output
        (its warnings, e.g. Pod Security ones, are on stderr and part of it)."""
        result = self.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(path))
        return result.stdout + result.stderr

    def helm(self, helm_bin: Path, *args: str, check: bool = True,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run helm against this cluster (as admin), with its caches and config in the session's workdir."""
        home = self.workdir / "helm"
        env = dict(os.environ)
        env.update({"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(self.kubeconfig)})
        result = subprocess.run([str(helm_bin), *args], env=env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def can_i_list(self, kubeconfig_path: Path, namespace: str) -> set[tuple[str, str, str, str]]:
        """`kubectl auth can-i --list -n NAMESPACE` for whoever `kubeconfig_path` authenticates as, as atoms
        (resource, non-resource URL, resource name, verb): one per verb, so equal permissions compare equal
        however the API server groups the rows."""
        out = self.kubectl("auth", "can-i", "--list", "-n", namespace, kubeconfig_path=kubeconfig_path).stdout
        return parse_can_i_list(out)

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
        return terminate_group(self.popen, timeout)

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
