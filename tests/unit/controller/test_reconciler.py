"""The reconciler as a whole, against the in-memory gateway, in the manner of cert-manager's `ProcessItem`
tests: given these objects, exactly these writes, this status, these Events, this requeue. The e2e suite
proves the same promises against the real API server; these take milliseconds each.

Also the shape every step shares (`run_steps`): a failure becomes the step's condition, a refused request
is said on the object, a transient one goes to the work queue, a blocked step keeps its status."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pxsec import conditions, keymaterial
from pxsec.conditions import Condition
from pxsec.controller.handlers import ObservedReconciler, Runtime
from pxsec.controller.kube.gateway import GatewayError, NamespaceTerminating
from pxsec.controller.reconciler import AT_ONCE, Reconciler, Result, describe, run_steps
from pxsec.controller.steps import BaseStep, Context, Outcome
from pxsec.spec import parse_spec
from tests.support.fakegateway import FakeGateway

NS = "portworx"
KEY = (NS, "px")
NOW = dt.datetime(2030, 5, 17, 12, 0, 0, tzinfo=dt.UTC)
SPEC: dict[str, Any] = {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                                       "ecdsa": {"secretName": "px-jwt-ecdsa"}},
                        "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"]}]}
TARGETED: dict[str, Any] = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True}}
STORAGECLUSTER: dict[str, Any] = {"apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster",
                                  "metadata": {}, "spec": {"image": "portworx/oci-monitor:3.2.0"}}


class NoNetwork:
    def probe(self, *args: Any) -> Any:
        raise AssertionError("no OIDC provider in these specs")


def world(spec: Mapping[str, Any] = SPEC) -> FakeGateway:
    gw = FakeGateway()
    gw.put("PxSecurity", NS, "px", {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity",
                                    "metadata": {"uid": "uid-1", "generation": 1}, "spec": dict(spec)})
    return gw


def reconcile(gw: FakeGateway, clear: bool = True) -> Result:
    if clear:
        gw.clear_writes()
    return Reconciler(gw, clock=lambda: NOW, prober=NoNetwork()).reconcile(KEY)  # type: ignore[arg-type]


def status(gw: FakeGateway) -> dict[str, Any]:
    return dict(gw.objects[("PxSecurity", NS, "px")].get("status") or {})


def condition(gw: FakeGateway, type_: str) -> tuple[str, str]:
    found = next(c for c in status(gw)["conditions"] if c["type"] == type_)
    return found["status"], found["reason"]


def reasons(gw: FakeGateway) -> list[str]:
    return [e.reason for e in gw.events]


# -- the table ----------------------------------------------------------------------------------------

def test_a_new_object_gets_its_secrets_token_configmap_and_status_in_one_pass() -> None:
    gw = world()
    result = reconcile(gw)
    # The three key Secrets and the parameters' ConfigMap are written at once (in any order), then the
    # rest, one after another.
    assert sorted(gw.writes[:4]) == [("create", "ConfigMap", "px-px-security"),
                                     ("create", "Secret", "px-jwt-ecdsa"), ("create", "Secret", "px-shared-secret"),
                                     ("create", "Secret", "px-system-secrets")]
    assert gw.writes[4:] == [("create", "Secret", "px-ops-token"), ("patch", "PxSecurity/status", "px")]
    assert condition(gw, conditions.READY) == ("True", "Ready")
    assert [s["origin"] for s in status(gw)["secrets"]] == ["Generated"] * 3
    assert sorted(reasons(gw)) == ["SecretGenerated", "TokenMinted"]  # posted at once: in any order
    # Woken for the renewal at 2/3 of the 24 h lifetime, and nothing failed.
    assert result.outcome.requeue_after == 16 * 3600
    assert not result.outcome.failed
    assert ("Secret", NS, "px-ops-token") in result.dependencies


def test_a_reconcile_with_nothing_to_do_writes_nothing() -> None:
    gw = world()
    reconcile(gw)
    result = reconcile(gw)
    assert gw.writes == [] and gw.events == []
    assert result.outcome.requeue_after is not None and not result.outcome.failed


def test_a_lost_secret_is_recreated_loudly_with_a_new_revision() -> None:
    gw = world()
    reconcile(gw)
    gw.delete("Secret", NS, "px-shared-secret")
    reconcile(gw)
    assert gw.writes[:2] == [("create", "Secret", "px-shared-secret"),
                             ("patch", "Secret", "px-ops-token")]  # re-minted with the new key
    assert condition(gw, conditions.KEYS_READY) == ("True", "SecretRegenerated")
    assert "SecretLost" in reasons(gw)
    assert next(s["revision"] for s in status(gw)["secrets"] if s["name"] == "px-shared-secret") == 2


def lose_the_response(gw: FakeGateway, method: str) -> None:
    """The write is done, its response never arrives (a connection reset): a transient failure."""
    done = getattr(gw, method)

    def lost(*args: Any, **kwargs: Any) -> Any:
        done(*args, **kwargs)
        raise GatewayError(f"{method}: 503 the response was lost", 503)

    setattr(gw, method, lost)


@pytest.mark.parametrize("fails, how", [("patch_status", "refused"), ("patch_status", "response lost"),
                                       ("create_secret", "response lost")])
def test_a_loss_is_said_as_a_loss_even_when_the_reconcile_that_regenerated_it_failed(fails: str, how: str) -> None:
    """The news of a loss comes from status; the reconcile that regenerated the Secret may fail before
    its status is written, or after (its response lost). Across it and the retry SecretLost is said at
    least once and always in the same words (the real gateway counts the same Event: one object), never
    a false SecretChanged; and a later change by hand is still said as one."""
    gw = world()
    reconcile(gw)
    gw.delete("Secret", NS, "px-shared-secret")
    working = getattr(gw, fails)
    if how == "refused":
        refuse(gw, fails, 503)
    else:
        lose_the_response(gw, fails)
    with pytest.raises(GatewayError):
        reconcile(gw)
    assert gw.secret(NS, "px-shared-secret") is not None  # regenerated before the failure
    said = [e.message for e in gw.events if e.reason == "SecretLost"]
    setattr(gw, fails, working)
    reconcile(gw)
    said += [e.message for e in gw.events if e.reason == "SecretLost"]
    assert said and len(set(said)) == 1 and "SecretChanged" not in reasons(gw), said
    assert condition(gw, conditions.KEYS_READY) == ("True", "SecretRegenerated")
    assert next(s["revision"] for s in status(gw)["secrets"] if s["name"] == "px-shared-secret") == 2
    reconcile(gw)
    assert "SecretLost" not in reasons(gw)
    gw.objects[("Secret", NS, "px-shared-secret")]["data"] = {"shared-secret": b"h" * 64}
    reconcile(gw)
    assert reasons(gw).count("SecretChanged") == 1 and "SecretLost" not in reasons(gw)
    assert next(s["revision"] for s in status(gw)["secrets"] if s["name"] == "px-shared-secret") == 3


def test_a_secret_brought_beforehand_is_adopted_and_never_written() -> None:
    gw = world()
    gw.put_secret(NS, "px-shared-secret", {"shared-secret": b"a" * 64})
    reconcile(gw)
    assert not [w for w in gw.writes if w[2] == "px-shared-secret"]
    entry = next(s for s in status(gw)["secrets"] if s["name"] == "px-shared-secret")
    assert entry["origin"] == "Adopted"
    assert gw.data(NS, "px-shared-secret") == {"shared-secret": b"a" * 64}


def test_a_storagecluster_that_appears_later_is_waited_for_then_applied() -> None:
    gw = world(TARGETED)
    result = reconcile(gw)
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("False", "WaitingForStorageCluster")
    assert ("StorageCluster", NS, "px-cluster") in result.dependencies  # its appearance wakes us: no poll
    assert not [w for w in gw.writes if w[1] == "StorageCluster"]
    gw.put("StorageCluster", NS, "px-cluster", STORAGECLUSTER)
    applied = reconcile(gw)
    assert ("patch", "StorageCluster", "px-cluster") in gw.writes
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("True", "Applied")
    assert "StorageClusterUpdated" in reasons(gw)
    # Judged from the StorageCluster before the merge: looked at again at once, to judge it as merged.
    assert status(gw)["storageCluster"]["securityEnabled"] is False and applied.outcome.requeue_after == 1.0
    reconcile(gw)
    assert status(gw)["storageCluster"]["securityEnabled"] is True
    assert condition(gw, conditions.TOKENS_ACCEPTED)[0] == "True"
    reconcile(gw)
    assert gw.writes == []


def test_a_storagecluster_conflict_is_reported_never_forced() -> None:
    gw = world(TARGETED)
    gw.put("StorageCluster", NS, "px-cluster", {**STORAGECLUSTER, "spec": {
        "security": {"enabled": True, "auth": {"selfSigned": {"issuer": "someone.else"}}}}})
    reconcile(gw)
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("False", "Conflict")
    assert gw.objects[("StorageCluster", NS, "px-cluster")]["spec"]["security"]["auth"]["selfSigned"][
        "issuer"] == "someone.else"
    assert condition(gw, conditions.READY)[0] == "False"
    assert condition(gw, conditions.STALLED) == ("True", "Conflict")  # kstatus: Failed, a person must act


def test_an_uninstall_of_the_storagecluster_is_not_raced() -> None:
    gw = world(TARGETED)
    gw.put("StorageCluster", NS, "px-cluster", {**STORAGECLUSTER, "metadata": {
        "deletionTimestamp": "2030-05-17T11:59:00Z", "finalizers": ["operator.libopenstorage.org/delete"]}})
    reconcile(gw)
    assert not [w for w in gw.writes if w[1] == "StorageCluster"]
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("False", "StorageClusterDeleting")


def test_an_invalid_spec_is_a_condition_and_an_event() -> None:
    gw = world({"tokens": "not a list"})  # what the schema would refuse, stored before it did
    result = reconcile(gw)
    assert gw.writes == [("patch", "PxSecurity/status", "px")]
    assert condition(gw, conditions.READY) == ("False", "InvalidSpec") and reasons(gw) == ["InvalidSpec"]
    assert condition(gw, conditions.STALLED) == ("True", "InvalidSpec")
    assert result.outcome.requeue_after is None


def test_an_invalid_spec_is_observed_as_not_ready() -> None:
    gw = world({"tokens": "not a list"})
    seen: list[tuple[Any, list[str]]] = []
    rec = Reconciler(gw, clock=lambda: NOW)
    rec.observe = lambda key, spec, status, conds: seen.append((spec, [f"{c.type}={c.status}" for c in conds]))  # type: ignore[method-assign]
    rec.reconcile((NS, "px"))
    assert seen == [(None, ["Ready=False"])]


def test_an_invalid_spec_counts_as_not_ready_in_the_metrics() -> None:
    """Issue 24, finding 3: an InvalidSpec reconcile was counted `skipped`. Through the runtime's own counting
    (the real Metrics.observe with no spec to read), one reconcile of an unreadable spec is one `not_ready`."""
    runtime = Runtime(ObservedReconciler(world({"tokens": "not a list"}), clock=lambda: NOW), workers=1)
    runtime._reconcile(KEY)
    counted = {s.labels["result"]: s.value for metric in runtime.metrics.reconciles.collect()
               for s in metric.samples if s.name == "pxsec_reconciles_total"}
    assert counted == {"ready": 0, "not_ready": 1, "skipped": 0, "error": 0}


def test_invalid_key_material_is_stalled_until_a_person_fixes_it() -> None:
    """kstatus reports Failed only for `Stalled=True`: key material a user brought that is not a key needs a
    person; once the Secret holds a key pair, Stalled goes."""
    gw = world()
    gw.put_secret(NS, "px-jwt-ecdsa", {"private.pem": b"not a key", "public.pem": b"-----BEGIN A-----\n" * 100})
    reconcile(gw)
    assert condition(gw, conditions.KEYS_READY) == ("False", "InvalidKeyMaterial")
    assert condition(gw, conditions.STALLED) == ("True", "InvalidKeyMaterial")
    private, public = keymaterial.generate_ecdsa("P-256")
    gw.put_secret(NS, "px-jwt-ecdsa", {"private.pem": private, "public.pem": public})
    reconcile(gw)
    assert condition(gw, conditions.READY) == ("True", "Ready")
    assert conditions.STALLED not in {c["type"] for c in status(gw)["conditions"]}


def test_waiting_is_not_stalled() -> None:
    gw = world(TARGETED)  # the StorageCluster does not exist yet: it may come
    reconcile(gw)
    assert condition(gw, conditions.READY)[0] == "False"
    assert conditions.STALLED not in {c["type"] for c in status(gw)["conditions"]}


def test_a_deleted_object_is_left_alone() -> None:
    gw = world()
    gw.delete("PxSecurity", NS, "px")
    assert reconcile(gw) == Result() and gw.writes == []


Call = Callable[..., Any]


def refuse(gw: FakeGateway, method: str, status_code: int = 403) -> None:
    """Make one gateway call answer like an API server that refuses it."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise GatewayError(f"{method}: {status_code} forbidden by the test", status_code)

    setattr(gw, method, refused)


