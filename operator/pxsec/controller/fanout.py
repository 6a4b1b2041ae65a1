"""Independent writes of one reconcile sent at once instead of one after another.

A new PxSecurity needs several Secrets that do not depend on each other (the shared secret, the system
secrets, a key pair) and, at its end, Events that say different news. Sent one after another, each waits
a full round trip to the API server (an etcd commit) before the next leaves: most of the time from
create to Ready of one object. Each call still runs in full (its guards, its store bookkeeping, its
retries) — only the waiting overlaps. The pool is shared by every worker and small: during a burst the
workers already keep the API server busy, and the pool only lets a single object's round trips overlap.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

POOL_SIZE = 8

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="pxsec-fanout")
        return _pool


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in the order given. All calls run to their end even when one raises; then the
    first exception (in the order given) is raised, as a sequential loop that had run them all would have
    met it first. One call (or none) runs in the calling thread: nothing to overlap."""
    if len(calls) <= 1:
        return [call() for call in calls]
    futures = [_executor().submit(call) for call in calls[1:]]
    results: list[T] = []
    first: BaseException | None = None
    try:
        results.append(calls[0]())
    except BaseException as exc:  # re-raised below, once the others have finished
        first = exc
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first
    return results
