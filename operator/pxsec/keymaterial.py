"""Key material exactly as Portworx accepts it: generate, fingerprint, and judge what a user brought.

- Shared secrets (system, apps, JWT shared secret): 128 bytes from a CSPRNG, standard base64, the first
  64 characters. Portworx uses the ASCII bytes of that string as the HMAC key (not its decoding).
- RSA / ECDSA: private key PKCS#8 PEM, public key PKIX PEM (`BEGIN PUBLIC KEY`; PKCS#1 public keys
  are not accepted by OpenStorage). ES256 pairs with P-256, ES384 with P-384, ES512 with P-521.

Everything here is pure apart from drawing random bytes; callers run generation off the event loop
(RSA 4096 takes hundreds of milliseconds).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import gocert, gopem
from pxsec.spec import KEY_PRIVATE_PEM, KEY_PUBLIC_PEM

SHARED_SECRET_LENGTH = 64
class KeyKind(StrEnum):
    """The kinds of key material: a shared secret (HS*, also the system and apps secrets), an RSA pair (RS*),
    an ECDSA pair (ES*). The values are what recipes, checks, mount folders and volume names use."""

    SHARED = "shared"
    RSA = "rsa"
    ECDSA = "ecdsa"


DERIVE_PUBLIC = "derive-public"  # a recipe: public.pem from the private key already there


@dataclass(frozen=True)
class Curve:
    """An ECDSA curve as each party names it: JOSE/Go (`name`, also the CRD's enum), cryptography
    (`cls`, whose `.name` is the SEC name), and the JWS algorithm that must sign with it."""

    name: str
    cls: type[ec.EllipticCurve]
    algorithm: str


# The one curve table: the CRD's enum, generation, checks, signing, verification and the OIDC JWKS
# judgement all read it.
CURVE_TABLE: tuple[Curve, ...] = (
    Curve("P-256", ec.SECP256R1, "ES256"),
    Curve("P-384", ec.SECP384R1, "ES384"),
    Curve("P-521", ec.SECP521R1, "ES512"),
)
CURVES: dict[str, type[ec.EllipticCurve]] = {c.name: c.cls for c in CURVE_TABLE}
CURVE_ALGORITHM: dict[str, str] = {c.name: c.algorithm for c in CURVE_TABLE}
ALGORITHM_CURVE: dict[str, str] = {c.algorithm: c.name for c in CURVE_TABLE}
SEC_TO_JOSE: dict[str, str] = {c.cls().name: c.name for c in CURVE_TABLE}  # "secp256r1" -> "P-256"
MIN_RSA_BITS = 2048


def generate_shared_secret() -> str:
    """A 64-character secret from the base64 alphabet, generated as the Portworx Operator does."""
    return base64.b64encode(secrets.token_bytes(128)).decode("ascii")[:SHARED_SECRET_LENGTH]


def generate_rsa(bits: int) -> tuple[bytes, bytes]:
    """(private PKCS#8 PEM, public PKIX PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _pems(key)


def generate_ecdsa(curve: str) -> tuple[bytes, bytes]:
    """(private PKCS#8 PEM, public PKIX PEM) on the named curve."""
    key = ec.generate_private_key(CURVES[curve]())
    return _pems(key)


def _pems(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def fingerprint(data: Mapping[str, bytes]) -> str:
    """A stable SHA-256 over the keys and values of a Secret's data: safe to show, reveals nothing.

    Keys are sorted and each value is length-prefixed, so ("ab","c") and ("a","bc") never collide.
    """
    digest = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        digest.update(len(key).to_bytes(4, "big") + key.encode() + len(value).to_bytes(8, "big") + value)
    return "sha256:" + digest.hexdigest()


def check_shared_secret(value: bytes, key: str) -> list[str]:
    """What makes a supplied shared secret unusable (never echoing the value): empty, or not ASCII."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return [f"{key} is not ASCII text"]
    if not text.strip():
        return [f"{key} is empty"]
    return []


def shared_secret_warnings(value: bytes, key: str) -> list[str]:
    """What makes a supplied shared secret weaker or surprising, though Portworx takes it as it is: a
    secret from a working cluster is adopted and said to be so, never refused or rewritten (refusing
    it would break an upgrade; rewriting it would invalidate every token)."""
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return []
    notes = []
    if text.strip() and text != text.strip():
        notes.append(f"{key} has leading or trailing whitespace (a newline from `echo`?): Portworx uses it "
                     "as it is, and so does the operator")
    if text.strip() and len(text) < 32:
        notes.append(f"{key} is {len(text)} characters; at least 32 are advised (the operator generates 64)")
    return notes


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.lru_cache(maxsize=256)
def load_private_key(value: bytes) -> PrivateKey | str:
    """The RSA or ECDSA private key in a PEM, or a phrase saying what is wrong (never quoting the key).

    Loading validates an RSA key (hundreds of milliseconds for 4096 bits) and every reconcile of a
    resource with RSA-signed tokens needs the key several times: memoized by the PEM's bytes."""
    try:
        key = serialization.load_pem_private_key(value, password=None)
    except TypeError:
        return "is encrypted; Portworx needs an unencrypted key"
    except (ValueError, UnsupportedAlgorithm):
        return "is not a PEM private key"
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return f"is a {type(key).__name__}, not an RSA or ECDSA key"
    return key


# What Go's x509 can parse an EC public key on (golang-jwt's loaders go through it).
_GO_CURVES: dict[str, str] = {"secp224r1": "P-224", **SEC_TO_JOSE}
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _pem_der(pem: bytes) -> bytes | None:
    """The first PEM block's bytes, whatever its type, as Go's pem.Decode finds it (`pxsec.gopem`), or None."""
    block = gopem.decode(pem)
    return None if block is None else block.bytes


def _pkix_key(der: bytes) -> object | None:
    """ParsePKIXPublicKey, strictly: what cryptography loads and writes back byte for byte (it also reads
    PKCS#1 and BER, and a compressed EC point, which Go does not)."""
    try:
        candidate = serialization.load_der_public_key(der)
        spki = candidate.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):
        return None
    return candidate if spki == der else None


def load_public_key(pem: bytes) -> PublicKey | str:
    """What golang-jwt's ParseRSAPublicKeyFromPEM / ParseECPublicKeyFromPEM read: the first PEM block as a
    PKIX public key (strict DER), else as an X.509 certificate's key; or why not."""
    der = _pem_der(pem)
    if der is None:
        return "is not PEM (golang-jwt: key must be a PEM encoded PKCS1 or PKCS8 key)"
    key: object = _pkix_key(der)
    if key is None:
        # golang-jwt's fallback: x509.ParseCertificate, as Go reads it (pxsec.gocert: not OpenSSL, which is
        # stricter in places — an encoded DEFAULT — and laxer in others), then its SPKI as strict as a bare key.
        try:
            spki = gocert.parse(der)
        except gocert.CertificateError as error:
            if b"BEGIN RSA PUBLIC KEY" in pem:
                return ("is a PKCS#1 'RSA PUBLIC KEY'; OpenStorage accepts only PKIX ('BEGIN PUBLIC KEY') or a "
                        "certificate")
            if error.args[0] in ("x509: malformed certificate", "x509: malformed tbs certificate"):
                return "is not a PKIX public key or an X.509 certificate"
            return f"is an X.509 certificate Go's x509 refuses ({error.args[0]})"
        key = _pkix_key(spki)
        if key is None:
            return "is an X.509 certificate whose public key Go's x509 refuses"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _GO_CURVES:
        return f"is on {key.curve.name}, a curve Go's x509 does not support"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return f"is a {type(key).__name__}, not an RSA or ECDSA key"
    return key


def check_key_pair(private_pem: bytes | None, public_pem: bytes | None, kind: KeyKind, *,
                   min_bits: int = MIN_RSA_BITS, curve: str | None = None) -> list[str]:
    """Problems with an RSA or ECDSA pair (either half may be missing: the caller adds what lacks).

    Loading an RSA private key validates it (about 100 ms for 4096 bits); the verdict depends only on
    the bytes, so it is memoized and a reconcile that finds the same keys pays nothing.
    """
    return list(_check_key_pair(private_pem, public_pem, kind, min_bits, curve))


@functools.lru_cache(maxsize=512)
def _check_key_pair(private_pem: bytes | None, public_pem: bytes | None, kind: KeyKind, min_bits: int,
                    curve: str | None) -> tuple[str, ...]:
    problems: list[str] = []
    priv = load_private_key(private_pem) if private_pem is not None else None
    pub = load_public_key(public_pem) if public_pem is not None else None
    if isinstance(priv, str):
        problems.append(f"private.pem {priv}")
    if isinstance(pub, str):
        problems.append(f"public.pem {pub}")
    for label, key in (("private.pem", priv), ("public.pem", pub)):
        if key is None or isinstance(key, str):
            continue
        if kind == KeyKind.RSA:
            if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
                problems.append(f"{label} is not an RSA key")
            elif key.key_size < min_bits:
                problems.append(f"{label} is RSA {key.key_size} bits; at least {min_bits} are required")
        else:
            if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
                problems.append(f"{label} is not an ECDSA key")
            elif curve is not None and not isinstance(key.curve, CURVES[curve]):
                problems.append(f"{label} is on curve {key.curve.name}, but spec asks for {curve}")
    if (
        not problems
        and isinstance(priv, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        and isinstance(pub, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    ):
        derived = priv.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        given = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if derived != given:
            problems.append("public.pem does not belong to private.pem")
    return tuple(problems)


def public_from_private(private_pem: bytes) -> bytes:
    """The PKIX public key of a (checked) private key: adds a missing public.pem without a new key."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Recipe:
    """How to produce missing keys: a KeyKind with its parameter (RSA bits, ECDSA curve), or DERIVE_PUBLIC."""

    kind: str
    param: str | int | None = None


def materialize(recipes: Mapping[str, Recipe], existing: Mapping[str, bytes]) -> dict[str, bytes]:
    """Produce the missing keys (CSPRNG; RSA is slow — call this from a worker thread)."""
    out: dict[str, bytes] = {}
    for key, recipe in recipes.items():
        if recipe.kind == KeyKind.SHARED:
            out[key] = generate_shared_secret().encode("ascii")
        elif recipe.kind in (KeyKind.RSA, KeyKind.ECDSA):
            private, public = (generate_rsa(int(recipe.param or 0)) if recipe.kind == KeyKind.RSA
                               else generate_ecdsa(str(recipe.param)))
            out[key] = private
            out[KEY_PUBLIC_PEM] = public
    if KEY_PUBLIC_PEM in recipes and KEY_PUBLIC_PEM not in out:
        out[KEY_PUBLIC_PEM] = public_from_private(existing[KEY_PRIVATE_PEM])
    return out
