"""The REST client sends a throttled request again (429: not processed, whatever the verb), after its
Retry-After, a bounded number of times, as client-go does; other failures are the caller's."""

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

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.sent += 1
        return Response(self.statuses.pop(0), retry_after="1")


class Client:
    def __init__(self, pool: Pool) -> None:
        self.rest_client = type("R", (), {"pool_manager": pool})()

    def param_serialize(self, method: str, path: str, **kwargs: Any) -> tuple[str, str, dict[str, str], None, None]:
        return method, "https://api" + path, dict(kwargs.get("header_params") or {}), None, None


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
    client = rest.RestClient(Client(pool))  # type: ignore[arg-type]
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
