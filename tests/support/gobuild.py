"""Build a Go program of the tests (the token checker, kubectl's YAML reader, helm, kstatus) once per machine
into the user's cache, as the control plane is: `${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/
<name>-<hash>/<binary>`, the hash covering the program's go.mod, go.sum and Go sources (and anything else
that changes the binary), so a warm run only hashes a few small files and needs no Go at all. Modules are
exactly what go.mod and go.sum pin (-mod=readonly), from the module cache or the Go module proxy. A program
that cannot be built is a clear one-line failure, never a skip.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from pxsec.devcluster import assets


class GoBuildError(RuntimeError):
    """Not cached and cannot be built; the message is one line for a person."""


def cache_root() -> Path:
    """The same root as the control plane's cache (`assets.cache_dir()` is a versioned folder in it)."""
    return assets.cache_dir().parent


def source_hash(files: Iterable[Path], extra: bytes = b"") -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(extra)
    return digest.hexdigest()[:16]


def go_env() -> dict[str, str]:
    """Go's environment for a reproducible build: no cgo, -mod=readonly, a released toolchain fetched
    through the proxy when the local Go is older than the control plane needs."""
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


def _ready(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def ensure(target: Path, source_dir: Path, *, what: str, why: str, package: str = ".", ldflags: str = "-s -w",
           error: type[GoBuildError] = GoBuildError, log: bool = False) -> Path:
    """`target`, built from `source_dir` first if this version of it is not cached (under a machine-wide
    lock, so parallel test processes build it once). `what` names it in messages, `why` says what needs it."""
    if _ready(target):
        return target
    go = shutil.which("go")
    if go is None:
        raise error(f"Go is not installed: {why}; it is built once with Go >= {'.'.join(map(str, assets.MIN_GO))} "
                    f"from the Go module proxy into {target.parent} (install Go from https://go.dev/dl/)")
    with assets.file_lock(cache_root() / ".go-build.lock"):
        if _ready(target):
            return target  # another process built it while we waited
        started = time.monotonic()
        if log:
            print(f"Building {what} into {target.parent} …", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            result = subprocess.run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(built), package],
                                    cwd=source_dir, env=go_env(), capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-5:])
                raise error(f"building {what} failed: {tail}")
            built.chmod(0o755)
            built.replace(target)
        if log:
            print(f"  built in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return target
