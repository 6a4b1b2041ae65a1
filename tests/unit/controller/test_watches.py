"""The reflectors that feed the store (pxsec.controller.kube.watches), against a scripted API: paginated
listings, the watch's events (bookmarks, deletions, 410), StorageClusters kept whole, Secrets as metadata,
and a StorageCluster CRD that is not installed (a listing answered 404: none exists, synced, tried again)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import urllib3

from pxsec.controller.kube.rest import HttpError
from pxsec.controller.kube.store import Hit, Store
from pxsec.controller.kube.watches import (
    METADATA_LIST,
    SECRETS,
    STORAGECLUSTERS,
    Gone,
    NotServed,
    Reflector,
)


class Response:
    def __init__(self, payload: Any = None, lines: list[dict[str, Any]] | None = None) -> None:
        self.data = json.dumps(payload).encode() if payload is not None else b""
        self.lines = lines or []
        self.released = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        text = b"".join(json.dumps(line).encode() + b"\n" for line in self.lines)
        yield text[:7]  # a line split across chunks
        yield text[7:]

    def release_conn(self) -> None:
        self.released = True


class ScriptedApi:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[tuple[str, str]], str]] = []

    def open(self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None,
             content_type: str = "", accept: str = "", timeout: Any = None, stream: bool = False) -> Response:
        self.calls.append((path, list(query or []), accept))
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            raise HttpError(answer, b'{"message": "scripted"}')
        assert isinstance(answer, Response)
        return answer


def meta(name: str, version: str, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}


def test_a_paginated_metadata_listing_becomes_the_truth_and_is_asked_as_metadata() -> None:
    store = Store()
    api = ScriptedApi([Response({"metadata": {"resourceVersion": "50", "continue": "next"}, "items": [meta("a", "1")]}),
                       Response({"metadata": {"resourceVersion": "50"}, "items": [meta("b", "2")]})])
    reflector = Reflector(api, SECRETS, "", store)  # type: ignore[arg-type]
    assert reflector._list() == "50"
    assert reflector.synced.is_set()
    assert [c[0] for c in api.calls] == ["/api/v1/secrets"] * 2 and api.calls[0][2] == METADATA_LIST
    assert ("continue", "next") in api.calls[1][1]
    assert store.version("Secret", "ns", "a") == "1" and store.get("Secret", "ns", "c") == Hit(None)


def test_watch_events_reach_the_store_and_bookmarks_move_the_version() -> None:
    store = Store()
    store.listed("Secret", "", [])
    news: list[str] = []
    store.notify = lambda kind, ns, name: news.append(name)
    api = ScriptedApi([Response(lines=[
        {"type": "ADDED", "object": meta("a", "51")},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "60"}}},
        {"type": "MODIFIED", "object": meta("a", "61")},
        {"type": "DELETED", "object": meta("a", "62")},
    ])])
    assert Reflector(api, SECRETS, "", store)._watch("50") == "62"  # type: ignore[arg-type]
    assert news == ["a", "a", "a"] and store.get("Secret", "ns", "a") == Hit(None)
    assert ("resourceVersion", "50") in api.calls[0][1] and ("allowWatchBookmarks", "true") in api.calls[0][1]


def test_a_410_means_list_again() -> None:
    api = ScriptedApi([Response(lines=[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]), 410])
    reflector = Reflector(api, SECRETS, "ns", Store())  # type: ignore[arg-type]
    with pytest.raises(Gone):
        reflector._watch("5")
    with pytest.raises(Gone):
        reflector._watch("5")


def test_storageclusters_are_kept_whole() -> None:
    store = Store()
    sc = {**meta("px-cluster", "7"), "spec": {"image": "portworx/oci-monitor:3.2.0"}}
    api = ScriptedApi([Response({"metadata": {"resourceVersion": "9"}, "items": [sc]})])
    Reflector(api, STORAGECLUSTERS, "ns", store)._list()  # type: ignore[arg-type]
    assert api.calls[0][0] == "/apis/core.libopenstorage.org/v1/namespaces/ns/storageclusters"
    assert api.calls[0][2] == "application/json"
    assert store.get("StorageCluster", "ns", "px-cluster") == Hit(sc)


def test_a_resource_that_is_not_served_is_empty_synced_and_listed_once_its_crd_is_established() -> None:
    store = Store()
    sc = meta("px-cluster", "3")
    crd = {"metadata": {"name": "storageclusters.core.libopenstorage.org"}}
    established = {**crd, "status": {"conditions": [{"type": "Established", "status": "True"}]}}
    api = ScriptedApi([404,
                       Response(lines=[{"type": "ADDED", "object": crd}, {"type": "MODIFIED", "object": established}]),
                       Response({"metadata": {"resourceVersion": "3"}, "items": [sc]}), Response(lines=[])])
    reflector = Reflector(api, STORAGECLUSTERS, "", store)  # type: ignore[arg-type]
    woken = threading.Event()
    store.notify = lambda kind, ns, name: woken.set()

    def stop_after_watch(version: str, original: Any = reflector._watch) -> str:
        reflector.stopping.set()
        return str(original(version))

    reflector._watch = stop_after_watch  # type: ignore[method-assign]
    reflector._run()  # 404: none exists (synced, empty); the CRD watch; established: listed, watched
    assert [c[0] for c in api.calls][:2] == ["/apis/core.libopenstorage.org/v1/storageclusters",
                                              "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"]
    crd_watch = api.calls[1]
    assert crd_watch[0] == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert ("fieldSelector", "metadata.name=storageclusters.core.libopenstorage.org") in crd_watch[1]
    assert woken.is_set() and store.get("StorageCluster", "ns", "px-cluster") == Hit(sc)


def test_a_listing_answered_404_means_none_exists() -> None:
    store = Store()
    reflector = Reflector(ScriptedApi([404]), STORAGECLUSTERS, "ns", store)  # type: ignore[arg-type]
    with pytest.raises(NotServed):
        reflector._list()
    assert reflector.synced.is_set() and store.get("StorageCluster", "ns", "px-cluster") == Hit(None)


class CutResponse(Response):
    """A stream that delivers its lines, then ends without its final chunk (urllib3: ProtocolError)."""

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from super().stream(amt, decode_content)
        raise urllib3.exceptions.ProtocolError("Response ended prematurely")


def test_a_watch_cut_after_it_delivered_resumes_from_the_last_version_at_once() -> None:
    """A load balancer or proxy that cuts streams is not a failure to back off from (the soak e2e cuts
    every watch every 0.05-0.2 s): the watch returns its last version, and the next one resumes there."""
    store = Store()
    store.listed("Secret", "", [])
    api = ScriptedApi([CutResponse(lines=[{"type": "ADDED", "object": meta("a", "51")}])])
    assert Reflector(api, SECRETS, "", store)._watch("50") == "51"  # type: ignore[arg-type]
    assert store.version("Secret", "ns", "a") == "51"


def test_a_watch_cut_at_once_with_nothing_delivered_is_a_failure_backed_off() -> None:
    api = ScriptedApi([CutResponse(lines=[])])
    with pytest.raises(urllib3.exceptions.ProtocolError):
        Reflector(api, SECRETS, "", Store())._watch("50")  # type: ignore[arg-type]
