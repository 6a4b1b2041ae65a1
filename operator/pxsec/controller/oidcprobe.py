"""Fetch an OIDC provider's discovery document and JWKS (the operator's only outbound network code).

`pxsec.oidc` judges; this module only fetches, carefully, because the URLs come from a user's spec and
from a provider's document:

* **https only**, every request and every redirect hop: signing keys fetched without TLS could be forged.
* **Trust**: the system's CAs, or — when `spec.oidc.certificateAuthority` gives a bundle — *only* that
  bundle, so a private provider is trusted exactly as configured and nothing else is.
* **Bounded**: a deadline per request (default 5 s, covering the whole body) and a size limit (1 MiB),
  so a slow or hostile endpoint cannot stall a reconcile worker or fill memory.
* **Cached**: reconciles come often (every Secret or ConfigMap change wakes the resource); the provider
  is asked again only when the last result is stale — 10 minutes after a success, 30 seconds after a
  failure — per (issuer, CA bundle). `next_probe()` tells the caller when to requeue. Concurrent
  reconciles of the same provider share one fetch.

Errors become `ProbeResult`s (DiscoveryFailed / JWKSFailed / CAInvalid) with one stable line naming
the URL, so an unchanged failure does not produce a new Event on every retry.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pxsec import oidc

FRESH_AFTER_SUCCESS: Final = timedelta(minutes=10)
FRESH_AFTER_FAILURE: Final = timedelta(seconds=30)
TIMEOUT_SECONDS: Final = 5.0
MAX_BYTES: Final = 1 << 20
MAX_REDIRECTS: Final = 5
MAX_ENTRIES: Final = 256
USER_AGENT: Final = "px-security-operator (OIDC probe)"

# OpenSSL verify codes that are not about which CA is trusted, so asking about the CA would mislead:
# certificate not yet valid / expired, and hostname / IP address mismatch.
_NOT_ABOUT_TRUST: Final = frozenset({9, 10, 62, 64})

CacheKey = tuple[str, str]


class FetchError(Exception):
    """A fetch failed; the message is one stable line that names the URL."""


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to https URLs: a hop to http would undo the TLS the issuer promises."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme != "https":
            raise FetchError(f"{req.full_url}: redirected (HTTP {code}) to {newurl}, which is not https; "
                             f"refusing to follow")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class _Entry:
    result: oidc.ProbeResult
    due: datetime  # when the result stops being fresh


def cache_key(issuer: str, ca_pem: bytes | None) -> CacheKey:
    """Results depend on the issuer and on whom we trust; a changed CA bundle must probe afresh."""
    return issuer, ("system" if ca_pem is None else hashlib.sha256(ca_pem).hexdigest())


class Prober:
    """Probes OIDC providers and remembers the results for a while. Safe to share between threads.

    `proxies` follows urllib: None honours HTTPS_PROXY / NO_PROXY from the environment (as Portworx's
    Go HTTP client does), `{}` connects directly.
    """

    def __init__(self, *, fresh_after_success: timedelta = FRESH_AFTER_SUCCESS,
                 fresh_after_failure: timedelta = FRESH_AFTER_FAILURE, timeout: float = TIMEOUT_SECONDS,
                 max_bytes: int = MAX_BYTES, proxies: Mapping[str, str] | None = None,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.fresh_after_success = fresh_after_success
        self.fresh_after_failure = fresh_after_failure
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.proxies = None if proxies is None else dict(proxies)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[CacheKey, _Entry] = {}
        self._inflight: dict[CacheKey, threading.Lock] = {}

    # -- the cache ---------------------------------------------------------------------------------

    def probe(self, issuer: str, ca_pem: bytes | None, now: datetime) -> oidc.ProbeResult:
        """The provider's state at `now`: the cached result while fresh, else a new probe.

        A cached result keeps its `probed_at`, so `status.oidc.lastProbeTime` (and hence the status)
        changes only when the provider was really asked again.
        """
        key = cache_key(issuer, ca_pem)
        with self._lock:
            cached = self._fresh(key, now)
            if cached is not None:
                return cached
            flight = self._inflight.setdefault(key, threading.Lock())
        with flight:  # one fetch per provider at a time; latecomers take its result
            with self._lock:
                cached = self._fresh(key, now)
                if cached is not None:
                    return cached
            result = self._probe(issuer, ca_pem, now)
            ttl = self.fresh_after_success if result.ok else self.fresh_after_failure
            with self._lock:
                self._entries[key] = _Entry(result, now + ttl)
                self._prune(now, keep=key)
        return result

    def next_probe(self, issuer: str, ca_pem: bytes | None) -> datetime | None:
        """When the cached result for this provider goes stale (requeue then); None if there is none."""
        with self._lock:
            entry = self._entries.get(cache_key(issuer, ca_pem))
            return entry.due if entry is not None else None

    def forget(self, issuer: str, ca_pem: bytes | None) -> None:
        """Drop the cached result, so the next `probe()` asks the provider (e.g. the user asked to retry)."""
        with self._lock:
            self._entries.pop(cache_key(issuer, ca_pem), None)

    def _fresh(self, key: CacheKey, now: datetime) -> oidc.ProbeResult | None:
        entry = self._entries.get(key)
        # A clock that went backwards past the probe makes the entry stale rather than fresh for longer.
        if entry is not None and entry.result.probed_at <= now < entry.due:
            return entry.result
        return None

    def _prune(self, now: datetime, keep: CacheKey) -> None:
        """Keep memory bounded: stale entries go first, then the oldest, never the one just stored."""
        if len(self._entries) <= self.max_entries:
            return
        for key in [k for k, e in self._entries.items() if e.due <= now and k != keep]:
            del self._entries[key]
        for key in sorted((k for k in self._entries if k != keep), key=lambda k: self._entries[k].due):
            if len(self._entries) <= self.max_entries:
                break
            del self._entries[key]
        for key in [k for k, lock in self._inflight.items() if k not in self._entries and not lock.locked()]:
            del self._inflight[key]

    # -- one probe ---------------------------------------------------------------------------------

    def _probe(self, issuer: str, ca_pem: bytes | None, now: datetime) -> oidc.ProbeResult:
        if ca_pem is not None:
            problem = oidc.check_ca(ca_pem)
            if problem is not None:
                return oidc.judge(issuer, None, None, now, stage=oidc.STAGE_CA,
                                  error=f"the CA bundle from spec.oidc.certificateAuthority {problem}")
        try:
            context = self._context(ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            return oidc.judge(issuer, None, None, now, stage=oidc.STAGE_CA,
                              error=f"the CA bundle from spec.oidc.certificateAuthority cannot be loaded "
                                    f"({_ssl_reason(exc)})")
        opener = self._opener(context)
        hint = ("is spec.oidc.certificateAuthority set?" if ca_pem is None
                else "does spec.oidc.certificateAuthority hold the CA that signed the provider's certificate?")

        url = oidc.discovery_url(issuer)
        try:
            discovery = self._fetch_json(opener, url, hint)
        except FetchError as exc:
            return oidc.judge(issuer, None, None, now, error=str(exc), stage=oidc.STAGE_DISCOVERY)
        found = oidc.read_discovery(issuer, discovery)
        if found.problem is not None or found.jwks_uri is None:
            return oidc.judge(issuer, discovery, None, now)
        try:
            jwks = self._fetch_json(opener, found.jwks_uri, hint)
        except FetchError as exc:
            return oidc.judge(issuer, discovery, None, now, error=str(exc), stage=oidc.STAGE_JWKS)
        return oidc.judge(issuer, discovery, jwks, now)

    @staticmethod
    def _context(ca_pem: bytes | None) -> ssl.SSLContext:
        """System trust, or only the given bundle (create_default_context loads no defaults then).

        The certificates are handed over as DER, re-encoded by `cryptography`: bundles often carry
        UTF-8 comments between the PEM blocks, which `cadata` as text would refuse.
        """
        if ca_pem is None:
            return ssl.create_default_context()
        certs = x509.load_pem_x509_certificates(ca_pem)
        return ssl.create_default_context(cadata=b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs))

    def _opener(self, context: ssl.SSLContext) -> urllib.request.OpenerDirector:
        proxy = urllib.request.ProxyHandler() if self.proxies is None else urllib.request.ProxyHandler(self.proxies)
        return urllib.request.build_opener(proxy, urllib.request.HTTPSHandler(context=context),
                                           _HttpsOnlyRedirects())

    def _fetch_json(self, opener: urllib.request.OpenerDirector, url: str, hint: str) -> Any:
        body, content_type = self._fetch(opener, url, hint)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            shown = f" (Content-Type {content_type})" if content_type else ""
            raise FetchError(f"{url}: the response is not JSON{shown}") from None

    def _fetch(self, opener: urllib.request.OpenerDirector, url: str, hint: str) -> tuple[bytes, str]:
        """The body of a 200 answer to GET `url`, within the deadline and the size limit."""
        if urlsplit(url).scheme != "https":
            raise FetchError(f"{url}: not an https URL; refusing to fetch")
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        deadline = time.monotonic() + self.timeout
        try:
            with opener.open(request, timeout=self.timeout) as response:
                if response.status != 200:
                    raise FetchError(f"{url}: HTTP {response.status}, expected 200")
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FetchError(f"{url}: the response is larger than {_size(self.max_bytes)}")
                return self._read(response, url, deadline), str(response.headers.get("Content-Type") or "")
        except FetchError:
            raise
        except urllib.error.HTTPError as exc:
            exc.close()
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}, expected 200") from None
        except urllib.error.URLError as exc:
            raise FetchError(f"{url}: {_describe(exc.reason, url, hint, self.timeout)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{url}: {_describe(exc, url, hint, self.timeout)}") from None
        except ValueError as exc:  # a URL urllib cannot use (bad port, non-ASCII); it comes from a document
            raise FetchError(f"{url}: not a usable URL ({exc})") from None

    def _read(self, response: http.client.HTTPResponse, url: str, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"{url}: no complete answer within {self.timeout:g} s")
            chunk = response.read1(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"{url}: the response is larger than {_size(self.max_bytes)}")
            chunks.append(chunk)


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__ if not str(exc) else str(exc)


def _describe(reason: object, url: str, hint: str, timeout: float) -> str:
    """One stable line for a network failure: what went wrong, and where useful what to check."""
    host = urlsplit(url).hostname or "?"
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = reason.verify_message or "unknown reason"
        if reason.verify_code in _NOT_ABOUT_TRUST:
            return f"certificate verify failed: {detail}"
        return f"certificate verify failed: {detail} ({hint})"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host {host} ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS handshake failed ({_ssl_reason(reason)})"
    if isinstance(reason, http.client.InvalidURL):
        return f"not a usable URL ({reason})"
    if isinstance(reason, http.client.HTTPException):
        return f"the connection broke off ({type(reason).__name__})"
    if isinstance(reason, OSError):
        return f"{reason.strerror or type(reason).__name__}"
    return str(reason) or type(reason).__name__
