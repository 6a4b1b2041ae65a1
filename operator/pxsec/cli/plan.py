"""`pxsec plan -f PXSECURITY.yaml --storagecluster STORAGECLUSTER.yaml`: what the operator would do to a
StorageCluster, offline — for a GitOps pull request, before anything reaches a running cluster.

The StorageCluster is given as `kubectl get storagecluster NAME -o yaml` prints it (status included: its
phase says whether Portworx runs). The patch is `scmerge.merge` of the operator's own `storagecluster`
rendering, its effects and id are `pxsec.impact.assess` — the same functions the operator runs, so the id
printed here is the id the operator puts in `status.pendingChange.id`, and can be committed as
`spec.storageCluster.approvedChange` in the same pull request.

Offline, the token Secrets of the namespace are not known: a change of issuer or shared secret names only
the tokens this PxSecurity mints; the operator also names the others it finds.

Exit status:
  0  no change (nothing to write, or `apply: false`, or the StorageCluster is being deleted)
  1  invalid input (a PxSecurity `pxsec validate` refuses, a StorageCluster file that cannot be read or is
     not the one the PxSecurity names)
  2  usage error
  3  a change that would wait for approval (changePolicy Manual, the StorageCluster runs, it restarts
     Portworx or rejects tokens, and approvedChange does not name it)
  4  a change the operator would apply at once
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import IO, Any, Final, TextIO

import yaml

from pxsec import coexist, impact, kubeyaml, render, scmerge
from pxsec.cli.parse import namespace_name
from pxsec.cli.read import (
    INVALID,
    ReadError,
    describe,
    first_judged,
    load,
    print_problems,
    printable,
    read_input,
    shown_name,
    streams,
)
from pxsec.spec import PxSecuritySpec

EXIT_NO_CHANGE: Final = 0
EXIT_INVALID: Final = 1
EXIT_USAGE: Final = 2
EXIT_AWAITS_APPROVAL: Final = 3
EXIT_APPLIES: Final = 4
HIDDEN: Final = "(hidden)"


class PlanError(Exception):
    """One line for the user: the input cannot be planned."""


def read_storagecluster(path: str, stdin: IO[str]) -> dict[str, Any]:
    """The one StorageCluster of the file, read as kubectl reads YAML."""
    shown = shown_name(path)
    text = read_input(path, stdin)
    try:
        found = [item.value for item in kubeyaml.objects(text.text, whole=text.whole)
                 if isinstance(item.value, Mapping) and item.value.get("kind") == render.STORAGECLUSTER_KIND]
    except kubeyaml.KubeYAMLError as error:
        raise ReadError(describe(shown, error), INVALID) from None
    if len(found) != 1:
        raise PlanError(f"{shown}: expected one StorageCluster ({render.STORAGECLUSTER_API_VERSION}), "
                        f"found {len(found)}")
    return dict(found[0])


def _shown_patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    """The patch, with the plain values of env entries that may be secret hidden (a CI log is no Secret)."""
    shown: dict[str, Any] = json.loads(json.dumps(patch))
    for entry in (shown.get("spec") or {}).get("env") or []:
        if isinstance(entry, dict) and "value" in entry and entry.get("name") not in impact.SHOWN_ENV:
            entry["value"] = HIDDEN
    return shown


def plan(spec: PxSecuritySpec, cr_name: str, namespace: str, storagecluster: Mapping[str, Any],
         storage_nodes: int = 0) -> tuple[int, dict[str, Any]]:
    """(exit status, report) for applying `spec` to `storagecluster`."""
    target = spec.storage_cluster.name or cr_name
    sc_meta = storagecluster.get("metadata") or {}
    if sc_meta.get("name") != target:
        raise PlanError(f"the PxSecurity names StorageCluster {printable(str(target))}, the file holds "
                        f"{printable(str(sc_meta.get('name')))}")
    report: dict[str, Any] = {"storageCluster": f"{sc_meta.get('namespace') or namespace}/{target}"}
    if not spec.storage_cluster.apply:
        return EXIT_NO_CHANGE, {**report, "decision": "NotApplied",
                                "reason": "spec.storageCluster.apply is false: the operator writes nothing to it"}
    if sc_meta.get("deletionTimestamp"):
        return EXIT_NO_CHANGE, {**report, "decision": "NotApplied", "reason": "the StorageCluster is being deleted"}
    result = scmerge.merge(storagecluster, render.render(spec, namespace, "storagecluster", cr_name=cr_name))
    report["conflicts"] = result.conflicts
    if result.patch is None:
        return EXIT_NO_CHANGE, {**report, "decision": "NoChange"}
    after = scmerge.apply_merge_patch(json.loads(json.dumps(storagecluster)), json.loads(json.dumps(result.patch)))
    found = impact.assess(storagecluster, result.patch, storage_nodes=storage_nodes,
                          tokens=impact.our_token_verdicts(spec, coexist.view(target, storagecluster),
                                                           coexist.view(target, after)))
    live = impact.running(storagecluster, storage_nodes)
    policy, approved = spec.storage_cluster.change_policy, spec.storage_cluster.approved_change
    waits = impact.waits(found, live, policy, approved)
    report.update({
        "id": found.id,
        "decision": "AwaitsApproval" if waits else "Applies",
        "running": live,
        "effects": [e.as_status() for e in found.effects],
        "fields": [f.show() for f in found.fields],
        "notes": list(found.notes),
        "patch": _shown_patch(result.patch),
    })
    if waits and approved:
        report["approval"] = f"spec.storageCluster.approvedChange {approved} approves another change, not this one"
    return (EXIT_AWAITS_APPROVAL if waits else EXIT_APPLIES), report


def text(report: Mapping[str, Any]) -> str:
    """The report for a person (and a pull-request comment)."""
    where = f"StorageCluster {report['storageCluster']}"
    decision = report["decision"]
    if decision == "NotApplied":
        return f"no change to {where}: {report['reason']}\n"
    lines = []
    if decision == "NoChange":
        lines.append(f"no change to {where}: it carries the rendered security settings")
    else:
        state = "Portworx runs" if report["running"] else "Portworx does not run yet"
        how = ("waits for approval" if decision == "AwaitsApproval" else "is applied at once")
        lines.append(f"change {report['id']} to {where} ({state}) {how}")
        lines.append("effects:" if report["effects"] else "effects: none (no restart, no token rejected)")
        lines += [f"  {e['type']}: {e['message']}" for e in report["effects"]]
        lines += [f"note: {n}" for n in report["notes"]]
        lines.append("fields:")
        lines += [f"  {f}" for f in report["fields"]] or ["  (only the list order or our ownership record)"]
        lines.append("patch (values of env entries that may be secret are hidden):")
        lines += ["  " + line for line in yaml.safe_dump(report["patch"], sort_keys=True).splitlines()]
        if "approval" in report:
            lines.append(report["approval"])
        if decision == "AwaitsApproval":
            lines.append(f"approve: set spec.storageCluster.approvedChange: {report['id']}")
    lines += [f"conflict: {c}" for c in report.get("conflicts") or []]
    return "\n".join(printable(line) for line in lines) + "\n"


def run_plan(path: str, storagecluster_path: str, *, storage_nodes: int = 0, output: str = "text",
             namespace: str | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None,
             stderr: TextIO | None = None) -> int:
    source, out, err = streams(stdin, stdout, stderr)
    shown = shown_name(path)
    try:
        judged = first_judged(path, source)
        if print_problems(judged, shown, err):
            return EXIT_INVALID
        loaded = load(judged, shown)
        sc = read_storagecluster(storagecluster_path, source)
        ns = namespace or loaded.namespace or str((sc.get("metadata") or {}).get("namespace") or "default")
        code, report = plan(loaded.spec, str(loaded.name), ns, sc, storage_nodes)
    except (ReadError, PlanError) as error:
        print(f"pxsec plan: {error}" if isinstance(error, PlanError) else error, file=err)
        return EXIT_INVALID
    out.write(json.dumps(report, indent=2, sort_keys=True) + "\n" if output == "json" else text(report))
    return code


def _nodes(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return count


def _plan(args: argparse.Namespace) -> int:
    if args.file == "-" and args.storagecluster == "-":
        print("pxsec plan: only one of -f and --storagecluster can be - (stdin)", file=sys.stderr)
        return EXIT_USAGE
    return run_plan(args.file, args.storagecluster, storage_nodes=args.storage_nodes, output=args.output,
                    namespace=args.namespace)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan", help="what the operator would change in a StorageCluster, and whether it waits for approval",
        description="Print the patch the operator would apply to the StorageCluster, its effects on a running "
        "Portworx cluster, and its change id. Exit status: 0 no change, 1 invalid input, 2 usage error, "
        "3 a change that would wait for approval, 4 a change that would be applied at once.")
    p.add_argument("-f", "--file", required=True, help="the PxSecurity (YAML), or - for stdin")
    p.add_argument("--storagecluster", required=True, metavar="FILE",
                   help="the StorageCluster as `kubectl get storagecluster NAME -o yaml` prints it, or -")
    p.add_argument("--storage-nodes", type=_nodes, default=0, metavar="N",
                   help="how many StorageNodes it has (Portworx runs if any; default 0: judged by its phase)")
    p.add_argument("-n", "--namespace", type=namespace_name, default=None,
                   help="the namespace (default: the PxSecurity's, else the StorageCluster's, else default)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=_plan)
