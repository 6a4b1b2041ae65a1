"""HTTP/1.1 to the one API server over kept-alive TLS connections: the requests that are not streams.

Why not urllib3 (the Kubernetes client's) for these: a request through its connection pool and
http.client costs the operator ~4x the CPU of the request itself — a Retry and a Timeout object per
call, the pool's queue, http.client's header parsing through the `email` package, a response wrapper
with its decoders — measured at ~560 µs against ~120 µs for the same GET written and read here, on a
workload of eight requests per new object (tests/bench/bench_e2e.py). What is left is what the API server
needs: a request line, headers, a Content-Length body; a response read by Content-Length or chunks.
Watch streams stay on urllib3 (`RestClient.open(stream=True)`): their cost is per event, not per request.

What is kept from urllib3, deliberately the same, because the reliability suites hold the operator to it:
- a connection the server has closed while idle (readable before use: FIN or close_notify) is not reused;
- a request is sent again only when it certainly did nothing: its connection could not be made, or it is
  idempotent (urllib3's default set: GET, HEAD, PUT, DELETE, OPTIONS, TRACE), up to RETRIES more times;
  a POST or PATCH whose response was lost fails (the caller's next reconcile reads and decides: a create
  met by 409 adopts, exactly once — tests/e2e/test_faults.py counts it);
- connect and read timeouts, per socket operation;
- at most `maxsize` idle connections kept (the client's `connection_pool_maxsize`), more are closed.
Failures are `TransportError`, a `urllib3.exceptions.HTTPError`, so callers that handle urllib3's network
failures (an Event's retries) handle these alike. Messages name the method and path, never a body.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urlsplit

import urllib3

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
RETRIES = 3  # sent again at most this many times (urllib3's default Retry(3))
IDLE_MAX = 60.0  # seconds: an older idle connection is closed rather than reused (the server's idle timeout is 90 s)
MAX_LINE = 65536  # a status or header line (http.client's limit)
MAX_HEADERS = 100
NO_BODY = frozenset({204, 304})
_DISALLOWED = re.compile(r"[\x00-\x20\x7f]")  # not in a request target (http.client refuses them; urllib3 quotes)


class TransportError(urllib3.exceptions.HTTPError):
    """The request failed on the wire (connection, TLS, timeout, a malformed or cut response): it may or may
    not have been processed, unless the method is idempotent."""


class _NotSent(Exception):
    """The connection could not be made: nothing was sent, any request may be sent again."""


class _Broken(Exception):
    """The response could not be read (cut, malformed): sent again only when the method is idempotent."""


class _Refused(Exception):
    """The server is not the one configured (its certificate fails verification): never sent again."""


class Headers(dict[str, str]):
    """Response headers by lower-case name; `get` is case-insensitive, as urllib3's HTTPHeaderDict."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Response:
    """A whole response: what the callers of urllib3's preloaded responses read."""

    status: int
    headers: Headers
    data: bytes

    def read(self) -> bytes:
        return self.data

    def release_conn(self) -> None:
        """Nothing to release: the connection went back to the pool once the body was read."""


@dataclass
class _Connection:
    sock: socket.socket
    rfile: IO[bytes]
    used: float = field(default_factory=time.monotonic)
    poller: Any = None  # select.poll of the socket, registered once (it is asked before every reuse)

    def __post_init__(self) -> None:
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self, now: float) -> bool:
        """Closed by the server while idle (readable before any request: EOF or close_notify), or idle long
        enough that a middlebox may have forgotten it."""
        if now - self.used > IDLE_MAX:
            return True
        try:
            return bool(self.poller.poll(0))
        except (OSError, ValueError):
            return True


