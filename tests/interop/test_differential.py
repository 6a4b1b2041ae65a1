"""pxsec's verdicts against Portworx's own libraries: every token here is judged by `pxsec.verify` and by
the Go checker (tests/interop/main.go: golang-jwt/jwt/v4 v4.3.0 and coreos/go-oidc v2.2.1 on
OpenStorage's rules); the verdicts must be equal, for the same cause, and an accepted token must carry
the same issuer, username, roles and groups.

The tokens are good and hostile: every alg family and length, wrong keys, alg none, PS*, curve/alg
mismatches, missing, empty and mistyped claims, exp 0 / past / far future / fractional / beyond Go's
time, iat and nbf in the future, repeated and case-variant claim names, JSON Go reads differently
(UTF-16, BOM, NaN, 1e400, invalid UTF-8, deep nesting), padding, extra segments, a huge token,
kid/jku/x5u/crit headers, issuer variants, the apps issuer, and OIDC tokens from the test provider
with and without the claim namespace, against junk and odd key sets. Some cases also pin Portworx's
verdict (`expect`), so the suite shows the behaviour the issue named, not only agreement.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec.spec import PxSecuritySpec, parse_spec
from pxsec.verify import APPS_ISSUER, Verdict, VerifyKeys, verify
from tests.interop import checker
from tests.interop.tokens import forge, jwk, public_pem, resign, seg
from tests.support.oidc_provider import EC_KID, RSA_KID, OIDCProvider

pytestmark = pytest.mark.go

T = 1_900_000_000  # 2030-03-17T17:46:40Z
NOW = datetime.datetime.fromtimestamp(T, datetime.UTC)
SELF = "operator.portworx.io"
NS = "https://portworx.example.com/"
SECRET = b"Zq3vY0b8Xk2LpR7sT1wE9uI4oP6aS5dF3gH8jK0lM2nB4vC6xZ1qW3eR5tY7uI9o"
APPS_SECRET = b"Ap9sK3yL2mN4bV6cX8zQ1wE3rT5yU7iO9pA2sD4fG6hJ8kL0zX2cV4bN6mQ8wE0r"


@dataclass(frozen=True)
class Scenario:
    spec: PxSecuritySpec
    keys: VerifyKeys
    jwks: bytes | None = None
    algorithms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Case:
    id: str
    token: str
    scenario: Scenario
    now: datetime.datetime = NOW
    expect: str | None = None  # Portworx's cause, pinned where the issue names the behaviour
    warns: str | None = None  # a fragment pxsec's warnings must contain (dangerous but accepted)


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    rsa_other: rsa.RSAPrivateKey
    rsa_1024: rsa.RSAPrivateKey
    p256: ec.EllipticCurvePrivateKey
    p256_other: ec.EllipticCurvePrivateKey
    p384: ec.EllipticCurvePrivateKey
    p521: ec.EllipticCurvePrivateKey
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(65537, 2048), rsa_other=rsa.generate_private_key(65537, 2048),
        rsa_1024=rsa.generate_private_key(65537, 1024),
        p256=ec.generate_private_key(ec.SECP256R1()), p256_other=ec.generate_private_key(ec.SECP256R1()),
        p384=ec.generate_private_key(ec.SECP384R1()), p521=ec.generate_private_key(ec.SECP521R1()))


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    with OIDCProvider() as started:
        yield started


@pytest.fixture(scope="module")
def binary() -> Path:
    return checker.checker_or_fail()


def spec(*, username_claim: str = "sub", shared: bool = True, rsa_key: bool = True, ecdsa: str | None = "P-256",
         oidc_issuer: str | None = None, namespace: str | None = NS, issuer: str = SELF) -> PxSecuritySpec:
    self_signed: dict[str, Any] = {"issuer": issuer}
    if shared:
        self_signed["sharedSecret"] = {}
    if rsa_key:
        self_signed["rsa"] = {"secretName": "px-jwt-rsa"}
    if ecdsa:
        self_signed["ecdsa"] = {"secretName": "px-jwt-ecdsa", "curve": ecdsa}
    raw: dict[str, Any] = {"usernameClaim": username_claim, "selfSigned": self_signed}
    if oidc_issuer:
        raw["oidc"] = {"issuer": oidc_issuer, "clientID": "portworx"}
        if namespace:
            raw["oidc"]["customClaimNamespace"] = namespace
    return parse_spec(raw)


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid admin's claims at T; `x=None` removes x."""
    base: dict[str, Any] = {"iss": SELF, "sub": "alice", "name": "Alice", "email": "alice@example.com",
                            "roles": ["system.admin"], "groups": ["*"], "iat": T - 600, "exp": T + 3600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def raw_claims(text: str) -> bytes:
    return text.replace("$T", str(T)).replace("$E", str(T + 3600)).replace("$I", str(T - 600)).encode()


BASE_JSON = ('"iss":"operator.portworx.io","sub":"alice","name":"Alice","email":"alice@example.com",'
             '"iat":$I,"exp":$E')


def hs(body: dict[str, Any] | bytes, alg: str = "HS256", key: bytes = SECRET, **header: Any) -> str:
    return forge({"alg": alg, "typ": "JWT", **header}, body, key, alg)


def build(k: Keys, provider: OIDCProvider) -> list[Case]:
    oidc_iss = provider.issuer
    jwks_doc = provider.jwks()
    jwks = json.dumps(jwks_doc).encode()
    full_keys = VerifyKeys(shared_secret=SECRET, rsa_public_pem=public_pem(k.rsa),
                           ecdsa_public_pem=public_pem(k.p256), apps_secret=APPS_SECRET)
    main = Scenario(spec(oidc_issuer=oidc_iss), full_keys, jwks)
    email = Scenario(spec(username_claim="email", oidc_issuer=oidc_iss), full_keys, jwks)
    p384 = Scenario(spec(shared=False, rsa_key=False, ecdsa="P-384"), VerifyKeys(ecdsa_public_pem=public_pem(k.p384)))
    p521 = Scenario(spec(shared=False, rsa_key=False, ecdsa="P-521"), VerifyKeys(ecdsa_public_pem=public_pem(k.p521)))
    rsa_only = Scenario(spec(shared=False, ecdsa=None), VerifyKeys(rsa_public_pem=public_pem(k.rsa)))
    pkcs1 = k.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    bad_rsa = Scenario(spec(ecdsa=None), VerifyKeys(shared_secret=SECRET, rsa_public_pem=pkcs1))
    newline = Scenario(spec(rsa_key=False, ecdsa=None), VerifyKeys(shared_secret=SECRET + b"\n"))
    rsa_1024 = Scenario(spec(shared=False, ecdsa=None), VerifyKeys(rsa_public_pem=public_pem(k.rsa_1024)))
    no_ns = Scenario(spec(oidc_issuer=oidc_iss, namespace=None), full_keys, jwks)
    rs256_only = Scenario(main.spec, full_keys, jwks, ("RS256", "HS256", "none"))

    def with_jwks(document: Any) -> Scenario:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return Scenario(main.spec, full_keys, body)

    rsa_jwk, ec_jwk = jwks_doc["keys"]
    oidc_body = claims(iss=oidc_iss, aud="portworx")

    def rs(body: dict[str, Any] | bytes, alg: str = "RS256", **header: Any) -> str:
        key = provider.ec_key if alg.startswith("ES") else provider.rsa_key
        kid = EC_KID if alg.startswith("ES") else RSA_KID
        return forge({"alg": alg, "typ": "JWT", "kid": kid, **header}, body, key, alg)

    cases: list[Case] = []

    def add(case_id: str, token: str, scenario: Scenario = main, **extra: Any) -> None:
        cases.append(Case(case_id, token, scenario, **extra))

    # -- self-signed, every alg family and length ------------------------------------------------------
    for alg in ("HS256", "HS384", "HS512"):
        add(f"self {alg}", hs(claims(), alg), expect="accepted")
    for alg in ("RS256", "RS384", "RS512"):
        add(f"self {alg}", forge({"alg": alg, "typ": "JWT"}, claims(), k.rsa), expect="accepted")
    add("self ES256 P-256", forge({"alg": "ES256"}, claims(), k.p256), expect="accepted")
    add("self ES384 P-384", forge({"alg": "ES384"}, claims(), k.p384), p384, expect="accepted")
    add("self ES512 P-521", forge({"alg": "ES512"}, claims(), k.p521), p521, expect="accepted")
    add("self RS256 1024-bit key", forge({"alg": "RS256"}, claims(), k.rsa_1024), rsa_1024)
    add("self email username", hs(claims()), email)

    # -- wrong keys and algorithms ----------------------------------------------------------------------
    add("HS256 other secret", hs(claims(), key=b"another-secret-of-a-good-length-0123456789"), expect="signature")
    add("HS256 base64-decoded secret", hs(claims(), key=base64.b64decode(SECRET)), expect="signature")
    add("HS256 secret without the Secret's newline", hs(claims()), newline, expect="signature")
    add("RS256 other key", forge({"alg": "RS256"}, claims(), k.rsa_other), expect="signature")
    add("ES256 other key", forge({"alg": "ES256"}, claims(), k.p256_other), expect="signature")
    add("tampered payload", hs(claims()).split(".")[0] + "." + seg(json.dumps(claims(roles=["x"])).encode())
        + "." + hs(claims()).split(".")[2], expect="signature")
    add("alg none", forge({"alg": "none"}, claims(), None, "none"), expect="alg")
    add("alg None", forge({"alg": "None"}, claims(), None, "none"), expect="alg")
    add("PS256 self-signed", forge({"alg": "PS256"}, claims(), k.rsa), expect="alg")
    add("EdDSA", forge({"alg": "EdDSA"}, claims(), SECRET, "HS256"), expect="alg")
    add("alg HS999", forge({"alg": "HS999"}, claims(), SECRET, "HS256"), expect="alg")
    add("alg missing", forge({"typ": "JWT"}, claims(), SECRET, "HS256"), expect="alg")
    add("alg a number", forge({"alg": 256}, claims(), SECRET, "HS256"), expect="alg")
    add("ES384 header, P-256 signature", forge({"alg": "ES384"}, claims(), k.p256, "ES256"), expect="signature")
    add("ES256 by a P-384 key", forge({"alg": "ES256"}, claims(), k.p384, "ES256"), p384, expect="signature")
    add("RS256 against an RSA-less issuer", forge({"alg": "RS256"}, claims(), k.rsa), newline, expect="no-key")
    add("HS256 against an RSA-only issuer", hs(claims()), rsa_only, expect="no-key")
    add("HS256 with a PKCS#1 RSA key configured", hs(claims()), bad_rsa, expect="config")

    # -- required, empty and mistyped claims ------------------------------------------------------------
    for missing in ("email", "name", "sub", "iat", "exp"):
        add(f"missing {missing}", hs(claims(**{missing: None})), expect="required-claim")
    add("sub empty", hs(claims(sub="")), expect="username")
    add("sub null", hs(claims(sub=None) | {"sub": None}), expect="username")
    add("email empty, username email", hs(claims(email="")), email, expect="username")
    add("email empty, username sub", hs(claims(email="")), expect="accepted")
    add("roles a string", hs(claims(roles="system.admin")), expect="claims")
    add("groups with a number", hs(claims(groups=["ops", 7])), expect="claims")
    add("name a number", hs(claims(name=42)), expect="claims")
    add("iss a number", hs(claims(iss=5)), expect="claims")
    add("exp a numeric string", hs(claims(exp=str(T + 3600))), expect="exp")
    add("iat true", hs(claims(iat=True)), expect="iat")
    add("nbf null", hs(claims(nbf=None) | {"nbf": None}), expect="nbf")
    add("no roles, no groups", hs(claims(roles=None, groups=None)), expect="accepted")
    add("several problems", hs(claims(exp=T - 10, roles="admin", email=None)), expect="claims")

    # -- the clock ---------------------------------------------------------------------------------------
    add("exp 0 never expires", hs(claims(exp=0)), expect="accepted", warns="never expires")
    add("exp past", hs(claims(exp=T - 1)), expect="exp")
    add("exp equal to now", hs(claims(exp=T)), expect="exp")
    add("exp far future", hs(claims(exp=7_258_118_400)), expect="accepted", warns="a leaked copy")
    add("exp 1e30", hs(raw_claims("{" + BASE_JSON.replace('"exp":$E', '"exp":1e30') + "}")), expect="exp")
    add("exp 9.3e18", hs(claims(exp=9.3e18)), expect="exp")
    add("exp just below Go's wrap", hs(claims(exp=9_223_372_000_000_000_000)), expect="exp")
    add("exp fractional within the second", hs(claims(exp=T + 0.9)), expect="exp")
    add("exp fractional next second", hs(claims(exp=T + 1.5)), expect="accepted")
    add("exp -1", hs(claims(exp=-1)), expect="exp")
    add("iat one second ahead", hs(claims(iat=T + 1)), expect="iat")
    add("iat fractional, same second", hs(claims(iat=T + 0.5)), expect="accepted")
    add("iat 0", hs(claims(iat=0)), expect="accepted")
    add("nbf ahead", hs(claims(nbf=T + 5)), expect="nbf")
    add("nbf 0", hs(claims(nbf=0)), expect="accepted")
    add("fractional now", hs(claims(exp=T + 1)), now=NOW + datetime.timedelta(microseconds=999_999),
        expect="accepted")
    add("expired and badly signed", hs(claims(exp=T - 5), key=b"wrong-secret-wrong-secret-wrong-secret"),
        expect="signature")

    # -- repeated and case-variant names ------------------------------------------------------------------
    add("ROLES after roles", hs(raw_claims("{" + BASE_JSON + ',"roles":["system.user"],"ROLES":["system.admin"]}')),
        expect="accepted", warns="case-insensitively")
    add("roles after ROLES", hs(raw_claims("{" + BASE_JSON + ',"ROLES":["system.admin"],"roles":["system.user"]}')),
        expect="accepted")
    add("Roles alone", hs(raw_claims("{" + BASE_JSON + ',"Roles":["system.admin"]}')), expect="accepted")
    add("Sub empty after sub", hs(raw_claims("{" + BASE_JSON + ',"Sub":""}')), expect="username")
    add("SUB without sub", hs(raw_claims("{" + BASE_JSON.replace('"sub":"alice",', "") + ',"SUB":"alice"}')),
        expect="required-claim")
    add("ISS shadowing iss", hs(raw_claims("{" + BASE_JSON.replace('"iss":"operator.portworx.io"',
                                                                   '"iss":"evil.example.com"')
                                           + ',"ISS":"operator.portworx.io"}')), expect="accepted")
    add("long s in sub", hs(raw_claims("{" + BASE_JSON + ',"\u017fub":"mallory"}')), expect="accepted")
    add("Kelvin sign is not an ASCII letter we use", hs(raw_claims("{" + BASE_JSON + ',"\u212aey":"x"}')),
        expect="accepted")
    add("roles twice", hs(raw_claims("{" + BASE_JSON + ',"roles":["system.admin"],"roles":["system.view"]}')),
        expect="accepted")
    add("roles then null", hs(raw_claims("{" + BASE_JSON + ',"roles":["system.admin"],"roles":null}')),
        expect="accepted")
    add("roles reused with nulls", hs(raw_claims("{" + BASE_JSON + ',"roles":["a","b"],"ROLES":["c"],'
                                                 '"Roles":[null,null]}')), expect="accepted")
    add("sub then null", hs(raw_claims("{" + BASE_JSON + ',"SUB":null}')), expect="accepted")

    # -- JSON as Go reads it ------------------------------------------------------------------------------
    utf16 = ("{" + BASE_JSON + "}").replace("$I", str(T - 600)).replace("$E", str(T + 3600)).encode("utf-16")
    add("claims in UTF-16", hs(utf16), expect="malformed")
    add("claims with a BOM", hs(b"\xef\xbb\xbf" + raw_claims("{" + BASE_JSON + "}")), expect="malformed")
    add("NaN", hs(raw_claims("{" + BASE_JSON + ',"x":NaN}')), expect="malformed")
    add("1e400 in an extra claim", hs(raw_claims("{" + BASE_JSON + ',"x":[1e400]}')), expect="malformed")
    add("invalid UTF-8 in name", hs(raw_claims("{" + BASE_JSON.replace("Alice", "Al\xffice") + "}")
                                    .replace(b"Al\xc3\xbfice", b"Al\xffice")), expect="accepted")
    add("lone surrogate escape in sub", hs(raw_claims("{" + BASE_JSON.replace('"sub":"alice"', '"sub":"\\ud800"')
                                                      + "}")), expect="accepted")
    add("trailing garbage after the claims", hs(raw_claims("{" + BASE_JSON + "}x")), expect="malformed")
    add("claims are an array", hs(b"[1,2]"), expect="claims")
    add("claims are null", hs(b"null"), expect="malformed")
    add("deep nesting within Go's limit", hs(raw_claims("{" + BASE_JSON + ',"x":' + "[" * 9999 + "]" * 9999 + "}")),
        expect="accepted")
    add("deep nesting beyond Go's limit", hs(raw_claims("{" + BASE_JSON + ',"x":' + "[" * 10000 + "]" * 10000 + "}")),
        expect="malformed")
    add("header is an array", forge(b"[]", claims(), SECRET, "HS256"), expect="malformed")
    add("1e400 in the header", forge(b'{"alg":"HS256","x":1e400}', claims(), SECRET, "HS256"), expect="malformed")

    # -- segments and encodings --------------------------------------------------------------------------
    good = hs(claims())
    h, c, s = good.split(".")
    odd = seg(b'{"alg":"HS256","x":12}')  # 30 characters: base64 would pad it with "=="
    add("padding on the header", resign(f"{odd}==.{c}", SECRET, "HS256"), expect="malformed")
    add("unpadded odd header", resign(f"{odd}.{c}", SECRET, "HS256"), expect="accepted")
    add("padding on the signature", f"{h}.{c}.{s}=", expect="signature")
    add("padding on the claims", f"{h}.{c}=.{s}", expect="malformed")
    add("four segments", f"{h}.{c}.{s}.{s}", expect="malformed")
    add("two segments", f"{h}.{c}", expect="malformed")
    add("standard base64 in the signature", f"{h}.{c}.{s.replace('-', '+').replace('_', '/')}"
        if ("-" in s or "_" in s) else f"{h}.{c}.{s}+", expect="signature")
    add("a newline inside the claims segment", resign(f"{h}.{c[:10]}\n{c[10:]}", SECRET, "HS256"), expect="accepted")
    add("huge token", hs(claims(padding="x" * 1_000_000)), expect="accepted")
    add("empty token", "", expect="malformed")

    # -- headers ------------------------------------------------------------------------------------------
    add("kid header", hs(claims(), kid="nope"), expect="accepted")
    add("jku and x5u headers", hs(claims(), jku="https://evil.example.com/jwks", x5u="https://evil.example.com/c"),
        expect="accepted")
    add("crit header, self-signed", hs(claims(), crit=["exp"]), expect="accepted", warns="ignores crit")

    # -- issuers ------------------------------------------------------------------------------------------
    add("issuer with a trailing slash", hs(claims(iss=SELF + "/")), expect="untrusted-issuer")
    add("issuer in capitals", hs(claims(iss=SELF.upper())), expect="untrusted-issuer")
    add("iss empty", hs(claims(iss="")), expect="no-issuer")
    add("iss missing", hs(claims(iss=None)), expect="no-issuer")
    add("apps issuer with the apps key", hs(claims(iss=APPS_ISSUER), key=APPS_SECRET), expect="accepted")
    add("apps issuer with the user secret", hs(claims(iss=APPS_ISSUER)), expect="signature")
    add("apps issuer, RS256", forge({"alg": "RS256"}, claims(iss=APPS_ISSUER), k.rsa), expect="no-key")

    # -- OIDC, from the test provider ---------------------------------------------------------------------
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS512", "ES256"):
        add(f"oidc {alg}", rs(oidc_body, alg), expect="accepted")
    add("oidc via the provider's own signer", provider.token(oidc_body), expect="accepted")
    add("oidc without kid", forge({"alg": "RS256"}, oidc_body, provider.rsa_key), expect="accepted")
    add("oidc unknown kid", rs(oidc_body, kid="rotated"), expect="signature")
    add("oidc other key, same kid", forge({"alg": "RS256", "kid": RSA_KID}, oidc_body, k.rsa_other),
        expect="signature")
    add("oidc HS256", hs(oidc_body), expect="alg")
    add("oidc alg none", forge({"alg": "none"}, oidc_body, None, "none"), expect="alg")
    add("oidc aud missing", rs(claims(iss=oidc_iss)), expect="audience")
    add("oidc aud null", rs(oidc_body | {"aud": None}), expect="audience")
    add("oidc aud list", rs(oidc_body | {"aud": ["account", "portworx"]}), expect="accepted")
    add("oidc aud other", rs(oidc_body | {"aud": "other"}), expect="audience")
    add("oidc aud a number", rs(oidc_body | {"aud": 5}), expect="claims")
    add("oidc expired", rs(oidc_body | {"exp": T - 1}), expect="exp")
    add("oidc exp equal to now", rs(oidc_body | {"exp": T}), expect="accepted")
    add("oidc exp equal to a fractional now", rs(oidc_body | {"exp": T}),
        now=NOW + datetime.timedelta(microseconds=1), expect="exp")
    add("oidc exp 0", rs(oidc_body | {"exp": 0}), expect="exp")
    add("oidc exp a numeric string", rs(oidc_body | {"exp": str(T + 60)}), expect="accepted")
    add("oidc exp null", rs(oidc_body | {"exp": None}), expect="claims")
    add("oidc exp missing", rs(claims(iss=oidc_iss, aud="portworx", exp=None)), expect="exp")
    add("oidc Exp shadows exp", rs(raw_claims('{"iss":"' + oidc_iss + '","aud":"portworx","sub":"a","name":"A",'
                                              '"email":"a@x","iat":$I,"exp":$E,"Exp":$I}')), expect="exp")
    add("oidc nbf within leeway", rs(oidc_body | {"nbf": T + 60}), expect="accepted")
    add("oidc nbf beyond leeway", rs(oidc_body | {"nbf": T + 61}), expect="nbf")
    add("oidc iat in the future", rs(oidc_body | {"iat": T + 3000}), expect="accepted", warns="never checks iat")
    add("oidc nonce a number", rs(oidc_body | {"nonce": 5}), expect="claims")
    add("oidc missing name", rs(claims(iss=oidc_iss, aud="portworx", name=None)), expect="required-claim")
    add("oidc namespaced roles override", rs(oidc_body | {"roles": ["system.guest"], NS + "roles": ["system.admin"],
                                                          NS + "groups": ["storage"]}), expect="accepted")
    add("oidc namespaced roles without a namespace", rs(oidc_body | {"roles": ["system.view"],
                                                                     NS + "roles": ["system.admin"]}), no_ns,
        expect="accepted")
    add("oidc bad top-level roles, good namespaced", rs(oidc_body | {"roles": 5, NS + "roles": ["system.admin"]}),
        expect="claims")
    add("oidc namespaced roles a string", rs(oidc_body | {NS + "roles": "system.admin"}), expect="claims")
    add("oidc ROLES and roles re-sorted", rs(raw_claims('{"iss":"' + oidc_iss + '","aud":"portworx","sub":"a",'
                                                        '"name":"A","email":"a@x","iat":$I,"exp":$E,'
                                                        '"roles":["system.user"],"ROLES":["system.admin"]}')),
        expect="accepted")
    add("oidc 1e400 in an extra claim", rs(raw_claims('{"iss":"' + oidc_iss + '","aud":"portworx","sub":"a",'
                                                      '"name":"A","email":"a@x","iat":$I,"exp":$E,"x":1e400}')),
        expect="claims")
    add("oidc crit header", rs(oidc_body, crit=["exp"]), expect="signature")
    add("oidc crit b64 only", rs(oidc_body, crit=["b64"]), expect="accepted")
    add("oidc repeated header name", forge(b'{"alg":"RS256","kid":"' + RSA_KID.encode() + b'","kid":"'
                                           + RSA_KID.encode() + b'"}', oidc_body, provider.rsa_key, "RS256"),
        expect="malformed")
    add("oidc kid a number", rs(oidc_body, kid=5), expect="malformed")
    add("oidc junk x5c header", rs(oidc_body, x5c=["bm90IGEgY2VydA=="]), expect="malformed")
    add("oidc jku and x5u headers", rs(oidc_body, jku="https://evil.example.com/k", x5u="https://evil.example.com/c"),
        expect="accepted")
    oidc_token = rs(oidc_body)
    oh, oc, osig = oidc_token.split(".")
    add("oidc padded header", f"{oh}=.{oc}.{osig}" if len(oh) % 4 else f"{oh}.{oc}.{osig}=", expect="malformed")
    add("oidc space inside the signature", f"{oh}.{oc}.{osig[:20]} {osig[20:]}", expect="accepted")
    add("oidc PS256 when the provider lists RS256", rs(oidc_body, "PS256"), rs256_only, expect="alg")
    add("oidc ES256 with only a P-384 key in the JWKS", forge({"alg": "ES256"}, oidc_body, k.p384, "ES256"),
        with_jwks({"keys": [jwk(k.p384, kid="p384")]}), expect="signature")
    add("oidc JWKS with a junk entry", oidc_token, with_jwks({"keys": [rsa_jwk, ec_jwk, {"kty": "nope"}]}),
        expect="jwks")
    add("oidc JWKS with a null entry", oidc_token, with_jwks({"keys": [rsa_jwk, None]}), expect="jwks")
    add("oidc JWKS with an EC point off the curve", oidc_token,
        with_jwks({"keys": [rsa_jwk, {**ec_jwk, "y": ec_jwk["x"]}]}), expect="jwks")
    add("oidc JWKS key with use enc", oidc_token, with_jwks({"keys": [{**rsa_jwk, "use": "enc"}]}),
        expect="accepted")
    add("oidc JWKS key with x5u", oidc_token, with_jwks({"keys": [{**rsa_jwk, "x5u": "https://x.example.com/c"}]}))
    add("oidc JWKS keys spelled KEYS", oidc_token, with_jwks({"KEYS": [rsa_jwk]}), expect="accepted")
    add("oidc JWKS not JSON", oidc_token, with_jwks(b"{nope"), expect="jwks")
    add("oidc JWKS empty", oidc_token, with_jwks({"keys": []}), expect="signature")
    add("oidc JWKS private key only", oidc_token, with_jwks({"keys": [{**rsa_jwk, "d": rsa_jwk["n"]}]}))
    add("oidc JWKS repeated member in a key", oidc_token,
        with_jwks(b'{"keys":[{"kty":"RSA","kty":"RSA","n":"' + rsa_jwk["n"].encode() + b'","e":"AQAB"}]}'),
        expect="jwks")
    return cases


def go_equal(ours: Verdict, theirs: dict[str, Any]) -> list[str]:
    """What differs between pxsec's verdict and the Go checker's (empty: they agree)."""
    diffs = []
    if ours.accepted != theirs["accepted"]:
        diffs.append(f"accepted: pxsec {ours.accepted}, Go {theirs['accepted']}")
    if ours.cause != theirs["cause"]:
        diffs.append(f"cause: pxsec {ours.cause!r}, Go {theirs['cause']!r}")
    if ours.accepted and theirs["accepted"]:
        for name, mine, go in (("source", ours.source, theirs.get("source")),
                               ("issuer", ours.issuer, theirs.get("issuer")),
                               ("username", ours.username, theirs["username"]),
                               ("roles", list(ours.roles), theirs["roles"]),
                               ("groups", list(ours.groups), theirs["groups"])):
            if mine != go:
                diffs.append(f"{name}: pxsec {mine!r}, Go {go!r}")
    return diffs


@pytest.fixture(scope="module")
def judged(keys: Keys, provider: OIDCProvider, binary: Path) -> list[tuple[Case, Verdict, dict[str, Any]]]:
    cases = build(keys, provider)
    go_cases = [checker.case_for(c.id, c.token, c.scenario.spec, c.scenario.keys, c.now, c.scenario.jwks,
                                 c.scenario.algorithms) for c in cases]
    verdicts = checker.judge(binary, go_cases)
    ours = [verify(c.token, c.scenario.spec, c.scenario.keys, c.now, c.scenario.jwks,
                   oidc_algorithms=c.scenario.algorithms) for c in cases]
    return list(zip(cases, ours, verdicts, strict=True))


def test_there_are_enough_cases(judged: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    assert len(judged) >= 60
    assert len({c.id for c, _, _ in judged}) == len(judged)
    accepted = sum(1 for _, _, go in judged if go["accepted"])
    assert 20 <= accepted <= len(judged) - 20  # good and hostile, both well represented


def test_no_verdict_differs_from_portworx(judged: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    differences = []
    for case, ours, go in judged:
        diffs = go_equal(ours, go)
        if diffs:
            differences.append(f"{case.id}: {'; '.join(diffs)}\n    pxsec: {ours.reason}\n    Go: {go.get('error')}")
    assert not differences, f"{len(differences)} of {len(judged)} verdicts differ:\n" + "\n".join(differences)


def test_portworx_verdicts_the_issue_names(judged: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    """The pinned expectations hold for the Go libraries themselves (so the suite tests what it says)."""
    wrong = [f"{c.id}: expected {c.expect}, Go says {go['cause']} ({go.get('error')})"
             for c, _, go in judged if c.expect is not None and go["cause"] != c.expect]
    assert not wrong, "\n".join(wrong)


def test_dangerous_acceptances_are_warned_about(judged: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    for case, ours, _ in judged:
        if case.warns is not None:
            assert ours.accepted, case.id
            assert any(case.warns in w for w in ours.warnings), (case.id, ours.warnings)
    plain = next(ours for case, ours, _ in judged if case.id == "self HS256")
    assert plain.warnings == ()


def test_reasons_never_contain_the_token_or_a_key(judged: list[tuple[Case, Verdict, dict[str, Any]]]) -> None:
    for case, ours, _ in judged:
        text = ours.reason + " ".join(ours.warnings)
        for part in case.token.split("."):
            if len(part) >= 16:
                assert part not in text, case.id
        assert SECRET.decode() not in text and APPS_SECRET.decode() not in text, case.id
