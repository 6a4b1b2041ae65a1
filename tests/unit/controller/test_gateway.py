"""The gateway asks the store first and tells it what it learned: a known-absent object costs no request, a
value is reused only at the version the watch reports, a 409 makes the next read live. The requests are
counted on a scripted API (the e2e tests count them on the real API server's audit log)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import urllib3

from pxsec.controller.kube import rest
from pxsec.controller.kube.gateway import METADATA_MANAGER, Conflict, Gateway, _trimmed
from pxsec.controller.kube.rest import HttpError
from pxsec.controller.kube.store import Store
from pxsec.keyplan import Observed


class ScriptedApi:
    """Answers requests from a table: (method, path) -> a response body or an HTTP status."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Any] = {}
        self.requests: list[tuple[str, str]] = []
        self.accepted: dict[tuple[str, str], str] = {}  # what each request asked the response to be

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                content_type: str = "application/json", accept: str = "application/json") -> dict[str, Any]:
        self.requests.append((method, path))
        self.accepted[(method, path)] = accept
        answer = self.answers.get((method, path))
        if answer is None:
            pytest.fail(f"unexpected request {method} {path}")
        if isinstance(answer, int):
            raise HttpError(answer, json.dumps({"message": "scripted"}).encode())
        return dict(answer)


SECRET = "/api/v1/namespaces/ns/secrets/s"


def secret(version: str, value: str = "dg==") -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "ns", "resourceVersion": version}, "data": {"k": value}}


@pytest.fixture
def store() -> Store:
    s = Store()
    s.listed("Secret", "", [])
    s.listed("ConfigMap", "", [])
    s.listed("StorageCluster", "", [])
    return s


@pytest.fixture
def api() -> ScriptedApi:
    return ScriptedApi()


@pytest.fixture
def gw(store: Store, api: ScriptedApi) -> Gateway:
    gateway = Gateway.__new__(Gateway)
    gateway.store, gateway.api = store, api  # type: ignore[assignment]
    return gateway


def test_known_absent_objects_are_not_asked_for(gw: Gateway, api: ScriptedApi) -> None:
    assert gw.read_secret("ns", "px-shared-secret") is None
    assert gw.read_configmap("ns", "px-params") is None
    assert gw.read_storagecluster("ns", "px-cluster") is None
    assert api.requests == []


def test_a_secret_read_live_is_reused_while_the_watch_reports_its_version(gw: Gateway, store: Store,
                                                                         api: ScriptedApi) -> None:
    store.observed("Secret", "ns", "s", "5")
    api.answers[("GET", SECRET)] = secret("5")
    first = gw.read_secret("ns", "s")
    assert first is not None and first.data == {"k": b"v"}
    assert gw.read_secret("ns", "s") == first and len(api.requests) == 1
    store.observed("Secret", "ns", "s", "6")  # someone else's change
    api.answers[("GET", SECRET)] = secret("6", "dzI=")
    assert gw.read_secret("ns", "s") == Observed("s", {"k": b"w2"}, {}, {}, "6", {
        "name": "s", "namespace": "ns", "resourceVersion": "6"})
    assert len(api.requests) == 2


def test_our_create_is_answered_after_its_echo_without_a_read(gw: Gateway, store: Store, api: ScriptedApi) -> None:
    api.answers[("POST", "/api/v1/namespaces/ns/secrets")] = secret("10")
    created = gw.create_secret("ns", "s", {"k": b"v"}, {}, {})
    store.observed("Secret", "ns", "s", "10")  # the echo
    assert gw.read_secret("ns", "s") == created
    assert api.requests == [("POST", "/api/v1/namespaces/ns/secrets")]


def test_a_conflicting_create_makes_the_next_read_live(gw: Gateway, api: ScriptedApi) -> None:
    api.answers[("POST", "/api/v1/namespaces/ns/secrets")] = 409
    with pytest.raises(Conflict):
        gw.create_secret("ns", "s", {"k": b"v"}, {}, {})
    api.answers[("GET", SECRET)] = secret("3")
    assert gw.read_secret("ns", "s") is not None  # it exists after all: read, then adopt
    assert api.requests[-1] == ("GET", SECRET)


