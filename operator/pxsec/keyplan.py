"""Plan the key material of one PxSecurity, given what the Secrets hold now and what status recorded.

The rule the whole product stands on: **existing keys win**. A Secret that exists is adopted as it is,
missing keys are added, an invalid user key is reported and never overwritten, and a Secret that
disappeared is recreated loudly (new revision) because every token signed with the old key is now
invalid. This module decides; it generates nothing and writes nothing. The shell has
`keymaterial.materialize` draw the random bytes (off the event loop) for the recipes and writes with
create-only / resourceVersion-guarded calls, so even a stale read can never replace a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pxsec import keymaterial
from pxsec.keymaterial import DERIVE_PUBLIC, KeyKind, Recipe
from pxsec.spec import (
    KEY_APPS_SECRET,
    KEY_PRIVATE_PEM,
    KEY_PUBLIC_PEM,
    KEY_SHARED_SECRET,
    KEY_SYSTEM_SECRET,
    PxSecuritySpec,
)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "px-security-operator"
OWNER_LABEL = "pxsec.dev/pxsecurity"
ORIGIN_ANNOTATION = "pxsec.dev/origin"
PURPOSE_ANNOTATION = "pxsec.dev/purpose"
# On a Secret generated again after its loss: the revision it was generated as. The news of a loss is
# computed from status, which the reconcile that regenerated the Secret may fail to write (a fault, a
# crash); the mark lets the next reconcile still say "lost and regenerated" instead of "changed by hand".
REGENERATED_ANNOTATION = "pxsec.dev/regenerated-as-revision"
# The Portworx Operator marks its shared/system Secrets so Stork does not migrate or back them up.
STORK_SKIP_ANNOTATION = "stork.libopenstorage.org/skip-resource"


class Purpose(StrEnum):
    SYSTEM = "system"
    SHARED = "shared-secret"
    RSA = KeyKind.RSA.value
    ECDSA = KeyKind.ECDSA.value


class Origin(StrEnum):
    GENERATED = "Generated"
    ADOPTED = "Adopted"


@dataclass(frozen=True)
class Requirement:
    name: str
    purpose: Purpose
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Observed:
    """What a Secret holds now (from one fresh GET)."""

    name: str
    data: Mapping[str, bytes]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""
    # The full metadata as read (managedFields, ownerReferences), when this reflects a read; None for
    # what a write just produced, so whoever needs the server's view reads it again.
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Recorded:
    """What status said about a Secret after the last reconcile."""

    fingerprint: str
    revision: int
    origin: str


class Action(StrEnum):
    NONE = "none"
    CREATE = "create"
    ADD_KEYS = "add-keys"
    INVALID = "invalid"
    RESTORE = "restore"  # gone, and a retained copy holds exactly the values status recorded
    STAND_ASIDE = "stand-aside"  # gone because a StorageCluster uninstall is deleting it: wait


@dataclass(frozen=True)
class SecretPlan:
    requirement: Requirement
    action: Action
    origin: Origin
    recipes: Mapping[str, Recipe] = field(default_factory=dict)  # key -> how to make it
    problems: tuple[str, ...] = ()
    lost: bool = False  # status knew it, the Secret is gone (or we regenerated it): old tokens are void
    notes: tuple[str, ...] = ()  # shown in status.secrets[].notes: adopted as it is, but worth knowing
    # RESTORE / STAND_ASIDE: the values kept in the retained copy, when they are the recorded ones.
    restore: Mapping[str, bytes] = field(default_factory=dict, repr=False)


def requirements(spec: PxSecuritySpec) -> list[Requirement]:
    """Every Secret the spec asks the operator to keep, in a stable order."""
    reqs = [Requirement(spec.system_secret, Purpose.SYSTEM, (KEY_SYSTEM_SECRET, KEY_APPS_SECRET))]
    ss = spec.self_signed
    if ss is not None:
        if ss.shared_secret:
            reqs.append(Requirement(ss.shared_secret, Purpose.SHARED, (KEY_SHARED_SECRET,)))
        if ss.rsa:
            reqs.append(Requirement(ss.rsa.secret_name, Purpose.RSA, (KEY_PRIVATE_PEM, KEY_PUBLIC_PEM)))
        if ss.ecdsa:
            reqs.append(Requirement(ss.ecdsa.secret_name, Purpose.ECDSA, (KEY_PRIVATE_PEM, KEY_PUBLIC_PEM)))
    return reqs


def _full_recipes(req: Requirement, spec: PxSecuritySpec) -> dict[str, Recipe]:
    ss = spec.self_signed
    if req.purpose is Purpose.RSA and ss and ss.rsa:
        return {KEY_PRIVATE_PEM: Recipe(KeyKind.RSA, ss.rsa.size), KEY_PUBLIC_PEM: Recipe(DERIVE_PUBLIC)}
    if req.purpose is Purpose.ECDSA and ss and ss.ecdsa:
        return {KEY_PRIVATE_PEM: Recipe(KeyKind.ECDSA, ss.ecdsa.curve), KEY_PUBLIC_PEM: Recipe(DERIVE_PUBLIC)}
    return {key: Recipe(KeyKind.SHARED) for key in req.keys}


def _problems(req: Requirement, data: Mapping[str, bytes], spec: PxSecuritySpec) -> list[str]:
    ss = spec.self_signed
    if req.purpose in (Purpose.SYSTEM, Purpose.SHARED):
        return [p for key in req.keys if key in data for p in keymaterial.check_shared_secret(data[key], key)]
    if req.purpose is Purpose.RSA:
        return keymaterial.check_key_pair(
            data.get(KEY_PRIVATE_PEM), data.get(KEY_PUBLIC_PEM), KeyKind.RSA,
            min_bits=keymaterial.MIN_RSA_BITS)
    return keymaterial.check_key_pair(
        data.get(KEY_PRIVATE_PEM), data.get(KEY_PUBLIC_PEM), KeyKind.ECDSA,
        curve=ss.ecdsa.curve if ss and ss.ecdsa else None)


def _warnings(req: Requirement, data: Mapping[str, bytes]) -> list[str]:
    if req.purpose not in (Purpose.SYSTEM, Purpose.SHARED):
        return []
    return [w for key in req.keys if key in data for w in keymaterial.shared_secret_warnings(data[key], key)]


def origin_of(observed: Observed) -> Origin:
    """Generated only if this operator created it (its marker survives CR re-creation); else Adopted."""
    if (observed.labels.get(MANAGED_BY_LABEL) == MANAGED_BY
            and observed.annotations.get(ORIGIN_ANNOTATION) == Origin.GENERATED.value):
        return Origin.GENERATED
    return Origin.ADOPTED


def _recorded_origin(recorded: Recorded | None) -> Origin | None:
    return Origin(recorded.origin) if recorded is not None and recorded.origin in set(Origin) else None


def plan_secret(req: Requirement, observed: Observed | None, recorded: Recorded | None,
                spec: PxSecuritySpec, *, shared: bool = False, aside: bool = False,
                retained: Mapping[str, bytes] | None = None) -> SecretPlan:
    """What to do about one Secret.

    `shared`: the Portworx Operator manages this Secret too and strips every marker we could put on
    it, so its origin is what status recorded (falling back to the markers, then Adopted).
    `aside`: a StorageCluster uninstall is deleting it right now; if gone, recreate nothing.
    `retained`: the values kept for it in the retained copy (`pxsec.coexist`); used only when they are
    exactly what status recorded, so a stale copy can never bring back an old key.
    """
    if observed is None:
        kept = dict(retained or {})
        usable = (recorded is not None and bool(kept) and all(k in kept for k in req.keys)
                  and secret_fingerprint(req, kept) == recorded.fingerprint)
        origin = _recorded_origin(recorded) or Origin.GENERATED
        if aside:
            return SecretPlan(req, Action.STAND_ASIDE, origin, restore=kept if usable else {})
        if usable:
            return SecretPlan(req, Action.RESTORE, origin, restore=kept)
        return SecretPlan(req, Action.CREATE, Origin.GENERATED, _full_recipes(req, spec),
                          lost=recorded is not None)
    lost = regenerated_since(req, observed, recorded)
    origin = origin_of(observed)
    if shared and origin is Origin.ADOPTED:
        origin = _recorded_origin(recorded) or origin
    problems = _problems(req, observed.data, spec)
    if problems:
        return SecretPlan(req, Action.INVALID, origin, problems=tuple(problems))
    notes: list[str] = _warnings(req, observed.data)
    missing = [k for k in req.keys if k not in observed.data]
    if not missing:
        return SecretPlan(req, Action.NONE, origin, notes=tuple(notes), lost=lost)
    recipes: dict[str, Recipe] = {}
    full = _full_recipes(req, spec)
    if req.purpose in (Purpose.RSA, Purpose.ECDSA):
        if KEY_PRIVATE_PEM in observed.data:
            recipes[KEY_PUBLIC_PEM] = Recipe(DERIVE_PUBLIC)
        else:
            # A public key alone is a valid verification-only setup (tokens are signed elsewhere);
            # a private key matching it cannot be made, so nothing is added.
            notes.append("private.pem is absent: Portworx can verify, but the operator cannot sign with it")
            return SecretPlan(req, Action.NONE, origin, notes=tuple(notes))
    else:
        recipes = {k: full[k] for k in missing}
    return SecretPlan(req, Action.ADD_KEYS, origin, recipes, notes=tuple(notes))


def secret_fingerprint(req: Requirement, data: Mapping[str, bytes]) -> str:
    """Fingerprint over the keys the operator cares about (a user's unrelated keys do not count)."""
    return keymaterial.fingerprint({k: data[k] for k in req.keys if k in data})


def regenerated_mark(recorded: Recorded | None) -> dict[str, str]:
    """The annotation a Secret generated again after its loss is created with (none for a first one)."""
    return {} if recorded is None else {REGENERATED_ANNOTATION: str(recorded.revision + 1)}


def regenerated_since(req: Requirement, observed: Observed, recorded: Recorded | None) -> bool:
    """The Secret is the one this operator generated after the loss status still records: its mark names
    the revision after the recorded one and its value is not the recorded one. Once status records the
    new revision the mark names that revision, and a later change by hand is said as such."""
    return (recorded is not None
            and observed.annotations.get(REGENERATED_ANNOTATION) == str(recorded.revision + 1)
            and secret_fingerprint(req, observed.data) != recorded.fingerprint)


def desired_metadata(cr_name: str, purpose: str, template_labels: Mapping[str, str],
                     template_annotations: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations of a Generated Secret: the template's, then ours (ours win).

    The CR's own labels are deliberately never copied: Argo CD's tracking label on a generated
    Secret would make Argo CD prune it.
    """
    labels = dict(template_labels)
    labels.update({MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: cr_name})
    annotations = dict(template_annotations)
    annotations.update({
        ORIGIN_ANNOTATION: Origin.GENERATED.value,
        PURPOSE_ANNOTATION: purpose,
        STORK_SKIP_ANNOTATION: "true",
    })
    return labels, annotations
