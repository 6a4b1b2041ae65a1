"""The rotation planner (pxsec.rotation), driven through whole rotations by a small model of the world: what
the StorageCluster mounts, whether its rollout is over, what the nodes accept, whether the tokens were
signed again. Every phase is left only on what the world shows; a plan read back from status after a
restart decides the same."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pxsec import rotation
from pxsec.rotation import (
    ACKNOWLEDGING,
    COMPLETED,
    ECDSA,
    GRACE,
    MOUNTING,
    RESIGNING,
    REVOKING,
    RSA,
    Key,
    Observed,
    Rotation,
)
from pxsec.spec import parse_spec

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SPEC = parse_spec({"selfSigned": {"sharedSecret": {}, "ecdsa": {"secretName": "px-jwt-ecdsa"}},
                   "tokens": [{"secretName": "ops", "roles": ["system.admin"]},
                              {"secretName": "hs", "roles": ["system.user"], "signingKey": "SharedSecret"}]})
DAY = dt.timedelta(days=1)
PLANNED = Rotation()


@dataclasses.dataclass
class World:
    """What the steps would make true, one reconcile later: the keys a plan asks for get mounted (once
    approved), the rollout takes `rollout` reconciles, nodes accept a key once they restarted with it."""

    now: dt.datetime = T0
    mounted: frozenset[str] = frozenset({"px-jwt-ecdsa"})
    restarting: int = 0
    node_keys: frozenset[str] = frozenset({"px-jwt-ecdsa"})
    approved: bool = True
    signed_with: str = "px-jwt-ecdsa"
    annotation: str | None = None
    restarts: int = 0
    released: list[str] = dataclasses.field(default_factory=list)

    def seen(self, state: rotation.State) -> Observed:
        nxt = state.next.secret if state.next else None
        return Observed(now=self.now, annotation=self.annotation, mounted=self.mounted,
                        rollout_done=self.restarting == 0, awaiting_approval=not self.approved,
                        acknowledged=(3 if nxt in self.node_keys else 0, 3) if nxt else (3, 3), running=True,
                        revoked=(0 if state.current.secret in self.node_keys else 3, 3)
                        if state.phase == REVOKING and state.current else None,
                        resigned=nxt is not None and self.signed_with == nxt, longest_lifetime=DAY, created=T0)

    def carry_out(self, p: rotation.Plan) -> None:
        wanted = frozenset(k.secret for k in p.keys)
        if wanted != self.mounted and self.approved:
            self.mounted, self.restarting, self.restarts = wanted, 2, self.restarts + 1
        elif self.restarting:
            self.restarting -= 1
            if not self.restarting:
                self.node_keys = self.mounted
        if p.signing is not None:
            self.signed_with = p.signing.secret
        self.released += [k.secret for k in p.release]


def drive(world: World, state: rotation.State, steps: int, spec: object = SPEC,
          policy: Rotation = PLANNED) -> tuple[rotation.State, list[str]]:
    """Reconcile `steps` times, a minute apart, through the status round trip; the phases seen."""
    phases = []
    for _ in range(steps):
        p = rotation.plan(spec, policy, state, world.seen(state))  # type: ignore[arg-type]
        assert world.signed_with in world.node_keys, "a token signed with a key some node does not trust"
        world.carry_out(p)
        state = rotation.read_state({"rotation": rotation.write_state(p)})
        phases.append(state.phase)
        world.now += dt.timedelta(minutes=1)
    return state, phases


def until(world: World, state: rotation.State, phase: str, limit: int = 20, policy: Rotation = PLANNED
          ) -> tuple[rotation.State, list[str]]:
    """Reconcile until the phase is reached (at most `limit` times)."""
    seen: list[str] = []
    for _ in range(limit):
        state, phases = drive(world, state, 1, policy=policy)
        seen += phases
        if state.phase == phase:
            return state, seen
    raise AssertionError(f"never reached {phase}: {seen}")


def test_without_a_trigger_nothing_moves() -> None:
    world = World()
    _, phases = drive(world, rotation.State(), 5)
    assert phases == [""] * 5 and world.restarts == 0 and world.signed_with == "px-jwt-ecdsa"


def test_two_rotations_cost_two_restarts_and_never_sign_with_an_untrusted_key() -> None:
    world = World(annotation="1")
    state, phases = until(world, rotation.State(), GRACE)
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        MOUNTING, ACKNOWLEDGING, RESIGNING, GRACE]
    assert state.current == Key(ECDSA, "px-jwt-ecdsa") and state.next == Key(RSA, "px-jwt-rsa-r1")
    assert world.signed_with == "px-jwt-rsa-r1"
    state, _ = drive(world, state, 3)
    assert state.phase == GRACE  # the old key stays trusted for the longest token lifetime
    world.now += DAY
    state, phases = until(world, state, COMPLETED)
    assert state.current == Key(RSA, "px-jwt-rsa-r1") and state.retired == Key(ECDSA, "px-jwt-ecdsa")
    assert world.mounted == {"px-jwt-ecdsa", "px-jwt-rsa-r1"} and world.restarts == 1  # retired: still mounted

    world.annotation = "2"  # and back: the retired ECDSA key's slot gets a new ECDSA key
    state, _ = until(world, state, GRACE)
    world.now += DAY
    state, _ = until(world, state, COMPLETED)
    assert state.current == Key(ECDSA, "px-jwt-ecdsa-r2") and state.retired == Key(RSA, "px-jwt-rsa-r1")
    assert world.restarts == 2 and world.signed_with == "px-jwt-ecdsa-r2"
    assert world.mounted == {"px-jwt-ecdsa-r2", "px-jwt-rsa-r1"}
    state, phases = drive(world, state, 3)  # the same annotation value starts nothing more
    assert phases == [COMPLETED] * 3 and world.restarts == 2


def test_a_restart_that_waits_for_approval_holds_the_rotation_and_says_so() -> None:
    world = World(annotation="1", approved=False)
    state, phases = drive(world, rotation.State(), 4)
    assert phases == [MOUNTING] * 4 and world.signed_with == "px-jwt-ecdsa" and world.restarts == 0
    p = rotation.plan(SPEC, Rotation(), state, world.seen(state))
    assert "waits for approval" in p.message
    world.approved = True
    state, _ = until(world, state, GRACE)
    assert world.signed_with == "px-jwt-rsa-r1" and world.restarts == 1


def test_a_node_that_does_not_accept_the_next_key_holds_the_rotation() -> None:
    world = World(annotation="1")
    state, _ = until(world, rotation.State(), ACKNOWLEDGING)
    seen = dataclasses.replace(world.seen(state), acknowledged=(2, 3))
    p = rotation.plan(SPEC, Rotation(), state, seen)
    assert p.state.phase == ACKNOWLEDGING and p.signing == Key(ECDSA, "px-jwt-ecdsa") and "2/3" in p.message
    unasked = dataclasses.replace(world.seen(state), acknowledged=None)
    assert rotation.plan(SPEC, Rotation(), state, unasked).state.phase == ACKNOWLEDGING
    nothing_runs = dataclasses.replace(unasked, running=False)
    assert rotation.plan(SPEC, Rotation(), state, nothing_runs).state.phase == RESIGNING


def test_the_schedule_starts_a_rotation_every_period_from_the_last_start() -> None:
    world = World()
    policy = Rotation(every=dt.timedelta(days=90))
    p = rotation.plan(SPEC, policy, rotation.State(), world.seen(rotation.State()))
    assert p.state.phase == "" and p.wake == T0 + dt.timedelta(days=90)
    world.now = T0 + dt.timedelta(days=90)
    state, phases = drive(world, rotation.State(), 1, policy=policy)
    assert phases == [MOUNTING] and state.started == T0 + dt.timedelta(days=90)


def test_emergency_skips_the_grace_period_and_completes_once_every_node_rejects_the_old_key() -> None:
    world = World(annotation="leak")
    emergency = Rotation(emergency=True)
    state, phases = until(world, rotation.State(), COMPLETED, policy=emergency)
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        MOUNTING, ACKNOWLEDGING, RESIGNING, GRACE, REVOKING, COMPLETED]
    assert world.now < T0 + dt.timedelta(hours=1) and state.current == Key(RSA, "px-jwt-rsa-r1")
    assert state.retired is None and world.mounted == {"px-jwt-rsa-r1"} and world.restarts == 2
    assert "px-jwt-ecdsa" not in world.node_keys  # revoked: no node trusts it any more
    drive(world, state, 2, policy=emergency)
    assert world.released == ["px-jwt-ecdsa"]  # its Secret goes (per deletionPolicy) once revoked, once


def test_a_node_still_accepting_the_revoked_key_holds_the_emergency_rotation() -> None:
    world = World(annotation="leak")
    emergency = Rotation(emergency=True)
    state, _ = until(world, rotation.State(), REVOKING, policy=emergency)
    world.mounted, world.restarting = frozenset({"px-jwt-rsa-r1"}), 0  # the restart that unmounts it is over
    seen = dataclasses.replace(world.seen(state), revoked=(2, 3))
    p = rotation.plan(SPEC, emergency, state, seen)
    assert p.state.phase == REVOKING and p.revoke == Key(ECDSA, "px-jwt-ecdsa") and "2/3" in p.message
    assert p.release == () and p.keys == (Key(RSA, "px-jwt-rsa-r1"),)  # kept to sign its canary: not released
    unasked = dataclasses.replace(seen, revoked=None)
    assert rotation.plan(SPEC, emergency, state, unasked).state.phase == REVOKING


def test_a_replaced_retired_key_is_released_once_no_pod_mounts_it() -> None:
    world = World(annotation="1")
    state, _ = until(world, rotation.State(), GRACE)
    world.now += DAY
    state, _ = until(world, state, COMPLETED)
    assert world.released == []  # retired, still mounted
    world.annotation = "2"
    state, _ = drive(world, state, 1)
    assert state.phase == MOUNTING and state.dropped == (Key(ECDSA, "px-jwt-ecdsa"),) and world.released == []
    back = rotation.read_state({"rotation": rotation.write_state(rotation.Plan(state, (), None, ""))})
    assert back.dropped == state.dropped  # kept in status until released
    state, _ = until(world, state, ACKNOWLEDGING)  # the rollout that unmounts it is over
    assert world.released == ["px-jwt-ecdsa"] and state.dropped == ()


def test_the_effective_spec_holds_the_plans_keys_and_signs_all_but_shared_secret_tokens_with_it() -> None:
    p = rotation.Plan(rotation.State(RESIGNING), (Key(ECDSA, "px-jwt-ecdsa"), Key(RSA, "px-jwt-rsa-r1")),
                      Key(RSA, "px-jwt-rsa-r1"), "")
    spec = rotation.effective(SPEC, p)
    assert spec.self_signed is not None and spec.self_signed.rsa is not None and spec.self_signed.ecdsa is not None
    assert (spec.self_signed.rsa.secret_name, spec.self_signed.ecdsa.secret_name) == ("px-jwt-rsa-r1", "px-jwt-ecdsa")
    assert [t.signing_key for t in spec.tokens] == [RSA, "SharedSecret"]


@pytest.mark.parametrize("status", [None, {}, {"rotation": "x"}, {"rotation": {"phase": "Bogus"}},
                                    {"rotation": {"phase": MOUNTING, "from": {"kind": "DSA", "secret": "x"}}}])
def test_an_unreadable_status_is_no_rotation_never_an_error(status: dict[str, object] | None) -> None:
    state = rotation.read_state(status)
    p = rotation.plan(SPEC, Rotation(), state, World().seen(state))
    assert p.signing == Key(ECDSA, "px-jwt-ecdsa")


def test_revisioned_names_stay_names() -> None:
    assert rotation.revisioned("px-jwt-rsa", 12) == "px-jwt-rsa-r12"
    long = rotation.revisioned("a" * 253, 3)
    assert len(long) == 253 and long.endswith("-r3")


def test_turning_rotation_on_with_both_keys_configured_keeps_both_mounted() -> None:
    both = parse_spec({"selfSigned": {"rsa": {"secretName": "px-jwt-rsa"}, "ecdsa": {"secretName": "px-jwt-ecdsa"}}})
    p = rotation.plan(both, Rotation(), rotation.State(), Observed(now=T0))
    assert p.keys == (Key(ECDSA, "px-jwt-ecdsa"), Key(RSA, "px-jwt-rsa")) and p.signing == Key(ECDSA, "px-jwt-ecdsa")
    started = rotation.plan(both, Rotation(), rotation.State(), Observed(now=T0, annotation="1"))
    assert started.keys == (Key(ECDSA, "px-jwt-ecdsa"), Key(RSA, "px-jwt-rsa-r1"))  # the RSA slot's new key


@pytest.mark.parametrize("lost_in", [MOUNTING, ACKNOWLEDGING, RESIGNING, GRACE, COMPLETED])
def test_a_lost_status_is_recovered_from_what_the_storagecluster_mounts(lost_in: str) -> None:
    """Status gone (a restore from a backup) at any phase of the second rotation: the keys the
    StorageCluster mounts say where things are; nothing is signed with a key before every node accepts it."""
    world = World(annotation="1")
    state, _ = until(world, rotation.State(), GRACE)
    world.now += DAY
    state, _ = until(world, state, COMPLETED)
    world.annotation = "2"
    state, _ = until(world, state, lost_in) if lost_in != COMPLETED else (state, [])
    if lost_in == COMPLETED:
        state, _ = until(world, state, GRACE)
        world.now += DAY
        state, _ = until(world, state, COMPLETED)
    seen = world.seen(rotation.State())
    keys = tuple(sorted((Key(ECDSA if "ecdsa" in m else RSA, m) for m in world.mounted), key=lambda k: k.kind))
    seen = dataclasses.replace(seen, mounted_keys=keys, acknowledged=None)  # no record: no key was asked about
    p = rotation.plan(SPEC, Rotation(), rotation.State(), seen)
    assert world.signed_with in world.node_keys
    assert p.signing is not None and p.signing.secret in world.node_keys, (lost_in, p)
    assert {k.secret for k in p.keys} == set(world.mounted)  # nothing unmounted: no restart
    assert p.state.trigger == "2"  # the annotation that started what is mounted starts nothing more
    # ...and driven on from there, the rotation completes without a token signed with an untrusted key.
    state, _ = until(world, rotation.read_state({"rotation": rotation.write_state(p)}), GRACE)
    world.now += DAY
    state, _ = until(world, state, COMPLETED)
    assert state.current == Key(ECDSA, "px-jwt-ecdsa-r2") and world.restarts == 2