def test_a_live_404_is_none_and_known_absent_after(gw: Gateway, store: Store, api: ScriptedApi) -> None:
    store.observed("Secret", "ns", "s", "5")
    api.answers[("GET", SECRET)] = 404
    assert gw.read_secret("ns", "s") is None
    assert gw.read_secret("ns", "s") is None
    assert len(api.requests) == 1


def test_a_status_write_to_a_deleted_object_is_not_an_error(gw: Gateway, api: ScriptedApi) -> None:
    api.answers[("PATCH", "/apis/pxsec.dev/v1alpha1/namespaces/ns/pxsecurities/px/status")] = 404
    gw.patch_status("ns", "px", {"observedGeneration": 1})


def test_metadata_keeps_only_our_metadata_managers_fields() -> None:
    meta = {"name": "s", "labels": {"a": "b"}, "managedFields": [
        {"manager": "kubectl", "fieldsV1": {"f:data": {}}},
        {"manager": METADATA_MANAGER, "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]}
    assert _trimmed(meta) == {"name": "s", "labels": {"a": "b"}, "managedFields": [meta["managedFields"][1]]}
    assert "managedFields" not in _trimmed({"name": "s", "managedFields": [{"manager": "kubectl"}]})


class FlakyEvents:
    """The events endpoint failing with the given answers (an HTTP status, or a dropped connection) first."""

    def __init__(self, *failures: int | Exception) -> None:
        self.failures = list(failures)
        self.posted = 0
        self.attempts = 0

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                content_type: str = "application/json", accept: str = "application/json") -> dict[str, Any]:
        assert (method, path) == ("POST", "/api/v1/namespaces/ns/events")
        self.attempts += 1
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            raise HttpError(failure, b"{}")
        self.posted += 1
        return {}


@pytest.mark.parametrize(("failures", "posted", "attempts"), [
    ((), 1, 1),
    ((429, 500, urllib3.exceptions.ProtocolError("connection reset")), 1, 4),
    ((503,) * 5, 0, 5),  # given up after five attempts, logged
    ((403,), 0, 1),  # refused as such: not retried
])
def test_an_event_is_retried_through_passing_faults(failures: tuple[int | Exception, ...], posted: int, attempts: int,
                                                    store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from pxsec.controller.kube.gateway import CRRef

    monkeypatch.setattr("pxsec.controller.kube.gateway.time.sleep", lambda seconds: None)
    api = FlakyEvents(*failures)
    gateway = Gateway.__new__(Gateway)
    gateway.store, gateway.api = store, api  # type: ignore[assignment]
    gateway.event(CRRef("ns", "px", "uid"), "Warning", "SecretLost", "Secret px-shared-secret was deleted")
    assert (api.posted, api.attempts) == (posted, attempts)


class EventsEndpoint:
    """The events endpoint as the API server keeps it: by name, 409 for a name taken."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                content_type: str = "application/json", accept: str = "application/json") -> dict[str, Any]:
        base = "/api/v1/namespaces/ns/events"
        if method == "POST" and path == base:
            name = body["metadata"]["name"]
            if name in self.events:
                raise HttpError(409, b"{}")
            self.events[name] = dict(body)
            return body
        name = path.removeprefix(base + "/")
        if method == "GET":
            return dict(self.events[name])
        assert method == "PATCH" and content_type == "application/merge-patch+json", (method, content_type)
        self.events[name].update(body)
        return self.events[name]


def test_the_same_news_said_again_counts_its_event_instead_of_a_second_one(store: Store) -> None:
    """A reconcile retried after its response was lost says the same again: one Event, count 2 (as
    client-go's recorder aggregates); other news, or the same news of another object, is its own Event."""
    from pxsec.controller.kube.gateway import CRRef

    api = EventsEndpoint()
    gateway = Gateway.__new__(Gateway)
    gateway.store, gateway.api = store, api  # type: ignore[assignment]
    px = CRRef("ns", "px", "uid-1")
    gateway.event(px, "Warning", "SecretLost", "Secret s was deleted and regenerated as revision 2")
    gateway.event(px, "Warning", "SecretLost", "Secret s was deleted and regenerated as revision 2")
    assert [e["count"] for e in api.events.values()] == [2]
    gateway.event(px, "Warning", "SecretLost", "Secret s was deleted and regenerated as revision 3")
    gateway.event(CRRef("ns", "px", "uid-2"), "Warning", "SecretLost",
                  "Secret s was deleted and regenerated as revision 2")  # a re-created object of the same name
    assert sorted(e["count"] for e in api.events.values()) == [1, 1, 2]
    long = CRRef("ns", "p" * 235 + "-x" * 9, "uid-3")
    gateway.event(long, "Normal", "TokenMinted", "minted")
    name = next(n for n in api.events if n.startswith("ppp"))
    assert len(name) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name)


def test_an_event_whose_response_was_lost_is_not_counted_twice(store: Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The POST landed, its response did not: the retry's 409 is our own Event, not the news again."""
    from pxsec.controller.kube.gateway import CRRef

    monkeypatch.setattr("pxsec.controller.kube.gateway.time.sleep", lambda seconds: None)
    api = EventsEndpoint()
    post = api.request
    resets = [urllib3.exceptions.ProtocolError("connection reset")]

    def landed_then_reset(method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = post(method, path, *args, **kwargs)
        if method == "POST" and resets:
            raise resets.pop()
        return answer

    gateway = Gateway.__new__(Gateway)
    gateway.store, gateway.api = store, api  # type: ignore[assignment]
    api.request = landed_then_reset  # type: ignore[method-assign]
    gateway.event(CRRef("ns", "px", "uid"), "Warning", "SecretLost", "Secret s was deleted")
    assert [e["count"] for e in api.events.values()] == [1]


def test_a_replica_that_lost_the_lease_writes_nothing_more(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fence is asked before every write and every Event attempt: a reconcile still running when the
    Lease was lost, slowed by an API server that throttles, makes no request after it."""
    from pxsec.controller.kube.gateway import CRRef, NotLeading

    monkeypatch.setattr("pxsec.controller.kube.gateway.time.sleep", lambda seconds: None)
    leading = [True]
    api = FlakyEvents(429, 500)
    gateway = Gateway.__new__(Gateway)
    gateway.store, gateway.api = store, api  # type: ignore[assignment]
    gateway.fence = lambda: leading[0]
    real = api.request

    def lose_after_first(*args: Any, **kwargs: Any) -> dict[str, Any]:
        leading[0] = False  # the Lease is lost while the first attempt is under way
        return real(*args, **kwargs)

    api.request = lose_after_first  # type: ignore[method-assign]
    gateway.event(CRRef("ns", "px", "uid"), "Warning", "SecretLost", "Secret px-shared-secret was deleted")
    assert (api.posted, api.attempts) == (0, 1)  # the 429 is not retried
    scripted = ScriptedApi()
    gateway.api = scripted  # type: ignore[assignment]
    with pytest.raises(NotLeading):
        gateway.create_secret("ns", "s", {"k": b"v"}, {}, {})
    with pytest.raises(NotLeading):
        gateway.delete_secret("ns", "s", "uid", "1")
    assert scripted.requests == []


def test_a_write_whose_response_is_kept_asks_for_the_object_the_others_for_its_metadata(
        gw: Gateway, api: ScriptedApi) -> None:
    """A created Secret is what a later read answers (its data, from the response); a status patch is
    needed only for its resourceVersion (the echo to come): the API server sends its metadata alone."""
    status = "/apis/pxsec.dev/v1alpha1/namespaces/ns/pxsecurities/px/status"
    api.answers[("POST", "/api/v1/namespaces/ns/secrets")] = secret("7")
    api.answers[("PATCH", status)] = {"kind": "PartialObjectMetadata", "metadata": {"resourceVersion": "8"}}
    gw.create_secret("ns", "s", {"k": b"v"}, {}, {})
    gw.patch_status("ns", "px", {"observedGeneration": 1})
    assert api.accepted == {("POST", "/api/v1/namespaces/ns/secrets"): "application/json",
                            ("PATCH", status): rest.METADATA_ONLY}
