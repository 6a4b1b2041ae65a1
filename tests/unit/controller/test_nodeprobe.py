"""The prober against a real HTTP server on loopback: 200 is accepted, 401/403 rejected, anything else or
no answer unreachable (with the address and a short reason, never the token)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from pxsec.controller.nodeprobe import NodeProber
from pxsec.nodecheck import PROBE_PATH, Outcome

TOKENS = {"good": 200, "bad": 403, "odd": 401, "boom": 500}


class Node(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("bearer ")
        code = TOKENS.get(token, 403) if self.path == PROBE_PATH else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def node() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_each_answer_is_judged(node: str) -> None:
    down = closed_port()
    asks = [("n1", node, "k", "good"), ("n1", node, "k2", "bad"), ("n2", node, "k", "odd"),
            ("n3", node, "k", "boom"), ("n4", down, "k", "good")]
    got = NodeProber(timeout=2).probe(asks)
    assert [p.outcome for p in got] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.REJECTED, Outcome.UNREACHABLE,
                                        Outcome.UNREACHABLE]
    assert got[3].detail == f"{node}: HTTP 500"
    assert got[4].detail.startswith(f"{down}: ") and "good" not in got[4].detail
    assert [p.node for p in got] == ["n1", "n1", "n2", "n3", "n4"]
