"""The watch-fed cache is only a hint: absence is known only after a complete listing of the namespace."""

from pxsec.controller.objectcache import ALL_NAMESPACES, Bodies, ObjectCache


def test_nothing_is_known_absent_before_a_listing() -> None:
    cache = ObjectCache()
    assert not cache.known_absent("Secret", "ns", "a")
    cache.put("Secret", "ns", "b", "7")  # an event before the listing does not make others absent
    assert not cache.known_absent("Secret", "ns", "a")


def test_a_namespace_listing_covers_that_namespace_only() -> None:
    cache = ObjectCache()
    cache.replace("Secret", "ns", [(("ns", "b"), "7")])
    assert cache.known_absent("Secret", "ns", "a")
    assert not cache.known_absent("Secret", "ns", "b")
    assert not cache.known_absent("Secret", "other", "a")
    assert not cache.known_absent("ConfigMap", "ns", "a")


def test_a_cluster_listing_covers_every_namespace() -> None:
    cache = ObjectCache()
    cache.replace("Secret", ALL_NAMESPACES, [])
    assert cache.known_absent("Secret", "any", "a")
    cache.put("Secret", "any", "a", "3")
    assert not cache.known_absent("Secret", "any", "a")
    cache.drop("Secret", "any", "a")
    assert cache.known_absent("Secret", "any", "a")


def test_a_conflicting_write_marks_present_at_an_unknown_version() -> None:
    cache = ObjectCache()
    cache.replace("Secret", ALL_NAMESPACES, [])
    cache.present("Secret", "ns", "a")
    assert not cache.known_absent("Secret", "ns", "a")
    assert cache.resource_version("Secret", "ns", "a") == ""
    cache.put("Secret", "ns", "a", "9")
    cache.present("Secret", "ns", "a")  # the version we held was old: read live until the watch tells
    assert cache.resource_version("Secret", "ns", "a") == ""


def test_a_relisting_reports_what_changed_vanished_or_appeared_meanwhile() -> None:
    cache = ObjectCache()
    cache.replace("Secret", "ns", [(("ns", "same"), "1"), (("ns", "edited"), "2"), (("ns", "deleted"), "3")])
    cache.put("Secret", "other", "kept", "5")  # another namespace's objects are not this listing's
    changed = cache.replace("Secret", "ns", [(("ns", "same"), "1"), (("ns", "edited"), "8"), (("ns", "new"), "9")])
    assert sorted(changed) == [("ns", "deleted"), ("ns", "edited"), ("ns", "new")]
    assert cache.known_absent("Secret", "ns", "deleted")
    assert cache.resource_version("Secret", "other", "kept") == "5"


def body(version: str, status: dict[str, object] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"metadata": {"name": "px", "namespace": "ns", "resourceVersion": version},
                              "spec": {}}
    if status is not None:
        out["status"] = status
    return out


KEY = ("ns", "px")


def test_a_new_object_is_used_as_delivered_and_copies_are_handed_out() -> None:
    bodies = Bodies()
    bodies.start()
    bodies.seen(KEY, body("1"))  # no status: nobody has written one, nothing can be stale
    got = bodies.get(KEY)
    assert got == body("1")
    got["spec"] = {"changed": True}  # type: ignore[index]
    assert bodies.get(KEY) is None  # the event's mark is used once: a timer's reconcile reads live
    bodies.seen(KEY, body("1"))
    assert bodies.get(KEY) == body("1")


def test_objects_known_before_reconciling_started_are_read_live_once() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("1"))  # listed while a standby (or before start)
    bodies.start()
    assert bodies.get(KEY) is None
    bodies.read_live(KEY, "1")  # the live read saw what the watch has: trusted at once
    bodies.seen(KEY, body("1"))
    assert bodies.get(KEY) == body("1")


def test_a_live_read_ahead_of_the_watch_waits_for_the_watch() -> None:
    bodies = Bodies()
    bodies.seen(KEY, body("1", {"a": 1}))
    bodies.start()
    bodies.read_live(KEY, "3")  # e.g. the old leader's last status write, not yet through this watch
    assert bodies.get(KEY) is None
    bodies.seen(KEY, body("2", {"a": 2}))
    assert bodies.get(KEY) is None
    bodies.seen(KEY, body("3", {"a": 3}))
    assert bodies.get(KEY) == body("3", {"a": 3})


def test_our_own_status_write_is_waited_for() -> None:
    bodies = Bodies()
    bodies.start()
    bodies.seen(KEY, body("1"))
    bodies.wrote(KEY, "2")
    assert bodies.get(KEY) is None  # the watch still has the object without our status
    bodies.seen(KEY, body("2", {"ours": True}))
    assert bodies.get(KEY) == body("2", {"ours": True})


def test_a_status_write_of_unknown_outcome_or_a_delete_means_a_live_read() -> None:
    bodies = Bodies()
    bodies.start()
    bodies.seen(KEY, body("1"))
    bodies.failed(KEY)
    assert bodies.get(KEY) is None
    bodies.read_live(KEY, "1")
    bodies.seen(KEY, body("1"))
    assert bodies.get(KEY) is not None
    bodies.gone(KEY)
    assert bodies.get(KEY) is None
    bodies.seen(KEY, body("5", {"old": True}))  # a body with a status first seen: not trusted
    assert bodies.get(KEY) is None


def test_a_new_leader_trusts_nothing_it_knew() -> None:
    bodies = Bodies()
    bodies.start()
    bodies.seen(KEY, body("1"))
    bodies.start()  # leadership lost and regained, or a handover
    assert bodies.get(KEY) is None


def test_an_echo_that_beats_the_response_of_our_write_is_not_waited_for() -> None:
    bodies = Bodies()
    bodies.start()
    bodies.seen(KEY, body("1"))
    bodies.seen(KEY, body("2", {"ours": True}))  # the watch delivered our write first...
    bodies.wrote(KEY, "2")  # ...then the worker thread got the response
    bodies.seen(KEY, body("3", {"ours": True}))  # a label: the next event
    assert bodies.get(KEY) == body("3", {"ours": True})
