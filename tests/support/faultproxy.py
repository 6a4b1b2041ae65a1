"""A fault-injecting HTTPS proxy between the operator and kube-apiserver, for the reliability e2e tests.

    proxy = FaultProxy(upstream="https://127.0.0.1:6443", ca=CA, cert=SERVING_CERT, key=SERVING_KEY).start()
    kubeconfig = proxy.kubeconfig(service_account_kubeconfig)   # the same credentials, the proxy's address
    proxy.faults = Faults(...)                                   # or Faults.none()

It terminates TLS with the API server's own serving certificate (valid for 127.0.0.1, signed by the cluster
CA the kubeconfig trusts), reads each HTTP/1.1 request, and either answers it with a fault or forwards it
on a TLS connection of its own to kube-apiserver, passing the client's Authorization through. So the
operator keeps its identity (the audit log names it) and its own client libraries (kopf's aiohttp, our
urllib3 pool) meet real HTTP faults on a real socket:

- `too_many`: 429 with Retry-After: 1 and a Status body, as API Priority and Fairness answers;
- `server_error`: 500 with a Status body;
- `slow`: the request is held `slow_seconds` before it is forwarded (a latency spike);
- `reset`: the response's headers and half its body, then a TCP reset (SO_LINGER 0);
- watches are cut after `watch_cut` seconds (the stream simply ends, no final chunk), or a `clean_end` share
  of them ended there as the API server ends a watch (the final chunk, the connection kept);
- `gone`: a watch that resumes from a resourceVersion gets 200 and one ERROR event with a 410 Status,
  as kube-apiserver answers a resourceVersion too old for its watch cache.

Decisions come from one seeded random generator (repeatable), and every decision is counted (`counts`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import random
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host",
               "content-length"}


@dataclass(frozen=True)
class Faults:
    too_many: float = 0.05
    server_error: float = 0.05
    slow: float = 0.05
    slow_seconds: float = 2.0
    reset: float = 0.03
    watch_cut: tuple[float, float] = (2.0, 6.0)  # a watch stream ends after a time drawn from this range
    gone: float = 0.2  # of watches that resume from a resourceVersion
    # Of the watch ends: the share that ends cleanly (the final chunk, the connection kept), as the API
    # server ends a watch at its timeoutSeconds; the rest are cut (the connection just closes).
    clean_end: float = 0.0

    @classmethod
    def none(cls) -> Faults:
        return cls(too_many=0, server_error=0, slow=0, reset=0, watch_cut=(3600.0, 3600.0), gone=0)


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


@dataclass
class FaultProxy:
    upstream: str
    ca: Path
    cert: Path
    key: Path
    faults: Faults = field(default_factory=Faults.none)
    seed: int = 24
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.upstream)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 443
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ctx.load_cert_chain(str(self.cert), str(self.key))
        self._server_ctx.set_alpn_protocols(["http/1.1"])
        self._client_ctx = ssl.create_default_context(cafile=str(self.ca))
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self._sock, self.port = sock, sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="faultproxy-accept").start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, source: Path, target: Path) -> Path:
        """`source` (same credentials and CA) pointing at the proxy."""
        doc = yaml.safe_load(source.read_text())
        for cluster in doc["clusters"]:
            cluster["cluster"]["server"] = self.url
        target.write_text(yaml.safe_dump(doc))
        return target

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    # -- connections ------------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True, name="faultproxy-conn").start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self._server_ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        reader = conn.makefile("rb")
        try:
            while not self._stopping.is_set():
                request = self._read_request(reader)
                if request is None:
                    return
                if not self._handle(conn, *request):
                    return
        except (OSError, ssl.SSLError, ValueError, http.client.HTTPException):
            return
        finally:
            with contextlib.suppress(OSError):
                reader.close()
                conn.close()

    @staticmethod
    def _read_request(reader: IO[bytes]) -> tuple[str, str, dict[str, str], bytes] | None:
        line = reader.readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = reader.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(reader.readline().split(b";")[0], 16)
                if size == 0:
                    reader.readline()
                    break
                parts.append(reader.read(size))
                reader.readline()
            body = b"".join(parts)
        return method, target, headers, body

    @staticmethod
    def _send(conn: ssl.SSLSocket, status: str, headers: list[tuple[str, str]], body: bytes | None) -> None:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def _handle(self, conn: ssl.SSLSocket, method: str, target: str, headers: dict[str, str], body: bytes) -> bool:
        """Answer one request; False when the connection is done."""
        self.count("requests")
        self.count(f"by {headers.get('user-agent', '?').split('/')[0]} {method}")
        if method == "GET":  # which GETs: one object (and its kind), a list, a watch
            parts = urllib.parse.urlsplit(target).path.strip("/").split("/")
            named = len(parts) >= 2 and parts[-2] not in ("namespaces", "api", "apis") and "namespaces" in parts \
                and len(parts) - parts.index("namespaces") == 4
            kind = "watch" if "watch=" in target else ("get" if named else "list")
            self.count(f"by GET {kind} {parts[-2] if named else parts[-1]}")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        watch = query.get("watch", [""])[0] in ("1", "true")
        faults = self.faults
        keep = headers.get("connection", "").lower() != "close"
        json_type = [("Content-Type", "application/json")]
        roll = self._draw()
        if roll < faults.too_many:
            self.count("429")
            self._send(conn, "429 Too Many Requests", [*json_type, ("Retry-After", "1")],
                       _status(429, "TooManyRequests", "the fault proxy says: too many requests"))
            return keep
        if roll < faults.too_many + faults.server_error:
            self.count("500")
            self._send(conn, "500 Internal Server Error", json_type,
                       _status(500, "InternalError", "the fault proxy says: internal error"))
            return keep
        if roll < faults.too_many + faults.server_error + faults.slow:
            self.count("slow")
            time.sleep(faults.slow_seconds)
        if watch and query.get("resourceVersion", ["0"])[0] not in ("", "0") and self._draw() < faults.gone:
            self.count("410")
            event = json.dumps({"type": "ERROR", "object": json.loads(_status(
                410, "Expired", "too old resource version (the fault proxy)"))}).encode() + b"\n"
            self._send(conn, "200 OK", [*json_type, ("Transfer-Encoding", "chunked")], None)
            conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
            return keep
        upstream = http.client.HTTPSConnection(self._host, self._port, context=self._client_ctx, timeout=120)
        try:
            forwarded = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
            upstream.request(method, target, body=body or None, headers=forwarded)
            response = upstream.getresponse()
            out_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            status = f"{response.status} {response.reason}"
            if watch and response.status == 200:
                return self._stream(conn, upstream, response, status, out_headers)
            data = response.read()
        finally:
            if not watch:
                upstream.close()
        if self._draw() < faults.reset and len(data) > 1:
            self.count("reset")
            conn.sendall((f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in out_headers)
                          + f"Content-Length: {len(data)}\r\n\r\n").encode("latin-1") + data[:len(data) // 2])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        self._send(conn, status, out_headers, data)
        return keep

    def _stream(self, conn: ssl.SSLSocket, upstream: http.client.HTTPSConnection,
                response: http.client.HTTPResponse, status: str, headers: list[tuple[str, str]]) -> bool:
        """A watch: relayed line by line, in chunks, until it ends or the fault cuts it (a reader thread
        feeds a queue, so the cut never interrupts a read half way)."""
        started, share = time.monotonic(), self._draw()  # the cut follows the faults in force now, not then
        clean = self._draw() < self.faults.clean_end
        conn.sendall((f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
                      + "Transfer-Encoding: chunked\r\n\r\n").encode("latin-1"))
        lines: queue.Queue[bytes | None] = queue.Queue()

        def read() -> None:
            try:
                while line := response.readline():
                    lines.put(line)
            except (OSError, ValueError, AttributeError, http.client.HTTPException):
                pass  # closed under it by the cut (http.client then has no file object left)
            lines.put(None)

        threading.Thread(target=read, daemon=True, name="faultproxy-watch").start()
        try:
            while True:
                low, high = self.faults.watch_cut
                remaining = started + low + (high - low) * share - time.monotonic()
                if remaining <= 0:
                    if clean:
                        self.count("watch ended")
                        conn.sendall(b"0\r\n\r\n")
                        return True  # as at the server's timeoutSeconds: the connection is kept
                    self.count("watch cut")
                    return False  # the stream just stops: no final chunk, the connection closes
                try:
                    line = lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    conn.sendall(b"0\r\n\r\n")
                    return True
                conn.sendall(b"%x\r\n%s\r\n" % (len(line), line))
        except (OSError, ssl.SSLError):
            return False
        finally:
            # Shut the upstream socket down first: the reader thread is blocked in a read on it, and closing
            # the response alone would wait for that read (the next event or bookmark, a minute away), and
            # with it this connection's next request, or the cut itself.
            with contextlib.suppress(OSError, AttributeError):
                upstream.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError, ValueError):
                response.close()
                upstream.close()


def start_for(control_plane: Any, faults: Faults | None = None) -> FaultProxy:
    """A proxy in front of a local control plane (pxsec.devcluster.controlplane.ControlPlane)."""
    pki = control_plane.pki
    return FaultProxy(upstream=control_plane.server, ca=pki.ca.cert, cert=pki.serving.cert, key=pki.serving.key,
                      faults=faults or Faults.none()).start()
