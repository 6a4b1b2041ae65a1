"""`make bench-e2e`: the operator end to end on a fresh local control plane, measured — never asserted.

    .venv/bin/python -m tests.bench.bench_e2e [--objects 200] [--single 10] [--noise 5000] [--idle 30]
                                              [--shape plain|storagecluster] [--json out.json]
                                              [--operator-root PATH] [--operator-arg ARG ...]

Starts its own control plane (etcd, kube-apiserver, kube-controller-manager) whose audit log also records
the operator's get and list requests (Metadata level: names, never bodies), installs the CRDs and the
operator's RBAC from PATH (default: this checkout), and runs that version's operator
(PYTHONPATH=PATH/operator) as its ServiceAccount. Every PxSecurity lives in its own namespace and has the
same shape: a shared secret, an ECDSA P-256 key pair and one HS256 token (with --shape storagecluster also
`storageCluster: {name: px-cluster}`, a StorageCluster that does not exist: the shape nearly every user's
PxSecurity has). Then, in order:

  single  --single objects one after another: create -> Ready (Ready=True at the current generation, as a
          watch of the bench sees it), median / min / max. One warm-up object before them is reported apart.
  burst   --objects created at once (--threads parallel creates): time until all are Ready, per-object
          p50 / p95, objects per second; the operator's API requests per object by verb and resource (from
          the audit log: its username only, in the burst's namespaces, until the idle window opens), its CPU
          seconds (user+sys of the process and its children, /proc/<pid>/stat) and peak RSS (VmHWM, reset
          before the burst where the kernel allows it).
  idle    --idle seconds with everything Ready: the operator's requests (writes should be 0) and CPU.
  noise   the earlier objects are deleted, --sitting objects are created and left Ready, then --noise
          unrelated Secrets and ConfigMaps (half each) are created and then updated in other namespaces by
          the bench (as admin, --noise-threads threads). The operator's CPU seconds and RSS growth from the
          first noise write until it is quiet again, and the writes the sitting objects' namespaces saw.
  startup (with --startup-secrets N) N unrelated Secrets in --startup-namespaces namespaces beside the --sitting
          Ready objects, then the operator restarted with --liveness: seconds until its probe answers 200 and
          until every sitting object was reconciled again (its first request in that namespace, audit log),
          and over its first --startup-window seconds its requests (list pages of Secrets, writes), CPU
          seconds and RSS (issue 23: 20,000 Secrets in 2,000 namespaces).

It prints a markdown table (with the load average of the machine before and after each phase: other
processes compete for the same cores) and writes the numbers as JSON (--json). Names only: no Secret value
is ever read or printed.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import urllib3
import yaml

from pxsec.devcluster import assets, controlplane
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from tests.bench.measure_coexistence import operator_version, stop_cleanly_on_sigterm
from tests.support.audit import WRITE_VERBS, AuditWrite, now, requests

OPERATOR_USER = controlplane.OPERATOR_USER  # its get and list requests are in the audit log too
GROUP_VERSION = "pxsec.dev/v1alpha1"
PXSEC_ALL = f"/apis/{GROUP_VERSION}/pxsecurities"
NAME = "px-cluster"
NOISE_PER_NAMESPACE = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")



class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


SHAPES = ("plain", "storagecluster")
SHAPE = "plain"  # --shape: "storagecluster" names a StorageCluster (absent), as nearly every user's PxSecurity does


def pxsecurity(namespace: str) -> dict[str, Any]:
    """The workload: shared secret (HS256), ECDSA P-256 key pair, one token signed with the shared secret;
    with --shape storagecluster also `storageCluster: {name: px-cluster}` (that StorageCluster does not exist)."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PxSecurity",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            **({"storageCluster": {"name": "px-cluster"}} if SHAPE == "storagecluster" else {}),
            "selfSigned": {
                "issuer": "bench.pxsec.dev",
                "sharedSecret": {},
                "ecdsa": {"secretName": "px-jwt-ecdsa", "curve": "P-256"},
            },
            "tokens": [{"secretName": "px-bench-token", "roles": ["system.admin"], "groups": ["*"],
                        "signingKey": "SharedSecret"}],
        },
    }


def is_ready(obj: dict[str, Any]) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True" and cond.get("observedGeneration") == generation)
    return False


# -- the API, as admin ---------------------------------------------------------------------------------


