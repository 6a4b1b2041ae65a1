"""Judge a token the way Portworx (OpenStorage `pkg/auth`) judges it, and say precisely why not.

People debug PX-Security by pasting tokens into jwt.io, which answers "signature verified" for tokens
Portworx still rejects (wrong `iss` by a trailing slash, `iat` two seconds in the future, the shared
secret base64-decoded, ES256 on a P-384 key). This module applies OpenStorage's own rules instead, so
`pxsec token verify` and the operator agree with the storage cluster:

* **The issuer picks the authenticator.** OpenStorage keeps one authenticator per exact `iss`; any
  other value is "not a trusted issuer", however valid the signature.
* **Self-signed** (`JwtAuthenticator`, golang-jwt): the `alg` prefix picks the key — `HS*` the shared
  secret (its ASCII bytes), `RS*` the RSA public key, `ES*` the ECDSA public key; `none`, `PS*` and
  anything else are rejected. Time checks are golang-jwt's, with no leeway: `now < exp`, `iat <= now`,
  `nbf <= now`, where `now` is truncated to whole seconds (golang-jwt compares `time.Now().Unix()`).
* **OIDC** (coreos go-oidc v2): `aud` must contain the client ID; RS/ES/PS 256/384/512 only, never HS;
  the token is expired when `exp < now`; `nbf` has go-oidc's one-minute leeway; and — unlike
  self-signed tokens — **`iat` is not compared with the clock** (go-oidc never checks it; OpenStorage
  only requires its presence). `customClaimNamespace + "roles"` / `+ "groups"` override the top-level
  claims. The signature is checked against a JWKS the caller supplies (the operator's OIDC probe, or
  `--jwks` on the command line); without one the token is **not** accepted, because an unchecked
  signature proves nothing.
* **Both** then require the presence of `iss`, `sub`, `exp`, `iat`, `name`, `email` (OpenStorage's
  `requiredClaims`), decode `iss`/`sub`/`name`/`email` as strings and `roles`/`groups` as string arrays
  (Go's `json.Unmarshal` into its `Claims` struct fails otherwise), and require the configured username
  claim to be non-empty.

Everything is pure: the clock is a parameter, keys are bytes, and nothing here logs. Reasons name
claims, issuers, algorithms and Secrets, never a token or a key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec.keymaterial import CURVE_ALGORITHM
from pxsec.spec import KEY_PRIVATE_PEM, KEY_PUBLIC_PEM, KEY_SHARED_SECRET, PxSecuritySpec

SELF_SIGNED: Final = "self-signed"
OIDC: Final = "oidc"

# OpenStorage's `requiredClaims`, in its order: checked for presence, for both sources.
REQUIRED_CLAIMS: Final = ("iss", "sub", "exp", "iat", "name", "email")
HS_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
RS_ALGORITHMS: Final = ("RS256", "RS384", "RS512")
ES_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
PS_ALGORITHMS: Final = ("PS256", "PS384", "PS512")
SELF_SIGNED_ALGORITHMS: Final = HS_ALGORITHMS + RS_ALGORITHMS + ES_ALGORITHMS
OIDC_ALGORITHMS: Final = RS_ALGORITHMS + ES_ALGORITHMS + PS_ALGORITHMS
# ES256 pairs with P-256 and so on: golang-jwt and go-jose reject a signature of the wrong size.
ALGORITHM_CURVE: Final = {alg: curve for curve, alg in CURVE_ALGORITHM.items()}
# go-oidc tolerates an `nbf` up to one minute ahead of the clock (and checks no `iat` at all).
OIDC_NBF_LEEWAY: Final = 60

_B64URL = re.compile(r"^[A-Za-z0-9_-]*\Z")
_SHOWN_MAX = 80


class MalformedToken(ValueError):
    """The text is not a compact JWS with JSON header and claims. The message never quotes the token."""


@dataclass(frozen=True)
class Decoded:
    """The unverified parts of a token: enough to route it and to explain a rejection."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


