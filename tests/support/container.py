"""Run the operator's image as the kubelet would run the Deployment's pod: the OCI archive `make image` builds,
unpacked with umoci and run under runc (Debian's), with exactly what the installed Deployment specifies —
its args and env, its user, a read-only root filesystem, no capabilities, no new privileges, a seccomp
profile for RuntimeDefault, its /tmp volume and resource limits — and a ServiceAccount token mounted at the
standard path, as the kubelet projects it.

Networking: each container gets a network namespace of its own, as a pod does, so two replicas both listen
on the Deployment's ports 8080 and 8081 with its args unchanged (host networking would make them clash and
would need the args rewritten). In it, this process plays the cluster's network:

- the `kubernetes` Service: 10.0.0.1:443 inside the namespace (the first address of the control plane's
  service range, in its serving certificate) forwards to kube-apiserver on the host's loopback, and the pod's
  /etc/hosts names it kubernetes.default.svc (what cluster DNS would answer): kopf's in-cluster login
  always dials https://kubernetes.default.svc, the kubernetes client KUBERNETES_SERVICE_HOST:PORT;
- the kubelet's probes and a Prometheus scrape: host loopback ports forward to 8080 and 8081 inside.

Sockets are made in the namespace by a thread that joined it (setns), then used from anywhere: no veth, no
iptables, nothing on the host changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pxsec.devcluster.cluster import Cluster
from pxsec.devcluster.controlplane import _die_with_parent

SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service: first address of --service-cluster-ip-range 10.0.0.0/24
SERVICE_PORT = 443
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFADDR, _SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# RuntimeDefault, approximated: everything allowed but what containerd's and Docker's default profiles refuse
# (kernel modules, keyrings, mounts and namespaces, ptrace, clock and reboot, bpf, perf, ...).
SECCOMP_DENIED = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module", "finit_module", "fsconfig",
    "fsmount", "fsopen", "fspick", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "quotactl", "quotactl_fd", "reboot", "request_key", "set_mempolicy", "setns",
    "settimeofday", "swapoff", "swapon", "syslog", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
]


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _ifreq_address(name: str, address: str) -> bytes:
    return struct.pack("16sHH4s8x", name.encode(), socket.AF_INET, 0, socket.inet_aton(address))


class NetNamespace:
    """A network namespace of its own, held by a file descriptor of this process: loopback up, plus
    SERVICE_IP on it. `path` names it for the runtime's config."""

    def __init__(self) -> None:
        with ThreadPoolExecutor(1) as once:
            self.fd = once.submit(self._create).result()
        # One thread that lives in the namespace: the sockets it creates belong to it.
        self._inside = ThreadPoolExecutor(1, initializer=lambda: _check(_libc.setns(self.fd, _CLONE_NEWNET)))
        self._listeners: list[socket.socket] = []

    @staticmethod
    def _create() -> int:
        _check(_libc.unshare(_CLONE_NEWNET))  # this thread only: network namespaces are per thread
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        with socket.socket() as sock:
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | 1))  # IFF_UP
            fcntl.ioctl(sock, _SIOCSIFADDR, _ifreq_address("lo:svc", SERVICE_IP))
            fcntl.ioctl(sock, _SIOCSIFNETMASK, _ifreq_address("lo:svc", "255.255.255.255"))
        return fd

    @property
    def path(self) -> str:
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def socket(self) -> socket.socket:
        return self._inside.submit(socket.socket, socket.AF_INET, socket.SOCK_STREAM).result()

    def serve_inside(self, address: tuple[str, int], target: tuple[str, int]) -> None:
        """Inside the namespace, `address` forwards to `target` on the host (a Service's ClusterIP)."""
        listener = self.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        self._listen(listener, lambda: socket.create_connection(target, timeout=10))

    def expose(self, port: int) -> int:
        """A host loopback port that forwards to `port` inside the namespace (the kubelet probing the pod)."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))

        def dial() -> socket.socket:
            sock = self.socket()
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            return sock

        self._listen(listener, dial)
        return int(listener.getsockname()[1])

    def _listen(self, listener: socket.socket, dial: Callable[[], socket.socket]) -> None:
        listener.listen(64)
        self._listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, dial), daemon=True, name="netns-accept").start()

    @staticmethod
    def _accept(listener: socket.socket, dial: Callable[[], socket.socket]) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=_splice, args=(client, dial), daemon=True, name="netns-conn").start()

    def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._inside.shutdown(wait=False)
        os.close(self.fd)


def _splice(client: socket.socket, dial: Callable[[], socket.socket]) -> None:
    try:
        upstream = dial()
    except OSError:
        client.close()  # nothing listening yet: the client sees a refused/reset connection, as it would
        return
    upstream.settimeout(None)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    other.start()
    pump(client, upstream)
    other.join()
    client.close()
    upstream.close()


# -- the image, unpacked ---------------------------------------------------------------------------------


def unpack(archive: Path, tag: str, dest: Path) -> Path:
    """`umoci unpack` of the OCI archive into the bundle `dest` (rootfs/ and the image's config.json)."""
    layout = dest.parent / f"{dest.name}-layout"
    layout.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(dest)], check=True, capture_output=True)
    shutil.rmtree(layout)
    return dest


