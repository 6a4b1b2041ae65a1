"""OpenStorage's token rules (pxsec.verify), on tokens our code did not make.

Every token here is built with jwcrypto (or, where jwcrypto refuses to make the broken token a test
needs, by hand with `cryptography`), never with pxsec or pyjwt, so a bug shared by our signer and our
verifier cannot hide. Each case pins the verdict *and* the words of the reason.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk
from jwcrypto import jwt as jw

from pxsec import keymaterial
from pxsec.spec import PxSecuritySpec, parse_spec
from pxsec.verify import Verdict, VerifyKeys, verify

UTC = datetime.UTC
NOW = datetime.datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
SELF = "operator.portworx.io"
OIDC = "https://login.example.com/realms/storage"
NS = "https://portworx.example.com/"


# -- keys, specs, tokens ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_rsa() -> tuple[bytes, bytes]:
    return keymaterial.generate_rsa(2048)


@pytest.fixture(scope="module")
def p256() -> tuple[bytes, bytes]:
    return keymaterial.generate_ecdsa("P-256")


@pytest.fixture(scope="module")
def p384() -> tuple[bytes, bytes]:
    return keymaterial.generate_ecdsa("P-384")


def make_spec(*, shared: bool = True, rsa: bool = True, ecdsa: str | None = "P-256", oidc: bool = True,
              username_claim: str = "sub", namespace: str | None = NS) -> PxSecuritySpec:
    raw: dict[str, Any] = {"usernameClaim": username_claim}
    self_signed: dict[str, Any] = {"issuer": SELF}
    if shared:
        self_signed["sharedSecret"] = {}
    if rsa:
        self_signed["rsa"] = {"secretName": "px-jwt-rsa"}
    if ecdsa:
        self_signed["ecdsa"] = {"secretName": "px-jwt-ecdsa", "curve": ecdsa}
    if shared or rsa or ecdsa:
        raw["selfSigned"] = self_signed
    if oidc:
        raw["oidc"] = {"issuer": OIDC, "clientID": "portworx"}
        if namespace:
            raw["oidc"]["customClaimNamespace"] = namespace
    return parse_spec(raw)


@pytest.fixture()
def keys(secret: bytes, rsa_pair: tuple[bytes, bytes], p256: tuple[bytes, bytes]) -> VerifyKeys:
    return VerifyKeys(shared_secret=secret, rsa_public_pem=rsa_pair[1], ecdsa_public_pem=p256[1])


def oct_key(material: bytes) -> jwk.JWK:
    return jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(material).rstrip(b"=").decode("ascii"))


def pem_key(pem: bytes, kid: str | None = None) -> jwk.JWK:
    key = jwk.JWK.from_pem(pem)
    if kid is not None:
        key = jwk.JWK(**{**json.loads(key.export(private_key=key.has_private)), "kid": kid})
    return key


def claims(**overrides: Any) -> dict[str, Any]:
    """A self-signed admin's claims, valid at NOW; `name=None` style overrides delete a claim."""
    base: dict[str, Any] = {
        "iss": SELF, "sub": "alice", "name": "Alice", "email": "alice@example.com",
        "roles": ["system.admin"], "groups": ["*"], "iat": T - 60, "exp": T + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def oidc_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"iss": OIDC, "aud": "portworx", **overrides})


