"""The offline PxSecurity checker: the API server's verdict on a document, without a cluster.

`pxsec validate -f cr.yaml` runs where no cluster is at hand (a GitOps pipeline), and must give the
verdict and the words `kubectl apply` gives against the CRD. So this module does what the API server
does when the object is created, with the schema from `pxsec.crdschema` and the rules from
`pxsec.celrules` — the very ones `pxsec.crdgen` puts into the CRD — and its checks of `metadata`, and
reads YAML as kubectl does (`pxsec.kubeyaml`), so the document judged is the one the API server would
receive.

The check follows the API server's order: unknown fields (strict field validation), null pruning and
defaulting, the OpenAPI schema, list-map keys, then — only if the schema found no "blocking" error,
exactly like the server — the rules. Messages have the API server's shape
(`spec.guestAccess: Unsupported value: "Foo": supported values: ...`), so a person sees the same line
from `pxsec validate` and from `kubectl apply`.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from pxsec import kubeyaml
from pxsec.celrules import RULES, location_steps
from pxsec.crdschema import MAX_NAME, apply_defaults
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


def _length_problems(value: str | list[Any], schema: Mapping[str, Any], path: str) -> list[Problem]:
    """maxLength/minLength (kube-openapi counts characters, whatever its message says) and maxItems/minItems,
    in kube-openapi's words."""
    size = len(value)
    text = isinstance(value, str)
    upper, lower = ("maxLength", "minLength") if text else ("maxItems", "minItems")
    out: list[Problem] = []
    if upper in schema and size > schema[upper]:
        out.append(Problem(path, f"{TOO_LONG}: may not be more than {schema[upper]} bytes", TOO_LONG) if text
                   else Problem(path, f"{TOO_MANY}: {size}: must have at most {schema[upper]} items", TOO_MANY))
    if lower in schema and size < schema[lower]:
        shown = _go_value(value) if text else str(size)
        unit = "chars long" if text else "items"
        verb = "be at least" if text else "have at least"
        out.append(Problem(path, f"{INVALID}: {shown}: {path} in body should {verb} {schema[lower]} {unit}"))
    return out


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
    if isinstance(value, str | list):
        out += _length_problems(value, schema, path)
    if isinstance(value, list):
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


# k8s.io/apimachinery v0.37.2: pkg/util/validation and pkg/api/validate/content, as ObjectMeta uses them.
_DNS1123_LABEL: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN: Final = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_LABEL_KEY: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE: Final = "(" + _LABEL_KEY + ")?"
_SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    f"start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS1123_SUBDOMAIN}')"
)
_LABEL_MESSAGE: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    f"and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    f"'{_DNS1123_LABEL}')"
)
_KEY_CHARS: Final = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " \
    "alphanumeric character"
_KEY_REGEX: Final = f"{_KEY_CHARS} (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is " \
    f"'{_LABEL_KEY}')"
_VALUE_MESSAGE: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    f"for validation is '{_LABEL_VALUE}')"
)
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024  # TotalAnnotationSizeLimitB

# ObjectMeta's fields, with the Go type kubectl decodes each into (cli-runtime's metadataOnlyObject).
_OBJECT_META: Final = {
    "name": "string", "generateName": "string", "namespace": "string", "selfLink": "string",
    "uid": "types.UID", "resourceVersion": "string", "generation": "int64", "creationTimestamp": "v1.Time",
    "deletionTimestamp": "v1.Time", "deletionGracePeriodSeconds": "int64", "labels": "map[string]string",
    "annotations": "map[string]string", "ownerReferences": "[]v1.OwnerReference", "finalizers": "[]string",
    "managedFields": "[]v1.ManagedFieldsEntry",
}
_GO_JSON_TYPE: Final = {"string": "string", "integer": "number", "number": "number", "boolean": "bool",
                        "array": "array", "object": "object"}
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _is_subdomain(value: str) -> list[str]:
    """util/validation.IsDNS1123Subdomain."""
    errors = ["must be no more than 253 characters"] if _utf8_len(value) > MAX_NAME else []
    return errors if re.fullmatch(_DNS1123_SUBDOMAIN, value) else [*errors, _SUBDOMAIN_MESSAGE]


