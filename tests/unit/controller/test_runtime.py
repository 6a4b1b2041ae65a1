"""Which Secret/ConfigMap/StorageCluster events wake which PxSecurity: the bookkeeping follows each
reconcile's dependencies and forgets a resource that is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pxsec.controller.handlers import Runtime
from pxsec.controller.reconciler import Dependency, Key, Result
from pxsec.controller.workqueue import Outcome


class ScriptedReconciler:
    """Returns the dependencies a test sets; the real reconcile is exercised by the e2e tests."""

    def __init__(self) -> None:
        self.deps: dict[Key, set[Dependency]] = {}
        self.while_running: Callable[[], None] = lambda: None

    def reconcile(self, key: Key, watch: Callable[[set[Dependency]], None] | None = None) -> Result:
        deps = set(self.deps.get(key, set()))
        if watch is not None:
            watch(deps)
        self.while_running()
        return Result(Outcome(), deps)


def queued(runtime: Runtime) -> list[Any]:
    return sorted(runtime.queue._queued)


def test_events_wake_only_the_resources_that_depend_on_the_object() -> None:
    rec = ScriptedReconciler()
    runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
    a, b = ("ns", "a"), ("ns", "b")
    rec.deps = {a: {("Secret", "ns", "shared")}, b: {("Secret", "ns", "shared"), ("ConfigMap", "ns", "ca")}}
    runtime._reconcile(a)
    runtime._reconcile(b)
    runtime.wake("Secret", "ns", "shared")
    assert queued(runtime) == [a, b]
    runtime.queue._queued.clear()
    runtime.wake("ConfigMap", "ns", "ca")
    assert queued(runtime) == [b]
    runtime.queue._queued.clear()
    runtime.wake("Secret", "other", "shared")
    assert queued(runtime) == []


def test_dependencies_follow_the_latest_reconcile_and_vanish_with_the_resource() -> None:
    rec = ScriptedReconciler()
    runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
    a = ("ns", "a")
    rec.deps = {a: {("Secret", "ns", "old")}}
    runtime._reconcile(a)
    rec.deps = {a: {("Secret", "ns", "new")}}
    runtime._reconcile(a)
    runtime.wake("Secret", "ns", "old")
    assert queued(runtime) == []
    rec.deps = {}  # the resource was deleted: its reconcile reports no dependencies
    runtime._reconcile(a)
    runtime.wake("Secret", "ns", "new")
    assert queued(runtime) == [] and runtime.watchers == {}


def test_an_object_appearing_during_the_first_reconcile_still_wakes_it() -> None:
    """Dependencies are registered before they are read, so nothing slips between read and register."""
    rec = ScriptedReconciler()
    runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
    a = ("ns", "a")
    rec.deps = {a: {("StorageCluster", "ns", "px")}}
    rec.while_running = lambda: runtime.wake("StorageCluster", "ns", "px")  # created mid-reconcile
    runtime._reconcile(a)
    assert queued(runtime) == [a]


def test_the_stores_news_wakes_dependents_from_any_thread_and_echoes_wake_nobody() -> None:
    """Watch threads and reconcile workers report into the store; its news reaches the queue on the loop."""

    async def scenario() -> None:
        rec = ScriptedReconciler()
        runtime = Runtime(rec, workers=1)  # type: ignore[arg-type]
        runtime.loop = asyncio.get_running_loop()
        a = ("ns", "a")
        rec.deps = {a: {("Secret", "ns", "s")}}
        runtime._reconcile(a)
        store = runtime.store
        with store.writing("Secret", "ns", "s") as write:
            write.done({"metadata": {"resourceVersion": "7"}}, "ours")
        await asyncio.to_thread(store.observed, "Secret", "ns", "s", "7")  # our echo, from a watch thread
        await asyncio.to_thread(store.observed, "Secret", "ns", "unrelated", "3")
        await asyncio.sleep(0)
        assert queued(runtime) == []
        await asyncio.to_thread(store.observed, "Secret", "ns", "s", "8")  # someone else's change
        await asyncio.sleep(0)
        assert queued(runtime) == [a]
        runtime.queue._queued.clear()
        store.observed("PxSecurity", "ns", "b", "1", {"metadata": {"resourceVersion": "1"}})  # on the loop
        assert queued(runtime) == [("ns", "b")]

    asyncio.run(scenario())
