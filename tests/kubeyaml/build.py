"""Build the Go reader of tests/kubeyaml (kubectl 1.37's YAML decoding) once per machine, into the cache.

The binary lives in `${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/kubeyaml-<hash>/`, the hash
covering go.mod, go.sum and main.go: a warm run hashes three small files (milliseconds, no Go needed).
Modules are exactly those go.mod and go.sum pin (-mod=readonly), from the module cache or the proxy;
`make controlplane` has already fetched them (k8s.io/apimachinery v0.37.2 and its YAML libraries).

    python -m tests.kubeyaml.build      # prints the binary's path
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pxsec.devcluster import assets

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")
BINARY = "pxsec-kubeyaml"


class Unavailable(RuntimeError):
    """No Go and no cached binary; the message is one line."""


def binary_path() -> Path:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    return assets.cache_dir().parent / f"kubeyaml-{digest.hexdigest()[:16]}" / BINARY


def ensure() -> Path:
    target = binary_path()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        raise Unavailable("Go is not installed: the differential test builds tests/kubeyaml (kubectl's YAML "
                          "libraries) once, with Go from https://go.dev/dl/")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout
    match = re.match(r"go(\d+)\.(\d+)", version.strip())
    if not match or (int(match.group(1)), int(match.group(2))) < assets.MIN_GO:
        env["GOTOOLCHAIN"] = assets.FALLBACK_TOOLCHAIN
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target  # built by another process meanwhile
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / BINARY
            result = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(built), "."],
                                    cwd=SOURCE_DIR, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
                raise Unavailable(f"building tests/kubeyaml failed: {tail}")
            built.replace(target)
    return target


if __name__ == "__main__":
    try:
        print(ensure())
    except Unavailable as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
