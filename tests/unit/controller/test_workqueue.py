"""The work queue: coalescing, no concurrent processing of one key, backoff, timers."""

from __future__ import annotations

import asyncio
import threading
import time

from pxsec.controller.workqueue import Outcome, WorkQueue


def test_events_for_a_busy_key_coalesce_into_one_more_run() -> None:
    runs: list[str] = []
    active: set[str] = set()
    overlap = threading.Event()
    gate = threading.Event()

    def reconcile(key: str) -> Outcome:
        if key in active:
            overlap.set()
        active.add(key)
        runs.append(key)
        gate.wait(2)
        active.discard(key)
        return Outcome()

    async def scenario() -> None:
        q: WorkQueue[str] = WorkQueue(reconcile, workers=3)
        q.start()
        q.add("a")
        await asyncio.sleep(0.05)
        for _ in range(10):
            q.add("a")  # arrives while "a" is processing
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.sleep(0.3)
        await q.stop()

    asyncio.run(scenario())
    assert runs == ["a", "a"]
    assert not overlap.is_set()


def test_failures_back_off_and_success_resets() -> None:
    stamps: list[float] = []

    def reconcile(key: str) -> Outcome:
        stamps.append(time.monotonic())
        if len(stamps) < 3:
            raise RuntimeError("transient")
        return Outcome()

    async def scenario() -> None:
        q: WorkQueue[str] = WorkQueue(reconcile, workers=1, base_backoff=0.05)
        q.start()
        q.add("k")
        await asyncio.sleep(0.6)
        await q.stop()

    asyncio.run(scenario())
    assert len(stamps) == 3
    assert stamps[2] - stamps[1] > stamps[1] - stamps[0]  # 0.05s then 0.1s


def test_requeue_after_schedules_a_timer_and_earliest_wins() -> None:
    runs: list[float] = []

    def reconcile(key: str) -> Outcome:
        runs.append(time.monotonic())
        return Outcome(requeue_after=0.1 if len(runs) == 1 else None)

    async def scenario() -> None:
        q: WorkQueue[str] = WorkQueue(reconcile, workers=1)
        q.start()
        q.add("k")
        await asyncio.sleep(0.4)
        await q.stop()

    asyncio.run(scenario())
    assert len(runs) == 2 and runs[1] - runs[0] >= 0.09
