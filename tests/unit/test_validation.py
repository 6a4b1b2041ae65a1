"""The offline validator: every case in tests/cases is judged as the API server judges it.

The API server side of the same table is tests/e2e/test_admission.py; here the rows pin the offline
verdicts and messages, and the rule table is held to its promises (a case per rule, one rule per case,
defaults that agree with pxsec.spec).
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec.celrules import RULES
from pxsec.cli.validate import run_validate
from pxsec.crdschema import SPEC_SCHEMA, apply_defaults
from pxsec.spec import parse_spec
from pxsec.validation import (
    DUPLICATE,
    RULES_SKIPPED,
    check_document,
    validate_document,
    validate_stream,
)
from tests.cases import build_document, load_rows

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


INVALID = load_rows("invalid.yaml")
VALID = load_rows("valid.yaml")
RULE_IDS = {rule.id for rule in RULES}


def _name(row: dict[str, Any]) -> str:
    return str(row["name"])


def test_case_tables_are_well_formed() -> None:
    names = [row["name"] for row in INVALID + VALID]
    assert len(names) == len(set(names)), "case names must be unique (they are metadata.name)"
    assert len(INVALID) >= 30
    assert len(VALID) >= 5
    for row in INVALID:
        assert isinstance(row.get("expect"), str) and row["expect"], row["name"]
        assert row.get("rule") is None or row["rule"] in RULE_IDS, f"{row['name']}: unknown rule {row['rule']}"


@pytest.mark.parametrize("row", INVALID, ids=_name)
def test_invalid_case_is_rejected_with_its_message(row: dict[str, Any]) -> None:
    problems = validate_document(build_document(row))
    assert problems, "accepted, but the API server rejects it"
    assert any(row["expect"] in problem for problem in problems), "\n".join(problems)


@pytest.mark.parametrize("row", [r for r in INVALID if r.get("rule")], ids=_name)
def test_rule_case_fails_for_its_rule_only(row: dict[str, Any]) -> None:
    """A rule's case breaks that rule and nothing else, so the message it expects is the rule's."""
    problems = check_document(build_document(row))
    found = {problem.rule for problem in problems if problem.kind != DUPLICATE}
    assert found == {row["rule"]}, [str(p) for p in problems]
    rule = next(rule for rule in RULES if rule.id == row["rule"])
    assert row["expect"] in rule.message


def test_every_rule_has_an_invalid_case() -> None:
    covered = {row.get("rule") for row in INVALID}
    missing = sorted(RULE_IDS - covered - {r.id for r in RULES if r.transition})
    assert not missing, f"rules without a case in tests/cases/invalid.yaml: {missing}"


def test_rule_ids_are_unique() -> None:
    assert len(RULE_IDS) == len(RULES)


@pytest.mark.parametrize("row", VALID, ids=_name)
def test_valid_case_is_accepted(row: dict[str, Any]) -> None:
    assert validate_document(build_document(row)) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(path: Path) -> None:
    results = validate_stream(path.read_text(encoding="utf-8"))
    assert results, f"{path.name} holds no PxSecurity"
    for _, _, problems in results:
        assert problems == []


def test_the_promised_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {
        "oidc-only.yaml",
        "self-signed-shared-secret.yaml",
        "self-signed-rsa-ecdsa.yaml",
        "all-together.yaml",
    } <= names


def _leaf_paths(schema: dict[str, Any], prefix: str) -> set[str]:
    properties = schema.get("properties")
    if schema.get("type") == "array" and "properties" in schema["items"]:
        return _leaf_paths(schema["items"], prefix + "[]")
    if not properties:
        return {prefix}
    paths: set[str] = set()
    for name, child in properties.items():
        paths |= _leaf_paths(child, f"{prefix}.{name}")
    return paths


def _value_paths(value: Any, prefix: str) -> set[str]:
    if isinstance(value, dict) and not prefix.endswith(("labels", "annotations", "matchLabels")):
        paths: set[str] = set()
        for name, child in value.items():
            paths |= _value_paths(child, f"{prefix}.{name}")
        return paths | ({prefix} if not value else set())
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set().union(*(_value_paths(item, prefix + "[]") for item in value))
    return {prefix}


def test_all_together_example_sets_every_field() -> None:
    """all-together.yaml is the reference users copy from: it shows every field of the spec."""
    doc = yaml.safe_load((ROOT / "examples" / "all-together.yaml").read_text(encoding="utf-8"))
    assert _leaf_paths(SPEC_SCHEMA, "spec") - _value_paths(doc["spec"], "spec") == set()


def _spec_inputs() -> list[Any]:
    specs = [row["spec"] for row in VALID]
    for path in EXAMPLES:
        specs += [doc["spec"] for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return specs


@pytest.mark.parametrize("spec", _spec_inputs())
def test_spec_py_defaults_equal_the_crd_defaults(spec: dict[str, Any]) -> None:
    """The operator parses specs the API server defaulted; `pxsec render` parses raw files. Both must
    come out the same, so pxsec.spec's defaults must be the CRD's."""
    defaulted = copy.deepcopy(spec)
    apply_defaults(defaulted, SPEC_SCHEMA)
    assert parse_spec(defaulted) == parse_spec(spec)


def test_defaults_are_applied_like_the_api_server() -> None:
    spec: dict[str, Any] = {"selfSigned": {"sharedSecret": {}, "rsa": {"secretName": "k"}}, "oidc": None}
    apply_defaults(spec, SPEC_SCHEMA)
    assert spec == {
        "selfSigned": {
            "issuer": "operator.portworx.io",
            "tokenLifetime": "24h",
            "sharedSecret": {"secretName": "px-shared-secret"},
            "rsa": {"secretName": "k", "size": 4096},
        },
        "system": {"secretName": "px-system-secrets"},
        "guestAccess": "Enabled",
        "usernameClaim": "sub",
        "deletionPolicy": "Retain",
    }


def test_validation_does_not_modify_its_input() -> None:
    doc = build_document(INVALID[0]) | {"spec": {"selfSigned": {"sharedSecret": None}, "x": 1}}
    before = copy.deepcopy(doc)
    validate_document(doc)
    assert doc == before


def test_blocking_schema_errors_skip_the_rules_like_the_api_server() -> None:
    doc = build_document({"name": "x", "spec": {"guestAccess": "Foo"}})  # also no token source
    problems = check_document(doc)
    assert [p.rule for p in problems if p.rule] == []
    assert str(problems[-1]) == f"spec: {RULES_SKIPPED}"


def test_non_blocking_schema_errors_keep_the_rules_running() -> None:
    doc = build_document({"name": "x", "spec": {"tokens": [{"secretName": "t", "roles": []}]}})
    lines = validate_document(doc)
    assert any("should have at least 1 items" in line for line in lines)
    assert any("spec needs at least one token source" in line for line in lines)
    assert any("spec.tokens needs spec.selfSigned" in line for line in lines)


def test_cel_failure_is_reported_at_its_field_path() -> None:
    doc = build_document({"name": "x", "spec": {"oidc": {"issuer": "https://a.example"}}})
    assert validate_document(doc) == [
        "spec.oidc.clientID: Invalid value: spec.oidc.clientID is required with spec.oidc.issuer: "
        "Portworx turns OIDC on only when both are set, and a token's aud must contain the client ID"
    ]


def test_regular_expressions_have_re2_end_of_text() -> None:
    """RE2's `$` does not match before a trailing newline the way Python's does."""
    doc = build_document({"name": "x", "spec": {"selfSigned": {"sharedSecret": {}, "tokenLifetime": "24h\n"}}})
    assert any("tokenLifetime must be one positive" in line for line in validate_document(doc))


def test_unknown_field_suggests_the_declared_spelling() -> None:
    doc = build_document({"name": "x", "spec": {"oidc": {"issuer": "https://a.example", "clientId": "p"}}})
    assert validate_document(doc)[0] == (
        'spec.oidc.clientId: field not declared in schema (unknown field "spec.oidc.clientId"; '
        'did you mean "clientID"?)'
    )


def test_wrong_api_version_is_reported() -> None:
    doc = build_document({"name": "x", "spec": {"selfSigned": {"sharedSecret": {}}}})
    doc["apiVersion"] = "pxsec.dev/v1"
    assert validate_document(doc) == [
        "apiVersion/kind: expected apiVersion pxsec.dev/v1alpha1 and kind PxSecurity, got pxsec.dev/v1 PxSecurity"
    ]


STREAM = """\
apiVersion: v1
kind: Namespace
metadata: {name: portworx}
---
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata: {name: good, namespace: portworx}
spec: {selfSigned: {sharedSecret: {}}}
---
---
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata: {name: bad}
spec: {oidc: {issuer: "http://a.example", clientID: p}, guestAccess: Enabled}
"""


def test_validate_stream_judges_each_pxsecurity_and_skips_the_rest() -> None:
    results = validate_stream(STREAM)
    assert [(index, label) for index, label, _ in results] == [(2, "portworx/good"), (4, "bad")]
    assert results[0][2] == []
    assert len(results[1][2]) == 1 and "spec.oidc.issuer must be an https:// URL" in results[1][2][0]


def test_validate_stream_raises_on_yaml_syntax_errors() -> None:
    with pytest.raises(yaml.YAMLError):
        validate_stream("spec: {oidc: [}\n")


# --- pxsec validate -----------------------------------------------------------------------------


def _run(path: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_validate(path, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_reports_success_with_a_count(tmp_path: Path) -> None:
    code, out, err = _run(str(ROOT / "examples" / "all-together.yaml"))
    assert (code, out, err) == (0, "ok: 1 document valid\n", "")
    two = tmp_path / "two.yaml"
    two.write_text(STREAM.split("---\n---\n")[0] + "---\n" + (ROOT / "examples" / "oidc-only.yaml").read_text())
    code, out, _ = _run(str(two))
    assert (code, out) == (0, "ok: 2 documents valid (1 other document skipped)\n")


def test_cli_warns_that_oidc_with_a_storagecluster_is_not_oidc_only(tmp_path: Path) -> None:
    code, out, err = _run(str(ROOT / "examples" / "oidc-only.yaml"))
    assert (code, out) == (0, "ok: 1 document valid\n")
    assert err.startswith(f"{ROOT / 'examples' / 'oidc-only.yaml'}: document 1 (px-cluster): warning: not OIDC-only")
    assert "Portworx also trusts HS256 tokens signed with that secret" in err and err.count("\n") == 1
    alone = tmp_path / "alone.yaml"
    alone.write_text("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\nmetadata: {name: x}\n"
                     "spec: {oidc: {issuer: 'https://idp.example.com', clientID: px}}\n")
    assert _run(str(alone)) == (0, "ok: 1 document valid\n", "")


def test_cli_stops_at_the_first_bad_document_and_prints_all_its_problems(tmp_path: Path) -> None:
    header = "apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\n"
    first_bad = header + "metadata: {name: bad}\nspec: {selfSigned: {tokenLifetime: 1h30m, issuer: 'https://x'}}\n"
    later_bad = header + "metadata: {name: worse}\nspec: {guestAccess: X}\n"
    path = tmp_path / "bad.yaml"
    path.write_text(STREAM.split("---\n")[0] + "---\n" + first_bad + "---\n" + later_bad)
    code, out, err = _run(str(path))
    lines = err.splitlines()
    assert code == 1 and out == ""
    # all three problems of document 2 (issuer, lifetime, no key), and nothing about document 3
    assert len(lines) == 3, err
    assert all(line.startswith(f"{path}: document 2 (bad): spec.selfSigned") for line in lines), err


def test_cli_reads_stdin() -> None:
    code, out, _ = _run("-", (ROOT / "examples" / "oidc-only.yaml").read_text())
    assert (code, out) == (0, "ok: 1 document valid\n")
    code, _, err = _run("-", "kind: PxSecurity\napiVersion: pxsec.dev/v1alpha1\nmetadata: {name: a}\nspec: {}\n")
    assert code == 1
    assert err.startswith("<stdin>: document 1 (a): spec: ")


def test_cli_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path / "nope.yaml"))
    assert (code, out) == (2, "")
    assert err == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory\n"


def test_cli_yaml_syntax_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: pxsec.dev/v1alpha1\nspec: {oidc: [}\n")
    code, _, err = _run(str(broken))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"{broken}: line 2, column ")
    assert "not valid YAML" in err


def test_cli_input_without_pxsecurity_fails(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    code, out, err = _run(str(other))
    assert (code, out) == (1, "")
    assert "no PxSecurity document found" in err


def test_cli_non_mapping_document_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("- just\n- a list\n")
    code, _, err = _run(str(odd))
    assert code == 1
    assert "document 1: <document>: not a mapping" in err


def test_yaml_is_read_as_kubectl_reads_it() -> None:
    """kubectl's YAML parser keeps dates as strings, reads y/n as booleans, and JSON keys are strings."""
    text = """\
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata: {name: a}
spec:
  selfSigned: {sharedSecret: {}}
  secretTemplate:
    labels: {1: x, since: 2030-01-01, true: on-call, backup: n}
    annotations: {at: 2030-01-01T00:00:00Z}
"""
    [(_, _, problems)] = validate_stream(text)
    assert problems[0] == (
        'spec.secretTemplate.labels.backup: Invalid value: "boolean": '
        'spec.secretTemplate.labels.backup in body must be of type string: "boolean"'
    )
    assert len(problems) == 2  # and the rules were skipped
    assert validate_stream(text.replace("backup: n", "backup: 'n'")) == [(1, "a", [])]