class Api:
    """A small thread-safe REST client (urllib3) with the admin kubeconfig's credentials: cheaper on the
    shared cores than kubectl processes, and it can stream a watch."""

    def __init__(self, kubeconfig: Path, workdir: Path, maxsize: int) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
        self.server = str(cluster["server"]).rstrip("/")
        self.headers = {"Accept": "application/json"}
        ca = workdir / "bench-ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        kw: dict[str, Any] = {"ca_certs": str(ca), "cert_reqs": "CERT_REQUIRED", "maxsize": maxsize, "block": True}
        if "client-certificate-data" in user:
            cert, key = workdir / "bench-admin.crt", workdir / "bench-admin.key"
            for path, data in ((cert, user["client-certificate-data"]), (key, user["client-key-data"])):
                path.touch(mode=0o600)
                path.write_bytes(base64.b64decode(data))
            kw.update(cert_file=str(cert), key_file=str(key))
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.pool = urllib3.PoolManager(**kw)
        self.streams: list[urllib3.BaseHTTPResponse] = []  # open watches, for close_streams()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             content_type: str = "application/json", ok: Sequence[int] = (200, 201)) -> dict[str, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        r = self.pool.request(method, self.server + path, body=data, headers=headers, retries=False,
                              timeout=urllib3.Timeout(connect=10, read=120))
        if r.status not in ok:
            raise BenchError(f"{method} {path}: HTTP {r.status} {r.data[:300]!r}")
        loaded: dict[str, Any] = json.loads(r.data) if r.data else {}
        return loaded

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        """The events of a watch, one JSON object per line, each as soon as its line arrives."""
        r = self.pool.request("GET", self.server + path, headers=self.headers, preload_content=False,
                              retries=False, timeout=urllib3.Timeout(connect=10, read=None))
        self.streams.append(r)
        try:
            if r.status != 200:
                raise BenchError(f"watch {path}: HTTP {r.status} {r.read()[:300]!r}")
            buf = b""
            while True:
                chunk = r.read1(1 << 16)
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            self.streams.remove(r)
            r.release_conn()

    def close_streams(self) -> None:
        """End every open watch (a read blocked in another thread returns at once)."""
        for r in list(self.streams):
            with contextlib.suppress(Exception):
                r.shutdown()


class ReadyWatch:
    """When each PxSecurity (namespace/name) was first seen Ready at its current generation: a watch of
    all namespaces in a thread, timestamps in time.monotonic() as each event's line arrives. `path` is the
    collection watched: another kind whose Ready condition carries observedGeneration (cert-manager's
    Certificates, tests/bench/cert_manager.py) is timed by the same code, so both sides share one clock."""

    def __init__(self, api: Api, path: str = PXSEC_ALL) -> None:
        self.api = api
        self.path = path
        self.ready: dict[str, float] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)
        self.rv = ""
        self.stopped = False  # set before the control plane goes away: the stream's end is no news then

    def start(self) -> ReadyWatch:
        self.rv = self._list()
        self.thread.start()
        return self

    def _see(self, obj: dict[str, Any], at: float) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if is_ready(obj):
            with self.cond:
                if key not in self.ready:
                    self.ready[key] = at
                    self.cond.notify_all()

    def _list(self) -> str:
        doc = self.api.call("GET", self.path)
        at = time.monotonic()
        for item in doc.get("items") or []:
            self._see(item, at)
        return str((doc.get("metadata") or {}).get("resourceVersion", ""))

    def _run(self) -> None:
        while not self.stopped:
            try:
                for event in self.api.stream(f"{self.path}?watch=1&allowWatchBookmarks=true"
                                             f"&resourceVersion={self.rv}&timeoutSeconds=3600"):
                    at = time.monotonic()
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: start over from a list
                        self.rv = self._list()
                        break
                    self.rv = str((obj.get("metadata") or {}).get("resourceVersion", self.rv))
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._see(obj, at)
            except Exception as exc:  # the bench goes on; a wait that times out reports what is missing
                if self.stopped:
                    return
                log(f"watch of {self.path} interrupted ({exc}); watching again")
                time.sleep(0.5)
                with contextlib.suppress(Exception):
                    self.rv = self._list()

    def stop(self) -> None:
        self.stopped = True
        self.api.close_streams()
        self.thread.join(timeout=5)

    def wait(self, keys: Sequence[str], timeout: float) -> dict[str, float]:
        """The Ready times of `keys` once all are Ready, or of those that are when `timeout` runs out."""
        with self.cond:
            self.cond.wait_for(lambda: all(k in self.ready for k in keys), timeout)
            return {k: self.ready[k] for k in keys if k in self.ready}


# -- processes: CPU and memory from /proc ----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on: field n is [n - 3]


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """user+sys of `root` and every live descendant, plus the children `root` has reaped."""
    ticks = 0
    for pid in _tree(root):
        with contextlib.suppress(OSError, IndexError):
            f = _stat_fields(pid)
            ticks += int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if pid == root else 0)
    return ticks / CLK_TCK


