"""Independent writes of one reconcile sent at once instead of one after another.

A new PxSecurity needs several Secrets that do not depend on each other (the shared secret, the system
secrets, a key pair) and, at its end, Events that say different news. Sent one after another, each waits
a full round trip to the API server (an etcd commit) before the next leaves: most of the time from
create to Ready of one object. Each call still runs in full (its guards, its store bookkeeping, its
retries) — only the waiting overlaps. Only while one reconcile runs alone: during a burst the other
workers already fill each wait with their own requests, and handing calls to the pool's threads would
only add CPU (measured: about 6% of the operator's in a 200-object burst).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

POOL_SIZE = 8

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_running = 0  # reconciles in flight (`reconciling`)


@contextlib.contextmanager
def reconciling() -> Iterator[None]:
    """Around each reconcile of the runtime: how many run at once decides whether calls overlap."""
    global _running
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1


def _alone() -> bool:
    with _lock:
        return _running <= 1


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="pxsec-fanout")
        return _pool


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in the order given. All calls run to their end even when one raises; then the
    first exception (in the order given) is raised, as a loop that had run them all would have met it
    first. One call (or none), or any number while other reconciles run, run in the calling thread, one
    after another; otherwise all but the first go to the pool and the first runs here meanwhile."""
    overlap = len(calls) > 1 and _alone()
    futures = [_executor().submit(call) for call in calls[1:]] if overlap else []
    results: list[T] = []
    first: BaseException | None = None
    for i, call in enumerate(calls):
        try:
            results.append(futures[i - 1].result() if overlap and i else call())
        except BaseException as exc:  # re-raised below, once the others have finished
            first = first or exc
    if first is not None:
        raise first
    return results