@pytest.mark.parametrize("method, failed_type", [
    ("read_storagecluster", conditions.STORAGECLUSTER_APPLIED),
    ("read_secret", conditions.KEYS_READY),
    ("create_secret", conditions.KEYS_READY),
    ("read_configmap", conditions.PARAMETERS_RENDERED),
    ("create_configmap", conditions.PARAMETERS_RENDERED),
    ("patch_storagecluster", conditions.STORAGECLUSTER_APPLIED),
])
def test_a_refused_read_or_write_is_a_condition_never_a_wedge(method: str, failed_type: str) -> None:
    gw = world(TARGETED)
    gw.put("StorageCluster", NS, "px-cluster", STORAGECLUSTER)
    refuse(gw, method)
    result = reconcile(gw)  # returns: the failure is on the object, and the queue backs off
    assert result.outcome.failed
    assert condition(gw, failed_type) == ("False", "Forbidden")
    assert condition(gw, conditions.READY)[0] == "False"
    assert ("patch", "PxSecurity/status", "px") in gw.writes
    assert "Forbidden" in reasons(gw)
    assert condition(gw, conditions.STALLED) == ("True", "Forbidden")


def template(gw: FakeGateway) -> None:
    gw.objects[("PxSecurity", NS, "px")]["spec"]["secretTemplate"] = {"labels": {"team": "storage"}}


