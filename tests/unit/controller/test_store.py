"""The one store (pxsec.controller.kube.store) as one unit: what it answers instead of the API server, what
news it reports, and the races between the watches and our own writes (an echo before the response, a
write of unknown outcome, a 410 relist, a delete)."""

from __future__ import annotations

from typing import Any

import pytest

from pxsec.controller.kube.store import ALL_NAMESPACES, PXSECURITY, Hit, Store

SC = "StorageCluster"


class Recorder:
    def __init__(self) -> None:
        self.news: list[tuple[str, str, str]] = []

    def __call__(self, kind: str, namespace: str, name: str) -> None:
        self.news.append((kind, namespace, name))


@pytest.fixture
def news() -> Recorder:
    return Recorder()


@pytest.fixture
def store(news: Recorder) -> Store:
    return Store(notify=news)


def response(version: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}}


def body(version: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"name": "px", "namespace": "ns", "resourceVersion": version,
                                        "managedFields": [{"manager": "kubectl"}]}, "spec": {}}
    if status is not None:
        out["status"] = status
    return out


def without_managed_fields(b: dict[str, Any]) -> dict[str, Any]:
    return {**b, "metadata": {k: v for k, v in b["metadata"].items() if k != "managedFields"}}


# -- what exists ------------------------------------------------------------------------------------

def test_nothing_is_known_absent_before_a_listing(store: Store) -> None:
    assert store.get("Secret", "ns", "a") is None
    store.observed("Secret", "ns", "b", "7")  # an event before the listing does not make others absent
    assert store.get("Secret", "ns", "a") is None


def test_a_namespace_listing_covers_that_namespace_only(store: Store) -> None:
    store.listed("Secret", "ns", [("ns", "b", "7", None)])
    assert store.get("Secret", "ns", "a") == Hit(None)
    assert store.get("Secret", "ns", "b") is None  # exists; its value was never read
    assert store.get("Secret", "other", "a") is None
    assert store.get("ConfigMap", "ns", "a") is None
    assert store.synced("Secret", "ns") and not store.synced("Secret", ALL_NAMESPACES)


def test_a_cluster_listing_covers_every_namespace_and_a_delete_is_news(store: Store, news: Recorder) -> None:
    store.listed("Secret", ALL_NAMESPACES, [])
    assert store.get("Secret", "any", "a") == Hit(None)
    assert store.observed("Secret", "any", "a", "3")
    assert store.get("Secret", "any", "a") is None
    store.deleted("Secret", "any", "a")
    assert store.get("Secret", "any", "a") == Hit(None)
    assert news.news == [("Secret", "any", "a")] * 2


def test_a_relisting_reports_what_changed_vanished_or_appeared_meanwhile(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "same", "1", None), ("ns", "changed", "1", None), ("ns", "gone", "1", None)])
    news.news.clear()
    store.listed("Secret", "ns", [("ns", "same", "1", None), ("ns", "changed", "2", None), ("ns", "new", "1", None)])
    assert sorted(n for _, _, n in news.news) == ["changed", "gone", "new"]
    assert store.get("Secret", "ns", "gone") == Hit(None)


def test_a_relisting_that_brings_our_own_write_reports_nothing(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "s", "1", None)])
    with store.writing("Secret", "ns", "s") as w:
        w.done(response("2"), "v2")
    news.news.clear()
    store.listed("Secret", "ns", [("ns", "s", "2", None)])  # the watch broke; the relist has our write
    assert news.news == []
    assert store.get("Secret", "ns", "s") == Hit("v2")


# -- values we read or wrote (metadata-only kinds) --------------------------------------------------

def test_a_value_is_answered_only_at_the_version_the_watch_reports(store: Store) -> None:
    store.listed("Secret", "ns", [("ns", "s", "5", None)])
    store.read_live("Secret", "ns", "s", "5", {"k": "v"})
    assert store.get("Secret", "ns", "s") == Hit({"k": "v"})
    store.observed("Secret", "ns", "s", "6")  # someone else wrote it: a live read
    assert store.get("Secret", "ns", "s") is None


def test_answers_are_copies(store: Store) -> None:
    store.listed("ConfigMap", "ns", [("ns", "c", "5", None)])
    store.read_live("ConfigMap", "ns", "c", "5", {"data": {"a": "1"}})
    hit = store.get("ConfigMap", "ns", "c")
    assert hit is not None
    hit.value["data"]["a"] = "changed"
    assert store.get("ConfigMap", "ns", "c") == Hit({"data": {"a": "1"}})


