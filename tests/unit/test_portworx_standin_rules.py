"""The pure rules of the Portworx Operator stand-in (tests/support/portworx_standin.py), without an API server:
the security defaults it saves (portworx.go setSecuritySpecDefaults, line 1480 at 303cc37) and the fields whose
change restarts the Portworx pods (update.go matchSelectedFields / isSecurityBounceRequired). The e2e tests in
tests/e2e/test_portworx_standin.py show the same through a real kube-apiserver; these pin the exact rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.portworx_standin import bounce_fields, revision, set_security_defaults

DEFAULT_SELF_SIGNED = {"issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}


def defaulted(spec: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    set_security_defaults(out)
    return out


def test_empty_issuer_and_guest_access_are_defaulted_but_empty_lifetime_and_shared_secret_are_kept() -> None:
    """Upstream tests issuer and guestAccess for nil or "", tokenLifetime and sharedSecret for nil only: a
    "" of those two is a value, kept (and the later steps fail on it)."""
    spec = {"security": {"enabled": True, "auth": {
        "guestAccess": "", "selfSigned": {"issuer": "", "tokenLifetime": "", "sharedSecret": ""}}}}
    assert defaulted(spec)["security"]["auth"] == {
        "guestAccess": "Enabled",
        "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "", "sharedSecret": ""},
    }


@pytest.mark.parametrize("field", ["tokenLifetime", "sharedSecret"])
def test_an_absent_or_null_lifetime_or_shared_secret_gets_its_default(field: str) -> None:
    for self_signed in ({"issuer": "x.example"}, {"issuer": "x.example", field: None}):
        auth = defaulted({"security": {"enabled": True, "auth": {"selfSigned": self_signed}}})["security"]["auth"]
        assert auth["selfSigned"][field] == DEFAULT_SELF_SIGNED[field]
        assert auth["guestAccess"] == "Enabled"


def test_an_empty_issuer_takes_the_env_issuer() -> None:
    spec = {"env": [{"name": "PORTWORX_AUTH_JWT_ISSUER", "value": "env.example"}],
            "security": {"enabled": True, "auth": {"selfSigned": {"issuer": "", "tokenLifetime": "1h"}}}}
    assert defaulted(spec)["security"]["auth"]["selfSigned"] == {
        "issuer": "env.example", "tokenLifetime": "1h", "sharedSecret": "px-shared-secret"}


@pytest.mark.parametrize("auth", [None, {}, {"selfSigned": {}}, {"selfSigned": {"issuer": None}}])
def test_no_or_an_empty_auth_or_self_signed_block_becomes_the_default_block(auth: dict[str, Any] | None) -> None:
    security: dict[str, Any] = {"enabled": True}
    if auth is not None:
        security["auth"] = auth
    assert defaulted({"security": security})["security"]["auth"] == {
        "guestAccess": "Enabled", "selfSigned": DEFAULT_SELF_SIGNED}


@pytest.mark.parametrize("security", [{"enabled": False}, {"enabled": True, "auth": {"enabled": False}}])
def test_no_defaults_with_auth_off(security: dict[str, Any]) -> None:
    assert defaulted({"security": security}) == {"security": security}


# -- what restarts the Portworx pods (update.go) ----------------------------------------------------------


def running_spec() -> dict[str, Any]:
    return {"image": "portworx/oci-monitor:3.2.0",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "volumes": [{"name": "v", "mountPath": "/v", "secret": {"secretName": "s"}}],
            "security": {"enabled": True, "auth": {"guestAccess": "Enabled", "selfSigned": dict(DEFAULT_SELF_SIGNED)}}}


@pytest.mark.parametrize(("change", "fields"), [
    (lambda s: s["security"]["auth"]["selfSigned"].update(issuer="new.example"),
     ["security.auth.selfSigned.issuer"]),
    (lambda s: s["security"]["auth"]["selfSigned"].update(sharedSecret="other"),
     ["security.auth.selfSigned.sharedSecret"]),
    (lambda s: s["security"].update(enabled=False),
     ["security.enabled (auth)", "security.auth.selfSigned.issuer", "security.auth.selfSigned.sharedSecret"]),
    (lambda s: s["security"].update(tls={"enabled": True}), ["security.tls.enabled", "security.tls"]),
    (lambda s: s["env"].append({"name": "C", "value": "3"}), ["env"]),
    (lambda s: s["env"][0].update(value="changed"), ["env"]),
    (lambda s: s["volumes"].clear(), ["volumes"]),
    (lambda s: s.update(image="portworx/oci-monitor:3.3.0"), ["image"]),
    # No restart: a token lifetime, guest access, an env reorder, a field outside the security model.
    (lambda s: s["security"]["auth"]["selfSigned"].update(tokenLifetime="1h"), []),
    (lambda s: s["security"]["auth"].update(guestAccess="Disabled"), []),
    (lambda s: s["env"].reverse(), []),
    (lambda s: s.update(imagePullPolicy="IfNotPresent"), []),
], ids=["issuer", "shared-secret-name", "auth-off", "tls-on", "env-added", "env-value", "volumes", "image",
        "token-lifetime", "guest-access", "env-reorder", "pull-policy"])
def test_bounce_fields(change: Any, fields: list[str]) -> None:
    running = revision(running_spec())
    spec = running_spec()
    change(spec)
    assert bounce_fields(running, spec) == fields
