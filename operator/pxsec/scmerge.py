"""Merge the rendered `storagecluster` patch into a user's StorageCluster, without taking it over.

Why not server-side apply: in the real StorageCluster CRD `spec.env` and `spec.volumes` are plain
arrays (no `x-kubernetes-list-type: map`), so SSA treats each as one atomic value — applying our
entries would make us the owner of the whole list and drop the user's entries. So the shell reads the
StorageCluster, calls `merge()`, and sends the result as a JSON merge patch carrying the
`metadata.resourceVersion` it read (a concurrent writer makes it fail with 409: read again, merge
again). `merge()` is pure; it decides everything.

Ownership is remembered in the annotation `pxsec.dev/owned-fields` (JSON: which env names, volume names
and `spec.security` leaves we set), because a list entry carries no owner of its own. The rules:

* The user's other env entries, volumes and settings are never touched; their order is kept.
* Our entries are updated in place where they are, and new ones are appended.
* An entry or field we owned and no longer render is removed (so turning OIDC off removes its env).
* An entry with one of our names that we do not own and that holds a *different* value is a
  conflict: it is left as it is, not owned, and reported — someone else decided it, and silently
  overwriting a storage cluster's security settings is worse than saying so. One that already holds
  exactly our value is adopted (owned from then on): it is what we would have written.
* Except the Portworx Operator's saved defaults. With security on, it fills every empty
  `spec.security.auth` leaf with its default and writes the StorageCluster back (`PORTWORX_DEFAULTS`);
  it never overwrites a value that is set. Such a value is nobody's decision, so a `spec.security`
  leaf holding its default (and not ours) is replaced and owned like a missing one. Only a value that
  differs from both ours and the default is a conflict.
* The rest of the patch still goes through: conflicts are per entry, the caller reports them.

Merging an already-merged object gives no patch (`patch is None`), so reconciles cause no writes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

OWNED_ANNOTATION: Final = "pxsec.dev/owned-fields"

_LISTS: Final = ("env", "volumes")

# What the Portworx Operator stores into `spec.security` when auth is on and a leaf is empty
# (drivers/storage/portworx/portworx.go, setSecuritySpecDefaults, at 303cc37). The issuer's default is
# the `PORTWORX_AUTH_JWT_ISSUER` entry of `spec.env` when there is one (see `portworx_defaults`).
PORTWORX_DEFAULTS: Final[Mapping[str, str]] = {
    "auth.guestAccess": "Enabled",
    "auth.selfSigned.issuer": "operator.portworx.io",
    "auth.selfSigned.tokenLifetime": "24h",
    "auth.selfSigned.sharedSecret": "px-shared-secret",
}
_ENV_JWT_ISSUER: Final = "PORTWORX_AUTH_JWT_ISSUER"


def portworx_defaults(spec: Mapping[str, Any]) -> dict[str, frozenset[Any]]:
    """For each `spec.security` leaf the Portworx Operator fills, the values that can only be its default."""
    out = {path: frozenset({value}) for path, value in PORTWORX_DEFAULTS.items()}
    for entry in spec.get("env") or []:
        if isinstance(entry, Mapping) and entry.get("name") == _ENV_JWT_ISSUER and isinstance(entry.get("value"), str):
            out["auth.selfSigned.issuer"] |= {entry["value"]}
    return out


@dataclass(frozen=True)
class MergeResult:
    """`patch`: a JSON merge patch for the StorageCluster, or None when nothing is to change.
    `conflicts`: one sentence per entry left alone because someone else set it differently."""

    patch: dict[str, Any] | None
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Owned:
    """What we set on a StorageCluster: env names, volume names, dotted `spec.security` leaf paths."""

    env: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    security: frozenset[str] = frozenset()

    def encode(self) -> str:
        return json.dumps(
            {"env": sorted(self.env), "security": sorted(self.security), "volumes": sorted(self.volumes)},
            separators=(",", ":"),
        )


def decode_owned(value: Any) -> Owned:
    """Read the annotation. Anything unreadable counts as owning nothing: then our entries look like
    someone else's, which at worst reports a conflict — never removes or overwrites a user's entry."""
    try:
        raw = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return Owned()

    def names(key: str) -> frozenset[str]:
        items = raw.get(key)
        return frozenset(i for i in items if isinstance(i, str)) if isinstance(items, list) else frozenset()

    return Owned(env=names("env"), volumes=names("volumes"), security=names("security"))


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _leaves(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("auth.selfSigned.issuer", value) for every non-mapping value under `node`."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, path + ".")
        else:
            yield path, value


_MISSING: Final = object()


def _at(node: Mapping[str, Any], path: str) -> Any:
    value: Any = node
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return _MISSING
        value = value[step]
    return value


def _put(node: dict[str, Any], path: str, value: Any) -> None:
    steps = path.split(".")
    for step in steps[:-1]:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[steps[-1]] = value


def _delete(node: dict[str, Any], path: str) -> None:
    """Remove a leaf, and the mappings that held nothing else (so no empty `selfSigned: {}` is left)."""
    steps = path.split(".")
    chain: list[dict[str, Any]] = [node]
    for step in steps[:-1]:
        child = chain[-1].get(step)
        if not isinstance(child, dict):
            return
        chain.append(child)
    if steps[-1] not in chain[-1]:
        return
    del chain[-1][steps[-1]]
    for depth in range(len(chain) - 1, 0, -1):
        if chain[depth]:
            break
        del chain[depth - 1][steps[depth - 1]]


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `old` into `new` (nulls remove keys; mappings recurse)."""
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = _diff(before, value)
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def _merge_list(
    kind: str, existing: list[Any], rendered: list[Mapping[str, Any]], owned: frozenset[str], conflicts: list[str]
) -> tuple[list[Any], frozenset[str]]:
    """Merge rendered entries (keyed by `name`) into an existing atomic list; (new list, names we own)."""
    wanted = {entry["name"]: dict(entry) for entry in rendered}
    # A volume of someone else's at the mount path we want would shadow ours (or ours theirs).
    mounts = {
        entry.get("mountPath"): entry.get("name")
        for entry in existing
        if isinstance(entry, Mapping) and entry.get("name") not in wanted
        and entry.get("name") not in owned and "mountPath" in entry
    }
    out: list[Any] = []
    now: set[str] = set()
    seen: set[str] = set()
    for entry in existing:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(name, str) and name in wanted:
            if name in seen:
                conflicts.append(f"spec.{kind} {name} appears more than once; only the first is managed")
                out.append(entry)
                continue
            seen.add(name)
            if entry == wanted[name] or name in owned:
                out.append(wanted[name])
                now.add(name)
            else:
                conflicts.append(f"spec.{kind} {name} is set to a different value by someone else")
                out.append(entry)
        elif name in owned:
            continue  # ours, no longer rendered: removed
        else:
            out.append(entry)
    for name, entry in wanted.items():
        if name in seen:
            continue
        other = mounts.get(entry.get("mountPath")) if "mountPath" in entry else None
        if other is not None:
            conflicts.append(f"spec.{kind} {name}: mountPath {entry['mountPath']} is already used by {kind} {other}")
            continue
        out.append(entry)
        now.add(name)
    return out, frozenset(now)


