"""The real API server and the offline validator agree on every case.

Each row of tests/cases/invalid.yaml is submitted with `kubectl apply --dry-run=server`: the API
server must reject it with the row's message, and `pxsec.validation` must reject it with the same
message. Each valid row and each example must be accepted by both, and the API server must default
them exactly as `apply_defaults` does (the operator reads server-defaulted objects, `pxsec render`
reads files). Beyond the rows, 150 seeded random mixes of fields and raw YAML text with parser
quirks must get the same verdict, line for line. This is what proves the CEL in the CRD and the
Python predicates are the same rules, and the offline messages the API server's.

Also checked here, because only a real API server shows them: `kubectl explain` teaches the fields,
`kubectl get pxsec` prints the promised columns, the field selector on the StorageCluster works, and
the status schema keeps every field the operator writes (an undeclared one would be pruned silently).
"""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.devcluster.cluster import Cluster
from pxsec.validation import RULES_SKIPPED, SPEC_SCHEMA, apply_defaults, validate_document, validate_stream
from tests.cases import build_document, load_rows

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PARALLEL = 8


def _dry_run(cluster: Cluster, namespace: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-o", "json", "-f", "-",
        input=yaml.safe_dump(doc, sort_keys=False),
        check=False,
    )  # fmt: skip


def server_problems(stderr: str) -> tuple[list[str], bool]:
    """The field errors in kubectl's report of a rejected object, one string each, and whether the
    API server stopped at decoding (unknown fields) before validating anything else."""
    text = stderr.strip()
    if "strict decoding error: " in text:
        return re.findall(r'unknown field "[^"]*"', text), True
    if " is invalid: " not in text:
        return [text], False  # not a validation error at all: it will disagree, visibly
    body = text.split(" is invalid: ", 1)[1]
    return [line.removeprefix("* ") for line in body.splitlines() if line.strip()], False


def disagreements(server: list[str], decoding: bool, offline: list[str]) -> list[str]:
    """What one side says that the other does not, line by line.

    Offline words two things its own way: the API server's `<nil>: Invalid value: null: some
    validation rules were not checked ...` is `spec: some validation rules ...`, and an unknown field
    is `PATH: field not declared in schema (unknown field "PATH")`. When the API server stopped at
    decoding, offline goes on and may find more, which is fine.
    """
    missing = []
    for line in server:
        if line.startswith("<nil>: "):
            found = any(RULES_SKIPPED in mine for mine in offline)
        elif line.startswith("unknown field "):
            found = any(line in mine for mine in offline)
        else:
            found = line in offline
        if not found:
            missing.append(f"only the API server says: {line}")
    if not decoding:
        for mine in offline:
            if RULES_SKIPPED not in mine and mine not in server:
                missing.append(f"only offline says: {mine}")
    return missing


