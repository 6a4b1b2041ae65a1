"""The impact model (pxsec.impact), table-tested: for a planned StorageCluster change, which effects —
a rolling restart (which field, how many pods, the strategy), tokens that would be rejected, keys no
longer trusted — and a stable id for approving exactly that change."""

from __future__ import annotations

from typing import Any

import pytest

from pxsec import impact
from pxsec.impact import KEYS_UNMOUNTED, ROLLING_RESTART, TOKENS_INVALIDATED, TokenVerdict

SECURED: dict[str, Any] = {
    "metadata": {"name": "px-cluster", "resourceVersion": "41"},
    "spec": {"security": {"enabled": True, "auth": {"guestAccess": "Enabled", "selfSigned": {
        "issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}}},
        "env": [{"name": "KEEP", "value": "1"}]},
    "status": {"phase": "Running"},
}
ISSUER = {"metadata": {"resourceVersion": "41"},
          "spec": {"security": {"auth": {"selfSigned": {"issuer": "pxsec.example"}}}}}
VERDICTS = [TokenVerdict("px-ops-token", "PxSecurity", True, False),
            TokenVerdict("px-admin-token", "PortworxOperator", True, False),
            TokenVerdict("ci-token", "", True, False),
            TokenVerdict("px-new-token", "PxSecurity", False, True)]


def types(found: impact.Impact) -> list[str]:
    return [e.type for e in found.effects]


def test_nothing_to_send_is_no_change() -> None:
    found = impact.assess(SECURED, None)
    assert found == impact.Impact("", (), ()) and not found.disruptive


def test_a_new_issuer_restarts_every_pod_and_rejects_the_tokens_signed_under_the_old_one() -> None:
    found = impact.assess(SECURED, ISSUER, storage_nodes=6, tokens=VERDICTS)
    assert types(found) == [ROLLING_RESTART, TOKENS_INVALIDATED]
    restart, tokens = found.effects
    assert restart.message == ("would restart all 6 Portworx pods, rolling, 1 at a time (updateStrategy "
                               "RollingUpdate) (spec.security.auth.selfSigned.issuer: operator.portworx.io → "
                               "pxsec.example)")
    assert tokens.message.startswith("3 token(s) signed under the old issuer would be rejected: ")
    assert "ci-token (made by someone else: it breaks until re-made)" in tokens.message
    assert "px-admin-token (the Portworx Operator's: it re-mints it)" in tokens.message
    assert "px-new-token" not in tokens.message
    assert [f.path for f in found.fields] == ["spec.security.auth.selfSigned.issuer"]


def test_enabling_security_restarts_but_rejects_no_token_that_worked() -> None:
    off = {"metadata": {}, "spec": {}, "status": {"phase": "Running"}}
    patch = {"spec": {"security": {"enabled": True}}}
    found = impact.assess(off, patch, tokens=[TokenVerdict("t", "", False, True)])
    assert types(found) == [ROLLING_RESTART] and "every Portworx pod" in found.effects[0].message


def test_turning_auth_off_rejects_nothing_but_restarts() -> None:
    patch = {"spec": {"security": {"enabled": False}}}
    found = impact.assess(SECURED, patch, tokens=[TokenVerdict("t", "", True, True)])
    assert types(found) == [ROLLING_RESTART]


def test_env_changes_restart_and_show_only_values_that_are_not_secret() -> None:
    patch = {"spec": {"env": [
        {"name": "KEEP", "value": "1"},
        {"name": "PORTWORX_AUTH_OIDC_ISSUER", "value": "https://idp.example"},
        {"name": "PORTWORX_AUTH_SYSTEM_KEY", "value": "plain-secret-somebody-pasted"},
        {"name": "PORTWORX_AUTH_JWT_SHAREDSECRET",
         "valueFrom": {"secretKeyRef": {"name": "px-shared-secret", "key": "shared-secret"}}}]}}
    found = impact.assess(SECURED, patch)
    assert types(found) == [ROLLING_RESTART]
    shown = {f.path: f.after for f in found.fields}
    assert shown == {"spec.env[PORTWORX_AUTH_OIDC_ISSUER]": "https://idp.example",
                     "spec.env[PORTWORX_AUTH_SYSTEM_KEY]": "(a value)",
                     "spec.env[PORTWORX_AUTH_JWT_SHAREDSECRET]": "Secret px-shared-secret/shared-secret"}
    assert "plain-secret" not in found.summary()


def test_env_order_alone_is_no_change() -> None:
    two = {"metadata": {}, "spec": {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}}
    found = impact.assess(two, {"spec": {"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}})
    assert found.effects == () and found.fields == () and found.id  # a write, but nothing that restarts


def test_guest_access_and_lifetime_change_nothing_in_the_running_pods() -> None:
    patch = {"spec": {"security": {"auth": {"guestAccess": "Disabled", "selfSigned": {"tokenLifetime": "12h"}}}}}
    found = impact.assess(SECURED, patch, storage_nodes=3, tokens=VERDICTS)
    assert found.effects == ()
    assert [f.path for f in found.fields] == ["spec.security.auth.guestAccess",
                                              "spec.security.auth.selfSigned.tokenLifetime"]
    assert found.notes == ("spec.security.auth.selfSigned.tokenLifetime: 24h → 12h reaches the Portworx "
                           "Operator's tokens when they expire (it re-mints within 1 minute of expiry, on its "
                           "~30 s pass); ours are re-minted at once",)


def test_a_public_key_no_longer_mounted_is_said() -> None:
    mounted = {"metadata": {}, "status": {"phase": "Degraded"}, "spec": {
        "env": [{"name": "PORTWORX_AUTH_JWT_RSA_PUBKEY", "value": "/etc/pwx/pxsec/rsa/public.pem"}],
        "volumes": [{"name": "pxsec-rsa", "mountPath": "/etc/pwx/pxsec/rsa", "secret": {"secretName": "px-jwt-rsa"}}]}}
    found = impact.assess(mounted, {"spec": {"env": None, "volumes": None}})
    assert types(found) == [ROLLING_RESTART, KEYS_UNMOUNTED]
    assert "PORTWORX_AUTH_JWT_RSA_PUBKEY (/etc/pwx/pxsec/rsa/public.pem)" in found.effects[1].message
    assert {f.path: f.before for f in found.fields}["spec.volumes[pxsec-rsa]"] == \
        "Secret px-jwt-rsa at /etc/pwx/pxsec/rsa"


@pytest.mark.parametrize("strategy, expected", [
    ({"type": "OnDelete"}, "each when its pod is deleted (updateStrategy OnDelete)"),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}, "rolling, 2 at a time"),
    ({"rollingUpdate": {"maxUnavailable": "25%"}}, "rolling, 25% at a time"),
])
def test_the_update_strategy_is_said(strategy: dict[str, Any], expected: str) -> None:
    sc = {**SECURED, "spec": {**SECURED["spec"], "updateStrategy": strategy}}
    assert expected in impact.assess(sc, ISSUER).effects[0].message


def test_the_id_names_the_change_not_the_moment() -> None:
    first = impact.assess(SECURED, ISSUER)
    again = impact.assess({**SECURED, "metadata": {"resourceVersion": "99"}},
                          {**ISSUER, "metadata": {"resourceVersion": "99"}})
    other = impact.assess(SECURED, {"spec": {"security": {"auth": {"selfSigned": {"issuer": "other.example"}}}}})
    assert first.id == again.id == impact.change_id({"spec": ISSUER["spec"]})
    assert len(first.id) == impact.ID_LENGTH and other.id != first.id


@pytest.mark.parametrize("sc, nodes, expected", [
    (None, 0, False),
    ({"status": {}}, 0, False),
    ({"status": {"phase": "Initializing"}}, 0, False),
    ({"status": {"phase": "Running"}}, 0, True),
    ({"status": {"phase": "Degraded"}}, 0, True),
    ({"status": {"phase": "Initializing"}}, 2, True),
])
def test_running_means_portworx_runs(sc: dict[str, Any] | None, nodes: int, expected: bool) -> None:
    assert impact.running(sc, nodes) is expected
