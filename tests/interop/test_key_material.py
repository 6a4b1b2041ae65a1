"""Public key files read as Portworx reads them: each PEM below is given to `pxsec.verify` and to the Go checker
(golang-jwt's ParseRSAPublicKeyFromPEM / ParseECPublicKeyFromPEM over Go's encoding/pem, as OpenStorage builds
its authenticator) with a token signed by the matching private key. The verdicts must be equal: a framing Go
refuses makes the authenticator fail to start ("config"), one Go accepts verifies the token.

The framings are those a hand-made or tool-made `public.pem` has (CRLF, headers, comments before BEGIN,
spaces), those Go refuses and a regular expression accepted (an indented BEGIN, text after END, END on the
base64 line, a vertical tab), and those Go accepts and it refused (blanks after BEGIN, a header line, a
repeated BEGIN, a broken block first) — and a crafted 1 MiB of repeated BEGIN lines before the key, which Go
reads in linear time and so must we (it used to take minutes here, holding the GIL of the whole operator).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import gopem, keymaterial
from pxsec.keymaterial import KeyKind
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys, verify
from tests.interop import checker
from tests.interop.test_differential import go_equal
from tests.interop.tokens import forge, public_pem, seg

pytestmark = pytest.mark.go

T = 1_900_000_000
NOW = datetime.datetime.fromtimestamp(T, datetime.UTC)
ISSUER = "operator.portworx.io"
CLAIMS = {"iss": ISSUER, "sub": "alice", "name": "Alice", "email": "alice@example.com", "roles": ["system.admin"],
          "iat": T - 600, "exp": T + 3600}
CRAFTED = b"-----BEGIN A-----\n" * ((1 << 20) // 18)  # ~1 MiB of BEGIN lines without an END


def framings(pem: bytes) -> dict[str, tuple[bytes, bool]]:
    """name -> (PEM bytes, whether Go reads the key from it)."""
    lines = pem.decode().strip().split("\n")
    begin, body, end = lines[0], lines[1:-1], lines[-1]

    def join(*parts: str) -> bytes:
        return "\n".join(parts).encode() + b"\n"

    b64 = "\n".join(body)
    return {
        "as generated": (pem, True),
        "crlf": (pem.replace(b"\n", b"\r\n"), True),
        "no final newline": (pem.rstrip(b"\n"), True),
        "comment lines before": (b"# our RSA key\nsomething: else\n" + pem, True),
        "text after on later lines": (pem + b"trailing words\n", True),
        "blanks after BEGIN": (join(begin + "  \t", b64, end), True),
        "blanks after END": (join(begin, b64, end + " \t"), True),
        "header line": (join(begin, "Comment: made by hand", b64, end), True),
        "header and blank line": (join(begin, "Proc-Type: 4,ENCRYPTED", "", b64, end), True),
        "blank lines in the body": (join(begin, "", b64.replace("\n", "\n\n"), "", end), True),
        "spaces and tabs in the body": (join(begin, b64.replace("\n", " \t\n "), end), True),
        "one long base64 line": (join(begin, "".join(body), end), True),
        "repeated BEGIN line": (join(begin, begin, b64, end), True),
        "broken block first": (join("-----BEGIN JUNK-----", "!!!!", "-----END JUNK-----", begin, b64, end), True),
        "another type first": (join("-----BEGIN X-----", "AAAA", "-----END X-----", begin, b64, end), False),
        "crafted BEGIN lines first": (CRAFTED + pem, True),
        "indented BEGIN": (join("  " + begin, b64, end), False),
        "text before BEGIN on its line": (join("key:" + begin, b64, end), False),
        "text after END on its line": (join(begin, b64, end + " # rsa"), False),
        "END on the base64 line": (join(begin, b64 + end), False),
        "vertical tab in the body": (join(begin, b64.replace("\n", "\v\n", 1), end), False),
        "END of another type": (join(begin, b64, end.replace("PUBLIC KEY", "PRIVATE KEY")), False),
        "no END": (join(begin, b64), False),
        "BEGIN without dashes": (join(begin[:-5], b64, end), False),
        "a padding character too many": (join(begin, b64 + "=", end), False),
        "padding inside": (join(begin, "AA==" + b64, end), False),
        "a quantum short": (join(begin, b64[:-1], end), False),
        "only a newline": (b"\n", False),
        "crafted only": (CRAFTED, False),
    }


@pytest.fixture(scope="module")
def binary() -> Path:
    return checker.checker_or_fail()


def cases() -> list[tuple[str, str, bytes, str, bool]]:
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for kind, key, alg in (("rsa", rsa_key, "RS256"), ("ecdsa", ec_key, "ES256")):
        token = forge({"alg": alg, "typ": "JWT"}, CLAIMS, key, alg)
        for name, (pem, readable) in framings(public_pem(key)).items():
            out.append((f"{kind}: {name}", kind, pem, token, readable))
    return out


SPECS = {"rsa": parse_spec({"selfSigned": {"issuer": ISSUER, "rsa": {"secretName": "k"}}}),
         "ecdsa": parse_spec({"selfSigned": {"issuer": ISSUER, "ecdsa": {"secretName": "k"}}})}


def disagreements(binary: Path, cases: list[tuple[str, str, bytes, str, bool]]) -> list[str]:
    """(name, key kind, public PEM, token, whether Go reads the key and accepts) judged by pxsec and by the Go
    checker: every verdict that differs, and every expectation written here that is not Go's."""
    def keys(kind: str, pem: bytes) -> VerifyKeys:
        return VerifyKeys(rsa_public_pem=pem) if kind == "rsa" else VerifyKeys(ecdsa_public_pem=pem)

    verdicts = checker.judge(binary, [checker.case_for(name, token, SPECS[kind], keys(kind, pem), NOW)
                                      for name, kind, pem, token, _ in cases])
    problems = []
    for (name, kind, pem, token, expected), go in zip(cases, verdicts, strict=True):
        mine = verify(token, SPECS[kind], keys(kind, pem), NOW)
        diffs = go_equal(mine, go)
        if diffs:
            problems.append(f"{name}: {'; '.join(diffs)} (pxsec: {mine.reason}; Go: {go.get('error')})")
        if go["accepted"] is not expected:
            problems.append(f"{name}: written here as {'accepted' if expected else 'refused'}, but Go "
                            f"{'accepts' if go['accepted'] else 'refuses'} ({go.get('error')})")
    return problems


