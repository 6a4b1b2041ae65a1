"""The offline PxSecurity checker: the API server's verdict on a document, without a cluster.

`pxsec validate -f cr.yaml` runs where no cluster is at hand (a GitOps pipeline), and must give the
verdict and the words `kubectl apply` gives against the CRD. So this module does what the API server
does when the object is created, with the schema from `pxsec.crdschema` and the rules from
`pxsec.celrules` — the very ones `pxsec.crdgen` puts into the CRD — and reads YAML as kubectl does
(`load_documents`), so the document judged is the one the API server would receive.

The check follows the API server's order: unknown fields (strict field validation), null pruning and
defaulting, the OpenAPI schema, list-map keys, then — only if the schema found no "blocking" error,
exactly like the server — the rules. Messages have the API server's shape
(`spec.guestAccess: Unsupported value: "Foo": supported values: ...`), so a person sees the same line
from `pxsec validate` and from `kubectl apply`.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from pxsec.celrules import RULES, location_steps, re2_search
from pxsec.crdschema import DNS1123_SUBDOMAIN, MAX_NAME
from pxsec.crdschema import SPEC_SCHEMA as SPEC_SCHEMA  # re-exported for tests/e2e/test_admission.py
from pxsec.spec import API_GROUP, API_VERSION, KIND

API_VERSION_FULL: Final = f"{API_GROUP}/{API_VERSION}"

# Error types of k8s.io/apimachinery's field.Error, with the words the API server prints for them.
REQUIRED: Final = "Required value"
NOT_SUPPORTED: Final = "Unsupported value"
TOO_LONG: Final = "Too long"
TOO_MANY: Final = "Too many"
TYPE_INVALID: Final = "Invalid type"
INVALID: Final = "Invalid value"
DUPLICATE: Final = "Duplicate value"
UNKNOWN: Final = "Unknown field"
# These schema errors make the API server skip the CEL rules (apiextensions-apiserver's
# `hasBlockingErr`): the object has not got the shape the rules were written for.
BLOCKING: Final = frozenset({REQUIRED, NOT_SUPPORTED, TOO_LONG, TOO_MANY, TYPE_INVALID})
RULES_SKIPPED: Final = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


# --------------------------------------------------------------------------------------------------
# Problems, in the API server's words
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, as the API server would say it.

    `kind` is the field.Error type ("Required value", ...), which decides whether the rules still
    run; `rule` names the rule table entry that found it, if any.
    """

    path: str
    message: str
    kind: str = INVALID
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _go_value(value: Any) -> str:
    """How Go's field.Error prints a bad value: %q for strings, %v for numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, sort_keys=True, default=str)


_GO_ESCAPES: Final = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                      "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (what %q prints): printable runes as they are, \\a-style escapes, \\xHH below
    U+0020 and for DEL, \\uHHHH / \\UHHHHHHHH for other runes that are not printable."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, expected: str | None) -> bool:
    if expected is None:
        return True
    actual = _json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --------------------------------------------------------------------------------------------------
# The schema checks, in the API server's order
# --------------------------------------------------------------------------------------------------


def _prune_unknown(value: Any, schema: Mapping[str, Any] | None, path: str, out: list[Problem]) -> None:
    """Report and drop fields the schema does not declare, like strict field validation does.

    This follows the API server's pruning walk, quirks included: a mapping where the schema wants
    something else (say, an object for a list) has no declared fields, so all its keys are unknown.
    """
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties: Mapping[str, Any] = (schema or {}).get("properties") or {}
        extra = (schema or {}).get("additionalProperties")
        for key in list(value):
            where = _child(path, str(key))
            if key in properties:
                _prune_unknown(value[key], properties[key], where, out)
            elif isinstance(extra, Mapping):
                _prune_unknown(value[key], extra, where, out)
            else:
                hint = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.8)
                suffix = f'; did you mean "{hint[0]}"?' if hint else ""
                message = f'field not declared in schema (unknown field "{where}"{suffix})'
                out.append(Problem(where, message, UNKNOWN))
                del value[key]
    elif isinstance(value, list):
        items = (schema or {}).get("items")
        for index, item in enumerate(value):
            _prune_unknown(item, items if isinstance(items, Mapping) else None, f"{path}[{index}]", out)


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Prune nulls and fill in defaults in place, the way the API server does before validating.

    A null in a field that is not nullable is dropped and, if the field has a default, replaced by
    it; a default is itself defaulted further down (so `system: {}` gets its `secretName`).
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key in [k for k, v in value.items() if v is None and k in properties]:
            del value[key]
        for key, prop in properties.items():
            if key not in value and "default" in prop:
                value[key] = copy.deepcopy(prop["default"])
        for key, item in value.items():
            if key in properties:
                apply_defaults(item, properties[key])
            elif isinstance(schema.get("additionalProperties"), Mapping):
                apply_defaults(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            apply_defaults(item, schema["items"])


def _not_supported(value: Any, schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    if "enum" in schema and (value not in schema["enum"] or _json_type(value) != _json_type(schema["enum"][0])):
        allowed = ", ".join(json.dumps(str(option)) for option in schema["enum"])
        out.append(Problem(path, f"{NOT_SUPPORTED}: {_go_value(value)}: supported values: {allowed}", NOT_SUPPORTED))


def _check_schema(value: Any, schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    """The OpenAPI checks of kube-openapi, with the API server's wording and order for each failure."""
    expected = schema.get("type")
    if not _type_ok(value, expected):
        actual = _json_type(value)
        message = f'{INVALID}: "{actual}": {path} in body must be of type {expected}: "{actual}"'
        out.append(Problem(path, message, TYPE_INVALID))
        _not_supported(value, schema, path, out)
        return
    if isinstance(value, str):
        # kube-openapi counts characters, whatever its message says
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            message = f"{TOO_LONG}: may not be more than {schema['maxLength']} bytes"
            out.append(Problem(path, message, TOO_LONG))
        if "minLength" in schema and len(value) < schema["minLength"]:
            message = f"{INVALID}: {_go_value(value)}: {path} in body should be at least "
            out.append(Problem(path, message + f"{schema['minLength']} chars long"))
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            message = f"{TOO_MANY}: {len(value)}: must have at most {schema['maxItems']} items"
            out.append(Problem(path, message, TOO_MANY))
        if "minItems" in schema and len(value) < schema["minItems"]:
            message = f"{INVALID}: {len(value)}: {path} in body should have at least {schema['minItems']} items"
            out.append(Problem(path, message))
        for index, item in enumerate(value):
            _check_schema(item, schema["items"], f"{path}[{index}]", out)
        _check_list_map(value, schema, path, out)
    elif isinstance(value, Mapping):
        for name in schema.get("required", []):
            if name not in value:
                out.append(Problem(_child(path, name), REQUIRED, REQUIRED))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            message = f"{TOO_MANY}: {len(value)}: must have at most {schema['maxProperties']} items"
            out.append(Problem(path, message, TOO_MANY))
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _check_schema(item, properties[key], _child(path, key), out)
            elif isinstance(extra, Mapping):
                _check_schema(item, extra, _child(path, key), out)
    _not_supported(value, schema, path, out)


