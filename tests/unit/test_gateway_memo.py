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
