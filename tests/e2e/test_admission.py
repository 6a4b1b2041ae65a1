"""The real API server and the offline validator agree on every case.

Each row of tests/cases/invalid.yaml is submitted with `kubectl apply --dry-run=server`: the API
server must reject it with the row's message, and `pxsec.validation` must reject it with the same
message. Each valid row and each example must be accepted by both, and the API server must default
them exactly as `apply_defaults` does (the operator reads server-defaulted objects, `pxsec render`
reads files). This is what proves the CEL in the CRD and the Python predicates are the same rules.

Also checked here, because only a real API server shows them: `kubectl explain` teaches the fields,
`kubectl get pxsec` prints the promised columns, and the field selector on the StorageCluster works.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from pxsec.validation import RULES_SKIPPED, SPEC_SCHEMA, apply_defaults, validate_document

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PARALLEL = 8


class Cluster(Protocol):
    """What the `cluster` fixture of tests/conftest.py offers."""

    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def load_rows(name: str) -> list[dict[str, Any]]:
    rows = yaml.safe_load((CASES / name).read_text(encoding="utf-8"))
    assert isinstance(rows, list)
    return rows


def build_document(row: dict[str, Any]) -> dict[str, Any]:
    """The PxSecurity a case row describes (the same construction as tests/unit/test_validation.py's)."""
    doc: dict[str, Any] = {
        "apiVersion": "pxsec.dev/v1alpha1",
        "kind": "PxSecurity",
        "metadata": {"name": row["name"]},
    }
    if "spec" in row:
        doc["spec"] = copy.deepcopy(row["spec"])
    doc.update(copy.deepcopy(row.get("object", {})))
    return doc


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
        listed = text.split("strict decoding error: ", 1)[1]
        return [
            f"unknown field {part.split('unknown field ', 1)[1]}" for part in listed.split(", unknown")
        ], True
    assert " is invalid: " in text, text
    body = text.split(" is invalid: ", 1)[1]
    lines = [line.removeprefix("* ") for line in body.splitlines() if line.strip()]
    return lines, False


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
        "NAME", "READY", "ISSUERS", "PARAMETERS", "AGE", "NEXT RENEWAL", "MESSAGE",
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
