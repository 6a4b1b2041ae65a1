"""Hand-made tokens for the differential tests: every byte chosen here, signed with `cryptography` directly.

No JWT library makes these (libraries refuse to make the broken ones), and nothing of pxsec signs them,
so a mistake shared by our signer and our verifier cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

Key = bytes | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None

_DIGESTS = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def seg(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode(value: dict[str, Any] | bytes) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


def signature(signing_input: bytes, key: Key, alg: str) -> bytes:
    """A JWS signature of `signing_input` with `key`, as `alg` names it (ES: r||s, each the key's size)."""
    if key is None or alg == "none":
        return b""
    digest = _DIGESTS[alg[-3:]]
    if isinstance(key, bytes):
        return hmac.new(key, signing_input, getattr(hashlib, f"sha{alg[-3:]}")).digest()
    if isinstance(key, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(digest()), salt_length=digest().digest_size) if alg.startswith("PS")
            else padding.PKCS1v15())
        return key.sign(signing_input, pad, digest())
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def forge(header: dict[str, Any] | bytes, claims: dict[str, Any] | bytes, key: Key, alg: str | None = None) -> str:
    """header.claims.signature, the signature over exactly those two segments."""
    if alg is None:
        alg = header["alg"] if isinstance(header, dict) else "HS256"
    h, c = seg(encode(header)), seg(encode(claims))
    return f"{h}.{c}.{seg(signature(f'{h}.{c}'.encode(), key, alg))}"


def resign(token: str, key: Key, alg: str) -> str:
    """Keep the first two segments as they are (whatever they hold) and sign them again."""
    h, c = token.split(".")[:2]
    return f"{h}.{c}.{seg(signature(f'{h}.{c}'.encode(), key, alg))}"


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    """The public JWK of a key, written out by hand (RFC 7518 section 6)."""
    def b64int(number: int, size: int | None = None) -> str:
        length = size if size is not None else max(1, (number.bit_length() + 7) // 8)
        return seg(number.to_bytes(length, "big"))

    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"kty": "RSA", "n": b64int(numbers.n), "e": b64int(numbers.e), **extra}
    point = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
    return {"kty": "EC", "crv": crv, "x": b64int(point.x, size), "y": b64int(point.y, size), **extra}
