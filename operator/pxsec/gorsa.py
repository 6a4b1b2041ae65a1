"""RSA public keys and RS256/384/512 verification as Go reads and checks them, independent of OpenSSL.

golang-jwt verifies RS tokens with Go's crypto/rsa, over keys Go's x509 parsed. Go and OpenSSL disagree
at the edges: Go's parser takes any positive exponent that fits an int64 (1, 4, 2^40) and any positive
modulus, then crypto/rsa refuses at verification time an even modulus, an exponent below 2, even, or
above 2^31 - 1, and a modulus under 1024 bits (Go 1.24 and later); it verifies with moduli larger than
OpenSSL's 16,384-bit limit. OpenSSL refuses to load some of those keys and to verify with others. So the
verdict "would Portworx accept this token" is computed here, with Python's integers, exactly as Go does:
the PKCS#1 v1.5 encoding compared byte for byte (crypto/internal/fips140/rsa verifyPKCS1v15).

`parse_pkix` is the fallback for a `public.pem` OpenSSL will not load: Go's ParsePKIXPublicKey structure
for rsaEncryption (a NULL parameter, a SEQUENCE of two INTEGERs in the BIT STRING), strict DER lengths.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

_RSA_ENCRYPTION: Final = bytes.fromhex("06092a864886f70d010101")  # OID 1.2.840.113549.1.1.1
_NULL: Final = b"\x05\x00"
# DigestInfo prefixes (RFC 8017 section 9.2, note 1), as crypto/rsa's hashPrefixes.
_PREFIX: Final = {
    "256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
MAX_GO_EXPONENT: Final = (1 << 31) - 1
MIN_GO_BITS: Final = 1024


@dataclass(frozen=True)
class GoRSAKey:
    """The numbers of an RSA public key (what Go's rsa.PublicKey holds)."""

    n: int
    e: int

    @property
    def key_size(self) -> int:
        return self.n.bit_length()


def check(key: GoRSAKey) -> str | None:
    """crypto/rsa's checks before any verification (checkPublicKeySize, checkPublicKey), or None."""
    if key.n.bit_length() < MIN_GO_BITS:
        return f"RSA {key.n.bit_length()}-bit keys are refused by Go's crypto/rsa (since Go 1.24: at least 1024)"
    if key.n % 2 == 0:
        return "its modulus is even, which Go's crypto/rsa refuses"
    if key.e < 2:
        return f"its public exponent {key.e} is too small for Go's crypto/rsa (at least 2)"
    if key.e % 2 == 0:
        return f"its public exponent {key.e} is even, which Go's crypto/rsa refuses"
    if key.e > MAX_GO_EXPONENT:
        return "its public exponent is larger than 2^31 - 1, which Go's crypto/rsa refuses"
    return None


def verify_pkcs1v15(key: GoRSAKey, bits: str, signing_input: bytes, signature: bytes) -> bool:
    """rsa.VerifyPKCS1v15(key, SHA-`bits`, hash(signing_input), signature) == nil."""
    prefix = _PREFIX.get(bits)
    if prefix is None or check(key) is not None:
        return False
    k = (key.n.bit_length() + 7) // 8
    t = prefix + hashlib.new(f"sha{bits}", signing_input).digest()
    if len(signature) != k or k < len(t) + 11:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    em = pow(s, key.e, key.n).to_bytes(k, "big")
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


# -- DER, strictly (definite, minimal lengths) ------------------------------------------------------------


def der_read(data: bytes, pos: int, tag: int) -> tuple[bytes, int] | None:
    """The contents of the element with `tag` at `pos`, and the position after it; None if not DER."""
    if pos + 2 > len(data) or data[pos] != tag:
        return None
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            return None
        raw = data[pos:pos + count]
        length = int.from_bytes(raw, "big")
        if raw[0] == 0 or length < 0x80:  # not minimal
            return None
        pos += count
    if pos + length > len(data):
        return None
    return data[pos:pos + length], pos + length


def der_integer(data: bytes, pos: int) -> tuple[int, int] | None:
    read = der_read(data, pos, 0x02)
    if read is None or not read[0]:
        return None
    body, after = read
    if len(body) > 1 and ((body[0] == 0 and body[1] < 0x80) or (body[0] == 0xFF and body[1] >= 0x80)):
        return None  # not minimal
    return int.from_bytes(body, "big", signed=True), after


def parse_pkix(der: bytes) -> GoRSAKey | None:
    """x509.ParsePKIXPublicKey for an rsaEncryption key, or None (not RSA, or a parse Go refuses)."""
    outer = der_read(der, 0, 0x30)
    if outer is None or outer[1] != len(der):  # trailing data after the public key
        return None
    spki = outer[0]
    algorithm = der_read(spki, 0, 0x30)
    if algorithm is None or algorithm[0] != _RSA_ENCRYPTION + _NULL:
        return None
    bits = der_read(spki, algorithm[1], 0x03)
    if bits is None or bits[1] != len(spki) or not bits[0] or bits[0][0] != 0:
        return None
    key = bits[0][1:]
    inner = der_read(key, 0, 0x30)  # what follows this SEQUENCE inside the BIT STRING is not read by Go
    if inner is None:
        return None
    modulus = der_integer(inner[0], 0)
    if modulus is None:
        return None
    exponent = der_integer(inner[0], modulus[1])
    if exponent is None or not -(1 << 63) <= exponent[0] < (1 << 63):  # E is a Go int
        return None
    n, e = modulus[0], exponent[0]
    if n <= 0 or e <= 0:
        return None
    return GoRSAKey(n, e)
