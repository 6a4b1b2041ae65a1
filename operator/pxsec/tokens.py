"""Mint the tokens of `spec.tokens` and decide when to mint them again. Pure: no Kubernetes, no I/O.

The tokens are the ones the Portworx Operator mints for the cluster's own components (`px-admin-token`,
`px-user-token`), with the same claims, so Portworx, Stork and CSI treat them identically:

* `iss` = the self-signed issuer; `sub` and `email` = `<secretName>@<issuer>`; `name` = secretName;
  `roles` and `groups` from the spec (both always present, as arrays).
* `iat` is backdated 10 minutes: OpenStorage compares `iat <= now` with **no leeway**, so a node whose
  clock is a few seconds behind the operator's would otherwise reject a fresh token.
* `exp` = now + `spec.selfSigned.tokenLifetime`.
* Signed with the key `signingKey` names, or by default the shared secret, else RSA, else ECDSA:
  HS256 with the ASCII bytes of the shared secret (never its base64 decoding), RS256 with RSA, and
  ES256/ES384/ES512 by the ECDSA key's curve (P-256 -> ES256; a P-384 key cannot make a valid ES256).

Refresh policy (`renewal_time`): at two thirds of the lifetime, cert-manager's default, so a token is
replaced while a third of its life remains and a missed reconcile or a slow API server does not turn
into an outage; never later than one minute before expiry (the Portworx Operator's margin). For very
short lifetimes the two rules collide; the renewal then happens at one third of the lifetime at the
earliest, so the operator never re-mints in a tight loop.

Nothing here logs, and no message or `repr` holds a token or a key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import keymaterial
from pxsec.keymaterial import PublicKey
from pxsec.spec import (
    KEY_PRIVATE_PEM,
    KEY_SHARED_SECRET,
    LIFETIME_UNITS,
    MAX_TOKEN_LIFETIME_SECONDS,
    PxSecuritySpec,
    TokenSpec,
)
from pxsec.verify import (
    MalformedToken,
    VerifyKeys,
    curve_name,
    decode_unverified,
    signature_verifies,
)

SHARED_SECRET: Final = "SharedSecret"
RSA: Final = "RSA"
ECDSA: Final = "ECDSA"
# The default order when a token does not name its signingKey (the CRD documents the same).
DEFAULT_ORDER: Final = (SHARED_SECRET, RSA, ECDSA)

CLOCK_SKEW: Final = datetime.timedelta(minutes=10)  # iat backdating, as the Portworx Operator does
RENEW_FRACTION: Final = 2 / 3  # cert-manager's default: renew when a third of the lifetime remains
RENEW_MARGIN: Final = datetime.timedelta(minutes=1)  # never later than this before expiry
# The CRD refuses longer lifetimes with the same figure (celrules "self-signed-token-lifetime-max").
MAX_LIFETIME: Final = datetime.timedelta(seconds=MAX_TOKEN_LIFETIME_SECONDS)

_LIFETIME = re.compile(r"^([1-9][0-9]*)(s|m|h|d|y)\Z")
_UNITS: Final = LIFETIME_UNITS

# remint_reason results
MISSING: Final = "missing"
UNREADABLE: Final = "unreadable"
NO_SIGNING_KEY: Final = "no signing key"
SIGNING_KEY_CHANGED: Final = "signing key changed"
ISSUER_CHANGED: Final = "issuer changed"
CLAIMS_CHANGED: Final = "claims changed"
LIFETIME_CHANGED: Final = "lifetime changed"
EXPIRING: Final = "expiring"


class NoSigningKey(ValueError):
    """A token cannot be minted: the key it should be signed with is not configured or not available."""


class SigningError(ValueError):
    """The signing key exists but cannot be used (unparsable, wrong type). Never quotes the key."""


@dataclass(frozen=True)
class KeyRing:
    """The private key material the operator can sign with (each piece optional).

    `shared_secret` is the Secret's value as stored: its ASCII bytes are the HMAC key. The PEMs are
    PKCS#8 (or PKCS#1 / SEC1) private keys.
    """

    shared_secret: bytes | None = field(default=None, repr=False)
    rsa_private_pem: bytes | None = field(default=None, repr=False)
    ecdsa_private_pem: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_secrets(cls, spec: PxSecuritySpec, secrets: Mapping[str, Mapping[str, bytes] | None]) -> KeyRing:
        """Pick the signing keys out of Secret data (Secret name -> key -> bytes) by the spec's names."""
        ss = spec.self_signed
        if ss is None:
            return cls()

        def get(name: str | None, key: str) -> bytes | None:
            return (secrets.get(name) or {}).get(key) if name else None

        return cls(
            shared_secret=get(ss.shared_secret, KEY_SHARED_SECRET),
            rsa_private_pem=get(ss.rsa.secret_name if ss.rsa else None, KEY_PRIVATE_PEM),
            ecdsa_private_pem=get(ss.ecdsa.secret_name if ss.ecdsa else None, KEY_PRIVATE_PEM),
        )

    def material(self, kind: str) -> bytes | None:
        return {SHARED_SECRET: self.shared_secret, RSA: self.rsa_private_pem, ECDSA: self.ecdsa_private_pem}[kind]

    def verify_keys(self) -> VerifyKeys:
        """The public halves, for checking what was signed with this ring (unusable keys are left out)."""
        def public(pem: bytes | None) -> bytes | None:
            key = keymaterial.load_private_key(pem) if pem is not None else None
            if key is None or isinstance(key, str):
                return None
            return key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

        return VerifyKeys(self.shared_secret, public(self.rsa_private_pem), public(self.ecdsa_private_pem))


