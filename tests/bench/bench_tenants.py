"""Tenant tokens at the scale of a platform (issue 21), measured — never asserted.

    .venv/bin/python -m tests.bench.bench_tenants [--namespaces 2000] [--tenants 4] [--noise 20000]
                                                  [--no-trust-manager] [--json out.json]

On a fresh local control plane with an audit log: --namespaces tenant namespaces (spread over --tenants
tenants by a label), beside --noise unrelated Secrets in other namespaces; the operator runs as its
ServiceAccount under manifests/ RBAC. Then:

  mint      one PxSecurity with the tenants: time until every tenant reports all its namespaces ready
            (status.tenants, polled), the operator's requests by verb and resource from the audit log, its
            CPU seconds and peak RSS; every token judged by the Go checker (tests/interop: golang-jwt on
            OpenStorage's rules) with its tenant's sub and groups.
  restart   the operator restarted with everything in place: its requests until it is quiet (writes should
            be 0; reads only list and watch).
  short     the tenants' tokenLifetime made 10x shorter than selfSigned's: every token minted again (time,
            requests), and the renewals that follow, per minute, from the Secrets' renew-at annotations.
  trust     trust-manager v0.25.0 (tests/bench/trust_manager.py) distributing one ConfigMap to the same
            namespaces on the same control plane, with its defaults.

Prints a markdown table and (--json) the numbers. Names only: token values are read to be judged, never
printed.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys
from tests.bench.bench_e2e import Api, Meter, log, reset_peak_rss, status_mb
from tests.bench.measure_coexistence import stop_cleanly_on_sigterm
from tests.interop import checker
from tests.support.audit import now, requests

OPERATOR_USER = "system:serviceaccount:pxsec-system:px-security-operator"
HOME = "portworx"  # the PxSecurity's namespace
LABEL = "bench.pxsec.dev/tenant"
ALL_LABEL = ("bench.pxsec.dev/tenants", "yes")  # on every tenant namespace: trust-manager's selector
NOISE_PER_NAMESPACE = 1000
LIFETIME = "24h"


def pxsecurity(tenants: int, lifetime: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
            "spec": {"selfSigned": {"issuer": "bench.example", "tokenLifetime": LIFETIME, "sharedSecret": {},
                                    "ecdsa": {"secretName": "px-jwt-ecdsa"}},
                     "tenants": [{"name": f"team-{t}", "namespaceSelector": {"matchLabels": {LABEL: f"team-{t}"}},
                                  "groups": [f"team-{t}"], "signingKey": "ECDSA" if t % 2 else "SharedSecret",
                                  **({"tokenLifetime": lifetime} if lifetime else {})} for t in range(tenants)]}}


def parallel(threads: int, fn: Any, items: list[Any]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def tenants_done(api: Api, per_tenant: dict[str, int]) -> bool:
    obj = api.call("GET", f"/apis/pxsec.dev/v1alpha1/namespaces/{HOME}/pxsecurities/px")
    rows = {r["name"]: r for r in (obj.get("status") or {}).get("tenants") or []}
    return all(rows.get(t, {}).get("ready") == n and rows.get(t, {}).get("selected") == n
               for t, n in per_tenant.items()) and (obj.get("status") or {}).get("observedGeneration") == \
        obj["metadata"]["generation"]


def wait(fn: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if fn():
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s: {what}")


def by_kind(rs: list[Any]) -> dict[str, int]:
    return dict(sorted(Counter(f"{r.verb} {r.resource}" for r in rs).items()))


def tenant_secrets(api: Api) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        page = api.call("GET", "/api/v1/secrets?labelSelector=pxsec.dev%2Ftenant&limit=500"
                        + (f"&continue={token}" if token else ""))
        out += page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return out


def judge(api: Api, tenants: int) -> dict[str, Any]:
    spec = parse_spec(pxsecurity(tenants)["spec"])
    shared = api.call("GET", f"/api/v1/namespaces/{HOME}/secrets/px-shared-secret")["data"]["shared-secret"]
    ecdsa = api.call("GET", f"/api/v1/namespaces/{HOME}/secrets/px-jwt-ecdsa")["data"]["public.pem"]
    keys = VerifyKeys(shared_secret=base64.b64decode(shared), ecdsa_public_pem=base64.b64decode(ecdsa))
    cases, want = [], []
    for s in tenant_secrets(api):
        tenant = s["metadata"]["labels"]["pxsec.dev/tenant"]
        token = base64.b64decode(s["data"]["auth-token"]).decode()
        cases.append(checker.case_for(s["metadata"]["namespace"], token, spec, keys, dt.datetime.now(dt.UTC)))
        want.append((tenant, [tenant]))
    verdicts = checker.judge(checker.checker_or_fail(), cases)
    right = sum(1 for v, w in zip(verdicts, want, strict=True)
                if v["accepted"] and (v["username"], v["groups"]) == w)
    return {"tokens": len(cases), "acceptedWithRightSubAndGroups": right}


def renewals_per_minute(api: Api) -> dict[str, Any]:
    when: Counter[str] = Counter()
    for s in tenant_secrets(api):
        at = (s["metadata"].get("annotations") or {}).get("pxsec.dev/renew-at", "")
        when[at[:16]] += 1
    return {"minutes": len(when), "maxPerMinute": max(when.values()) if when else 0,
            "first": min(when) if when else None, "last": max(when) if when else None}


def operator_requests(cluster: Cluster, since: dt.datetime, until: dt.datetime | None = None) -> list[Any]:
    assert cluster.audit_log is not None
    return requests(cluster.audit_log, since=since, until=until, users={OPERATOR_USER})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_tenants")
    parser.add_argument("--namespaces", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--noise", type=int, default=20000, help="unrelated Secrets")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--no-trust-manager", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    root = project_root()
    workdir = Path(tempfile.mkdtemp(prefix="pxsec-bench-tenants-"))
    stop_cleanly_on_sigterm()
    cluster = Cluster.local(assets.ensure(build=False))
    operator: OperatorProcess | None = None
    result: dict[str, Any] = {"namespaces": args.namespaces, "tenants": args.tenants, "noiseSecrets": args.noise,
                              "cpus": os.cpu_count()}
    try:
        assert cluster.audit_log is not None and cluster.control_plane is not None
        cluster.install_crds(root)
        cluster.install_rbac(root)
        api = Api(cluster.kubeconfig, workdir, maxsize=args.threads + 2)
        names = [f"tn-{i}" for i in range(args.namespaces)]
        noise_spaces = [f"noise-{i}" for i in range((args.noise + NOISE_PER_NAMESPACE - 1) // NOISE_PER_NAMESPACE)]
        log(f"{len(names)} tenant namespaces, {len(noise_spaces)} noise namespaces, {args.noise} noise Secrets")
        parallel(args.threads, lambda n: api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}), [HOME, *noise_spaces])
        parallel(args.threads, lambda i: api.call("POST", f"/api/v1/namespaces/{noise_spaces[i % len(noise_spaces)]}"
                                                  "/secrets", {"apiVersion": "v1", "kind": "Secret",
                                                               "metadata": {"name": f"noise-{i}"},
                                                               "stringData": {"k": "v"}}),
                 list(range(args.noise)))
        parallel(args.threads, lambda i: api.call("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names[i], "labels": {
                LABEL: f"team-{i % args.tenants}", ALL_LABEL[0]: ALL_LABEL[1]}}}), list(range(len(names))))
        per_tenant = {f"team-{t}": len(range(t, args.namespaces, args.tenants)) for t in range(args.tenants)}
        operator = OperatorProcess(kubeconfig=cluster.service_account_kubeconfig(), log=workdir / "operator.log",
                                   extra_env={"PYTHONPATH": str(root / "operator")}).start()
        operator.wait_for_log("px-security-operator started", timeout=120)
        assert operator.popen is not None
        pid = operator.popen.pid
        meter = Meter(pid, cluster.control_plane.pids)
        meter.wait_quiet()

        log("mint: the PxSecurity with its tenants")
        reset_peak_rss(pid)
        rss_before = status_mb(pid, "VmRSS")
        started, m = now(), Meter(pid, cluster.control_plane.pids).begin()
        api.call("POST", f"/apis/pxsec.dev/v1alpha1/namespaces/{HOME}/pxsecurities", pxsecurity(args.tenants))
        seconds = wait(lambda: tenants_done(api, per_tenant), 1800, "every tenant token in place")
        cpu = m.end()
        meter.wait_quiet()
        rs = operator_requests(cluster, started)
        in_tenant_ns = [r for r in rs if r.namespace.startswith("tn-")]
        writes_per_ns = Counter(r.namespace for r in in_tenant_ns if r.verb in ("create", "update", "patch", "delete"))
        result["mint"] = {"seconds": round(seconds, 1), "operatorCpuSeconds": cpu["operator"],
                          "peakRssMb": round(status_mb(pid, "VmHWM"), 1), "rssBeforeMb": round(rss_before, 1),
                          "requests": len(rs), "byKind": by_kind(rs),
                          "maxWritesPerNamespace": max(writes_per_ns.values()) if writes_per_ns else 0,
                          "readsInTenantNamespaces": sum(1 for r in in_tenant_ns if r.verb in ("get", "list"))}
        log(f"mint: {result['mint']}")
        result["verdicts"] = judge(api, args.tenants)
        log(f"Go checker: {result['verdicts']}")

        log("restart: everything in place")
        since = now()
        operator.restart().wait_for_log("px-security-operator started", timeout=120)
        assert operator.popen is not None
        time.sleep(5)
        Meter(operator.popen.pid, cluster.control_plane.pids).wait_quiet()
        rs = operator_requests(cluster, since)
        result["restart"] = {"requests": len(rs), "byKind": by_kind(rs),
                             "writes": sum(1 for r in rs if r.verb in ("create", "update", "patch", "delete")
                                           and r.resource in ("secrets", "configmaps"))}
        log(f"restart: {result['restart']}")

        short = f"{int(24 * 60 / 10)}m"
        log(f"short: tenants' tokenLifetime {short}")
        pid = operator.popen.pid
        started, m = now(), Meter(pid, cluster.control_plane.pids).begin()
        api.call("PATCH", f"/apis/pxsec.dev/v1alpha1/namespaces/{HOME}/pxsecurities/px",
                 {"spec": {"tenants": pxsecurity(args.tenants, short)["spec"]["tenants"]}},
                 content_type="application/merge-patch+json")
        # Ready at the new generation: the reconcile that re-minted every token wrote that status.
        seconds = wait(lambda: tenants_done(api, per_tenant), 1800, "every token minted again")
        cpu = m.end()
        rs = operator_requests(cluster, started)
        result["short"] = {"lifetime": short, "seconds": round(seconds, 1), "operatorCpuSeconds": cpu["operator"],
                           "requests": len(rs), "byKind": by_kind(rs), "renewals": renewals_per_minute(api)}
        log(f"short: {result['short']}")

        if not args.no_trust_manager:
            from tests.bench.trust_manager import measure_trust_manager

            operator.stop()
            operator = None
            log("trust-manager")
            result["trustManager"] = measure_trust_manager(cluster, workdir, names, ALL_LABEL)
            log(f"trust-manager: {result['trustManager']}")
    finally:
        if operator is not None:
            operator.stop()
        cluster.stop()
        for name in ("bench-admin.key", "bench-admin.crt"):
            (workdir / name).unlink(missing_ok=True)
    print(markdown(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def markdown(r: dict[str, Any]) -> str:
    mint, tm = r.get("mint") or {}, r.get("trustManager") or {}
    lines = [f"{r['namespaces']} tenant namespaces ({r['tenants']} tenants) beside {r['noiseSecrets']} unrelated "
             f"Secrets; {r['cpus']} CPUs", "",
             "| | px-security-operator | trust-manager v0.25.0 |", "|---|---|---|",
             f"| all in place | {mint.get('seconds')} s | {tm.get('seconds')} s |",
             f"| requests | {mint.get('requests')} | {tm.get('requests')} |",
             f"| CPU seconds | {mint.get('operatorCpuSeconds')} | {tm.get('cpu_seconds')} |",
             f"| peak RSS | {mint.get('peakRssMb')} MB | {tm.get('peak_rss_mb')} MB |", ""]
    lines.append(f"Go checker: {r.get('verdicts')}; restart: {r.get('restart')}; 10x shorter lifetime: "
                 f"{r.get('short')}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
