"""Build the Go checker (tests/interop/main.go) once per machine, into the user's cache, like the control plane.

The binary is cached under `${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/interop-<hash>/`, where
the hash covers go.mod, go.sum and main.go: a warm run only hashes three small files and finds the
binary (milliseconds, no Go needed); any change to the checker or its pinned modules builds a new one.
Modules come from the Go module proxy, exactly the versions go.mod and go.sum pin (-mod=readonly).

    python -m tests.interop.build      # prints the binary's path (what `make interop` runs)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pxsec.devcluster import assets

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")
BINARY = "pxsec-interop"


class CheckerUnavailable(RuntimeError):
    """The Go checker is not cached and cannot be built; the message is one line for a person."""


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """The same root as the control plane's cache (`assets.cache_dir()` is a versioned folder in it)."""
    return assets.cache_dir().parent


def binary_path() -> Path:
    return cache_root() / f"interop-{source_hash()}" / BINARY


def _go_env() -> dict[str, str]:
    go = shutil.which("go")
    assert go is not None
    env = dict(os.environ)
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)", version.stdout.strip())
    if not match or (int(match.group(1)), int(match.group(2))) < assets.MIN_GO:
        env["GOTOOLCHAIN"] = assets.FALLBACK_TOOLCHAIN
    env["CGO_ENABLED"] = "0"
    flags = [f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join([*flags, "-mod=readonly"])
    return env


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".interop-build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(log: bool = False) -> Path:
    """The checker binary, built first if this version of it is not cached. Raises CheckerUnavailable."""
    target = binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise CheckerUnavailable(
            "Go is not installed: the differential tests run tests/interop (golang-jwt v4.3.0 and go-oidc v2.2.1, "
            f"the libraries Portworx uses), which is built once with Go >= {'.'.join(map(str, assets.MIN_GO))} "
            f"from the Go module proxy into {target.parent} (install Go from https://go.dev/dl/, then "
            "`make interop`)")
    with _lock(cache_root()):
        if target.is_file() and os.access(target, os.X_OK):
            return target  # another process built it while we waited
        started = time.monotonic()
        if log:
            print(f"Building the Go token checker (tests/interop) into {target.parent} …", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / BINARY
            result = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(built), "."],
                                    cwd=SOURCE_DIR, env=_go_env(), capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
                raise CheckerUnavailable(f"building the Go token checker (tests/interop) failed: {tail}")
            built.chmod(0o755)
            built.replace(target)
        if log:
            print(f"  built in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return target


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
