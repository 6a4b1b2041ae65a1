"""`pxsec.gorsa`: RSA public keys parsed and RS signatures checked as Go's x509 and crypto/rsa do (the
differential against Go itself is tests/interop/test_key_material.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pxsec import gorsa

KEY = rsa.generate_private_key(65537, 2048)
DER = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_key_openssl_loads_reads_the_same() -> None:
    numbers = KEY.public_key().public_numbers()
    assert gorsa.parse_pkix(DER) == gorsa.GoRSAKey(numbers.n, numbers.e)


@pytest.mark.parametrize("der", [
    DER + b"\x00",  # trailing data after the key
    DER[:-1],  # truncated
    b"\x30\x81" + DER[2:],  # a length in the long form where the short one fits (not DER)
    DER.replace(bytes.fromhex("06092a864886f70d010101"), bytes.fromhex("06092a864886f70d01010b")),  # not RSA
    DER.replace(b"\x05\x00", b"", 1),  # no NULL parameters
    b"",
])
def test_what_go_will_not_parse(der: bytes) -> None:
    assert gorsa.parse_pkix(der) is None


def test_signatures_are_checked_as_crypto_rsa_checks_them() -> None:
    data = b"header.claims"
    signature = KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())
    numbers = KEY.public_key().public_numbers()
    key = gorsa.GoRSAKey(numbers.n, numbers.e)
    assert gorsa.verify_pkcs1v15(key, "256", data, signature)
    assert not gorsa.verify_pkcs1v15(key, "256", data + b"x", signature)
    assert not gorsa.verify_pkcs1v15(key, "384", data, signature)
    assert not gorsa.verify_pkcs1v15(key, "256", data, b"\x00" + signature)  # not exactly the modulus size
    assert not gorsa.verify_pkcs1v15(key, "256", data, (numbers.n + 1).to_bytes(256, "big"))  # not below n
    for bad, words in ((gorsa.GoRSAKey(numbers.n, 1), "too small"), (gorsa.GoRSAKey(numbers.n, 4), "even"),
                       (gorsa.GoRSAKey(numbers.n, (1 << 31) + 1), "larger than 2^31 - 1"),
                       (gorsa.GoRSAKey(numbers.n * 2, 65537), "modulus is even"),
                       (gorsa.GoRSAKey(numbers.n >> 1100 | 1, 65537), "at least 1024")):
        assert words in (gorsa.check(bad) or ""), bad
        assert not gorsa.verify_pkcs1v15(bad, "256", data, signature)