def sign(body: dict[str, Any], key: jwk.JWK, alg: str, **header: Any) -> str:
    token = jw.JWT(header={"alg": alg, "typ": "JWT", **header}, claims=body, algs=[alg])
    token.make_signed_token(key)
    serialized: str = token.serialize()
    return serialized


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def es_signed_by_hand(body: dict[str, Any], private_pem: bytes, alg: str, digest: hashes.HashAlgorithm) -> str:
    """An `alg` token signed by any EC key: jwcrypto refuses ES256 on P-384, Portworx must refuse it too."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signing_input = f"{b64url(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64url(json.dumps(body).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return f"{signing_input}.{b64url(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


def check(verdict: Verdict, accepted: bool, *fragments: str) -> None:
    assert verdict.accepted is accepted, verdict.reason
    for fragment in fragments:
        assert fragment in verdict.reason, f"{fragment!r} not in {verdict.reason!r}"


# -- self-signed: accepted ------------------------------------------------------------------------------------


def test_hs256_with_the_ascii_secret_is_accepted(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, True, "self-signed", "HS256", "shared secret")
    assert (verdict.source, verdict.issuer, verdict.algorithm) == ("self-signed", SELF, "HS256")
    assert (verdict.username, verdict.roles, verdict.groups) == ("alice", ("system.admin",), ("*",))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hs_algorithms_use_the_same_secret(alg: str, secret: bytes, keys: VerifyKeys) -> None:
    check(verify(sign(claims(), oct_key(secret), alg), make_spec(), keys, NOW), True, alg)


def test_hs256_signed_with_the_base64_decoded_secret_is_rejected_and_explained(
        secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(), oct_key(base64.b64decode(secret)), "HS256")
    check(verify(token, make_spec(), keys, NOW), False, "does not verify", "base64-decoded", "ASCII bytes")


def test_rs256_is_accepted(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    check(verify(sign(claims(), pem_key(rsa_pair[0]), "RS256"), make_spec(), keys, NOW), True, "RS256", "RSA key")


def test_es256_is_accepted(p256: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    check(verify(sign(claims(), pem_key(p256[0]), "ES256"), make_spec(), keys, NOW), True, "ES256", "ECDSA key")


def test_es384_on_p384_is_accepted(p384: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False, rsa=False, ecdsa="P-384")
    token = sign(claims(), pem_key(p384[0]), "ES384")
    check(verify(token, spec, VerifyKeys(ecdsa_public_pem=p384[1]), NOW), True, "ES384")


def test_groups_star_means_all_groups(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(groups=["*"]), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, True)
    assert verdict.groups == ("*",)


def test_no_roles_and_no_groups_still_authenticates(secret: bytes, keys: VerifyKeys) -> None:
    body = claims()
    del body["roles"], body["groups"]
    verdict = verify(sign(body, oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, True)
    assert (verdict.roles, verdict.groups) == ((), ())


# -- self-signed: the clock, with no leeway -------------------------------------------------------------------


def test_expired(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(exp=T - 1), oct_key(secret), "HS256")
    check(verify(token, make_spec(), keys, NOW), False, "expired")


def test_exp_equal_to_now_is_already_expired(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(exp=T), oct_key(secret), "HS256")
    check(verify(token, make_spec(), keys, NOW), False, "expired")
    check(verify(token, make_spec(), keys, NOW - datetime.timedelta(seconds=1)), True)


@pytest.mark.parametrize("ahead", [1, 2])
def test_iat_in_the_future_even_by_a_second_is_rejected(ahead: int, secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(iat=T + ahead), oct_key(secret), "HS256")
    check(verify(token, make_spec(), keys, NOW), False, "iat", "in the future", "no leeway")


def test_iat_equal_to_now_is_accepted(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(iat=T), oct_key(secret), "HS256")
    check(verify(token, make_spec(), keys, NOW + datetime.timedelta(microseconds=999_999)), True)


def test_nbf_in_the_future_is_rejected(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(nbf=T + 5), oct_key(secret), "HS256")
    check(verify(token, make_spec(), keys, NOW), False, "not valid before")


# -- self-signed: issuer and algorithm --------------------------------------------------------------------------


def test_unknown_issuer(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(iss="stork.openstorage.io"), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, '"stork.openstorage.io" is not a trusted issuer', SELF, OIDC)
    assert verdict.source is None


def test_issuer_off_by_a_trailing_slash_is_explained(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    token = sign(oidc_claims(iss=OIDC + "/"), pem_key(rsa_pair[0]), "RS256")
    check(verify(token, make_spec(), keys, NOW), False, "not a trusted issuer", "trailing slash")


def test_missing_iss(secret: bytes, keys: VerifyKeys) -> None:
    check(verify(sign(claims(iss=None), oct_key(secret), "HS256"), make_spec(), keys, NOW), False, "no iss")


def test_alg_none_is_rejected(keys: VerifyKeys) -> None:
    token = jw.JWT(header={"alg": "none"}, claims=claims(), algs=["none"])
    token.make_signed_token(jwk.JWK(kty="oct", k=""))
    check(verify(token.serialize(), make_spec(), keys, NOW), False, "alg none")


def test_hs_token_against_an_rsa_only_issuer(secret: bytes, rsa_pair: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False, ecdsa=None)
    verdict = verify(sign(claims(), oct_key(secret), "HS256"), spec, VerifyKeys(rsa_public_pem=rsa_pair[1]), NOW)
    check(verdict, False, f'token is HS256 but issuer "{SELF}" has no shared secret')


def test_es256_against_an_rsa_only_issuer(p256: tuple[bytes, bytes], rsa_pair: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False, ecdsa=None)
    verdict = verify(sign(claims(), pem_key(p256[0]), "ES256"), spec, VerifyKeys(rsa_public_pem=rsa_pair[1]), NOW)
    check(verdict, False, "token is ES256", "has no ECDSA key")


def test_es256_signed_with_a_p384_key_is_rejected(p384: tuple[bytes, bytes]) -> None:
    spec = make_spec(shared=False, rsa=False, ecdsa="P-384")
    token = es_signed_by_hand(claims(), p384[0], "ES256", hashes.SHA256())
    verdict = verify(token, spec, VerifyKeys(ecdsa_public_pem=p384[1]), NOW)
    check(verdict, False, "token is ES256", "P-384", "needs P-256")


def test_ps256_is_rejected_for_self_signed(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(), pem_key(rsa_pair[0]), "PS256"), make_spec(), keys, NOW)
    check(verdict, False, "PS256", "self-signed issuers do not accept")


def test_wrong_signature(other_rsa: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(), pem_key(other_rsa[0]), "RS256"), make_spec(), keys, NOW)
    check(verdict, False, "RS256 signature does not verify", "px-jwt-rsa")


def test_a_tampered_payload_does_not_verify(secret: bytes, keys: VerifyKeys) -> None:
    header, _, signature = sign(claims(), oct_key(secret), "HS256").split(".")
    forged = b64url(json.dumps(claims(roles=["system.admin", "extra"])).encode())
    check(verify(f"{header}.{forged}.{signature}", make_spec(), keys, NOW), False, "does not verify")


def test_a_configured_key_whose_material_was_not_provided(rsa_pair: tuple[bytes, bytes]) -> None:
    verdict = verify(sign(claims(), pem_key(rsa_pair[0]), "RS256"), make_spec(), VerifyKeys(), NOW)
    check(verdict, False, "px-jwt-rsa", "was not provided")


def test_a_pkcs1_public_key_is_not_accepted(rsa_pair: tuple[bytes, bytes]) -> None:
    public = serialization.load_pem_public_key(rsa_pair[1])
    pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    verdict = verify(sign(claims(), pem_key(rsa_pair[0]), "RS256"), make_spec(), VerifyKeys(rsa_public_pem=pkcs1), NOW)
    check(verdict, False, "PKCS#1")


def test_keys_of_an_unconfigured_kind_are_ignored(rsa_pair: tuple[bytes, bytes]) -> None:
    # Portworx only receives the keys spec.selfSigned configures, whatever else lies around.
    spec = make_spec(rsa=False)
    verdict = verify(sign(claims(), pem_key(rsa_pair[0]), "RS256"), spec, VerifyKeys(rsa_public_pem=rsa_pair[1]), NOW)
    check(verdict, False, "has no RSA key", "spec.selfSigned.rsa is not set")


# -- claims -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["email", "name", "sub", "iat", "exp"])
def test_a_missing_required_claim(missing: str, secret: bytes, keys: VerifyKeys) -> None:
    body = claims()
    del body[missing]
    check(verify(sign(body, oct_key(secret), "HS256"), make_spec(), keys, NOW), False, f"{missing} missing")


def test_an_empty_username_claim(secret: bytes, keys: VerifyKeys) -> None:
    spec = make_spec(username_claim="email")
    verdict = verify(sign(claims(email=""), oct_key(secret), "HS256"), spec, keys, NOW)
    check(verdict, False, "usernameClaim is email", "must not be empty")
    # The same token is fine when the username is sub: empty email is only present, not used.
    check(verify(sign(claims(email=""), oct_key(secret), "HS256"), make_spec(), keys, NOW), True)


def test_username_follows_the_username_claim(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(), oct_key(secret), "HS256")
    assert verify(token, make_spec(username_claim="email"), keys, NOW).username == "alice@example.com"
    assert verify(token, make_spec(username_claim="name"), keys, NOW).username == "Alice"


def test_roles_not_an_array(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(roles="system.admin"), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, "roles must be an array of strings")


def test_groups_with_a_non_string(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(groups=["ops", 7]), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, "groups must be an array of strings")


def test_a_non_string_name(secret: bytes, keys: VerifyKeys) -> None:
    check(verify(sign(claims(name=42), oct_key(secret), "HS256"), make_spec(), keys, NOW), False,
          "name must be a string")


def test_several_problems_are_all_reported(secret: bytes, keys: VerifyKeys) -> None:
    body = claims(exp=T - 10, roles="admin")
    del body["email"]
    verdict = verify(sign(body, oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, "email missing", "expired", "roles must be an array")


# -- OIDC -----------------------------------------------------------------------------------------------------------


def jwks_of(*pems_and_kids: tuple[bytes, str]) -> dict[str, Any]:
    return {"keys": [json.loads(pem_key(pem, kid).export_public()) for pem, kid in pems_and_kids]}


@pytest.fixture()
def jwks(rsa_pair: tuple[bytes, bytes], p256: tuple[bytes, bytes]) -> dict[str, Any]:
    return jwks_of((rsa_pair[1], "rsa-1"), (p256[1], "ec-1"))


@pytest.mark.parametrize(("alg", "kid"), [("RS256", "rsa-1"), ("PS256", "rsa-1"), ("ES256", "ec-1"),
                                          ("RS512", "rsa-1")])
def test_oidc_accepted_with_the_jwks(alg: str, kid: str, rsa_pair: tuple[bytes, bytes], p256: tuple[bytes, bytes],
                                     keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    private = p256[0] if alg.startswith("ES") else rsa_pair[0]
    token = sign(oidc_claims(), pem_key(private, kid), alg, kid=kid)
    verdict = verify(token, make_spec(), keys, NOW, jwks)
    check(verdict, True, "OIDC", alg)
    assert (verdict.source, verdict.issuer) == ("oidc", OIDC)


def test_oidc_without_a_jwks_is_not_accepted(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    token = sign(oidc_claims(), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    verdict = verify(token, make_spec(), keys, NOW)
    check(verdict, False, "signature was not checked")
    assert verdict.roles == ("system.admin",)  # the claims were judged all the same


def test_oidc_namespaced_roles_and_groups_override_top_level(
        rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    body = oidc_claims(roles=["system.guest"], groups=["nobody"],
                       **{NS + "roles": ["system.admin"], NS + "groups": ["storage"]})
    verdict = verify(sign(body, pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1"), make_spec(), keys, NOW, jwks)
    check(verdict, True)
    assert (verdict.roles, verdict.groups) == (("system.admin",), ("storage",))


def test_oidc_namespaced_claims_are_ignored_without_a_namespace(
        rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    body = oidc_claims(roles=["system.view"], **{NS + "roles": ["system.admin"]})
    token = sign(body, pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    verdict = verify(token, make_spec(namespace=None), keys, NOW, jwks)
    assert verdict.roles == ("system.view",)


def test_oidc_hs256_is_rejected(secret: bytes, keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    verdict = verify(sign(oidc_claims(), oct_key(secret), "HS256"), make_spec(), keys, NOW, jwks)
    check(verdict, False, "never HS")
    assert verdict.source == "oidc"


def test_oidc_aud_without_the_client_id(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    for aud in ("other-app", ["other-app", "account"], None):
        token = sign(oidc_claims(aud=aud), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
        check(verify(token, make_spec(), keys, NOW, jwks), False, 'does not contain the client ID "portworx"')


def test_oidc_aud_list_with_the_client_id(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys,
                                          jwks: dict[str, Any]) -> None:
    token = sign(oidc_claims(aud=["account", "portworx"]), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    check(verify(token, make_spec(), keys, NOW, jwks), True)


def test_oidc_signed_by_a_key_not_in_the_jwks(other_rsa: tuple[bytes, bytes], keys: VerifyKeys,
                                               jwks: dict[str, Any]) -> None:
    signed_with_known_kid = sign(oidc_claims(), pem_key(other_rsa[0], "rsa-1"), "RS256", kid="rsa-1")
    check(verify(signed_with_known_kid, make_spec(), keys, NOW, jwks), False, "does not verify with any key")
    unknown_kid = sign(oidc_claims(), pem_key(other_rsa[0], "rotated"), "RS256", kid="rotated")
    check(verify(unknown_kid, make_spec(), keys, NOW, jwks), False, 'no key in the JWKS has kid "rotated"')


def test_oidc_es256_with_only_a_p384_key_in_the_jwks(p384: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    token = es_signed_by_hand(oidc_claims(), p384[0], "ES256", hashes.SHA256())
    verdict = verify(token, make_spec(), keys, NOW, jwks_of((p384[1], "ec-384")))
    check(verdict, False, "can verify ES256", "EC/P-384")


def test_oidc_iat_is_not_compared_with_the_clock(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys,
                                                 jwks: dict[str, Any]) -> None:
    # go-oidc checks exp and nbf but never iat; OpenStorage only requires iat to be present.
    token = sign(oidc_claims(iat=T + 30), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    check(verify(token, make_spec(), keys, NOW, jwks), True)


def test_oidc_expired_and_nbf_leeway(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    def token(**overrides: Any) -> str:
        return sign(oidc_claims(**overrides), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")

    check(verify(token(exp=T - 1), make_spec(), keys, NOW, jwks), False, "expired")
    check(verify(token(nbf=T + 60), make_spec(), keys, NOW, jwks), True)  # go-oidc: one minute of leeway
    check(verify(token(nbf=T + 61), make_spec(), keys, NOW, jwks), False, "not valid before")


def test_oidc_required_claims_apply_too(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    token = sign(oidc_claims(name=None), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    check(verify(token, make_spec(), keys, NOW, jwks), False, "name missing")


def test_oidc_algorithms_advertised_by_the_provider_restrict(
        rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    token = sign(oidc_claims(), pem_key(rsa_pair[0], "rsa-1"), "PS256", kid="rsa-1")
    check(verify(token, make_spec(), keys, NOW, jwks, oidc_algorithms=["RS256"]), False, "not accepted", "RS256")


# -- not a token at all, and secrecy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.bm90IGpzb24.sig", "W10.e30.sig"])
def test_not_a_jwt(text: str, keys: VerifyKeys) -> None:
    check(verify(text, make_spec(), keys, NOW), False, "not a JWT")


def test_reasons_never_contain_the_token_or_a_key(
        secret: bytes, rsa_pair: tuple[bytes, bytes], other_rsa: tuple[bytes, bytes], keys: VerifyKeys) -> None:
    makers: list[Callable[[], str]] = [
        lambda: sign(claims(), oct_key(secret), "HS256"),
        lambda: sign(claims(), oct_key(base64.b64decode(secret)), "HS256"),
        lambda: sign(claims(exp=T - 5), pem_key(rsa_pair[0]), "RS256"),
        lambda: sign(claims(), pem_key(other_rsa[0]), "RS256"),
        lambda: sign(claims(iss="x"), oct_key(secret), "HS256"),
    ]
    for make in makers:
        token = make()
        verdict = verify(token, make_spec(), keys, NOW)
        for part in token.split("."):
            assert part not in verdict.reason
        assert secret.decode() not in verdict.reason
        assert "PRIVATE" not in verdict.reason and "PUBLIC KEY" not in verdict.reason


def test_naive_now_is_refused(secret: bytes, keys: VerifyKeys) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(sign(claims(), oct_key(secret), "HS256"), make_spec(), keys, datetime.datetime(2030, 1, 1))


def test_verify_keys_from_secrets_derives_a_missing_public_key(rsa_pair: tuple[bytes, bytes], secret: bytes) -> None:
    spec = make_spec()
    keys = VerifyKeys.from_secrets(spec, {
        "px-shared-secret": {"shared-secret": secret},
        "px-jwt-rsa": {"private.pem": rsa_pair[0]},
        "px-jwt-ecdsa": None,
    })
    assert keys.shared_secret == secret and keys.ecdsa_public_pem is None
    check(verify(sign(claims(), pem_key(rsa_pair[0]), "RS256"), spec, keys, NOW), True)