def half_system_secret(gw: FakeGateway) -> None:
    gw.put_secret(NS, "px-system-secrets", {"system-secret": b"s" * 64})


def broken_token(gw: FakeGateway) -> None:
    reconcile(gw)
    gw.put_secret(NS, "px-ops-token", {"auth-token": b"not a token"})


def stale_configmap(gw: FakeGateway) -> None:
    reconcile(gw)
    gw.objects[("ConfigMap", NS, "px-px-security")]["data"] = {"stale": "x"}


@pytest.mark.parametrize("method, setup, failed_type", [
    ("add_secret_keys", half_system_secret, conditions.KEYS_READY),
    ("apply_secret_metadata", template, conditions.KEYS_READY),
    ("update_secret_data", broken_token, conditions.TOKENS_READY),
    ("patch_configmap", stale_configmap, conditions.PARAMETERS_RENDERED),
])
def test_every_refused_write_is_its_steps_condition(method: str, setup: Callable[[FakeGateway], None],
                                                    failed_type: str) -> None:
    gw = world()
    setup(gw)
    refuse(gw, method, 422)
    assert reconcile(gw).outcome.failed
    assert condition(gw, failed_type) == ("False", "RejectedByAPIServer")
    assert "RejectedByAPIServer" in reasons(gw)
    assert condition(gw, conditions.STALLED) == ("True", "RejectedByAPIServer")  # kstatus: Failed


def test_a_refused_status_write_goes_to_the_work_queue() -> None:
    gw = world()
    refuse(gw, "patch_status")
    with pytest.raises(GatewayError):
        reconcile(gw)


def test_what_a_failed_step_knew_is_kept_in_status() -> None:
    gw = world()
    reconcile(gw)
    before = status(gw)
    refuse(gw, "read_secret")
    reconcile(gw)
    after = status(gw)
    assert after["secrets"] == before["secrets"]  # fingerprints and revisions survive the failure
    assert after["tokens"] == before["tokens"] and after["nextRenewal"] == before["nextRenewal"]
    assert condition(gw, conditions.KEYS_READY) == ("False", "Forbidden")
    assert condition(gw, conditions.TOKENS_READY) == ("Unknown", "KeysUnavailable")


# -- the step runner ----------------------------------------------------------------------------------

@dataclass
class Scripted(BaseStep):
    """A step that does what the test says."""

    name: str = "a"
    condition: str = conditions.KEYS_READY
    needs: tuple[str, ...] = ()
    fields: tuple[str, ...] = ("a",)
    does: Callable[[], Outcome] = field(default=lambda: Outcome(status={"a": 1}, product="made"))

    def __post_init__(self) -> None:
        super().__init__(FakeGateway())

    def run(self, ctx: Context) -> Outcome:
        return self.does()


def boom(exc: BaseException) -> Callable[[], Outcome]:
    def run() -> Outcome:
        raise exc
    return run


