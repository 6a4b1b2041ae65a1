"""The key-material decisions (pxsec.keypolicy), table-driven: revisions, the Events a person is told,
and the KeysReady verdict with its order and its memory of a loss."""

from __future__ import annotations

from typing import Any

import pytest

from pxsec import keypolicy
from pxsec.keyplan import Purpose, Recorded, Requirement

REQ = Requirement("px-shared-secret", Purpose.SHARED, ("shared-secret",))
FP = "sha256:" + "a" * 64


@pytest.mark.parametrize("recorded, fingerprint, lost, expected", [
    (None, FP, False, (1, False)),  # first sight
    (Recorded(FP, 3, "Generated"), FP, False, (3, False)),  # unchanged
    (Recorded("sha256:other", 3, "Generated"), FP, False, (4, True)),  # changed by hand
    (Recorded(FP, 3, "Generated"), "sha256:new", True, (4, True)),  # lost and regenerated
    (None, FP, True, (1, True)),  # lost, status forgotten: still news
])
def test_revision(recorded: Recorded | None, fingerprint: str, lost: bool, expected: tuple[int, bool]) -> None:
    assert keypolicy.revision(recorded, fingerprint, lost) == expected


@pytest.mark.parametrize("lost, by_hand, reasons", [
    (True, False, ["SecretLost"]), (True, True, ["SecretLost"]), (False, True, ["SecretChanged"]), (False, False, []),
])
def test_news(lost: bool, by_hand: bool, reasons: list[str]) -> None:
    events = keypolicy.news(REQ, 4, FP, lost=lost, changed_by_hand=by_hand)
    assert [e.reason for e in events] == reasons
    assert all(e.type == "Warning" and "px-shared-secret" in e.message and "revision 4" in e.message for e in events)


@pytest.mark.parametrize("purpose, says", [
    (Purpose.SHARED, ("restart the Portworx pods", "put the old value back", "new Secret name", "px-user-token")),
    (Purpose.RSA, ("restart the Portworx pods", "put the old key back", "NodesAcknowledged")),
    (Purpose.ECDSA, ("restart the Portworx pods", "put the old key back", "NodesAcknowledged")),
    (Purpose.SYSTEM, ("put the old values back", "DR cluster-pair", "rolling update cannot start")),
])
def test_a_change_by_hand_says_what_it_breaks_and_how_to_recover(purpose: Purpose, says: tuple[str, ...]) -> None:
    """Portworx reads keys only when its pods start, and nothing restarts them for a Secret's content: the
    Event says so, per kind of key (issue 20: warnings for in-place edits)."""
    req = Requirement("the-secret", purpose, ())
    (event,) = keypolicy.news(req, 2, FP, lost=False, changed_by_hand=True)
    assert all(text in event.message for text in says), event.message
    assert set(keypolicy.IN_PLACE) == set(Purpose)


REGEN = {"type": "KeysReady", "reason": "SecretRegenerated", "observedGeneration": 2, "message": "regenerated: x"}


@pytest.mark.parametrize("kwargs, status, reason", [
    ({"invalid": ["Secret a: bad"], "lost": ["b"]}, False, "InvalidKeyMaterial"),
    ({"uninstalled": ["px-system-secrets"], "ignored": "x"}, False, "StorageClusterUninstalling"),
    ({"ignored": "spec.system.secretName other is not used", "lost": ["b"]}, False, "SystemSecretIgnored"),
    ({"lost": ["px-shared-secret"]}, True, "SecretRegenerated"),
    ({"previous": REGEN, "generation": 2}, True, "SecretRegenerated"),  # the news stays for this generation
    ({"previous": REGEN, "generation": 3}, True, "KeysReady"),  # ...until the spec changes
    ({"count": 3}, True, "KeysReady"),
])
def test_keys_condition_order(kwargs: dict[str, Any], status: bool, reason: str) -> None:
    cond = keypolicy.keys_condition(**kwargs)
    assert (cond.status, cond.reason) == (status, reason)


def test_keys_ready_says_what_was_adopted_with_a_note() -> None:
    cond = keypolicy.keys_condition(count=2, notes=["Secret px-shared-secret: shared-secret is 20 characters"])
    assert cond.message == ("2 Secret(s) hold the key material; adopted as they are: Secret px-shared-secret: "
                            "shared-secret is 20 characters")
    assert keypolicy.keys_condition(previous=REGEN, generation=2).message == "regenerated: x"
