"""Our `storagecluster` rendering against the real StorageCluster CRD (tests/fixtures, from the Portworx
Operator): every example, merged into a user's StorageCluster through scmerge, is accepted by the API
server with strict field validation; the merge patch works as a real `--type merge` patch with its
resourceVersion guard; and what the server stores merges to no patch (no write churn)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pxsec.devcluster.cluster import Cluster, KubectlError
from pxsec.render import render
from pxsec.scmerge import OWNED_ANNOTATION, apply_merge_patch, merge
from tests.support.helpers import get_json
from tests.unit.test_render import EXAMPLES, load_example

pytestmark = pytest.mark.e2e

USER_ENV = {"name": "USER_SETTING", "value": "keep-me"}
USER_VOLUME = {"name": "user-ca", "mountPath": "/etc/pwx/user-ca", "secret": {"secretName": "user-ca"}}


def base(name: str, namespace: str) -> dict[str, Any]:
    """A minimal StorageCluster a user could have, with an env entry and a volume of their own."""
    return {
        "apiVersion": "core.libopenstorage.org/v1",
        "kind": "StorageCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "portworx/oci-monitor:3.2.0",
            "env": [copy.deepcopy(USER_ENV)],
            "volumes": [copy.deepcopy(USER_VOLUME)],
        },
    }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def rendering(example: Path, namespace: str) -> dict[str, Any]:
    spec, name = load_example(example)
    return render(spec, namespace, "storagecluster", cr_name=name)


def test_crd_is_established(cluster: Cluster, storagecluster_crd: None) -> None:
    status = cluster.kubectl("get", "crd", "storageclusters.core.libopenstorage.org", "-o",
                             "jsonpath={.status.conditions[?(@.type=='Established')].status}").stdout
    assert status == "True"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendering_merged_into_a_storagecluster_passes_the_real_schema(
    cluster: Cluster, storagecluster_crd: None, namespace: str, example: Path
) -> None:
    want = rendering(example, namespace)
    existing = base(str(want["metadata"]["name"]), namespace)
    result = merge(existing, want)
    assert result.conflicts == []
    assert result.patch is not None
    merged = apply_merge_patch(existing, result.patch)
    # Strict field validation (kubectl's default): an unknown or mistyped field is an error, not a warning.
    out = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=pxsec-test", "--validate=strict",
        "-o", "json", "-f", "-", input=json.dumps(merged),
    )
    stored = json.loads(out.stdout)
    # Nothing was pruned or changed by the schema: every field we render is a field of the CRD.
    assert stored["spec"]["security"] == want["spec"]["security"]
    assert stored["spec"]["env"] == [USER_ENV, *want["spec"]["env"]]
    assert stored["spec"]["volumes"] == [USER_VOLUME, *want["spec"].get("volumes", [])]


def test_the_schema_check_can_fail(cluster: Cluster, storagecluster_crd: None, namespace: str) -> None:
    """The documented-but-wrong `auth.tokenLifetime` (the real field is auth.selfSigned.tokenLifetime) is
    refused: the dry run above would catch a field our rendering got wrong."""
    wrong = base("px-cluster", namespace)
    wrong["spec"]["security"] = {"enabled": True, "auth": {"tokenLifetime": "24h"}}
    with pytest.raises(KubectlError, match=r"spec.security.auth.tokenLifetime: field not declared in schema"):
        cluster.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=pxsec-test",
                        "--validate=strict", "-f", "-", input=json.dumps(wrong))


def test_merge_patch_against_the_api_server(cluster: Cluster, storagecluster_crd: None, namespace: str) -> None:
    """Create a user's StorageCluster, merge example after example into it with real merge patches."""
    first, *others = [rendering(e, namespace) for e in EXAMPLES]
    name = str(first["metadata"]["name"])
    cluster.kubectl("create", "-f", "-", input=json.dumps(base(name, namespace)))

    def stored() -> dict[str, Any]:
        return get_json(cluster, "storagecluster", name, "-n", namespace)

    def patch(body: dict[str, Any]) -> None:
        cluster.kubectl("patch", "storagecluster", name, "-n", namespace, "--type=merge", "-p", json.dumps(body))

    for want in [first, *others, first]:
        current = stored()
        result = merge(current, want)
        assert result.conflicts == []
        assert result.patch is not None
        assert result.patch["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
        patch(result.patch)
        after = stored()
        assert after["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
        # What the server stores is what we merged, and merging again changes nothing.
        assert merge(after, want).patch is None
        assert after["spec"]["env"][0] == USER_ENV
        assert after["spec"]["volumes"][0] == USER_VOLUME
        ours = [e for e in after["spec"]["env"] if e["name"] != USER_ENV["name"]]
        assert sorted(map(canonical, ours)) == sorted(map(canonical, want["spec"]["env"]))
        assert sorted(map(canonical, after["spec"]["volumes"][1:])) == sorted(
            map(canonical, want["spec"].get("volumes", [])))
        assert after["spec"]["security"] == want["spec"]["security"], "nothing left of the previous example"
        assert OWNED_ANNOTATION in after["metadata"]["annotations"]
        # A stale patch (resourceVersion of before) is refused: optimistic concurrency holds.
        with pytest.raises(KubectlError, match="the object has been modified"):
            patch(result.patch)
