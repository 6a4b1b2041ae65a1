"""Merging our StorageCluster settings into a user's StorageCluster: never taking over the atomic env and
volumes lists, owning only what we set, removing only what we owned, and saying so on conflicts."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pxsec.render import render
from pxsec.scmerge import OWNED_ANNOTATION, MergeResult, Owned, apply_merge_patch, decode_owned, merge
from tests.unit.test_render import EXAMPLES, FULL, load_example, spec_of

USER_ENV = [{"name": "USER_FIRST", "value": "1"}, {"name": "USER_SECRET", "valueFrom": {"secretKeyRef": {
    "name": "mine", "key": "k"}}}]
USER_VOLUME = {"name": "user-ca", "mountPath": "/etc/pwx/user-ca", "secret": {"secretName": "user-ca"}}
OIDC: dict[str, Any] = {"oidc": {"issuer": "https://idp.example.com", "clientID": "px"}}


def cluster(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "core.libopenstorage.org/v1",
        "kind": "StorageCluster",
        "metadata": {"name": "px-cluster", "namespace": "portworx", "resourceVersion": "42"},
        "spec": {"image": "portworx/oci-monitor:3.2.0", **spec},
    }


def rendered(raw: dict[str, Any]) -> dict[str, Any]:
    return render(spec_of(raw), "portworx", "storagecluster", cr_name="px-cluster")


def step(existing: dict[str, Any], want: dict[str, Any]) -> tuple[dict[str, Any], MergeResult]:
    """Merge, apply the patch as the API server would, and bump the resourceVersion."""
    result = merge(existing, want)
    if result.patch is None:
        return existing, result
    after: dict[str, Any] = apply_merge_patch(existing, result.patch)
    after["metadata"]["resourceVersion"] = str(int(existing["metadata"]["resourceVersion"]) + 1)
    return after, result


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def env_names(obj: dict[str, Any]) -> list[str]:
    return [e["name"] for e in obj["spec"].get("env", [])]


def owned(obj: dict[str, Any]) -> Owned:
    return decode_owned(obj["metadata"].get("annotations", {}).get(OWNED_ANNOTATION))


def test_fresh_cluster_gets_everything_and_the_patch_is_guarded() -> None:
    want = rendered(FULL)
    result = merge(cluster(), want)
    assert result.conflicts == []
    assert result.patch is not None
    assert result.patch["metadata"]["resourceVersion"] == "42"
    assert result.patch["spec"]["env"] == want["spec"]["env"]
    assert result.patch["spec"]["volumes"] == want["spec"]["volumes"]
    assert result.patch["spec"]["security"] == want["spec"]["security"]
    assert "image" not in result.patch["spec"]
    record = json.loads(result.patch["metadata"]["annotations"][OWNED_ANNOTATION])
    assert record == {
        "env": sorted(e["name"] for e in want["spec"]["env"]),
        "security": ["auth.guestAccess", "auth.selfSigned.issuer", "auth.selfSigned.sharedSecret",
                     "auth.selfSigned.tokenLifetime", "enabled"],
        "volumes": ["pxsec-ecdsa-pubkey", "pxsec-rsa-pubkey"],
    }


def test_merging_a_merged_object_changes_nothing() -> None:
    after, _ = step(cluster(env=copy.deepcopy(USER_ENV)), rendered(FULL))
    again = merge(after, rendered(FULL))
    assert again == MergeResult(None, [])


def test_user_entries_survive_in_order_and_ours_are_appended() -> None:
    base = cluster(env=copy.deepcopy(USER_ENV), volumes=[copy.deepcopy(USER_VOLUME)],
                   security={"tls": {"enabled": True}})
    want = rendered(FULL)
    after, result = step(base, want)
    assert result.conflicts == []
    assert after["spec"]["env"][:2] == USER_ENV
    assert after["spec"]["env"][2:] == want["spec"]["env"]
    assert after["spec"]["volumes"] == [USER_VOLUME, *want["spec"]["volumes"]]
    assert after["spec"]["security"]["tls"] == {"enabled": True}
    assert after["spec"]["image"] == "portworx/oci-monitor:3.2.0"


def test_our_entries_are_updated_in_place() -> None:
    first, _ = step(cluster(env=copy.deepcopy(USER_ENV)), rendered(OIDC))
    # The user adds an entry after ours; then our issuer changes.
    first["spec"]["env"].append({"name": "USER_LAST", "value": "z"})
    changed = {"oidc": {"issuer": "https://new.example.com", "clientID": "px"}}
    after, result = step(first, rendered(changed))
    assert result.conflicts == []
    assert env_names(after) == env_names(first)
    assert after["spec"]["env"][2] == {"name": "PORTWORX_AUTH_OIDC_ISSUER", "value": "https://new.example.com"}
    assert result.patch is not None and "annotations" not in result.patch["metadata"], "ownership unchanged"


def test_what_we_owned_and_no_longer_render_is_removed() -> None:
    both = {**OIDC, "selfSigned": {"sharedSecret": {}, "rsa": {"secretName": "k"}}}
    first, _ = step(cluster(env=copy.deepcopy(USER_ENV), volumes=[copy.deepcopy(USER_VOLUME)]), rendered(both))
    assert "PORTWORX_AUTH_OIDC_ISSUER" in env_names(first)
    after, result = step(first, rendered(OIDC))
    assert result.conflicts == []
    assert env_names(after) == ["USER_FIRST", "USER_SECRET", "PORTWORX_AUTH_OIDC_ISSUER",
                                "PORTWORX_AUTH_OIDC_CLIENTID", "PORTWORX_AUTH_USERNAME_CLAIM"]
    assert after["spec"]["volumes"] == [USER_VOLUME]
    # The selfSigned leaves we set are gone, and with them the then-empty mapping.
    assert after["spec"]["security"] == {"enabled": True, "auth": {"guestAccess": "Enabled"}}
    assert owned(after).volumes == frozenset()
    assert owned(after).security == frozenset({"enabled", "auth.guestAccess"})
    assert merge(after, rendered(OIDC)).patch is None


def test_removing_our_last_entries_removes_the_list() -> None:
    first, _ = step(cluster(), rendered({"selfSigned": {"rsa": {"secretName": "k"}}}))
    after, _ = step(first, rendered(OIDC))
    assert "volumes" not in after["spec"]


def test_a_different_value_set_by_someone_else_is_a_conflict_and_left_alone() -> None:
    theirs = {"name": "PORTWORX_AUTH_OIDC_ISSUER", "value": "https://theirs.example.com"}
    base = cluster(env=[*copy.deepcopy(USER_ENV), theirs])
    after, result = step(base, rendered(OIDC))
    assert result.conflicts == [
        "spec.env PORTWORX_AUTH_OIDC_ISSUER is set to a different value by someone else"]
    assert after["spec"]["env"][2] == theirs, "not overwritten"
    assert "PORTWORX_AUTH_OIDC_ISSUER" not in owned(after).env
    # The rest went through; and it stays a conflict (never silently taken over) on the next merge.
    assert "PORTWORX_AUTH_OIDC_CLIENTID" in env_names(after)
    again = merge(after, rendered(OIDC))
    assert again.patch is None
    assert again.conflicts == result.conflicts
    # Once the user removes theirs, ours goes in.
    after["spec"]["env"].remove(theirs)
    fixed, result = step(after, rendered(OIDC))
    assert result.conflicts == []
    assert {"name": "PORTWORX_AUTH_OIDC_ISSUER", "value": "https://idp.example.com"} in fixed["spec"]["env"]


def test_an_equal_value_set_by_someone_else_is_adopted() -> None:
    same = {"name": "PORTWORX_AUTH_USERNAME_CLAIM", "value": "sub"}
    after, result = step(cluster(env=[same]), rendered(OIDC))
    assert result.conflicts == []
    assert after["spec"]["env"][0] == same
    assert "PORTWORX_AUTH_USERNAME_CLAIM" in owned(after).env


def test_an_entry_we_own_that_someone_edited_is_set_back() -> None:
    first, _ = step(cluster(), rendered(OIDC))
    first["spec"]["env"][0]["value"] = "https://edited.example.com"
    after, result = step(first, rendered(OIDC))
    assert result.conflicts == []
    assert after["spec"]["env"][0]["value"] == "https://idp.example.com"


def test_security_conflicts() -> None:
    base = cluster(security={"enabled": True, "auth": {"guestAccess": "Managed",
                                                       "selfSigned": {"issuer": "other.issuer"}}})
    want = rendered({"guestAccess": "Disabled", "selfSigned": {"sharedSecret": {}}})
    after, result = step(base, want)
    assert result.conflicts == [
        "spec.security.auth.guestAccess is set to a different value by someone else",
        "spec.security.auth.selfSigned.issuer is set to a different value by someone else",
    ]
    assert after["spec"]["security"]["auth"]["guestAccess"] == "Managed"
    assert after["spec"]["security"]["auth"]["selfSigned"] == {
        "issuer": "other.issuer", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}
    assert owned(after).security == frozenset({"enabled", "auth.selfSigned.tokenLifetime",
                                               "auth.selfSigned.sharedSecret"})


# What the Portworx Operator saves into a StorageCluster with security on and no auth settings.
PX_DEFAULTS = {"enabled": True, "auth": {"guestAccess": "Enabled", "selfSigned": {
    "issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}}}


def test_the_portworx_operators_saved_defaults_are_replaced_not_conflicts() -> None:
    want = rendered({"guestAccess": "Disabled", "selfSigned": {
        "issuer": "pxsec.example", "tokenLifetime": "12h", "sharedSecret": {"secretName": "my-shared"}}})
    after, result = step(cluster(security=copy.deepcopy(PX_DEFAULTS)), want)
    assert result.conflicts == []
    assert after["spec"]["security"] == {"enabled": True, "auth": {"guestAccess": "Disabled", "selfSigned": {
        "issuer": "pxsec.example", "tokenLifetime": "12h", "sharedSecret": "my-shared"}}}
    assert owned(after).security == frozenset({
        "enabled", "auth.guestAccess", "auth.selfSigned.issuer", "auth.selfSigned.tokenLifetime",
        "auth.selfSigned.sharedSecret"})
    # A full update by the Portworx Operator (which never overwrites a set value) changes nothing more.
    assert merge(after, want).patch is None


def test_an_issuer_default_taken_from_the_env_entry_is_a_default_too() -> None:
    env = [{"name": "PORTWORX_AUTH_JWT_ISSUER", "value": "from-env.example"}]
    security = copy.deepcopy(PX_DEFAULTS)
    security["auth"]["selfSigned"]["issuer"] = "from-env.example"
    after, result = step(cluster(env=env, security=security),
                         rendered({"selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}}}))
    assert result.conflicts == []
    assert after["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "pxsec.example"


def test_an_empty_value_is_unset_and_only_a_value_other_than_ours_and_the_default_conflicts() -> None:
    base = cluster(security={"enabled": True, "auth": {"guestAccess": "", "selfSigned": {
        "issuer": "someone.else", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}}})
    after, result = step(base, rendered({"guestAccess": "Disabled",
                                         "selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}}}))
    assert result.conflicts == ["spec.security.auth.selfSigned.issuer is set to a different value by someone else"]
    assert after["spec"]["security"]["auth"]["guestAccess"] == "Disabled"
    assert after["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "someone.else"


def test_security_disabled_by_someone_else_is_a_conflict() -> None:
    after, result = step(cluster(security={"enabled": False}), rendered(OIDC))
    assert result.conflicts == ["spec.security.enabled is set to a different value by someone else"]
    assert after["spec"]["security"]["enabled"] is False


def test_auth_turned_off_by_someone_else_is_reported() -> None:
    base = cluster(security={"enabled": True, "auth": {"enabled": False}})
    after, result = step(base, rendered(OIDC))
    assert result.conflicts == [
        "spec.security.auth.enabled is false (set by someone else): token authorization stays off"]
    assert after["spec"]["security"]["auth"] == {"enabled": False, "guestAccess": "Enabled"}


def test_volume_conflicts_by_name_and_by_mount_path() -> None:
    keys = {"selfSigned": {"rsa": {"secretName": "k"}, "ecdsa": {"secretName": "e"}}}
    by_name = {"name": "pxsec-rsa-pubkey", "mountPath": "/somewhere", "secret": {"secretName": "x"}}
    by_path = {"name": "their-keys", "mountPath": "/etc/pwx/pxsec/ecdsa", "secret": {"secretName": "y"}}
    after, result = step(cluster(volumes=[by_name, by_path]), rendered(keys))
    assert result.conflicts == [
        "spec.volumes pxsec-rsa-pubkey is set to a different value by someone else",
        "spec.volumes pxsec-ecdsa-pubkey: mountPath /etc/pwx/pxsec/ecdsa is already used by volumes their-keys",
    ]
    assert after["spec"]["volumes"] == [by_name, by_path]
    assert owned(after).volumes == frozenset()


def test_duplicate_entries_of_our_name_are_reported() -> None:
    dup = {"name": "PORTWORX_AUTH_USERNAME_CLAIM", "value": "sub"}
    after, result = step(cluster(env=[dup, dict(dup)]), rendered(OIDC))
    assert result.conflicts == [
        "spec.env PORTWORX_AUTH_USERNAME_CLAIM appears more than once; only the first is managed"]
    assert env_names(after).count("PORTWORX_AUTH_USERNAME_CLAIM") == 2


def test_an_unreadable_annotation_owns_nothing() -> None:
    base = cluster(env=[{"name": "PORTWORX_AUTH_OIDC_ISSUER", "value": "https://x.example.com"}])
    base["metadata"]["annotations"] = {OWNED_ANNOTATION: "{not json"}
    result = merge(base, rendered(OIDC))
    assert result.conflicts == ["spec.env PORTWORX_AUTH_OIDC_ISSUER is set to a different value by someone else"]
    for junk in (None, "", "[]", '{"env": "x"}', '{"env": [1, "A"]}'):
        assert decode_owned(junk) in (Owned(), Owned(env=frozenset({"A"})))


def test_inputs_are_not_modified_and_no_resource_version_means_none_in_the_patch() -> None:
    base = cluster(env=copy.deepcopy(USER_ENV))
    del base["metadata"]["resourceVersion"]
    want = rendered(FULL)
    snapshot = copy.deepcopy((base, want))
    result = merge(base, want)
    assert (base, want) == snapshot
    assert result.patch is not None and "resourceVersion" not in result.patch["metadata"]
    # The patch shares no objects with the inputs.
    result.patch["spec"]["env"][-1]["value"] = "mutated"
    assert (base, want) == snapshot


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(EXAMPLES, 2)),
                         ids=lambda p: p.stem)
def test_switching_between_examples_leaves_nothing_behind(first: Path, second: Path) -> None:
    """A -> B ends exactly where a fresh merge of B ends: the user's entries, and B's."""
    spec_a, name_a = load_example(first)
    spec_b, name_b = load_example(second)
    want_a = render(spec_a, "portworx", "storagecluster", cr_name=name_a)
    want_b = render(spec_b, "portworx", "storagecluster", cr_name=name_b)
    base = cluster(env=copy.deepcopy(USER_ENV), volumes=[copy.deepcopy(USER_VOLUME)])
    via_a, result_a = step(base, want_a)
    via_ab, result_b = step(via_a, want_b)
    direct, _ = step(base, want_b)
    assert result_a.conflicts == result_b.conflicts == []
    # Same content; our entries may sit in another order (kept in place, new ones appended).
    for kind in ("env", "volumes"):
        assert sorted(map(canonical, via_ab["spec"].get(kind, []))) == \
            sorted(map(canonical, direct["spec"].get(kind, []))), kind
    assert {k: v for k, v in via_ab["spec"].items() if k not in ("env", "volumes")} == \
        {k: v for k, v in direct["spec"].items() if k not in ("env", "volumes")}
    assert owned(via_ab) == owned(direct)
    assert via_ab["spec"]["env"][:2] == USER_ENV
    assert merge(via_ab, want_b).patch is None


def test_apply_merge_patch_is_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None, "y": 1}}
    assert apply_merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"y": 1}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
