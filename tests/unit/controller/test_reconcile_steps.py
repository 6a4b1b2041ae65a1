"""One bad object never wedges its reconcile: a step that raises becomes a False condition with reason
InternalError and the other steps still run; API errors are not swallowed (the work queue retries them);
the retry backs off and resets after a clean reconcile."""

from __future__ import annotations

import pytest

from pxsec import conditions
from pxsec.controller.gateway import GatewayError, NamespaceTerminating
from pxsec.controller.reconciler import FIRST_RETRY, MAX_RETRY, Reconciler, _describe, _Steps


def boom(exc: BaseException) -> int:
    raise exc


def test_a_failing_step_becomes_its_condition_and_the_fallback() -> None:
    steps = _Steps(("ns", "px"))
    assert steps.run("keys", conditions.KEYS_READY, lambda: 1, 0) == 1
    assert not steps.any_failed
    assert steps.run("tokens", conditions.TOKENS_READY, lambda: boom(RecursionError("maximum recursion depth")), 7) == 7
    cond = steps.condition("tokens")
    assert cond is not None and cond.type == conditions.TOKENS_READY and cond.status is False
    assert cond.reason == "InternalError"
    assert cond.message == "the tokens step failed: RecursionError: maximum recursion depth"
    assert steps.failed("tokens") and not steps.failed("keys") and steps.any_failed


@pytest.mark.parametrize("status", [0, 404, 409, 429, 500, 503])
def test_transient_api_errors_are_left_to_the_work_queue(status: int) -> None:
    steps = _Steps(("ns", "px"))
    with pytest.raises(GatewayError):
        steps.run("keys", conditions.KEYS_READY, lambda: boom(GatewayError(f"get secret x: {status}", status)), 0)


def test_namespace_termination_is_not_a_condition() -> None:
    with pytest.raises(NamespaceTerminating):
        _Steps(("ns", "px")).run("keys", conditions.KEYS_READY,
                                 lambda: boom(NamespaceTerminating("create secret x: 403 being terminated", 403)), 0)


@pytest.mark.parametrize("status, reason", [(400, "RejectedByAPIServer"), (422, "RejectedByAPIServer"),
                                            (403, "Forbidden")])
def test_a_refused_request_is_said_on_the_object(status: int, reason: str) -> None:
    steps = _Steps(("ns", "px"))
    error = GatewayError(f"apply metadata of secret v: {status} error decoding patch", status)
    assert steps.run("keys", conditions.KEYS_READY, lambda: boom(error), 3) == 3
    cond = steps.condition("keys")
    assert cond is not None and cond.reason == reason and cond.status is False
    assert "apply metadata of secret v" in cond.message


def test_the_message_is_one_bounded_line() -> None:
    text = _describe(ValueError("line one\nline two " + "x" * 1000))
    assert "\n" not in text and text.startswith("ValueError: line one line two") and len(text) < 320
    assert _describe(KeyError()) == "KeyError"


def test_retries_back_off_and_reset() -> None:
    reconciler = Reconciler.__new__(Reconciler)
    reconciler._failures = {}
    key = ("ns", "px")
    delays = [reconciler._retry_after(key, True) for _ in range(10)]
    assert delays[:3] == [FIRST_RETRY, FIRST_RETRY * 2, FIRST_RETRY * 4]
    assert delays[-1] == MAX_RETRY and delays == sorted(delays)
    assert reconciler._retry_after(key, False) is None
    assert reconciler._retry_after(key, True) == FIRST_RETRY