def ctx() -> Context:
    return Context({"metadata": {"namespace": NS, "name": "px"}, "status": {"a": "old", "b": "old"}},
                   parse_spec({}), NOW)


def test_a_step_that_raises_becomes_its_condition_and_later_steps_still_run() -> None:
    c = ctx()
    report = run_steps([Scripted(does=boom(RecursionError("maximum recursion depth"))),
                        Scripted(name="b", condition=conditions.OIDC_READY, fields=("b",),
                                 does=lambda: Outcome(status={"b": 2}))], c, KEY)
    assert report.failed == ["a"]
    [cond] = report.conditions
    assert (cond.type, cond.status, cond.reason) == (conditions.KEYS_READY, False, "InternalError")
    assert cond.message == "the a step failed: RecursionError: maximum recursion depth"
    assert report.status == {"a": "old", "b": 2}


def test_a_step_whose_needs_failed_is_blocked_and_keeps_its_fields() -> None:
    report = run_steps([Scripted(does=boom(ValueError("x"))),
                        Scripted(name="tokens", condition=conditions.TOKENS_READY, needs=("a",), fields=("b",))],
                       ctx(), KEY)
    assert report.failed == ["a", "tokens"]
    assert [(c.type, c.status) for c in report.conditions] == [(conditions.KEYS_READY, False),
                                                               (conditions.TOKENS_READY, None)]
    assert report.status == {"a": "old", "b": "old"}


def test_products_reach_later_steps_and_lists_add_up() -> None:
    c = ctx()
    seen: list[Any] = []

    def second() -> Outcome:
        seen.append(c.product("a"))
        return Outcome(status={"rows": [2]})

    report = run_steps([Scripted(does=lambda: Outcome(status={"rows": [1]}, product="made")),
                        Scripted(name="b", needs=("a",), does=second)], c, KEY)
    assert seen == ["made"] and report.status == {"rows": [1, 2]}


def test_steps_of_one_at_once_run_run_together_and_report_in_table_order() -> None:
    # "b" waits until "c" has started: run one after another, it would wait out its timeout and fail.
    c_started = threading.Event()

    def b() -> Outcome:
        assert c_started.wait(5), "b and c did not run at once"
        return Outcome(status={"b": 2})

    def c() -> Outcome:
        c_started.set()
        return Outcome(status={"rows": [3]})

    steps = [Scripted(does=lambda: Outcome(status={"rows": [1]}, product="made")),
             Scripted(name="b", needs=("a",), condition=conditions.OIDC_READY, fields=("b",), does=b),
             Scripted(name="c", needs=("a",), condition=conditions.PARAMETERS_RENDERED, fields=("c",), does=c)]
    report = run_steps(steps, ctx(), KEY, at_once=(frozenset({"b", "c"}),))
    assert report.failed == [] and report.status == {"rows": [1, 3], "b": 2}
    # One after another without the run (what a burst does: fanout overlaps only a reconcile alone).
    c_started.set()
    assert run_steps(steps, ctx(), KEY, at_once=()).status == {"rows": [1, 3], "b": 2}


def test_a_transient_failure_in_an_at_once_run_is_raised_after_the_others_ended() -> None:
    ran: list[str] = []

    def later() -> Outcome:
        ran.append("c")
        return Outcome()

    with pytest.raises(GatewayError):
        run_steps([Scripted(does=boom(GatewayError("create secret x: 503", 503))),
                   Scripted(name="c", does=later)], ctx(), KEY, at_once=(frozenset({"a", "c"}),))
    assert ran == ["c"]


def test_a_blocked_step_in_an_at_once_run_keeps_its_place() -> None:
    report = run_steps([Scripted(does=boom(ValueError("x"))),
                        Scripted(name="b", needs=("a",), condition=conditions.OIDC_READY, fields=("b",)),
                        Scripted(name="c", condition=conditions.PARAMETERS_RENDERED, fields=("c",),
                                 does=lambda: Outcome(conditions=[Condition(conditions.PARAMETERS_RENDERED, True,
                                                                            "Rendered", "ok")]))],
                       ctx(), KEY, at_once=(frozenset({"b", "c"}),))
    assert report.failed == ["a", "b"]
    assert [c.type for c in report.conditions] == [conditions.KEYS_READY, conditions.OIDC_READY,
                                                   conditions.PARAMETERS_RENDERED]


def test_the_tables_at_once_runs_are_neighbours_that_need_none_of_each_other() -> None:
    steps = Reconciler(FakeGateway()).steps
    names = [s.name for s in steps]
    for run in AT_ONCE:
        at = sorted(names.index(n) for n in run)
        assert at == list(range(at[0], at[0] + len(run))), f"{sorted(run)} are not neighbours in the table"
        for step in steps:
            if step.name in run:
                assert not set(step.needs) & run, f"{step.name} needs a step of its own run"


@pytest.mark.parametrize("status_code", [0, 404, 409, 429, 500, 503])
def test_transient_api_errors_are_left_to_the_work_queue(status_code: int) -> None:
    with pytest.raises(GatewayError):
        run_steps([Scripted(does=boom(GatewayError(f"get secret x: {status_code}", status_code)))], ctx(), KEY)


def test_namespace_termination_is_not_a_condition() -> None:
    with pytest.raises(NamespaceTerminating):
        run_steps([Scripted(does=boom(NamespaceTerminating("create secret x: 403 being terminated", 403)))],
                  ctx(), KEY)


@pytest.mark.parametrize("status_code, reason", [(400, "RejectedByAPIServer"), (422, "RejectedByAPIServer"),
                                                 (403, "Forbidden"), (413, "RejectedByAPIServer")])