def test_every_framing_gets_portworxs_verdict(binary: Path) -> None:
    problems = disagreements(binary, cases())
    assert not problems, "\n".join(problems)


def test_the_block_found_is_gos_block() -> None:
    """Where Go finds a block, `gopem` finds the same type and bytes (checked through the key above); here the
    shapes that have no key in them."""
    assert gopem.decode(b"-----BEGIN X-----\n-----END X-----\n") == gopem.Block("X", {}, b"")
    assert gopem.decode(b"-----BEGIN X-----\n\n-----END X-----") == gopem.Block("X", {}, b"")
    assert gopem.decode(b"-----BEGIN X-----\nA: b\n-----END X-----\n") is None  # a header needs a newline before END
    with_header = gopem.Block("X", {"A": "b"}, b"\0\0\0")
    assert gopem.decode(b"-----BEGIN X-----\nA: b\n\nAAAA\n-----END X-----\n") == with_header


# -- RSA exponents and sizes: Go's x509 and crypto/rsa, not OpenSSL ----------------------------------------------


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytes([size]) if size < 0x80 else bytes([0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes(
        (size.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def rsa_pem(n: int, e: int) -> bytes:
    """A PKIX PEM of (n, e), whatever OpenSSL thinks of the numbers."""
    algorithm = _der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + _der(0x30, _der_int(n) + _der_int(e))))
    body = base64.encodebytes(spki).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def rs256(n: int, d_sign: Any, claims: dict[str, Any] | None = None) -> str:
    """An RS256 token whose signature is d_sign(EM) for the PKCS#1 v1.5 encoding EM of its signing input."""
    head = seg(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = seg(json.dumps(claims or CLAIMS).encode())
    k = (n.bit_length() + 7) // 8
    t = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(f"{head}.{body}".encode()).digest()
    em = int.from_bytes(b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t, "big")
    return f"{head}.{body}.{seg(d_sign(em).to_bytes(k, 'big'))}"


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, candidate - 1, candidate) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23)):
            return candidate


