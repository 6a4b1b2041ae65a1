"""Measure the steady-state API writes of our operator beside the Portworx Operator stand-in.

    .venv/bin/python -m tests.bench.measure_coexistence --operator-root PATH [--seconds 90] [--period 1]

Starts its own local control plane, installs the StorageCluster and StorageNode CRDs (tests/fixtures), the stand-in's
RBAC, and the CRDs and RBAC of the operator version in PATH (PATH/crds, PATH/manifests/rbac); runs that
version's operator (PYTHONPATH=PATH/operator) as its ServiceAccount, then runs each scenario in its own
namespace with its own stand-in:

  A  StorageCluster first (security on), the stand-in, its tokens; then our PxSecurity (apply: true).
  B  PxSecurity first (deletionPolicy Delete, secretTemplate labels), then a StorageCluster without
     security, then the stand-in.
  C  Uninstall: a StorageCluster with deleteStrategy Uninstall, our PxSecurity (Retain), the stand-in;
     after 30 s --storage-nodes StorageNodes appear (its node wiper's nodes: one wiped per pass) and the
     StorageCluster is deleted; the key Secrets' delete/create pairs are counted.

For A and B it waits 30 s after the last setup step, then counts the writes of kube-apiserver's audit
log in a window of --seconds, per (operator, resource, name, subresource, verb), per minute and per
stand-in pass. It prints a markdown section per scenario and a JSON blob at the end. Names and
fingerprints only: no Secret value is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root
from tests.support import portworx
from tests.support.audit import AuditWrite, now, writes
from tests.support.helpers import get_json
from tests.support.portworx import PortworxOperatorStandIn, create_storage_nodes

STC = "storageclusters.core.libopenstorage.org"
OURS = "system:serviceaccount:pxsec-system:px-security-operator"
WHO = {OURS: "ours", portworx.USERNAME: "stand-in"}
KEY_SECRETS = ("px-shared-secret", "px-system-secrets")
THEIR_TOKENS = ("px-admin-token", "px-user-token")
SHARED = {("storageclusters", "px-cluster"), *(("secrets", n) for n in (*KEY_SECRETS, *THEIR_TOKENS))}
CONDITIONS = ("Ready", "StorageClusterApplied", "TokensReady", "KeysReady", "KeysRetained", "TokensAccepted")
SETTLE = 30.0  # seconds after the last setup step before the window opens
DETAIL_CAP = 400  # writes listed one by one per scenario in the JSON
_PASS = re.compile(r"^pass (\d+) done at (\S+)$", re.MULTILINE)

Row = tuple[str, str, str, str, str]  # who, resource, name, subresource, verb


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# -- documents -----------------------------------------------------------------------------------------


def pxsecurity(tokens: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "storageCluster": {"name": "px-cluster", "apply": True},
        "guestAccess": "Disabled",
        "selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}},
        "tokens": tokens,
        **extra,
    }
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px-sec"}, "spec": spec}


ADMIN_TOKEN = {"secretName": "px-admin-token", "roles": ["system.admin"]}
CI_TOKEN = {"secretName": "px-ci-token", "roles": ["system.user"]}


def storagecluster(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster", "metadata": {"name": "px-cluster"},
            "spec": {"image": "portworx/oci-monitor:3.2.0", **spec}}


# -- observing -----------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, notes: list[str]) -> bool:
    """Poll; on timeout note it and carry on (the old version may never converge: that is a result)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    notes.append(f"timed out after {timeout:.0f}s waiting for {what}")
    log(f"  note: timed out waiting for {what}")
    return False


def secret(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "secret", name, "-n", namespace)


