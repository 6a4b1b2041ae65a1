"""`pxsec validate -f FILE`: judge PxSecurity manifests offline, as the API server would.

Meant for GitOps pipelines and pre-commit hooks, where there is no cluster: the file is read as
`kubectl apply -f` reads it and the verdict and the words are the API server's (see `pxsec.cli.read`).
Output is for people and for grep: one line per problem on stderr, prefixed with where it is, never a
traceback, and never a character from the file that a terminal would act on.

A valid PxSecurity that asks for something Portworx will not give exactly as written (OIDC-only with a
StorageCluster: see `pxsec.caveats`) gets a `warning:` line on stderr; it stays valid.

Exit status: 0 every PxSecurity is valid (whatever the warnings); 1 a PxSecurity is invalid (reading stops
at the first bad one, after printing all its problems), or the input holds no PxSecurity at all; 2 the
input cannot be read (no such file, larger than 3 MiB, not YAML as kubectl reads it, a key written twice,
too many aliases, nested too deep).
"""

from __future__ import annotations

from typing import Final, TextIO

from pxsec import caveats, kubeyaml
from pxsec.cli.read import (
    NO_PXSECURITY,
    ReadError,
    defaulted_spec,
    describe,
    judge_stream,
    printable,
    read_input,
    shown_name,
    streams,
)
from pxsec.spec import parse_spec

EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNREADABLE: Final = 2


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def run_validate(
    path: str, *, stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Validate the PxSecurity objects in `path` (`-` for stdin) and return the exit status.

    Problems go to stderr as `FILE: document N (NAME): FIELD: MESSAGE` (`document N, item M` inside a
    List); warnings as `FILE: document N (NAME): warning: MESSAGE`; success prints `ok: N documents valid` on
    stdout. Objects of other kinds are skipped and counted.
    """
    source, out, err = streams(stdin, stdout, stderr)
    shown = shown_name(path)

    try:
        text = read_input(path, source)
    except ReadError as error:
        print(error, file=err)
        return EXIT_UNREADABLE

    valid = skipped = 0
    try:
        for judged in judge_stream(text):
            if judged.problems is None:
                skipped += 1
                continue
            if judged.problems:
                for problem in judged.problems:
                    print(printable(f"{shown}: {judged.where}: {problem}"), file=err)
                return EXIT_INVALID
            for caveat in caveats.caveats(parse_spec(defaulted_spec(judged.doc))):
                print(printable(f"{shown}: {judged.where}: warning: {caveat}"), file=err)
            valid += 1
    except kubeyaml.KubeYAMLError as error:
        print(describe(shown, error), file=err)
        return EXIT_UNREADABLE

    if valid == 0:
        print(f"{shown}: {NO_PXSECURITY}", file=err)
        return EXIT_INVALID
    others = f" ({_plural(skipped, 'other document')} skipped)" if skipped else ""
    print(f"ok: {_plural(valid, 'document')} valid{others}", file=out)
    return EXIT_OK
