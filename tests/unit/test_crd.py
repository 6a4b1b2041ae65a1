"""The generated CRD: current on disk, structurally sound, and teaching the user.

The API server checks the CRD when it is applied (tests/e2e does that); these checks catch, without a
cluster, what would make it reject the CRD or make `kubectl explain` and `kubectl get` less useful.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec import spec as spec_module
from pxsec.celrules import RULES, location_steps, schema_at
from pxsec.crdgen import build_crd, crd_yaml, main
from pxsec.crdschema import SPEC_SCHEMA
from pxsec.validation import apply_defaults, check_document

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "pxsecurity.yaml"


def _version() -> dict[str, Any]:
    versions = build_crd()["spec"]["versions"]
    assert len(versions) == 1
    version: dict[str, Any] = versions[0]
    return version


def _root() -> dict[str, Any]:
    root: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]
    return root


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node under `node`, with a readable path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_what_crdgen_generates() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == crd_yaml(), (
        "crds/pxsecurity.yaml is stale: regenerate it with "
        "`python -m pxsec.crdgen --output crds/pxsecurity.yaml` and commit it"
    )


def test_crdgen_main_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    assert main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd_yaml()


def test_generated_yaml_round_trips() -> None:
    assert yaml.safe_load(crd_yaml()) == build_crd()


def test_names_scope_and_version() -> None:
    crd = build_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "pxsecurities.pxsec.dev"
    assert crd["spec"]["group"] == spec_module.API_GROUP == "pxsec.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == ("PxSecurity", "pxsecurities", "pxsecurity")
    assert names["shortNames"] == ["pxsec"]
    version = _version()
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_every_field_has_a_description() -> None:
    """`kubectl explain` shows these: every declared field must say what it is."""
    missing = [
        path
        for path, node in _walk(_root(), "")
        for name, child in node.get("properties", {}).items()
        if name != "metadata" and not child.get("description")
    ]
    assert missing == []


def test_descriptions_name_the_portworx_settings() -> None:
    oidc = SPEC_SCHEMA["properties"]["oidc"]["properties"]
    assert "PORTWORX_AUTH_OIDC_ISSUER" in oidc["issuer"]["description"]
    assert "PORTWORX_AUTH_OIDC_CLIENTID" in oidc["clientID"]["description"]
    self_signed = SPEC_SCHEMA["properties"]["selfSigned"]["properties"]
    assert "PORTWORX_AUTH_JWT_ISSUER" in self_signed["issuer"]["description"]
    assert "PORTWORX_AUTH_JWT_ECDS_PUBKEY" in self_signed["ecdsa"]["description"]
    assert "Default 24h" in self_signed["tokenLifetime"]["description"]


def test_spec_is_bounded_so_cel_cost_can_be_estimated() -> None:
    """Unbounded strings and lists make the API server's CEL cost estimate exceed its budget."""
    unbounded = []
    for path, node in _walk(_root()["properties"]["spec"], "spec"):
        kind = node.get("type")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_only_the_kopf_bookkeeping_preserves_unknown_fields() -> None:
    preserving = [path for path, node in _walk(_root(), "") if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserving == [".status.kopf"]


def test_status_declares_what_the_operator_reports() -> None:
    status = _root()["properties"]["status"]["properties"]
    assert {
        "observedGeneration",
        "conditions",
        "secrets",
        "oidc",
        "tokens",
        "parameters",
        "issuers",
        "nextRenewal",
        "storageCluster",
        "kopf",
    } <= set(status)
    assert set(status["conditions"]["items"]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
    }
    assert set(status["secrets"]["items"]["properties"]) == {
        "name",
        "purpose",
        "keys",
        "fingerprint",
        "origin",
        "revision",
        "sharedWith",
        "notes",
    }
    assert status["secrets"]["items"]["properties"]["origin"]["enum"] == ["Generated", "Adopted"]
    assert set(status["oidc"]["properties"]) == {
        "lastProbeTime",
        "issuerMatches",
        "jwksKeyCount",
        "jwksHash",
        "algorithms",
    }
    assert set(status["tokens"]["items"]["properties"]) == {
        "secretName",
        "expiresAt",
        "renewalTime",
        "signingKey",
        "mintedBy",
        "accepted",
        "reason",
    }
    assert set(status["parameters"]["properties"]) == {"configMapName", "hash"}


def test_list_map_keys_are_required() -> None:
    """The API server refuses a list-type map whose keys may be missing."""
    for path, node in _walk(_root(), ""):
        if node.get("x-kubernetes-list-type") == "map":
            required = set(node["items"].get("required", []))
            assert set(node["x-kubernetes-list-map-keys"]) <= required, path


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in _version()["additionalPrinterColumns"]}
    assert [c["name"] for c in _version()["additionalPrinterColumns"] if not c.get("priority")] == [
        "Ready",
        "Issuers",
        "Parameters",
        "Age",
    ]
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Issuers"]["jsonPath"] == ".status.issuers"
    assert columns["Parameters"]["jsonPath"] == ".status.parameters.configMapName"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    assert columns["Message"]["priority"] == 1
    assert columns["Message"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].message'
    assert columns["Next Renewal"]["priority"] == 1
    # a future time as type date would print "<invalid>": kubectl only prints ages of past times
    assert columns["Next Renewal"]["type"] == "string"


