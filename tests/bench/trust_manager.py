"""The same job done by trust-manager (github.com/cert-manager/trust-manager v0.25.0), measured: ONE
ConfigMap, from a Bundle with a single inline source (a PEM CA certificate), into every namespace a label
selector picks, on our local control plane. The tenant benchmark compares the operator with it.

    .venv/bin/python -m tests.bench.trust_manager [--namespaces 50] [--json out.json] [--workdir DIR]

`measure_trust_manager(cluster, workdir, namespaces, label)` does it on a running local control plane whose
`namespaces` exist, labelled label[0]=label[1]: it builds (once per machine, tests/tools/build.py
TRUST_MANAGER) and runs the real trust-manager as a local process under a ServiceAccount with exactly the
RBAC its Helm chart grants (tests/bench/trust-manager/rbac.yaml) and the chart's Bundle CRD
(tests/bench/trust-manager/crd-bundles.yaml), creates the Bundle, and polls (one metadata-only list of the
ConfigMaps of that name across all namespaces, every POLL seconds) until every namespace has it. It returns
the seconds from the Bundle's create to all in place, trust-manager's API requests (kube-apiserver's audit
log, its ServiceAccount's username), its CPU seconds (/proc/<pid>/stat utime+stime) and peak RSS (VmHWM).

trust-manager runs with its defaults except what a process beside the control plane needs (the flags are in
`trust_manager_args`): client-go's rate limit stays at QPS 5 / burst 10 (it sets none), leader election off
(one replica; the chart's default is on, which only adds Lease traffic), the webhook server on a loopback
port with a throwaway self-signed certificate (it refuses to start without one; no webhook configuration
points at it), metrics and readiness on free ports (trust-manager binds them on 0.0.0.0, no flag changes
that), --trust-namespace=cert-manager (the chart's default), log level 1 (the chart's default).

Reads in the audit log: the local control plane's policy logs get and list of the operator's user only
(pxsec.devcluster.controlplane.AUDIT_POLICY); `main` starts its control plane inside
`audit_reads_of(TRUST_MANAGER_USER)`, which adds trust-manager's username to that rule, so its gets and
lists are counted. A caller whose control plane was started without it gets writes only
("readsAudited": false). Watches are never in the log (for neither tool).

Names only: no Secret value (nor the ServiceAccount's token in its kubeconfig) is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ipaddress
import json
import os
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import urllib3
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pxsec.devcluster import assets, controlplane
from pxsec.devcluster.cluster import Cluster
from pxsec.devcluster.controlplane import free_port
from tests.bench.bench_e2e import (
    Api,
    BenchError,
    GoProcess,
    Meter,
    cpu_seconds,
    finish,
    loadavg,
    log,
    parallel,
    status_mb,
)
from tests.bench.measure_coexistence import stop_cleanly_on_sigterm
from tests.support.audit import WRITE_VERBS, AuditWrite, now, requests
from tests.tools.build import TRUST_MANAGER, ensure

VERSION = "v0.25.0"  # what tests/tools/trust-manager/go.mod pins (checked in measure_trust_manager)
MODULE = "github.com/cert-manager/trust-manager"
MANIFESTS = Path(__file__).resolve().parent / "trust-manager"  # the Bundle CRD and the chart's RBAC
TRUST_NAMESPACE = "cert-manager"  # the chart's app.trust.namespace, also the release namespace here
SERVICE_ACCOUNT = "trust-manager"
TRUST_MANAGER_USER = f"system:serviceaccount:{TRUST_NAMESPACE}:{SERVICE_ACCOUNT}"
BUNDLE_CRD = "bundles.trust.cert-manager.io"
BUNDLES = "/apis/trust.cert-manager.io/v1alpha1/bundles"
BUNDLE = "pxsec-bench-trust"  # the Bundle's name is the target ConfigMap's name in every namespace
KEY = "ca.crt"
POLL = 0.25  # seconds between two lists of the ConfigMaps: the resolution of "seconds"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"  # no data, ~1/4 the bytes


# -- the audit policy: trust-manager's reads too -----------------------------------------------------------


@contextlib.contextmanager
def audit_reads_of(*users: str) -> Iterator[None]:
    """While a local control plane starts inside this block, its audit policy also logs the get and list
    requests of `users` (as it logs the operator's): pxsec.devcluster.controlplane writes AUDIT_POLICY into
    kube-apiserver's policy file at start, and has no parameter for this, so the module constant is swapped
    for the block and put back after."""
    original = controlplane.AUDIT_POLICY
    rule = ("  - level: Metadata\n"
            f"    users: [{', '.join(json.dumps(u) for u in users)}]\n"
            "    verbs: [get, list]\n")
    catch_all = "  - level: None\n"
    if not original.endswith(catch_all):
        raise BenchError("pxsec.devcluster.controlplane.AUDIT_POLICY no longer ends with its `level: None` rule")
    controlplane.AUDIT_POLICY = original.removesuffix(catch_all) + rule + catch_all
    try:
        yield
    finally:
        controlplane.AUDIT_POLICY = original


def reads_audited(cluster: Cluster, user: str) -> bool:
    """Whether the running control plane's audit policy logs `user`'s list requests (its policy file)."""
    if cluster.control_plane is None or cluster.control_plane.workdir is None:
        return False
    policy = cluster.control_plane.workdir / "audit-policy.yaml"
    if not policy.is_file():
        return False
    for rule in (yaml.safe_load(policy.read_text()) or {}).get("rules") or []:
        if "list" in (rule.get("verbs") or ["list"]) and user in (rule.get("users") or [user]) \
                and not rule.get("userGroups") and not rule.get("resources") and not rule.get("namespaces"):
            return bool(rule.get("level") != "None")  # the first matching rule decides
    return False


# -- what trust-manager needs: a CA to distribute, a webhook certificate, its flags -----------------------


def ca_certificate_pem(common_name: str = "pxsec bench trust-manager CA") -> str:
    """A fresh self-signed CA certificate (ECDSA P-256) in PEM: the Bundle's inline source. Its key is
    thrown away; the certificate is public."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def webhook_certificate(directory: Path) -> Path:
    """tls.crt and tls.key for trust-manager's webhook server (controller-runtime will not start it, nor the
    manager, without them): self-signed for 127.0.0.1. Nothing calls the webhook; the key is 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trust-manager webhook (pxsec bench)")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_path = directory / "tls.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory


def trust_manager_args(kubeconfig: Path, webhook_dir: Path) -> list[str]:
    """Its flags: defaults but for where a local process has to differ (module docstring). Nothing touches
    the client rate limit (client-go's QPS 5, burst 10)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--trust-namespace={TRUST_NAMESPACE}",
        "--leader-elect=false",
        "--webhook-host=127.0.0.1", f"--webhook-port={free_port()}", f"--webhook-certificate-dir={webhook_dir}",
        f"--metrics-port={free_port()}",
        f"--readiness-probe-port={free_port()}",
    ]


def bundle(name: str, pem: str, label: tuple[str, str]) -> dict[str, Any]:
    """The Bundle: one inline source, target ConfigMap key ca.crt in every namespace the label picks."""
    return {
        "apiVersion": "trust.cert-manager.io/v1alpha1",
        "kind": "Bundle",
        "metadata": {"name": name},
        "spec": {
            "sources": [{"inLine": pem}],
            "target": {"configMap": {"key": KEY}, "namespaceSelector": {"matchLabels": {label[0]: label[1]}}},
        },
    }


# -- the API, as admin ---------------------------------------------------------------------------------


def target_namespaces(api: Api, name: str) -> set[str]:
    """The namespaces holding a ConfigMap `name`: one list across all namespaces, names only (a field
    selector on metadata.name, metadata-only response), so a poll costs the API server little."""
    query = urllib.parse.urlencode({"fieldSelector": f"metadata.name={name}"})
    r = api.pool.request("GET", f"{api.server}/api/v1/configmaps?{query}",
                         headers={**api.headers, "Accept": METADATA_LIST}, retries=False,
                         timeout=urllib3.Timeout(connect=10, read=120))
    if r.status != 200:
        raise BenchError(f"list configmaps: HTTP {r.status} {r.data[:300]!r}")
    return {str(item["metadata"]["namespace"]) for item in json.loads(r.data).get("items") or []}


def wrong_content(api: Api, name: str, namespaces: Sequence[str], pem: str) -> list[str]:
    """The namespaces whose ConfigMap `name` does not carry exactly our certificate under KEY (one full list;
    the data is a public CA certificate)."""
    want = x509.load_pem_x509_certificate(pem.encode())
    query = urllib.parse.urlencode({"fieldSelector": f"metadata.name={name}"})
    found = {str(item["metadata"]["namespace"]): (item.get("data") or {}).get(KEY, "")
             for item in api.call("GET", f"/api/v1/configmaps?{query}").get("items") or []}
    bad = []
    for namespace in namespaces:
        try:
            certs = x509.load_pem_x509_certificates(str(found.get(namespace, "")).encode())
        except ValueError:
            certs = []
        if certs != [want]:
            bad.append(namespace)
    return bad


def go_mod_version(module: str) -> str:
    """The version tests/tools/trust-manager/go.mod pins for `module`."""
    return TRUST_MANAGER.required(module)


# -- trust-manager as a process ------------------------------------------------------------------------


class TrustManagerProcess(GoProcess):
    """The trust-manager binary as a subprocess in its own process group (dies with us), log to a file."""

    def __init__(self, binary: Path, args: list[str], log_path: Path) -> None:
        super().__init__("trust-manager", binary, args, log_path)

    def wait_started(self, timeout: float = 120) -> None:
        """Until the Bundle controller's workers run: its caches (Bundles, Namespaces, the trust namespace's
        ConfigMaps and Secrets, the target ConfigMaps' metadata) have synced, so the clock that starts with
        the Bundle's create measures the distribution, not trust-manager's start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("Starting workers" in line and "bundles" in line for line in self.output().splitlines()):
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise BenchError(f"trust-manager exited ({self.popen.returncode}):\n{self.output()[-3000:]}")
            time.sleep(0.2)
        raise BenchError(f"trust-manager's Bundle controller not started after {timeout:.0f}s:\n"
                         f"{self.output()[-3000:]}")


def wait_quiet(pid: int, quiet: float = 2.0, threshold: float = 0.03, cap: float = 60.0) -> float:
    """Wait until `pid` used under `threshold` CPU seconds in the last `quiet` seconds (at most `cap`
    seconds): its last status patch and the reconciles its own writes woke are then done. The seconds waited."""
    return Meter(pid, []).wait_quiet(quiet, threshold, cap)


def by_verb_and_resource(rs: list[AuditWrite]) -> list[dict[str, Any]]:
    """Counts per (verb, resource[/subresource], response code), largest first."""
    counts = Counter((r.verb, f"{r.resource}/{r.subresource}" if r.subresource else r.resource, r.code)
                     for r in rs)
    return [{"verb": v, "resource": res, "code": c, "count": k}
            for (v, res, c), k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# -- the measurement -------------------------------------------------------------------------------------


def install(cluster: Cluster) -> None:
    """The Bundle CRD, the trust namespace, trust-manager's ServiceAccount and RBAC (idempotent)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(MANIFESTS / "crd-bundles.yaml"))
    cluster.wait_established(BUNDLE_CRD)
    if cluster.kubectl("get", "namespace", TRUST_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", TRUST_NAMESPACE)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(MANIFESTS / "rbac.yaml"))


def remove_targets(api: Api, name: str, timeout: float = 180) -> dict[str, Any]:
    """Delete the Bundle (background propagation) and wait until the garbage collector has removed the
    ConfigMaps it owns; after `timeout`, delete what is left ourselves. So that nothing of this run is
    still being deleted while the caller measures something else next."""
    started = time.monotonic()
    api.call("DELETE", f"{BUNDLES}/{name}", {"propagationPolicy": "Background"}, ok=(200, 202, 404))
    left: set[str] = set()
    while time.monotonic() - started < timeout:
        left = target_namespaces(api, name)
        if not left:
            return {"seconds": round(time.monotonic() - started, 1), "deletedByBench": 0}
        time.sleep(1.0)
    remaining = sorted(left)
    parallel(8, lambda i: api.call("DELETE", f"/api/v1/namespaces/{remaining[i]}/configmaps/{name}",
                                   ok=(200, 202, 404)), len(remaining))
    return {"seconds": round(time.monotonic() - started, 1), "deletedByBench": len(remaining)}


def measure_trust_manager(cluster: Cluster, workdir: Path, namespaces: list[str],
                          label: tuple[str, str], timeout: float = 1800) -> dict[str, Any]:
    """trust-manager distributing one ConfigMap into `namespaces` (all existing, each labelled
    label[0]=label[1]) on the running local `cluster`; the numbers (module docstring). trust-manager is
    stopped, and the Bundle and its ConfigMaps are deleted, before this returns; the CRD, the trust namespace
    and the RBAC stay (a second call reuses them)."""
    pinned = go_mod_version(MODULE)
    if pinned != VERSION:
        raise BenchError(f"tests/tools/trust-manager/go.mod pins {MODULE} {pinned}, this bench describes {VERSION}")
    binary = ensure(TRUST_MANAGER, log=True)
    workdir.mkdir(parents=True, exist_ok=True)
    audited_reads = reads_audited(cluster, TRUST_MANAGER_USER)
    install(cluster)
    kubeconfig = cluster.service_account_kubeconfig(TRUST_NAMESPACE, SERVICE_ACCOUNT)  # token: TokenRequest
    args = trust_manager_args(kubeconfig, webhook_certificate(workdir / "trust-manager-webhook-tls"))
    api_dir = workdir / "trust-manager-api"  # Api keeps the admin credentials in files: our own, removed after
    api_dir.mkdir(exist_ok=True)
    api = Api(cluster.kubeconfig, api_dir, maxsize=10)
    pem = ca_certificate_pem()
    want = set(namespaces)
    process = TrustManagerProcess(binary, args, workdir / "trust-manager.log")
    result: dict[str, Any] = {"tool": f"trust-manager {VERSION}", "namespaces": len(namespaces)}
    created = False
    try:
        started_wall = now()
        started = time.monotonic()
        process.start()
        process.wait_started()
        startup_seconds = time.monotonic() - started
        before_cpu = cpu_seconds(process.pid)
        stray = target_namespaces(api, BUNDLE)
        if stray:
            raise BenchError(f"{len(stray)} namespaces already hold a ConfigMap {BUNDLE} before the Bundle exists")
        log(f"trust-manager started in {startup_seconds:.1f} s; Bundle {BUNDLE} -> {len(want)} namespaces")
        load = loadavg()
        bundle_wall = now()
        t0 = time.monotonic()
        api.call("POST", BUNDLES, bundle(BUNDLE, pem, label))
        created = True
        seen: set[str] = set()
        elsewhere: set[str] = set()
        last_report = t0
        while True:
            listed = target_namespaces(api, BUNDLE)
            seen, elsewhere = listed & want, listed - want
            at = time.monotonic()
            if seen == want:
                break
            if process.popen is not None and process.popen.poll() is not None:
                raise BenchError(f"trust-manager exited ({process.popen.returncode}) with {len(seen)}/{len(want)} "
                                 f"in place:\n{process.output()[-3000:]}")
            if at - t0 > timeout:
                raise BenchError(f"only {len(seen)}/{len(want)} ConfigMaps after {timeout:.0f} s")
            if at - last_report >= 30:
                log(f"  {len(seen)}/{len(want)} in place after {at - t0:.0f} s")
                last_report = at
            time.sleep(POLL)
        seconds = at - t0
        all_in_place_wall = now()
        cpu_at = cpu_seconds(process.pid)
        rss_at = status_mb(process.pid, "VmHWM")
        log(f"all {len(want)} in place after {seconds:.1f} s; waiting for trust-manager to go quiet")
        quiet = wait_quiet(process.pid)
        cpu_end = cpu_seconds(process.pid)
        end_wall = now()
        result.update({
            "seconds": round(seconds, 2),
            "namespacesPerSecond": round(len(want) / seconds, 1) if seconds > 0 else None,
            "startupSeconds": round(startup_seconds, 2),
            "cpu_seconds": round(cpu_at - before_cpu, 2),  # from the Bundle's create to all in place
            "cpuSecondsWithSettle": round(cpu_end - before_cpu, 2),
            "cpuSecondsStartup": round(before_cpu, 2),
            "cpuSecondsProcessTotal": round(cpu_end, 2),
            "peak_rss_mb": round(status_mb(process.pid, "VmHWM"), 1),  # since its start
            "peakRssMbAtAllInPlace": round(rss_at, 1),
            "rssMbAfter": round(status_mb(process.pid, "VmRSS"), 1),
            "settleSeconds": quiet,
            "loadavgBefore": load, "loadavgAfter": loadavg(),
            "wrongContent": len(wrong_content(api, BUNDLE, sorted(want), pem)),
            "outsideSelection": len(elsewhere | (target_namespaces(api, BUNDLE) - want)),
        })
    finally:
        code = process.stop()
        if code is not None:
            log(f"trust-manager stopped ({code})")
        if created:
            try:
                result["cleanup"] = remove_targets(api, BUNDLE)
            except Exception as exc:  # the measurement stands; say what was left behind
                log(f"cleanup of Bundle {BUNDLE} and its ConfigMaps failed: {exc}")
                result["cleanup"] = {"error": str(exc)[:300]}
        for name in ("bench-admin.key", "bench-admin.crt"):  # the cluster's admin credentials
            (api_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            for child in (workdir / "trust-manager-webhook-tls").iterdir():
                child.unlink()

    if cluster.audit_log is not None:
        ours = requests(cluster.audit_log, since=started_wall, until=end_wall, users={TRUST_MANAGER_USER})
        window = [r for r in ours if r.stage_timestamp >= bundle_wall]
        to_all = [r for r in window if r.stage_timestamp < all_in_place_wall]
        result.update({
            "requests": len(window),  # from the Bundle's create until quiet after all in place
            "writes": sum(1 for r in window if r.verb in WRITE_VERBS),
            "requestsToAllInPlace": len(to_all),
            "writesToAllInPlace": sum(1 for r in to_all if r.verb in WRITE_VERBS),
            "requestsStartup": len(ours) - len(window),
            "readsAudited": audited_reads,
            "requestsByVerbAndResource": by_verb_and_resource(window),
            "startupRequestsByVerbAndResource": by_verb_and_resource(
                [r for r in ours if r.stage_timestamp < bundle_wall]),
        })
    else:
        result.update({"requests": None, "writes": None, "readsAudited": False})
    result["flags"] = [a for a in args if not a.startswith("--kubeconfig=")]
    result["note"] = ("requests: trust-manager's audited requests from the Bundle's create until it is quiet after "
                      "all in place (watches are never audited; gets and lists only when readsAudited). Its "
                      "informers (client-go v0.37) start with a streaming watch (WatchListClient), not a list, "
                      "so its cache sync shows no request at all.")
    return result


# -- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Its own control plane (audit log with trust-manager's reads), --namespaces labelled namespaces, the
    measurement, the result as JSON on stdout."""
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.trust_manager", description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(doc.splitlines()[1:]))
    parser.add_argument("--namespaces", type=int, default=50, help="labelled namespaces the ConfigMap goes to")
    parser.add_argument("--unlabelled", type=int, default=0, help="extra namespaces without the label")
    parser.add_argument("--threads", type=int, default=16, help="parallel namespace creates")
    parser.add_argument("--timeout", type=float, default=1800.0, help="at most this long for all in place")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and a copy of the audit log go here")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pxsec-bench-trust-manager-"))
    workdir.mkdir(parents=True, exist_ok=True)
    label = ("pxsec.dev/bench-tenant", "true")
    log(f"work directory: {workdir}")
    stop_cleanly_on_sigterm()
    ensure(TRUST_MANAGER, log=True)  # minutes on a cold cache: before the control plane, not while it idles

    found = assets.ensure(build=False)
    with audit_reads_of(TRUST_MANAGER_USER):
        cluster = Cluster.local(found)
    try:
        assert cluster.control_plane is not None
        api = Api(cluster.kubeconfig, workdir, maxsize=args.threads + 2)
        labelled = [f"bench-tm-{i}" for i in range(args.namespaces)]
        others = [f"bench-tm-other-{i}" for i in range(args.unlabelled)]
        spaces = [*labelled, *others]
        log(f"{len(labelled)} labelled namespaces, {len(others)} others")
        parallel(args.threads, lambda i: api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": spaces[i], **({"labels": {label[0]: label[1]}} if i < len(labelled) else {})}}),
            len(spaces))
        for pid in cluster.control_plane.pids:  # the serviceaccount controller's default ServiceAccounts first
            wait_quiet(pid, threshold=0.1, cap=30)
        result = measure_trust_manager(cluster, workdir, labelled, label, timeout=args.timeout)
        result.update({"cpus": os.cpu_count(), "unlabelledNamespaces": len(others), "workdir": str(workdir)})
    finally:
        finish(None, "trust-manager", None, cluster, workdir)  # measure_trust_manager stops trust-manager itself
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