def _quantity_bytes(value: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(value[: -len(suffix)]) * factor
    return int(value)


def _cpu_millis(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def runtime_spec(image_config: dict[str, Any], deploy: dict[str, Any], *, rootfs: Path, hostname: str,
                 netns: str, sa_dir: Path, hosts: Path) -> dict[str, Any]:
    """The OCI runtime config for the Deployment's (only) container, from the image's (umoci's) config.

    Kubernetes semantics: `command` replaces the image's entrypoint, `args` its cmd; the container's
    securityContext overrides the pod's; capabilities drop ALL leaves none; allowPrivilegeEscalation false is
    noNewPrivileges; readOnlyRootFilesystem is a read-only root; emptyDir volumes are fresh and writable."""
    namespace = str(deploy["metadata"]["namespace"])
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    spec = json.loads(json.dumps(image_config))
    process = spec["process"]
    image_entry = process["args"]  # umoci: entrypoint + cmd; our image's entrypoint is python3 -m pxsec
    assert image_entry[:3] == ["python3", "-m", "pxsec"], image_entry
    process["args"] = list(container.get("command") or image_entry[:3]) + list(container.get("args") or [])
    process["terminal"] = False
    if "runAsUser" in context:
        process["user"]["uid"] = int(context["runAsUser"])
    if "runAsGroup" in context:
        process["user"]["gid"] = int(context["runAsGroup"])
    if context.get("runAsNonRoot"):
        assert process["user"]["uid"] != 0, "runAsNonRoot with user 0: the kubelet would refuse to start it"
    dropped = {str(c) for c in (context.get("capabilities") or {}).get("drop") or []}
    assert dropped == {"ALL"}, f"the Deployment drops {dropped}, not ALL: this test gives it no capabilities"
    process["capabilities"] = {kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    process["noNewPrivileges"] = context.get("allowPrivilegeEscalation") is False
    env = [e for e in process["env"] if not e.startswith(("TERM=", "HOSTNAME="))]
    for var in container.get("env") or []:
        if "value" in var:
            env.append(f"{var['name']}={var['value']}")
        elif (var.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env.append(f"{var['name']}={namespace}")
        else:
            raise AssertionError(f"env {var['name']}: a source this test cannot provide: {var}")
    env += [f"HOSTNAME={hostname}", f"KUBERNETES_SERVICE_HOST={SERVICE_IP}",
            f"KUBERNETES_SERVICE_PORT={SERVICE_PORT}", f"KUBERNETES_SERVICE_PORT_HTTPS={SERVICE_PORT}",
            f"KUBERNETES_PORT=tcp://{SERVICE_IP}:{SERVICE_PORT}"]
    process["env"] = env
    spec["root"] = {"path": str(rootfs), "readonly": bool(context.get("readOnlyRootFilesystem"))}
    spec["hostname"] = hostname
    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"] + [
        {"type": "network", "path": netns}]
    if (context.get("seccompProfile") or {}).get("type") == "RuntimeDefault":
        linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": SECCOMP_DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    limits = (container.get("resources") or {}).get("limits") or {}
    resources = linux.setdefault("resources", {})
    if "memory" in limits:
        resources["memory"] = {"limit": _quantity_bytes(str(limits["memory"]))}
    if "cpu" in limits:
        resources["cpu"] = {"quota": _cpu_millis(str(limits["cpu"])) * 100, "period": 100000}
    mounts = [m for m in spec["mounts"] if m["destination"] not in ("/etc/hosts",)]
    volumes = {str(v["name"]): v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume, f"volume {mount['name']}: only emptyDir is provided by this test"
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        options = ["nosuid", "nodev", "mode=1777"] + ([f"size={_quantity_bytes(str(size))}"] if size else [])
        mounts.append({"destination": mount["mountPath"], "type": "tmpfs", "source": "tmpfs", "options": options})
    if pod.get("automountServiceAccountToken", True):
        mounts.append({"destination": SA_DIR, "type": "bind", "source": str(sa_dir),
                       "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    mounts.append({"destination": "/etc/hosts", "type": "bind", "source": str(hosts), "options": ["rbind", "ro"]})
    spec["mounts"] = mounts
    return spec


class Container:
    """One replica of the Deployment as a pod under runc. `health_url`, `readiness_url` and `metrics_url` reach
    its probe and metrics ports from the host, as the kubelet and Prometheus reach the pod's."""

    def __init__(self, cluster: Cluster, deploy: dict[str, Any], bundle: Path, workdir: Path, label: str,
                 api_port: int, ca: Path) -> None:
        self.cluster, self.deploy, self.label = cluster, deploy, label
        self.dir = workdir / label
        self.dir.mkdir(parents=True)
        self.log = self.dir / "container.log"
        self.id = f"pxsec-{label}-{secrets.token_hex(3)}"
        self.hostname = f"px-security-operator-{secrets.token_hex(3)}-{label}"
        self.state = workdir / "runc-state"
        self.netns = NetNamespace()
        self.netns.serve_inside((SERVICE_IP, SERVICE_PORT), ("127.0.0.1", api_port))
        pod = deploy["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        ports = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or []}
        self.ports = {number: self.netns.expose(number) for number in ports.values()}

        def url(probe: dict[str, Any]) -> str:
            port = probe["httpGet"]["port"]
            number = ports[port] if isinstance(port, str) else int(port)
            return f"http://127.0.0.1:{self.ports[number]}{probe['httpGet']['path']}"

        self.health_url = url(container["livenessProbe"])
        self.readiness_url = url(container["readinessProbe"])
        metrics = next((a.split(":")[-1] for a in container.get("args") or []
                        if a.startswith("--metrics-bind-address=")), None)
        self.metrics_url = f"http://127.0.0.1:{self.ports[int(metrics)]}/metrics" if metrics else None
        # The projected ServiceAccount volume: a bound token of the pod's ServiceAccount, the cluster's CA, the
        # namespace — 0644 files, as the kubelet writes them (defaultMode 420).
        namespace = str(deploy["metadata"]["namespace"])
        sa = self.dir / "serviceaccount"
        sa.mkdir()
        token = cluster.kubectl("create", "token", str(pod["serviceAccountName"]), "-n", namespace,
                                "--duration=1h").stdout.strip()
        (sa / "token").write_text(token)
        shutil.copyfile(ca, sa / "ca.crt")
        (sa / "namespace").write_text(namespace)
        for path in (sa, *sa.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.token = token
        hosts = self.dir / "hosts"
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                         f"127.0.1.1\t{self.hostname}\n"
                         f"{SERVICE_IP}\tkubernetes kubernetes.default kubernetes.default.svc "
                         "kubernetes.default.svc.cluster.local\n")
        hosts.chmod(0o644)
        self.bundle = self.dir / "bundle"
        self.bundle.mkdir()
        image_config = json.loads((bundle / "config.json").read_text())
        spec = runtime_spec(image_config, deploy, rootfs=bundle / "rootfs", hostname=self.hostname,
                            netns=self.netns.path, sa_dir=sa, hosts=hosts)
        (self.bundle / "config.json").write_text(json.dumps(spec, indent=2))
        self.spec = spec
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def runc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runc", "--root", str(self.state), *args], capture_output=True, text=True,
                              check=check, timeout=60)

    def start(self) -> Container:
        """`runc run` in the foreground (its exit code is the container's); output to the container's log."""
        self.started_at = time.monotonic()
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                ["runc", "--root", str(self.state), "run", "--bundle", str(self.bundle), self.id],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"container {self.label} exited ({self.popen.returncode}):\n"
                                     f"{self.output()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"container {self.label} never logged {text!r}:\n{self.output()[-3000:]}")

    def terminate(self) -> tuple[int | None, float]:
        """What the kubelet does to stop it: SIGTERM to the container's process, then up to the pod's
        terminationGracePeriodSeconds. Returns (exit code, seconds it took); (None, grace) when the grace
        period ran out (it is then SIGKILLed)."""
        grace = float(self.deploy["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30))
        assert self.popen is not None
        started = time.monotonic()
        self.runc("kill", self.id, "TERM", check=False)
        try:
            code: int | None = self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            code = None
            self.runc("kill", self.id, "KILL", check=False)
            self.popen.wait(timeout=30)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.runc("kill", self.id, "KILL", check=False)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.runc("delete", "--force", self.id, check=False)
        self.netns.close()