def _each(items: list[Any], judge: Callable[[Any], str | None]) -> list[str]:
    """Run `judge` on every item, a few kubectl calls at a time; the failures it describes."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return [failure for failure in pool.map(judge, items) if failure]


def test_invalid_cases_are_rejected_by_both_with_the_same_message(
    cluster: Cluster, crds_installed: Any, namespace: str
) -> None:
    rows = load_rows("invalid.yaml")

    def judge(row: dict[str, Any]) -> str | None:
        doc = build_document(row)
        offline = validate_document(doc)
        result = _dry_run(cluster, namespace, doc)
        expect = row["expect"]
        if result.returncode == 0:
            return f"{row['name']}: the API server accepted it (offline: {offline})"
        if expect not in result.stderr:
            return f"{row['name']}: API server said {result.stderr.strip()!r}, expected {expect!r}"
        if not any(expect in line for line in offline):
            return f"{row['name']}: offline said {offline}, expected {expect!r}"
        differences = disagreements(*server_problems(result.stderr), offline)
        if differences:
            return f"{row['name']}: " + "; ".join(differences)
        return None

    failures = _each(rows, judge)
    assert not failures, "\n".join(failures)


# Parts to combine, (fine on its own, wrong on its own) for each field. Some mixes of fine parts are
# wrong together: a token named like a key Secret, a signing key that is not configured, a default
# name colliding with an explicit one.
_PARTS: dict[str, tuple[list[Any], list[Any]]] = {
    "oidc": (
        [None, {"issuer": "https://idp.example.com/", "clientID": "px", "customClaimNamespace": "https://px/"}],
        [
            {"issuer": "http://idp.example.com", "clientID": "px"},
            {"issuer": "https://idp.example.com?x=1"},
            {"issuer": "https://idp.example.com", "clientID": "px", "customClaimNamespace": ""},
        ],
    ),
    "selfSigned": (
        [
            None,
            {"sharedSecret": {}},
            {"sharedSecret": None, "ecdsa": {"secretName": "px-jwt", "curve": "P-384"}},
            {"sharedSecret": {"secretName": "px-keys"}, "tokenLifetime": "7d", "issuer": "a.b"},
            {"rsa": {"secretName": "px-system-secrets"}},
            {"sharedSecret": {}, "rsa": {"secretName": "px-rsa"}, "ecdsa": {"secretName": "px-ec"}},
        ],
        [
            {},
            {"rsa": {"secretName": "px-jwt"}, "ecdsa": {"secretName": "px-jwt"}},
            {"sharedSecret": {}, "tokenLifetime": "1h30m"},
        ],
    ),
    "system": ([None, {}, {"secretName": "px-keys"}, {"secretName": "px-shared-secret"}], [{"secretName": "Px"}]),
    "tokens": (
        [
            None,
            [],
            [{"secretName": "px-admin-token", "roles": ["system.admin"]}],
            [{"secretName": "px-shared-secret", "roles": ["a"]}],
            [{"secretName": "px-keys", "roles": ["a"], "signingKey": "SharedSecret"}],
            [{"secretName": "px-user-token", "roles": ["a"], "signingKey": "RSA"}],
            [{"secretName": "px-user-token", "roles": ["a"], "signingKey": "ECDSA"}],
        ],
        [[{"secretName": "px-t", "roles": ["a"]}, {"secretName": "px-t", "roles": ["b"]}]],
    ),
    "storageCluster": ([None, {"name": "px-cluster", "apply": True}], [{"apply": True}]),
}
COMBINATIONS = 150
WRONG = 0.15  # how often a part is one of the wrong ones


def _combinations() -> list[dict[str, Any]]:
    chooser = random.Random(20240601)  # fixed: the same objects every run
    docs = []
    for index in range(COMBINATIONS):
        spec = {}
        for key, (fine, wrong) in _PARTS.items():
            value = chooser.choice(wrong if chooser.random() < WRONG else fine)
            if value is not None or chooser.random() < 0.2:  # now and then an explicit null
                spec[key] = copy.deepcopy(value)
        docs.append(build_document({"name": f"combination-{index}", "spec": spec}))
    return docs


def test_combinations_get_the_same_verdict_and_messages(cluster: Cluster, crds_installed: Any, namespace: str) -> None:
    """Beyond the hand-written rows: rules that look at several fields must agree in every mix."""

    def judge(doc: dict[str, Any]) -> str | None:
        offline = validate_document(doc)
        result = _dry_run(cluster, namespace, doc)
        name = doc["metadata"]["name"]
        if result.returncode == 0:
            return f"{name}: offline rejected what the API server accepts: {offline}" if offline else None
        differences = disagreements(*server_problems(result.stderr), offline)
        return f"{name} {doc['spec']}: " + "; ".join(differences) if differences else None

    failures = _each(_combinations(), judge)
    assert not failures, "\n".join(failures)


def _valid_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = [(f"valid.yaml:{row['name']}", build_document(row)) for row in load_rows("valid.yaml")]
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


def test_valid_cases_and_examples_are_accepted_and_defaulted_alike(
    cluster: Cluster, crds_installed: Any, namespace: str
) -> None:
    def judge(item: tuple[str, dict[str, Any]]) -> str | None:
        label, doc = item
        offline = validate_document(doc)
        if offline:
            return f"{label}: offline rejected it: {offline}"
        result = _dry_run(cluster, namespace, doc)
        if result.returncode != 0:
            return f"{label}: the API server rejected it: {result.stderr.strip()}"
        served = json.loads(result.stdout)["spec"]
        defaulted = copy.deepcopy(doc["spec"])
        apply_defaults(defaulted, SPEC_SCHEMA)
        if served != defaulted:
            return f"{label}: the API server defaulted it to {served}, offline to {defaulted}"
        return None

    failures = _each(_valid_documents(), judge)
    assert not failures, "\n".join(failures)


def test_kubectl_explain_teaches_the_oidc_fields(cluster: Cluster, crds_installed: Any) -> None:
    # The API server publishes a new CRD's OpenAPI a moment after it is Established.
    deadline = time.monotonic() + 60
    while True:
        result = cluster.kubectl("explain", "pxsecurity.spec.oidc", check=False)
        if result.returncode == 0 and "PORTWORX_AUTH_OIDC_ISSUER" in result.stdout:
            break
        assert time.monotonic() < deadline, f"kubectl explain never showed the descriptions: {result}"
        time.sleep(1)
    text = " ".join(result.stdout.split())  # explain wraps long lines
    for field in ("issuer", "clientID", "customClaimNamespace", "certificateAuthority"):
        assert field in text
    assert "PORTWORX_AUTH_OIDC_CLIENTID" in text
    assert "https:// URL without query or fragment" in text


def _header(output: str) -> list[str]:
    return [column for column in output.splitlines()[0].split("  ") if column.strip() != ""]


def test_kubectl_get_prints_the_status_columns(cluster: Cluster, crds_installed: Any, namespace: str) -> None:
    example = (ROOT / "examples" / "oidc-only.yaml").read_text(encoding="utf-8")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=example)

    plain = cluster.kubectl("get", "pxsec", "-n", namespace).stdout
    assert [c.strip() for c in _header(plain)] == ["NAME", "READY", "ISSUERS", "PARAMETERS", "AGE"]
    assert plain.splitlines()[1].split()[0] == "px-cluster"

    wide = cluster.kubectl("get", "pxsecurities", "-n", namespace, "-o", "wide").stdout
    assert [c.strip() for c in _header(wide)] == [
        "NAME", "READY", "ISSUERS", "PARAMETERS", "AGE", "NEXT RENEWAL", "ROTATION", "MESSAGE",
    ]  # fmt: skip


def test_field_selector_on_the_storage_cluster(cluster: Cluster, crds_installed: Any, namespace: str) -> None:
    for name, storage_cluster in (("a", "px-one"), ("b", "px-two")):
        doc = build_document(
            {
                "name": name,
                "spec": {"storageCluster": {"name": storage_cluster}, "selfSigned": {"sharedSecret": {}}},
            }
        )
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    result = cluster.kubectl(
        "get", "pxsec", "-n", namespace, "--field-selector", "spec.storageCluster.name=px-two", "-o", "name"
    )
    assert result.stdout.split() == ["pxsecurity.pxsec.dev/b"]


STATUS = {
    "observedGeneration": 1,
    "issuers": "oidc,self-signed",
    "warnings": ["not OIDC-only: with spec.storageCluster set, the Portworx Operator gives the StorageCluster ..."],
    "nextRenewal": "2030-01-02T03:04:05Z",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "2 Secrets, 1 token, parameters rendered",
            "observedGeneration": 1,
            "lastTransitionTime": "2030-01-01T00:00:00Z",
        },
        {"type": "OIDCReady", "status": "False", "reason": "DiscoveryFailed", "message": "connection refused"},
    ],
    "secrets": [
        {
            "name": "px-system-secrets",
            "purpose": "system",
            "keys": ["system-secret", "apps-secret"],
            "fingerprint": "sha256:" + "ab" * 32,
            "origin": "Generated",
            "revision": 2,
        }
    ],
    "oidc": {
        "lastProbeTime": "2030-01-01T00:00:00Z",
        "issuerMatches": True,
        "jwksKeyCount": 2,
        "jwksHash": "sha256:" + "cd" * 32,
        "algorithms": ["RS256", "ES256"],
    },
    "tokens": [
        {
            "secretName": "px-admin-token",
            "expiresAt": "2030-01-02T00:00:00Z",
            "renewalTime": "2030-01-01T16:00:00Z",
            "signingKey": "SharedSecret",
        }
    ],
    "parameters": {"configMapName": "px-cluster-px-security", "hash": "sha256:" + "ef" * 32},
    "kopf": {"progress": {"reconcile": {"started": "2030-01-01T00:00:00Z", "retries": 0}}},
}


def test_status_schema_keeps_everything_the_operator_writes(
    cluster: Cluster, crds_installed: Any, namespace: str
) -> None:
    """A status field the schema does not declare is silently pruned: every one must survive."""
    example = (ROOT / "examples" / "all-together.yaml").read_text(encoding="utf-8")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=example)
    patched = cluster.kubectl(
        "patch", "pxsecurity", "px-cluster", "-n", namespace, "--subresource=status", "--type=merge",
        "--dry-run=server", "-o", "json", "-p", json.dumps({"status": STATUS}),
    )  # fmt: skip
    status = json.loads(patched.stdout)["status"]
    assert {key: status.get(key) for key in STATUS} == STATUS


YAML_QUIRKS = """\
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata: {name: yaml-quirks}
spec:
  selfSigned: {sharedSecret: {}}
  secretTemplate:
    labels: {1: x, since: 2030-01-01, true: on-call, backup: BACKUP}
    annotations: {at: 2030-01-01T00:00:00Z, "n": 2030-01-01}
"""


@pytest.mark.parametrize("backup", ["BACKUP", "n", "Y", "off", "'n'"])
def test_yaml_text_is_read_as_kubectl_reads_it(
    cluster: Cluster, crds_installed: Any, namespace: str, backup: str
) -> None:
    """`pxsec validate` parses files itself: dates, y/n booleans and number keys must come out as the
    JSON kubectl sends, or the verdicts differ on text that looks the same."""
    text = YAML_QUIRKS.replace("backup: BACKUP", f"backup: {backup}")
    [(_, _, offline)] = validate_stream(text)
    result = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
    if result.returncode == 0:
        assert offline == []
    else:
        assert offline
        assert disagreements(*server_problems(result.stderr), offline) == []
