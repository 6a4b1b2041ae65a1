"""The lean HTTP/1.1 transport (pxsec.controller.kube.transport) against a scripted server on loopback: what it
keeps from urllib3 — connections kept alive and not reused once the server closed them, a request sent again
only when it certainly did nothing or is idempotent, timeouts — and what it must read: Content-Length,
chunks, interim and empty responses. (The e2e suites run it against the real API server, and the fault
proxy of tests/e2e/test_faults.py cuts and resets it there.)"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pxsec.controller.kube.transport import Transport, TransportError
from pxsec.devcluster import pki

TIMEOUT = (2.0, 2.0)


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


# A reply: the bytes to send (then the connection stays open), or (bytes, True): send them and close, or
# None: close without answering.
Reply = Callable[[Seen], "bytes | tuple[bytes, bool] | None"]


@dataclass
class Server:
    """Accepts connections, reads HTTP/1.1 requests off each and answers what `reply` says."""

    reply: Reply
    context: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    sockets: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_side=True)
            self.sockets.append(sock)
            rfile = sock.makefile("rb")
            while True:
                line = rfile.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = rfile.read(int(headers.get("content-length", "0")))
                seen = Seen(number, method, target, headers, body)
                self.seen.append(seen)
                out = self.reply(seen)
                if out is None:
                    sock.close()
                    return
                data, closing = out if isinstance(out, tuple) else (out, False)
                sock.sendall(data)
                if closing:
                    sock.close()
                    return
        except (OSError, ValueError):
            return

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def ok(body: bytes = b'{"kind":"Status"}', extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(reply: Reply, context: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(reply, context))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_one_connection_carries_many_requests(serve: Callable[..., Server]) -> None:
    server = serve(lambda seen: ok(b'{"n":%d}' % len(server.seen)))
    t = Transport(server.url, None)
    bodies = [t.request("GET", "/api/v1/namespaces", {"Accept": "application/json"}, None, TIMEOUT).data
              for _ in range(5)]
    assert bodies == [b'{"n":%d}' % n for n in range(1, 6)] and server.connections == 1
    first = server.seen[0]
    assert first.headers["host"] == f"127.0.0.1:{server.port}" and first.headers["accept"] == "application/json"
    post = t.request("POST", "/api/v1/namespaces/a/secrets", {"Content-Type": "application/json"}, b'{"x":1}',
                     TIMEOUT)
    last = server.seen[-1]
    assert post.status == 200 and last.body == b'{"x":1}' and last.headers["content-length"] == "7"


def test_chunked_interim_and_empty_responses_are_read_whole(serve: Callable[..., Server]) -> None:
    replies = iter([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n{\"a\"\r\n6;ext=1\r\n:\"bc\"}\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\nContent-Length: 2\r\n\r\n{}",
    ])
    server = serve(lambda seen: next(replies))
    t = Transport(server.url, None)
    assert t.request("GET", "/a", {}, None, TIMEOUT).data == b'{"a":"bc"}'
    assert t.request("GET", "/b", {}, None, TIMEOUT).data == b"{}"
    assert t.request("DELETE", "/c", {}, None, TIMEOUT).status == 204
    throttled = t.request("POST", "/d", {}, b"{}", TIMEOUT)
    assert throttled.status == 429 and throttled.headers.get("Retry-After") == "3"
    assert server.connections == 1  # every one of them left the connection reusable


def test_a_connection_the_server_closes_is_not_reused(serve: Callable[..., Server]) -> None:
    """Closed after its response (`Connection: close`), or later while idle: the next request, a POST that
    must not be sent twice, goes on a new connection and is sent once."""
    server = serve(lambda seen: ok(extra="Connection: close\r\n") if seen.target == "/closing" else ok())
    t = Transport(server.url, None)
    t.request("GET", "/closing", {}, None, TIMEOUT)
    t.request("GET", "/kept", {}, None, TIMEOUT)
    for sock in server.sockets:  # the server forgets its idle connections
        sock.shutdown(socket.SHUT_RDWR)
    deadline = 50
    while deadline and not t._idle[0].dropped(0.0):  # the FIN has arrived
        threading.Event().wait(0.01)
        deadline -= 1
    t.request("POST", "/create", {}, b"{}", TIMEOUT)
    assert [s.connection for s in server.seen] == [1, 2, 3]
    assert [s.target for s in server.seen].count("/create") == 1


def test_a_lost_response_is_asked_again_only_when_the_request_is_idempotent(serve: Callable[..., Server]) -> None:
    """A response cut short (a reset mid-body) may follow a request the server processed: a GET or DELETE
    is sent again (urllib3's rule), a POST or PATCH is not — the caller's next reconcile decides."""
    cut = {"GET /get": 1, "POST /post": 1, "PATCH /patch": 1}

    def reply(seen: Seen) -> bytes | tuple[bytes, bool]:
        key = f"{seen.method} {seen.target}"
        if cut.get(key):
            cut[key] -= 1
            return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut", True  # then the server closes
        return ok()

    server = serve(reply)
    t = Transport(server.url, None)
    assert t.request("GET", "/get", {}, None, TIMEOUT).status == 200
    for method in ("POST", "PATCH"):
        with pytest.raises(TransportError, match=f"{method} /{method.lower()}: .*cut short"):
            t.request(method, f"/{method.lower()}", {}, b'{"secret":"s3cr3t"}', TIMEOUT)
    targets = [f"{s.method} {s.target}" for s in server.seen]
    assert targets == ["GET /get", "GET /get", "POST /post", "PATCH /patch"]


def test_errors_name_the_request_never_its_body_and_give_up(serve: Callable[..., Server]) -> None:
    refused = socket.create_server(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()
    with pytest.raises(TransportError, match=r"POST /api/v1/namespaces/a/secrets: ConnectionRefusedError") as info:
        Transport(f"http://127.0.0.1:{port}", None).request(
            "POST", "/api/v1/namespaces/a/secrets?fieldManager=x", {}, b"s3cr3t", TIMEOUT)
    assert "s3cr3t" not in str(info.value) and "fieldManager" not in str(info.value)

    silent = serve(lambda seen: b"")  # reads the request, never answers
    with pytest.raises(TransportError, match="PATCH /x: timed out"):
        Transport(silent.url, None).request("PATCH", "/x", {}, b"{}", (1.0, 0.2))
    assert len(silent.seen) == 1

    garbage = serve(lambda seen: b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(TransportError, match="malformed status line"):
        Transport(garbage.url, None).request("POST", "/x", {}, b"{}", TIMEOUT)


def test_what_is_sent_cannot_be_smuggled(serve: Callable[..., Server]) -> None:
    server = serve(lambda seen: ok())
    t = Transport(server.url, None)
    with pytest.raises(ValueError, match="invalid header 'authorization'") as info:
        t.request("GET", "/x", {"authorization": "Bearer abc\r\nX-Evil: 1"}, None, TIMEOUT)
    assert "abc" not in str(info.value) and server.seen == []
    t.request("GET", "/api/v1/namespaces/n s/secrets\r\nX: 1", {}, None, TIMEOUT)
    assert server.seen[0].target == "/api/v1/namespaces/n%20s/secrets%0D%0AX:%201" and "x" not in server.seen[0].headers


def test_tls_with_the_clusters_ca_and_a_client_certificate(serve: Callable[..., Server], tmp_path: Path) -> None:
    keys = pki.generate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(keys.ca.cert))
    context.load_cert_chain(str(keys.serving.cert), str(keys.serving.key))
    context.verify_mode = ssl.CERT_REQUIRED  # the API server asks for the client's certificate
    server = serve(lambda seen: ok(), context)

    class Configuration:
        host = server.url
        ssl_ca_cert, cert_file, key_file = str(keys.ca.cert), str(keys.admin.cert), str(keys.admin.key)
        verify_ssl, proxy, connection_pool_maxsize = True, None, 4

    t = Transport.for_configuration(Configuration())
    assert t is not None and t.maxsize == 4
    assert [t.request("GET", "/x", {}, None, TIMEOUT).status for _ in range(3)] == [200, 200, 200]
    assert server.connections == 1

    Configuration.ssl_ca_cert = str(keys.serving.cert)  # not the CA that signed it: refused, not retried
    wrong = Transport.for_configuration(Configuration())
    assert wrong is not None
    with pytest.raises(TransportError, match=r"GET /x: TLS: certificate verify failed \(self-signed"):
        wrong.request("GET", "/x", {}, None, TIMEOUT)
    assert len(server.seen) == 3


def test_configurations_that_need_urllib3_keep_it() -> None:
    class Configuration:
        host, proxy, verify_ssl = "https://api:6443", "http://proxy:3128", True

    assert Transport.for_configuration(Configuration()) is None
    Configuration.proxy = None
    assert Transport.for_configuration(Configuration()) is not None