def merge(existing: Mapping[str, Any], rendered: Mapping[str, Any]) -> MergeResult:
    """Merge the `storagecluster` rendering into the StorageCluster `existing` (as read from the API).

    The patch, when there is one, holds `metadata.resourceVersion` (optimistic concurrency), the
    ownership annotation when it changes, the full new `spec.env` / `spec.volumes` lists when they
    change (they are atomic: a merge patch replaces a list whole), and the changed `spec.security`
    leaves (null removes one we owned). Neither input is modified.
    """
    metadata = _map(existing.get("metadata"))
    spec = _map(existing.get("spec"))
    want = _map(rendered.get("spec"))
    owned = decode_owned(_map(metadata.get("annotations")).get(OWNED_ANNOTATION))
    conflicts: list[str] = []
    spec_patch: dict[str, Any] = {}
    now: dict[str, frozenset[str]] = {}

    for kind in _LISTS:
        current = spec.get(kind)
        current_list = list(current) if isinstance(current, list) else []
        rendered_list = [e for e in want.get(kind) or [] if isinstance(e, Mapping)]
        new_list, now[kind] = _merge_list(kind, current_list, rendered_list, getattr(owned, kind), conflicts)
        if new_list != current_list:
            spec_patch[kind] = copy.deepcopy(new_list) if new_list else None

    security = _map(spec.get("security"))
    new_security: dict[str, Any] = copy.deepcopy(dict(security))
    owned_security: set[str] = set()
    rendered_leaves = dict(_leaves(_map(want.get("security"))))
    defaults = portworx_defaults(spec)
    for path, value in rendered_leaves.items():
        current_value = _at(security, path)
        if current_value == value:
            owned_security.add(path)
        elif (current_value is _MISSING or current_value == "" or path in owned.security
              or current_value in defaults.get(path, ())):
            _put(new_security, path, copy.deepcopy(value))
            owned_security.add(path)
        else:
            conflicts.append(f"spec.security.{path} is set to a different value by someone else")
    for path in sorted(owned.security - rendered_leaves.keys()):
        _delete(new_security, path)
    if rendered_leaves and _at(security, "auth.enabled") is False and "auth.enabled" not in rendered_leaves:
        conflicts.append(
            "spec.security.auth.enabled is false (set by someone else): token authorization stays off"
        )
    security_patch = _diff(security, new_security)
    if security_patch:
        spec_patch["security"] = security_patch

    new_owned = Owned(env=now["env"], volumes=now["volumes"], security=frozenset(owned_security))
    meta_patch: dict[str, Any] = {}
    if new_owned != owned:
        meta_patch["annotations"] = {OWNED_ANNOTATION: new_owned.encode()}
    if not spec_patch and not meta_patch:
        return MergeResult(None, conflicts)
    if "resourceVersion" in metadata:
        meta_patch["resourceVersion"] = metadata["resourceVersion"]
    patch: dict[str, Any] = {"metadata": meta_patch}
    if spec_patch:
        patch["spec"] = spec_patch
    return MergeResult(patch, conflicts)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies `--type merge` (for tests and dry runs)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
