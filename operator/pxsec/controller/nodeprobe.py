"""Asking Portworx nodes whether they accept a canary token (the shell half of `pxsec.nodecheck`).

One GET per node and key to the node's SDK REST gateway, all at once from a small thread pool, each bounded
by TIMEOUT: a reconcile that probes 100 nodes for two keys waits about one timeout, not 200. No retries (the
next reconcile, a minute later, asks again). Redirects are not followed: a node answers itself. The token
is sent only in the Authorization header and never logged; an unreachable node is said by the error's
class and errno text only.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence

import urllib3

from pxsec.nodecheck import PROBE_PATH, Outcome, Probe

TIMEOUT = 3.0  # seconds to connect, and again to read
WORKERS = 16


class NodeProber:
    def __init__(self, timeout: float = TIMEOUT, workers: int = WORKERS) -> None:
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                                        maxsize=workers)
        self.workers = workers

    def probe(self, asks: Sequence[tuple[str, str, str, str]]) -> list[Probe]:
        """(node, address, key label, token) for each question; the answers in the same order."""
        if not asks:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.workers, len(asks)),
                                                   thread_name_prefix="pxsec-nodeprobe") as pool:
            return list(pool.map(lambda ask: self._one(*ask), asks))

    def _one(self, node: str, address: str, key: str, token: str) -> Probe:
        try:
            response = self.http.request("GET", f"http://{address}{PROBE_PATH}",
                                         headers={"Authorization": f"bearer {token}"}, redirect=False,
                                         preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            return Probe(node, key, Outcome.UNREACHABLE, f"{address}: {_short(reason)}")
        if response.status == 200:
            return Probe(node, key, Outcome.ACCEPTED)
        if response.status in (401, 403):
            return Probe(node, key, Outcome.REJECTED)
        return Probe(node, key, Outcome.UNREACHABLE, f"{address}: HTTP {response.status}")


def _short(error: object) -> str:
    text = " ".join(str(error).split())
    # urllib3 puts the connection object's repr first ("<...HTTPConnection object at 0x...>: Failed to ...").
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return f"{type(error).__name__}: {text[:160]}"
