"""The shared-secret rotation planner (pxsec.sharedrotation), driven by a small model of the world: the
Secret the StorageCluster names (once approved), its rollout, what the nodes accept. Every phase is left
only on what the world shows; the status round trip decides the same."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pxsec import sharedrotation
from pxsec.sharedrotation import ACKNOWLEDGING, COMPLETED, SWITCHING, Observed, State

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
BASE = "px-shared-secret"


@dataclasses.dataclass
class World:
    now: dt.datetime = T0
    given: str = BASE
    restarting: int = 0
    node_secret: str = BASE
    approved: bool = True
    annotation: str | None = None
    restarts: int = 0
    released: list[str] = dataclasses.field(default_factory=list)

    def seen(self, state: State) -> Observed:
        nxt = state.next
        return Observed(now=self.now, annotation=self.annotation, given=self.given,
                        rollout_done=self.restarting == 0, awaiting_approval=not self.approved,
                        acknowledged=(3 if nxt == self.node_secret else 0, 3) if nxt else None, running=True)

    def carry_out(self, p: sharedrotation.Plan) -> None:
        if p.secret and p.secret != self.given and self.approved:
            self.given, self.restarting, self.restarts = p.secret, 2, self.restarts + 1
        elif self.restarting:
            self.restarting -= 1
            if not self.restarting:
                self.node_secret = self.given
        self.released += list(p.release)


def drive(world: World, state: State, steps: int) -> tuple[State, list[str], list[sharedrotation.Plan]]:
    phases, plans = [], []
    for _ in range(steps):
        p = sharedrotation.plan(BASE, state, world.seen(state))
        world.carry_out(p)
        state = sharedrotation.read_state(sharedrotation.write_state(p))
        phases.append(state.phase)
        plans.append(p)
        world.now += dt.timedelta(seconds=10)
    return state, phases, plans


def test_without_the_annotation_nothing_moves() -> None:
    world = World()
    _state, phases, plans = drive(world, State(), 4)
    assert phases == [""] * 4 and world.restarts == 0 and {p.secret for p in plans} == {BASE}


def test_a_rotation_switches_once_and_completes_when_every_node_accepts_the_new_secret() -> None:
    world = World(annotation="2031")
    state, phases, plans = drive(world, State(), 8)
    # The nodes accept it as soon as their pods restarted: Acknowledging passes within that reconcile.
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [SWITCHING, COMPLETED]
    assert plans[0].started and plans[0].secret == f"{BASE}-r1" and "rejected" in plans[0].message
    assert world.restarts == 1 and world.given == f"{BASE}-r1" and state.current == f"{BASE}-r1"
    assert state.switched is not None and "window" not in plans[-1].message
    done = next(p for p in plans if p.state.phase == COMPLETED)
    assert "could be rejected from" in done.message
    assert world.released == [BASE]  # the old Secret, once no pod uses it: settled per deletionPolicy
    state, phases, _ = drive(world, state, 3)  # the same value starts nothing more
    assert phases == [COMPLETED] * 3 and world.restarts == 1


def test_the_switch_waits_for_approval_and_states_the_window_to_come() -> None:
    world = World(annotation="1", approved=False)
    state, phases, plans = drive(world, State(), 3)
    assert phases == [SWITCHING] * 3 and world.restarts == 0 and state.switched is None
    assert "waits for approval" in plans[-1].message and "until the rolling restart ends" in plans[-1].message
    world.approved = True
    state, phases, _ = drive(world, state, 6)
    assert state.phase == COMPLETED and world.restarts == 1


def test_a_node_that_does_not_accept_the_new_secret_holds_it() -> None:
    world = World(annotation="1")
    state, _phases, _ = drive(world, State(), 4)
    assert state.phase == COMPLETED
    held = sharedrotation.plan(BASE, dataclasses.replace(state, phase=ACKNOWLEDGING, current=BASE,
                                                         next=f"{BASE}-r1"),
                               dataclasses.replace(world.seen(state), acknowledged=(2, 3)))
    assert held.state.phase == ACKNOWLEDGING and "2/3" in held.message


def test_a_lost_status_keeps_the_secret_the_storagecluster_names() -> None:
    world = World(annotation="1")
    drive(world, State(), 8)
    p = sharedrotation.plan(BASE, State(), world.seen(State()))
    assert p.secret == f"{BASE}-r1" and p.state.revision == 1 and not p.started  # nothing switched back
    world.annotation = "2"
    state, _, plans = drive(world, p.state, 8)
    assert plans[0].secret == f"{BASE}-r2" and state.current == f"{BASE}-r2"


def test_no_shared_secret_is_said_not_an_error() -> None:
    p = sharedrotation.plan(None, State(), Observed(now=T0, annotation="1"))
    assert p.secret is None and "no shared secret" in p.message


@pytest.mark.parametrize("raw", [None, "x", {"phase": "Bogus"}, {"phase": SWITCHING, "to": 3}, {"dropped": "x"}])
def test_an_unreadable_status_is_no_rotation(raw: object) -> None:
    state = sharedrotation.read_state(raw)
    p = sharedrotation.plan(BASE, state, Observed(now=T0))
    assert p.secret == BASE and not p.started