def test_a_refused_request_is_said_on_the_object(status_code: int, reason: str) -> None:
    error = GatewayError(f"apply metadata of secret v: {status_code} error decoding patch", status_code)
    report = run_steps([Scripted(does=boom(error))], ctx(), KEY)
    [cond] = report.conditions
    assert cond.reason == reason and cond.status is False and "apply metadata of secret v" in cond.message


def test_the_message_is_one_bounded_line() -> None:
    text = describe(ValueError("line one\nline two " + "x" * 1000))
    assert "\n" not in text and text.startswith("ValueError: line one line two") and len(text) < 320
    assert describe(KeyError()) == "KeyError"


# -- changes to a running StorageCluster wait for approval ----------------------------------------------

SHARED = b"s" * 64
RUNNING: dict[str, Any] = {**STORAGECLUSTER, "spec": {"security": {"enabled": True, "auth": {
    "guestAccess": "Enabled",
    "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": "px-shared-secret"}}}},
    "status": {"phase": "Running"}}
NEW_ISSUER: dict[str, Any] = {**SPEC, "selfSigned": {**SPEC["selfSigned"], "issuer": "pxsec.example"},
                              "storageCluster": {"name": "px-cluster", "apply": True}}


def hand_made_token(issuer: str = "operator.portworx.io") -> bytes:
    import jwt

    iat = int(NOW.timestamp()) - 600
    claims = {"iss": issuer, "sub": "ci@x", "email": "ci@x", "name": "ci", "roles": ["system.user"],
              "groups": ["ci"], "iat": iat, "exp": iat + 86400}
    return jwt.encode(claims, SHARED, algorithm="HS256").encode()


def running_world(spec: Mapping[str, Any] = NEW_ISSUER, sc: Mapping[str, Any] = RUNNING) -> FakeGateway:
    gw = world(spec)
    gw.put("StorageCluster", NS, "px-cluster", sc)
    gw.put_secret(NS, "px-shared-secret", {"shared-secret": SHARED},
                  annotations={"stork.libopenstorage.org/skip-resource": "true"})
    gw.put_secret(NS, "ci-token", {"auth-token": hand_made_token()})
    return gw


def sc_writes(gw: FakeGateway) -> list[tuple[str, str, str]]:
    return [w for w in gw.writes if w[1] == "StorageCluster"]


def approve(gw: FakeGateway, change: str | None) -> None:
    gw.objects[("PxSecurity", NS, "px")]["spec"]["storageCluster"]["approvedChange"] = change


def test_a_new_issuer_on_a_running_cluster_waits_for_approval_and_says_what_it_would_do() -> None:
    gw = running_world()
    reconcile(gw)
    assert sc_writes(gw) == []
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("False", "AwaitingApproval")
    pending = status(gw)["pendingChange"]
    assert [e["type"] for e in pending["effects"]] == ["RollingRestart", "TokensInvalidated"]
    assert "operator.portworx.io → pxsec.example" in pending["effects"][0]["message"]
    assert pending["effects"][1]["message"] == (
        "2 token(s) signed under the old issuer would be rejected: ci-token (made by someone else: it breaks "
        "until re-made), px-ops-token (minted here: re-minted at once)")
    # Until approved, ours are minted under the issuer Portworx trusts now, and it accepts them.
    assert condition(gw, conditions.TOKENS_ACCEPTED) == ("True", "Accepted")
    assert pending["since"] == "2030-05-17T12:00:00Z"
    message = next(c["message"] for c in status(gw)["conditions"] if c["type"] == conditions.STORAGECLUSTER_APPLIED)
    assert message.endswith(f"approve: set spec.storageCluster.approvedChange: {pending['id']}")
    assert reasons(gw).count("AwaitingApproval") == 1  # the condition's Warning Event, once
    reconcile(gw)  # still waiting: nothing new to write or say
    assert gw.writes == [] and gw.events == []


def test_approving_applies_exactly_that_change_in_one_write_and_the_next_needs_its_own() -> None:
    gw = running_world()
    reconcile(gw)
    first = status(gw)["pendingChange"]["id"]
    approve(gw, first)
    reconcile(gw)
    assert sc_writes(gw) == [("patch", "StorageCluster", "px-cluster")]
    assert "ChangeApplied" in reasons(gw) and status(gw).get("pendingChange") is None
    sc = gw.objects[("StorageCluster", NS, "px-cluster")]
    assert sc["spec"]["security"]["auth"]["selfSigned"]["issuer"] == "pxsec.example"
    gw.objects[("StorageCluster", NS, "px-cluster")]["status"] = {"phase": "Running"}
    reconcile(gw)  # the look after the write: settled
    gw.objects[("PxSecurity", NS, "px")]["spec"]["selfSigned"]["issuer"] = "pxsec-2.example"
    reconcile(gw)
    assert sc_writes(gw) == []
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("False", "AwaitingApproval")
    second = status(gw)["pendingChange"]["id"]
    assert second != first
    assert any(f"approvedChange {first} approves another change, not this one" in e.message for e in gw.events)


def test_changepolicy_automatic_applies_at_once_and_says_what_it_did() -> None:
    spec = {**NEW_ISSUER, "storageCluster": {"name": "px-cluster", "apply": True, "changePolicy": "Automatic"}}
    gw = running_world(spec)
    reconcile(gw)
    assert sc_writes(gw) == [("patch", "StorageCluster", "px-cluster")]
    applied = next(e for e in gw.events if e.reason == "ChangeApplied")
    assert "changePolicy Automatic" in applied.message and "ci-token" in applied.message


def test_a_fresh_install_is_never_gated() -> None:
    fresh = {**RUNNING, "status": {"phase": "Initializing"}}
    gw = running_world(sc=fresh)
    reconcile(gw)
    assert sc_writes(gw) == [("patch", "StorageCluster", "px-cluster")]
    assert "ChangeApplied" not in reasons(gw)


