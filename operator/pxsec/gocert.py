"""An X.509 certificate in `public.pem`, read as Go's x509.ParseCertificate reads it (for golang-jwt's fallback).

golang-jwt loads a public key from a PEM with ParsePKIXPublicKey and, when that fails, takes the key of
x509.ParseCertificate. Go's certificate parser is far stricter than OpenSSL's (which `cryptography` uses):
a certificate it refuses means Portworx cannot build its authenticator, whatever key is inside. `parse`
follows Go's parseCertificate (crypto/x509/parser.go, Go 1.26) step by step for what it checks itself:
the structure, the version (v1-v3), a non-negative serial (Go 1.23+), the inner and outer signature
algorithms byte for byte, the names' string types (UTF8String valid UTF-8, PrintableString, IA5String,
NumericString, BMPString), extensions written once, and the extensions whose malformation the issue met
(subjectAltName: ASCII names, 4- or 16-byte IPs; basicConstraints). The gap, named rather than hidden:
other extensions Go also parses (key usage, extended key usage, key identifiers, policies, name
constraints, CRL distribution points) are not parsed here, so a certificate malformed only there is
accepted here and refused by Go. OpenSSL's parser is no substitute: it refuses what Go accepts (a
DEFAULT value written out, such as `cA: FALSE`) as well as the reverse.

It returns the SubjectPublicKeyInfo element, which the caller reads with the same strict PKIX rules as a
bare public key (so a compressed EC point is refused in a certificate as Go refuses it).
"""

from __future__ import annotations

from typing import Final

from pxsec.gorsa import der_integer, der_read

_SEQUENCE, _SET, _BOOLEAN, _INTEGER, _OID, _OCTETS, _BITS = 0x30, 0x31, 0x01, 0x02, 0x06, 0x04, 0x03
_SAN: Final = bytes.fromhex("551d11")  # 2.5.29.17
_BASIC_CONSTRAINTS: Final = bytes.fromhex("551d13")  # 2.5.29.19
_PRINTABLE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?*&")


class CertificateError(ValueError):
    """Why Go's x509.ParseCertificate refuses the certificate (Go's words where it has them)."""


def _need(found: tuple[bytes, int] | None, what: str) -> tuple[bytes, int]:
    if found is None:
        raise CertificateError(f"x509: malformed {what}")
    return found


def _string(tag: int, value: bytes) -> None:
    """parseASN1String: whether Go reads an attribute value of this string type."""
    if tag == 0x14:  # T61String: read as Latin-1, always
        return
    if tag == 0x13 and all(b in _PRINTABLE for b in value):
        return
    if tag == 0x0C:
        try:
            value.decode("utf-8")
            return
        except UnicodeDecodeError:
            raise CertificateError("x509: invalid RDNSequence: invalid attribute value: invalid UTF-8 string") from None
    if tag == 0x16 and all(b < 0x80 for b in value):
        return
    if tag == 0x12 and all(b == 0x20 or 0x30 <= b <= 0x39 for b in value):
        return
    if tag == 0x1E and len(value) % 2 == 0:
        units = value[:-2] if value.endswith(b"\0\0") else value
        if not any(0xD8 <= units[i] <= 0xDF for i in range(0, len(units), 2)):
            return
    raise CertificateError(f"x509: invalid RDNSequence: invalid attribute value (string type 0x{tag:02x})")


def _name(body: bytes) -> None:
    pos = 0
    while pos < len(body):
        rdn, pos = _need(der_read(body, pos, _SET), "RDNSequence")
        at = 0
        while at < len(rdn):
            atv, at = _need(der_read(rdn, at, _SEQUENCE), "RDNSequence attribute")
            _, after = _need(der_read(atv, 0, _OID), "RDNSequence attribute type")
            if after >= len(atv):
                raise CertificateError("x509: invalid RDNSequence: invalid attribute value")
            tag = atv[after]
            value, _ = _need(der_read(atv, after, tag), "RDNSequence attribute value")
            _string(tag, value)