@dataclass(frozen=True)
class Minted:
    """A freshly signed token and what status needs to know about it (everything but `token` is safe)."""

    token: str = field(repr=False)
    expires_at: datetime.datetime
    renewal_time: datetime.datetime
    signing_key: str  # SharedSecret | RSA | ECDSA
    key_fingerprint: str  # sha256:..., see key_fingerprint()
    algorithm: str  # HS256 | RS256 | ES256 | ES384 | ES512


# -- lifetimes and renewal ------------------------------------------------------------------------------


def parse_lifetime(text: str) -> datetime.timedelta:
    """`tokenLifetime` / `--token-duration`: one positive whole number and one unit, s m h d y (365 days).

    Combined units (`1h30m`) are rejected, as the CRD and Portworx reject them.
    """
    match = _LIFETIME.match(text)
    if match is None:
        raise ValueError(
            f"invalid lifetime {text[:32]!r}: use one positive whole number and one unit, s, m, h, d or y "
            "(365 days), e.g. 24h, 7d, 1y")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_LIFETIME.total_seconds():
        raise ValueError(f"invalid lifetime {text!r}: longer than 100 years")
    return datetime.timedelta(seconds=seconds)


def renewal_time(issued: datetime.datetime, expires: datetime.datetime) -> datetime.datetime:
    """When to mint a token's successor: at 2/3 of its lifetime, never later than 1 minute before expiry.

    The 1-minute margin cannot fit lifetimes under 3 minutes; the renewal is then clamped to no earlier
    than 1/3 of the lifetime, so even a 30s token is re-minted every 10s rather than continuously.
    """
    lifetime = expires - issued
    at = min(issued + lifetime * RENEW_FRACTION, expires - RENEW_MARGIN)
    return max(at, issued + lifetime / 3)


# -- choosing a key and signing -------------------------------------------------------------------------


def _configured(kind: str, spec: PxSecuritySpec) -> bool:
    ss = spec.self_signed
    if ss is None:
        return False
    return {SHARED_SECRET: ss.shared_secret is not None, RSA: ss.rsa is not None, ECDSA: ss.ecdsa is not None}[kind]


def choose_signing_key(token: TokenSpec, spec: PxSecuritySpec, ring: KeyRing) -> str | None:
    """"SharedSecret" | "RSA" | "ECDSA" — the key to sign `token` with — or None if there is none.

    An explicit `signingKey` is honoured or nothing is: silently signing with another key would hand
    out tokens of a kind the user did not ask for. Without one, the first key in the order shared
    secret, RSA, ECDSA that is both configured in the spec and has private material in the ring (an
    adopted, verification-only key pair — public.pem alone — cannot sign and is skipped).
    """
    if token.signing_key is not None:
        kind = token.signing_key
        return kind if kind in DEFAULT_ORDER and _configured(kind, spec) and ring.material(kind) else None
    for kind in DEFAULT_ORDER:
        if _configured(kind, spec) and ring.material(kind):
            return kind
    return None


PrivateKey = keymaterial.PrivateKey


def _signer(kind: str, ring: KeyRing) -> tuple[bytes | PrivateKey, str]:
    """(key object, JWS algorithm) for `kind`, or SigningError / NoSigningKey."""
    material = ring.material(kind)
    if not material:
        raise NoSigningKey(f"no {kind} key to sign with")
    if kind == SHARED_SECRET:
        return material, "HS256"
    key = keymaterial.load_private_key(material)
    if isinstance(key, str):
        raise SigningError(f"the {kind} private key {key}")
    if kind == RSA:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SigningError("the RSA private key is not an RSA key")
        return key, "RS256"
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError("the ECDSA private key is not an ECDSA key")
    algorithm = keymaterial.CURVE_ALGORITHM.get(curve_name(key))
    if algorithm is None:
        raise SigningError(f"the ECDSA private key is on {key.curve.name}; use P-256, P-384 or P-521")
    return key, algorithm


