"""Minting and the refresh policy (pxsec.tokens).

Every minted token is checked with jwcrypto, a JOSE implementation independent of the pyjwt the
code signs with, holding only what Portworx holds: the public key, or the shared secret's ASCII bytes.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws
from jwcrypto import jwt as jw

from pxsec import keymaterial, tokens
from pxsec.spec import PxSecuritySpec, TokenSpec, parse_spec
from pxsec.verify import verify

UTC = datetime.UTC
NOW = datetime.datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
ISSUER = "operator.portworx.io"


def make_spec(*, shared: bool = True, rsa: bool = True, ecdsa: str | None = "P-256", lifetime: str = "24h",
              issuer: str = ISSUER, tokens_: list[dict[str, Any]] | None = None) -> PxSecuritySpec:
    self_signed: dict[str, Any] = {"issuer": issuer, "tokenLifetime": lifetime}
    if shared:
        self_signed["sharedSecret"] = {}
    if rsa:
        self_signed["rsa"] = {"secretName": "px-jwt-rsa"}
    if ecdsa:
        self_signed["ecdsa"] = {"secretName": "px-jwt-ecdsa", "curve": ecdsa}
    return parse_spec({
        "selfSigned": self_signed,
        "tokens": tokens_ if tokens_ is not None else [
            {"secretName": "px-admin-token", "roles": ["system.admin"], "groups": ["*"]},
            {"secretName": "px-user-token", "roles": ["system.user"]},
        ],
    })


def ring_of(secret: bytes | None, rsa_pair: tuple[bytes, bytes] | None,
            ec_pair: tuple[bytes, bytes] | None) -> tokens.KeyRing:
    return tokens.KeyRing(
        shared_secret=secret,
        rsa_private_pem=rsa_pair[0] if rsa_pair else None,
        ecdsa_private_pem=ec_pair[0] if ec_pair else None,
    )


def jwcrypto_claims(token: str, key: jwk.JWK, alg: str) -> dict[str, Any]:
    """Verify with jwcrypto (signature only: the fixed test clock is years ahead) and return the claims."""
    signed = jws.JWS()
    signed.deserialize(token)
    signed.verify(key, alg=alg)
    claims: dict[str, Any] = json.loads(signed.payload)
    return claims


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


def oct_key(material: bytes) -> jwk.JWK:
    return jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(material).rstrip(b"=").decode("ascii"))


# -- lifetimes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("24h", 86400), ("7d", 7 * 86400), ("1y", 365 * 86400), ("12h", 43200),
])
def test_parse_lifetime_accepts_one_number_and_one_unit(text: str, seconds: int) -> None:
    assert tokens.parse_lifetime(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["1h30m", "0h", "h", "24", "-1h", "1.5h", "01h", " 1h", "1h\n", "1w", "1H",
                                  "\u0661h", "", "101y"])
def test_parse_lifetime_rejects_everything_else_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid lifetime"):
        tokens.parse_lifetime(text)


def test_parse_lifetime_message_names_the_units() -> None:
    with pytest.raises(ValueError, match=r"s, m, h, d or y"):
        tokens.parse_lifetime("1h30m")


# -- claims -----------------------------------------------------------------------------------------------


def test_claims_are_exactly_what_openstorage_requires() -> None:
    token = TokenSpec(secret_name="px-admin-token", roles=("system.admin",), groups=("*",))
    now = NOW + datetime.timedelta(microseconds=900_000)  # fractions of a second are dropped, not rounded
    body = tokens.claims(token, ISSUER, now, datetime.timedelta(hours=24))
    issued = int(NOW.timestamp())
    assert body == {
        "iss": ISSUER,
        "sub": "px-admin-token@operator.portworx.io",
        "email": "px-admin-token@operator.portworx.io",
        "name": "px-admin-token",
        "roles": ["system.admin"],
        "groups": ["*"],
        "iat": issued - 600,
        "exp": issued + 86400,
    }


def test_claims_always_carry_groups_even_when_empty() -> None:
    body = tokens.claims(TokenSpec("px-user-token", ("system.user",)), ISSUER, NOW, datetime.timedelta(hours=1))
    assert body["groups"] == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        tokens.claims(TokenSpec("t", ("r",)), ISSUER, datetime.datetime(2030, 1, 1), datetime.timedelta(hours=1))


# -- choosing the key ---------------------------------------------------------------------------------------


def test_default_signing_key_prefers_shared_secret_then_rsa_then_ecdsa(
        secret: bytes, rsa_pair: tuple[bytes, bytes], ec_pairs: dict[str, tuple[bytes, bytes]]) -> None:
    token = TokenSpec("t", ("system.user",))
    spec = make_spec()
    assert tokens.choose_signing_key(token, spec, ring_of(secret, rsa_pair, ec_pairs["P-256"])) == "SharedSecret"
    full = ring_of(secret, rsa_pair, ec_pairs["P-256"])
    assert tokens.choose_signing_key(token, make_spec(shared=False), full) == "RSA"
    assert tokens.choose_signing_key(token, make_spec(shared=False, rsa=False), full) == "ECDSA"


def test_default_skips_a_configured_key_without_private_material(
        rsa_pair: tuple[bytes, bytes], ec_pairs: dict[str, tuple[bytes, bytes]]) -> None:
    # An adopted verification-only RSA Secret (public.pem alone) cannot sign: ECDSA can.
    spec = make_spec(shared=False)
    assert tokens.choose_signing_key(TokenSpec("t", ("r",)), spec, ring_of(None, None, ec_pairs["P-256"])) == "ECDSA"


def test_explicit_signing_key_is_honoured_or_nothing(
        secret: bytes, rsa_pair: tuple[bytes, bytes], ec_pairs: dict[str, tuple[bytes, bytes]]) -> None:
    spec = make_spec()
    full = ring_of(secret, rsa_pair, ec_pairs["P-256"])
    assert tokens.choose_signing_key(TokenSpec("t", ("r",), signing_key="ECDSA"), spec, full) == "ECDSA"
    assert tokens.choose_signing_key(TokenSpec("t", ("r",), signing_key="RSA"), spec, full) == "RSA"
    # Asked for RSA, RSA has no private key: no silent fallback to the shared secret.
    assert tokens.choose_signing_key(TokenSpec("t", ("r",), signing_key="RSA"), spec,
                                     ring_of(secret, None, None)) is None
    # Asked for a key the spec does not configure.
    assert tokens.choose_signing_key(TokenSpec("t", ("r",), signing_key="ECDSA"), make_spec(ecdsa=None), full) is None


def test_no_self_signed_means_nothing_to_sign_with(secret: bytes) -> None:
    spec = parse_spec({"oidc": {"issuer": "https://id.example.com", "clientID": "px"}})
    token = TokenSpec("t", ("r",))
    assert tokens.choose_signing_key(token, spec, tokens.KeyRing(shared_secret=secret)) is None
    with pytest.raises(tokens.NoSigningKey, match=r"spec\.selfSigned"):
        tokens.mint(token, spec, tokens.KeyRing(shared_secret=secret), NOW)


def test_mint_without_a_key_raises_and_never_quotes_a_key(secret: bytes) -> None:
    spec = make_spec(shared=False)
    with pytest.raises(tokens.NoSigningKey, match="px-admin-token") as info:
        tokens.mint(spec.tokens[0], spec, tokens.KeyRing(shared_secret=secret), NOW)
    assert secret.decode() not in str(info.value)


def test_an_unusable_private_key_is_a_signing_error_without_the_key() -> None:
    garbage = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    spec = make_spec(shared=False)
    with pytest.raises(tokens.SigningError) as info:
        tokens.mint(spec.tokens[0], spec, tokens.KeyRing(rsa_private_pem=garbage), NOW)
    assert "bm90IGEga2V5" not in str(info.value)


# -- minting, checked by jwcrypto -----------------------------------------------------------------------------


def test_hs256_token_verifies_with_the_ascii_bytes_of_the_shared_secret(secret: bytes) -> None:
    spec = make_spec()
    minted = tokens.mint(spec.tokens[0], spec, tokens.KeyRing(shared_secret=secret), NOW)
    assert (minted.signing_key, minted.algorithm, header_of(minted.token)["alg"]) == ("SharedSecret", "HS256", "HS256")
    claims = jwcrypto_claims(minted.token, oct_key(secret), "HS256")
    assert claims["sub"] == "px-admin-token@operator.portworx.io"
    assert claims["roles"] == ["system.admin"] and claims["groups"] == ["*"]
    # Not the base64 decoding of the secret: that is the classic mistake Portworx does not make.
    with pytest.raises(jws.InvalidJWSSignature):
        jwcrypto_claims(minted.token, oct_key(base64.b64decode(secret)), "HS256")


def test_rs256_token_verifies_with_the_public_key_only(secret: bytes, rsa_pair: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False)
    minted = tokens.mint(spec.tokens[1], spec, tokens.KeyRing(rsa_private_pem=rsa_pair[0]), NOW)
    assert minted.algorithm == "RS256" and header_of(minted.token)["alg"] == "RS256"
    claims = jwcrypto_claims(minted.token, jwk.JWK.from_pem(rsa_pair[1]), "RS256")
    assert claims["name"] == "px-user-token" and claims["roles"] == ["system.user"]


@pytest.mark.parametrize(("curve", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")])
def test_ecdsa_algorithm_follows_the_curve(curve: str, alg: str, ec_pairs: dict[str, tuple[bytes, bytes]]) -> None:
    spec = make_spec(shared=False, rsa=False, ecdsa=curve)
    private, public = ec_pairs[curve]
    minted = tokens.mint(spec.tokens[0], spec, tokens.KeyRing(ecdsa_private_pem=private), NOW)
    assert minted.algorithm == alg and header_of(minted.token)["alg"] == alg
    claims = jwcrypto_claims(minted.token, jwk.JWK.from_pem(public), alg)
    assert claims["iss"] == ISSUER


def test_minted_times_iat_backdated_exp_after_lifetime(secret: bytes) -> None:
    spec = make_spec(lifetime="12h")
    minted = tokens.mint(spec.tokens[0], spec, tokens.KeyRing(shared_secret=secret), NOW)
    claims = jwcrypto_claims(minted.token, oct_key(secret), "HS256")
    assert claims["iat"] == int(NOW.timestamp()) - 600
    assert claims["exp"] == int(NOW.timestamp()) + 12 * 3600
    assert minted.expires_at == NOW + datetime.timedelta(hours=12)
    assert minted.renewal_time == NOW + datetime.timedelta(hours=8)


def test_minted_tokens_are_accepted_by_our_verifier_too(
        secret: bytes, rsa_pair: tuple[bytes, bytes], ec_pairs: dict[str, tuple[bytes, bytes]]) -> None:
    ring = ring_of(secret, rsa_pair, ec_pairs["P-256"])
    spec = make_spec(tokens_=[
        {"secretName": "a", "roles": ["system.admin"], "groups": ["*"]},
        {"secretName": "b", "roles": ["system.user"], "signingKey": "RSA"},
        {"secretName": "c", "roles": ["system.view"], "signingKey": "ECDSA"},
    ])
    for token in spec.tokens:
        minted = tokens.mint(token, spec, ring, NOW)
        verdict = verify(minted.token, spec, ring.verify_keys(), NOW)
        assert verdict.accepted, verdict.reason
        assert verdict.roles == token.roles and verdict.groups == token.groups


def test_nothing_secret_in_reprs(secret: bytes, rsa_pair: tuple[bytes, bytes]) -> None:
    ring = tokens.KeyRing(shared_secret=secret, rsa_private_pem=rsa_pair[0])
    spec = make_spec()
    minted = tokens.mint(spec.tokens[0], spec, ring, NOW)
    for text in (repr(ring), repr(minted), repr(ring.verify_keys())):
        assert secret.decode() not in text
        assert "PRIVATE" not in text
        assert minted.token not in text


def test_shared_secret_fingerprint_matches_the_secret_fingerprint_in_status(secret: bytes) -> None:
    spec = make_spec()
    minted = tokens.mint(spec.tokens[0], spec, tokens.KeyRing(shared_secret=secret), NOW)
    assert minted.key_fingerprint == keymaterial.fingerprint({"shared-secret": secret})


def test_key_pair_fingerprint_ignores_the_pem_encoding(rsa_pair: tuple[bytes, bytes]) -> None:
    key = serialization.load_pem_private_key(rsa_pair[0], password=None)
    pkcs1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    assert pkcs1 != rsa_pair[0]
    assert (tokens.key_fingerprint("RSA", tokens.KeyRing(rsa_private_pem=pkcs1))
            == tokens.key_fingerprint("RSA", tokens.KeyRing(rsa_private_pem=rsa_pair[0])))


# -- renewal ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lifetime", "renew_after"), [
    (datetime.timedelta(hours=24), datetime.timedelta(hours=16)),  # 2/3
    (datetime.timedelta(days=365), datetime.timedelta(days=365) * 2 / 3),
    (datetime.timedelta(minutes=3), datetime.timedelta(minutes=2)),  # 2/3 == 1 minute before expiry
    (datetime.timedelta(minutes=2), datetime.timedelta(minutes=1)),  # capped: 1 minute before expiry
    (datetime.timedelta(seconds=90), datetime.timedelta(seconds=30)),  # capped, equal to the 1/3 floor
    (datetime.timedelta(seconds=30), datetime.timedelta(seconds=10)),  # the 1/3 floor: no tight loop
])
def test_renewal_time(lifetime: datetime.timedelta, renew_after: datetime.timedelta) -> None:
    assert tokens.renewal_time(NOW, NOW + lifetime) == NOW + renew_after


@pytest.mark.parametrize("minutes", [3, 4, 10, 60, 24 * 60, 7 * 24 * 60])
def test_renewal_is_never_later_than_one_minute_before_expiry(minutes: int) -> None:
    expires = NOW + datetime.timedelta(minutes=minutes)
    at = tokens.renewal_time(NOW, expires)
    assert NOW < at <= expires - datetime.timedelta(minutes=1)


# -- when to mint again -------------------------------------------------------------------------------------------


@pytest.fixture()
def hs_setup(secret: bytes) -> tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]:
    spec = make_spec()
    ring = tokens.KeyRing(shared_secret=secret)
    return spec, ring, tokens.mint(spec.tokens[0], spec, ring, NOW)


def test_a_fresh_token_is_kept(hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, minted = hs_setup
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, NOW) is None
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, None, NOW) is None


@pytest.mark.parametrize("existing", [None, ""])
def test_missing(existing: str | None, hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, _ = hs_setup
    assert tokens.remint_reason(existing, spec.tokens[0], spec, ring, None, NOW) == "missing"


def test_unreadable(secret: bytes, hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, _ = hs_setup
    assert tokens.remint_reason("not-a-token", spec.tokens[0], spec, ring, None, NOW) == "unreadable"
    no_exp = jw.JWT(header={"alg": "HS256"}, claims={"iss": ISSUER, "iat": 1})
    no_exp.make_signed_token(oct_key(secret))
    assert tokens.remint_reason(no_exp.serialize(), spec.tokens[0], spec, ring, None, NOW) == "unreadable"


def test_expiring_exactly_at_the_renewal_time(hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, minted = hs_setup
    before = minted.renewal_time - datetime.timedelta(seconds=1)
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, before) is None
    for at in (minted.renewal_time, minted.expires_at, minted.expires_at + datetime.timedelta(days=1)):
        assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, at) == "expiring"


def test_issuer_changed(hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    _, ring, minted = hs_setup
    moved = make_spec(issuer="storage.example.internal")
    assert tokens.remint_reason(minted.token, moved.tokens[0], moved, ring, minted.key_fingerprint, NOW) == (
        "issuer changed")


def test_signing_key_changed_when_the_secret_was_regenerated(
        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, _, minted = hs_setup
    new_ring = tokens.KeyRing(shared_secret=keymaterial.generate_shared_secret().encode())
    # by the fingerprint recorded at minting ...
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, new_ring, minted.key_fingerprint, NOW) == (
        "signing key changed")
    # ... and, with nothing recorded (status lost), because the signature no longer verifies.
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, new_ring, None, NOW) == "signing key changed"


def test_signing_key_changed_when_the_token_asks_for_another_key(
        secret: bytes, rsa_pair: tuple[bytes, bytes],
        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, _, minted = hs_setup
    ring = tokens.KeyRing(shared_secret=secret, rsa_private_pem=rsa_pair[0])
    now_rsa = TokenSpec(spec.tokens[0].secret_name, spec.tokens[0].roles, spec.tokens[0].groups, signing_key="RSA")
    assert tokens.remint_reason(minted.token, now_rsa, spec, ring, minted.key_fingerprint, NOW) == (
        "signing key changed")


def test_signing_key_changed_when_the_rsa_key_was_replaced(rsa_pair: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False)
    minted = tokens.mint(spec.tokens[0], spec, tokens.KeyRing(rsa_private_pem=rsa_pair[0]), NOW)
    other = tokens.KeyRing(rsa_private_pem=keymaterial.generate_rsa(2048)[0])
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, other, None, NOW) == "signing key changed"


def test_a_recorded_fingerprint_that_differs_forces_a_remint(
        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, minted = hs_setup
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, "sha256:" + "0" * 64, NOW) == (
        "signing key changed")


@pytest.mark.parametrize("changed", [
    {"secretName": "px-admin-token", "roles": ["system.view"], "groups": ["*"]},
    {"secretName": "px-admin-token", "roles": ["system.admin"]},
    {"secretName": "px-admin-token", "roles": ["system.admin", "system.user"], "groups": ["*"]},
])
def test_claims_changed(changed: dict[str, Any],
                        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    _, ring, minted = hs_setup
    spec = make_spec(tokens_=[changed])
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, NOW) == (
        "claims changed")


def test_a_token_of_another_secret_name_is_claims_changed(
        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, minted = hs_setup
    assert tokens.remint_reason(minted.token, spec.tokens[1], spec, ring, minted.key_fingerprint, NOW) == (
        "claims changed")


@pytest.mark.parametrize("lifetime", ["12h", "48h", "1y"])
def test_lifetime_changed(lifetime: str, hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    _, ring, minted = hs_setup
    spec = make_spec(lifetime=lifetime)
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, NOW) == (
        "lifetime changed")


def test_no_signing_key(hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, _, minted = hs_setup
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, tokens.KeyRing(), None, NOW) == "no signing key"


def test_remint_then_keep_is_stable_across_reconciles(
        hs_setup: tuple[PxSecuritySpec, tokens.KeyRing, tokens.Minted]) -> None:
    spec, ring, minted = hs_setup
    # What a reconcile loop does: at the renewal time re-mint, then keep the new token until its own.
    at = minted.renewal_time
    assert tokens.remint_reason(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, at) == "expiring"
    again = tokens.mint(spec.tokens[0], spec, ring, at)
    assert again.renewal_time > at
    for later in (at, at + datetime.timedelta(hours=1), again.renewal_time - datetime.timedelta(seconds=1)):
        assert tokens.remint_reason(again.token, spec.tokens[0], spec, ring, again.key_fingerprint, later) is None


def test_assess_keeps_a_current_token_with_its_times_from_one_decoding(secret: bytes) -> None:
    spec = make_spec(rsa=False, ecdsa=None)
    ring = ring_of(secret, None, None)
    minted = tokens.mint(spec.tokens[0], spec, ring, NOW)
    found = tokens.assess(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, NOW)
    assert found == tokens.Assessment(None, minted.expires_at, minted.renewal_time)
    assert tokens.assess(None, spec.tokens[0], spec, ring, None, NOW) == tokens.Assessment(tokens.MISSING)
    late = tokens.assess(minted.token, spec.tokens[0], spec, ring, minted.key_fingerprint, minted.renewal_time)
    assert late.reason == tokens.EXPIRING and late.expires_at is None
