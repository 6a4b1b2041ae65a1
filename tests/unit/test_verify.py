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
    check(verdict, False, "ES256 signature does not verify", "P-384", "needs P-256")
    assert verdict.cause == "signature"


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


def test_the_first_problem_on_portworxs_path_is_the_cause(secret: bytes, keys: VerifyKeys) -> None:
    # OpenStorage decodes the claims into its struct to pick the issuer: a mistyped roles stops it there,
    # before the signature, the clock or the required claims are looked at.
    body = claims(exp=T - 10, roles="admin")
    del body["email"]
    verdict = verify(sign(body, oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, "roles must be an array")
    assert verdict.cause == "claims"
    # golang-jwt checks the signature and the clock together; the signature is reported first.
    expired = sign(claims(exp=T - 10), oct_key(b"not-the-secret-not-the-secret-not-the-secret-0123"), "HS256")
    assert verify(expired, make_spec(), keys, NOW).cause == "signature"
    # and all clock problems are named at once
    both = verify(sign(claims(exp=T - 10, iat=T + 10), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(both, False, "expired", "iat")
    assert both.cause == "exp"


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


@pytest.mark.parametrize("text", ["", "abc", "a.b", "e30.bm90IGpzb24.sig", "e30.e30=.sig", "e30.bnVsbA.sig"])
def test_not_a_jwt(text: str, keys: VerifyKeys) -> None:
    verdict = verify(text, make_spec(), keys, NOW)
    check(verdict, False, "not a JWT")
    assert verdict.cause == "malformed"


@pytest.mark.parametrize("text", ["!!!.e30.sig", "W10.e30.sig", "a.e30.c.d"])
def test_the_issuer_is_read_before_the_header(text: str, keys: VerifyKeys) -> None:
    # OpenStorage routes on the claims segment alone: "{}" has no issuer, whatever the other segments hold.
    verdict = verify(text, make_spec(), keys, NOW)
    check(verdict, False, "no iss")
    assert verdict.cause == "no-issuer"


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


# -- Go's reading of the bytes, and what Portworx accepts although it should not ---------------------------------


def raw_token(header: dict[str, Any] | bytes, body: bytes, secret: bytes) -> str:
    """An HS256 token over exactly these bytes (no library would write most of them)."""
    import hashlib
    import hmac

    h = b64url(header if isinstance(header, bytes) else json.dumps(header).encode())
    c = b64url(body)
    mac = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64url(mac)}"


def body_with(extra: str, **overrides: Any) -> bytes:
    text = json.dumps(claims(**overrides))
    return (text[:-1] + ", " + extra + "}").encode() if extra else text.encode()


def test_exp_zero_never_expires_and_says_so(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(exp=0), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, True, "accepted by Portworx")
    assert any("never expires" in w for w in verdict.warnings)


def test_case_variant_claim_names_are_read_as_go_reads_them(secret: bytes, keys: VerifyKeys) -> None:
    token = raw_token({"alg": "HS256"}, body_with('"ROLES": ["system.admin"]', roles=["system.user"]), secret)
    verdict = verify(token, make_spec(), keys, NOW)
    check(verdict, True)
    assert verdict.roles == ("system.admin",)  # the last spelling wins, as in Go's encoding/json
    assert any('"ROLES"' in w and "case-insensitively" in w for w in verdict.warnings)


def test_an_uppercase_iss_picks_the_issuer(secret: bytes, keys: VerifyKeys) -> None:
    token = raw_token({"alg": "HS256"}, body_with(f'"ISS": "{SELF}"', iss="somebody.else"), secret)
    verdict = verify(token, make_spec(), keys, NOW)
    check(verdict, True)
    assert verdict.issuer == SELF


@pytest.mark.parametrize(("body", "cause"), [
    (b"\xef\xbb\xbf" + json.dumps(claims()).encode(), "malformed"),
    (json.dumps(claims()).encode("utf-16"), "malformed"),
    (body_with('"x": NaN'), "malformed"),
    (body_with('"x": 1e400'), "malformed"),
    (body_with("", name="Al\udcffice".encode("utf-8", "surrogateescape").decode("latin-1")), "accepted"),
])
def test_json_as_go_reads_it(body: bytes, cause: str, secret: bytes, keys: VerifyKeys) -> None:
    assert verify(raw_token({"alg": "HS256"}, body, secret), make_spec(), keys, NOW).cause == cause


def test_invalid_utf8_inside_a_claim_is_replaced_not_rejected(secret: bytes, keys: VerifyKeys) -> None:
    body = json.dumps(claims(name="Al-ice")).encode().replace(b"Al-ice", b"Al\xffice")
    verdict = verify(raw_token({"alg": "HS256"}, body, secret), make_spec(username_claim="name"), keys, NOW)
    check(verdict, True)
    assert verdict.username == "Al\ufffdice"


def test_padding_is_rejected_and_explained(secret: bytes, keys: VerifyKeys) -> None:
    token = sign(claims(), oct_key(secret), "HS256")
    verdict = verify(token + "=", make_spec(), keys, NOW)
    check(verdict, False, "padding")
    assert verdict.cause == "signature"


def test_crit_is_ignored_for_self_signed_and_warned_about(secret: bytes, keys: VerifyKeys) -> None:
    token = raw_token({"alg": "HS256", "crit": ["exp"]}, json.dumps(claims()).encode(), secret)
    verdict = verify(token, make_spec(), keys, NOW)
    check(verdict, True)
    assert any("ignores crit" in w for w in verdict.warnings)


def test_oidc_crit_fails_the_signature(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = serialization.load_pem_private_key(rsa_pair[0], password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    header = b64url(json.dumps({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}).encode())
    signing_input = f"{header}.{b64url(json.dumps(oidc_claims()).encode())}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64url(signature)}"  # jwcrypto refuses to make it; Portworx must refuse it too
    verdict = verify(token, make_spec(), keys, NOW, jwks)
    check(verdict, False, "critical")
    assert verdict.cause == "signature"


def test_fractional_times_are_truncated(secret: bytes, keys: VerifyKeys) -> None:
    check(verify(sign(claims(iat=T + 0.5), oct_key(secret), "HS256"), make_spec(), keys, NOW), True)
    check(verify(sign(claims(exp=T + 0.5), oct_key(secret), "HS256"), make_spec(), keys, NOW), False,
          "expired", "whole seconds")


def test_an_exp_beyond_gos_time_is_long_past(secret: bytes, keys: VerifyKeys) -> None:
    verdict = verify(sign(claims(exp=9.5e18), oct_key(secret), "HS256"), make_spec(), keys, NOW)
    check(verdict, False, "beyond what Go's time can hold")


def test_the_apps_issuer_uses_the_apps_key(secret: bytes, keys: VerifyKeys) -> None:
    apps = b"apps-secret-apps-secret-apps-secret-apps-secret-apps-secret-0123"
    with_apps = VerifyKeys(keys.shared_secret, keys.rsa_public_pem, keys.ecdsa_public_pem, apps_secret=apps)
    token = sign(claims(iss="apps.portworx.io"), oct_key(apps), "HS256")
    check(verify(token, make_spec(), with_apps, NOW), True, "apps issuer")
    check(verify(token, make_spec(), keys, NOW), False, "not a trusted issuer")
    keys_from_secrets = VerifyKeys.from_secrets(make_spec(), {"px-system-secrets": {"apps-secret": apps}})
    assert keys_from_secrets.apps_secret == apps


def test_a_secret_with_a_trailing_newline_is_explained(secret: bytes) -> None:
    spec = make_spec(rsa=False, ecdsa=None)
    verdict = verify(sign(claims(), oct_key(secret), "HS256"), spec, VerifyKeys(shared_secret=secret + b"\n"), NOW)
    check(verdict, False, "ends with a newline")


def test_an_unparsable_public_key_leaves_the_issuer_without_an_authenticator(
        secret: bytes, rsa_pair: tuple[bytes, bytes]) -> None:
    # golang-jwt parses the keys when Portworx starts: a broken RSA key breaks HS256 tokens too.
    verdict = verify(sign(claims(), oct_key(secret), "HS256"), make_spec(ecdsa=None),
                     VerifyKeys(shared_secret=secret, rsa_public_pem=b"not a pem"), NOW)
    check(verdict, False, "cannot start the authenticator", "RSA public key")
    assert verdict.cause == "config"


def test_a_junk_jwks_entry_fails_every_oidc_signature(rsa_pair: tuple[bytes, bytes], keys: VerifyKeys,
                                                      jwks: dict[str, Any]) -> None:
    token = sign(oidc_claims(), pem_key(rsa_pair[0], "rsa-1"), "RS256", kid="rsa-1")
    junk = {"keys": [*jwks["keys"], {"kty": "unknown"}]}
    verdict = verify(token, make_spec(), keys, NOW, junk)
    check(verdict, False, "every signature fails", "unknown key type")
    assert verdict.cause == "jwks"
    check(verify(token, make_spec(), keys, NOW, json.dumps(jwks).encode()), True)  # the bytes as fetched


@pytest.mark.parametrize("seed", range(40))
def test_no_input_makes_verify_raise(seed: int, secret: bytes, keys: VerifyKeys, jwks: dict[str, Any]) -> None:
    import random

    rng = random.Random(seed)
    pieces = [sign(claims(), oct_key(secret), "HS256"), sign(oidc_claims(), oct_key(secret), "HS256")]
    token = list(rng.choice(pieces))
    for _ in range(rng.randint(1, 12)):
        position = rng.randrange(len(token))
        token[position] = rng.choice("=.+/-_ \n\x00é{}\"\\Aa0")
    text = "".join(token)
    verdict = verify(text, make_spec(), keys, NOW, jwks)
    assert isinstance(verdict.reason, str) and verdict.cause
