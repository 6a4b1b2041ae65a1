"""A real OIDC provider on loopback, for tests: HTTPS, its own CA, a discovery document, a JWKS, ID tokens.

Mocks of urllib would test our assumptions about urllib; this serves real TLS (a serving certificate
signed by a CA made at start, SANs IP 127.0.0.1 and DNS localhost) so the probe meets what it meets in
a cluster — certificate verification, redirects, status codes, slow answers. It listens on 127.0.0.1
only, on a free port, in a background thread, and stops cleanly as a context manager.

Knobs (plain attributes, read on every request, so a test can break a running provider):
`stated_issuer` (the discovery document's issuer; None = the real one), `algorithms` (None = field
left out), `jwks_status`, `discovery_status`, `jwks_override` (a JSON value served instead of the
keys), `discovery_override` (raw bytes served as the document), `jwks_uri_override`,
`redirect_discovery_to`, `delay` (seconds before answering), `padding` (extra bytes in the JWKS).
`requests` lists the paths asked for, to prove what the prober did (or did not) fetch.

`token(claims, alg)` signs ID tokens with the provider's keys (pyjwt), so tests can check that what the
probe returns verifies what the provider issues.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import socket
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REALM_PATH = "/realms/px"
WELL_KNOWN = "/.well-known/openid-configuration"
JWKS_PATH = "/protocol/openid-connect/certs"
ALIAS_PATH = "/alias"
RSA_KID = "rsa-1"
EC_KID = "ec-1"


def make_ca(common_name: str = "pxsec test OIDC CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (P-256: fast to generate) valid from an hour ago for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _serving_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                  key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


class _Server(http.server.ThreadingHTTPServer):
    """Plain TCP accept; TLS is set up in the request's own thread, so a failed handshake blocks nobody."""

    daemon_threads = True
    provider: OIDCProvider

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.provider.server_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.provider._record_handshake_failure()
            return
        try:
            _Handler(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up early (size limit, timeout) is part of the tests, not an error to print."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
        pass

    def do_GET(self) -> None:
        provider = self.server.provider
        provider._record(self.path)
        if provider.delay and provider._stopping.wait(provider.delay):
            return
        if self.path == ALIAS_PATH + WELL_KNOWN:  # where an https redirect may lead
            self._json(200, provider.discovery())
        elif self.path == provider.realm_path + WELL_KNOWN:
            if provider.redirect_discovery_to is not None:
                self._send(302, b"", extra={"Location": provider.redirect_discovery_to})
            elif provider.discovery_override is not None:
                self._send(provider.discovery_status, provider.discovery_override, "text/html")
            else:
                self._json(provider.discovery_status, provider.discovery())
        elif self.path == provider.realm_path + JWKS_PATH:
            body = provider.jwks_override if provider.jwks_override is not None else provider.jwks()
            if provider.padding and isinstance(body, dict):
                body = {**body, "padding": "x" * provider.padding}
            self._json(provider.jwks_status, body)
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class OIDCProvider:
    """An OIDC provider at https://127.0.0.1:PORT/realms/px, with an RSA and an EC signing key."""

    def __init__(self, realm_path: str = REALM_PATH) -> None:
        self.realm_path = realm_path
        self.ca_key, self.ca_cert = make_ca()
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)
        self._tls_key = ec.generate_private_key(ec.SECP256R1())
        self._tls_cert = _serving_cert(self.ca_key, self.ca_cert, self._tls_key)
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())

        # Knobs.
        self.stated_issuer: str | None = None
        self.algorithms: list[str] | None = ["RS256", "ES256", "PS256"]
        self.discovery_status = 200
        self.jwks_status = 200
        self.discovery_override: bytes | None = None
        self.jwks_override: Any = None
        self.jwks_uri_override: str | None = None
        self.redirect_discovery_to: str | None = None
        self.delay = 0.0
        self.padding = 0

        self.requests: list[str] = []
        self.handshake_failures = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.server_context = self._make_server_context()

    def _make_server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
            cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert_file.write_bytes(self._tls_cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem)
            key_file.write_bytes(self._tls_key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
            context.load_cert_chain(cert_file, key_file)
        return context

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OIDCProvider:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.provider = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="oidc-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on `delay`
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> OIDCProvider:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the provider is not running"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url + self.realm_path

    @property
    def discovery_url(self) -> str:
        return self.issuer + WELL_KNOWN

    @property
    def jwks_uri(self) -> str:
        return self.issuer + JWKS_PATH

    # -- what it serves ----------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.stated_issuer if self.stated_issuer is not None else self.issuer,
            "authorization_endpoint": self.issuer + "/protocol/openid-connect/auth",
            "token_endpoint": self.issuer + "/protocol/openid-connect/token",
            "jwks_uri": self.jwks_uri_override if self.jwks_uri_override is not None else self.jwks_uri,
            "response_types_supported": ["code", "id_token"],
            "subject_types_supported": ["public"],
        }
        if self.algorithms is not None:
            document["id_token_signing_alg_values_supported"] = list(self.algorithms)
        return document

    def jwks(self) -> dict[str, Any]:
        """The public keys, as a provider publishes them."""
        rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key(), as_dict=True)
        ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True)
        return {"keys": [{**rsa_jwk, "kid": RSA_KID, "use": "sig", "alg": "RS256"},
                         {**ec_jwk, "kid": EC_KID, "use": "sig", "alg": "ES256"}]}

    def token(self, claims: dict[str, Any], alg: str = "RS256") -> str:
        """An ID token signed like this provider signs them: RS*/PS* with the RSA key, ES256 with the EC key."""
        if alg.startswith(("RS", "PS")):
            return jwt.encode(claims, self.rsa_key, algorithm=alg, headers={"kid": RSA_KID})
        if alg == "ES256":
            return jwt.encode(claims, self.ec_key, algorithm=alg, headers={"kid": EC_KID})
        raise ValueError(f"this provider cannot sign {alg}")

    # -- what it saw -------------------------------------------------------------------------------

    def _record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)

    def _record_handshake_failure(self) -> None:
        with self._lock:
            self.handshake_failures += 1

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)


def free_port() -> int:
    """A loopback port nothing listens on (bound then released): for "connection refused" tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