def multiprime(bits: int, e: int, rng: random.Random) -> tuple[int, Any]:
    """A modulus of exactly `bits` bits from 512-bit primes, and a signer for exponent e (CRT: fast even for
    a modulus far beyond OpenSSL's 16,384-bit limit)."""
    primes = []
    while len(primes) < bits // 512 - 1:
        candidate = _prime(rng, 512)
        if math.gcd(e, candidate - 1) == 1 and candidate not in primes:
            primes.append(candidate)
    head = math.prod(primes)
    low, high = -(-(1 << (bits - 1)) // head), ((1 << bits) - 1) // head  # the last prime puts n at `bits`
    while True:
        last = rng.randrange(low, high) | 1
        if (last not in primes and math.gcd(e, last - 1) == 1
                and all(pow(a, last - 1, last) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23))):
            break
    primes.append(last)
    n = head * last
    assert n.bit_length() == bits

    def sign(m: int) -> int:
        result, modulus = 0, 1
        for p in primes:  # Chinese remainder: s = m^d mod n from s mod p = m^(d mod p-1) mod p
            part = pow(m % p, pow(e, -1, p - 1), p)
            result += modulus * ((part - result) * pow(modulus, -1, p) % p)
            modulus *= p
        return result % n

    return n, sign


def exponent_cases() -> list[tuple[str, bytes, str, bool]]:
    """(name, public PEM, token, whether Go accepts)."""
    rng = random.Random(24)
    while True:  # a key whose p - 1 and q - 1 let 3 and 2^31 - 1 be exponents too
        numbers = rsa.generate_private_key(65537, 2048).private_numbers()
        p, q, n = numbers.p, numbers.q, numbers.public_numbers.n
        if all(math.gcd(e, math.lcm(p - 1, q - 1)) == 1 for e in (3, (1 << 31) - 1)):
            break

    def with_exponent(e: int) -> Any:
        d = pow(e, -1, math.lcm(p - 1, q - 1))
        return lambda m: pow(m, d, n)

    big_n, big_sign = multiprime(18_428, 65537, rng)
    small_n, small_sign = multiprime(1023, 65537, rng)
    return [
        ("e = 3", rsa_pem(n, 3), rs256(n, with_exponent(3)), True),
        ("e = 2^31 - 1", rsa_pem(n, (1 << 31) - 1), rs256(n, with_exponent((1 << 31) - 1)), True),
        ("e = 1 (the signature is the encoding itself)", rsa_pem(n, 1), rs256(n, lambda m: m), False),
        ("e = 4", rsa_pem(n, 4), rs256(n, lambda m: m), False),
        ("e = 2^31 + 1", rsa_pem(n, (1 << 31) + 1), rs256(n, lambda m: m), False),
        ("e = 2^40 + 1", rsa_pem(n, (1 << 40) + 1), rs256(n, lambda m: m), False),
        ("an 18,428-bit modulus", rsa_pem(big_n, 65537), rs256(big_n, big_sign), True),
        ("a 1,023-bit modulus", rsa_pem(small_n, 65537), rs256(small_n, small_sign), False),
        ("an even modulus", rsa_pem(n * 2, 65537), rs256(n * 2, lambda m: m), False),
    ]


def test_rsa_exponents_and_sizes_get_portworxs_verdict(binary: Path) -> None:
    problems = disagreements(binary, [(name, "rsa", pem, token, ok) for name, pem, token, ok in exponent_cases()])
    assert not problems, "\n".join(problems)


# -- certificates: golang-jwt falls back to x509.ParseCertificate, which is far stricter than OpenSSL ------------

SHA256_RSA = _der(0x30, bytes.fromhex("06092a864886f70d01010b") + b"\x05\x00")
SHA384_RSA = _der(0x30, bytes.fromhex("06092a864886f70d01010c") + b"\x05\x00")


def _name(value: bytes, tag: int = 0x0C) -> bytes:
    return _der(0x30, _der(0x31, _der(0x30, bytes.fromhex("0603550403") + _der(tag, value))))


def _extension(oid: bytes, value: bytes, critical: bytes | None = None) -> bytes:
    return _der(0x30, _der(0x06, oid) + (_der(0x01, critical) if critical is not None else b"") + _der(0x04, value))


def san(*names: tuple[int, bytes]) -> bytes:
    return _extension(bytes.fromhex("551d11"), _der(0x30, b"".join(_der(0x80 | tag, value) for tag, value in names)))


BASIC = _extension(bytes.fromhex("551d13"), _der(0x30, _der(0x01, b"\x00")), b"\xff")


