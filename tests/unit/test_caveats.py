"""What a PxSecurity asks for that Portworx will not give as written (pxsec.caveats): the minimum token
lifetime beside a StorageCluster follows from the Portworx Operator's buffer and pass and our renewal, and
the words name what Portworx will really trust."""

from __future__ import annotations

from typing import Any

import pytest

from pxsec import caveats, tokens
from pxsec.spec import parse_spec

OIDC = {"issuer": "https://accounts.example.com", "clientID": "portworx"}


def spec(**fields: Any) -> Any:
    return parse_spec(fields)


def test_the_minimum_is_where_its_rewrites_are_no_more_frequent_than_our_renewals() -> None:
    minimum = caveats.MIN_LIFETIME_WITH_STORAGECLUSTER
    assert (minimum, caveats.MIN_LIFETIME_TEXT) == (180, "3m")
    # its rewrite period (lifetime - buffer) against our renewal period (2/3 of the lifetime)
    assert minimum - caveats.PORTWORX_OPERATOR_BUFFER >= minimum * tokens.RENEW_FRACTION
    below = minimum - 1
    assert below - caveats.PORTWORX_OPERATOR_BUFFER < below * tokens.RENEW_FRACTION
    # and its tokens live through several of its passes between rewrites
    assert (minimum - caveats.PORTWORX_OPERATOR_BUFFER) // caveats.PORTWORX_OPERATOR_PASS == 4


@pytest.mark.parametrize(("text", "seconds", "short"), [
    ("179s", 179, True), ("180s", 180, False), ("2m", 120, True), ("3m", 180, False), ("1h", 3600, False),
    ("1h30m", None, False), ("", None, False), ("m", None, False), ("٣m", None, False),
])
def test_lifetimes_are_read_as_the_crd_reads_them(text: str, seconds: int | None, short: bool) -> None:
    assert caveats.lifetime_seconds(text) == seconds
    assert caveats.short_lifetime(text) is short


def test_oidc_with_a_storagecluster_is_said_to_trust_the_shared_secret_too() -> None:
    said = caveats.caveats(spec(oidc=OIDC, storageCluster={"name": "px-cluster"}))
    assert len(said) == 1 and said[0].startswith("not OIDC-only")
    assert "by default operator.portworx.io, with the shared secret in Secret px-shared-secret" in said[0]
    known = caveats.caveats(spec(oidc=OIDC, storageCluster={"name": "px"}), "corp.example", "corp-shared")
    assert "(corp.example) with the shared secret in Secret corp-shared" in known[0]


@pytest.mark.parametrize("fields", [
    {"oidc": OIDC},  # a DaemonSet or px-runc install: OIDC-only is real
    {"oidc": OIDC, "selfSigned": {"sharedSecret": {}}, "storageCluster": {}},  # both asked for
    {"selfSigned": {"sharedSecret": {}, "tokenLifetime": "30s"}},  # short, but no StorageCluster
    {"selfSigned": {"sharedSecret": {}, "tokenLifetime": "3m"}, "storageCluster": {}},
])
def test_nothing_to_say(fields: dict[str, Any]) -> None:
    assert caveats.caveats(spec(**fields)) == []


def test_a_short_lifetime_stored_before_the_rule_is_said() -> None:
    said = caveats.caveats(spec(selfSigned={"sharedSecret": {}, "tokenLifetime": "90s"}, storageCluster={}))
    assert said == [caveats.SHORT_LIFETIME.format(lifetime="90s", minimum="3m")]
