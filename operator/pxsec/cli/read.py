"""The one way the command line reads a PxSecurity file: `pxsec validate`, `pxsec render` and
`pxsec token verify -f` all come through here, so they agree on what a file says.

1. `read_input`: the file (or stdin) as text, at most `MAX_INPUT_BYTES` (3 MiB, the API server's limit
   for a request body) — the size is checked before anything is parsed; UTF-8, or UTF-16 with a byte
   order mark (read as kubectl reads it: one document).
2. `pxsec.kubeyaml`: the YAML as kubectl 1.37 reads it (go-yaml v2's scalars, so `secretName: 1e3` is a
   number and `size: 0o4000` is 2048), a key written twice refused, aliases and nesting bounded, and
   the items of a `kind: List` judged one by one as kubectl sends them.
3. `pxsec.validation.check_document`: the API server's verdict, `metadata` included.
4. `defaulted_spec` / `pxsec.spec.parse_spec`: the spec as the API server stores it, typed.

Every message is one line, with characters a terminal would act on escaped (`printable`).

`read_pxsecurity` and `first_pxsecurity` take the first PxSecurity of the stream (later documents are
not parsed); `judge_stream` judges them all.
"""

from __future__ import annotations

import codecs
import copy
import errno
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Final

from pxsec import kubeyaml
from pxsec.crdschema import SPEC_SCHEMA, apply_defaults
from pxsec.spec import PxSecuritySpec, SpecError, parse_spec
from pxsec.validation import Problem, check_document, is_pxsecurity

UNREADABLE: Final = "unreadable"  # no such file, too large, not YAML as kubectl reads it
INVALID: Final = "invalid"  # no PxSecurity, or one the API server would reject
MAX_INPUT_BYTES: Final = kubeyaml.MAX_OBJECT_BYTES
NO_PXSECURITY: Final = "no PxSecurity document found (apiVersion pxsec.dev/v1alpha1, kind PxSecurity)"


class ReadError(Exception):
    """One line for the user (`kind` is UNREADABLE or INVALID); never quotes a secret."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(printable(message))
        self.kind = kind


_ESCAPES: Final = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def printable(text: str) -> str:
    """`text` with every character a terminal could act on (escape sequences, C1 controls, bidi
    overrides, line breaks) written as a Go-style escape, so a name from a file never reaches the
    terminal raw and a message stays one line."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def streams(stdin: IO[str] | None, stdout: IO[str] | None, stderr: IO[str] | None) -> tuple[IO[str], IO[str], IO[str]]:
    """(stdin, stdout, stderr): the ones given (tests), else the process's."""
    return (stdin if stdin is not None else sys.stdin, stdout if stdout is not None else sys.stdout,
            stderr if stderr is not None else sys.stderr)


def shown_name(path: str) -> str:
    return "<stdin>" if path == "-" else printable(path)


# --------------------------------------------------------------------------------------------------
# 1. Reading the input
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """The input: its text, and whether kubectl would read it as one document (UTF-16)."""

    text: str
    whole: bool = False


def _too_large(shown: str, size: int | None) -> ReadError:
    amount = f"{size} bytes" if size is not None else f"more than {MAX_INPUT_BYTES} bytes"
    return ReadError(f"{shown}: {amount}: larger than 3 MiB ({MAX_INPUT_BYTES} bytes), the API server's limit for "
                     "a request body; pxsec reads no more (split the file, or give it only the PxSecurity)",
                     UNREADABLE)


# Errors that mean the path was never opened.
NOT_OPENED: Final = frozenset({errno.ENOENT, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EINVAL, errno.ELOOP})
HIDDEN_NAME: Final = "the file given (its name is not shown: it may be a secret given in the place of a file)"


