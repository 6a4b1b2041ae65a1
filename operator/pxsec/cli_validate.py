"""`pxsec validate -f FILE`: judge PxSecurity manifests offline, as the API server would.

Meant for GitOps pipelines and pre-commit hooks, where there is no cluster: the verdict and the words
are those of `kubectl apply` against the CRD (see `pxsec.validation`). Output is for people and for
grep: one line per problem on stderr, prefixed with where it is, and never a traceback.

Exit status: 0 every PxSecurity is valid; 1 a document is invalid (reading stops at the first bad
document, after printing all its problems), or the input holds no PxSecurity at all; 2 the input
cannot be read (no such file, not YAML).
"""

from __future__ import annotations

import sys
from typing import Final, TextIO

import yaml

from pxsec.cliparse import InputError, read_input
from pxsec.validation import iter_stream

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2


def _yaml_error_line(error: yaml.YAMLError) -> str:
    """A one-line description of a YAML syntax error, with its line and column."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"
    return f"not valid YAML: {problem}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def run_validate(
    path: str, *, stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Validate the PxSecurity documents in `path` (`-` for stdin) and return the exit status.

    Problems go to stderr as `FILE: document N (NAME): FIELD: MESSAGE`; success prints
    `ok: N documents valid` on stdout. Documents of other kinds are skipped and counted.
    """
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    shown = "<stdin>" if path == "-" else path

    try:
        text = read_input(path, stdin)
    except InputError as error:
        print(error, file=err)
        return EXIT_UNREADABLE

    valid = skipped = 0
    try:
        for result in iter_stream(text):
            if result is None:
                skipped += 1
                continue
            if result.problems:
                name = f" ({result.label})" if result.label else ""
                for problem in result.problems:
                    print(f"{shown}: document {result.index}{name}: {problem}", file=err)
                return EXIT_INVALID
            valid += 1
    except yaml.YAMLError as error:
        print(f"{shown}: {_yaml_error_line(error)}", file=err)
        return EXIT_UNREADABLE

    if valid == 0:
        print(
            f"{shown}: no PxSecurity document found (apiVersion pxsec.dev/v1alpha1, kind PxSecurity)",
            file=err,
        )
        return EXIT_INVALID
    others = f" ({_plural(skipped, 'other document')} skipped)" if skipped else ""
    print(f"ok: {_plural(valid, 'document')} valid{others}", file=out)
    return EXIT_OK
