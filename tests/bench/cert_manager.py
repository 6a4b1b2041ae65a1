"""cert-manager v1.21.1's controller doing the nearest job to the operator's, measured like tests/bench/bench_e2e.py
measures the operator, so that tests/bench/compare.py can put the two side by side (issue 23).

    .venv/bin/python -m tests.bench.cert_manager [--objects 200] [--single 10] [--threads 16] [--json out.json]
                                                  [--workdir DIR] [--controller-arg ARG ...]

Starts its own local control plane (pxsec.devcluster: etcd, kube-apiserver, kube-controller-manager) whose audit
log also records cert-manager's get and list requests (trust_manager.audit_reads_of), installs cert-manager's six
CRDs (tests/bench/cert-manager/crds.yaml) and the RBAC its Helm chart grants the controller
(tests/bench/cert-manager/rbac.yaml), and runs the real controller as a local process under its ServiceAccount:
built once per machine (tests/tools/build.py CERT_MANAGER) from upstream's cmd/controller folder, which the Go module
proxy does not serve and this repository does not copy: PXSEC_CERT_MANAGER_SRC names it in a v1.21.1 checkout
(`git clone --depth 1 --branch v1.21.1 https://github.com/cert-manager/cert-manager`), its dependencies come from
the proxy as tests/tools/cert-manager/go.mod pins them.

The workload, the analogue of bench_e2e's: every object lives in its own namespace, where a SelfSigned Issuer was
created (and seen Ready) before any clock starts; the object is a Certificate `px-cluster` with an ECDSA P-256
private key and a secretName. "Ready" is the Certificate's Ready=True at its current generation, as a watch of the
bench sees it (bench_e2e.ReadyWatch on certificates, the same code that times the operator). Phases, as bench_e2e's
(its Bench class, with another `create` and username):

  single  --single Certificates one after another: create -> Ready, median / min / max (one warm-up before them);
  burst   --objects created at once (--threads parallel creates): time to all Ready, per-object p50 / p95, the
          controller's API requests per object by verb and resource (audit log), its CPU seconds, control plane
          CPU (apiserver + etcd apart), peak RSS.

cert-manager runs with its defaults except what a local process needs, and the arguments its chart passes
(`controller_args`): client-go's rate limit stays at cert-manager's defaults --kube-api-qps=20 --kube-api-burst=50
(not passed), leader election off (one replica; the chart's default is on, which only adds Lease traffic), no
webhook (it is a separate binary; without it neither defaulting nor validation webhooks run: the bench's objects
are valid as written), metrics and the internal healthz server on free loopback ports, --v=2,
--cluster-resource-namespace=cert-manager, --leader-election-namespace=kube-system,
--max-concurrent-challenges=60 and --acme-http01-solver-image as the chart renders them. At 20 requests/s, and
some 23 requests per Certificate in a burst (a third of them Events, which share the limit), a burst of 200 waits
mostly on client-go's limiter ("client-side throttling" in its log): --controller-arg=--kube-api-qps=N (and
--kube-api-burst) measures the controller without it, as a tuned install would run; the flags are in the output.

Names only: no Secret value (nor the ServiceAccount's token in its kubeconfig) is ever read or printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster
from pxsec.devcluster.controlplane import free_port
from tests.bench.bench_e2e import (
    NAME,
    Api,
    Bench,
    BenchError,
    GoProcess,
    Meter,
    ReadyWatch,
    core_pids,
    finish,
    loadavg,
    log,
    parallel,
    report,
)
from tests.bench.measure_coexistence import stop_cleanly_on_sigterm
from tests.bench.trust_manager import audit_reads_of, reads_audited, wait_quiet
from tests.tools.build import CERT_MANAGER, ensure

VERSION = "v1.21.1"  # what tests/tools/cert-manager/go.mod pins (checked in main)
MODULE = "github.com/cert-manager/cert-manager"
MANIFESTS = Path(__file__).resolve().parent / "cert-manager"  # its CRDs and the chart's RBAC for the controller
NAMESPACE = "cert-manager"  # the chart's release namespace, also --cluster-resource-namespace
SERVICE_ACCOUNT = "cert-manager"
CERT_MANAGER_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
CERTIFICATES = "/apis/cert-manager.io/v1/certificates"
ISSUERS = "/apis/cert-manager.io/v1/issuers"
ISSUER = "selfsigned"
SECRET = "px-cluster-tls"
SOLVER_IMAGE = f"quay.io/jetstack/cert-manager-acmesolver:{VERSION}"  # the chart's; never pulled (no ACME here)


# -- the workload ----------------------------------------------------------------------------------------


def issuer(namespace: str) -> dict[str, Any]:
    """The namespace's SelfSigned Issuer: created, and Ready, before any measured phase."""
    return {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": ISSUER, "namespace": namespace}, "spec": {"selfSigned": {}}}


def certificate(namespace: str) -> dict[str, Any]:
    """One object: an ECDSA P-256 key and a certificate for it, signed by the namespace's SelfSigned Issuer,
    into Secret px-cluster-tls (the operator's ECDSA key pair is the nearest thing it makes)."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "secretName": SECRET,
            "commonName": f"{NAME}.{namespace}.bench.pxsec.dev",
            "dnsNames": [f"{NAME}.{namespace}.bench.pxsec.dev"],
            "privateKey": {"algorithm": "ECDSA", "size": 256},
            "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": ISSUER},
        },
    }


def issuer_ready(obj: dict[str, Any]) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def wait_issuers(api: Api, namespaces: list[str], timeout: float = 300) -> float:
    """Until every namespace's Issuer is Ready (one list of all Issuers a second); the seconds waited."""
    started = time.monotonic()
    want = set(namespaces)
    while True:
        ready = {str(item["metadata"]["namespace"]) for item in api.call("GET", ISSUERS).get("items") or []
                 if issuer_ready(item)} & want
        if ready == want:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout:
            raise BenchError(f"only {len(ready)}/{len(want)} Issuers Ready after {timeout:.0f} s")
        time.sleep(1.0)


# -- cert-manager as a process ---------------------------------------------------------------------------


def controller_args(kubeconfig: Path) -> list[str]:
    """Its flags: the chart's arguments, and where a local process has to differ (module docstring). Nothing
    touches the client rate limit (cert-manager's own defaults, QPS 20 / burst 50)."""
    return [
        "--v=2",
        f"--kubeconfig={kubeconfig}",
        f"--cluster-resource-namespace={NAMESPACE}",
        "--leader-election-namespace=kube-system",
        f"--acme-http01-solver-image={SOLVER_IMAGE}",
        "--max-concurrent-challenges=60",
        "--leader-elect=false",
        f"--metrics-listen-address=127.0.0.1:{free_port()}",
        f"--internal-healthz-listen-address=127.0.0.1:{free_port()}",
    ]


def install(cluster: Cluster) -> None:
    """The CRDs (server-side: the Challenge and Order CRDs are too large for a last-applied annotation), the
    release namespace, the controller's ServiceAccount and RBAC; then until the CRDs are served."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(MANIFESTS / "crds.yaml"))
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(MANIFESTS / "rbac.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(MANIFESTS / "crds.yaml"))


class CertManagerBench(Bench):
    """bench_e2e's phases with a Certificate as the object and cert-manager's ServiceAccount as the user."""

    user: ClassVar[str] = CERT_MANAGER_USER

    def create(self, namespace: str) -> float:
        """POST one Certificate; the monotonic time just before the request left."""
        at = time.monotonic()
        self.api.call("POST", f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates", certificate(namespace))
        return at


# -- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Its own control plane (audit log with cert-manager's reads), the namespaces and their Issuers, the
    phases, the table on stdout and the numbers as JSON (--json)."""
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cert_manager", description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(doc.splitlines()[2:]))
    parser.add_argument("--objects", type=int, default=200, help="Certificates created at once in the burst")
    parser.add_argument("--single", type=int, default=10, help="Certificates created one at a time")
    parser.add_argument("--threads", type=int, default=16, help="parallel creates in the burst")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after all Ready that still count as the burst (echoes of its writes)")
    parser.add_argument("--timeout", type=float, default=300.0, help="at most this long for a phase's Ready")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    parser.add_argument("--label", default="", help="a name for this run in the output")
    parser.add_argument("--controller-arg", action="append", default=[], metavar="ARG",
                        help="an extra flag of cert-manager's controller (repeatable), e.g. "
                             "--controller-arg=--kube-api-qps=1000; the default is none (its defaults)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and a copy of the audit log go here")
    args = parser.parse_args(argv)

    pinned = CERT_MANAGER.required(MODULE)
    if pinned != VERSION:
        raise BenchError(f"tests/tools/cert-manager/go.mod pins {MODULE} {pinned}, this bench describes {VERSION}")
    wall_start = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pxsec-bench-cert-manager-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"cert-manager {VERSION}; work directory: {workdir}")
    stop_cleanly_on_sigterm()
    binary = ensure(CERT_MANAGER, log=True)  # minutes on a cold cache: before the control plane, not while it idles
    load_start = loadavg()

    found = assets.ensure(build=False)
    with audit_reads_of(CERT_MANAGER_USER):
        cluster = Cluster.local(found)
    process: GoProcess | None = None
    bench: CertManagerBench | None = None
    flags: list[str] = []
    startup: dict[str, Any] = {}
    try:
        assert cluster.audit_log is not None and cluster.control_plane is not None
        install(cluster)
        api = Api(cluster.kubeconfig, workdir, maxsize=args.threads + 2)
        spaces = ["bench-warmup", *(f"bench-single-{i}" for i in range(args.single)),
                  *(f"bench-burst-{i}" for i in range(args.objects))]
        log(f"{len(spaces)} namespaces, each with a SelfSigned Issuer")
        parallel(args.threads, lambda i: api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spaces[i]}}), len(spaces))
        parallel(args.threads, lambda i: api.call("POST", f"/apis/cert-manager.io/v1/namespaces/{spaces[i]}/issuers",
                                                  issuer(spaces[i])), len(spaces))
        kubeconfig = cluster.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)  # token: TokenRequest
        cli = [*controller_args(kubeconfig), *args.controller_arg]  # a repeated flag: pflag keeps the last
        flags = [a for a in cli if not a.startswith("--kubeconfig=")]
        started = time.monotonic()
        process = GoProcess("cert-manager", binary, cli, workdir / "cert-manager.log",
                            env={"POD_NAMESPACE": NAMESPACE}).start()  # as the chart's Deployment sets it
        issuers_seconds = wait_issuers(api, spaces)
        process.check_alive()
        log(f"cert-manager running, {len(spaces)} Issuers Ready after {time.monotonic() - started:.1f} s")
        meter = Meter(process.pid, cluster.control_plane.pids, core_pids(cluster))
        meter.wait_quiet()
        for pid in cluster.control_plane.pids:
            wait_quiet(pid, threshold=0.1, cap=30)
        startup = {"issuersReadySeconds": issuers_seconds, "readsAudited": reads_audited(cluster, CERT_MANAGER_USER)}
        watch = ReadyWatch(api, CERTIFICATES).start()
        bench = CertManagerBench(args, cluster, api, watch, process, meter)
        if args.single > 0:
            bench.single()
            process.check_alive()
        if args.objects > 0:
            bench.burst()
            process.check_alive()
        bench.audit(cluster.audit_log)
    finally:
        finish(bench, "cert-manager", process, cluster, workdir)
    assert bench is not None
    extra = f"; extra flags {' '.join(args.controller_arg)}" if args.controller_arg else ""
    report({"label": args.label or f"cert-manager {VERSION}",
            "operator": {"tool": f"cert-manager {VERSION} controller ({MODULE}, tests/tools/cert-manager){extra}"},
            "user": CERT_MANAGER_USER, "flags": flags, "startup": startup},
           bench, args, load_start, wall_start, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