def test_storage_nodes_mean_portworx_runs_whatever_the_phase() -> None:
    gw = running_world(sc={**RUNNING, "status": {}})
    for node in ("node-a", "node-b", "node-c"):
        gw.put("StorageNode", NS, node, {"metadata": {}})
    reconcile(gw)
    assert sc_writes(gw) == []
    assert "would restart all 3 Portworx pods" in status(gw)["pendingChange"]["effects"][0]["message"]


def test_a_change_that_restarts_nothing_is_applied_on_a_running_cluster() -> None:
    spec = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True, "changePolicy": "Automatic"}}
    gw = running_world(spec)
    reconcile(gw)  # our settings in place (a restart, allowed)
    cr = gw.objects[("PxSecurity", NS, "px")]
    cr["spec"]["storageCluster"]["changePolicy"] = "Manual"
    cr["spec"]["guestAccess"] = "Disabled"  # restarts nothing, rejects no token
    reconcile(gw)
    assert sc_writes(gw) == [("patch", "StorageCluster", "px-cluster")]
    assert condition(gw, conditions.STORAGECLUSTER_APPLIED) == ("True", "Applied")
    assert "ChangeApplied" not in reasons(gw) and "ChangeAwaitingApproval" not in reasons(gw)


# -- TokensAccepted judges with the keys the StorageCluster actually mounts -----------------------------

def test_tokens_accepted_uses_the_public_key_the_storagecluster_mounts() -> None:
    from pxsec import keymaterial

    spec = {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {}, "rsa": {"secretName": "px-jwt-rsa"}},
            "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"],
                        "signingKey": "RSA"}],
            "storageCluster": {"name": "px-cluster"}}  # apply: false, the StorageCluster is someone else's
    mounts = {"env": [{"name": "PORTWORX_AUTH_JWT_RSA_PUBKEY", "value": "/etc/keys/rsa/public.pem"}],
              "volumes": [{"name": "k", "mountPath": "/etc/keys/rsa",
                           "secret": {"secretName": "other-rsa", "items": [{"key": "pub", "path": "public.pem"}]}}]}
    gw = running_world(spec, sc={**RUNNING, "spec": {**RUNNING["spec"], **mounts}})
    _, other_public = keymaterial.generate_rsa(2048)
    gw.put_secret(NS, "other-rsa", {"pub": other_public})
    reconcile(gw)
    status_, reason = condition(gw, conditions.TOKENS_ACCEPTED)
    message = next(c["message"] for c in status(gw)["conditions"] if c["type"] == conditions.TOKENS_ACCEPTED)
    assert (status_, reason) == ("False", "WouldBeRejected")
    assert "RSA key from Secret other-rsa key pub" in message and "px-ops-token" in message
    # The same key mounted: accepted, and the message says where the key came from.
    gw.put_secret(NS, "other-rsa", {"pub": gw.data(NS, "px-jwt-rsa")["public.pem"]})
    reconcile(gw)
    assert condition(gw, conditions.TOKENS_ACCEPTED) == ("True", "Accepted")


def test_an_rsa_token_is_rejected_when_the_storagecluster_mounts_no_rsa_key() -> None:
    spec = {"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {}, "rsa": {"secretName": "px-jwt-rsa"}},
            "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"], "groups": ["*"],
                        "signingKey": "RSA"}],
            "storageCluster": {"name": "px-cluster"}}
    gw = running_world(spec)
    reconcile(gw)
    assert condition(gw, conditions.TOKENS_ACCEPTED) == ("False", "WouldBeRejected")


def test_the_status_patch_removes_what_a_nested_object_no_longer_has_and_leaves_other_fields() -> None:
    """A merge patch of the new status alone keeps stale nested keys (a node that rejected a key stays
    listed forever, and the reconcile writes the same status again and again); kopf's own fields stay."""
    from pxsec.controller.reconciler import merge_diff, status_patch

    old = {"nodes": {"acknowledged": "2/3", "notAcknowledging": [{"node": "n2"}], "keys": ["k"]},
           "storageCluster": {"name": "px", "deleting": True}, "kopf": {"progress": {}}, "issuers": "self-signed"}
    new = {"nodes": {"acknowledged": "3/3", "keys": ["k"]}, "storageCluster": {"name": "px"}, "issuers": "self-signed"}
    patch = status_patch(old, new)
    assert patch == {"nodes": {"acknowledged": "3/3", "notAcknowledging": None}, "storageCluster": {"deleting": None}}
    from pxsec.scmerge import apply_merge_patch
    assert apply_merge_patch(old, patch) == {**new, "kopf": {"progress": {}}}
    assert merge_diff({"a": 1}, None) is None and merge_diff(None, {"a": 1}) == {"a": 1}


# -- rotating the shared secret (on demand, through approval) ---------------------------------------------

HS_SPEC: dict[str, Any] = {**SPEC, "storageCluster": {"name": "px-cluster", "apply": True}, "rotation": {},
                           "tokens": [*SPEC["tokens"], {"secretName": "px-hs-token", "roles": ["system.user"],
                                                        "signingKey": "SharedSecret"}]}


def hs_signed_with(gw: FakeGateway, secret: str) -> bool:
    import jwt

    token = gw.data(NS, "px-hs-token")["auth-token"].decode()
    try:
        jwt.decode(token, gw.data(NS, secret)["shared-secret"], algorithms=["HS256"],
                   options={"verify_exp": False, "verify_iat": False})
    except jwt.InvalidTokenError:
        return False
    return True


def settled_running_world(policy: str) -> FakeGateway:
    gw = running_world({**HS_SPEC, "deletionPolicy": policy})
    reconcile(gw)
    approve(gw, status(gw)["pendingChange"]["id"])  # the ECDSA key mounted: settled before the rotation
    reconcile(gw)
    reconcile(gw)
    assert status(gw).get("pendingChange") is None and hs_signed_with(gw, "px-shared-secret")
    return gw


