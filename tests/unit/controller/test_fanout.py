"""Independent writes overlap; results keep their order; a failure surfaces only after every call ended."""

from __future__ import annotations

import threading
import time

import pytest

from pxsec.controller import fanout


def test_the_calls_run_at_once_and_results_keep_their_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # broken (an error) unless all three wait at the same time

    def call(n: int) -> int:
        barrier.wait()
        return n

    assert fanout.run_all([lambda: call(1), lambda: call(2), lambda: call(3)]) == [1, 2, 3]


def test_a_failure_is_raised_after_every_call_has_ended() -> None:
    ended: list[str] = []

    def slow() -> str:
        time.sleep(0.2)
        ended.append("slow")
        return "slow"

    def failing() -> str:
        raise KeyError("first")

    def later_failing() -> str:
        raise ValueError("second")

    with pytest.raises(KeyError):
        fanout.run_all([failing, slow, later_failing])
    assert ended == ["slow"]  # the slow call was not abandoned


def test_one_call_runs_in_the_calling_thread() -> None:
    assert fanout.run_all([threading.current_thread]) == [threading.current_thread()]
    assert fanout.run_all([]) == []


def test_while_other_reconciles_run_the_calls_run_one_after_another() -> None:
    """In a burst the other workers fill each wait: the calls stay in the calling thread (no pool)."""
    with fanout.reconciling(), fanout.reconciling():
        threads = fanout.run_all([threading.current_thread, threading.current_thread])
    assert threads == [threading.current_thread()] * 2
    with fanout.reconciling():
        threads = fanout.run_all([threading.current_thread, threading.current_thread])
    assert threads[0] is threading.current_thread() and threads[1] is not threading.current_thread()


def test_one_after_another_a_failure_also_waits_for_the_rest() -> None:
    ran: list[int] = []

    def failing() -> int:
        raise KeyError("first")

    with fanout.reconciling(), fanout.reconciling(), pytest.raises(KeyError):
        fanout.run_all([failing, lambda: ran.append(2) or 2])
    assert ran == [2]