@dataclass(frozen=True)
class VerifyKeys:
    """The verification half of the self-signed key material, as Portworx is given it.

    `shared_secret` is the Secret's value as stored (its ASCII bytes are the HMAC key); the PEMs are
    PKIX public keys or X.509 certificates. Only kinds configured in `spec.selfSigned` are used, as
    Portworx only receives those.
    """

    shared_secret: bytes | None = field(default=None, repr=False)
    rsa_public_pem: bytes | None = None
    ecdsa_public_pem: bytes | None = None

    @classmethod
    def from_secrets(cls, spec: PxSecuritySpec, secrets: Mapping[str, Mapping[str, bytes] | None]) -> VerifyKeys:
        """Pick the keys out of Secret data (Secret name -> key -> bytes), by the names in the spec.

        A key pair Secret without `public.pem` gets the public half derived from `private.pem`: the
        operator always adds exactly that, so it is what Portworx will mount.
        """
        ss = spec.self_signed
        if ss is None:
            return cls()
        shared = (secrets.get(ss.shared_secret) or {}).get(KEY_SHARED_SECRET) if ss.shared_secret else None
        rsa_pem = _public_half(secrets.get(ss.rsa.secret_name)) if ss.rsa else None
        ecdsa_pem = _public_half(secrets.get(ss.ecdsa.secret_name)) if ss.ecdsa else None
        return cls(shared_secret=shared, rsa_public_pem=rsa_pem, ecdsa_public_pem=ecdsa_pem)


@dataclass(frozen=True)
class Verdict:
    """What Portworx would do with a token: `accepted`, by which source, as whom, and why (not)."""

    accepted: bool
    source: str | None  # "self-signed" | "oidc" | None (no authenticator for this iss)
    issuer: str | None
    algorithm: str | None
    username: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    reason: str