def _san(value: bytes) -> None:
    names, _ = _need(der_read(value, 0, _SEQUENCE), "subject alternative names")
    pos = 0
    while pos < len(names):
        tag = names[pos]
        data, pos = _need(der_read(names, pos, tag), "subject alternative name")
        kind = tag ^ 0x80
        if kind in (1, 2, 6) and any(b >= 0x80 for b in data):
            what = {1: "rfc822Name", 2: "dNSName", 6: "uniformResourceIdentifier"}[kind]
            raise CertificateError(f"x509: SAN {what} is malformed")
        if kind == 7 and len(data) not in (4, 16):
            raise CertificateError(f"x509: cannot parse IP address of length {len(data)}")


def _basic_constraints(value: bytes) -> None:
    body, _ = _need(der_read(value, 0, _SEQUENCE), "basic constraints")
    pos = 0
    if pos < len(body) and body[pos] == _BOOLEAN:
        flag, pos = _need(der_read(body, pos, _BOOLEAN), "basic constraints")
        if flag not in (b"\x00", b"\xff"):
            raise CertificateError("x509: invalid basic constraints")
    if pos < len(body) and body[pos] == _INTEGER:
        number = der_integer(body, pos)
        if number is None or number[0] < 0:
            raise CertificateError("x509: invalid basic constraints")


def _extensions(body: bytes) -> None:
    seen: set[bytes] = set()
    pos = 0
    while pos < len(body):
        ext, pos = _need(der_read(body, pos, _SEQUENCE), "extension")
        oid, at = _need(der_read(ext, 0, _OID), "extension OID field")
        if at < len(ext) and ext[at] == _BOOLEAN:
            critical, at = _need(der_read(ext, at, _BOOLEAN), "extension critical field")
            if critical not in (b"\x00", b"\xff"):
                raise CertificateError("x509: malformed extension critical field")
        value, _ = _need(der_read(ext, at, _OCTETS), "extension value field")
        if oid in seen:
            raise CertificateError("x509: certificate contains duplicate extension")
        seen.add(oid)
        if oid == _SAN:
            _san(value)
        elif oid == _BASIC_CONSTRAINTS:
            _basic_constraints(value)


def parse(der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a certificate Go's ParseCertificate reads; raises
    CertificateError with Go's reason otherwise."""
    cert, end = _need(der_read(der, 0, _SEQUENCE), "certificate")
    if end != len(der):
        raise CertificateError("x509: trailing data")
    tbs, pos = _need(der_read(cert, 0, _SEQUENCE), "tbs certificate")
    outer, pos = _need(der_read(cert, pos, _SEQUENCE), "algorithm identifier")
    version, at = 0, 0
    if tbs[:1] == b"\xa0":
        wrapped, at = _need(der_read(tbs, 0, 0xA0), "version")
        number = der_integer(wrapped, 0)
        if number is None or number[1] != len(wrapped) or number[0] < 0:
            raise CertificateError("x509: malformed version")
        version = number[0]
    if version + 1 > 3:
        raise CertificateError("x509: invalid version")
    serial = der_integer(tbs, at)
    if serial is None:
        raise CertificateError("x509: malformed serial number")
    if serial[0] < 0:
        raise CertificateError("x509: negative serial number")
    inner, at = _need(der_read(tbs, serial[1], _SEQUENCE), "signature algorithm identifier")
    if inner != outer:
        raise CertificateError("x509: inner and outer signature algorithm identifiers don't match")
    issuer, at = _need(der_read(tbs, at, _SEQUENCE), "issuer")
    _name(issuer)
    _, at = _need(der_read(tbs, at, _SEQUENCE), "validity")
    subject, at = _need(der_read(tbs, at, _SEQUENCE), "subject")
    _name(subject)
    spki_start = at
    _, at = _need(der_read(tbs, at, _SEQUENCE), "spki")
    spki = tbs[spki_start:at]
    if version + 1 > 1:
        for optional in (0x81, 0x82):  # issuerUniqueID, subjectUniqueID
            if tbs[at:at + 1] == bytes([optional]):
                _, at = _need(der_read(tbs, at, optional), "unique ID")
        if version + 1 == 3 and tbs[at:at + 1] == b"\xa3":
            wrapped, at = _need(der_read(tbs, at, 0xA3), "extensions")
            body, _ = _need(der_read(wrapped, 0, _SEQUENCE), "extensions")
            _extensions(body)
    _need(der_read(cert, pos, _BITS), "signature")
    return spki
