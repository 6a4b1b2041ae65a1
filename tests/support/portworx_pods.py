"""Portworx pods for the Portworx Operator stand-in (tests/support/portworx_standin.py): one process per
StorageNode, each a Portworx node's authentication (tests/interop/node.go, `pxsec-interop node`).

What a pod gets is what the Portworx Operator gives a Portworx container (libopenstorage/operator at 303cc37,
read, not copied): the security env of drivers/storage/portworx/deployment.go (the shared secret, the system
and apps keys, the issuer) resolved from their Secrets at the pod's start, every `spec.env` entry (a value,
or a secretKeyRef resolved at start), and every `spec.volumes` Secret written under the pod's own root
directory at its mountPath, as the kubelet fills a container's mounts. The node reads all of it once, at
start: a Secret changed later is not seen until the pod is replaced.

Rolling update (pkg/controller/storagecluster/update.go rollingUpdate): a pod whose revision is not the
StorageCluster's is replaced, at most `spec.updateStrategy.rollingUpdate.maxUnavailable` (default 1) not
ready at a time; a pod is ready when its SDK REST gateway accepts connections. A pod whose process died is
started again with its own revision (a container restart keeps the pod's spec; its secretKeyRefs are read
again). The StorageCluster's Update condition says InProgress while any pod is old or not ready, Completed
when none is (drivers/storage/portworx/status.go).

Each node listens on 127.0.0.<10+i> at the SDK REST gateway port Portworx uses for the StorageCluster's
startPort (component/portworx_api.go: 9021 for the default 9001, else startPort + 17), and its StorageNode's
status.network.mgmtIP says that address (upstream the Portworx Operator's StorageNode controller copies it
from the node).
"""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_START_PORT = 9001
SHARED_SECRET_KEY, SYSTEM_SECRET_KEY, APPS_SECRET_KEY = "shared-secret", "system-secret", "apps-secret"
SYSTEM_SECRETS_NAME = "px-system-secrets"

ReadSecret = Callable[[str], dict[str, bytes] | None]


def rest_gateway_port(spec: dict[str, Any]) -> int:
    start = int(spec.get("startPort") or DEFAULT_START_PORT)
    return 9021 if start == DEFAULT_START_PORT else start + 17


