"""The gateway's use of what the watches say: absence known means no request; a remembered object is
reused only while the watch reports the very version it was read or written at."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from pxsec.controller.gateway import METADATA_MANAGER, Gateway, _trimmed
from pxsec.controller.objectcache import ALL_NAMESPACES, ObjectCache
from pxsec.keyplan import Observed


class Offline(kubernetes.client.ApiClient):  # type: ignore[misc]
    """A client that fails the test if the gateway goes to the network."""

    def param_serialize(self, *args: Any, **kwargs: Any) -> Any:
        pytest.fail("the gateway made a request")


@pytest.fixture
def gw() -> Gateway:
    cache = ObjectCache()
    cache.replace("Secret", ALL_NAMESPACES, [])
    cache.replace("ConfigMap", ALL_NAMESPACES, [])
    return Gateway(client=Offline(kubernetes.client.Configuration()), cache=cache)


def test_known_absent_objects_are_not_asked_for(gw: Gateway) -> None:
    assert gw.read_secret("ns", "px-shared-secret") is None
    assert gw.read_configmap("ns", "px-params") is None


def test_a_remembered_secret_is_reused_only_at_the_version_the_watch_reports(gw: Gateway) -> None:
    seen = Observed("s", {"k": b"v"}, resource_version="5")
    gw.cache.put("Secret", "ns", "s", "5")
    gw._remember("Secret", "ns", "s", "5", seen)
    assert gw.read_secret("ns", "s") is seen
    gw.cache.put("Secret", "ns", "s", "6")  # someone else wrote it: a live read
    with pytest.raises(pytest.fail.Exception):
        gw.read_secret("ns", "s")


def test_a_conflict_or_a_delete_forgets_what_was_remembered(gw: Gateway) -> None:
    seen = Observed("s", {"k": b"v"}, resource_version="5")
    gw.cache.put("Secret", "ns", "s", "5")
    gw._remember("Secret", "ns", "s", "5", seen)
    gw._conflicted("Secret", "ns", "s")  # a guarded write got 409: the version we hold is old
    with pytest.raises(pytest.fail.Exception):
        gw.read_secret("ns", "s")
    gw.cache.put("Secret", "ns", "s", "5")
    gw.cache.drop("Secret", "ns", "s")  # deleted: known absent, and nothing kept of it
    assert gw.read_secret("ns", "s") is None
    assert gw._recall("Secret", "ns", "s") is None and not gw._memo


def test_metadata_keeps_only_our_metadata_managers_fields() -> None:
    meta = {"name": "s", "labels": {"a": "b"}, "managedFields": [
        {"manager": "kubectl", "fieldsV1": {"f:data": {}}},
        {"manager": METADATA_MANAGER, "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]}
    assert _trimmed(meta) == {"name": "s", "labels": {"a": "b"}, "managedFields": [meta["managedFields"][1]]}
    assert "managedFields" not in _trimmed({"name": "s", "managedFields": [{"manager": "kubectl"}]})


def test_our_write_never_hides_a_later_change_the_watch_already_reported(gw: Gateway) -> None:
    """Our write returned version 10, but the watch already delivered someone else's 11 before the worker
    thread handled the response: the remembered 10 must not be reused."""
    gw.cache.put("Secret", "ns", "s", "11")
    gw._wrote("Secret", "ns", "s", {"metadata": {"resourceVersion": "10"}}, Observed("s", {}, resource_version="10"))
    assert gw.cache.resource_version("Secret", "ns", "s") == "11"
    with pytest.raises(pytest.fail.Exception):  # a live read
        gw.read_secret("ns", "s")
    gw.cache.drop("Secret", "ns", "s")
    gw._wrote("Secret", "ns", "s", {"metadata": {"resourceVersion": "12"}}, Observed("s", {}, resource_version="12"))
    assert not gw.cache.known_absent("Secret", "ns", "s")  # created: exists before its event arrives
    gw.cache.put("Secret", "ns", "s", "12")  # the echo
    assert gw.read_secret("ns", "s") == Observed("s", {}, resource_version="12")
