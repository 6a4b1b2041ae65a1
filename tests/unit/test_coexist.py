"""Living beside the Portworx Operator (pxsec.coexist): who owns which object, what its uninstall does,
and whether Portworx as the StorageCluster configures it accepts the cluster's tokens.

The Portworx Operator's tokens are built here with PyJWT by hand, in its documented shape, not with
pxsec.tokens: the check must hold against tokens we did not make."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
import pytest

from pxsec import coexist, conditions, keyplan
from pxsec.coexist import PORTWORX_OPERATOR, PXSECURITY, TokenCheck
from pxsec.keyplan import Action, Observed, Origin, Recorded
from pxsec.spec import PxSecuritySpec, parse_spec

NOW = dt.datetime(2030, 5, 17, 12, 0, 0, tzinfo=dt.UTC)
SECRET = b"s" * 64


def spec(**extra: Any) -> PxSecuritySpec:
    raw: dict[str, Any] = {"storageCluster": {"name": "px-cluster", "apply": True},
                           "selfSigned": {"issuer": "pxsec.example", "sharedSecret": {}}}
    raw.update(extra)
    return parse_spec(raw)


def storagecluster(security: dict[str, Any] | None = None, *, strategy: str | None = None,
                   deleting: bool = False, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "px-cluster"}, "spec": {}}
    if security is not None:
        obj["spec"]["security"] = security
    if strategy:
        obj["spec"]["deleteStrategy"] = {"type": strategy}
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2030-05-17T11:59:00Z"
    if env:
        obj["spec"]["env"] = env
    return obj


ON: dict[str, Any] = {"enabled": True, "auth": {"selfSigned": {"issuer": "pxsec.example",
                                                               "sharedSecret": "px-shared-secret"}}}


def their_token(name: str, issuer: str = "pxsec.example", secret: bytes = SECRET, *,
                lifetime: dt.timedelta = dt.timedelta(hours=24)) -> str:
    roles, groups = coexist.OPERATOR_TOKENS[name]
    claims = {"iss": issuer, "sub": f"{name}@{issuer}", "email": f"{name}@{issuer}", "name": name,
              "roles": list(roles), "groups": list(groups),
              "iat": int((NOW - dt.timedelta(minutes=10)).timestamp()), "exp": int((NOW + lifetime).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


# -- who owns what -----------------------------------------------------------------------------------

def test_nothing_is_shared_without_a_targeted_storagecluster() -> None:
    co = coexist.plan(parse_spec({"selfSigned": {"sharedSecret": {}}}), "px", storagecluster(ON))
    assert co == coexist.Coexistence()
    assert not co.targeted and not co.shared_secrets and not co.operator_tokens


def test_a_targeted_storagecluster_shares_the_system_and_shared_secret_even_before_it_exists() -> None:
    """From the first write, so no Secret ever has to be handed over (and PUT) later."""
    co = coexist.plan(spec(), "px", None)
    assert co.targeted and co.cluster is not None and not co.cluster.exists
    assert co.shared_secrets == {"px-system-secrets", "px-shared-secret"}
    assert co.operator_tokens == set(coexist.OPERATOR_TOKENS)  # apply: true turns its security on
    assert not co.checks_tokens  # nothing to judge against yet


def test_its_tokens_are_free_names_until_its_security_is_on() -> None:
    raw = {"storageCluster": {"name": "px-cluster"}, "selfSigned": {"sharedSecret": {}}}
    assert coexist.plan(parse_spec(raw), "px", storagecluster({"enabled": False})).operator_tokens == set()
    assert coexist.plan(parse_spec(raw), "px", storagecluster(ON)).operator_tokens == set(coexist.OPERATOR_TOKENS)


@pytest.mark.parametrize("security, enabled", [
    ({"enabled": True}, True),
    ({"enabled": True, "auth": {"enabled": True}}, True),
    ({"enabled": True, "auth": {"enabled": False}}, False),
    ({"enabled": False, "auth": {"enabled": True}}, False),
    (None, False),
])
def test_auth_enabled_is_its_rule(security: dict[str, Any] | None, enabled: bool) -> None:
    assert coexist.view("px-cluster", storagecluster(security)).auth_enabled is enabled


def test_the_view_fills_its_defaults_as_it_does() -> None:
    view = coexist.view("px-cluster", storagecluster({"enabled": True}))
    assert (view.issuer, view.shared_secret, view.token_lifetime) == ("operator.portworx.io", "px-shared-secret", "24h")
    env = [{"name": "PORTWORX_AUTH_JWT_ISSUER", "value": "from-env"}]
    assert coexist.view("px-cluster", storagecluster({"enabled": True}, env=env)).issuer == "from-env"


def test_a_deletestrategy_retains_the_secrets_its_uninstall_deletes_and_stands_aside_during_it() -> None:
    raw = {"storageCluster": {"name": "px-cluster"},
           "selfSigned": {"sharedSecret": {}, "rsa": {"secretName": "px-jwt-rsa"}}}
    calm = coexist.plan(parse_spec(raw), "px", storagecluster(ON, strategy="Uninstall"))
    assert calm.retained == {"px-system-secrets", "px-shared-secret"} and calm.standing_aside == set()
    going = coexist.plan(parse_spec(raw), "px", storagecluster(ON, strategy="Uninstall", deleting=True))
    assert going.standing_aside == {"px-system-secrets", "px-shared-secret"}
    assert not going.checks_tokens
    plain_delete = coexist.plan(parse_spec(raw), "px", storagecluster(ON, deleting=True))
    assert plain_delete.retained == set() and plain_delete.standing_aside == set()


def test_a_custom_shared_secret_name_is_not_what_its_uninstall_deletes() -> None:
    raw = {"storageCluster": {"name": "px-cluster"}, "selfSigned": {"sharedSecret": {"secretName": "mine"}}}
    co = coexist.plan(parse_spec(raw), "px", storagecluster(ON, strategy="Uninstall", deleting=True))
    assert co.shared_secrets == {"px-system-secrets", "mine"}
    assert co.standing_aside == {"px-system-secrets"}


def test_the_uninstall_condition_says_what_happens_up_front() -> None:
    co = coexist.plan(spec(), "px", storagecluster(ON, strategy="UninstallAndWipe"))
    cond = coexist.retained_condition(co, "px-px-security-retained")
    assert cond is not None and cond.status is True and cond.reason == "Retained"
    assert "UninstallAndWipe" in cond.message and "px-px-security-retained" in cond.message
    assert coexist.retained_condition(coexist.plan(spec(), "px", storagecluster(ON)), "x") is None
    going = coexist.plan(spec(), "px", storagecluster(ON, strategy="Uninstall", deleting=True))
    assert coexist.retained_condition(going, "x").reason == "StorageClusterUninstalling"  # type: ignore[union-attr]
    lost = coexist.retained_condition(going, "x", ["px-system-secrets"])
    assert lost is not None and lost.status is False and "px-system-secrets" in lost.message


def test_the_retained_copy_round_trips() -> None:
    data = {"px-system-secrets": {"system-secret": b"a" * 64, "apps-secret": b"b" * 64, "other": b"c"},
            "px-shared-secret": {"shared-secret": SECRET}}
    keys = {"px-system-secrets": ("system-secret", "apps-secret"), "px-shared-secret": ("shared-secret",)}
    copy = coexist.retained_data(data, ["px-system-secrets", "px-shared-secret"], keys)
    assert set(copy) == {"px-system-secrets.system-secret", "px-system-secrets.apps-secret",
                         "px-shared-secret.shared-secret"}
    assert coexist.from_retained(copy, "px-system-secrets", keys["px-system-secrets"]) == {
        "system-secret": b"a" * 64, "apps-secret": b"b" * 64}


# -- keyplan: restore only the recorded values, stand aside during the uninstall -----------------------

REQ = keyplan.Requirement("px-shared-secret", keyplan.Purpose.SHARED, ("shared-secret",))


def recorded_for(value: bytes, origin: str = "Generated") -> Recorded:
    return Recorded(keyplan.secret_fingerprint(REQ, {"shared-secret": value}), 3, origin)


def test_a_gone_secret_is_restored_only_with_exactly_the_recorded_values() -> None:
    p = keyplan.plan_secret(REQ, None, recorded_for(SECRET), spec(), retained={"shared-secret": SECRET})
    assert p.action is Action.RESTORE and p.restore == {"shared-secret": SECRET} and not p.lost
    stale = keyplan.plan_secret(REQ, None, recorded_for(SECRET), spec(), retained={"shared-secret": b"o" * 64})
    assert stale.action is Action.CREATE and stale.lost and not stale.restore
    unknown = keyplan.plan_secret(REQ, None, None, spec(), retained={"shared-secret": SECRET})
    assert unknown.action is Action.CREATE and not unknown.restore
    assert "s" * 64 not in repr(p)  # the values never show in a repr


def test_during_the_uninstall_nothing_is_created() -> None:
    p = keyplan.plan_secret(REQ, None, recorded_for(SECRET), spec(), aside=True, retained={"shared-secret": SECRET})
    assert p.action is Action.STAND_ASIDE and p.restore == {"shared-secret": SECRET}
    bare = keyplan.plan_secret(REQ, None, recorded_for(SECRET), spec(), aside=True)
    assert bare.action is Action.STAND_ASIDE and not bare.restore and not bare.recipes


def test_a_shared_secret_keeps_the_origin_status_recorded_though_its_markers_were_stripped() -> None:
    stripped = Observed("px-shared-secret", {"shared-secret": SECRET},
                        annotations={"stork.libopenstorage.org/skip-resource": "true"})
    p = keyplan.plan_secret(REQ, stripped, recorded_for(SECRET), spec(), shared=True)
    assert p.origin is Origin.GENERATED
    assert keyplan.plan_secret(REQ, stripped, None, spec(), shared=True).origin is Origin.ADOPTED
    assert keyplan.plan_secret(REQ, stripped, recorded_for(SECRET), spec()).origin is Origin.ADOPTED


# -- tokens, as Portworx configured by the StorageCluster judges them ----------------------------------

def judge(sc: dict[str, Any], checks: list[TokenCheck], secret: bytes = SECRET,
          the_spec: PxSecuritySpec | None = None) -> coexist.TokensJudged:
    the_spec = the_spec or spec()
    co = coexist.plan(the_spec, "px", sc)
    assert co.cluster is not None
    keys = coexist.verify_keys_for(the_spec, co.cluster, {"px-shared-secret": {"shared-secret": secret}})
    return coexist.judge_tokens(the_spec, co, checks, keys, NOW)


def test_its_tokens_and_ours_accepted_under_the_storageclusters_issuer() -> None:
    checks = [TokenCheck(n, PORTWORX_OPERATOR, their_token(n)) for n in coexist.OPERATOR_TOKENS]
    checks.append(TokenCheck("px-ci-token", PXSECURITY, their_token("px-admin-token")))
    out = judge(storagecluster(ON), checks)
    assert out.condition is not None and out.condition.status is True, out.condition
    assert out.condition.reason == "Accepted" and "3 token(s)" in out.condition.message
    assert [e["secretName"] for e in out.entries] == ["px-admin-token", "px-user-token"]  # its own only
    assert all(e["mintedBy"] == PORTWORX_OPERATOR and e["accepted"] for e in out.entries)
    assert out.next_check == NOW + dt.timedelta(hours=24)


def test_its_token_under_the_old_issuer_is_a_false_condition_not_silence() -> None:
    checks = [TokenCheck("px-admin-token", PORTWORX_OPERATOR, their_token("px-admin-token", "operator.portworx.io"))]
    out = judge(storagecluster(ON), checks)
    assert out.condition is not None and out.condition.status is False
    assert out.condition.reason == "WouldBeRejected"
    assert "px-admin-token (the Portworx Operator's) would be rejected" in out.condition.message
    assert "not a trusted issuer" in out.condition.message
    assert out.entries[0]["accepted"] is False


def test_our_token_under_an_issuer_the_storagecluster_does_not_name_is_rejected() -> None:
    """apply: false, and the StorageCluster keeps its own issuer: what we mint Portworx would refuse."""
    sc = storagecluster({"enabled": True})  # its defaults: operator.portworx.io, px-shared-secret
    out = judge(sc, [TokenCheck("px-ci-token", PXSECURITY, their_token("px-admin-token"))])
    assert out.condition is not None and out.condition.status is False
    assert "px-ci-token (minted here,) would be rejected" in out.condition.message


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    checks = [TokenCheck("px-user-token", PORTWORX_OPERATOR, their_token("px-user-token", secret=b"o" * 64))]
    out = judge(storagecluster(ON), checks)
    assert out.condition is not None and out.condition.status is False
    assert "signature" in out.condition.message


def test_its_tokens_not_minted_yet_are_named_but_not_a_failure() -> None:
    out = judge(storagecluster(ON), [TokenCheck("px-admin-token", PORTWORX_OPERATOR, None)])
    assert out.condition is not None and out.condition.status is True
    assert "not minted yet: px-admin-token" in out.condition.message
    assert out.entries == [{"secretName": "px-admin-token", "mintedBy": PORTWORX_OPERATOR, "accepted": False,
                            "reason": "not minted yet"}]


def test_nothing_is_judged_without_security_on_or_while_it_is_deleted() -> None:
    checks = [TokenCheck("px-admin-token", PORTWORX_OPERATOR, their_token("px-admin-token"))]
    assert judge(storagecluster({"enabled": False}), checks).condition is None
    assert judge(storagecluster(ON, deleting=True), checks).condition is None


def test_tokens_accepted_is_part_of_ready() -> None:
    bad = conditions.false(conditions.TOKENS_ACCEPTED, "WouldBeRejected", "x")
    ready = conditions.ready([conditions.true(conditions.KEYS_READY, "KeysReady", "ok"), bad])
    assert ready.status is False and ready.reason == "WouldBeRejected"
    info = conditions.false(conditions.KEYS_RETAINED, "NothingToRetain", "y")
    assert conditions.ready([info]).status is True  # informational only
    # A component outside the chain that a step gives as part of Ready (NodesAcknowledged while a rotation
    # waits on the nodes, TenantsReady) counts, after the chain.
    nodes = conditions.false(conditions.NODES_ACKNOWLEDGED, "NotAcknowledged", "2/3")
    assert conditions.ready([conditions.true(conditions.KEYS_READY, "KeysReady", "ok"), nodes]).reason == (
        "NotAcknowledged")
    assert conditions.ready([nodes, bad]).reason == "WouldBeRejected"  # the chain first


def test_a_renamed_system_secret_beside_the_portworx_operator_is_said_to_be_unused() -> None:
    """The CRD rejects it; an object stored before the rule is still told (KeysReady False)."""
    legacy = parse_spec({"storageCluster": {"name": "px-cluster"}, "system": {"secretName": "mine"},
                         "selfSigned": {"sharedSecret": {}}})
    problem = coexist.system_secret_problem(legacy, coexist.plan(legacy, "px", None))
    assert problem is not None and "px-system-secrets" in problem and "mine" in problem
    assert coexist.system_secret_problem(spec(), coexist.plan(spec(), "px", None)) is None
    alone = parse_spec({"system": {"secretName": "mine"}, "selfSigned": {"sharedSecret": {}}})
    assert coexist.system_secret_problem(alone, coexist.plan(alone, "px", None)) is None


@pytest.mark.parametrize("exp", [0, 10**12, 1e30])
def test_a_token_that_never_expires_or_past_the_calendar_has_no_date(exp: float) -> None:
    claims = {"iss": "pxsec.example", "sub": "a", "email": "a", "name": "a", "roles": ["system.admin"],
              "groups": ["*"], "iat": int(NOW.timestamp()) - 600, "exp": exp}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    out = judge(storagecluster(ON), [TokenCheck("px-admin-token", PORTWORX_OPERATOR, token)])
    assert out.condition is not None and out.next_check is None
    assert "expiresAt" not in out.entries[0]


def test_the_public_keys_a_storagecluster_mounts_are_read_from_env_and_volumes() -> None:
    sc = {"spec": {"security": {"enabled": True},
                   "env": [{"name": "PORTWORX_AUTH_JWT_RSA_PUBKEY", "value": "/etc/k/rsa/public.pem"},
                           {"name": "PORTWORX_AUTH_JWT_ECDS_PUBKEY", "value": "/nowhere/ec.pem"}],
                   "volumes": [{"name": "a", "mountPath": "/etc/k/rsa/", "secret": {"secretName": "r"}},
                               {"name": "b", "mountPath": "/etc/k/rs", "secret": {"secretName": "wrong-prefix"}}]}}
    view = coexist.view("px", sc)
    assert view.rsa_key == coexist.MountedKey("/etc/k/rsa/public.pem", "r", "public.pem")
    assert view.ecdsa_key == coexist.MountedKey("/nowhere/ec.pem")  # no volume: no file for Portworx
    assert coexist.mounted_secrets(view) == ["px-shared-secret", "r"]
    projected = {"spec": {"security": {"enabled": True},
                          "env": [{"name": "PORTWORX_AUTH_JWT_RSA_PUBKEY", "value": "/k/public.pem"}],
                          "volumes": [{"mountPath": "/k", "secret": {"secretName": "r", "items": [
                              {"key": "pub", "path": "public.pem"}]}}]}}
    assert coexist.view("px", projected).rsa_key == coexist.MountedKey("/k/public.pem", "r", "pub")
    off = {"spec": {"env": sc["spec"]["env"], "volumes": sc["spec"]["volumes"]}}
    assert coexist.view("px", off).rsa_key is None  # security off: Portworx reads no key
