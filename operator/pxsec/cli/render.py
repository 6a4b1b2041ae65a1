"""`pxsec render -f FILE --target T [-o yaml|json] [--namespace NS]`: the operator's rendering, offline.

For GitOps CI: the output is exactly `pxsec.render.render_text` of the PxSecurity as the API server
would store it — read by `pxsec.cli.read` exactly as `pxsec validate` and `pxsec token verify -f` read
it (as kubectl reads YAML), checked by the same validator, and defaulted from the same schema — so for
yaml it is byte-for-byte the ConfigMap key the operator writes.

Exit status: 0 rendered; 1 the document is invalid or there is no PxSecurity in the input; 2 the input
cannot be read (no such file, larger than 3 MiB, not YAML as kubectl reads it). Errors are one line each
on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final, TextIO

from pxsec.cli.parse import namespace_name
from pxsec.cli.read import (
    INVALID,
    ReadError,
    defaulted_spec,
    first_judged,
    first_pxsecurity,
    load,
    print_problems,
    printable,
    shown_name,
)
from pxsec.render import FORMATS, TARGETS, render_text

__all__ = ["defaulted_spec", "first_pxsecurity", "register", "run_render"]  # the reading is pxsec.cli.read's

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2


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
    shown = shown_name(path)
    try:
        judged = first_judged(path, stdin if stdin is not None else sys.stdin)
        if print_problems(judged, shown, err):
            return EXIT_INVALID
        loaded = load(judged, shown)
    except ReadError as error:
        print(error, file=err)
        return EXIT_INVALID if error.kind == INVALID else EXIT_UNREADABLE
    ns = namespace or loaded.namespace or "default"
    try:
        text_out = render_text(loaded.spec, ns, target, fmt, cr_name=loaded.name)
    except ValueError as error:
        print(printable(f"{shown}: {loaded.where}: cannot render: {error}"), file=err)
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
        "-n", "--namespace", type=namespace_name, default=None,
        help="namespace of the PxSecurity and its Secrets (default: the document's, else default)",
    )
    parser.set_defaults(func=_render)
