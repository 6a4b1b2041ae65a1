"""The decisions about key material that used to hide in the KeySync shell step, as pure functions beside
their data: the revision after a change or a loss, the Events a person is told, and the KeysReady verdict
(including how long the news of a loss stays on the object). Table-tested in tests/unit/test_keypolicy.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pxsec import conditions
from pxsec.conditions import Condition
from pxsec.events import Event
from pxsec.keyplan import Purpose, Recorded, Requirement

REGENERATED = "SecretRegenerated"


def revision(recorded: Recorded | None, fingerprint: str, lost: bool) -> tuple[int, bool]:
    """(revision, changed). Starts at 1; moves whenever the key material the operator relies on moves;
    a Secret regenerated after loss is always a new revision, even if status had lost track of it."""
    if lost:
        return (recorded.revision if recorded else 0) + 1, True
    if recorded is None:
        return 1, False
    if recorded.fingerprint == fingerprint:
        return recorded.revision, False
    return recorded.revision + 1, True


def news(req: Requirement, revision_: int, fingerprint: str, *, lost: bool, changed_by_hand: bool) -> list[Event]:
    """Warning Events for what invalidates tokens: a lost-and-regenerated Secret, a value changed by hand."""
    short = f"{fingerprint[:19]}…"
    if lost:
        return [Event("Warning", "SecretLost", (
            f"Secret {req.name} ({req.purpose.value}) was deleted and has been regenerated as revision "
            f"{revision_} ({short}): every token signed with the previous key is now invalid; restart Portworx "
            "pods to pick up the new value"))]
    if changed_by_hand:
        return [Event("Warning", "SecretChanged", (
            f"Secret {req.name} ({req.purpose.value}) changed outside the operator: now revision {revision_} "
            f"({short}); {IN_PLACE[req.purpose]}"))]
    return []


# What an in-place change of each kind of key breaks, and how to get out of it (said with SecretChanged).
# Portworx reads every key once, when its pods start; the Portworx Operator restarts them only when the
# StorageCluster's spec changes, never for a Secret's content.
IN_PLACE: dict[Purpose, str] = {
    Purpose.SHARED: (
        "tokens signed with it are re-minted (ours, and the Portworx Operator's px-admin-token and px-user-token), "
        "but every Portworx node keeps the old value until its pod restarts, so they are rejected until then "
        "(NodesAcknowledged names the nodes): restart the Portworx pods, or put the old value back. To rotate "
        "a shared secret, use a new Secret name: the Portworx Operator then restarts Portworx itself"),
    Purpose.RSA: (
        "tokens signed with it are re-minted, but every Portworx node keeps the old public key until its pod "
        "restarts, so they are rejected until then (NodesAcknowledged names the nodes): restart the Portworx "
        "pods, or put the old key back"),
    Purpose.ECDSA: (
        "tokens signed with it are re-minted, but every Portworx node keeps the old public key until its pod "
        "restarts, so they are rejected until then (NodesAcknowledged names the nodes): restart the Portworx "
        "pods, or put the old key back"),
    Purpose.SYSTEM: (
        "put the old values back: Portworx nodes keep the old ones until they restart, system-secret signs "
        "node-to-node and DR cluster-pair tokens (pairs made before break), and apps-secret signs the Portworx "
        "Operator's own calls to Portworx, read live, so its rolling update cannot start; these are never "
        "rotated in place"),
}


def keys_condition(*, invalid: Sequence[str] = (), uninstalled: Sequence[str] = (), storagecluster: str = "",
                   ignored: str | None = None, lost: Sequence[str] = (), notes: Sequence[str] = (),
                   count: int = 0, previous: Mapping[str, Any] | None = None,
                   generation: int | None = None) -> Condition:
    """KeysReady, first match wins: invalid material; Secrets deleted by a StorageCluster uninstall with no
    copy; a system Secret Portworx will not read; a loss just now; a loss seen earlier for this generation
    (the news stays until the spec next changes, not just for the one reconcile that noticed it); else
    ready, with the notes a person should read (weak secrets adopted as they are)."""
    if invalid:
        return conditions.false(conditions.KEYS_READY, "InvalidKeyMaterial", " | ".join(invalid))
    if uninstalled:
        return conditions.false(
            conditions.KEYS_READY, "StorageClusterUninstalling",
            f"{', '.join(uninstalled)} deleted by the uninstall of StorageCluster {storagecluster} and no copy of "
            "their values: generated again when the uninstall is over")
    if ignored:
        return conditions.false(conditions.KEYS_READY, "SystemSecretIgnored", ignored)
    if lost:
        return conditions.true(
            conditions.KEYS_READY, REGENERATED,
            f"regenerated after loss: {', '.join(lost)} (tokens signed with the old keys are invalid)")
    previous = previous or {}
    if previous.get("reason") == REGENERATED and previous.get("observedGeneration") == generation:
        return conditions.true(conditions.KEYS_READY, REGENERATED, str(previous.get("message")))
    message = f"{count} Secret(s) hold the key material"
    if notes:
        message += "; adopted as they are: " + "; ".join(notes)
    return conditions.true(conditions.KEYS_READY, "KeysReady", message)