def test_every_rule_is_in_the_crd_where_the_table_says() -> None:
    emitted = [(path, entry) for path, node in _walk(_root(), "") for entry in node.get("x-kubernetes-validations", [])]
    assert len(emitted) == len(RULES)
    root = _root()
    for rule in RULES:
        node = schema_at(root, location_steps(rule.location))
        assert rule.to_crd() in node["x-kubernetes-validations"], rule.id
        if rule.field_path:
            schema_at(node, rule.field_path.lstrip(".").split("."))  # the field exists


def _bare(path: str) -> str:
    return path.replace("[*]", "").replace("[]", "")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_message_names_its_field(rule: Any) -> None:
    field = _bare(rule.location + (rule.field_path or ""))
    assert _bare(rule.message).startswith(field), (field, rule.message)
    assert "\n" not in rule.message and rule.message == rule.message.strip()


def test_schema_defaults_are_valid_values() -> None:
    """The API server validates defaults when the CRD is applied; a defaulted empty spec must have
    no schema problem (only the missing token source)."""
    spec: dict[str, Any] = {
        "selfSigned": {"sharedSecret": {}, "rsa": {"secretName": "r"}, "ecdsa": {"secretName": "e"}},
        "oidc": {
            "issuer": "https://a.example",
            "clientID": "c",
            "certificateAuthority": {"configMapRef": {"name": "ca"}},
        },
        "storageCluster": {},
    }
    doc = {"apiVersion": "pxsec.dev/v1alpha1", "kind": "PxSecurity", "metadata": {"name": "d"}, "spec": spec}
    assert check_document(doc) == []
    apply_defaults(spec, SPEC_SCHEMA)
    for path, node in _walk(SPEC_SCHEMA, "spec"):
        if "default" in node and "enum" in node:
            assert node["default"] in node["enum"], path


def test_schema_defaults_are_spec_py_defaults() -> None:
    props = SPEC_SCHEMA["properties"]
    self_signed = props["selfSigned"]["properties"]
    assert props["system"]["properties"]["secretName"]["default"] == spec_module.DEFAULT_SYSTEM_SECRET
    assert self_signed["issuer"]["default"] == spec_module.DEFAULT_SELF_SIGNED_ISSUER
    assert self_signed["tokenLifetime"]["default"] == spec_module.DEFAULT_TOKEN_LIFETIME
    assert self_signed["sharedSecret"]["properties"]["secretName"]["default"] == spec_module.DEFAULT_SHARED_SECRET
    assert self_signed["rsa"]["properties"]["size"]["default"] == spec_module.DEFAULT_RSA_SIZE
    assert self_signed["ecdsa"]["properties"]["curve"]["default"] == spec_module.DEFAULT_ECDSA_CURVE
    defaults = spec_module.PxSecuritySpec()
    assert props["guestAccess"]["default"] == defaults.guest_access
    assert props["usernameClaim"]["default"] == defaults.username_claim
    assert props["deletionPolicy"]["default"] == defaults.deletion_policy
    assert props["storageCluster"]["properties"]["apply"]["default"] is defaults.storage_cluster.apply


@pytest.mark.parametrize("raw", [
    {"selfSigned": {"rsa": {}}},  # no secretName
    {"selfSigned": {"rsa": {"secretName": "r", "size": "big"}}},
    {"tokens": [{"roles": ["a"]}]},
    {"selfSigned": []},
    "not a mapping",
])
def test_parse_spec_raises_only_spec_error(raw: Any) -> None:
    from pxsec.spec import SpecError, parse_spec

    with pytest.raises(SpecError):
        parse_spec(raw)


def test_committed_admission_warnings_are_what_the_generator_writes(tmp_path: Path) -> None:
    from pxsec import admissionwarnings

    root = CRD_FILE.parent.parent
    assert (root / "crds" / "warnings.yaml").read_text(encoding="utf-8") == admissionwarnings.warnings_yaml(), (
        "crds/warnings.yaml is stale: run `make crds` and commit it")
    chart = root / "charts" / "px-security-operator" / "templates" / "admission-warnings.yaml"
    assert chart.read_text(encoding="utf-8") == admissionwarnings.chart_yaml(), "the chart template is stale: make crds"
    out, template = tmp_path / "w.yaml", tmp_path / "t.yaml"
    assert admissionwarnings.main(["--output", str(out), "--chart-output", str(template)]) == 0
    assert out.read_text(encoding="utf-8") == admissionwarnings.warnings_yaml()
    assert template.read_text(encoding="utf-8") == admissionwarnings.chart_yaml()