def status_mb(pid: int, key: str) -> float:
    """VmRSS / VmHWM of /proc/<pid>/status in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux >= 4.0); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def machine_busy() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK


def core_pids(cluster: Cluster) -> list[int]:
    """The pids of kube-apiserver and etcd: what every request of a controller costs the control plane
    (kube-controller-manager, the rest of controlPlane, works for the namespaces and the garbage collector)."""
    if cluster.control_plane is None:
        return []
    return [p.popen.pid for p in cluster.control_plane.procs
            if p.name in ("etcd", "kube-apiserver") and p.popen.poll() is None]


@dataclass
class Meter:
    """CPU of the operator, the control plane (and of its apiserver + etcd apart, when `core_pids` are
    given) and the bench itself, and of the whole machine, over a span."""

    operator_pid: int
    control_plane_pids: list[int]
    core_pids: list[int] = field(default_factory=list)
    start: dict[str, float] = field(default_factory=dict)

    def sample(self) -> dict[str, float]:
        busy, _ = machine_busy()
        bench = os.times()
        per_pid = {p: cpu_seconds(p) for p in {*self.control_plane_pids, *self.core_pids}}
        return {"operator": cpu_seconds(self.operator_pid),
                "controlPlane": sum(per_pid[p] for p in self.control_plane_pids),
                "apiserverEtcd": sum(per_pid[p] for p in self.core_pids),
                "bench": bench.user + bench.system, "machine": busy, "t": time.monotonic()}

    def begin(self) -> Meter:
        self.start = self.sample()
        return self

    def end(self) -> dict[str, float]:
        """CPU seconds of each since begin(), the wall seconds, and the machine's busy cores on average."""
        stop = self.sample()
        out = {k: round(stop[k] - self.start[k], 3) for k in ("operator", "controlPlane", "bench")}
        if self.core_pids:
            out["apiserverEtcd"] = round(stop["apiserverEtcd"] - self.start["apiserverEtcd"], 3)
        wall = stop["t"] - self.start["t"]
        out["wallSeconds"] = round(wall, 3)
        out["machineBusyCores"] = round((stop["machine"] - self.start["machine"]) / wall, 2) if wall > 0 else 0.0
        return out

    def wait_quiet(self, quiet: float = 2.0, threshold: float = 0.03, cap: float = 120.0) -> float:
        """Wait until the operator used under `threshold` CPU seconds in the last `quiet` seconds (at most
        `cap` seconds); the seconds waited."""
        started = time.monotonic()
        samples = [(started, cpu_seconds(self.operator_pid))]
        while time.monotonic() - started < cap:
            time.sleep(0.25)
            samples.append((time.monotonic(), cpu_seconds(self.operator_pid)))
            old = [s for s in samples if s[0] <= samples[-1][0] - quiet]
            if old and samples[-1][1] - old[-1][1] < threshold:
                break
        return round(time.monotonic() - started, 2)


# -- the bench -----------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def parallel(threads: int, fn: Callable[[int], object], count: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(fn, i) for i in range(count)]:
            future.result()


@dataclass
class GoProcess:
    """A Go controller's binary (trust-manager's, cert-manager's) as a subprocess in its own process group
    (dies with us), its log to a file."""

    name: str
    binary: Path
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> GoProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen([str(self.binary), *self.args], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env={**os.environ, **self.env}, preexec_fn=controlplane._die_with_parent)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.popen.returncode}):\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 15) -> int | None:
        return None if self.popen is None else controlplane.terminate_group(self.popen, timeout)


class Controller(Protocol):
    """The process under test: OperatorProcess here, cert-manager's controller in tests/bench/cert_manager.py."""

    @property
    def popen(self) -> subprocess.Popen[bytes] | None: ...


