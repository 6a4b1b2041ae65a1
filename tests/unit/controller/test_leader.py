"""Leader election on a Lease (pxsec.controller.leader): client-go's rules against an in-memory Lease with
resourceVersion guards and a clock the test moves. The real Lease, two processes and SIGKILL are in
tests/e2e/test_ha.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest

from pxsec.controller.leader import LeaderElector, LeaseConfig, LeaseConflict, LeaseRecord


class MemoryLease:
    """One Lease with the API server's optimistic concurrency: an update must carry the current version."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.writes = 0
        self.down = False

    def get(self) -> LeaseRecord | None:
        if self.down:
            raise ConnectionError("API server unavailable")
        return self.record

    def create(self, record: LeaseRecord) -> None:
        if self.down:
            raise ConnectionError("API server unavailable")
        if self.record is not None:
            raise LeaseConflict("exists")
        self._store(record)

    def update(self, record: LeaseRecord) -> None:
        if self.down:
            raise ConnectionError("API server unavailable")
        assert self.record is not None
        if record.resource_version != self.record.resource_version:
            raise LeaseConflict("changed")
        self._store(record)

    def _store(self, record: LeaseRecord) -> None:
        self.version += 1
        self.writes += 1
        self.record = replace(record, resource_version=str(self.version))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WALL = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def elector(lease: MemoryLease, clock: Clock, identity: str, duration: int = 15) -> LeaderElector:
    config = LeaseConfig(namespace="pxsec-system", identity=identity, lease_duration=duration,
                         renew_deadline=10, retry_period=2)
    return LeaderElector(config, lease, monotonic=clock, wall=lambda: WALL)


def test_the_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = elector(lease, clock, "a"), elector(lease, clock, "b")
    assert a.try_acquire_or_renew()
    assert lease.record is not None and lease.record.holder == "a" and lease.record.transitions == 0
    assert not b.try_acquire_or_renew()
    writes = lease.writes
    clock.now += 14
    assert not b.try_acquire_or_renew()  # not expired yet: b only reads
    assert lease.writes == writes


def test_a_renewed_lease_never_expires_for_the_candidate() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = elector(lease, clock, "a"), elector(lease, clock, "b")
    assert a.try_acquire_or_renew()
    for _ in range(20):
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert lease.record is not None and lease.record.holder == "a"


def test_an_expired_lease_is_taken_over_with_a_transition() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = elector(lease, clock, "a"), elector(lease, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b saw the record now
    clock.now += 15  # a died right after its renewal; the record did not change for a lease duration
    assert b.try_acquire_or_renew()
    assert lease.record is not None and lease.record.holder == "b" and lease.record.transitions == 1
    assert not a.try_acquire_or_renew()  # a (back from a pause) finds b holding it, fresh
    assert a.holder == "b"


def test_expiry_is_measured_from_when_the_candidate_saw_the_record_change() -> None:
    """No wall clocks compared: a candidate that starts late waits a full lease duration itself."""
    lease, clock = MemoryLease(), Clock()
    a = elector(lease, clock, "a")
    assert a.try_acquire_or_renew()
    clock.now += 100  # a is long dead, but b only starts now
    b = elector(lease, clock, "b")
    assert not b.try_acquire_or_renew()
    clock.now += 14.9
    assert not b.try_acquire_or_renew()
    clock.now += 0.2
    assert b.try_acquire_or_renew()


def test_a_released_lease_is_taken_at_once() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = elector(lease, clock, "a"), elector(lease, clock, "b")
    assert a.try_acquire_or_renew()
    a.leading = True
    assert not b.try_acquire_or_renew()
    a.release()
    assert lease.record is not None and lease.record.holder == ""
    assert b.try_acquire_or_renew()
    assert lease.record.holder == "b"


def test_a_release_that_races_its_own_renewal_still_releases() -> None:
    """SIGTERM while a renewal of ours is in flight: the release's update meets a newer version of our own
    record (409); read again, still ours, released — not left to expire (found by test_ha under load)."""
    lease, clock = MemoryLease(), Clock()
    a = elector(lease, clock, "a")
    assert a.try_acquire_or_renew()
    a.leading = True
    read = lease.get

    def get_then_renewed() -> LeaseRecord | None:
        record = read()
        lease.get = read  # type: ignore[method-assign]
        assert record is not None
        lease._store(record)  # the renewal in flight lands between the release's read and its write
        return record

    lease.get = get_then_renewed  # type: ignore[method-assign]
    a.release()
    assert lease.record is not None and lease.record.holder == ""


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    """Both read the expired record; b writes first; c's write carries the old resourceVersion: 409."""
    lease, clock = MemoryLease(), Clock()
    a, b, c = elector(lease, clock, "a"), elector(lease, clock, "b"), elector(lease, clock, "c")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now += 16
    stale = lease.record

    class ReadsStale:
        def get(self) -> LeaseRecord | None:
            return stale

        def create(self, record: LeaseRecord) -> None:
            lease.create(record)

        def update(self, record: LeaseRecord) -> None:
            lease.update(record)

    assert b.try_acquire_or_renew()
    c.store = ReadsStale()  # c read before b's write landed
    assert not c.try_acquire_or_renew()
    assert lease.record is not None and lease.record.holder == "b" and lease.record.transitions == 1


def test_config_rejects_durations_that_could_overlap() -> None:
    with pytest.raises(ValueError, match="longer than the renew deadline"):
        LeaseConfig(namespace="x", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry period"):
        LeaseConfig(namespace="x", lease_duration=15, renew_deadline=2, retry_period=2)


def test_run_leads_then_stops_when_it_cannot_renew_within_the_deadline() -> None:
    lease = MemoryLease()
    config = LeaseConfig(namespace="x", identity="a", lease_duration=2, renew_deadline=0.5, retry_period=0.1)
    a = LeaderElector(config, lease)
    events: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(a.run(lambda: events.append("started"), lambda: events.append("stopped")))
        await asyncio.sleep(0.35)
        assert events == ["started"] and a.leading
        lease.down = True  # cut off from the API server
        await asyncio.wait_for(task, timeout=3)

    asyncio.run(scenario())
    assert events == ["started", "stopped"] and not a.leading


def test_run_stops_at_once_when_another_replica_holds_the_lease() -> None:
    lease = MemoryLease()
    config = LeaseConfig(namespace="x", identity="a", lease_duration=30, renew_deadline=20, retry_period=0.05)
    a = LeaderElector(config, lease)
    events: list[str] = []

    async def scenario() -> None:
        task = asyncio.create_task(a.run(lambda: events.append("started"), lambda: events.append("stopped")))
        await asyncio.sleep(0.2)
        assert lease.record is not None
        lease._store(replace(lease.record, holder="intruder"))
        await asyncio.wait_for(task, timeout=1)  # long before the 20 s renew deadline

    asyncio.run(scenario())
    assert events == ["started", "stopped"]
