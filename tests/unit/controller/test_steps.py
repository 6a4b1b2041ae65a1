"""The reconcile steps against an in-memory API (tests/support/fakegateway.py), cert-manager style: given these
objects, exactly these writes. The promises of the README — no write when nothing changed, a lost Secret
is regenerated loudly with a new revision, a conflict is retried with a fresh read and what exists wins,
a Secret you brought is adopted untouched, a value changed by hand is respected — checked in
milliseconds; tests/e2e proves the same against the real API server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt

from pxsec import coexist, keyplan
from pxsec.controller.steps import Context
from pxsec.controller.steps.apply import StorageClusterSync
from pxsec.controller.steps.keys import KeySync
from pxsec.controller.steps.parameters import ParameterSync
from pxsec.controller.steps.storagecluster import Seen
from pxsec.controller.steps.tokens import TokenSync
from pxsec.spec import parse_spec
from tests.support.fakegateway import FakeGateway

NS = "portworx"
NOW = dt.datetime(2030, 5, 17, 12, 0, 0, tzinfo=dt.UTC)
SPEC: dict[str, Any] = {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                                       "ecdsa": {"secretName": "px-jwt-ecdsa"}},
                        "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"]}]}


def cr(spec: dict[str, Any] = SPEC, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity",
            "metadata": {"name": "px", "namespace": NS, "uid": "uid-1", "generation": 1, **meta},
            "spec": spec, "status": status or {}}


def keys_status(gw: FakeGateway, obj: dict[str, Any]) -> dict[str, Any]:
    """Run KeySync and return the status it would write (as the reconciler would store it)."""
    out = KeySync(gw).sync(obj, parse_spec(obj["spec"]))
    assert out.condition is not None
    return {"secrets": out.entries, "conditions": [{"type": out.condition.type, "reason": out.condition.reason,
                                                    "observedGeneration": 1, "message": out.condition.message}],
            "events": [(e.type, e.reason) for e in out.events]}


# -- keys --------------------------------------------------------------------------------------------

def test_a_fresh_object_creates_each_secret_once_then_writes_nothing() -> None:
    gw = FakeGateway()
    first = keys_status(gw, cr())
    # One write per Secret: created with our markers, nothing to apply (no template, deletionPolicy Retain),
    # and one read each (to find it missing), none after our own create. (Written at once: in any order.)
    assert sorted(gw.writes) == [("create", "Secret", n) for n in ("px-jwt-ecdsa", "px-shared-secret",
                                                                   "px-system-secrets")]
    assert sorted(gw.reads) == [("get", "Secret", n) for n in ("px-jwt-ecdsa", "px-shared-secret",
                                                               "px-system-secrets")]
    assert [e for e in first["events"]] == [("Normal", "SecretGenerated")] * 3
    assert {s["origin"] for s in first["secrets"]} == {"Generated"}
    gw.clear_writes()
    second = keys_status(gw, cr(status={"secrets": first["secrets"]}))
    assert gw.writes == [] and second["events"] == [] and second["secrets"] == first["secrets"]


def test_a_create_race_adopts_what_the_other_writer_made() -> None:
    gw = FakeGateway()
    theirs = b"t" * 64
    gw.races[("create", "Secret", "px-shared-secret")] = lambda g: g.put_secret(NS, "px-shared-secret",
                                                                               {"shared-secret": theirs})
    status = keys_status(gw, cr())
    assert gw.data(NS, "px-shared-secret") == {"shared-secret": theirs}  # never overwritten
    entry = next(s for s in status["secrets"] if s["name"] == "px-shared-secret")
    assert entry["origin"] == "Adopted" and ("apply", "Secret", "px-shared-secret") not in gw.writes


def test_a_lost_secret_is_regenerated_loudly_with_a_new_revision() -> None:
    gw = FakeGateway()
    first = keys_status(gw, cr())
    old = gw.data(NS, "px-shared-secret")
    gw.delete("Secret", NS, "px-shared-secret")
    gw.clear_writes()
    after = keys_status(gw, cr(status={"secrets": first["secrets"]}))
    assert gw.writes == [("create", "Secret", "px-shared-secret")]
    assert gw.data(NS, "px-shared-secret") != old
    assert after["events"] == [("Warning", "SecretLost")]
    assert after["conditions"][0]["reason"] == "SecretRegenerated"
    assert next(s for s in after["secrets"] if s["name"] == "px-shared-secret")["revision"] == 2


def test_a_secret_you_brought_is_adopted_untouched() -> None:
    gw = FakeGateway()
    gw.put_secret(NS, "px-shared-secret", {"shared-secret": b"u" * 64}, labels={"mine": "yes"})
    status = keys_status(gw, cr())
    assert ("create", "Secret", "px-shared-secret") not in gw.writes
    assert not [w for w in gw.writes if w[2] == "px-shared-secret"]
    assert next(s for s in status["secrets"] if s["name"] == "px-shared-secret")["origin"] == "Adopted"


def test_a_missing_key_is_added_with_a_guarded_write_and_a_race_reread() -> None:
    gw = FakeGateway()
    gw.put_secret(NS, "px-system-secrets", {"system-secret": b"s" * 64})
    # Someone adds the key between our read and our write: our guarded patch fails, we read again, theirs wins.
    gw.races[("patch", "Secret", "px-system-secrets")] = lambda g: g.put_secret(
        NS, "px-system-secrets", {"system-secret": b"s" * 64, "apps-secret": b"a" * 64})
    keys_status(gw, cr())
    assert gw.data(NS, "px-system-secrets") == {"system-secret": b"s" * 64, "apps-secret": b"a" * 64}
    assert ("patch", "Secret", "px-system-secrets") not in gw.writes


def test_a_value_changed_by_hand_is_respected_and_said() -> None:
    gw = FakeGateway()
    first = keys_status(gw, cr())
    gw.put_secret(NS, "px-shared-secret", {"shared-secret": b"h" * 64},
                  labels=gw.secret(NS, "px-shared-secret")["metadata"]["labels"],  # type: ignore[index]
                  annotations=gw.secret(NS, "px-shared-secret")["metadata"]["annotations"])  # type: ignore[index]
    gw.clear_writes()
    after = keys_status(gw, cr(status={"secrets": first["secrets"]}))
    assert gw.data(NS, "px-shared-secret") == {"shared-secret": b"h" * 64}
    assert after["events"] == [("Warning", "SecretChanged")]
    assert next(s for s in after["secrets"] if s["name"] == "px-shared-secret")["revision"] == 2


def test_template_changes_are_applied_and_removed() -> None:
    gw = FakeGateway()
    with_label = {**SPEC, "secretTemplate": {"labels": {"team": "storage"}}}
    keys_status(gw, cr(with_label))
    assert gw.secret(NS, "px-jwt-ecdsa")["metadata"]["labels"]["team"] == "storage"  # type: ignore[index]
    gw.clear_writes()
    keys_status(gw, cr(SPEC))
    assert "team" not in gw.secret(NS, "px-jwt-ecdsa")["metadata"]["labels"]  # type: ignore[index]
    assert sorted(gw.writes) == [("apply", "Secret", n) for n in ("px-jwt-ecdsa", "px-shared-secret",
                                                                   "px-system-secrets")]


def test_beside_the_portworx_operator_shared_secrets_get_its_shape_and_no_metadata_writes() -> None:
    gw = FakeGateway()
    spec = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True}}
    co = coexist.plan(parse_spec(spec), "px", None)
    KeySync(gw).sync(cr(spec), parse_spec(spec), co)
    for name in ("px-system-secrets", "px-shared-secret"):
        meta = gw.secret(NS, name)["metadata"]  # type: ignore[index]
        assert meta["annotations"] == dict(coexist.SHARED_ANNOTATIONS) and meta["labels"] == {}
        assert ("apply", "Secret", name) not in gw.writes
    assert ("apply", "Secret", "px-jwt-ecdsa") not in gw.writes  # nothing to apply there either


def test_delete_policy_owner_references_are_applied_and_removed_again() -> None:
    gw = FakeGateway()
    keys_status(gw, cr({**SPEC, "deletionPolicy": "Delete"}))
    assert sorted(w for w in gw.writes if w[0] == "apply") == [
        ("apply", "Secret", n) for n in ("px-jwt-ecdsa", "px-shared-secret", "px-system-secrets")]
    assert gw.secret(NS, "px-jwt-ecdsa")["metadata"]["ownerReferences"][0]["uid"] == "uid-1"  # type: ignore[index]
    gw.clear_writes()
    keys_status(gw, cr({**SPEC, "deletionPolicy": "Delete"}))
    assert gw.writes == []
    keys_status(gw, cr(SPEC))  # back to Retain: the owner references go
    assert gw.secret(NS, "px-jwt-ecdsa")["metadata"]["ownerReferences"] == []  # type: ignore[index]
    gw.clear_writes()
    keys_status(gw, cr(SPEC))
    assert gw.writes == []


def test_an_uninstall_is_waited_out_and_the_values_restored() -> None:
    gw = FakeGateway()
    spec = {**SPEC, "storageCluster": {"name": "px-cluster"}}
    parsed = parse_spec(spec)
    sc = {"metadata": {"name": "px-cluster"}, "spec": {"security": {"enabled": True},
                                                       "deleteStrategy": {"type": "Uninstall"}}}
    first = KeySync(gw).sync(cr(spec), parsed, coexist.plan(parsed, "px", sc))
    status = {"secrets": first.entries}
    assert gw.secret(NS, coexist.retained_secret_name("px")) is not None
    values = {n: gw.data(NS, n) for n in ("px-system-secrets", "px-shared-secret")}
    for name in values:
        gw.delete("Secret", NS, name)  # its uninstall
    gw.clear_writes()
    going = {**sc, "metadata": {"name": "px-cluster", "deletionTimestamp": "2030-05-17T12:00:00Z"}}
    during = KeySync(gw).sync(cr(spec, status), parsed, coexist.plan(parsed, "px", going))
    assert gw.writes == [] and during.condition is not None and during.condition.status is True
    assert during.data["px-shared-secret"] == values["px-shared-secret"]  # tokens keep their key
    after = KeySync(gw).sync(cr(spec, status), parsed, coexist.plan(parsed, "px", None))
    assert sorted(gw.writes) == [("create", "Secret", "px-shared-secret"), ("create", "Secret", "px-system-secrets")]
    assert {n: gw.data(NS, n) for n in values} == values
    assert [e.reason for e in after.events] == ["SecretRestored", "SecretRestored"]
    assert {s["revision"] for s in after.entries} == {1}


# -- tokens ------------------------------------------------------------------------------------------

def mint(gw: FakeGateway, obj: dict[str, Any], now: dt.datetime = NOW) -> Any:
    spec = parse_spec(obj["spec"])
    keys = KeySync(gw).sync(obj, spec)
    gw.clear_writes()
    return TokenSync(gw).sync(obj, spec, keys.data, now)


def test_a_token_is_minted_once_and_kept_until_its_renewal() -> None:
    gw = FakeGateway()
    out = mint(gw, cr())
    assert gw.writes == [("create", "Secret", "px-ops-token")]  # markers and owner reference in the create
    assert gw.secret(NS, "px-ops-token")["metadata"]["ownerReferences"][0]["controller"] is False  # type: ignore[index]
    assert [e.reason for e in out.events] == ["TokenMinted"]
    token = gw.data(NS, "px-ops-token")["auth-token"].decode()
    claims = jwt.decode(token, gw.data(NS, "px-shared-secret")["shared-secret"], algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})
    assert claims["sub"] == "px-ops-token@operator.portworx.io"
    later = mint(gw, cr(), NOW + dt.timedelta(hours=1))
    assert gw.writes == [] and later.events == []
    renewed = mint(gw, cr(), NOW + dt.timedelta(hours=17))
    assert gw.writes == [("patch", "Secret", "px-ops-token")]
    assert "(expiring)" in renewed.events[0].message


def test_a_token_update_race_is_retried_with_a_fresh_read() -> None:
    gw = FakeGateway()
    mint(gw, cr())
    bumped = cr({**SPEC, "selfSigned": {**SPEC["selfSigned"], "issuer": "pxsec.example"}})

    def touch(g: FakeGateway) -> None:
        obj = g.secret(NS, "px-ops-token")
        assert obj is not None
        g.put("Secret", NS, "px-ops-token", obj)  # someone else's write: a new resourceVersion

    gw.races[("patch", "Secret", "px-ops-token")] = touch
    mint(gw, bumped)
    assert gw.writes.count(("patch", "Secret", "px-ops-token")) == 1
    token = gw.data(NS, "px-ops-token")["auth-token"].decode()
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "pxsec.example"


def test_the_portworx_operators_tokens_are_never_written() -> None:
    gw = FakeGateway()
    spec = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True},
            "tokens": [{"secretName": "px-admin-token", "roles": ["system.admin"]},
                       {"secretName": "px-ci-token", "roles": ["system.user"]}]}
    parsed = parse_spec(spec)
    co = coexist.plan(parsed, "px", None)
    keys = KeySync(gw).sync(cr(spec), parsed, co)
    gw.clear_writes()
    out = TokenSync(gw).sync(cr(spec), parsed, keys.data, NOW, co)
    assert [w[2] for w in gw.writes] == ["px-ci-token"]
    assert out.condition is not None and "px-admin-token listed in spec.tokens" in out.condition.message
    assert [e.reason for e in out.events] == ["TokenMinted", "TokenLeftToPortworxOperator"]


# -- parameters --------------------------------------------------------------------------------------

def test_the_configmap_is_written_only_when_the_rendering_changes() -> None:
    gw = FakeGateway()
    ParameterSync(gw).sync(cr(), parse_spec(SPEC))
    assert gw.writes == [("create", "ConfigMap", "px-px-security")]
    gw.clear_writes()
    ParameterSync(gw).sync(cr(), parse_spec(SPEC))
    assert gw.writes == []
    ParameterSync(gw).sync(cr(), parse_spec({**SPEC, "usernameClaim": "email"}))
    assert gw.writes == [("patch", "ConfigMap", "px-px-security")]


def test_a_configmap_of_an_earlier_pxsecurity_of_that_name_is_adopted() -> None:
    """Deleted and applied again, the PxSecurity has a new uid: the ConfigMap is taken over (else the garbage
    collector deletes it for the old owner's sake), with its data unchanged and anyone else's reference kept."""
    gw = FakeGateway()
    ParameterSync(gw).sync(cr(), parse_spec(SPEC))
    stored = gw.objects[("ConfigMap", NS, "px-px-security")]
    data = dict(stored["data"])
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "elsewhere", "uid": "uid-x"}
    stored["metadata"]["ownerReferences"].append(other)
    gw.clear_writes()
    ParameterSync(gw).sync(cr(uid="uid-2"), parse_spec(SPEC))
    assert gw.writes == [("patch", "ConfigMap", "px-px-security")]
    refs = gw.objects[("ConfigMap", NS, "px-px-security")]["metadata"]["ownerReferences"]
    assert [(r["name"], r["uid"]) for r in refs] == [("elsewhere", "uid-x"), ("px", "uid-2")]
    assert gw.objects[("ConfigMap", NS, "px-px-security")]["data"] == data
    gw.clear_writes()
    ParameterSync(gw).sync(cr(uid="uid-2"), parse_spec(SPEC))
    assert gw.writes == []


def test_a_storagecluster_race_is_merged_again_from_a_fresh_read() -> None:
    gw = FakeGateway()
    gw.put("StorageCluster", NS, "px-cluster", {"spec": {"env": [{"name": "USER", "value": "1"}]}})
    spec = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True}}

    def user_edit(g: FakeGateway) -> None:
        obj = g.read_storagecluster(NS, "px-cluster")
        assert obj is not None
        obj["spec"]["env"].append({"name": "LATER", "value": "2"})
        g.put("StorageCluster", NS, "px-cluster", obj)

    gw.races[("patch", "StorageCluster", "px-cluster")] = user_edit
    parsed = parse_spec(spec)

    def apply() -> Any:
        body = gw.read_storagecluster(NS, "px-cluster")
        seen = Seen(body, coexist.plan(parsed, "px", body))
        return StorageClusterSync(gw).run(Context(cr(spec), parsed, NOW, {"storagecluster": seen, "keys": {},
                                                                          "tokens": {}}))

    out = apply()
    assert [c.reason for c in out.conditions] == ["Applied"]
    sc = gw.read_storagecluster(NS, "px-cluster")
    assert sc is not None
    names = [e["name"] for e in sc["spec"]["env"]]
    assert names[:2] == ["USER", "LATER"] and "PORTWORX_AUTH_USERNAME_CLAIM" in names
    assert gw.writes.count(("patch", "StorageCluster", "px-cluster")) == 1
    gw.clear_writes()
    apply()
    assert gw.writes == []


def test_requirements_are_stable() -> None:
    assert [r.name for r in keyplan.requirements(parse_spec(SPEC))] == [
        "px-system-secrets", "px-shared-secret", "px-jwt-ecdsa"]


# -- the Portworx Operator's tokens, and the OIDC step without a network ------------------------------

def test_portworx_tokens_are_read_and_judged_never_written() -> None:
    from pxsec.controller.steps.tokensaccepted import TokensAcceptedCheck

    gw = FakeGateway()
    spec = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True}}
    parsed = parse_spec(spec)
    sc = {"metadata": {"name": "px-cluster"}, "spec": {"security": {"enabled": True, "auth": {"selfSigned": {
        "issuer": "operator.portworx.io", "sharedSecret": "px-shared-secret"}}}}}
    co = coexist.plan(parsed, "px", sc)
    keys = KeySync(gw).sync(cr(spec), parsed, co)
    secret = gw.data(NS, "px-shared-secret")["shared-secret"]
    iat = int(NOW.timestamp()) - 600
    for name, (roles, groups) in coexist.OPERATOR_TOKENS.items():
        claims = {"iss": "operator.portworx.io", "sub": f"{name}@x", "email": f"{name}@x", "name": name,
                  "roles": list(roles), "groups": list(groups), "iat": iat, "exp": iat + 86400}
        gw.put_secret(NS, name, {"auth-token": jwt.encode(claims, secret, algorithm="HS256").encode()})
    gw.clear_writes()
    ctx = Context(cr(spec), parsed, NOW, {"storagecluster": Seen(sc, co), "keys": keys.data, "tokens": {}})
    judged = TokensAcceptedCheck(gw).run(ctx)
    assert gw.writes == []
    assert [c.reason for c in judged.conditions] == ["Accepted"]
    assert sorted((e["secretName"], e["accepted"]) for e in judged.status["tokens"]) == [
        ("px-admin-token", True), ("px-user-token", True)]


def test_the_oidc_step_reports_a_missing_ca_without_touching_the_network() -> None:
    from pxsec.controller.steps.oidc import OIDCCheck

    class NoNetwork:
        def probe(self, *args: Any) -> Any:
            raise AssertionError("no probe without the CA bundle")

        def next_probe(self, *args: Any) -> Any:
            raise AssertionError("no probe without the CA bundle")

    gw = FakeGateway()
    spec = {"oidc": {"issuer": "https://idp.example", "clientID": "px",
                     "certificateAuthority": {"configMapRef": {"name": "oidc-ca"}}}}
    out = OIDCCheck(gw, prober=NoNetwork()).check(cr(spec), parse_spec(spec), NOW)  # type: ignore[arg-type]
    assert out.condition is not None and out.condition.status is False and "oidc-ca" in out.condition.message
    assert out.next_probe is None and gw.writes == []


def test_oidc_only_beside_a_storagecluster_is_a_warning_said_once() -> None:
    from pxsec.controller.steps.storagecluster import StorageClusterCheck

    gw = FakeGateway()
    spec = {"oidc": {"issuer": "https://idp.example.com", "clientID": "px"}, "storageCluster": {"name": "px-cluster"}}
    gw.objects[("StorageCluster", NS, "px-cluster")] = {
        "metadata": {"name": "px-cluster"}, "spec": {"security": {"enabled": True, "auth": {"selfSigned": {
            "issuer": "corp.example", "sharedSecret": "corp-shared"}}}}}
    first = StorageClusterCheck(gw).run(Context(cr(spec), parse_spec(spec), NOW))
    warnings = first.status["warnings"]
    assert len(warnings) == 1 and "issuer (corp.example) with the shared secret in Secret corp-shared" in warnings[0]
    assert [(e.type, e.reason, e.message) for e in first.events] == [("Warning", "SpecCaveat", warnings[0])]
    again = StorageClusterCheck(gw).run(Context(cr(spec, status={"warnings": warnings}), parse_spec(spec), NOW))
    assert again.status["warnings"] == warnings and again.events == []
    both = {**spec, "selfSigned": {"sharedSecret": {}}}
    assert StorageClusterCheck(gw).run(Context(cr(both), parse_spec(both), NOW)).status["warnings"] is None
    assert gw.writes == []