def algorithm_for(kind: str, ring: KeyRing) -> str:
    """The JWS algorithm a token signed by `kind` from `ring` carries (ES* follows the curve)."""
    return _signer(kind, ring)[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _hs256(claims: Mapping[str, Any], key: bytes) -> str:
    """HS256 over any bytes, as golang-jwt signs with a shared secret. PyJWT refuses a key that looks like a
    PEM or an SSH key ("should not be used as an HMAC secret"); Portworx takes a Secret's bytes as they are,
    so a shared secret that happens to start with `-----BEGIN` must sign, not crash. Same bytes as PyJWT
    writes otherwise (compact JSON, header keys sorted)."""
    signing_input = (_b64url(b'{"alg":"HS256","typ":"JWT"}') + "."
                     + _b64url(json.dumps(dict(claims), separators=(",", ":")).encode()))
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def sign_claims(claims: Mapping[str, Any], kind: str, ring: KeyRing) -> tuple[str, str]:
    """(token, algorithm): `claims` signed with the `kind` key of `ring`. Shared by `mint` and the CLI."""
    key, algorithm = _signer(kind, ring)
    if isinstance(key, bytes):
        return _hs256(claims, key), algorithm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyjwt's short-HMAC-key warning; Portworx accepts any length
        token = jwt.encode(dict(claims), key, algorithm=algorithm, headers={"typ": "JWT"})
    return token, algorithm


def key_fingerprint(kind: str, ring: KeyRing) -> str:
    """A safe identity of the signing key, recorded with a token so a key change forces a re-mint.

    Shared secret: `keymaterial.fingerprint({"shared-secret": value})`, the same value status.secrets
    shows for the shared-secret Secret. RSA/ECDSA: SHA-256 of the public key's DER SubjectPublicKeyInfo,
    derived from the private key, so re-encoding a PEM (line endings, PKCS#1 vs PKCS#8) does not count
    as a change.
    """
    material = ring.material(kind)
    if not material:
        raise NoSigningKey(f"no {kind} key to fingerprint")
    if kind == SHARED_SECRET:
        return keymaterial.fingerprint({KEY_SHARED_SECRET: material})
    key = keymaterial.load_private_key(material)
    if isinstance(key, str):
        raise SigningError(f"the {kind} private key {key}")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


# -- minting --------------------------------------------------------------------------------------------


def _seconds(now: datetime.datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return math.floor(now.timestamp())


def subject(token: TokenSpec, issuer: str) -> str:
    """`sub` and `email` of an operator-minted token: `<secretName>@<issuer>`, as the Portworx Operator."""
    return f"{token.secret_name}@{issuer}"


def identity_claims(issuer: str, identity: Mapping[str, Any], now: datetime.datetime,
                    lifetime: datetime.timedelta) -> dict[str, Any]:
    """`iss`, then the identity (name, email, sub, roles, groups, as given), then `iat` backdated by
    CLOCK_SKEW and `exp` = now + lifetime: the one place claims are timed, for the operator and the CLI."""
    issued = _seconds(now)
    return {"iss": issuer, **identity, "iat": issued - int(CLOCK_SKEW.total_seconds()),
            "exp": issued + math.floor(lifetime.total_seconds())}


def claims(token: TokenSpec, issuer: str, now: datetime.datetime, lifetime: datetime.timedelta) -> dict[str, Any]:
    """Exactly the claims OpenStorage requires, as the Portworx Operator mints them for a token Secret."""
    return identity_claims(issuer, {"sub": subject(token, issuer), "email": subject(token, issuer),
                                    "name": token.secret_name, "roles": list(token.roles),
                                    "groups": list(token.groups)}, now, lifetime)


def _utc(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def mint(token: TokenSpec, spec: PxSecuritySpec, ring: KeyRing, now: datetime.datetime) -> Minted:
    """Sign a fresh token for `token`. Raises NoSigningKey, SigningError, or ValueError (bad lifetime)."""
    ss = spec.self_signed
    if ss is None:
        raise NoSigningKey(f"token {token.secret_name}: spec.selfSigned is not set, so there is no key to sign with")
    kind = choose_signing_key(token, spec, ring)
    if kind is None:
        wanted = token.signing_key or "any of SharedSecret, RSA, ECDSA"
        raise NoSigningKey(f"token {token.secret_name}: no private key available for {wanted}")
    lifetime = parse_lifetime(ss.token_lifetime)
    body = claims(token, ss.issuer, now, lifetime)
    signed, algorithm = sign_claims(body, kind, ring)
    issued = _utc(_seconds(now))
    expires = _utc(body["exp"])
    return Minted(
        token=signed,
        expires_at=expires,
        renewal_time=renewal_time(issued, expires),
        signing_key=kind,
        key_fingerprint=key_fingerprint(kind, ring),
        algorithm=algorithm,
    )


# -- refresh --------------------------------------------------------------------------------------------


_LAST_SECOND: Final = 253402300799  # 9999-12-31T23:59:59Z, the last instant datetime can hold


def _int_claim(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return math.floor(value) if 0 <= value <= _LAST_SECOND else None


def _verifier(kind: str, ring: KeyRing) -> bytes | PublicKey:
    """What checks a signature made by the `kind` key of `ring` (the signer's state is already known good)."""
    key, _ = _signer(kind, ring)
    if isinstance(key, bytes):
        return key
    return key.public_key()


def assess(existing_token: str | None, token: TokenSpec, spec: PxSecuritySpec, ring: KeyRing,
           recorded_key_fingerprint: str | None, now: datetime.datetime) -> Assessment:
    """`reason` None to keep the token in its Secret (then with its expiry and renewal time, from the one
    decoding of it), else why it must be minted again (a short, safe phrase).

    Checked in this order, first match wins:
    "missing" (no token), "unreadable" (not a JWT, or no numeric iat/exp), "no signing key" (nothing to
    sign with: `mint` will raise NoSigningKey — the caller reports it rather than re-minting),
    "signing key changed" (another key kind or algorithm, a key fingerprint different from the one
    recorded at minting, or a signature that no longer verifies with the current key — e.g. a deleted
    and regenerated Secret), "issuer changed", "claims changed" (sub, email, name, roles or groups differ
    from the spec; order matters, as it does in the token), "lifetime changed" (exp - iat no longer
    matches tokenLifetime: shortening a lifetime must not wait for old long-lived tokens to run out),
    "expiring" (now >= renewal time). Raises ValueError for an invalid tokenLifetime (the CRD rejects
    those before the operator sees them).
    """
    if not existing_token:
        return Assessment(MISSING)
    try:
        decoded = decode_unverified(existing_token)
    except MalformedToken:
        return Assessment(UNREADABLE)
    body = decoded.claims
    iat, exp = _int_claim(body, "iat"), _int_claim(body, "exp")
    if iat is None or exp is None:
        return Assessment(UNREADABLE)

    ss = spec.self_signed
    kind = choose_signing_key(token, spec, ring)
    if ss is None or kind is None:
        return Assessment(NO_SIGNING_KEY)
    try:
        algorithm = algorithm_for(kind, ring)
        fingerprint = key_fingerprint(kind, ring)
    except (NoSigningKey, SigningError):
        return Assessment(NO_SIGNING_KEY)
    if decoded.header.get("alg") != algorithm:
        return Assessment(SIGNING_KEY_CHANGED)
    if recorded_key_fingerprint is not None and recorded_key_fingerprint != fingerprint:
        return Assessment(SIGNING_KEY_CHANGED)
    if not signature_verifies(existing_token, algorithm, _verifier(kind, ring)):
        return Assessment(SIGNING_KEY_CHANGED)

    if body.get("iss") != ss.issuer:
        return Assessment(ISSUER_CHANGED)
    expected = claims(token, ss.issuer, now, datetime.timedelta(0))
    for name in ("sub", "email", "name", "roles", "groups"):
        if body.get(name) != expected[name]:
            return Assessment(CLAIMS_CHANGED)
    lifetime = parse_lifetime(ss.token_lifetime)
    if exp - iat != math.floor(lifetime.total_seconds()) + int(CLOCK_SKEW.total_seconds()):
        return Assessment(LIFETIME_CHANGED)
    issued = _utc(iat + int(CLOCK_SKEW.total_seconds()))
    if now >= renewal_time(issued, _utc(exp)):
        return Assessment(EXPIRING)
    return Assessment(None, _utc(exp), renewal_time(issued, _utc(exp)))


@dataclass(frozen=True)
class Assessment:
    """What `assess` found: why to re-mint (None: keep it), and for a kept token when it expires and when
    its successor is due."""

    reason: str | None
    expires_at: datetime.datetime | None = None
    renewal_time: datetime.datetime | None = None


def remint_reason(existing_token: str | None, token: TokenSpec, spec: PxSecuritySpec, ring: KeyRing,
                  recorded_key_fingerprint: str | None, now: datetime.datetime) -> str | None:
    """`assess(...).reason`."""
    return assess(existing_token, token, spec, ring, recorded_key_fingerprint, now).reason
