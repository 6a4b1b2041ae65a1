"""Events of one reconcile, coalesced before they are posted (pxsec.events)."""

from pxsec.events import Event, coalesce


def test_events_of_one_reason_become_one() -> None:
    events = [Event("Normal", "SecretGenerated", "a"), Event("Normal", "TokenMinted", "t"),
              Event("Normal", "SecretGenerated", "b"), Event("Warning", "SecretGenerated", "c"),
              Event("Normal", "SecretGenerated", "a")]
    assert coalesce(events) == [Event("Normal", "SecretGenerated", "a; b"), Event("Normal", "TokenMinted", "t"),
                                Event("Warning", "SecretGenerated", "c")]
    assert coalesce([]) == []