def max_unavailable(spec: dict[str, Any]) -> int:
    value = (((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable"))
    try:
        return max(1, int(str(value)))
    except ValueError:
        return 1  # a percentage or nothing: one at a time, as for a small cluster


class Unresolvable(Exception):
    """A value the pod needs is not there (a Secret or key missing): the pod cannot start yet."""


def pod_env(spec: dict[str, Any], auth: bool, issuer: str, shared_secret: str, read: ReadSecret) -> dict[str, str]:
    """The container's environment, resolved now (deployment.go, then spec.env; a spec.env entry of the
    same name wins, as it replaces the operator's)."""
    def key(secret: str, name: str) -> str:
        data = read(secret)
        if data is None or name not in data:
            raise Unresolvable(f"Secret {secret} key {name} not found")
        return data[name].decode(errors="replace")

    env: dict[str, str] = {}
    if auth:
        env["PORTWORX_AUTH_JWT_ISSUER"] = issuer
        env["PORTWORX_AUTH_JWT_SHAREDSECRET"] = key(shared_secret, SHARED_SECRET_KEY)
        env["PORTWORX_AUTH_SYSTEM_KEY"] = key(SYSTEM_SECRETS_NAME, SYSTEM_SECRET_KEY)
        env["PORTWORX_AUTH_SYSTEM_APPS_KEY"] = key(SYSTEM_SECRETS_NAME, APPS_SECRET_KEY)
    for entry in spec.get("env") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        ref = ((entry.get("valueFrom") or {}).get("secretKeyRef") or {})
        env[str(entry["name"])] = key(str(ref.get("name")), str(ref.get("key"))) if ref else str(
            entry.get("value") or "")
    return env


def fill_volumes(spec: dict[str, Any], root: Path, read: ReadSecret) -> None:
    """Every Secret volume of spec.volumes, written under `root` at its mountPath (items: key -> path)."""
    for volume in spec.get("volumes") or []:
        secret = (volume or {}).get("secret") or {}
        if not secret.get("secretName") or not volume.get("mountPath"):
            continue
        data = read(str(secret["secretName"]))
        if data is None:
            raise Unresolvable(f"Secret {secret['secretName']} of volume {volume.get('name')} not found")
        items = secret.get("items") or [{"key": k, "path": k} for k in data]
        target = root / str(volume["mountPath"]).lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for item in items:
            if item["key"] not in data:
                raise Unresolvable(f"Secret {secret['secretName']} key {item['key']} not found")
            (target / str(item["path"])).write_bytes(data[item["key"]])


def tls_args(spec: dict[str, Any], root: Path, read: ReadSecret) -> list[str]:
    """With spec.security.enabled and tls.enabled (IsTLSEnabledOnCluster): the node serves its API over TLS
    with the server certificate and key of spec.security.tls (Secret references, written under `root`)."""
    security = spec.get("security") or {}
    tls = security.get("tls") or {}
    if security.get("enabled") is not True or tls.get("enabled") is not True:
        return []
    args = []
    for field_name, flag in (("serverCert", "--tls-cert"), ("serverKey", "--tls-key")):
        ref = ((tls.get(field_name) or {}).get("secretRef") or {})
        data = read(str(ref.get("secretName"))) if ref.get("secretName") else None
        value = (data or {}).get(str(ref.get("secretKey")))
        if not value:
            raise Unresolvable(f"spec.security.tls.{field_name}: Secret {ref.get('secretName')} key "
                               f"{ref.get('secretKey')} not found")
        path = root / "etc" / "pwx" / "tls" / field_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value)
        args += [flag, str(path)]
    return args


@dataclass
class Pod:
    node: str
    ip: str
    revision: str  # the revision (a digest of the bounce-relevant spec) it was created from
    spec: dict[str, Any]
    generation: int = 0  # pods of this node created so far (each its own root directory)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    root: Path = field(default_factory=Path)
    just_started: bool = False  # started in this pass (its StorageNode shows Initializing once)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if not self.alive():
            return False
        try:
            with socket.create_connection((self.ip, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Pods:
    """The Portworx pods of one namespace's StorageCluster, as processes of `binary` (pxsec-interop)."""

    def __init__(self, binary: Path, workdir: Path, log: Callable[[str], None]) -> None:
        self.binary, self.workdir, self.log = binary, workdir, log
        self.pods: dict[str, Pod] = {}
        self.restarts = 0

    def ip_of(self, node: str, nodes: list[str]) -> str:
        return f"127.0.0.{10 + sorted(nodes).index(node)}"

    def _start(self, pod: Pod, env: dict[str, str], read: ReadSecret) -> None:
        pod.generation += 1
        pod.just_started = True
        pod.root = self.workdir / f"{pod.node}-{pod.generation}"
        pod.root.mkdir(parents=True, exist_ok=True)
        fill_volumes(pod.spec, pod.root, read)
        tls = tls_args(pod.spec, pod.root, read)
        pod.port = rest_gateway_port(pod.spec)
        log = (self.workdir / f"{pod.node}.log").open("ab")
        pod.process = subprocess.Popen(
            [str(self.binary), "node", "--listen", f"{pod.ip}:{pod.port}", "--root", str(pod.root),
             "--name", pod.node, *tls], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def sync(self, spec: dict[str, Any], revision: str, nodes: list[str],
             env_for: Callable[[dict[str, Any]], dict[str, str]], read: ReadSecret) -> str:
        """One pass: pods for new nodes, none for gone ones, dead ones started again, old ones replaced
        within maxUnavailable. Returns the Update state: "Completed" or "InProgress"."""
        for node in [n for n in self.pods if n not in nodes]:
            self.pods.pop(node).stop()
        for node in nodes:
            pod = self.pods.get(node)
            if pod is None:
                pod = self.pods[node] = Pod(node, self.ip_of(node, nodes), revision, dict(spec))
                self._try_start(pod, env_for, read, "created")
            elif not pod.alive():
                if pod.revision != revision:  # an old pod that is not running is replaced first
                    pod.revision, pod.spec = revision, dict(spec)
                    self.restarts += 1
                self._try_start(pod, env_for, read,
                                "started again (its process exited)" if pod.generation else "created")
        unavailable = sum(1 for p in self.pods.values() if not p.ready())
        budget = max_unavailable(spec) - unavailable
        for pod in sorted(self.pods.values(), key=lambda p: p.node):
            if budget <= 0:
                break
            if pod.revision != revision and pod.ready():
                pod.stop()
                pod.revision, pod.spec = revision, dict(spec)
                self.restarts += 1
                self._try_start(pod, env_for, read, "replaced with the new revision")
                budget -= 1
        done = all(p.revision == revision and p.ready() for p in self.pods.values())
        return "Completed" if done else "InProgress"

    def _try_start(self, pod: Pod, env_for: Callable[[dict[str, Any]], dict[str, str]], read: ReadSecret,
                   why: str) -> None:
        try:
            self._start(pod, env_for(pod.spec), read)
        except Unresolvable as exc:
            self.log(f"Portworx pod {pod.node} cannot start: {exc}")
            return
        self.log(f"Portworx pod {pod.node} {why}: {pod.ip}:{pod.port}, pod #{pod.generation}")

    def stop(self) -> None:
        for pod in self.pods.values():
            pod.stop()


def decoded(secret: dict[str, Any] | None) -> dict[str, bytes] | None:
    if secret is None:
        return None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