@dataclass
class Bench:
    """The phases. A subclass measures another controller with the same clock, windows and audit counting
    (tests/bench/cert_manager.py): it overrides `create` (what one object is) and `user` (whose requests count)."""

    args: argparse.Namespace
    cluster: Cluster
    api: Api
    watch: ReadyWatch
    operator: Controller
    meter: Meter
    result: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)
    user: ClassVar[str] = OPERATOR_USER  # the audit log's username of the controller under test

    @property
    def pid(self) -> int:
        assert self.operator.popen is not None
        return self.operator.popen.pid

    def create(self, namespace: str) -> float:
        """POST one PxSecurity; the monotonic time just before the request left."""
        at = time.monotonic()
        self.api.call("POST", f"/apis/{GROUP_VERSION}/namespaces/{namespace}/pxsecurities", pxsecurity(namespace))
        return at

    def create_and_wait(self, namespace: str, timeout: float = 120) -> float | None:
        at = self.create(namespace)
        got = self.watch.wait([f"{namespace}/{NAME}"], timeout)
        return got[f"{namespace}/{NAME}"] - at if got else None

    def single(self) -> None:
        log("warm-up object")
        first = self.create_and_wait("bench-warmup")
        self.meter.wait_quiet(quiet=1.0)
        latencies: list[float] = []
        started = now()
        load = loadavg()
        for i in range(self.args.single):
            latency = self.create_and_wait(f"bench-single-{i}")
            if latency is not None:
                latencies.append(latency)
            self.meter.wait_quiet(quiet=1.0)  # the next object starts on a quiet operator
        self.windows["single"] = (started, now())
        log(f"single: {len(latencies)}/{self.args.single} Ready")
        self.result["single"] = {
            "runs": self.args.single, "ready": len(latencies), "firstAfterStartMs": ms(first) if first else None,
            "medianMs": ms(statistics.median(latencies)) if latencies else None,
            "minMs": ms(min(latencies)) if latencies else None, "maxMs": ms(max(latencies)) if latencies else None,
            "latenciesMs": [ms(x) for x in latencies], "loadavgBefore": load, "loadavgAfter": loadavg(),
        }

    def burst(self) -> None:
        n = self.args.objects
        namespaces = [f"bench-burst-{i}" for i in range(n)]
        load = loadavg()
        peak_reset = reset_peak_rss(self.pid)
        rss_before = status_mb(self.pid, "VmRSS")
        log(f"burst: {n} objects at once")
        meter = Meter(self.pid, self.meter.control_plane_pids, self.meter.core_pids).begin()
        started_wall = now()
        starts: dict[str, float] = {}

        def one(i: int) -> None:
            starts[f"{namespaces[i]}/{NAME}"] = self.create(namespaces[i])

        parallel(self.args.threads, one, n)
        created = time.monotonic()
        ready = self.watch.wait(list(starts), self.args.timeout)
        to_ready = meter.end()
        first = min(starts.values())
        log(f"burst: {len(ready)}/{n} Ready; settling {self.args.settle:g} s")
        time.sleep(self.args.settle)  # what our own writes wake (a second pass) still belongs to the burst
        with_settle = meter.end()
        self.windows["burst"] = (started_wall, now())
        latencies = sorted(ready[k] - starts[k] for k in ready)
        all_ready = max(ready.values()) - first if len(ready) == n else None
        self.result["burst"] = {
            "objects": n, "ready": len(ready), "createThreads": self.args.threads,
            "createSeconds": round(created - first, 3),
            "allReadySeconds": round(all_ready, 3) if all_ready is not None else None,
            "objectsPerSecond": round(n / all_ready, 1) if all_ready else None,
            "p50Ms": ms(pct(latencies, 50)) if latencies else None,
            "p95Ms": ms(pct(latencies, 95)) if latencies else None,
            "maxMs": ms(latencies[-1]) if latencies else None,
            "cpuToAllReady": to_ready, "cpuWithSettle": with_settle, "settleSeconds": self.args.settle,
            "rssBeforeMB": round(rss_before, 1), "peakRssMB": round(status_mb(self.pid, "VmHWM"), 1),
            "peakRssResetBeforeBurst": peak_reset, "rssAfterMB": round(status_mb(self.pid, "VmRSS"), 1),
            "loadavgBefore": load, "loadavgAfter": loadavg(),
        }

    def idle(self) -> None:
        log(f"idle: {self.args.idle:g} s")
        load = loadavg()
        meter = Meter(self.pid, self.meter.control_plane_pids, self.meter.core_pids).begin()
        started = now()
        time.sleep(self.args.idle)
        self.windows["idle"] = (started, now())
        self.result["idle"] = {"seconds": self.args.idle, "cpu": meter.end(), "loadavgBefore": load,
                               "loadavgAfter": loadavg()}

    def noise(self) -> None:
        # Exactly --sitting PxSecurity objects during the noise: the earlier ones go first.
        log("noise: deleting the earlier objects, creating the sitting ones")
        earlier = ["bench-warmup", *(f"bench-single-{i}" for i in range(self.args.single)),
                   *(f"bench-burst-{i}" for i in range(self.args.objects))]
        parallel(self.args.threads, lambda i: self.api.call(
            "DELETE", f"/apis/{GROUP_VERSION}/namespaces/{earlier[i]}/pxsecurities/{NAME}"), len(earlier))
        sitting = [f"bench-sitting-{i}" for i in range(self.args.sitting)]
        starts: dict[str, float] = {}

        def create(i: int) -> None:
            starts[f"{sitting[i]}/{NAME}"] = self.create(sitting[i])

        parallel(self.args.threads, create, len(sitting))
        ready = self.watch.wait(list(starts), self.args.timeout)
        time.sleep(self.args.settle)
        self.meter.wait_quiet()

        n = self.args.noise
        spaces = noise_namespaces(n)
        payload = secrets.token_hex(32)  # not a secret of anyone's: the bench's filler

        def path(i: int) -> str:
            kind = "secrets" if i % 2 == 0 else "configmaps"
            return f"/api/v1/namespaces/{spaces[i % len(spaces)]}/{kind}"

        def make(i: int) -> None:
            kind = "Secret" if i % 2 == 0 else "ConfigMap"
            value = {"data": {"value": base64.b64encode(payload.encode()).decode()}} if kind == "Secret" \
                else {"data": {"value": payload}}
            self.api.call("POST", path(i), {"apiVersion": "v1", "kind": kind,
                                            "metadata": {"name": f"noise-{i}", "labels": {"bench": "noise"}},
                                            **value})

        def change(i: int) -> None:
            value = base64.b64encode(b"updated").decode() if i % 2 == 0 else "updated"
            self.api.call("PATCH", f"{path(i)}/noise-{i}", {"data": {"value": value}},
                          content_type="application/merge-patch+json")

        load = loadavg()
        rss_before = status_mb(self.pid, "VmRSS")
        peak_reset = reset_peak_rss(self.pid)
        log(f"noise: {n} Secrets and ConfigMaps created, then updated, in {len(spaces)} namespaces")
        meter = Meter(self.pid, self.meter.control_plane_pids, self.meter.core_pids).begin()
        started = now()
        parallel(self.args.noise_threads, make, n)
        made = meter.end()["wallSeconds"]
        parallel(self.args.noise_threads, change, n)
        written = meter.end()
        tail = self.meter.wait_quiet()
        cpu = meter.end()
        self.windows["noise"] = (started, now())
        self.result["noise"] = {
            "objects": n, "namespaces": len(spaces), "writes": 2 * n, "threads": self.args.noise_threads,
            "sitting": len(sitting), "sittingReady": len(ready), "createSeconds": made,
            "writeSeconds": written["wallSeconds"], "operatorCpuWhileWriting": written["operator"],
            "quietAfterSeconds": tail, "cpu": cpu,
            "rssBeforeMB": round(rss_before, 1), "rssAfterMB": round(status_mb(self.pid, "VmRSS"), 1),
            "peakRssMB": round(status_mb(self.pid, "VmHWM"), 1), "peakRssResetBeforeNoise": peak_reset,
            "loadavgBefore": load, "loadavgAfter": loadavg(),
        }

    def startup(self, operator: OperatorProcess) -> None:
        """The operator restarted among many Secrets: a cluster's ordinary start after an upgrade or eviction."""
        sitting = [f"bench-sitting-{i}" for i in range(self.args.sitting)]
        missing = [ns for ns in sitting if f"{ns}/{NAME}" not in self.watch.ready]
        if missing:
            log(f"startup: creating {len(missing)} sitting objects")
            parallel(self.args.threads, lambda i: self.create(missing[i]), len(missing))
            self.watch.wait([f"{ns}/{NAME}" for ns in sitting], self.args.timeout)
        n, spaces = self.args.startup_secrets, startup_namespaces(self.args)
        log(f"startup: {n} Secrets in {len(spaces)} namespaces")
        parallel(self.args.threads, lambda i: self.api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spaces[i]}}), len(spaces))
        filler = base64.b64encode(secrets.token_hex(32).encode()).decode()  # nobody's secret: the bench's filler
        parallel(self.args.threads, lambda i: self.api.call(
            "POST", f"/api/v1/namespaces/{spaces[i % len(spaces)]}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"filler-{i}"}, "data": {"value": filler}}),
            n)
        time.sleep(self.args.settle)
        self.meter.wait_quiet()
        operator.stop()
        port = controlplane.free_port()
        probe = f"http://127.0.0.1:{port}/healthz"
        operator.args = (*(a for a in operator.args if not a.startswith("--liveness")), f"--liveness={probe}")
        load = loadavg()
        log(f"startup: operator restarted (probe {probe})")
        started_wall, started = now(), time.monotonic()
        operator.start()
        assert operator.popen is not None
        meter = Meter(operator.popen.pid, self.meter.control_plane_pids, self.meter.core_pids).begin()
        meter.start["operator"] = 0.0  # a new process: all of its CPU counts, also what it used before begin()
        probe_ok = None
        http = urllib3.PoolManager()
        while probe_ok is None and time.monotonic() - started < self.args.startup_window:
            with contextlib.suppress(urllib3.exceptions.HTTPError):
                if http.request("GET", probe, retries=False, timeout=1.0).status == 200:
                    probe_ok = time.monotonic() - started
            time.sleep(0.02)
        time.sleep(max(0.0, self.args.startup_window - (time.monotonic() - started)))
        cpu = meter.end()
        self.windows["startup"] = (started_wall, now())
        self.result["startup"] = {
            "secrets": n, "namespaces": len(spaces), "sitting": len(sitting),
            "windowSeconds": self.args.startup_window, "probe": probe,
            "probeOkSeconds": round(probe_ok, 3) if probe_ok is not None else None,
            "cpu": cpu, "rssMB": round(status_mb(operator.popen.pid, "VmRSS"), 1),
            "peakRssMB": round(status_mb(operator.popen.pid, "VmHWM"), 1),
            "loadavgBefore": load, "loadavgAfter": loadavg(),
        }

    # -- the audit log, read once at the end ---------------------------------------------------------

    def audit(self, log_path: Path) -> None:
        everything = requests(log_path)
        ours = [r for r in everything if r.username == self.user]

        def within(rs: list[AuditWrite], window: str) -> list[AuditWrite]:
            since, until = self.windows[window]
            return [r for r in rs if since <= r.stage_timestamp < until]

        if "single" in self.windows:
            spaces = {f"bench-single-{i}" for i in range(self.args.single)}
            mine = [r for r in within(ours, "single") if r.namespace in spaces]
            self.result["single"]["requestsPerObject"] = per_object(mine, self.args.single)
        if "burst" in self.windows:
            spaces = {f"bench-burst-{i}" for i in range(self.args.objects)}
            window = within(ours, "burst")
            self.result["burst"]["requests"] = per_object([r for r in window if r.namespace in spaces],
                                                          self.args.objects)
            self.result["burst"]["requestsElsewhere"] = rows([r for r in window if r.namespace not in spaces])
        if "idle" in self.windows:
            window = within(ours, "idle")
            self.result["idle"]["operatorRequests"] = len(window)
            self.result["idle"]["operatorWrites"] = sum(1 for r in window if r.verb in WRITE_VERBS)
            self.result["idle"]["rows"] = rows(window)
        if "noise" in self.windows:
            spaces = {f"bench-sitting-{i}" for i in range(self.args.sitting)}
            window = within(everything, "noise")
            self.result["noise"]["writesToSittingNamespaces"] = sum(
                1 for r in window if r.namespace in spaces and r.verb in WRITE_VERBS)
            self.result["noise"]["operatorRequests"] = rows([r for r in window if r.username == self.user])
            self.result["noise"]["benchWrites"] = sum(
                1 for r in window if r.namespace.startswith("bench-noise-") and r.verb in WRITE_VERBS)
        if "startup" in self.windows:
            since, _ = self.windows["startup"]
            window = within(ours, "startup")
            firsts: dict[str, dt.datetime] = {}
            for r in window:  # the first request a reconcile made for each sitting object after the restart
                if r.resource == "pxsecurities" and r.namespace.startswith("bench-sitting-"):
                    firsts.setdefault(r.namespace, r.stage_timestamp)
            s = self.result["startup"]
            s["sittingReconciled"] = len(firsts)
            s["allSittingReconciledSeconds"] = (round((max(firsts.values()) - since).total_seconds(), 3)
                                                if len(firsts) == s["sitting"] and firsts else None)
            s["requests"] = len(window)
            s["writes"] = sum(1 for r in window if r.verb in WRITE_VERBS)
            s["secretListPages"] = sum(1 for r in window if r.verb == "list" and r.resource == "secrets")
            s["rows"] = rows(window)


def startup_namespaces(args: argparse.Namespace) -> list[str]:
    return [f"bench-start-{k}" for k in range(max(1, min(args.startup_namespaces, args.startup_secrets)))]


def noise_namespaces(n: int) -> list[str]:
    return [f"bench-noise-{k}" for k in range(max(1, -(-n // NOISE_PER_NAMESPACE)))]


def label(r: AuditWrite) -> str:
    return f"{r.resource}/{r.subresource}" if r.subresource else r.resource


def rows(rs: list[AuditWrite]) -> list[dict[str, Any]]:
    counts = Counter((r.verb, label(r), r.code) for r in rs)
    return [{"verb": v, "resource": res, "code": c, "count": k} for (v, res, c), k in sorted(counts.items())]


def per_object(rs: list[AuditWrite], objects: int) -> dict[str, Any]:
    """Requests per object: the total, reads and writes, and by (verb, resource) with the non-2xx codes."""
    by: dict[tuple[str, str], Counter[int]] = {}
    for r in rs:
        by.setdefault((r.verb, label(r)), Counter())[r.code] += 1
    reads = sum(1 for r in rs if r.verb not in WRITE_VERBS)
    return {
        "total": len(rs), "perObject": round(len(rs) / objects, 2) if objects else None,
        "readsPerObject": round(reads / objects, 2) if objects else None,
        "writesPerObject": round((len(rs) - reads) / objects, 2) if objects else None,
        "byVerbAndResource": [
            {"verb": verb, "resource": res, "count": sum(codes.values()),
             "perObject": round(sum(codes.values()) / objects, 2) if objects else None,
             "codes": {str(c): k for c, k in sorted(codes.items())}}
            for (verb, res), codes in sorted(by.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        ],
    }


# -- output --------------------------------------------------------------------------------------------


def fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}" if isinstance(value, float | int) else f"{value}{unit}"


def markdown(blob: dict[str, Any]) -> str:
    r = blob["results"]
    version = blob["operator"]
    what = (f"operator {version['pxsecFile']} (HEAD {version['head']}, sources sha256 {version['sourceSha256']}"
            f"{', modified files: ' + str(len(version['dirtyFiles'])) if version['dirtyFiles'] else ''})"
            if "pxsecFile" in version else str(version.get("tool")))
    out = [f"## {blob['label']}", "",
           f"{what}; "
           f"{blob['cpus']} CPUs; load average {blob['loadavgStart']} at start, {blob['loadavgEnd']} at end; "
           f"wall time {blob['wallSeconds']:.0f} s", "",
           "| measure | value | load avg before → after |", "|---|---|---|"]
    if "single" in r:
        s = r["single"]
        req = s.get("requestsPerObject") or {}
        out += [f"| one object, create → Ready: median (min - max) of {s['ready']}/{s['runs']} | "
                f"{fmt(s['medianMs'], ' ms')} ({fmt(s['minMs'])} - {fmt(s['maxMs'], ' ms')}) | "
                f"{s['loadavgBefore']} → {s['loadavgAfter']} |",
                f"| first object after the operator started (not in the median) | {fmt(s['firstAfterStartMs'], ' ms')}"
                " | |",
                f"| API requests per object, one at a time | {fmt(req.get('perObject'))} "
                f"({fmt(req.get('readsPerObject'))} reads, {fmt(req.get('writesPerObject'))} writes) | |"]
    if "burst" in r:
        b = r["burst"]
        req = b.get("requests") or {}
        cpu, cpu2 = b["cpuToAllReady"], b["cpuWithSettle"]
        out += [f"| {b['objects']} objects at once: all Ready ({b['ready']}/{b['objects']}) | "
                f"{fmt(b['allReadySeconds'], ' s')} (creates sent in {b['createSeconds']:g} s) | "
                f"{b['loadavgBefore']} → {b['loadavgAfter']} |",
                f"| per-object create → Ready p50 / p95 / max | {fmt(b['p50Ms'], ' ms')} / {fmt(b['p95Ms'], ' ms')}"
                f" / {fmt(b['maxMs'], ' ms')} | |",
                f"| objects per second | {fmt(b['objectsPerSecond'])} | |",
                f"| API requests per object (burst + {b['settleSeconds']:g} s settle) | {fmt(req.get('perObject'))} "
                f"({fmt(req.get('readsPerObject'))} reads, {fmt(req.get('writesPerObject'))} writes) | |",
                f"| operator CPU to all Ready / incl. settle | {cpu['operator']:g} s / {cpu2['operator']:g} s | |",
                f"| control plane CPU / bench CPU to all Ready | {cpu['controlPlane']:g} s"
                f"{' (apiserver + etcd ' + format(cpu['apiserverEtcd'], 'g') + ' s)' if 'apiserverEtcd' in cpu else ''}"
                f" / {cpu['bench']:g} s "
                f"(machine busy {cpu['machineBusyCores']:g} cores) | |",
                f"| operator peak RSS (VmHWM{'' if b['peakRssResetBeforeBurst'] else ', since start'}) | "
                f"{b['peakRssMB']:g} MB (RSS {b['rssBeforeMB']:g} MB before, {b['rssAfterMB']:g} MB after) | |"]
    if "idle" in r:
        i = r["idle"]
        out.append(f"| idle {i['seconds']:g} s after: operator requests / writes / CPU | "
                   f"{fmt(i.get('operatorRequests'))} / {fmt(i.get('operatorWrites'))} / {i['cpu']['operator']:g} s | "
                   f"{i['loadavgBefore']} → {i['loadavgAfter']} |")
    if "noise" in r:
        z = r["noise"]
        ops = sum(row["count"] for row in z.get("operatorRequests") or [])
        out += [f"| noise: {z['objects']} Secrets+ConfigMaps created and updated ({z['writes']} writes in "
                f"{z['writeSeconds']:g} s, {z['namespaces']} namespaces) beside {z['sittingReady']}/{z['sitting']} "
                f"Ready objects: operator CPU | {z['cpu']['operator']:g} s ({z['operatorCpuWhileWriting']:g} s while "
                f"writing; quiet {z['quietAfterSeconds']:g} s after) | {z['loadavgBefore']} → {z['loadavgAfter']} |",
                f"| noise: operator RSS before → after (peak) | {z['rssBeforeMB']:g} → {z['rssAfterMB']:g} MB "
                f"({z['peakRssMB']:g}{'' if z['peakRssResetBeforeNoise'] else ' since start'}) | |",
                f"| noise: writes to the sitting objects' namespaces / operator requests | "
                f"{fmt(z.get('writesToSittingNamespaces'))} / {ops} | |"]
    if "startup" in r:
        u = r["startup"]
        out += [f"| start-up among {u['secrets']} Secrets in {u['namespaces']} namespaces, {u['sitting']} Ready "
                f"objects: probe OK / all reconciled again | {fmt(u['probeOkSeconds'], ' s')} / "
                f"{fmt(u.get('allSittingReconciledSeconds'), ' s')} ({fmt(u.get('sittingReconciled'))} seen) | "
                f"{u['loadavgBefore']} → {u['loadavgAfter']} |",
                f"| start-up, first {u['windowSeconds']:g} s: requests / Secret list pages / writes | "
                f"{fmt(u.get('requests'))} / {fmt(u.get('secretListPages'))} / {fmt(u.get('writes'))} | |",
                f"| start-up, first {u['windowSeconds']:g} s: operator CPU / RSS (peak) | {u['cpu']['operator']:g} s / "
                f"{u['rssMB']:g} MB ({u['peakRssMB']:g} MB) | |"]
    if "burst" in r and r["burst"].get("requests"):
        out += ["", f"API requests per object in the burst, by verb and resource ({blob.get('user', OPERATOR_USER)}):",
                "",
                "| verb | resource | per object | total | response codes |", "|---|---|---:|---:|---|"]
        for row in r["burst"]["requests"]["byVerbAndResource"]:
            codes = ", ".join(f"{c}: {k}" for c, k in row["codes"].items())
            out.append(f"| {row['verb']} | {row['resource']} | {row['perObject']:g} | {row['count']} | {codes} |")
        elsewhere = r["burst"].get("requestsElsewhere") or []
        if elsewhere:
            out.append("\noutside the burst's namespaces in the same window: "
                       + ", ".join(f"{x['verb']} {x['resource']} {x['code']} x{x['count']}" for x in elsewhere))
    return "\n".join(out) + "\n"


# -- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_e2e", description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(doc.splitlines()[5:]))
    parser.add_argument("--objects", type=int, default=200, help="objects created at once in the burst")
    parser.add_argument("--single", type=int, default=10, help="objects created one at a time")
    parser.add_argument("--noise", type=int, default=5000, help="unrelated Secrets + ConfigMaps in the noise test")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    parser.add_argument("--sitting", type=int, default=20, help="PxSecurity objects Ready during the noise")
    parser.add_argument("--threads", type=int, default=16, help="parallel creates in the burst")
    parser.add_argument("--noise-threads", type=int, default=8, help="parallel writers in the noise test")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after all Ready that still count as the burst (echoes of its writes)")
    parser.add_argument("--timeout", type=float, default=300.0, help="at most this long for a phase's Ready")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    parser.add_argument("--operator-root", type=Path, default=None,
                        help="checkout of the operator version to run (its crds/, manifests/rbac, operator/); "
                             "default: this one")
    parser.add_argument("--operator-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument of `pxsec operator` (repeatable), e.g. --operator-arg=--verbose")
    parser.add_argument("--label", default="", help="a name for this run in the output")
    parser.add_argument("--shape", choices=SHAPES, default="plain",
                        help="the workload: plain, or storagecluster (each PxSecurity names an absent StorageCluster)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and a copy of the audit log go here")
    parser.add_argument("--startup-secrets", type=int, default=0,
                        help="unrelated Secrets in place when the operator restarts (0: no start-up phase)")
    parser.add_argument("--startup-namespaces", type=int, default=2000,
                        help="the namespaces those Secrets are spread over")
    parser.add_argument("--startup-window", type=float, default=60.0,
                        help="seconds after the restart whose requests, CPU and RSS are reported")
    args = parser.parse_args(argv)
    global SHAPE
    SHAPE = args.shape

    wall_start = time.monotonic()
    root = (args.operator_root or project_root()).resolve()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pxsec-bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    version = operator_version(root)
    if version is None:
        return 2
    log(f"operator under test: {version['pxsecFile']} (HEAD {version['head']}); work directory: {workdir}")
    load_start = loadavg()

    stop_cleanly_on_sigterm()

    found = assets.ensure(build=False)
    cluster = Cluster.local(found)
    operator: OperatorProcess | None = None
    bench: Bench | None = None
    try:
        assert cluster.audit_log is not None and cluster.control_plane is not None
        cluster.install_crds(root)
        cluster.install_rbac(root)
        api = Api(cluster.kubeconfig, workdir, maxsize=max(args.threads, args.noise_threads) + 2)
        spaces = ["bench-warmup", *(f"bench-single-{i}" for i in range(args.single)),
                  *(f"bench-burst-{i}" for i in range(args.objects)),
                  *(f"bench-sitting-{i}" for i in range(args.sitting)), *noise_namespaces(args.noise)]
        log(f"{len(spaces)} namespaces")
        parallel(args.threads, lambda i: api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spaces[i]}}), len(spaces))
        operator = OperatorProcess(kubeconfig=cluster.service_account_kubeconfig(), log=workdir / "operator.log",
                                   extra_env={"PYTHONPATH": str(root / "operator")},
                                   args=tuple(args.operator_arg)).start()
        operator.wait_for_log("px-security-operator started", timeout=120)
        assert operator.popen is not None
        meter = Meter(operator.popen.pid, cluster.control_plane.pids, core_pids(cluster))
        meter.wait_quiet()
        watch = ReadyWatch(api).start()
        bench = Bench(args, cluster, api, watch, operator, meter)
        if args.single > 0:
            bench.single()
        if args.objects > 0:
            bench.burst()
            if args.idle > 0:
                bench.idle()
        if args.noise > 0:
            bench.noise()
        if args.startup_secrets > 0:
            assert isinstance(operator, OperatorProcess)
            bench.startup(operator)
        bench.audit(cluster.audit_log)
    finally:
        finish(bench, "operator", operator, cluster, workdir)
    assert bench is not None
    report({"label": args.label or str(root), "operator": version, "operatorArgs": args.operator_arg}, bench, args,
           load_start, wall_start, workdir)
    return 0


class Stoppable(Protocol):
    def stop(self, timeout: float = 15) -> int | None: ...


def finish(bench: Bench | None, what: str, process: Stoppable | None, cluster: Cluster, workdir: Path) -> None:
    """The end of every run, whatever happened: the bench's watch, the controller, a copy of the audit log,
    the control plane, and the gone cluster's admin credentials."""
    if bench is not None:
        bench.watch.stop()
    if process is not None:
        log(f"{what} stopped ({process.stop()})")
    if cluster.audit_log is not None and cluster.audit_log.exists():
        (workdir / "audit.log").write_bytes(cluster.audit_log.read_bytes())
    cluster.stop()
    for name in ("bench-admin.key", "bench-admin.crt"):
        (workdir / name).unlink(missing_ok=True)
    log("control plane stopped")


def report(head: dict[str, Any], bench: Bench, args: argparse.Namespace, load_start: str, wall_start: float,
           workdir: Path) -> None:
    """The markdown table on stdout and (--json) the numbers, with what was run and the machine's load."""
    blob = {**head, "cpus": os.cpu_count(), "loadavgStart": load_start, "loadavgEnd": loadavg(),
            "wallSeconds": round(time.monotonic() - wall_start, 1), "workdir": str(workdir),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": bench.result}
    print(markdown(blob))
    if args.json is not None:
        args.json.write_text(json.dumps(blob, indent=1) + "\n")
        log(f"JSON: {args.json}")


if __name__ == "__main__":
    sys.exit(main())
