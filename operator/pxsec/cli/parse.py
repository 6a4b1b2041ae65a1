"""The command line's argument parser: errors are one line and never echo an argument's value.

argparse repeats unrecognized arguments and invalid choices verbatim, and prints a usage block before
the error. For `pxsec` a misplaced argument may be a token or a secret (`pxsec token <the token>`), and
users get one line, not a block: values are replaced by a count, flags are shown up to any `=`.
Subparsers inherit the class of the parser that creates them, so every subcommand behaves the same.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_USAGE = 2


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def namespace_name(text: str) -> str:
    """An argparse type: a namespace name (a DNS-1123 label), or a usage error that does not repeat it
    (escape sequences or a secret typed in its place stay off the terminal)."""
    if not _DNS_LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError("not a namespace name (lowercase letters, digits and '-', at most 63)")
    return text


def one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's error on one line, with an invalid choice's value left out."""
    line = message.splitlines()[0] if message else "bad arguments"
    line = re.sub(r"invalid choice: .*? \(choose from", "invalid choice (choose from", line)
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {line} (see {parser.prog} --help)\n")


class OneLineParser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--shared=S` must never be "ambiguous option: --shared=S"
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        one_line_error(self, message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            flags = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-") and len(extra) > 1]
            values = len(extras) - len(flags)
            shown = flags + ([f"{values} value{'s' if values > 1 else ''} (not shown)"] if values else [])
            self.error(f"unrecognized arguments: {', '.join(shown)}")
        return parsed, extras
