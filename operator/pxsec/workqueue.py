"""A small level-triggered work queue, in the spirit of client-go's workqueue.

Watch events (of PxSecurities, and of the Secrets/ConfigMaps they depend on) only *name* a resource to
look at; the reconcile itself reads the world fresh. A key is never processed by two workers at once;
an event arriving while its key is being processed marks it dirty and it runs once more afterwards.
Failures back off exponentially per key; `requeue_after` (token renewal) schedules a timer, not a loop.
The reconcile function is synchronous and runs in a worker thread, so RSA generation and the blocking
Kubernetes client never stall the event loop that serves kopf's watch streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger("pxsec.workqueue")


@dataclass(frozen=True)
class Outcome:
    requeue_after: float | None = None


class WorkQueue(Generic[K]):
    def __init__(self, reconcile: Callable[[K], Outcome], workers: int = 4,
                 base_backoff: float = 1.0, max_backoff: float = 300.0) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._base = base_backoff
        self._max = max_backoff
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, key: K) -> None:
        """Reconcile `key` soon (coalesced with any pending request for it)."""
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Reconcile `key` after `delay` seconds; an earlier timer for the key wins."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        existing = self._timers.get(key)
        if existing is not None and not existing.cancelled() and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"pxsec-worker-{i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._processing.add(key)
            try:
                outcome = await asyncio.to_thread(self._reconcile, key)
            except Exception as exc:  # the reconcile reports user errors itself; this is the unexpected
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._max, self._base * 2 ** (failures - 1))
                logger.error("reconcile of %s failed (%s: %s); retrying in %.0fs",
                             key, type(exc).__name__, exc, delay)
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                if outcome.requeue_after is not None:
                    self.add_after(key, outcome.requeue_after)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                self._queue.task_done()
