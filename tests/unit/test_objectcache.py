"""The watch-fed cache is only a hint: absence is known only after a complete listing of the namespace."""

from pxsec.controller.objectcache import ALL_NAMESPACES, ObjectCache
from pxsec.events import Event, coalesce


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


def test_events_of_one_reason_become_one() -> None:
    events = [Event("Normal", "SecretGenerated", "a"), Event("Normal", "TokenMinted", "t"),
              Event("Normal", "SecretGenerated", "b"), Event("Warning", "SecretGenerated", "c"),
              Event("Normal", "SecretGenerated", "a")]
    assert coalesce(events) == [Event("Normal", "SecretGenerated", "a; b"), Event("Normal", "TokenMinted", "t"),
                                Event("Warning", "SecretGenerated", "c")]
    assert coalesce([]) == []
