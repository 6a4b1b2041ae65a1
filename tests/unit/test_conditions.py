"""Readiness from the policy chain, and stable lastTransitionTime (no churn)."""

from __future__ import annotations

from pxsec import conditions as c


def test_ready_is_the_first_failing_component_in_chain_order() -> None:
    comps = [c.true(c.KEYS_READY, "KeysReady", "ok"), c.false(c.TOKENS_READY, "NoKey", "no key"),
             c.false(c.OIDC_READY, "Unreachable", "down")]
    ready = c.ready(comps)
    assert ready.status is False and ready.reason == "Unreachable" and ready.message.startswith("OIDCReady:")


def test_ready_true_when_all_present_components_are_true() -> None:
    assert c.ready([c.true(c.KEYS_READY, "KeysReady", "ok")]).status is True


def test_unknown_is_not_ready() -> None:
    assert c.ready([c.Condition(c.KEYS_READY, None, "Pending", "waiting")]).status is False


def test_merge_keeps_transition_time_when_status_unchanged() -> None:
    first = c.merge([], [c.true(c.KEYS_READY, "KeysReady", "ok")], 1, "2026-01-01T00:00:00Z")
    again = c.merge(first, [c.true(c.KEYS_READY, "KeysReady", "ok, reworded")], 2, "2026-02-01T00:00:00Z")
    assert again[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert again[0]["observedGeneration"] == 2 and again[0]["message"] == "ok, reworded"
    flipped = c.merge(again, [c.false(c.KEYS_READY, "Invalid", "bad")], 2, "2026-03-01T00:00:00Z")
    assert flipped[0]["lastTransitionTime"] == "2026-03-01T00:00:00Z" and flipped[0]["status"] == "False"


def test_warnings_once_per_change_and_never_for_ready() -> None:
    from pxsec.conditions import KEYS_READY, READY, TOKENS_READY, false, true, warnings
    from pxsec.events import Event

    bad = false(KEYS_READY, "InvalidKeyMaterial", "Secret a: bad")
    previous = [{"type": KEYS_READY, "status": "False", "reason": "InvalidKeyMaterial", "message": "Secret a: bad"}]
    assert warnings([], [bad, false(READY, "InvalidKeyMaterial", "x")]) == [
        Event("Warning", "InvalidKeyMaterial", "Secret a: bad")]
    assert warnings(previous, [bad]) == []  # unchanged: said already
    assert [e.message for e in warnings(previous, [false(KEYS_READY, "InvalidKeyMaterial", "Secret b: bad")])] == [
        "Secret b: bad"]
    assert warnings([], [true(TOKENS_READY, "TokensValid", "ok")]) == []


def test_next_wake_is_the_earliest_due_time_with_a_floor() -> None:
    import datetime as dt

    from pxsec.conditions import next_wake

    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert next_wake(now, [None, None]) is None
    assert next_wake(now, [now + dt.timedelta(hours=1), None, now + dt.timedelta(seconds=30)]) == 30.0
    assert next_wake(now, [now - dt.timedelta(seconds=5)]) == 1.0  # overdue: soon, never a tight loop
