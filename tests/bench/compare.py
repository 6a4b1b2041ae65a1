"""`make bench-compare`: the operator and cert-manager v1.21.1, each alone on a fresh local control plane, in
alternating order for --rounds rounds, side by side (issue 23: our burst all Ready in at most half of cert-manager's
time, in the same run, every round).

    .venv/bin/python -m tests.bench.compare [--objects 200] [--single 10] [--rounds 2] [--threads 16]
                                            [--json out.json] [--workdir DIR] [--cert-manager-arg ARG ...]

Each side is one process of its own bench, so that neither inherits the other's control plane, caches or threads:
ours is `python -m tests.bench.bench_e2e --shape storagecluster --noise 0 --idle 0` (every PxSecurity names a
StorageCluster, the shape nearly every user's has), cert-manager's is `python -m tests.bench.cert_manager` (a
SelfSigned Issuer per namespace, a Certificate with an ECDSA P-256 key). Both time with the same code
(bench_e2e.ReadyWatch and Bench): `single` objects one after another, then `objects` created at once by `threads`
threads. Round 1 runs ours first, round 2 cert-manager first, and so on, so that neither side always gets the
machine's warmer or quieter half. The machine is shared: every row says its load averages, and the numbers are
only comparable within a round. cert-manager runs with its defaults, client-go's 20 requests/s and burst 50
included, which bound its burst; --cert-manager-arg=--kube-api-qps=N (repeatable) passes flags to its controller.

It prints a markdown table (both sides, every round, the ratio ours / cert-manager of the all-Ready time), then
each run's own table, and writes everything as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.bench_e2e import fmt, log
from tests.bench.cert_manager import VERSION as CERT_MANAGER_VERSION
from tests.support.audit import WRITE_VERBS
from tests.tools.build import CERT_MANAGER, ensure

OURS = "px-security-operator"
THEIRS = f"cert-manager {CERT_MANAGER_VERSION}"
GOAL = 0.5  # issue 23: ours all Ready in at most half of cert-manager's time


def run_side(side: str, args: argparse.Namespace, workdir: Path, round_no: int) -> dict[str, Any]:
    """One side's bench as a child process (its log lines pass through on stderr); its JSON blob, with the
    markdown it printed under "markdown"."""
    tag = f"{'ours' if side == OURS else 'cert-manager'}-r{round_no}"
    out = workdir / f"{tag}.json"
    common = ["--objects", str(args.objects), "--single", str(args.single), "--threads", str(args.threads),
              "--json", str(out), "--workdir", str(workdir / tag), "--label", f"{side}, round {round_no}"]
    if side == OURS:
        cmd = [sys.executable, "-m", "tests.bench.bench_e2e", "--shape", "storagecluster", "--noise", "0",
               "--idle", "0", *common]
    else:
        cmd = [sys.executable, "-m", "tests.bench.cert_manager", *common,
               *(f"--controller-arg={a}" for a in args.cert_manager_arg)]
    log(f"round {round_no}: {side}")
    started = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"error: {' '.join(cmd[2:4])} failed ({done.returncode}); see {workdir / tag}")
    blob: dict[str, Any] = json.loads(out.read_text())
    blob["markdown"] = done.stdout
    blob["side"], blob["round"] = side, round_no
    blob["runSeconds"] = round(time.monotonic() - started, 1)
    (workdir / f"{tag}.md").write_text(done.stdout)
    return blob


def writes_excluding_events(requests: dict[str, Any], objects: int) -> float | None:
    """Writes per object without Events: the part of a controller's writes that is its actual work."""
    rows = requests.get("byVerbAndResource")
    if rows is None or not objects:
        return None
    count = sum(int(r["count"]) for r in rows if r["verb"] in WRITE_VERBS and r["resource"] != "events")
    return round(count / objects, 2)


def summary(blob: dict[str, Any]) -> dict[str, Any]:
    """The numbers the comparison shows, from one run's blob."""
    r = blob["results"]
    s, b = r.get("single") or {}, r.get("burst") or {}
    req = b.get("requests") or {}
    cpu = b.get("cpuToAllReady") or {}
    return {
        "singleMedianMs": s.get("medianMs"), "singleMinMs": s.get("minMs"), "singleMaxMs": s.get("maxMs"),
        "singleReady": s.get("ready"), "singleRuns": s.get("runs"),
        "singleRequestsPerObject": (s.get("requestsPerObject") or {}).get("perObject"),
        "allReadySeconds": b.get("allReadySeconds"), "ready": b.get("ready"), "objects": b.get("objects"),
        "createSeconds": b.get("createSeconds"), "p50Ms": b.get("p50Ms"), "p95Ms": b.get("p95Ms"),
        "requestsPerObject": req.get("perObject"), "readsPerObject": req.get("readsPerObject"),
        "writesPerObject": req.get("writesPerObject"),
        "writesPerObjectExclEvents": writes_excluding_events(req, b.get("objects") or 0),
        "controllerCpu": cpu.get("operator"), "controllerCpuWithSettle": (b.get("cpuWithSettle") or {}).get("operator"),
        "apiserverEtcdCpu": cpu.get("apiserverEtcd"), "controlPlaneCpu": cpu.get("controlPlane"),
        "machineBusyCores": cpu.get("machineBusyCores"), "peakRssMB": b.get("peakRssMB"),
        "loadavgBurst": f"{b.get('loadavgBefore')} → {b.get('loadavgAfter')}",
        "loadavgSingle": f"{s.get('loadavgBefore')} → {s.get('loadavgAfter')}",
    }