def fingerprint(obj: dict[str, Any]) -> str | None:
    """sha256 over the Secret's data (never the value itself); None when the Secret is absent."""
    if not obj:
        return None
    data = {k: base64.b64decode(v).hex() for k, v in sorted((obj.get("data") or {}).items())}
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def secret_meta(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj = secret(cluster, namespace, name)
    if not obj:
        return {"exists": False}
    meta = obj["metadata"]
    return {
        "exists": True,
        "labels": meta.get("labels") or {},
        "annotations": sorted(meta.get("annotations") or {}),
        "ownerReferences": [f"{r.get('kind')}/{r.get('name')}" for r in meta.get("ownerReferences") or []],
        "keys": sorted(obj.get("data") or {}),
        "fingerprint": fingerprint(obj),
        "resourceVersion": meta.get("resourceVersion"),
    }


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    generation = (obj.get("metadata") or {}).get("generation")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") in CONDITIONS:
            out[str(cond["type"])] = {
                "status": cond.get("status"), "reason": cond.get("reason"),
                "current": cond.get("observedGeneration") == generation,
                "message": str(cond.get("message") or "")[:300],
            }
    return out


def sc_auth(cluster: Cluster, namespace: str) -> dict[str, Any]:
    obj = get_json(cluster, STC, "px-cluster", "-n", namespace)
    if not obj:
        return {"exists": False}
    auth = ((obj.get("spec") or {}).get("security") or {}).get("auth") or {}
    signed = auth.get("selfSigned") or {}
    return {"exists": True, "issuer": signed.get("issuer"), "guestAccess": auth.get("guestAccess"),
            "sharedSecret": signed.get("sharedSecret"), "tokenLifetime": signed.get("tokenLifetime"),
            "finalizers": (obj.get("metadata") or {}).get("finalizers") or []}


def revisions(obj: dict[str, Any]) -> dict[str, int]:
    return {str(s.get("name")): int(s.get("revision") or 0) for s in (obj.get("status") or {}).get("secrets") or []}


def who(w: AuditWrite) -> str:
    return WHO.get(w.username, w.username)


def operator_writes(path: Path, namespace: str, since: dt.datetime, until: dt.datetime) -> list[AuditWrite]:
    """Every write in the namespace in [since, until), except the script's own kubectl and the namespace's
    default ServiceAccount (made by the serviceaccount controller)."""
    return [w for w in writes(path, namespace=namespace, since=since)
            if w.stage_timestamp < until and not w.user_agent.startswith("kubectl")
            and w.resource != "serviceaccounts"]


def row(w: AuditWrite) -> Row:
    return who(w), w.resource, w.name, w.subresource, w.verb


def show(w: AuditWrite) -> dict[str, str]:
    return {"at": w.stage_timestamp.isoformat(timespec="milliseconds"), "who": who(w), "verb": w.verb,
            "resource": w.resource, "name": w.name, "subresource": w.subresource, "userAgent": w.user_agent}


def passes_between(px: PortworxOperatorStandIn, since: dt.datetime, until: dt.datetime) -> int:
    """Stand-in passes that completed in [since, until) (its log stamps each pass)."""
    return sum(1 for _, at in _PASS.findall(px.output()) if since <= dt.datetime.fromisoformat(at) < until)


# -- a scenario ----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    title: str
    namespace: str
    period: float
    notes: list[str] = field(default_factory=list)
    setup_started: dt.datetime = field(default_factory=now)
    window: tuple[dt.datetime, dt.datetime] | None = None
    setup_rows: Counter[Row] = field(default_factory=Counter)
    window_rows: Counter[Row] = field(default_factory=Counter)
    window_passes: int = 0
    shared_writes: list[AuditWrite] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        seconds = (self.window[1] - self.window[0]).total_seconds() if self.window else 0.0

        def rows(counter: Counter[Row]) -> list[dict[str, Any]]:
            return [{"who": r[0], "resource": r[1], "name": r[2], "subresource": r[3], "verb": r[4], "count": n,
                     "perMinute": round(n * 60 / seconds, 2) if seconds else None,
                     "perStandInPass": round(n / self.window_passes, 3) if self.window_passes else None}
                    for r, n in sorted(counter.items())]

        return {
            "scenario": self.key, "title": self.title, "namespace": self.namespace, "standInPeriod": self.period,
            "window": [t.isoformat(timespec="milliseconds") for t in self.window] if self.window else None,
            "windowSeconds": round(seconds, 1), "standInPassesInWindow": self.window_passes,
            "windowWrites": rows(self.window_rows),
            "setupWrites": [{"who": r[0], "resource": r[1], "name": r[2], "subresource": r[3], "verb": r[4],
                             "count": n} for r, n in sorted(self.setup_rows.items())],
            "sharedObjectWritesInWindow": [show(w) for w in self.shared_writes[:DETAIL_CAP]],
            "sharedObjectWritesInWindowTotal": len(self.shared_writes),
            "state": self.state, "notes": self.notes,
        }


class Run:
    def __init__(self, cluster: Cluster, root: Path, workdir: Path, period: float, seconds: float,
                 storage_nodes: int) -> None:
        self.cluster = cluster
        self.root = root
        self.workdir = workdir
        self.period = period
        self.seconds = seconds
        self.storage_nodes = storage_nodes
        assert cluster.audit_log is not None
        self.audit = cluster.audit_log

    def kubectl_apply(self, namespace: str, doc: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))

    def pxsec(self, namespace: str) -> dict[str, Any]:
        return get_json(self.cluster, "pxsecurity", "px-sec", "-n", namespace)

    @contextlib.contextmanager
    def namespace(self, name: str, period: float) -> Iterator[tuple[str, PortworxOperatorStandIn]]:
        """The namespace and its stand-in (not started); afterwards the stand-in stops, its finalizer is
        removed from every StorageCluster, and the namespace is deleted."""
        self.cluster.kubectl("create", "namespace", name)
        px = PortworxOperatorStandIn(self.cluster, name, self.workdir / f"portworx-{name}.log", period=period)
        try:
            yield name, px
        finally:
            code = px.stop()
            if px.popen is not None and code != 0:
                log(f"  note: the stand-in of {name} exited {code}")
            for item in get_json(self.cluster, STC, "-n", name).get("items", []):
                self.cluster.kubectl("patch", STC, item["metadata"]["name"], "-n", name, "--type=merge",
                                     "-p", '{"metadata":{"finalizers":null}}', check=False)
            self.cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def measure_window(self, sc: Scenario, px: PortworxOperatorStandIn) -> None:
        """Settle, then count the window; record the state at its end."""
        log(f"  settling {SETTLE:.0f}s")
        time.sleep(SETTLE)
        start = now()
        log(f"  counting writes for {self.seconds:.0f}s")
        time.sleep(self.seconds)
        end = now()
        sc.window = (start, end)
        sc.setup_rows = Counter(row(w) for w in operator_writes(self.audit, sc.namespace, sc.setup_started, start))
        in_window = operator_writes(self.audit, sc.namespace, start, end)
        sc.window_rows = Counter(row(w) for w in in_window)
        sc.shared_writes = [w for w in in_window if (w.resource, w.name) in SHARED]
        sc.window_passes = passes_between(px, start, end)
        obj = self.pxsec(sc.namespace)
        sc.state.update({
            "storageCluster": sc_auth(self.cluster, sc.namespace),
            "ours": {"issuer": "pxsec.example", "guestAccess": "Disabled"},
            "conditions": conditions(obj),
            "revisions": revisions(obj),
            "secrets": {n: secret_meta(self.cluster, sc.namespace, n)
                        for n in (*KEY_SECRETS, *THEIR_TOKENS, "px-ci-token")},
        })
        auth = sc.state["storageCluster"]
        sc.state["storageClusterHasOurs"] = auth.get("issuer") == "pxsec.example" and \
            auth.get("guestAccess") == "Disabled"

    # -- A ---------------------------------------------------------------------------------------------

    def scenario_a(self) -> Scenario:
        with self.namespace("coexist-a", self.period) as (ns, px):
            sc = Scenario("A", "StorageCluster first", ns, self.period)
            log(f"scenario A in {ns}")
            self.kubectl_apply(ns, storagecluster(security={"enabled": True}))
            px.start()
            wait_until(lambda: all(secret(self.cluster, ns, n) for n in THEIR_TOKENS), 90,
                       "the stand-in's tokens", sc.notes)
            self.kubectl_apply(ns, pxsecurity([ADMIN_TOKEN, CI_TOKEN]))
            sc.state["setupDone"] = now().isoformat(timespec="milliseconds")
            self.measure_window(sc, px)
            return sc

    # -- B ---------------------------------------------------------------------------------------------

    def scenario_b(self) -> Scenario:
        with self.namespace("coexist-b", self.period) as (ns, px):
            sc = Scenario("B", "PxSecurity first", ns, self.period)
            log(f"scenario B in {ns}")
            self.kubectl_apply(ns, pxsecurity([ADMIN_TOKEN, CI_TOKEN], deletionPolicy="Delete",
                                              secretTemplate={"labels": {"team": "storage"}}))
            wait_until(lambda: all(secret(self.cluster, ns, n) for n in KEY_SECRETS), 60,
                       "our key Secrets", sc.notes)
            sc.state["keySecretsBeforeStandIn"] = {n: secret_meta(self.cluster, ns, n) for n in KEY_SECRETS}
            self.kubectl_apply(ns, storagecluster())
            wait_until(lambda: sc_auth(self.cluster, ns).get("issuer") == "pxsec.example", 60,
                       "our issuer in the StorageCluster", sc.notes)
            px.start()
            sc.state["setupDone"] = now().isoformat(timespec="milliseconds")
            self.measure_window(sc, px)
            return sc

    # -- C ---------------------------------------------------------------------------------------------

    def scenario_c(self) -> Scenario:
        period = 1.0
        with self.namespace("coexist-c", period) as (ns, px):
            sc = Scenario("C", "Uninstall", ns, period)
            log(f"scenario C in {ns}")
            self.kubectl_apply(ns, storagecluster(security={"enabled": True}, deleteStrategy={"type": "Uninstall"}))
            self.kubectl_apply(ns, pxsecurity([CI_TOKEN]))  # deletionPolicy Retain (the default)
            px.start()
            log("  running 30s before the deletion")
            time.sleep(30)
            obj = self.pxsec(ns)
            before = {n: fingerprint(secret(self.cluster, ns, n)) for n in KEY_SECRETS}
            sc.state["before"] = {"revisions": revisions(obj), "conditions": conditions(obj),
                                  "maxRevision": max(revisions(obj).values(), default=0),
                                  "fingerprints": before, "storageCluster": sc_auth(self.cluster, ns)}
            # Its node wiper's nodes (one wiped per pass); made only now, as a cluster that runs would have held
            # our first apply for approval.
            create_storage_nodes(self.cluster, ns, self.storage_nodes)
            start = now()
            self.cluster.kubectl("delete", STC, "px-cluster", "-n", ns, "--wait=false")
            log("  StorageCluster deleted; waiting for the uninstall")
            gone = wait_until(lambda: not sc_auth(self.cluster, ns)["exists"], 180,
                              "the StorageCluster to be gone", sc.notes)
            gone_at = now()
            log(f"  settling {SETTLE:.0f}s after the uninstall")
            time.sleep(SETTLE)
            end = now()
            sc.window = (start, end)
            sc.setup_rows = Counter(row(w) for w in operator_writes(self.audit, ns, sc.setup_started, start))
            ws = operator_writes(self.audit, ns, start, end)
            sc.window_rows = Counter(row(w) for w in ws)
            sc.window_passes = passes_between(px, start, end)
            sc.shared_writes = [w for w in ws if (w.resource, w.name) in SHARED]
            obj = self.pxsec(ns)
            after = {n: fingerprint(secret(self.cluster, ns, n)) for n in KEY_SECRETS}
            key_writes = [w for w in ws if w.resource == "secrets" and w.name in KEY_SECRETS
                          and w.verb in {"create", "delete"} and not w.subresource]
            sc.state.update({
                "uninstallSeconds": round((gone_at - start).total_seconds(), 1) if gone else None,
                "after": {"revisions": revisions(obj), "maxRevision": max(revisions(obj).values(), default=0),
                          "conditions": conditions(obj), "fingerprints": after},
                "valuesChanged": {n: before[n] != after[n] for n in KEY_SECRETS},
                "keySecretDeleteCreate": {n: self.pairs([w for w in key_writes if w.name == n])
                                          for n in KEY_SECRETS},
                "keySecretDeletesAndCreates": [show(w) for w in key_writes],
                "secrets": {n: secret_meta(self.cluster, ns, n) for n in KEY_SECRETS},
            })
            return sc

    @staticmethod
    def pairs(ws: list[AuditWrite]) -> dict[str, Any]:
        """Deletes and creates per operator, and the delete-then-create pairs in time order."""
        per = Counter(f"{who(w)} {w.verb}" for w in ws)
        pairs, pending = 0, 0
        for w in sorted(ws, key=lambda w: w.stage_timestamp):
            if w.verb == "delete":
                pending += 1
            elif w.verb == "create" and pending:
                pairs += 1
                pending -= 1
        return {"pairs": pairs, **dict(sorted(per.items()))}


