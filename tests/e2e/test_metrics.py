"""The Prometheus endpoint of the operator as manifests/cluster-wide deploys it (its --metrics-bind-address,
moved to a free loopback port), scraped while things happen, on a control plane of its own:

- reconciles by result and the duration histogram count up; the work queue drains to 0;
- pxsec_ready, and the per-resource gauges equal what status says: token expiry (status.tokens[].expiresAt),
  key Secret revision (status.secrets[].revision), OIDC probe result per provider (OIDCReady);
- they move: a lost key Secret raises its revision and re-mints the token (later expiry), a broken
  provider turns its gauge to 0 with the reason, a deleted resource takes its series with it;
- nothing secret is in the endpoint's output.

The standby replica's gauges (pxsec_leader 0, a full queue) are checked in tests/e2e/test_ha.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster
from pxsec.devcluster.controlplane import OPERATOR_USER, free_port
from tests.e2e.conftest import _needles, apply, assert_no_leaks, install_ca, oidc_spec, secret_values, wait_ready
from tests.support.audit import AuditWrite, audit_log, now, requests
from tests.support.helpers import get_json, wait_for
from tests.support.installed import (
    ROOT,
    Deployed,
    Metrics,
    deployment,
    private_cluster,
    raw_metrics,
    run_as_deployment,
    wait_metric,
)
from tests.support.oidc_provider import OIDCProvider

pytestmark = pytest.mark.e2e

NS = "metrics"
NAME = "px-metrics"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Deployed]]:
    work = tmp_path_factory.mktemp("metrics")
    with private_cluster() as cluster:
        cluster.install_crds()
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "tests" / "fixtures" / "storagecluster-crd.yaml"))
        cluster.wait_established("storageclusters.core.libopenstorage.org")
        cluster.install_kustomization(ROOT / "manifests" / "cluster-wide")
        cluster.kubectl("create", "namespace", NS)
        deployed = run_as_deployment(cluster, deployment(cluster, "pxsec-system", "px-security-operator"), work, "op")
        try:
            yield cluster, deployed
            assert_no_leaks(cluster, NS, deployed.process.output())
        finally:
            deployed.process.stop()
            print(f"--- operator log (tail) ---\n{deployed.process.output()[-5000:]}")


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def status(cluster: Cluster) -> dict[str, Any]:
    return dict(get_json(cluster, "pxsecurity", NAME, "-n", NS).get("status") or {})


def ours(metrics: Metrics, name: str) -> dict[str, float]:
    """The series of `name` for our resource, keyed by their other labels."""
    out = {}
    for labels, value in metrics.series(name).items():
        d = dict(labels)
        if d.pop("namespace") == NS and d.pop("pxsecurity") == NAME:
            out[",".join(f"{k}={v}" for k, v in sorted(d.items()))] = value
    return out


def settled(cluster: Cluster, deployed: Deployed, check: Any, what: str) -> Metrics:
    """Scrape until `check(status, metrics)` holds (the status write and the metrics land together)."""
    def attempt() -> Metrics | None:
        m = deployed.metrics()
        return m if check(status(cluster), m) else None

    result: Metrics = wait_for(attempt, 90, what=what)
    return result


def test_metrics_follow_the_reconciles(metered: tuple[Cluster, Deployed], oidc_provider: OIDCProvider) -> None:
    cluster, deployed = metered
    start: Metrics = wait_metric(deployed, "pxsec_leader", 1, timeout=30)
    assert {r: start.value("pxsec_reconciles_total", result=r) for r in ("ready", "not_ready", "error", "skipped")} \
        == {"ready": 0, "not_ready": 0, "error": 0, "skipped": 0}
    assert start.value("pxsec_reconcile_duration_seconds_count") == 0
    assert start.value("process_resident_memory_bytes")

    install_ca(cluster, NS, oidc_provider)
    doc = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": NAME},
           "spec": {"oidc": oidc_spec(oidc_provider),
                    "selfSigned": {"issuer": "operator.portworx.io", "tokenLifetime": "24h", "sharedSecret": {}},
                    "tokens": [{"secretName": "px-admin-token", "roles": ["system.admin"], "groups": ["*"]}]}}
    apply(cluster, NS, doc)
    wait_ready(cluster, NS, NAME)

    def matches(st: dict[str, Any], m: Metrics) -> bool:
        tokens = {f"secret={t['secretName']}": ts(t["expiresAt"]) for t in st.get("tokens") or [] if "expiresAt" in t}
        revisions = {f"secret={s['name']}": float(s["revision"]) for s in st.get("secrets") or []}
        return bool(tokens) and ours(m, "pxsec_token_expiry_timestamp_seconds") == tokens \
            and ours(m, "pxsec_key_secret_revision") == revisions

    first = settled(cluster, deployed, matches, "gauges equal to status")
    st = status(cluster)
    assert ours(first, "pxsec_ready") == {"": 1}
    assert ours(first, "pxsec_oidc_provider_ready") == {f"issuer={oidc_provider.issuer},reason=ProviderReady": 1}
    assert set(ours(first, "pxsec_key_secret_revision")) == {"secret=px-shared-secret", "secret=px-system-secrets"}
    assert first.value("pxsec_reconciles_total", result="ready")
    assert first.value("pxsec_reconcile_duration_seconds_count")
    assert first.value("pxsec_workqueue_depth") == 0
    expiry = ours(first, "pxsec_token_expiry_timestamp_seconds")["secret=px-admin-token"]

    # A lost key: a new revision (the token signed with the old key is re-minted; status and gauge agree).
    cluster.kubectl("delete", "secret", "px-shared-secret", "-n", NS)
    lost = settled(cluster, deployed, lambda s, m: matches(s, m) and any(
        x["name"] == "px-shared-secret" and x["revision"] == 2 for x in s.get("secrets") or []), "revision 2")
    assert ours(lost, "pxsec_key_secret_revision") == {"secret=px-shared-secret": 2, "secret=px-system-secrets": 1}

    # A shorter lifetime: the token is re-minted at once and its expiry moves about 12 hours earlier.
    cluster.kubectl("patch", "pxsecurity", NAME, "-n", NS, "--type=merge",
                    "-p", '{"spec":{"selfSigned":{"tokenLifetime":"12h"}}}')
    shorter = settled(cluster, deployed, lambda s, m: matches(s, m) and ours(
        m, "pxsec_token_expiry_timestamp_seconds")["secret=px-admin-token"] < expiry - 11 * 3600, "expiry 12h")
    assert status(cluster)["tokens"] != st["tokens"]
    lost = shorter

    # A provider that cannot be reached: its gauge is 0 with the reason; the old provider's series is gone.
    broken = f"https://127.0.0.1:{free_port()}/realms/px"
    before = lost.value("pxsec_reconciles_total", result="not_ready") or 0
    cluster.kubectl("patch", "pxsecurity", NAME, "-n", NS, "--type=merge",
                    "-p", f'{{"spec":{{"oidc":{{"issuer":"{broken}"}}}}}}')
    failing = settled(cluster, deployed, lambda s, m: ours(m, "pxsec_ready") == {"": 0} and any(
        k.startswith(f"issuer={broken},") for k in ours(m, "pxsec_oidc_provider_ready")), "the probe failing")
    assert ours(failing, "pxsec_oidc_provider_ready") == {f"issuer={broken},reason=DiscoveryFailed": 0}
    assert (failing.value("pxsec_reconciles_total", result="not_ready") or 0) > before

    # Nothing secret anywhere in the endpoint's output.
    text = raw_metrics(str(deployed.metrics_url))
    for ref, value in secret_values(cluster, NS).items():
        for needle in _needles(value):
            assert needle not in text, f"the value of Secret {ref} is in the metrics"

    # Deleted: its series go with it.
    cluster.kubectl("delete", "pxsecurity", NAME, "-n", NS)
    per_resource = ("pxsec_ready", "pxsec_token_expiry_timestamp_seconds", "pxsec_key_secret_revision",
                    "pxsec_oidc_provider_ready")

    def without_series() -> Metrics | None:
        m = deployed.metrics()
        return None if any(ours(m, n) for n in per_resource) else m

    gone: Metrics = wait_for(without_series, 30, what="the series gone")
    assert gone.value("pxsec_reconciles_total", result="error") == 0


def test_the_endpoint_is_where_the_deployment_says(metered: tuple[Cluster, Deployed], tmp_path: Path) -> None:
    cluster, deployed = metered
    container = deployment(cluster, "pxsec-system", "px-security-operator")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-bind-address=0.0.0.0:8081" in container["args"]
    assert {"name": "metrics", "containerPort": 8081} in [
        {k: p[k] for k in ("name", "containerPort")} for p in container["ports"]]
    service = get_json(cluster, "service", "px-security-operator-metrics", "-n", "pxsec-system")
    assert service["spec"]["ports"][0]["port"] == 8081
    assert "# TYPE pxsec_reconcile_duration_seconds histogram" in raw_metrics(str(deployed.metrics_url))


def reconciles(deployed: Deployed) -> float:
    """Every reconcile the operator finished (whatever its result)."""
    metrics = deployed.metrics()
    return sum(metrics.value("pxsec_reconciles_total", result=r) or 0 for r in ("ready", "not_ready", "skipped"))


def requests_of_reconcile(cluster: Cluster, deployed: Deployed, log: Path, ns: str,
                          change: list[str]) -> list[AuditWrite]:
    """The operator's requests in `ns` (audit log) for the reconcile that `change` (a kubectl command) wakes:
    waits until no reconcile has run for 2 s, makes the change, waits for the next reconcile to finish."""
    seen = {"value": -1.0, "since": 0.0}

    def still() -> float | None:
        value = reconciles(deployed)
        if value != seen["value"]:
            seen.update(value=value, since=now().timestamp())
            return None
        return value if now().timestamp() - seen["since"] >= 2 else None

    before: float = wait_for(still, 30, what="no reconcile running", interval=0.25)
    start = now()
    cluster.kubectl(*change)
    wait_for(lambda: reconciles(deployed) > before, 30, what="the reconcile after the change")
    return list(requests(log, namespace=ns, since=start, users={OPERATOR_USER}))


def test_a_reconcile_with_nothing_to_do_makes_no_request(metered: tuple[Cluster, Deployed]) -> None:
    """Counted in the audit log, with the reconcile counter telling when the reconcile ran: a label on the
    PxSecurity (nothing to do) costs no request — the body from its watch event, each Secret and the
    ConfigMap as last read or written at the version the watch reports; someone else's change to a token
    Secret costs a live read of the PxSecurity (not woken by its own event) and of that Secret."""
    cluster, deployed = metered
    ns = "noop"
    cluster.kubectl("create", "namespace", ns)
    assert get_json(cluster, "pxsecurities", "-A")["items"] == []  # the counter counts this object only
    apply(cluster, ns, {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "px"},
                        "spec": {"selfSigned": {"sharedSecret": {}},
                                 "tokens": [{"secretName": "px-ops-token", "roles": ["system.admin"]}]}})
    wait_ready(cluster, ns, "px")
    log = audit_log(cluster)

    def reconciled_after(change: list[str]) -> list[AuditWrite]:
        return requests_of_reconcile(cluster, deployed, log, ns, change)

    assert reconciled_after(["label", "pxsecurity", "px", "-n", ns, "team=storage"]) == []
    rs = reconciled_after(["label", "secret", "px-ops-token", "-n", ns, "backup=yes"])
    assert [(r.verb, r.resource, r.name) for r in rs] == [("get", "pxsecurities", "px"),
                                                          ("get", "secrets", "px-ops-token")], rs


def test_a_no_op_reconcile_of_a_pxsecurity_that_targets_a_storagecluster_makes_no_request(
        metered: tuple[Cluster, Deployed]) -> None:
    """The StorageCluster is known from our watch of it, present (merged into) or absent (waited for): a
    reconcile with nothing to do asks the API server nothing, for either."""
    cluster, deployed = metered
    ns = "noop-targeted"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "core.libopenstorage.org/v1", "kind": "StorageCluster", "metadata": {"name": "px-cluster"},
        "spec": {"image": "portworx/oci-monitor:3.2.0"}}))
    for name, target in (("px", "px-cluster"), ("waiting", "not-there-yet")):
        apply(cluster, ns, {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": name},
                            "spec": {"storageCluster": {"name": target, "apply": True},
                                     "selfSigned": {"sharedSecret": {}},
                                     "tokens": [{"secretName": f"{name}-ops-token", "roles": ["system.admin"]}]}})
    wait_ready(cluster, ns, "px")
    sc = get_json(cluster, "storageclusters", "px-cluster", "-n", ns)
    assert sc["spec"]["security"]["enabled"] is True  # merged: the StorageCluster is really targeted
    wait_for(lambda: next((c["reason"] for c in (get_json(cluster, "pxsecurity", "waiting", "-n", ns).get("status")
                                                  or {}).get("conditions") or [] if c["type"] == "Ready"), None)
             == "WaitingForStorageCluster", 30, what="the second one waiting for its StorageCluster")
    log = audit_log(cluster)
    for name in ("px", "waiting"):
        rs = requests_of_reconcile(cluster, deployed, log, ns, ["label", "pxsecurity", name, "-n", ns, "team=storage"])
        assert rs == [], (name, rs)