def certificate(spki: bytes, *, version: int | None = 2, serial: int = 7, inner: bytes = SHA256_RSA,
                outer: bytes = SHA256_RSA, subject: bytes = _name(b"px"), extensions: tuple[bytes, ...] = (BASIC,),
                trailing: bytes = b"") -> bytes:
    """A certificate assembled field by field (Go does not check its signature when parsing: junk here)."""
    tbs = (_der(0xA0, _der_int(version)) if version is not None else b"") + _der_int(serial) + inner
    tbs += _name(b"issuer") + _der(0x30, _der(0x17, b"250101000000Z") + _der(0x17, b"350101000000Z"))
    tbs += subject + spki
    if extensions:
        tbs += _der(0xA3, _der(0x30, b"".join(extensions)))
    return _der(0x30, _der(0x30, tbs) + outer + _der(0x03, b"\x00" + b"\x5a" * 64)) + trailing


def cert_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def certificate_cases() -> list[tuple[str, str, bytes, str, bool]]:
    """(name, kind, PEM, token, whether Go reads the key)."""
    from cryptography.hazmat.primitives import serialization

    rsa_key = rsa.generate_private_key(65537, 2048)
    spki = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    token = forge({"alg": "RS256", "typ": "JWT"}, CLAIMS, rsa_key, "RS256")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    point = ec_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    compressed = _der(0x30, _der(0x30, bytes.fromhex("06072a8648ce3d0201") + bytes.fromhex("06082a8648ce3d030107"))
                      + _der(0x03, b"\x00" + point))
    ec_spki = ec_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    ec_token = forge({"alg": "ES256", "typ": "JWT"}, CLAIMS, ec_key, "ES256")
    rows = [
        ("a v3 certificate", certificate(spki, extensions=(BASIC, san((2, b"px.example.com")))), True),
        ("a v1 certificate", certificate(spki, version=None, extensions=()), True),
        ("a T61String name with Latin-1 bytes", certificate(spki, subject=_name(b"caf\xe9", 0x14)), True),
        ("version 4", certificate(spki, version=3), False),
        ("a negative serial", certificate(spki, serial=-7), False),
        ("inner and outer algorithms differ", certificate(spki, outer=SHA384_RSA), False),
        ("a non-ASCII dNSName", certificate(spki, extensions=(san((2, "pxé.example".encode())),)), False),
        ("an IP of 5 bytes", certificate(spki, extensions=(san((7, b"\x0a\x00\x00\x01\x00")),)), False),
        ("the same extension twice", certificate(spki, extensions=(san((2, b"a")), san((2, b"b")))), False),
        ("invalid UTF-8 in a UTF8String name", certificate(spki, subject=_name(b"\xff\xfe")), False),
        ("an @ in a PrintableString name", certificate(spki, subject=_name(b"a@b", 0x13)), False),
        ("basicConstraints with a BOOLEAN of 0x01",
         certificate(spki, extensions=(_extension(bytes.fromhex("551d13"), _der(0x30, _der(0x01, b"\x01"))),)), False),
        ("trailing data after the certificate", certificate(spki, trailing=b"\x00"), False),
    ]
    out = [(name, "rsa", cert_pem(der), token, ok) for name, der, ok in rows]
    out.append(("an ECDSA certificate", "ecdsa", cert_pem(certificate(ec_spki)), ec_token, True))
    out.append(("a compressed EC point", "ecdsa", cert_pem(certificate(compressed)), ec_token, False))
    return out


def test_certificates_get_portworxs_verdict(binary: Path) -> None:
    problems = disagreements(binary, certificate_cases())
    assert not problems, "\n".join(problems)


def test_the_operators_key_check_reads_public_pem_as_go_does() -> None:
    """KeySync's `check_key_pair` on a key pair a user brings takes the same reading as `verify` (one loader),
    so it must find a problem exactly where Go refuses the key: each framing and certificate above, whose
    expectation the differentials confirm against Go. A certificate Go refuses (version 4 raised
    `x509.InvalidVersion` past `except ValueError`) is a problem said in one line, never a raise."""
    mismatches = []
    for name, kind, pem, _token, readable in cases() + certificate_cases():
        problems = keymaterial.check_key_pair(None, pem, KeyKind.RSA if kind == "rsa" else KeyKind.ECDSA)
        if (problems == []) is not readable:
            mismatches.append(f"{name}: Go {'reads' if readable else 'refuses'} it, check_key_pair says {problems}")
    assert not mismatches, "\n".join(mismatches)
