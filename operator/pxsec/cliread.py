"""Read the PxSecurity of a file the one way every offline command reads it.

`pxsec validate`, `pxsec render` and `pxsec token verify` must judge the same object the API server
would store: the YAML read as kubectl reads it (`validation.load_documents`: `y` is a boolean, dates
stay strings), checked by the offline validator (`validation.check_document`), then defaulted from the
CRD's schema with nulls pruned (`validation.apply_defaults`, as `pxsec render` does) before it becomes
a typed spec. So `issuer: null` is the default issuer, `size: null` is the default size, and
`issuer: y` is rejected exactly as `validate` rejects it.

`read_pxsecurity` takes the first PxSecurity of the stream (later documents are not parsed), as
`pxsec render` does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Final, TextIO, cast

import yaml

from pxsec.cliparse import InputError, read_input
from pxsec.crdschema import SPEC_SCHEMA
from pxsec.spec import PxSecuritySpec, SpecError, parse_spec
from pxsec.validation import apply_defaults, check_document, is_pxsecurity, load_documents

UNREADABLE: Final = "unreadable"  # no such file, not YAML
INVALID: Final = "invalid"  # no PxSecurity, or one the API server would reject


class ReadError(Exception):
    """One line for the user (`kind` is UNREADABLE or INVALID); never quotes a value from the file."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Loaded:
    """The first PxSecurity of a file: its index in the stream (from 1), the document as written, the
    defaulted spec mapping and the typed spec."""

    index: int
    doc: Mapping[str, Any]
    defaulted: Mapping[str, Any]
    spec: PxSecuritySpec

    @property
    def name(self) -> str | None:
        metadata = self.doc.get("metadata")
        return str(metadata["name"]) if isinstance(metadata, Mapping) and metadata.get("name") else None

    @property
    def namespace(self) -> str | None:
        metadata = self.doc.get("metadata")
        value = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        return str(value) if value else None


def defaulted_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The `spec` of a valid document with the CRD's defaults filled in, as the API server stores it."""
    spec: dict[str, Any] = copy.deepcopy(dict(doc["spec"]))
    apply_defaults(spec, SPEC_SCHEMA)
    return spec


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {problem}"


def read_pxsecurity(path: str, stdin: IO[str]) -> Loaded:
    """The first PxSecurity in `path` (`-`: stdin), validated and defaulted. Raises ReadError."""
    shown = "<stdin>" if path == "-" else path
    try:
        text = read_input(path, cast(TextIO, stdin))
    except InputError as error:
        raise ReadError(str(error), UNREADABLE) from None
    found: tuple[int, Mapping[str, Any]] | None = None
    try:
        for index, doc in enumerate(load_documents(text), start=1):
            if doc is not None and is_pxsecurity(doc):
                found = index, doc
                break
    except yaml.YAMLError as error:
        raise ReadError(f"{shown}: {_yaml_problem(error)}", UNREADABLE) from None
    if found is None:
        raise ReadError(f"{shown}: no PxSecurity document found (apiVersion pxsec.dev/v1alpha1, kind PxSecurity)",
                        INVALID)
    index, doc = found
    problems = check_document(doc)
    if problems:
        more = f" (and {len(problems) - 1} more; run pxsec validate -f {path})" if len(problems) > 1 else ""
        raise ReadError(f"{shown}: document {index}: not a valid PxSecurity: {problems[0]}{more}", INVALID)
    try:
        defaulted = defaulted_spec(doc)
        spec = parse_spec(defaulted)
    except (SpecError, KeyError, TypeError, ValueError) as error:
        raise ReadError(f"{shown}: document {index}: cannot read spec: {error}", INVALID) from None
    return Loaded(index, doc, defaulted, spec)
