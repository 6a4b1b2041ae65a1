"""Certificates and keys for a throwaway local control plane.

kube-apiserver needs a serving certificate, a client CA to authenticate the admin and the
controller-manager, and a key pair to sign ServiceAccount tokens (so the TokenRequest API works and the
operator under test can run as its own ServiceAccount). Everything is generated with `cryptography`
into the control plane's temporary directory and removed with it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: CertPair
    serving: CertPair
    admin: CertPair
    controller_manager: CertPair
    sa_private: Path
    sa_public: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    directory: Path,
    stem: str,
    subject: x509.Name,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    is_ca: bool = False,
    server: bool = False,
) -> tuple[CertPair, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_name, signing_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    x509.IPAddress(ipaddress.IPv4Address("10.0.0.1")),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(signing_key, hashes.SHA256())
    pair = CertPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair, key


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def generate(directory: Path) -> PKI:
    """Write a CA, serving/client certificates and the ServiceAccount signing key pair into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_name = _name("pxsec-local-ca")
    ca, ca_key = _issue(directory, "ca", ca_name, None, is_ca=True)
    signer = (ca_name, ca_key)
    serving, _ = _issue(directory, "apiserver", _name("kube-apiserver"), signer, server=True)
    admin, _ = _issue(directory, "admin", _name("pxsec-admin", "system:masters"), signer)
    # The controllers run under the controller manager's own identity (no per-controller
    # ServiceAccount credentials here), so it needs the rights those controllers would have.
    kcm, _ = _issue(directory, "controller-manager",
                    _name("system:kube-controller-manager", "system:masters"), signer)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private = directory / "sa.key"
    sa_public = directory / "sa.pub"
    _write_key(sa_key, sa_private)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return PKI(ca=ca, serving=serving, admin=admin, controller_manager=kcm,
               sa_private=sa_private, sa_public=sa_public)
