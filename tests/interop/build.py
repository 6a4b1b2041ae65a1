"""Build the Go checker (tests/interop/main.go) once per machine, into the user's cache, like the control plane.

The binary is cached under `${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/interop-<hash>/`, where
the hash covers go.mod, go.sum, main.go and node.go: a warm run only hashes four small files and finds the
binary (milliseconds, no Go needed); any change to the checker or its pinned modules builds a new one.
Modules come from the Go module proxy, exactly the versions go.mod and go.sum pin (-mod=readonly).

    python -m tests.interop.build      # prints the binary's path (what `make interop` runs)
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import gobuild
from tests.support.gobuild import GoBuildError

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go", "node.go")
BINARY = "pxsec-interop"


class CheckerUnavailable(GoBuildError):
    """The Go checker is not cached and cannot be built; the message is one line for a person."""


def source_hash() -> str:
    return gobuild.source_hash(SOURCE_DIR / name for name in SOURCES)


def binary_path() -> Path:
    return gobuild.cache_root() / f"interop-{source_hash()}" / BINARY


def ensure(log: bool = False) -> Path:
    """The checker binary, built first if this version of it is not cached. Raises CheckerUnavailable."""
    return gobuild.ensure(binary_path(), SOURCE_DIR, what="the Go token checker (tests/interop)",
                          why="the differential tests run tests/interop (golang-jwt v4.3.0 and go-oidc v2.2.1, "
                              "the libraries Portworx uses); `make interop` builds it",
                          error=CheckerUnavailable, log=log)


def main() -> int:
    try:
        path = ensure(log=True)
    except CheckerUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