def _is_dns_label(value: str) -> list[str]:
    """util/validation.IsDNS1123Label (ValidateNamespaceName)."""
    errors = ["must be no more than 63 characters"] if _utf8_len(value) > 63 else []
    if re.fullmatch(_DNS1123_LABEL, value):
        return errors
    return [*errors, "must not contain dots" if re.fullmatch(_DNS1123_SUBDOMAIN, value) else _LABEL_MESSAGE]


def _is_label_key(value: str) -> list[str]:
    """content.IsLabelKey (IsQualifiedName): labels, annotation keys, finalizers."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        return [f"a valid label key {_KEY_REGEX} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += [f"prefix part {message}" for message in _is_subdomain(prefix)]
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif _utf8_len(name) > 63:
        errors.append("name part must be no more than 63 bytes")
    if not re.fullmatch(_LABEL_KEY, name):
        errors.append(f"name part {_KEY_REGEX}")
    return errors


def _is_label_value(value: str) -> list[str]:
    """content.IsLabelValue."""
    errors = ["must be no more than 63 bytes"] if _utf8_len(value) > 63 else []
    return errors if re.fullmatch(_LABEL_VALUE, value) else [*errors, _VALUE_MESSAGE]


def _prefix_name(name: str) -> str:
    """validation.maskTrailingDash: a generateName prefix is checked as a name, its last two characters
    replaced by "a" when it ends with a dash (the API server's code, quirk included)."""
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def _decode_error(value: Any, field: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_GO_JSON_TYPE.get(_json_type(value), _json_type(value))} into Go struct field " \
        f"{field} of type {go_type} (kubectl cannot decode the object)"


def _metadata_decode_problem(metadata: Any) -> Problem | None:
    """The first error kubectl gets decoding `metadata` into ObjectMeta (JSON order: sorted keys), if any:
    kubectl then sends nothing, so nothing else is judged."""
    if not isinstance(metadata, Mapping):
        return Problem("metadata", _decode_error(metadata, "metadataOnlyObject.metadata", "v1.ObjectMeta"),
                       TYPE_INVALID)
    for key in sorted(metadata):
        value = metadata[key]
        go_type = _OBJECT_META.get(key)
        where = f"metadata.{key}"
        field = f"ObjectMeta.metadata.{key}"
        if go_type is None or value is None:
            continue
        if go_type in ("string", "types.UID") and not isinstance(value, str):
            return Problem(where, _decode_error(value, field, go_type), TYPE_INVALID)
        if go_type == "int64" and (_json_type(value) != "integer" or not -(2**63) <= value < 2**63):
            return Problem(where, _decode_error(value, field, go_type), TYPE_INVALID)
        if go_type == "v1.Time":
            if not isinstance(value, str):
                return Problem(where, _decode_error(value, field, go_type), TYPE_INVALID)
            if not _RFC3339.fullmatch(value):
                return Problem(where, f'parsing time {go_quote(value)} as "2006-01-02T15:04:05Z07:00": cannot '
                               "parse it (kubectl cannot decode the object)", TYPE_INVALID)
        if go_type == "map[string]string":
            if not isinstance(value, Mapping):
                return Problem(where, _decode_error(value, field, go_type), TYPE_INVALID)
            for name in sorted(value):
                if value[name] is not None and not isinstance(value[name], str):
                    return Problem(where, _decode_error(value[name], field, "string"), TYPE_INVALID)
        if go_type.startswith("[]"):
            if not isinstance(value, list):
                return Problem(where, _decode_error(value, field, go_type), TYPE_INVALID)
            item_type = go_type[2:]
            for item in value:
                wanted = "string" if item_type == "string" else "object"
                if item is not None and _json_type(item) != wanted:
                    return Problem(where, _decode_error(item, field, item_type), TYPE_INVALID)
    return None


def _check_metadata(doc: Mapping[str, Any]) -> list[Problem]:
    """What kubectl and the API server say about `metadata` when the object is created.

    First what stops kubectl itself: a field of the wrong type (labels as a list, a number for a name),
    then the API server's strict decoding (fields ObjectMeta does not have) and its ValidateObjectMeta,
    in its order: generateName, name, namespace, labels, annotations, ownerReferences, finalizers.
    One choice of ours: an object with generateName and no name is refused, as `kubectl apply` refuses
    it ("cannot use generate name with apply") — pxsec judges files for `kubectl apply` and GitOps, and
    `pxsec render` could not know the name the API server would make up.
    """
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    decode = _metadata_decode_problem(metadata)
    if decode is not None:
        return [decode]
    problems: list[Problem] = []
    for key in metadata:
        if key not in _OBJECT_META:
            where = f"metadata.{key}"
            problems.append(Problem(where, f"field not declared in schema (unknown field {go_quote(where)})", UNKNOWN))

    def invalid(where: str, value: Any, messages: list[str]) -> None:
        problems.extend(Problem(where, f"{INVALID}: {_go_value(value)}: {message}") for message in messages)

    name = metadata.get("name") or ""
    generate_name = metadata.get("generateName") or ""
    if generate_name:
        invalid("metadata.generateName", generate_name, _is_subdomain(_prefix_name(generate_name)))
    if name:
        invalid("metadata.name", name, _is_subdomain(name))
    elif generate_name:
        problems.append(Problem("metadata.name", f"{REQUIRED}: kubectl apply cannot use metadata.generateName "
                                "(\"cannot use generate name with apply\"), and pxsec judges what kubectl apply "
                                "sends: set metadata.name"))  # kubectl's refusal: the API server never sees it
    else:
        problems.append(Problem("metadata.name", f"{REQUIRED}: name or generateName is required", REQUIRED))
    namespace = metadata.get("namespace") or ""
    if namespace:
        invalid("metadata.namespace", namespace, _is_dns_label(namespace))
    for key, value in (metadata.get("labels") or {}).items():
        invalid("metadata.labels", key, _is_label_key(key))
        invalid("metadata.labels", value or "", _is_label_value(value or ""))
    annotations = metadata.get("annotations") or {}
    for key in annotations:
        invalid("metadata.annotations", key, _is_label_key(key.lower()))
    if sum(_utf8_len(key) + _utf8_len(value or "") for key, value in annotations.items()) > MAX_ANNOTATIONS_BYTES:
        problems.append(Problem("metadata.annotations", f"{TOO_LONG}: may not be more than {MAX_ANNOTATIONS_BYTES} "
                                "bytes", TOO_LONG))
    for index, reference in enumerate(metadata.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not (reference or {}).get(field):
                problems.append(Problem(f"metadata.ownerReferences[{index}].{field}",
                                        f"{REQUIRED}: must not be empty", REQUIRED))
    for finalizer in metadata.get("finalizers") or []:
        invalid("metadata.finalizers", finalizer or "", _is_label_key(finalizer or ""))
    return problems


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


def load_documents(text: str) -> Iterator[Any]:
    """The documents of a YAML stream as kubectl sends them (`pxsec.kubeyaml`: go-yaml v2's scalars,
    duplicate keys refused, aliases and nesting bounded); empty documents are left out.

    Parsing is lazy: an error raises `kubeyaml.KubeYAMLError` (a `yaml.YAMLError`) only when the broken
    document is reached, so a caller that stops early never sees the documents after it.
    """
    return (document.value for document in kubeyaml.documents(text))


# --------------------------------------------------------------------------------------------------
# Documents and streams
# --------------------------------------------------------------------------------------------------


_TOP_LEVEL: Final = ("apiVersion", "kind", "metadata", "spec", "status")
MAX_PROBLEMS: Final = 1000  # per document: more helps no one, and each costs memory (a 3 MiB list can hold 10**6)


class _Full(Exception):
    pass


class _Problems(list[Problem]):
    """The problems of one document, at most MAX_PROBLEMS: one more stops the walk that finds them, so a
    document of a million wrong values costs what a thousand do."""

    def append(self, problem: Problem) -> None:
        if len(self) >= MAX_PROBLEMS:
            raise _Full
        super().append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)

    def __iadd__(self, problems: Iterable[Problem]) -> Self:  # type: ignore[override,misc]
        self.extend(problems)
        return self


def _shown(value: Any) -> str:
    return f"<{_json_type(value)}>" if isinstance(value, Mapping | list) else str(value)


def check_document(doc: Mapping[str, Any]) -> list[Problem]:
    """Every problem the API server would report for creating `doc`, as `Problem`s ([] = valid), up to
    MAX_PROBLEMS (then a last one says the list stops there).

    The input is not modified. `status` is ignored, as the API server ignores it on create.
    """
    if not isinstance(doc, Mapping):
        return [Problem("<document>", "not a mapping: a Kubernetes object is a YAML mapping", TYPE_INVALID)]
    problems = _Problems()
    try:
        _check_document(doc, problems)
    except _Full:
        return [*problems, Problem("<document>", f"more problems not listed: pxsec stops at {MAX_PROBLEMS} per "
                                   "document", TYPE_INVALID)]
    return list(problems)


def _check_document(doc: Mapping[str, Any], problems: list[Problem]) -> None:
    if doc.get("apiVersion") != API_VERSION_FULL or doc.get("kind") != KIND:
        problems.append(
            Problem(
                "apiVersion/kind",
                f"expected apiVersion {API_VERSION_FULL} and kind {KIND}, got "
                f"{_shown(doc.get('apiVersion'))} {_shown(doc.get('kind'))}",
                TYPE_INVALID,
            )
        )
        return
    obj: dict[str, Any] = _as_json(doc)
    for key in list(obj):
        if key not in _TOP_LEVEL:
            problems.append(Problem(key, f"field not declared in schema (unknown field {go_quote(key)})", UNKNOWN))
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


def validate_document(doc: Mapping[str, Any]) -> list[str]:
    """Validate one PxSecurity object offline: [] if the API server would accept it, else one
    "field: message" line per problem, worded as the API server words it."""
    return [str(problem) for problem in check_document(doc)]


@dataclass(frozen=True)
class DocumentResult:
    """The verdict on one object of a YAML stream; `index` counts documents from 1, as people do, and
    `item` the objects of a List document (from 1; None for a plain document)."""

    index: int
    label: str
    problems: list[str]
    item: int | None = None


def _label(doc: Any) -> str:
    """`namespace/name` for messages, quoted as Go's %q quotes it when it holds a character a terminal
    would act on (an escape sequence in a name must never reach the terminal raw)."""
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        return ""
    name = str(metadata["name"])
    namespace = metadata.get("namespace")
    label = f"{namespace}/{name}" if namespace else name
    return label if label.isprintable() else go_quote(label)


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
    """Validate each object of a YAML stream, as kubectl would send it, as it is parsed.

    Yields a DocumentResult for every PxSecurity (a document, or an item of a List document: kubectl
    sends each item on its own) and None for an object that is skipped (another kind), so callers can
    count them. Parsing is lazy: a YAML error raises `kubeyaml.KubeYAMLError` (a `yaml.YAMLError`) only
    when the broken document is reached.
    """
    for found in kubeyaml.objects(text):
        if not is_pxsecurity(found.value):
            yield None
            continue
        yield DocumentResult(found.document, _label(found.value), validate_document(found.value), found.item)


def validate_stream(text: str) -> list[tuple[int, str, list[str]]]:
    """Validate every PxSecurity object in a YAML stream: (document index from 1, "ns/name" or name or "",
    problems) for each. Empty documents and other kinds are skipped. Raises `kubeyaml.KubeYAMLError` (a
    `yaml.YAMLError`) if the text is not read as kubectl reads it."""
    return [(r.index, r.label, r.problems) for r in iter_stream(text) if r is not None]