class Transport:
    """One server (scheme, host, port), its TLS settings, and a pool of idle kept-alive connections."""

    def __init__(self, url: str, context: ssl.SSLContext | None, server_hostname: str | None = None,
                 maxsize: int = 10) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) server URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")  # a server URL may carry a path (a proxying front end)
        self.context = context if parts.scheme == "https" else None
        self.server_hostname = server_hostname or self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if parts.scheme == "https" else 80
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        self.maxsize = maxsize
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def for_configuration(cls, configuration: Any) -> Transport | None:
        """The transport for a kubernetes.client.Configuration, or None where urllib3 must stay (a proxy,
        custom socket options or retries, a hostname asserted apart from the server's name)."""
        if (getattr(configuration, "proxy", None) or getattr(configuration, "socket_options", None) is not None
                or getattr(configuration, "retries", None) is not None
                or getattr(configuration, "assert_hostname", None) is not None):
            return None
        host = str(configuration.host)
        context = None
        if host.startswith("https:"):
            context = ssl.create_default_context(cafile=getattr(configuration, "ssl_ca_cert", None) or None,
                                                 cadata=getattr(configuration, "ca_cert_data", None) or None)
            if not getattr(configuration, "verify_ssl", True):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            cert, key = getattr(configuration, "cert_file", None), getattr(configuration, "key_file", None)
            if cert:
                context.load_cert_chain(cert, key or None)
        maxsize = getattr(configuration, "connection_pool_maxsize", None) or 10
        return cls(host, context, getattr(configuration, "tls_server_name", None) or None, int(maxsize))

    def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None,
                timeout: tuple[float, float]) -> Response:
        """Send one request and read its whole response; TransportError when it failed on the wire."""
        head = self._head(method, target, headers, body)
        message = head + body if body else head
        retries = RETRIES
        while True:
            conn = None
            try:
                conn = self._take(timeout)
                response = self._exchange(conn, message, method)
            except _NotSent as exc:
                if retries <= 0:
                    raise TransportError(f"{method} {_path(target)}: {exc}") from None
            except _Refused as exc:
                raise TransportError(f"{method} {_path(target)}: {exc}") from None
            except (OSError, ValueError, _Broken) as exc:
                if conn is not None:
                    conn.close()
                if method not in IDEMPOTENT or retries <= 0:
                    raise TransportError(f"{method} {_path(target)}: {_describe(exc)}") from None
            except BaseException:  # interrupted half way: the connection's state is unknown, never reused
                if conn is not None:
                    conn.close()
                raise
            else:
                return response
            retries -= 1

    # -- the wire ---------------------------------------------------------------------------------

    def _head(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        if _DISALLOWED.search(target):
            target = _DISALLOWED.sub(lambda m: quote(m.group()), target)
        lines = [f"{method} {self.prefix}{target} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in headers.items():
            if "\r" in name or "\n" in name or ":" in name or "\r" in value or "\n" in value:
                raise ValueError(f"invalid header {name!r}")  # never the value: it may be a bearer token
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _take(self, timeout: tuple[float, float]) -> _Connection:
        now = time.monotonic()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(timeout)
            if not conn.dropped(now):
                conn.sock.settimeout(timeout[1])
                return conn
            conn.close()

    def _connect(self, timeout: tuple[float, float]) -> _Connection:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout[0])
        except OSError as exc:
            raise _NotSent(_describe(exc)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.server_hostname)
            sock.settimeout(timeout[1])
        except (OSError, ValueError) as exc:
            sock.close()
            if isinstance(exc, ssl.SSLCertVerificationError):  # a wrong server: not worth sending again
                raise _Refused(f"TLS: certificate verify failed ({exc.verify_message})") from None
            raise _NotSent(_describe(exc)) from None
        return _Connection(sock, sock.makefile("rb"))

    def _exchange(self, conn: _Connection, message: bytes, method: str) -> Response:
        conn.sock.sendall(message)
        status, headers, keep = _read_head(conn.rfile)
        data = _read_body(conn.rfile, status, headers, method)
        if keep and ("content-length" in headers or "transfer-encoding" in headers or status in NO_BODY
                     or method == "HEAD"):
            self._give_back(conn)
        else:
            conn.close()  # close-delimited, or the server said it closes: not reusable
        return Response(status, headers, data)

    def _give_back(self, conn: _Connection) -> None:
        conn.used = time.monotonic()
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()


def _read_line(rfile: IO[bytes]) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise _Broken("response line too long")
    if not line:
        raise _Broken("connection closed before the response")
    return line


def _read_head(rfile: IO[bytes]) -> tuple[int, Headers, bool]:
    """Status, headers, and whether the connection stays open after this response."""
    while True:
        version, _, rest = _read_line(rfile).decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _Broken("malformed status line")
        status = int(code)
        headers = Headers()
        for _ in range(MAX_HEADERS + 1):
            line = _read_line(rfile)
            if line in (b"\r\n", b"\n"):
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _Broken("malformed header line")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        else:
            raise _Broken("too many headers")
        if 100 <= status < 200:
            continue  # an interim response (none is asked for): the real one follows
        keep = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
        return status, headers, keep


def _read_body(rfile: IO[bytes], status: int, headers: Headers, method: str) -> bytes:
    if method == "HEAD" or status in NO_BODY:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_field = _read_line(rfile).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise _Broken("malformed chunk size") from None
            if size == 0:
                while _read_line(rfile) not in (b"\r\n", b"\n"):  # trailers, if any
                    pass
                return b"".join(parts)
            parts.append(_read_exactly(rfile, size))
            _read_line(rfile)  # the chunk's CRLF
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _Broken("malformed Content-Length")
        return _read_exactly(rfile, int(length))
    return rfile.read()  # delimited by the connection's close


def _read_exactly(rfile: IO[bytes], size: int) -> bytes:
    data = rfile.read(size)
    if len(data) != size:
        raise _Broken(f"response cut short ({len(data)} of {size} bytes)")
    return data


def _path(target: str) -> str:
    return target.split("?", 1)[0]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, _Broken):
        return str(exc)
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