# -- output --------------------------------------------------------------------------------------------


def markdown(sc: Scenario, label: str) -> str:
    out = [f"### {label}: scenario {sc.key} — {sc.title} (namespace {sc.namespace}, stand-in period {sc.period:g}s)",
           ""]
    seconds = (sc.window[1] - sc.window[0]).total_seconds() if sc.window else 0.0
    if sc.key == "C":
        st = sc.state
        out += [
            f"- uninstall took {st.get('uninstallSeconds')} s; counted from the deletion to {SETTLE:.0f} s after "
            f"it ({seconds:.0f} s, {sc.window_passes} stand-in passes)",
            f"- max status.secrets[].revision: before {st['before']['maxRevision']}, after "
            f"{st['after']['maxRevision']} (before {st['before']['revisions']}, after {st['after']['revisions']})",
            f"- values changed: {st['valuesChanged']} (fingerprints before {st['before']['fingerprints']}, "
            f"after {st['after']['fingerprints']})",
        ]
        for name, p in st["keySecretDeleteCreate"].items():
            out.append(f"- {name}: {p['pairs']} delete/create pairs; "
                       + ", ".join(f"{k}: {v}" for k, v in p.items() if k != "pairs"))
        cond = st["after"]["conditions"]
        out.append("- conditions after: " + "; ".join(f"{t} {c['status']}/{c['reason']}" for t, c in cond.items()))
    else:
        st = sc.state
        auth = st["storageCluster"]
        out += [
            f"- window {seconds:.0f} s ({sc.window[0]:%H:%M:%S}-{sc.window[1]:%H:%M:%S} UTC) after a {SETTLE:.0f} s "
            f"settle; {sc.window_passes} stand-in passes in it" if sc.window else "- no window",
            f"- StorageCluster: issuer {auth.get('issuer')!r}, guestAccess {auth.get('guestAccess')!r} -> "
            f"ours: {'yes' if st['storageClusterHasOurs'] else 'NO'}",
            "- PxSecurity: " + "; ".join(f"{t} {c['status']}/{c['reason']}" for t, c in st["conditions"].items()
                                         if t in {"Ready", "StorageClusterApplied", "TokensReady"}),
        ]
        for name, meta in st["secrets"].items():
            if not meta.get("exists"):
                out.append(f"- Secret {name}: absent")
                continue
            out.append(f"- Secret {name}: labels {meta['labels'] or '{}'}, ownerReferences "
                       f"{meta['ownerReferences'] or '[]'}, annotations {meta['annotations'] or '[]'}")
    for note in sc.notes:
        out.append(f"- note: {note}")
    out += ["", "| operator | resource | name | subresource | verb | setup | window | per min | per stand-in pass |",
            "|---|---|---|---|---|---:|---:|---:|---:|"]
    keys = sorted(set(sc.setup_rows) | set(sc.window_rows))
    for r in keys:
        n = sc.window_rows.get(r, 0)
        per_min = f"{n * 60 / seconds:.1f}" if seconds else "-"
        per_pass = f"{n / sc.window_passes:.2f}" if sc.window_passes else "-"
        mark = " (shared)" if (r[1], r[2]) in SHARED else ""
        out.append(f"| {r[0]} | {r[1]} | {r[2]}{mark} | {r[3] or '-'} | {r[4]} | {sc.setup_rows.get(r, 0)} | {n} | "
                   f"{per_min} | {per_pass} |")
    if not keys:
        out.append("| - | - | - | - | - | 0 | 0 | 0 | 0 |")
    total = sum(sc.window_rows.values())
    out += ["", f"window total: {total} writes ({total * 60 / seconds:.1f}/min)" if seconds else ""]
    if sc.shared_writes and sc.key != "C":
        out.append(f"shared-object writes in the window ({len(sc.shared_writes)}; first 20):")
        for w in sc.shared_writes[:20]:
            out.append(f"  - {w.stage_timestamp:%H:%M:%S.%f} {who(w)} {w.verb} {w.resource}/{w.name}"
                       f"{'/' + w.subresource if w.subresource else ''}")
    return "\n".join(out) + "\n"


