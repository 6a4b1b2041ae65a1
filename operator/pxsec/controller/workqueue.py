"""A small level-triggered work queue, in the spirit of client-go's workqueue.

Watch events (of PxSecurities, and of the Secrets/ConfigMaps they depend on) only *name* a resource to
look at; the reconcile itself reads what it needs (through the gateway, from the store where that is as
good as a GET). A key is never processed by two workers at once; an event arriving while its key is
being processed marks it dirty and it runs once more afterwards.
One back-off policy for every failure, per key: a reconcile that raised (an API server unavailable, a
conflict that kept racing) and one that finished with a failed step (its condition already written) are
looked at again after 1 s, 2 s, 4 s … up to 5 min, and a clean reconcile resets it. `requeue_after`
(a token renewal, a probe) schedules a timer, not a loop.
The reconcile function is synchronous and runs in a worker thread, so RSA generation and the blocking
Kubernetes client never stall the event loop (kopf's liveness endpoint and the operator's own tasks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger("pxsec.controller.workqueue")


@dataclass(frozen=True)
class Outcome:
    requeue_after: float | None = None
    failed: bool = False  # a step failed (and said so in status): back off like a raised failure


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
        self._inflight: set[asyncio.Future[Outcome]] = set()

    @property
    def depth(self) -> int:
        """Keys waiting to be processed (not counting those being processed or waiting on a timer)."""
        return len(self._queued)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

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

    async def stop(self, drain_timeout: float = 60.0) -> None:
        """Stop the workers, then wait (up to `drain_timeout`) for reconciles already running in their
        threads: a thread cannot be cancelled, and whoever stops the queue (a replica giving up its Lease)
        must know that no write of ours is still on its way."""
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=drain_timeout)

    def _backoff(self, key: K) -> float:
        """The next delay for a key that failed again: base doubling per consecutive failure, capped."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return float(min(self._max, self._base * 2 ** (failures - 1)))

    def _finished(self, running: asyncio.Future[Outcome]) -> None:
        self._inflight.discard(running)
        if not running.cancelled():
            running.exception()  # seen here too: a worker stopped meanwhile no longer awaits it

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._processing.add(key)
            running = asyncio.ensure_future(asyncio.to_thread(self._reconcile, key))
            self._inflight.add(running)
            running.add_done_callback(self._finished)
            try:
                # Shielded: stop() cancels the worker, not the reconcile; it waits for the thread instead.
                outcome = await asyncio.shield(running)
            except Exception as exc:  # the reconcile reports user errors itself; this is the unexpected
                delay = self._backoff(key)
                logger.error("reconcile of %s failed (%s: %s); retrying in %.0fs",
                             key, type(exc).__name__, exc, delay)
                self.add_after(key, delay)
            else:
                after = outcome.requeue_after
                if outcome.failed:
                    delay = self._backoff(key)
                    after = delay if after is None else min(after, delay)
                else:
                    self._failures.pop(key, None)
                if after is not None:
                    self.add_after(key, after)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                self._queue.task_done()