def test_a_live_404_makes_the_object_known_absent(store: Store) -> None:
    store.listed("Secret", "ns", [("ns", "s", "5", None)])
    store.absent_live("Secret", "ns", "s")  # deleted; the watch has not said so yet
    assert store.get("Secret", "ns", "s") == Hit(None)


# -- our writes and their echoes --------------------------------------------------------------------

def test_the_echo_of_our_write_is_no_news_and_the_write_is_answered_after_it(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [])
    with store.writing("Secret", "ns", "s") as w:
        w.done(response("10"), "created")
    assert store.get("Secret", "ns", "s") is None  # exists (not absent) but the echo is still on its way
    assert not store.observed("Secret", "ns", "s", "10")
    assert store.get("Secret", "ns", "s") == Hit("created")
    assert store.observed("Secret", "ns", "s", "11")  # someone else's change is news
    assert news.news == [("Secret", "ns", "s")]


def test_an_echo_that_beats_the_response_is_parked_and_dropped(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "s", "9", None)])
    news.news.clear()
    with store.writing("Secret", "ns", "s") as w:
        assert not store.observed("Secret", "ns", "s", "10")  # the watch is faster than the response
        w.done(response("10"), "ours")
    assert news.news == []
    assert store.get("Secret", "ns", "s") == Hit("ours")  # no echo left to wait for


def test_someone_elses_change_during_our_write_is_released_as_news(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "s", "9", None)])
    news.news.clear()
    with store.writing("Secret", "ns", "s") as w:
        store.observed("Secret", "ns", "s", "10")  # someone else's write, before ours
        assert news.news == []
        w.done(response("11"), "ours")
    assert news.news == [("Secret", "ns", "s")]
    assert store.get("Secret", "ns", "s") is None  # the watch is at 10, our 11 is still on its way
    store.observed("Secret", "ns", "s", "11")
    assert store.get("Secret", "ns", "s") == Hit("ours")


def test_our_write_never_hides_a_later_change_the_watch_already_reported(store: Store) -> None:
    store.listed("Secret", "ns", [("ns", "s", "9", None)])
    with store.writing("Secret", "ns", "s") as w:
        store.observed("Secret", "ns", "s", "10")  # ours
        store.observed("Secret", "ns", "s", "11")  # someone else's, right after
        w.done(response("10"), "ours")
    assert store.get("Secret", "ns", "s") is None  # 11 is newer than what we hold: a live read


def test_a_write_of_unknown_outcome_releases_what_was_parked(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "s", "9", None)])
    news.news.clear()
    store.read_live("Secret", "ns", "s", "9", "old")
    with pytest.raises(TimeoutError), store.writing("Secret", "ns", "s"):
        store.observed("Secret", "ns", "s", "10")
        raise TimeoutError("read timed out")
    assert news.news == [("Secret", "ns", "s")]
    assert store.get("Secret", "ns", "s") is None


def test_a_conflict_means_present_at_a_version_we_do_not_hold(store: Store) -> None:
    store.listed("Secret", "ns", [])
    with store.writing("Secret", "ns", "s") as w:
        w.conflict()  # a create answered 409: it exists although the watch has not said so
    assert store.get("Secret", "ns", "s") is None  # not absent: read live, adopt
    store.listed(SC, "ns", [("ns", "px", "3", body("3"))])
    with store.writing(SC, "ns", "px") as w:
        w.conflict()  # a guarded patch answered 409: the watch's body is older than the server's
    assert store.get(SC, "ns", "px") is None
    store.read_live(SC, "ns", "px", "4")
    store.observed(SC, "ns", "px", "4", body("4"))
    assert store.get(SC, "ns", "px") == Hit(without_managed_fields(body("4")))


def test_a_refused_write_changes_nothing(store: Store, news: Recorder) -> None:
    store.listed("Secret", "ns", [("ns", "s", "9", None)])
    news.news.clear()
    store.read_live("Secret", "ns", "s", "9", "v")
    with pytest.raises(PermissionError), store.writing("Secret", "ns", "s") as w:
        w.refused()
        raise PermissionError("403")
    assert store.get("Secret", "ns", "s") == Hit("v") and news.news == []


# -- kinds watched whole ----------------------------------------------------------------------------

def test_a_storagecluster_is_answered_from_the_watch(store: Store) -> None:
    store.listed(SC, "ns", [])
    assert store.get(SC, "ns", "px") == Hit(None)
    store.observed(SC, "ns", "px", "1", body("1"))
    assert store.get(SC, "ns", "px") == Hit(without_managed_fields(body("1")))
    with store.writing(SC, "ns", "px") as w:
        w.done(response("2"))
    assert store.get(SC, "ns", "px") is None  # until the watch has our patch
    store.observed(SC, "ns", "px", "2", body("2"))
    assert store.get(SC, "ns", "px") == Hit(without_managed_fields(body("2")))