def annotate(gw: FakeGateway, name: str, value: str) -> None:
    gw.objects[("PxSecurity", NS, "px")]["metadata"].setdefault("annotations", {})[name] = value


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_a_shared_secret_rotation_switches_through_approval_and_re_mints_in_that_reconcile(policy: str) -> None:
    gw = settled_running_world(policy)
    annotate(gw, "pxsec.dev/rotate-shared-secret", "2031-01")
    outcome = reconcile(gw)
    assert "SharedSecretRotationStarted" in reasons(gw)
    assert outcome.outcome.requeue_after is not None and outcome.outcome.requeue_after <= 1  # looked at again soon
    reconcile(gw)
    shared = status(gw)["rotation"]["sharedSecret"]
    assert shared["phase"] == "Switching" and shared["to"] == "px-shared-secret-r1"
    assert "waits for approval" in shared["message"] and "until the rolling restart ends" in shared["message"]
    assert gw.data(NS, "px-shared-secret-r1")["shared-secret"] != SHARED  # a new Secret, generated
    assert sc_writes(gw) == [] and hs_signed_with(gw, "px-shared-secret")  # until approved: the old secret
    effects = [e["type"] for e in status(gw)["pendingChange"]["effects"]]
    assert "RollingRestart" in effects and "TokensInvalidated" in effects

    approve(gw, status(gw)["pendingChange"]["id"])
    gw.clear_writes()
    reconcile(gw, clear=False)
    sc = gw.objects[("StorageCluster", NS, "px-cluster")]
    assert sc["spec"]["security"]["auth"]["selfSigned"]["sharedSecret"] == "px-shared-secret-r1"
    assert ("patch", "Secret", "px-hs-token") in gw.writes and hs_signed_with(gw, "px-shared-secret-r1")
    sc["status"]["conditions"] = [{"type": "Update", "status": "InProgress"}]
    reconcile(gw)
    assert status(gw)["rotation"]["sharedSecret"]["phase"] == "Switching"
    assert "window open since" in status(gw)["rotation"]["sharedSecret"]["message"]
    sc["status"]["conditions"] = [{"type": "Update", "status": "Completed"}]
    reconcile(gw)
    shared = status(gw)["rotation"]["sharedSecret"]
    assert shared["phase"] == "Completed" and "px-shared-secret-r1" in shared["message"]
    assert "SharedSecretRotationCompleted" in reasons(gw)
    # Brought beforehand (adopted, never written): kept under either policy, and said so once.
    kept = next(e for e in gw.events if e.reason == "ReplacedKeyKept")
    assert ("deletionPolicy Retain" if policy == "Retain" else "not made by this PxSecurity") in kept.message
    assert gw.data(NS, "px-shared-secret")["shared-secret"] == SHARED
    reconcile(gw)  # the look the completion asked for
    reconcile(gw)
    assert gw.writes == [] and gw.events == []  # settled: said once

    # A second rotation drops px-shared-secret-r1, which this PxSecurity made (our owner reference under
    # Delete): deleted once no pod uses it under Delete, kept under Retain.
    annotate(gw, "pxsec.dev/rotate-shared-secret", "2031-02")
    for _ in range(3):
        reconcile(gw)
    approve(gw, status(gw)["pendingChange"]["id"])
    for _ in range(3):
        reconcile(gw)
    assert status(gw)["rotation"]["sharedSecret"]["to"] == "px-shared-secret-r2"
    assert hs_signed_with(gw, "px-shared-secret-r2")
    if policy == "Delete":
        assert gw.secret(NS, "px-shared-secret-r1") is None
    else:
        assert gw.secret(NS, "px-shared-secret-r1") is not None


def test_without_the_delete_permission_a_replaced_key_is_kept_and_said() -> None:
    gw = settled_running_world("Delete")
    gw.may_delete = False
    said = []
    for value in ("1", "2"):  # the second rotation drops px-shared-secret-r1, which this PxSecurity made
        annotate(gw, "pxsec.dev/rotate-shared-secret", value)
        for i in range(6):
            if i == 3:
                approve(gw, status(gw)["pendingChange"]["id"])
            reconcile(gw)
            said += [e.message for e in gw.events if e.reason == "ReplacedKeyKept"]
    assert gw.secret(NS, "px-shared-secret-r1") is not None and gw.delete_attempts == 1
    assert any("px-shared-secret-r1" in m and "may not delete Secrets" in m for m in said), said
    assert status(gw)["rotation"]["sharedSecret"]["to"] == "px-shared-secret-r2"


def test_removing_spec_rotation_keeps_the_secrets_rotations_made() -> None:
    gw = settled_running_world("Retain")
    annotate(gw, "pxsec.dev/rotate-shared-secret", "1")
    reconcile(gw)
    approve(gw, status(gw)["pendingChange"]["id"])
    reconcile(gw)
    reconcile(gw)
    del gw.objects[("PxSecurity", NS, "px")]["spec"]["rotation"]
    annotate(gw, "pxsec.dev/rotate-shared-secret", "2")  # without spec.rotation: starts nothing
    reconcile(gw)
    sc = gw.objects[("StorageCluster", NS, "px-cluster")]
    assert sc["spec"]["security"]["auth"]["selfSigned"]["sharedSecret"] == "px-shared-secret-r1"
    assert sc_writes(gw) == [] and gw.secret(NS, "px-shared-secret-r2") is None


# -- asking the Portworx nodes: answers reused while nothing changed -----------------------------------------

