"""Asking Portworx nodes whether they accept a canary token (the shell half of `pxsec.nodecheck`).

One GET per node and key to the node's SDK REST gateway, all at once from a small thread pool, each bounded
by TIMEOUT: a reconcile that probes 100 nodes for two keys waits about one timeout, not 200. No retries (the
next reconcile, a minute later, asks again). Redirects are not followed: a node answers itself. The token
is sent only in the Authorization header and never logged; an unreachable node is said by the error's
class and errno text only.

When Portworx serves its API over TLS, the question goes over https and the node's certificate must chain
to the cluster's CA (`nodecheck.ApiTLS`; the system's CAs when none is named). Its host name is not
checked: nodes are asked at their StorageNode's mgmtIP, which their certificates seldom name, and a
certificate of the cluster's CA is what a canary (read-only, minutes) needs.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence

import urllib3

from pxsec.nodecheck import PROBE_PATH, Outcome, Probe

TIMEOUT = 3.0  # seconds to connect, and again to read
WORKERS = 16


class NodeProber:
    def __init__(self, timeout: float = TIMEOUT, workers: int = WORKERS) -> None:
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.http = urllib3.PoolManager(retries=False, timeout=self.timeout, maxsize=workers)
        self.workers = workers
        self._tls: dict[bytes | None, urllib3.PoolManager] = {}  # by CA bundle (None: the system's)
        self._lock = threading.Lock()

    def probe(self, asks: Sequence[tuple[str, str, str, str]], tls: bool = False,
              ca: bytes | None = None) -> list[Probe]:
        """(node, address, key label, token) for each question; the answers in the same order. `tls`: over
        https, the node's certificate checked against `ca` (PEM; None: the system's CAs)."""
        if not asks:
            return []
        http, scheme = (self._https(ca), "https") if tls else (self.http, "http")
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.workers, len(asks)),
                                                   thread_name_prefix="pxsec-nodeprobe") as pool:
            return list(pool.map(lambda ask: self._one(http, scheme, *ask), asks))

    def _https(self, ca: bytes | None) -> urllib3.PoolManager:
        with self._lock:
            pool = self._tls.get(ca)
            if pool is None:
                # Without a CA bundle urllib3 loads the system's.
                pool = urllib3.PoolManager(retries=False, timeout=self.timeout, maxsize=self.workers,
                                           cert_reqs="CERT_REQUIRED", assert_hostname=False,
                                           ca_cert_data=ca.decode("ascii", "replace") if ca is not None else None)
                if len(self._tls) > 8:  # CAs replaced over a long life: keep the few in use
                    self._tls.clear()
                self._tls[ca] = pool
            return pool

    def _one(self, http: urllib3.PoolManager, scheme: str, node: str, address: str, key: str,
             token: str) -> Probe:
        try:
            response = http.request("GET", f"{scheme}://{address}{PROBE_PATH}",
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
