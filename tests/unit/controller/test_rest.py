"""The REST client sends a throttled request again (429: not processed, whatever the verb), after its
Retry-After, a bounded number of times, as client-go does; other failures are the caller's. Requests go
over the lean transport (test_transport.py), streams and anything through a proxy over urllib3's pool."""

from __future__ import annotations

from typing import Any

import pytest

from pxsec.controller.kube import rest


class Response:
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        self.status, self.data = status, b"{}"
        self.headers = {"Retry-After": retry_after} if retry_after is not None else {}

    def release_conn(self) -> None:
        pass


class Pool:
    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.sent = 0
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # method, url, headers
        self.direct = 0  # requests sent through the server's own pool (not the PoolManager)
        self.lean = 0  # requests sent through the lean transport

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.sent += 1
        self.seen.append((method, url, dict(kwargs["headers"])))
        return Response(self.statuses.pop(0), retry_after="1")

    def connection_from_url(self, url: str) -> Server:
        """As PoolManager's: the one server's HTTPSConnectionPool (its urlopen takes the request URI)."""
        return Server(self, url)


class Server:
    def __init__(self, pool: Pool, url: str) -> None:
        self.pool, self.url = pool, url

    def urlopen(self, method: str, uri: str, **kwargs: Any) -> Response:
        assert uri.startswith("/") and kwargs["assert_same_host"] is False and kwargs["redirect"] is False
        self.pool.direct += 1
        return self.pool.request(method, self.url + uri, **kwargs)


class Lean:
    """As transport.Transport: the request target (path and query) on the configured server."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
                timeout: tuple[float, float]) -> Response:
        assert target.startswith("/")
        self.pool.lean += 1
        return self.pool.request(method, "https://api:6443" + target, headers=headers)


class Configuration:
    """As kubernetes.client.Configuration: the host, and a bearer token its refresh hook may replace."""

    def __init__(self) -> None:
        self.host = "https://api:6443/"
        self.proxy: str | None = None
        self.token = "t1"
        self.reads = 0

    def auth_settings(self) -> dict[str, dict[str, str]]:
        self.reads += 1
        return {"BearerToken": {"type": "api_key", "in": "header", "key": "authorization",
                                "value": f"Bearer {self.token}"}}


class Client:
    def __init__(self, pool: Pool) -> None:
        self.rest_client = type("R", (), {"pool_manager": pool})()
        self.configuration = Configuration()
        self.default_headers = {"User-Agent": "pxsec-test"}


@pytest.mark.parametrize(("statuses", "sent", "ok"), [
    ((200,), 1, True),
    ((429, 201), 2, True),
    ((429, 429, 429), 3, False),  # given up: the caller's back-off takes over
    ((500, 200), 1, False),  # a 500 may have been processed: not sent again here
])
def test_a_throttled_request_is_sent_again(statuses: tuple[int, ...], sent: int, ok: bool,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []
    monkeypatch.setattr(rest.time, "sleep", waited.append)
    pool = Pool(*statuses)
    client = rest.RestClient(Client(pool), Lean(pool))  # type: ignore[arg-type]
    if ok:
        client.request("POST", "/api/v1/namespaces/ns/secrets", body={})
    else:
        with pytest.raises(rest.HttpError):
            client.request("POST", "/api/v1/namespaces/ns/secrets", body={})
    assert pool.sent == sent and waited == [1.0] * (min(sent, rest.THROTTLED_ATTEMPTS) - 1 if 429 in statuses else 0)


@pytest.mark.parametrize(("header", "seconds"), [(None, 1.0), ("0", 0.0), ("1", 1.0), ("30", 2.0), ("x", 1.0),
                                                  ("nan", 1.0), ("-5", 0.0)])
def test_retry_after_is_read_and_capped(header: str | None, seconds: float) -> None:
    assert rest._retry_after(header) == seconds


def test_requests_carry_the_clients_credentials_read_again_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer header is the client's (its refresh hook may change it: a rotated ServiceAccount token),
    read at most every AUTH_REUSE seconds rather than on every request; the URL is the client's host."""
    clock = [100.0]
    monkeypatch.setattr(rest.time, "monotonic", lambda: clock[0])
    pool = Pool(200, 200, 200)
    api = Client(pool)
    client = rest.RestClient(api, Lean(pool))  # type: ignore[arg-type]
    client.request("GET", "/api/v1/namespaces/n s/secrets", query=[("labelSelector", "a=b,c"), ("limit", "5")])
    api.configuration.token = "t2"
    clock[0] += rest.AUTH_REUSE / 2
    client.request("POST", "/api/v1/namespaces/ns/secrets", body={"a": 1})
    clock[0] += rest.AUTH_REUSE
    client.request("GET", "/api/v1/namespaces/ns/secrets/x")
    (m1, url1, h1), (m2, _, h2), (m3, _, h3) = pool.seen
    assert (m1, m2, m3) == ("GET", "POST", "GET")
    assert url1 == "https://api:6443/api/v1/namespaces/n s/secrets?labelSelector=a%3Db%2Cc&limit=5"
    assert h1 == {"User-Agent": "pxsec-test", "authorization": "Bearer t1", "Accept": "application/json"}
    assert h2["authorization"] == "Bearer t1" and h2["Content-Type"] == "application/json"
    assert h3["authorization"] == "Bearer t2" and "Content-Type" not in h3
    assert api.configuration.reads == 2 and pool.lean == 3 and pool.direct == 0


def test_a_stream_goes_over_the_clients_pool() -> None:
    """A watch is read as it arrives (urllib3's streamed response); a request is read whole (the transport)."""
    pool = Pool(200, 200)
    client = rest.RestClient(Client(pool), Lean(pool))  # type: ignore[arg-type]
    client.open("GET", "/api/v1/secrets", [("watch", "true")], stream=True)
    client.open("GET", "/api/v1/secrets")
    assert (pool.direct, pool.lean) == (1, 1)
    assert rest.RestClient(Client(Pool())).transport is not None  # the default: a transport of its own


def test_through_a_proxy_the_pool_manager_sends_it() -> None:
    pool = Pool(200)
    api = Client(pool)
    api.configuration.proxy = "http://proxy:3128"
    rest.RestClient(api).request("GET", "/api/v1/namespaces")  # type: ignore[arg-type]
    assert pool.seen[0][1] == "https://api:6443/api/v1/namespaces" and pool.direct == 0