class CountingProber:
    """Every node accepts every canary; the questions are recorded."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def probe(self, asks: Any, **tls: Any) -> list[Any]:
        from pxsec.nodecheck import Outcome as Answer
        from pxsec.nodecheck import Probe

        self.asked += [(node, key) for node, _, key, _ in asks]
        return [Probe(node, key, Answer.ACCEPTED) for node, _, key, _ in asks]


def storage_node(gw: FakeGateway, name: str, ip: str) -> None:
    gw.put("StorageNode", NS, name, {"status": {"phase": "Online", "network": {"mgmtIP": ip}}})


def test_a_reconcile_woken_for_something_else_asks_the_nodes_nothing_new() -> None:
    gw = running_world(TARGETED)
    storage_node(gw, "node-a", "10.0.0.1")
    storage_node(gw, "node-b", "10.0.0.2")
    prober = CountingProber()
    now = [NOW]
    reconciler = Reconciler(gw, clock=lambda: now[0], prober=NoNetwork(), node_prober=prober)  # type: ignore[arg-type]
    reconciler.reconcile(KEY)
    assert sorted(prober.asked) == [("node-a", "HS256 (Secret px-shared-secret)"),
                                    ("node-b", "HS256 (Secret px-shared-secret)")]
    assert status(gw)["nodes"]["acknowledged"] == "2/2"
    prober.asked.clear()
    now[0] += dt.timedelta(seconds=10)
    reconciler.reconcile(KEY)
    assert prober.asked == [] and status(gw)["nodes"]["acknowledged"] == "2/2"  # the answers of 10 s ago
    storage_node(gw, "node-b", "10.0.0.3")  # a node that changed is asked again, the other is not
    reconciler.reconcile(KEY)
    assert prober.asked == [("node-b", "HS256 (Secret px-shared-secret)")]
    prober.asked.clear()
    now[0] += dt.timedelta(seconds=60)  # the timed recheck: everyone again
    reconciler.reconcile(KEY)
    assert sorted(node for node, _ in prober.asked) == ["node-a", "node-b"]


# -- tenants ------------------------------------------------------------------------------------------------

TENANTS: dict[str, Any] = {**SPEC, "tenants": [
    {"name": "team-a", "namespaceSelector": {"matchLabels": {"team": "a"}}, "groups": ["team-a"]},
    {"name": "team-b", "namespaceSelector": {"matchLabels": {"team": "b"}}, "signingKey": "ECDSA",
     "onNamespaceExit": "Delete"}]}


def test_tenant_tokens_are_minted_once_then_cost_nothing_and_leave_per_their_policy() -> None:
    import jwt

    gw = world(TENANTS)
    for name, team in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("none", "c"), (NS, "a")):
        gw.put("Namespace", "", name, {"metadata": {"labels": {"team": team}}})
    reconcile(gw)
    tenant_writes = sorted(w for w in gw.writes if w[1] == "Secret" and w[2] == "px-user-token")
    assert len(tenant_writes) == 3 and gw.secret("none", "px-user-token") is None
    assert gw.secret(NS, "px-user-token") is None  # the PxSecurity's own namespace: never
    token = gw.data("a1", "px-user-token")["auth-token"].decode()
    claims = jwt.decode(token, gw.data(NS, "px-shared-secret")["shared-secret"], algorithms=["HS256"],
                        options={"verify_exp": False, "verify_iat": False})  # minted at NOW (2030)
    assert (claims["sub"], claims["groups"], claims["roles"]) == ("team-a", ["team-a"], ["system.user"])
    assert jwt.get_unverified_header(gw.data("b1", "px-user-token")["auth-token"].decode())["alg"] == "ES256"
    meta = gw.secret("a1", "px-user-token")["metadata"]
    assert meta["annotations"]["stork.libopenstorage.org/skip-resource"] == "true"
    assert meta["labels"]["pxsec.dev/tenant"] == "team-a"
    rows = {r["name"]: r for r in status(gw)["tenants"]}
    assert (rows["team-a"]["selected"], rows["team-a"]["ready"], rows["team-b"]["ready"]) == (2, 2, 1)
    assert "never written" in rows["team-a"]["problems"][0]
    assert "TenantTokensWritten" in reasons(gw)

    reconcile(gw)
    assert not [w for w in gw.writes if w[0] != "get"] and gw.events == []  # steady: nothing

    gw.put("Namespace", "", "b1", {"metadata": {"labels": {}}})  # b1 leaves team-b (Delete)
    gw.put("Namespace", "", "a2", {"metadata": {"labels": {}}})  # a2 leaves team-a (Orphan)
    reconcile(gw)
    assert gw.secret("b1", "px-user-token") is None and gw.secret("a2", "px-user-token") is not None


def test_without_the_delete_permission_a_leaving_tenant_secret_is_kept_said_and_not_asked_for_each_pass() -> None:
    gw = world(TENANTS)
    gw.put("Namespace", "", "b1", {"metadata": {"labels": {"team": "b"}}})
    now = [NOW]
    reconciler = Reconciler(gw, clock=lambda: now[0], prober=NoNetwork())  # type: ignore[arg-type]
    reconciler.reconcile(KEY)
    gw.may_delete = False
    gw.put("Namespace", "", "b1", {"metadata": {"labels": {}}})
    gw.clear_writes()
    reconciler.reconcile(KEY)
    assert gw.writes.count(("delete", "Secret", "px-user-token")) == 0  # refused: nothing deleted
    assert gw.secret("b1", "px-user-token") is not None
    problems = next(r for r in status(gw)["tenants"] if r["name"] == "team-b")["problems"]
    assert "the operator may not delete Secrets" in problems[0] and "manifests/optional/delete-secrets" in problems[0]
    assert gw.delete_attempts == 1
    now[0] += dt.timedelta(minutes=1)
    reconciler.reconcile(KEY)  # within the pause: said again, not asked again
    assert status(gw)["tenants"][1]["problems"] == problems and gw.delete_attempts == 1
    gw.may_delete = True  # granted: tried again after the pause
    now[0] += dt.timedelta(minutes=10)
    reconciler.reconcile(KEY)
    assert gw.secret("b1", "px-user-token") is None
