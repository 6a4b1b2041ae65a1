"""Hostile specs at admission and in the operator (issue: reliability), property-based: 300 generated
PxSecurity objects per run, sent to the real API server. Each one is rejected with a message, or it is
reconciled to Ready or to a False condition with a reason — never an InternalError, never an exception
escaping a reconcile (which the work queue would retry forever), never an operator crash.

Generation is derandomized (the same 300 objects every run), so CI is reproducible; a failure names
the object. OIDC issuers point at closed loopback ports so probes fail fast on a closed network.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from pxsec.devcluster.cluster import Cluster, OperatorProcess
from tests.support.helpers import get_json, wait_for

pytestmark = [pytest.mark.e2e]

EXAMPLES = 300

def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid seven times in eight: a spec with one mistake tests more than a spec of nothing but mistakes."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda ok: valid if ok else hostile)


dns = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?\Z")
names = mostly(dns, st.one_of(st.sampled_from(["px-system-secrets", "px-admin-token", "A", "a_b", "1e3", ""]),
                              st.text(max_size=12)))
lifetimes = mostly(st.from_regex(r"\A[1-9][0-9]{0,3}[smhdy]\Z"),
                   st.sampled_from(["1h30m", "0s", "24 h", "", "100000y", "36501d", "101y", "9" * 20 + "s"]))
issuers = mostly(st.sampled_from(["operator.portworx.io", "pxsec.example", "a" * 200]),
                 st.one_of(st.sampled_from(["https://x", "http://x", "", "a\nb"]), st.text(max_size=20)))
oidc_issuers = mostly(
    st.builds(lambda port, path: f"https://127.0.0.1:{port}{path}", st.sampled_from([1, 9, 19]),
              st.sampled_from(["", "/", "/realms/x", "/a/b/"])),
    st.sampled_from(["http://127.0.0.1:1/", "ftp://x", "https://", "https://user:pw@127.0.0.1:1/", "",
                     "https://127.0.0.1:1/?q=1", "https://127.0.0.1:1/#f", "https://127.0.0.1:1/a b"]),
)
label_keys = mostly(st.from_regex(r"\A([a-z]{1,8}\.[a-z]{2,4}/)?[a-z]([-a-z0-9]{0,10}[a-z0-9])?\Z"),
                    st.text(max_size=20))
string_maps = st.dictionaries(label_keys, mostly(st.from_regex(r"\A[a-z0-9]{0,10}\Z"), st.text(max_size=20)),
                              max_size=3)
roles = st.lists(mostly(st.sampled_from(["system.admin", "system.user", "system.view", "ops.x"]),
                        st.text(max_size=12)), min_size=1, max_size=3)

self_signed = st.fixed_dictionaries(
    {"sharedSecret": st.one_of(st.just({}), st.fixed_dictionaries({"secretName": names}))},
    optional={
        "issuer": issuers,
        "tokenLifetime": lifetimes,
        "rsa": st.fixed_dictionaries({"secretName": names, "size": mostly(st.sampled_from([2048, 3072]),
                                                                          st.sampled_from([1024, 0, -1, 2049]))}),
        "ecdsa": st.fixed_dictionaries({"secretName": names}, optional={
            "curve": mostly(st.sampled_from(["P-256", "P-384", "P-521"]), st.sampled_from(["p256", "X", ""]))}),
    })
oidc = st.fixed_dictionaries({"issuer": oidc_issuers, "clientID": mostly(st.just("portworx"), st.text(max_size=5))},
                             optional={
    "customClaimNamespace": mostly(st.just("https://ns.example/"), st.text(max_size=20)),
    "certificateAuthority": st.fixed_dictionaries({"configMapRef": st.fixed_dictionaries(
        {"name": names}, optional={"key": mostly(st.just("ca.crt"), st.text(max_size=10))})}),
})
token = st.fixed_dictionaries({"secretName": names, "roles": roles}, optional={
    "groups": st.lists(mostly(st.just("*"), st.text(max_size=8)), max_size=3),
    "signingKey": st.sampled_from(["SharedSecret", "RSA", "ECDSA", "X"]),
})
specs = st.fixed_dictionaries({"selfSigned": mostly(self_signed, st.just({}))}, optional={
    "storageCluster": st.fixed_dictionaries({}, optional={"name": names, "apply": st.booleans()}),
    "guestAccess": mostly(st.sampled_from(["Enabled", "Disabled", "Managed"]), st.sampled_from(["enabled", ""])),
    "usernameClaim": mostly(st.sampled_from(["sub", "email", "name"]), st.sampled_from(["SUB", ""])),
    "system": st.fixed_dictionaries({}, optional={"secretName": names}),
    "oidc": oidc,
    "tokens": st.lists(token, max_size=3),
    "secretTemplate": st.fixed_dictionaries({}, optional={"labels": string_maps, "annotations": string_maps}),
    "deletionPolicy": mostly(st.sampled_from(["Retain", "Delete"]), st.just("Keep")),
})


def api(cluster: Cluster) -> kubernetes.client.CustomObjectsApi:
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return kubernetes.client.CustomObjectsApi(client)


def test_300_hostile_specs(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    custom = api(cluster)
    accepted: dict[str, dict[str, Any]] = {}
    rejected = 0
    reasons: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(specs)
    def send(spec: dict[str, Any]) -> None:
        nonlocal rejected
        name = f"h-{len(accepted) + rejected}"
        body = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": name}, "spec": spec}
        try:
            custom.create_namespaced_custom_object("pxsec.dev", "v1alpha1", namespace, "pxsecurities", body)
        except ApiException as exc:
            assert exc.status in (400, 422), f"{name}: {exc.status} {exc.reason}"
            message = json.loads(exc.body or "{}").get("message", "")
            assert message, f"{name} was rejected without a message"
            rejected += 1
            reasons.append(message)
            return
        accepted[name] = spec

    send()
    assert len(accepted) + rejected == EXAMPLES
    assert accepted and rejected, f"accepted {len(accepted)}, rejected {rejected}: the generator lost its range"

    def settled() -> list[str] | None:
        items = {i["metadata"]["name"]: i for i in get_json(cluster, "pxsecurities", "-n", namespace)["items"]}
        waiting = []
        for name in accepted:
            item = items[name]
            ready = next((c for c in (item.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
            if ready.get("observedGeneration") != item["metadata"]["generation"] or not ready.get("reason"):
                waiting.append(name)
        return None if waiting else []

    wait_for(lambda: settled() is not None, 300, interval=1, what=f"all {len(accepted)} accepted objects reconciled")
    items = get_json(cluster, "pxsecurities", "-n", namespace)["items"]
    internal = [i["metadata"]["name"] for i in items if "InternalError" in json.dumps(i.get("status"))]
    assert internal == [], "core exceptions: " + ", ".join(f"{n} {accepted[n]}" for n in internal[:5])
    log = operator.output()
    escaped = [line for line in log.splitlines() if f"'{namespace}'" in line and "failed (" in line]
    assert escaped == [], "exceptions escaped a reconcile:\n" + "\n".join(escaped[:10])
    assert operator.popen is not None and operator.popen.poll() is None
    print(f"hostile specs: {len(accepted)} accepted and reconciled, {rejected} rejected with a message")
    fields = Counter(m.split(":")[0].split("[")[-1] for m in (r.split(" is invalid: ", 1)[-1] for r in reasons))
    print("most frequent first rejected fields: " + ", ".join(f"{k} ({v})" for k, v in fields.most_common(8)))