def markdown(rounds: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The side-by-side table: per side, the rounds' values separated by " / "."""
    n = args.objects

    def cells(get: Callable[[dict[str, Any]], str]) -> str:
        return " | ".join(" / ".join(get(rd[side]) for rd in rounds) for side in (OURS, THEIRS))

    def num(key: str, unit: str = "") -> Callable[[dict[str, Any]], str]:
        return lambda x: fmt(x[key], unit)

    out = [f"## {OURS} vs {THEIRS}: {args.rounds} round(s), round 1 / round 2 / … in each cell", "",
           f"{os.cpu_count()} CPUs shared with other work; each run alone on a fresh local control plane with an "
           f"audit log; ours with --shape storagecluster; {n} objects created at once by {args.threads} threads; "
           "order: " + ", ".join(f"round {i + 1} {' then '.join(rd['order'])}" for i, rd in enumerate(rounds))
           + "; cert-manager's flags: " + (" ".join(args.cert_manager_arg) + " beside its defaults"
                                           if args.cert_manager_arg else "its defaults (QPS 20, burst 50)"), "",
           f"| measure | {OURS} | {THEIRS} |", "|---|---|---|",
           f"| one object create → Ready, median of {args.single} | "
           + cells(lambda x: fmt(x["singleMedianMs"], " ms")) + " |",
           "| one object: min-max | "
           + cells(lambda x: f"{fmt(x['singleMinMs'])}-{fmt(x['singleMaxMs'], ' ms')}") + " |",
           f"| {n} at once, all Ready | " + cells(num("allReadySeconds", " s")) + " |",
           f"| {n} at once: Ready / created | " + cells(lambda x: f"{fmt(x['ready'])}/{fmt(x['objects'])}") + " |",
           "| per-object create → Ready in the burst, p50 (p95) | "
           + cells(lambda x: f"{fmt(x['p50Ms'])} ({fmt(x['p95Ms'])}) ms") + " |",
           "| API requests per object (burst + settle) | " + cells(num("requestsPerObject")) + " |",
           "| writes per object (excl. Events) | "
           + cells(lambda x: f"{fmt(x['writesPerObject'])} ({fmt(x['writesPerObjectExclEvents'])})") + " |",
           f"| controller CPU for the {n}, to all Ready | " + cells(num("controllerCpu", " s")) + " |",
           f"| apiserver + etcd CPU for the {n} | " + cells(num("apiserverEtcdCpu", " s")) + " |",
           "| control plane CPU incl. kube-controller-manager | " + cells(num("controlPlaneCpu", " s")) + " |",
           "| controller peak RSS | " + cells(num("peakRssMB", " MB")) + " |",
           "| machine busy cores during the burst | " + cells(num("machineBusyCores")) + " |",
           "| load average before → after the burst | " + cells(lambda x: str(x["loadavgBurst"])) + " |", ""]
    ratios = [rd["ratio"] for rd in rounds]
    met = all(r is not None and r <= GOAL for r in ratios)
    out += ["ratio ours / cert-manager of the all-Ready time, per round: "
            + " / ".join(fmt(r) for r in ratios)
            + f" (goal ≤ {GOAL:g} every round: {'met' if met else 'not met'})", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.compare", description=doc.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(doc.splitlines()[3:]))
    parser.add_argument("--objects", type=int, default=200, help="objects created at once in the burst")
    parser.add_argument("--single", type=int, default=10, help="objects created one at a time")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each side once per round, order alternating")
    parser.add_argument("--threads", type=int, default=16, help="parallel creates in the burst")
    parser.add_argument("--json", type=Path, default=None, help="write everything here as JSON")
    parser.add_argument("--workdir", type=Path, default=None, help="each run's logs, audit log and JSON go here")
    parser.add_argument("--cert-manager-arg", action="append", default=[], metavar="ARG",
                        help="an extra flag of cert-manager's controller (repeatable), e.g. "
                             "--cert-manager-arg=--kube-api-qps=1000; default: none")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pxsec-bench-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {workdir}")

    started = time.monotonic()
    ensure(CERT_MANAGER, log=True)  # a cold cache builds it here (minutes), not inside a measured run
    build_seconds = round(time.monotonic() - started, 1)

    rounds: list[dict[str, Any]] = []
    blobs: list[dict[str, Any]] = []
    for i in range(1, args.rounds + 1):
        order = [OURS, THEIRS] if i % 2 == 1 else [THEIRS, OURS]
        got = {side: run_side(side, args, workdir, i) for side in order}
        blobs += [got[side] for side in order]
        row: dict[str, Any] = {side: summary(got[side]) for side in order}
        ours, theirs = row[OURS]["allReadySeconds"], row[THEIRS]["allReadySeconds"]
        row["ratio"] = round(ours / theirs, 2) if ours is not None and theirs else None
        row["order"] = ["ours" if side == OURS else "cert-manager" for side in order]
        rounds.append(row)
        log(f"round {i}: all Ready {fmt(ours, ' s')} (ours) vs {fmt(theirs, ' s')} (cert-manager), "
            f"ratio {fmt(row['ratio'])}")

    text = markdown(rounds, args)
    print(text)
    for blob in blobs:
        print(blob["markdown"])
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()},
                                         "cpus": os.cpu_count(), "ensureCertManagerSeconds": build_seconds,
                                         "rounds": rounds, "runs": blobs, "table": text}, indent=1) + "\n")
        log(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
