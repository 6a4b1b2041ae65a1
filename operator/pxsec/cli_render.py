"""`pxsec render -f FILE --target T [-o yaml|json] [--namespace NS]`: the operator's rendering, offline.

For GitOps CI: the output is exactly `pxsec.render.render_text` of the PxSecurity as the API server
would store it — read with the validator's YAML rules, checked by the same validator, and defaulted
from the same schema — so for yaml it is byte-for-byte the ConfigMap key the operator writes.

Exit status: 0 rendered; 1 the document is invalid or there is no PxSecurity in the input; 2 the input
cannot be read (no such file, not YAML). Errors are one line each on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, Final, TextIO

import yaml

from pxsec.cliparse import InputError, read_input
from pxsec.crdschema import SPEC_SCHEMA
from pxsec.render import FORMATS, TARGETS, render_text
from pxsec.spec import SpecError, parse_spec

# The validator's loader resolves scalars as kubectl does (`y` is a boolean, dates stay strings); the
# document rendered must be the document judged, so it is read with the very same loader.
from pxsec.validation import apply_defaults, is_pxsecurity, load_documents, validate_document

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2


def first_pxsecurity(text: str) -> tuple[int, dict[str, Any]] | None:
    """(index from 1, document) of the first PxSecurity in a YAML stream; later documents are not
    parsed, so a broken document after it does not matter."""
    for index, doc in enumerate(load_documents(text), start=1):
        if doc is not None and is_pxsecurity(doc):
            return index, doc
    return None


def defaulted_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The `spec` of a valid document with the CRD's defaults filled in, as the API server stores it."""
    spec: dict[str, Any] = copy.deepcopy(doc["spec"])
    apply_defaults(spec, SPEC_SCHEMA)
    return spec


def run_render(
    path: str,
    target: str,
    fmt: str = "yaml",
    namespace: str | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Render the first PxSecurity in `path` (`-` for stdin) and return the exit status.

    The namespace is `namespace`, else the document's metadata.namespace, else `default` (where
    kubectl would create it) — it names where the Secrets are, in StorageClass parameters and the
    StorageCluster patch.
    """
    err = stderr if stderr is not None else sys.stderr
    out = stdout if stdout is not None else sys.stdout
    shown = "<stdin>" if path == "-" else path
    try:
        text = read_input(path, stdin if stdin is not None else sys.stdin)
    except InputError as error:
        print(error, file=err)
        return EXIT_UNREADABLE

    try:
        found = first_pxsecurity(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        print(f"{shown}: {where}not valid YAML: {problem}", file=err)
        return EXIT_UNREADABLE
    if found is None:
        print(f"{shown}: no PxSecurity document found (apiVersion pxsec.dev/v1alpha1, kind PxSecurity)", file=err)
        return EXIT_INVALID
    index, doc = found
    problems = validate_document(doc)
    if problems:
        for problem in problems:
            print(f"{shown}: document {index}: {problem}", file=err)
        return EXIT_INVALID

    metadata = doc.get("metadata") or {}
    ns = namespace or metadata.get("namespace") or "default"
    try:
        spec = parse_spec(defaulted_spec(doc))
        text_out = render_text(spec, str(ns), target, fmt, cr_name=metadata.get("name"))
    except (SpecError, ValueError) as error:
        print(f"{shown}: document {index}: cannot render: {error}", file=err)
        return EXIT_INVALID
    out.write(text_out)
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    return run_render(args.file, args.target, args.output, args.namespace)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `render` to the `pxsec` command line (call with the object `add_subparsers()` returned)."""
    parser = subparsers.add_parser(
        "render",
        help="print the initialization parameters the operator renders (offline)",
        description="Render the PX-Security initialization parameters of the first PxSecurity in a file, "
        "exactly as the operator writes them into its ConfigMap.",
    )
    parser.add_argument("-f", "--file", required=True, help="YAML file with a PxSecurity, or - for stdin")
    parser.add_argument("--target", required=True, choices=TARGETS, help="what to render")
    parser.add_argument("-o", "--output", choices=FORMATS, default="yaml", help="output format (default yaml)")
    parser.add_argument(
        "-n", "--namespace", default=None,
        help="namespace of the PxSecurity and its Secrets (default: the document's, else default)",
    )
    parser.set_defaults(func=_render)
