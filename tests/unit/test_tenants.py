"""The tenant planner (pxsec.tenants): which namespace gets which tenant's token, what is minted again, what
goes, and what is said — from the watches' view alone."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from pxsec import tenants
from pxsec.spec import LabelSelector, TenantSpec, parse_spec
from pxsec.tenants import Desired, Existing, Namespace

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
CR = "portworx/px"
DAY = dt.timedelta(days=1)
A = TenantSpec("team-a", LabelSelector({"team": "a"}), groups=("team-a",))
B = TenantSpec("team-b", LabelSelector(match_expressions=(("team", "In", ("b", "b-dr")),)),
               secret_name="px-tenant-token", on_namespace_exit="Delete")
DESIRED = {"team-a": Desired("sha256:a", DAY), "team-b": Desired("sha256:b", DAY)}


def ours(namespace: str, name: str, tenant: str, digest: str, renew: dt.datetime, cr: str = CR) -> Existing:
    return Existing(namespace, name, {
        "resourceVersion": "7", "uid": f"uid-{namespace}", "labels": {tenants.TENANT_LABEL: tenant},
        "annotations": {tenants.PXSECURITY_ANNOTATION: cr, tenants.TOKEN_ANNOTATION: digest,
                        tenants.RENEW_ANNOTATION: renew.strftime("%Y-%m-%dT%H:%M:%SZ")}})


def run(namespaces: list[Namespace], existing: list[Existing] = (), volumes: dict[tuple[str, str], str] | None = None,
        served: Any = None, now: dt.datetime = T0, listed: Any = None) -> tenants.Plan:
    found = {(e.namespace, e.name): e for e in existing}
    mine = [e for e in existing if e.meta and e.annotation(tenants.PXSECURITY_ANNOTATION) == CR]
    return tenants.plan(CR, "portworx", (A, B), DESIRED, namespaces, found, mine,
                        lambda ns, n: (volumes or {}).get((ns, n)), served or (lambda ns: True),
                        listed or (lambda ns: True), now)


def actions(p: tenants.Plan) -> list[tuple[str, str, str]]:
    return sorted((w.action, w.namespace, w.secret) for w in p.writes)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    (LabelSelector({"team": "a"}), {"team": "a", "x": "y"}, True),
    (LabelSelector({"team": "a"}), {"team": "b"}, False),
    (LabelSelector(match_expressions=(("team", "In", ("a", "b")),)), {"team": "b"}, True),
    (LabelSelector(match_expressions=(("team", "In", ("a",)),)), {}, False),
    (LabelSelector(match_expressions=(("team", "NotIn", ("a",)),)), {}, True),
    (LabelSelector(match_expressions=(("team", "NotIn", ("a",)),)), {"team": "a"}, False),
    (LabelSelector(match_expressions=(("team", "Exists", ()),)), {"team": ""}, True),
    (LabelSelector(match_expressions=(("team", "DoesNotExist", ()),)), {"team": ""}, False),
    (LabelSelector({"team": "a"}, (("env", "In", ("prod",)),)), {"team": "a", "env": "dev"}, False),
    (LabelSelector(match_expressions=(("team", "Bogus", ()),)), {"team": "a"}, False),
])
def test_selectors_are_label_selectors(selector: LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert tenants.selects(selector, labels) is expected


def test_each_selected_namespace_gets_one_create_and_nothing_else_is_touched() -> None:
    p = run([Namespace("a1", {"team": "a"}), Namespace("a2", {"team": "a"}), Namespace("b1", {"team": "b-dr"}),
             Namespace("other", {"team": "c"})])
    assert actions(p) == [("create", "a1", "px-user-token"), ("create", "a2", "px-user-token"),
                          ("create", "b1", "px-tenant-token")]
    assert (p.reports["team-a"].selected, p.reports["team-b"].selected) == (2, 1)


def test_a_current_token_costs_nothing_and_its_renewal_is_reported() -> None:
    due = T0 + dt.timedelta(hours=14)
    p = run([Namespace("a1", {"team": "a"})], [ours("a1", "px-user-token", "team-a", "sha256:a", due)])
    assert p.writes == [] and p.reports["team-a"].ready == 1 and p.reports["team-a"].next_renewal == due


def test_a_token_due_or_changed_is_minted_again_guarded_by_its_version() -> None:
    existing = [ours("a1", "px-user-token", "team-a", "sha256:a", T0 - dt.timedelta(seconds=1)),
                ours("a2", "px-user-token", "team-a", "sha256:old-key", T0 + DAY)]
    p = run([Namespace("a1", {"team": "a"}), Namespace("a2", {"team": "a"})], existing)
    assert sorted((w.action, w.namespace, w.why, w.version) for w in p.writes) == [
        ("update", "a1", "due", "7"), ("update", "a2", "changed", "7")]


def test_the_pxsecuritys_own_namespace_is_never_written() -> None:
    p = run([Namespace("portworx", {"team": "a"})])
    assert p.writes == [] and "never written" in p.reports["team-a"].problems[0]


def test_a_namespace_two_tenants_select_is_a_conflict_for_both_and_nothing_is_written_there() -> None:
    existing = [ours("both", "px-user-token", "team-a", "sha256:a", T0 + DAY)]
    p = run([Namespace("both", {"team": "a", "x": "y"}), Namespace("b", {"team": "b"})], existing)
    two = TenantSpec("team-x", LabelSelector({"x": "y"}), on_namespace_exit="Delete")
    p = tenants.plan(CR, "portworx", (A, B, two), {**DESIRED, "team-x": Desired("sha256:x", DAY)},
                     [Namespace("both", {"team": "a", "x": "y"})], {(e.namespace, e.name): e for e in existing},
                     existing, lambda ns, n: None, lambda ns: True, lambda ns: True, T0)
    assert p.writes == []  # not written, and the Secret already there is not deleted either
    for name in ("team-a", "team-x"):
        assert p.reports[name].problems == [
            "Conflict: namespace both is selected by tenants team-a, team-x: nothing is written there"]


def test_a_secret_that_is_not_ours_is_never_touched() -> None:
    foreign = Existing("a1", "px-user-token", None)
    other_cr = ours("a2", "px-user-token", "team-a", "sha256:a", T0 + DAY, cr="elsewhere/px")
    p = run([Namespace("a1", {"team": "a"}), Namespace("a2", {"team": "a"})], [foreign, other_cr])
    assert p.writes == []
    assert [s.split(" exists")[0] for s in p.reports["team-a"].problems] == [
        "Secret a1/px-user-token", "Secret a2/px-user-token"]


def test_leaving_the_selector_orphans_or_deletes_but_never_under_a_volume() -> None:
    existing = [ours("a-gone", "px-user-token", "team-a", "sha256:a", T0 + DAY),
                ours("b-gone", "px-tenant-token", "team-b", "sha256:b", T0 + DAY),
                ours("b-used", "px-tenant-token", "team-b", "sha256:b", T0 + DAY)]
    p = run([Namespace("a-gone"), Namespace("b-gone"), Namespace("b-used")], existing,
            volumes={("b-used", "px-tenant-token"): "pvc-123"})
    assert actions(p) == [("delete", "b-gone", "px-tenant-token")]  # team-a: Orphan; b-used: a volume uses it
    assert p.writes[0].uid == "uid-b-gone" and p.writes[0].version == "7"
    assert "PersistentVolume pvc-123 uses it" in p.reports["team-b"].problems[0]


def test_a_namespace_not_served_is_said_and_one_not_listed_yet_waits() -> None:
    p = run([Namespace("a1", {"team": "a"}), Namespace("a2", {"team": "a"})], served=lambda ns: ns == "a1",
            listed=lambda ns: False)
    assert p.writes == [] and p.waiting
    assert "a2 is not served by this operator" in p.reports["team-a"].problems[0]


def test_problems_are_bounded_whatever_the_number_of_namespaces() -> None:
    foreign = [Existing(f"a{i}", "px-user-token", None) for i in range(500)]
    p = run([Namespace(f"a{i}", {"team": "a"}) for i in range(500)], foreign)
    row = tenants.status(p.reports)[0]
    assert len(row["problems"]) == tenants.MAX_PROBLEMS + 1 and row["problems"][-1] == "and 480 more"


def test_renewals_of_tokens_minted_together_are_spread_over_a_quarter_of_the_lifetime() -> None:
    when = [tenants.renewal("team-a", f"ns-{i}", T0, DAY) for i in range(2000)]
    assert min(when) >= T0 + DAY / 2 and max(when) < T0 + DAY * 3 / 4
    per_minute = Counter(w.replace(second=0, microsecond=0) for w in when)
    assert max(per_minute.values()) <= 20  # 2,000 over 360 minutes: about 6 a minute (13 at most), never a burst
    assert tenants.renewal("team-a", "ns-1", T0, DAY) == tenants.renewal("team-a", "ns-1", T0, DAY)


def test_the_digest_changes_with_what_the_token_says_and_who_signs_it() -> None:
    base = tenants.digest(A, "iss", "key-1", DAY)
    assert base == tenants.digest(A, "iss", "key-1", DAY)
    assert len({base, tenants.digest(A, "iss", "key-2", DAY), tenants.digest(A, "other", "key-1", DAY),
                tenants.digest(A, "iss", "key-1", DAY * 2),
                tenants.digest(TenantSpec("team-a", A.selector, subject="alice"), "iss", "key-1", DAY)}) == 5


def test_the_identity_is_the_subject_in_sub_email_and_name() -> None:
    spec = parse_spec({"selfSigned": {"sharedSecret": {}}, "tenants": [
        {"name": "team-a", "namespaceSelector": {"matchLabels": {"team": "a"}}, "subject": "team-a@corp"}]})
    assert tenants.identity(spec.tenants[0]) == {"name": "team-a@corp", "email": "team-a@corp", "sub": "team-a@corp",
                                                 "roles": ["system.user"], "groups": []}