def read_input(path: str, stdin: IO[str], *, hide_unopened: bool = False) -> Text:
    """The text of `path` (`-`: stdin). At most MAX_INPUT_BYTES are read: a larger input is refused
    before anything is parsed. Raises ReadError (UNREADABLE) with `<name>: cannot read: <reason>`.
    `hide_unopened`: a path that cannot be opened is not shown (commands that take tokens and keys as
    arguments, where a token given in the place of a file name would be printed)."""
    shown = shown_name(path)
    size: int | None = None
    try:
        if path == "-":
            binary = getattr(stdin, "buffer", None)
            if binary is not None:
                data = binary.read(MAX_INPUT_BYTES + 1)
            else:  # a text stream (tests): its characters, encoded back
                data = stdin.read(MAX_INPUT_BYTES + 1).encode("utf-8", "surrogateescape")
        else:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISREG(info.st_mode):
                    size = info.st_size
                    if size > MAX_INPUT_BYTES:
                        raise _too_large(shown, size)
                data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        if hide_unopened and path != "-" and error.errno in NOT_OPENED:
            shown = HIDDEN_NAME
        raise ReadError(f"{shown}: cannot read: {error.strerror or type(error).__name__}", UNREADABLE) from None
    if len(data) > MAX_INPUT_BYTES:
        raise _too_large(shown, size if size is not None and size > MAX_INPUT_BYTES else None)
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return Text(data.decode("utf-16"), whole=True)
        return Text(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ReadError(f"{shown}: cannot read: not UTF-8 text", UNREADABLE) from None


# --------------------------------------------------------------------------------------------------
# 2 and 3. Documents, read as kubectl reads them, judged as the API server judges them
# --------------------------------------------------------------------------------------------------


def describe(shown: str, error: kubeyaml.KubeYAMLError) -> str:
    """One line for a stream kubectl would not read (or pxsec will not): file, where, what."""
    where = []
    if error.document is not None and (error.limit or error.line is None):
        where.append(f"document {error.document}")
    if error.line is not None:
        where.append(f"line {error.line}, column {error.column}")
    return printable(f"{shown}: {', '.join(where) + ': ' if where else ''}{error.problem}")


@dataclass(frozen=True)
class Judged:
    """One object of the stream as kubectl would send it, and the API server's problems with it (None: not
    a PxSecurity, skipped)."""

    found: kubeyaml.Item
    problems: list[Problem] | None

    @property
    def doc(self) -> Any:
        return self.found.value

    @property
    def where(self) -> str:
        """`document 2` or `document 2, item 3`, and ` (namespace/name)` when it has a name."""
        label = object_label(self.found.value)
        return self.found.where + (f" ({label})" if label else "")


def object_label(doc: Any) -> str:
    """`namespace/name` (or `name`) of an object for messages; characters a terminal would act on escaped."""
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return ""
    namespace = metadata.get("namespace")
    name = f"{namespace}/{metadata['name']}" if isinstance(namespace, str) and namespace else metadata["name"]
    return printable(name)


def judge_stream(text: Text) -> Iterator[Judged]:
    """Every object of the stream, judged when it is a PxSecurity, lazily (a caller that stops early never
    parses the rest). Raises kubeyaml.KubeYAMLError."""
    for found in kubeyaml.objects(text.text, whole=text.whole):
        yield Judged(found, check_document(found.value) if is_pxsecurity(found.value) else None)


def first_pxsecurity(text: str) -> tuple[int, dict[str, Any]] | None:
    """(document number from 1, object) of the first PxSecurity in a stream, as kubectl reads it (later
    documents are not parsed, so a broken document after it does not matter). Raises KubeYAMLError."""
    for found in kubeyaml.objects(text):
        if is_pxsecurity(found.value):
            return found.document, found.value
    return None


# --------------------------------------------------------------------------------------------------
# 4. The spec as the API server stores it
# --------------------------------------------------------------------------------------------------


def defaulted_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The `spec` of a valid document with the CRD's defaults filled in, as the API server stores it."""
    spec: dict[str, Any] = copy.deepcopy(dict(doc["spec"]))
    apply_defaults(spec, SPEC_SCHEMA)
    return spec


@dataclass(frozen=True)
class Loaded:
    """The first PxSecurity of a file: its document number (from 1), where it is for messages, the
    document as kubectl sends it, the defaulted spec mapping and the typed spec."""

    index: int
    doc: Mapping[str, Any]
    defaulted: Mapping[str, Any]
    spec: PxSecuritySpec
    where: str = ""

    @property
    def name(self) -> str | None:
        metadata = self.doc.get("metadata")
        return str(metadata["name"]) if isinstance(metadata, Mapping) and metadata.get("name") else None

    @property
    def namespace(self) -> str | None:
        metadata = self.doc.get("metadata")
        value = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        return str(value) if value else None


def print_problems(judged: Judged, shown: str, err: IO[str]) -> bool:
    """Print each problem the API server would have with the object, one line each; whether there were any."""
    for problem in judged.problems or []:
        print(printable(f"{shown}: {judged.where}: {problem}"), file=err)
    return bool(judged.problems)


def first_judged(path: str, stdin: IO[str], *, hide_unopened: bool = False) -> Judged:
    """The first PxSecurity of `path` (`-`: stdin) with its problems. Raises ReadError: UNREADABLE for an
    input that cannot be read, INVALID when it holds no PxSecurity."""
    shown = shown_name(path)
    text = read_input(path, stdin, hide_unopened=hide_unopened)
    try:
        for judged in judge_stream(text):
            if judged.problems is not None:
                return judged
    except kubeyaml.KubeYAMLError as error:
        raise ReadError(describe(shown, error), UNREADABLE) from None
    raise ReadError(f"{shown}: {NO_PXSECURITY}", INVALID)


def load(judged: Judged, shown: str) -> Loaded:
    """A valid PxSecurity, defaulted and typed. Raises ReadError (INVALID)."""
    try:
        defaulted = defaulted_spec(judged.doc)
        spec = parse_spec(defaulted)
    except (SpecError, KeyError, TypeError, ValueError) as error:
        raise ReadError(f"{shown}: {judged.where}: cannot read spec: {error}", INVALID) from None
    return Loaded(judged.found.document, judged.doc, defaulted, spec, judged.where)


def read_pxsecurity(path: str, stdin: IO[str], *, hide_unopened: bool = False) -> Loaded:
    """The first PxSecurity in `path` (`-`: stdin), validated and defaulted. Raises ReadError; for an
    invalid one, its first problem and how many more there are."""
    shown = shown_name(path)
    judged = first_judged(path, stdin, hide_unopened=hide_unopened)
    problems = judged.problems or []
    if problems:
        more = f" (and {len(problems) - 1} more; run pxsec validate -f {path})" if len(problems) > 1 else ""
        raise ReadError(f"{shown}: {judged.where}: not a valid PxSecurity: {problems[0]}{more}", INVALID)
    return load(judged, shown)