# -- PxSecurities: the status is the operator's memory ------------------------------------------------

def test_a_new_pxsecurity_is_used_as_delivered_once_per_event(store: Store) -> None:
    store.begin_reconciling()
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))  # no status: nothing can be stale
    assert store.get(PXSECURITY, "ns", "px") == Hit(without_managed_fields(body("1")))
    assert store.get(PXSECURITY, "ns", "px") is None  # the event's mark is used once: a timer reads live
    store.observed(PXSECURITY, "ns", "px", "2", body("2"))
    assert store.get(PXSECURITY, "ns", "px") is not None


def test_objects_known_before_reconciling_started_are_read_live_once(store: Store) -> None:
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))  # listed while a standby
    store.begin_reconciling()
    assert store.get(PXSECURITY, "ns", "px") is None
    store.read_live(PXSECURITY, "ns", "px", "1")
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))
    assert store.get(PXSECURITY, "ns", "px") is not None


def test_a_pxsecurity_first_seen_with_a_status_is_not_trusted(store: Store) -> None:
    store.begin_reconciling()
    store.observed(PXSECURITY, "ns", "px", "5", body("5", {"old": True}))
    assert store.get(PXSECURITY, "ns", "px") is None


def test_a_live_read_ahead_of_the_watch_waits_for_the_watch(store: Store) -> None:
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))
    store.begin_reconciling()
    store.read_live(PXSECURITY, "ns", "px", "3")  # e.g. the old leader's last status write
    store.observed(PXSECURITY, "ns", "px", "2", body("2"))
    assert store.get(PXSECURITY, "ns", "px") is None
    store.observed(PXSECURITY, "ns", "px", "3", body("3"))
    assert store.get(PXSECURITY, "ns", "px") == Hit(without_managed_fields(body("3")))


def test_our_status_write_is_waited_for_and_its_echo_is_no_news(store: Store, news: Recorder) -> None:
    store.begin_reconciling()
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))
    with store.writing(PXSECURITY, "ns", "px") as w:
        w.done(response("2"))
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))  # a stale event: not trusted while our write travels
    assert store.get(PXSECURITY, "ns", "px") is None
    assert not store.observed(PXSECURITY, "ns", "px", "2", body("2", {"ours": True}))
    assert store.get(PXSECURITY, "ns", "px") == Hit(without_managed_fields(body("2", {"ours": True})))
    assert news.news == [(PXSECURITY, "ns", "px")] * 2  # the two non-echo events


def test_a_status_write_of_unknown_outcome_or_a_new_leader_means_a_live_read(store: Store) -> None:
    store.begin_reconciling()
    store.observed(PXSECURITY, "ns", "px", "1", body("1"))
    with pytest.raises(ConnectionError), store.writing(PXSECURITY, "ns", "px"):
        raise ConnectionError("reset")
    store.observed(PXSECURITY, "ns", "px", "2", body("2"))
    assert store.get(PXSECURITY, "ns", "px") is None
    store.read_live(PXSECURITY, "ns", "px", "2")
    store.observed(PXSECURITY, "ns", "px", "2", body("2"))
    assert store.get(PXSECURITY, "ns", "px") is not None
    store.observed(PXSECURITY, "ns", "px", "3", body("3"))
    store.begin_reconciling()  # leadership lost and regained, or a handover
    assert store.get(PXSECURITY, "ns", "px") is None
    store.deleted(PXSECURITY, "ns", "px")
    assert store.get(PXSECURITY, "ns", "px") is None  # never known absent: kopf's watch is no listing


def test_the_size_follows_the_objects_not_the_history(store: Store) -> None:
    """A thousand changes, relistings and our own writes to the same objects leave the store the size
    of what exists (the soak e2e watches the same number, pxsec_store_entries, in a running operator)."""
    for i in range(3):
        store.observed("Secret", "ns", f"s{i}", "1")
    store.listed("Secret", "ns", [("ns", f"s{i}", "1", None) for i in range(3)])
    settled = store.size()
    for version in range(2, 1002):
        store.observed("Secret", "ns", "s0", str(version))
        with store.writing("Secret", "ns", "s1") as write:
            write.done(response(f"w{version}"), {"k": "v"})
        store.observed("Secret", "ns", "s1", f"w{version}")
        store.listed("Secret", "ns", [("ns", "s0", str(version), None), ("ns", "s1", f"w{version}", None),
                                      ("ns", "s2", "1", None)])
    assert store.size() == settled
    store.deleted("Secret", "ns", "s2")
    assert store.size() == settled - 1
