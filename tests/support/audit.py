"""Who wrote what: a small reader of kube-apiserver's JSON audit log.

The local control plane (pxsec.devcluster.controlplane) writes one JSON audit event per line, at level
Metadata for the write verbs and nothing else, stage RequestReceived omitted; blocking mode, so a write's
line is there a moment after its response. `writes()` keeps the completed (ResponseComplete), successful
(2xx) writes; `count()` / `per_object()` count them per (username, resource, name).

    log = audit_log(cluster)                      # fails the test, clearly, without an audit log
    start = now()
    ...                                           # the writes under test
    ws = writes(log, namespace=ns, since=start, users={PORTWORX_USER})
    assert count(ws, resource="secrets", name="px-shared-secret", verb="update") == 1

An event carries names only (Metadata level: no request or response bodies), so reading the log
can never surface a Secret value.

`requests()` keeps every completed request of any verb and any response code (a 404 GET or a 409 create
is a round trip too), for counting API traffic: it sees reads only where the audit policy logs them
(tests/bench/bench_e2e.py runs its control plane with a policy that also logs the operator's get and list).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class AuditWrite:
    verb: str
    resource: str  # plural, e.g. "secrets", "storageclusters"
    subresource: str  # "" for the object itself, e.g. "status"
    namespace: str  # "" for cluster-scoped objects
    name: str  # "" for a deletecollection
    username: str
    user_agent: str
    stage_timestamp: dt.datetime  # timezone-aware (UTC), when the response was complete
    code: int  # the HTTP response code


def now() -> dt.datetime:
    """The current time in the form `since=` expects (the API server runs on this machine's clock)."""
    return dt.datetime.now(dt.UTC)


def audit_log(cluster: Cluster) -> Path:
    """The cluster's audit log, or fail (not skip): these tests mean nothing without it."""
    if cluster.audit_log is None:
        pytest.fail("this test counts API writes in kube-apiserver's audit log, and this cluster has none "
                    "(PXSEC_TEST_KUBECONFIG points at an existing cluster): run it against the local control "
                    "plane", pytrace=False)
    return cluster.audit_log


def _parse(event: dict[str, Any], verbs: Collection[str] | None = WRITE_VERBS,
           successful: bool = True) -> AuditWrite | None:
    if event.get("stage") != "ResponseComplete" or (verbs is not None and event.get("verb") not in verbs):
        return None
    code = int((event.get("responseStatus") or {}).get("code") or 0)
    if successful and not 200 <= code < 300:
        return None
    ref = event.get("objectRef") or {}
    return AuditWrite(
        verb=str(event["verb"]),
        resource=str(ref.get("resource", "")),
        subresource=str(ref.get("subresource", "")),
        namespace=str(ref.get("namespace", "")),
        name=str(ref.get("name", "")),
        username=str((event.get("user") or {}).get("username", "")),
        user_agent=str(event.get("userAgent", "")),
        stage_timestamp=dt.datetime.fromisoformat(str(event["stageTimestamp"])),
        code=code,
    )


def writes(path: Path, namespace: str | None = None, since: dt.datetime | None = None,
           users: Collection[str] | None = None) -> list[AuditWrite]:
    """The successful, completed writes in the log, oldest first, optionally only those in `namespace`,
    completed at or after `since` (timezone-aware) and made by one of `users`."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # a line still being written
    out: list[AuditWrite] = []
    for line in lines:
        if not line.strip():
            continue
        write = _parse(json.loads(line))
        if write is None:
            continue
        if namespace is not None and write.namespace != namespace:
            continue
        if since is not None and write.stage_timestamp < since:
            continue
        if users is not None and write.username not in users:
            continue
        out.append(write)
    return out


class Follow:
    """The writes completed since the last call, read from where the last call stopped (a soak polls the
    log for minutes; reading it whole each time would cost more than what it measures)."""

    def __init__(self, path: Path, namespace: str | None = None) -> None:
        self.path, self.namespace = path, namespace
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> list[AuditWrite]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self.offset += len(complete)
        found = (_parse(json.loads(line)) for line in complete.decode(errors="replace").splitlines() if line.strip())
        return [w for w in found if w is not None and (self.namespace is None or w.namespace == self.namespace)]


def events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete JSON line of the audit log (a line still being written is passed over)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue


def requests(path: Path, verbs: Collection[str] | None = None, namespace: str | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             users: Collection[str] | None = None) -> list[AuditWrite]:
    """Every completed request in the log (any response code), oldest first: of `verbs` (None: any, e.g.
    READ_VERBS), in `namespace`, completed in [since, until) and made by one of `users`. An AuditWrite
    describes a read as well; a line that does not parse (still being written) is skipped."""
    out: list[AuditWrite] = []
    for event in events(path):
        request = _parse(event, verbs, successful=False)
        if request is None:
            continue
        if namespace is not None and request.namespace != namespace:
            continue
        if since is not None and request.stage_timestamp < since:
            continue
        if until is not None and request.stage_timestamp >= until:
            continue
        if users is not None and request.username not in users:
            continue
        out.append(request)
    return out


def per_object(ws: Iterable[AuditWrite], verb: str | None = None) -> Counter[tuple[str, str, str]]:
    """How many writes (of `verb`, or any) each (username, resource, name) made."""
    return Counter((w.username, w.resource, w.name) for w in ws if verb is None or w.verb == verb)


def count(ws: Iterable[AuditWrite], *, username: str | None = None, resource: str | None = None,
          name: str | None = None, verb: str | None = None, subresource: str | None = "") -> int:
    """How many writes match every given field (None: any). By default only writes to the object
    itself count (subresource ""); pass subresource=None for any, or e.g. "status"."""
    return sum(
        1 for w in ws
        if (username is None or w.username == username)
        and (resource is None or w.resource == resource)
        and (name is None or w.name == name)
        and (verb is None or w.verb == verb)
        and (subresource is None or w.subresource == subresource)
    )
