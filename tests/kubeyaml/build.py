"""Build the Go reader of tests/kubeyaml (kubectl 1.37's YAML decoding) once per machine, into the cache.

The binary lives in `${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/kubeyaml-<hash>/`, the hash
covering go.mod, go.sum and main.go: a warm run hashes three small files (milliseconds, no Go needed).
Modules are exactly those go.mod and go.sum pin (-mod=readonly), from the module cache or the proxy;
`make controlplane` has already fetched them (k8s.io/apimachinery v0.37.2 and its YAML libraries).

    python -m tests.kubeyaml.build      # prints the binary's path (`make tools` runs it)
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import gobuild
from tests.support.gobuild import GoBuildError

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")
BINARY = "pxsec-kubeyaml"


class Unavailable(GoBuildError):
    """No Go and no cached binary; the message is one line."""


def binary_path() -> Path:
    return gobuild.cache_root() / f"kubeyaml-{gobuild.source_hash(SOURCE_DIR / n for n in SOURCES)}" / BINARY


def ensure() -> Path:
    return gobuild.ensure(binary_path(), SOURCE_DIR, what="tests/kubeyaml (kubectl's YAML libraries)",
                          why="the differential test runs tests/kubeyaml (kubectl's YAML libraries); "
                              "`make tools` builds it",
                          error=Unavailable)


if __name__ == "__main__":
    try:
        print(ensure())
    except Unavailable as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