def _public_half(data: Mapping[str, bytes] | None) -> bytes | None:
    if not data:
        return None
    if KEY_PUBLIC_PEM in data:
        return data[KEY_PUBLIC_PEM]
    private = data.get(KEY_PRIVATE_PEM)
    if private is None:
        return None
    try:
        key = serialization.load_pem_private_key(private, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- parsing ------------------------------------------------------------------------------------------


def _b64url_json(segment: str, what: str) -> Mapping[str, Any]:
    if not _B64URL.match(segment):
        raise MalformedToken(f"not a JWT: the {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise MalformedToken(f"not a JWT: the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"not a JWT: the {what} is not a JSON object")
    return value


def decode_unverified(token: str) -> Decoded:
    """Header and claims of a compact JWS, without checking anything. Raises MalformedToken."""
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(f"not a JWT: expected 3 dot-separated parts, found {len(parts)}")
    return Decoded(header=_b64url_json(parts[0], "header"), claims=_b64url_json(parts[1], "claims segment"))


def show(value: object) -> str:
    """A claim value fit for a message: quoted, one line, and short (claims are attacker-controlled)."""
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


# -- keys and signatures -----------------------------------------------------------------------------

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def load_public_key(pem: bytes) -> PublicKey | str:
    """A PKIX public key or an X.509 certificate's key (what golang-jwt accepts), or why not."""
    if b"BEGIN RSA PUBLIC KEY" in pem:
        return "is a PKCS#1 'RSA PUBLIC KEY'; OpenStorage accepts only PKIX ('BEGIN PUBLIC KEY') or a certificate"
    key: object
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            return "is not a PEM public key or certificate"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return f"is a {type(key).__name__}, not an RSA or ECDSA key"
    return key


_JOSE_CURVES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def curve_name(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The JOSE name of a key's curve (P-256, ...), or the library's name for curves JOSE lacks."""
    return _JOSE_CURVES.get(key.curve.name, key.curve.name)


def signature_verifies(token: str, algorithm: str, key: bytes | PublicKey) -> bool:
    """Whether the JWS signature of `token` verifies under `key` with exactly `algorithm`.

    pyjwt checks only the signature here (JWS level); every claim rule is ours.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyjwt warns about short HMAC keys; Portworx does not care
            jwt.PyJWS().decode_complete(token, key=key, algorithms=[algorithm])
    except (jwt.InvalidSignatureError, jwt.InvalidKeyError, jwt.DecodeError, ValueError, TypeError):
        return False
    return True


# -- the rules ----------------------------------------------------------------------------------------


def _unix(now: datetime.datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return now.timestamp()


def _when(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} (out of range)"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    return float(value) if isinstance(value, int | float) and _is_number(value) else None


def _string_array(claims: Mapping[str, Any], name: str, problems: list[str]) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    problems.append(f"{name} must be an array of strings, got {show(value)}")
    return ()


def _time_problems(claims: Mapping[str, Any], source: str, now: float) -> list[str]:
    problems: list[str] = []
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_number(claims[name]):
            problems.append(f"{name} must be a number of seconds since 1970, got {show(claims[name])}")
    exp, iat, nbf = _number(claims, "exp"), _number(claims, "iat"), _number(claims, "nbf")
    if source == SELF_SIGNED:
        whole = math.floor(now)  # golang-jwt compares time.Now().Unix(): whole seconds
        if exp is not None and not whole < exp:
            problems.append(f"token expired at {_when(exp)} ({_ago(whole - exp)} ago; no leeway)")
        if iat is not None and iat > whole:
            problems.append(
                f"iat {_when(iat)} is {_ago(iat - whole)} in the future: OpenStorage allows no leeway "
                "(backdate iat or fix the clock of the machine that signed it)")
        if nbf is not None and nbf > whole:
            problems.append(f"token is not valid before {_when(nbf)} (nbf; no leeway)")
    else:
        if exp is not None and exp < now:
            problems.append(f"token expired at {_when(exp)} ({_ago(now - exp)} ago)")
        if nbf is not None and now + OIDC_NBF_LEEWAY < nbf:
            problems.append(f"token is not valid before {_when(nbf)} (nbf, beyond go-oidc's one minute of leeway)")
    return problems


def _ago(seconds: float) -> str:
    """A rough, readable duration: 2s, 5m, 3h, 12d."""
    whole = max(0, math.ceil(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= 2 * size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


@dataclass(frozen=True)
class _ClaimsResult:
    problems: list[str]
    username: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]


def _check_claims(claims: Mapping[str, Any], spec: PxSecuritySpec, source: str, now: float) -> _ClaimsResult:
    problems: list[str] = []
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        problems.append(f"required claim{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
                        f"(OpenStorage requires {', '.join(REQUIRED_CLAIMS)})")
    for name in ("iss", "sub", "name", "email"):
        if claims.get(name) is not None and not isinstance(claims[name], str):
            problems.append(f"{name} must be a string, got {show(claims[name])}")
    problems += _time_problems(claims, source, now)

    effective = dict(claims)
    namespace = spec.oidc.custom_claim_namespace if spec.oidc and source == OIDC else None
    if namespace:
        for name in ("roles", "groups"):
            if namespace + name in claims:
                effective[name] = claims[namespace + name]  # a namespaced claim overrides the top level
    roles = _string_array(effective, "roles", problems)
    groups = _string_array(effective, "groups", problems)

    claim = spec.username_claim if spec.username_claim in ("sub", "email", "name") else "sub"
    raw_username = claims.get(claim)
    username = raw_username if isinstance(raw_username, str) else None
    if claim in claims and (raw_username is None or raw_username == ""):
        problems.append(f"usernameClaim is {claim}, so the token's {claim} must not be empty")
    return _ClaimsResult(problems, username, roles, groups)


def _reject(reason: str, *, source: str | None = None, issuer: str | None = None,
            algorithm: str | None = None) -> Verdict:
    return Verdict(False, source, issuer, algorithm, None, (), (), reason)


def _self_signed_key(alg: str, iss: str, spec: PxSecuritySpec, keys: VerifyKeys) -> tuple[bytes | PublicKey, str] | str:
    """The key OpenStorage would pick for `alg`, with a description, or the precise reason it has none."""
    ss = spec.self_signed
    assert ss is not None
    if alg in HS_ALGORITHMS:
        if not ss.shared_secret:
            return (f"token is {alg} but issuer {show(iss)} has no shared secret "
                    "(spec.selfSigned.sharedSecret is not set)")
        if not keys.shared_secret:
            return (f"token is {alg}; issuer {show(iss)} uses the shared secret in Secret {ss.shared_secret}, "
                    "but its value was not provided")
        return keys.shared_secret, f"the shared secret (Secret {ss.shared_secret})"
    kind, pem, configured = (
        ("RSA", keys.rsa_public_pem, ss.rsa) if alg in RS_ALGORITHMS else ("ECDSA", keys.ecdsa_public_pem, ss.ecdsa))
    field_name = "rsa" if kind == "RSA" else "ecdsa"
    if configured is None:
        return f"token is {alg} but issuer {show(iss)} has no {kind} key (spec.selfSigned.{field_name} is not set)"
    if not pem:
        return (f"token is {alg}; issuer {show(iss)} uses the {kind} key in Secret {configured.secret_name}, "
                "but its public key was not provided")
    key = load_public_key(pem)
    if isinstance(key, str):
        return f"the {kind} public key of issuer {show(iss)} (Secret {configured.secret_name}) {key}"
    if kind == "RSA" and not isinstance(key, rsa.RSAPublicKey):
        return f"the RSA public key of issuer {show(iss)} (Secret {configured.secret_name}) is not an RSA key"
    if kind == "ECDSA":
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return f"the ECDSA public key of issuer {show(iss)} (Secret {configured.secret_name}) is not an ECDSA key"
        have, want = curve_name(key), ALGORITHM_CURVE[alg]
        if have != want:
            return (f"token is {alg} but the ECDSA key of issuer {show(iss)} is on {have} "
                    f"({alg} needs {want}; a {have} key signs {CURVE_ALGORITHM.get(have, 'nothing JOSE knows')})")
    return key, f"the {kind} key (Secret {configured.secret_name})"


def _verify_self_signed(token: str, decoded: Decoded, alg: str, iss: str, spec: PxSecuritySpec,
                        keys: VerifyKeys, now: float) -> Verdict:
    def reject(reason: str) -> Verdict:
        return _reject(reason, source=SELF_SIGNED, issuer=iss, algorithm=alg)

    if alg.lower() == "none":
        return reject("alg none (an unsigned token) is never accepted")
    if alg in PS_ALGORITHMS:
        return reject(f"token is {alg}, which self-signed issuers do not accept: the alg prefix picks the key "
                      "and only HS (shared secret), RS (RSA) and ES (ECDSA) exist")
    if alg not in SELF_SIGNED_ALGORITHMS:
        return reject(f"alg {show(alg)} is not accepted for self-signed tokens "
                      f"({', '.join(SELF_SIGNED_ALGORITHMS)})")
    found = _self_signed_key(alg, iss, spec, keys)
    if isinstance(found, str):
        return reject(found)
    key, described = found
    if not signature_verifies(token, alg, key):
        hint = ""
        if isinstance(key, bytes) and _verifies_with_decoded_secret(token, alg, key):
            hint = (": it was signed with the base64-decoded secret, but Portworx uses the secret's "
                    "ASCII bytes as the HMAC key")
        return reject(f"the {alg} signature does not verify with {described}{hint}")
    result = _check_claims(decoded.claims, spec, SELF_SIGNED, now)
    if result.problems:
        return reject("; ".join(result.problems))
    return Verdict(True, SELF_SIGNED, iss, alg, result.username, result.roles, result.groups,
                   f"accepted by the self-signed issuer {show(iss)}: {alg} signature verified with {described}")


def _verifies_with_decoded_secret(token: str, alg: str, secret: bytes) -> bool:
    try:
        decoded = base64.b64decode(secret + b"=" * (-len(secret) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(decoded) and signature_verifies(token, alg, decoded)


def _jwk_fits(jwk: Mapping[str, Any], alg: str) -> bool:
    kty = jwk.get("kty")
    if alg in ES_ALGORITHMS:
        return kty == "EC" and jwk.get("crv") == ALGORITHM_CURVE[alg]
    return kty == "RSA"


def _verify_jwks(token: str, alg: str, kid: object, jwks: Mapping[str, Any]) -> str | None:
    """None when a key of the JWKS verifies the signature, else why not (go-oidc: kid match, then any)."""
    raw_keys = jwks.get("keys")
    if not isinstance(raw_keys, list):
        return "the JWKS has no keys array"
    candidates = [k for k in raw_keys if isinstance(k, Mapping) and (kid is None or k.get("kid") == kid)]
    if not candidates:
        return f"no key in the JWKS has kid {show(kid)}"
    fitting = [k for k in candidates if _jwk_fits(k, alg)]
    if not fitting:
        kinds = ", ".join(sorted({f"{k.get('kty')}{'/' + str(k['crv']) if 'crv' in k else ''}" for k in candidates}))
        with_kid = f" with kid {show(kid)}" if kid is not None else ""
        return f"no key in the JWKS{with_kid} can verify {alg} (found {kinds})"
    for candidate in fitting:
        try:
            key = jwt.PyJWK(dict(candidate), algorithm=alg).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) and signature_verifies(token, alg, key):
            return None
    return f"the {alg} signature does not verify with any key of the JWKS" + (
        f" with kid {show(kid)}" if kid is not None else "")


def _verify_oidc(token: str, decoded: Decoded, alg: str, iss: str, spec: PxSecuritySpec, now: float,
                 jwks: Mapping[str, Any] | None, oidc_algorithms: Sequence[str] | None) -> Verdict:
    oidc = spec.oidc
    assert oidc is not None

    def reject(reason: str) -> Verdict:
        return _reject(reason, source=OIDC, issuer=iss, algorithm=alg)

    if alg.lower() == "none":
        return reject("alg none (an unsigned token) is never accepted")
    if alg in HS_ALGORITHMS:
        return reject(f"token is {alg}, but OIDC tokens must be signed with RS, ES or PS algorithms, never HS")
    allowed = [a for a in (oidc_algorithms or OIDC_ALGORITHMS) if a in OIDC_ALGORITHMS] or ["RS256"]
    if alg not in allowed:
        return reject(f"alg {show(alg)} is not accepted for OIDC issuer {show(iss)} ({', '.join(allowed)})")
    if not oidc.client_id:
        return reject("spec.oidc.clientID is empty: Portworx turns OIDC on only with a client ID")
    aud = decoded.claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if oidc.client_id not in audiences:
        return reject(f"aud {show(aud) if aud is not None else '(missing)'} does not contain the client ID "
                      f"{show(oidc.client_id)}")
    if jwks is not None:
        problem = _verify_jwks(token, alg, decoded.header.get("kid"), jwks)
        if problem is not None:
            return reject(problem)
    result = _check_claims(decoded.claims, spec, OIDC, now)
    if result.problems:
        return reject("; ".join(result.problems))
    if jwks is None:
        return Verdict(False, OIDC, iss, alg, result.username, result.roles, result.groups,
                       "the claims are acceptable, but the signature was not checked (no JWKS given), "
                       "so the token is not accepted")
    return Verdict(True, OIDC, iss, alg, result.username, result.roles, result.groups,
                   f"accepted by the OIDC issuer {show(iss)}: {alg} signature verified with the JWKS")


def verify(token: str, spec: PxSecuritySpec, keys: VerifyKeys, now: datetime.datetime,
           jwks: Mapping[str, Any] | None = None, *, oidc_algorithms: Sequence[str] | None = None) -> Verdict:
    """Would Portworx, configured from `spec` with `keys`, accept `token` at `now`?

    `jwks` is the OIDC provider's key set (the JSON object); without it an OIDC token's claims are
    judged but it is not accepted. `oidc_algorithms` are the provider's advertised
    `id_token_signing_alg_values_supported` when known (go-oidc then allows only those; it falls back to
    RS256 when the provider lists none it supports); by default RS/ES/PS 256/384/512.
    """
    now_s = _unix(now)
    try:
        decoded = decode_unverified(token)
    except MalformedToken as error:
        return _reject(str(error))
    alg_value = decoded.header.get("alg")
    alg = alg_value if isinstance(alg_value, str) else None
    iss = decoded.claims.get("iss")
    if iss is None or iss == "":
        return _reject("the token has no iss claim, so no authenticator can be picked", algorithm=alg)
    if not isinstance(iss, str):
        return _reject(f"iss must be a string, got {show(iss)}", algorithm=alg)
    if alg is None:
        return _reject("the token header has no alg")

    if spec.self_signed is not None and iss == spec.self_signed.issuer:
        return _verify_self_signed(token, decoded, alg, iss, spec, keys, now_s)
    if spec.oidc is not None and iss == spec.oidc.issuer:
        return _verify_oidc(token, decoded, alg, iss, spec, now_s, jwks, oidc_algorithms)
    return _reject(_untrusted(iss, spec), issuer=iss, algorithm=alg)


def _untrusted(iss: str, spec: PxSecuritySpec) -> str:
    trusted = []
    if spec.self_signed is not None:
        trusted.append(f"{show(spec.self_signed.issuer)} (self-signed)")
    if spec.oidc is not None:
        trusted.append(f"{show(spec.oidc.issuer)} (OIDC)")
    reason = f"{show(iss)} is not a trusted issuer; trusted: {', '.join(trusted) or 'none'}"
    for configured in [spec.self_signed.issuer if spec.self_signed else None, spec.oidc.issuer if spec.oidc else None]:
        if configured is None:
            continue
        if iss.rstrip("/") == configured.rstrip("/"):
            return reason + f" (differs from {show(configured)} only by a trailing slash: the match is exact)"
        if re.sub(r"^https?://", "", iss) == re.sub(r"^https?://", "", configured):
            return reason + f" (differs from {show(configured)} only by its scheme: the match is exact)"
        if iss.lower() == configured.lower():
            return reason + f" (differs from {show(configured)} only in case: the match is exact)"
    return reason