def _check_list_map(value: list[Any], schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    """x-kubernetes-list-type: map — no two items with the same keys."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys:
        return
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not all(k in item for k in keys):
            continue
        identity = json.dumps({k: item[k] for k in keys}, separators=(",", ":"), sort_keys=True)
        if identity in seen:
            out.append(Problem(f"{path}[{index}]", f"{DUPLICATE}: {identity}", DUPLICATE))
        seen.add(identity)


# --------------------------------------------------------------------------------------------------
# The rules, and the checks of metadata
# --------------------------------------------------------------------------------------------------


def _values_at(value: Any, steps: list[str], path: str) -> Iterator[tuple[str, Any]]:
    """Every value present at `steps` below `value`, with its path as the API server writes it."""
    if not steps:
        yield path, value
        return
    step, rest = steps[0], steps[1:]
    if step == "[*]":
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _values_at(item, rest, f"{path}[{index}]")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                yield from _values_at(item, rest, f"{path}[{key}]")
    elif isinstance(value, Mapping) and step in value:
        yield from _values_at(value[step], rest, _child(path, step))


def _check_rules(doc: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES:
        for path, value in _values_at(doc, location_steps(rule.location), ""):
            if not rule.check(value):
                where = path + (rule.field_path or "")
                # The API server shows the value the rule judged, unless it is an object or a list.
                shown = "" if isinstance(value, Mapping | list) else f"{_go_value(value)}: "
                problems.append(Problem(where, f"{INVALID}: {shown}{rule.message}", rule=rule.id))
    return problems


def _check_metadata(doc: Mapping[str, Any]) -> list[Problem]:
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return [Problem("metadata", f'{INVALID}: "{_json_type(metadata)}": metadata must be an object', TYPE_INVALID)]
    name = metadata.get("name")
    if name is None:
        if metadata.get("generateName"):
            return []
        return [Problem("metadata.name", f"{REQUIRED}: name or generateName is required", REQUIRED)]
    if not isinstance(name, str) or len(name) > MAX_NAME or not re2_search(DNS1123_SUBDOMAIN, name):
        return [
            Problem(
                "metadata.name",
                f"{INVALID}: {_go_value(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                f"'{DNS1123_SUBDOMAIN[1:-1]}')",
            )
        ]
    return []


# --------------------------------------------------------------------------------------------------
# Reading YAML as kubectl does
# --------------------------------------------------------------------------------------------------


def _as_json(value: Any) -> Any:
    """A deep copy with only JSON types, as the API server receives it after kubectl's YAML-to-JSON:
    mapping keys become strings (`1:` -> "1", `true:` -> "true"), dates and times become strings."""
    if isinstance(value, Mapping):
        return {_go_key(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _go_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _JSONishLoader(yaml.SafeLoader):
    """PyYAML's safe loader, resolving plain scalars the way kubectl's YAML parser (go-yaml v2) does:
    `2030-01-01` stays a string, and `y`, `n` (any case) are booleans like `yes` and `no`. So
    `pxsec validate` judges the same JSON the API server receives."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # JSON keys are strings: `1:` and `true:` are "1" and "true", never the same Python key.
        self.flatten_mapping(node)
        return {
            _go_key(self.construct_object(key, deep=deep)): self.construct_object(value, deep=deep)
            for key, value in node.value
        }

    def construct_go_bool(self, node: yaml.ScalarNode) -> bool:
        return str(self.construct_scalar(node)).lower() in ("y", "yes", "true", "on")


_JSONishLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JSONishLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_JSONishLoader.add_constructor("tag:yaml.org,2002:bool", _JSONishLoader.construct_go_bool)


def load_documents(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, as kubectl reads them (see `_JSONishLoader`).

    Parsing is lazy: a YAML syntax error raises `yaml.YAMLError` only when the broken document is
    reached, so a caller that stops early never sees the documents after it.
    """
    return yaml.load_all(text, Loader=_JSONishLoader)


# --------------------------------------------------------------------------------------------------
# Documents and streams
# --------------------------------------------------------------------------------------------------


_TOP_LEVEL: Final = ("apiVersion", "kind", "metadata", "spec", "status")


def check_document(doc: Mapping[str, Any]) -> list[Problem]:
    """Every problem the API server would report for creating `doc`, as `Problem`s ([] = valid).

    The input is not modified. `status` is ignored, as the API server ignores it on create.
    """
    if not isinstance(doc, Mapping):
        return [Problem("<document>", "not a mapping: a Kubernetes object is a YAML mapping", TYPE_INVALID)]
    problems: list[Problem] = []
    if doc.get("apiVersion") != API_VERSION_FULL or doc.get("kind") != KIND:
        problems.append(
            Problem(
                "apiVersion/kind",
                f"expected apiVersion {API_VERSION_FULL} and kind {KIND}, got "
                f"{doc.get('apiVersion')!s} {doc.get('kind')!s}",
                TYPE_INVALID,
            )
        )
        return problems
    obj: dict[str, Any] = _as_json(doc)
    for key in list(obj):
        if key not in _TOP_LEVEL:
            problems.append(Problem(key, f'field not declared in schema (unknown field "{key}")', UNKNOWN))
            del obj[key]
    obj.pop("status", None)
    problems += _check_metadata(obj)

    spec = obj.get("spec")
    if spec is None:
        problems.append(Problem("spec", REQUIRED, REQUIRED))
    else:
        _prune_unknown(spec, SPEC_SCHEMA, "spec", problems)
        apply_defaults(spec, SPEC_SCHEMA)
        _check_schema(spec, SPEC_SCHEMA, "spec", problems)
    if any(problem.kind in BLOCKING for problem in problems):
        problems.append(Problem("spec", RULES_SKIPPED))
    else:
        problems += _check_rules(obj)
    return problems


def validate_document(doc: Mapping[str, Any]) -> list[str]:
    """Validate one PxSecurity object offline: [] if the API server would accept it, else one
    "field: message" line per problem, worded as the API server words it."""
    return [str(problem) for problem in check_document(doc)]


@dataclass(frozen=True)
class DocumentResult:
    """The verdict on one document of a YAML stream; `index` counts from 1, as people do."""

    index: int
    label: str
    problems: list[str]


def _label(doc: Any) -> str:
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        return ""
    name = str(metadata["name"])
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def is_pxsecurity(doc: Any) -> bool:
    """Whether a document is meant as a PxSecurity (and should be validated as one).

    Anything of our kind or our API group counts, so a wrong apiVersion is reported, not skipped;
    other objects in the same file (Namespaces, ConfigMaps, ...) are not ours to judge.
    """
    if not isinstance(doc, Mapping):
        return True
    api_version = str(doc.get("apiVersion", ""))
    return doc.get("kind") == KIND or api_version.split("/")[0] == API_GROUP


def iter_stream(text: str) -> Iterator[DocumentResult | None]:
    """Validate each document of a YAML stream as it is parsed.

    Yields a DocumentResult for every PxSecurity document and None for a document that is skipped
    (empty, or another kind of object), so callers can count them. Parsing is lazy: a YAML syntax
    error raises `yaml.YAMLError` only when the broken document is reached.
    """
    for index, doc in enumerate(load_documents(text), start=1):
        if doc is None or not is_pxsecurity(doc):
            yield None
            continue
        yield DocumentResult(index, _label(doc), validate_document(doc))


def validate_stream(text: str) -> list[tuple[int, str, list[str]]]:
    """Validate every PxSecurity document in a YAML stream: (document index from 1, "ns/name" or
    name or "", problems) for each. Empty documents and other kinds are skipped. Raises
    `yaml.YAMLError` if the text is not YAML."""
    return [(r.index, r.label, r.problems) for r in iter_stream(text) if r is not None]