# -- main ----------------------------------------------------------------------------------------------


def version_of(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Which pxsec the operator process imports with this environment, and the checkout it comes from."""
    imported = subprocess.run([sys.executable, "-c", "import pxsec; print(pxsec.__file__)"], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "operator", "crds",
                            "manifests"], capture_output=True, text=True, check=False).stdout.rstrip()
    digest = hashlib.sha256()
    for path in sorted((root / "operator" / "pxsec").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return {"root": str(root), "pxsecFile": imported, "head": head, "dirtyFiles": dirty.splitlines(),
            "sourceSha256": digest.hexdigest()[:16]}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_cleanly_on_sigterm() -> None:
    """A measuring script killed with SIGTERM still stops its operator and control plane (its `finally`)."""
    signal.signal(signal.SIGTERM, _interrupt)


def operator_version(root: Path) -> dict[str, Any] | None:
    """The version of `root`'s operator that `python -m pxsec` runs with PYTHONPATH=<root>/operator, or None
    after saying why on stderr when that environment imports another pxsec."""
    version = version_of(root, dict(os.environ, PYTHONPATH=str(root / "operator")))
    if not Path(version["pxsecFile"]).resolve().is_relative_to(root / "operator"):
        print(f"error: PYTHONPATH={root / 'operator'} imports {version['pxsecFile']}", file=sys.stderr)
        return None
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.measure_coexistence",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--operator-root", required=True, type=Path,
                        help="checkout of the operator version to run (its crds/, manifests/rbac, operator/)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the counting window (A, B)")
    parser.add_argument("--period", type=float, default=1.0,
                        help="the stand-in's period in A and B (the real Portworx Operator: about 30 s); C uses 1 s")
    parser.add_argument("--storage-nodes", type=int, default=10,
                        help="StorageNodes for the stand-in's node wiper in C (one wiped per pass; at least 1)")
    parser.add_argument("--scenarios", default="ABC", help="which scenarios to run, e.g. AB")
    parser.add_argument("--label", default="", help="a name for this run in the output (e.g. BEFORE)")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and a copy of the audit log go here")
    args = parser.parse_args(argv)

    root = args.operator_root.resolve()
    label = args.label or str(root)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pxsec-measure-"))
    workdir.mkdir(parents=True, exist_ok=True)
    version = operator_version(root)
    if version is None:
        return 2
    log(f"operator under test: {version}")
    log(f"work directory: {workdir}")

    stop_cleanly_on_sigterm()

    found = assets.ensure(build=False)
    cluster = Cluster.local(found)
    operator: OperatorProcess | None = None
    results: list[Scenario] = []
    try:
        for crd, name in (("storagecluster-crd.yaml", "storageclusters"), ("storagenode-crd.yaml", "storagenodes")):
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                            str(project_root() / "tests" / "fixtures" / crd))
            cluster.wait_established(f"{name}.core.libopenstorage.org")
        portworx.install_rbac(cluster)
        cluster.install_crds(root)
        cluster.install_rbac(root)
        operator = OperatorProcess(kubeconfig=cluster.service_account_kubeconfig(), log=workdir / "operator.log",
                                   extra_env={"PYTHONPATH": str(root / "operator")}).start()
        operator.wait_for_log("px-security-operator started")
        run = Run(cluster, root, workdir, args.period, args.seconds, args.storage_nodes)
        steps = {"A": run.scenario_a, "B": run.scenario_b, "C": run.scenario_c}
        for key in args.scenarios.upper():
            results.append(steps[key]())
    finally:
        if operator is not None:
            code = operator.stop()
            log(f"operator stopped ({code})")
        if cluster.audit_log is not None and cluster.audit_log.exists():
            shutil.copy(cluster.audit_log, workdir / "audit.log")
        cluster.stop()
        log("control plane stopped")

    print(f"## {label}\n")
    print(f"operator: {version['pxsecFile']} (HEAD {version['head']}, sources sha256 {version['sourceSha256']}"
          f"{', modified: ' + ', '.join(version['dirtyFiles']) if version['dirtyFiles'] else ''}); "
          f"window {args.seconds:g} s; stand-in period {args.period:g} s (A, B), 1 s (C); "
          f"logs and audit log: {workdir}\n")
    for sc in results:
        print(markdown(sc, label))
    blob = {"label": label, "operator": version, "seconds": args.seconds, "period": args.period,
            "storageNodes": args.storage_nodes, "workdir": str(workdir),
            "scenarios": [sc.as_json() for sc in results]}
    print("```json")
    print(json.dumps(blob, indent=1, default=str))
    print("```")
    (workdir / "result.json").write_text(json.dumps(blob, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
