"""Build the operator's OCI image without a container engine and without a base image from a registry.

    python -m image.build [--out dist]     # what `make image` runs: dist/px-security-operator-<version>.oci.tar
    python -m image.build --lock           # refresh image/*.lock from pyproject.toml (`make image-lock`)

Steps (each one here because an engine-built image cannot give it: a pinned, auditable, reproducible rootfs):

1. the project's source as committed (`git archive HEAD`): uncommitted files never leak into an image;
2. a Debian root filesystem (`mmdebstrap --variant=essential --include=python3`), trimmed to python3's
   run-time Depends closure (image/rootfs.py): no shell, no dpkg, no apt, no perl, no pip, no compiler;
3. the dependencies from PyPI exactly as image/requirements.lock pins them (--require-hashes, wheels only,
   --no-deps) and the project's wheel, built with the hash-pinned backend of image/build-requirements.lock;
4. bytecode compiled at build time by the image's own python3 with unchecked-hash pycs (valid whatever the
   file times): a read-only root filesystem never sees Python try to write one;
5. an SBOM (image/sbom.py), every mtime clamped to SOURCE_DATE_EPOCH, then umoci (one layer, the config the
   Deployment needs) and a sorted, fixed-time tar of the OCI layout: two builds of one commit are one digest.

The result is cached by the hash of its inputs, as the control plane's binaries are:
`${PXSEC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/pxsec}/image-<hash>/`, the hash covering the lock files, the
git trees of operator/ and pyproject.toml at HEAD, the Deployment's args (the image's Cmd), these build scripts
and the Debian suite and mirrors. A warm `make image` only hashes and copies.

Needs root (chroot, file ownership in the layer). The Debian tools it uses (mmdebstrap, umoci, skopeo, runc)
are installed with apt-get when missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from image import rootfs, sbom
from pxsec.devcluster import assets

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
NAME = "px-security-operator"
SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
PYTHON = "3.11"  # bookworm's python3
SITE = f"/usr/local/lib/python{PYTHON}/dist-packages"  # on Debian python3's default sys.path: no PYTHONPATH
UID = 65532
LOCK = HERE / "requirements.lock"
BUILD_LOCK = HERE / "build-requirements.lock"
# What goes into the image from the commit: the package and its metadata. (The wheel's long description, the
# README, is replaced by a pointer: a documentation change is not a new image.)
SOURCES = ("pyproject.toml", "operator")
README_STUB = "# px-security-operator\n\nSee https://github.com/pxsec/px-security-operator\n"
DEPLOYMENT = "manifests/operator/deployment.yaml"
# Debian tools the build and the container test use, by the package that has them.
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "umoci": "umoci", "skopeo": "skopeo", "runc": "runc"}
# Installed but never imported at run time (neither pxsec nor kopf imports kubernetes.aio: 68 MiB; aiohttp's
# pytest plugin and its test helpers), and the packages' own tests (also every test_*.py, *_test.py below).
UNUSED = ("kubernetes/aio", "certifi/tests", "websocket/tests", "aiohttp/pytest_plugin.py", "aiohttp/test_utils.py",
          "annotated_types/test_cases.py")


class BuildError(RuntimeError):
    """The image cannot be built; one line (plus a log tail) for a person."""


@dataclasses.dataclass(frozen=True)
class Image:
    """A built image: the OCI archive, its SBOM, and what the build measured (build.json)."""

    directory: Path
    version: str

    @property
    def archive(self) -> Path:
        return self.directory / f"{NAME}-{self.version}.oci.tar"

    @property
    def sbom(self) -> Path:
        return self.directory / f"{NAME}-{self.version}.sbom.cdx.json"

    @property
    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / "build.json").read_text())
        return data

    @property
    def digest(self) -> str:
        return str(self.info["manifest_digest"])


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        log: Path | None = None) -> str:
    """Run a command; its output goes to `log` (when given) and its tail into the error when it fails."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise BuildError(f"{args[0]} failed (exit {result.returncode}): {' '.join(args[:6])} …\n{tail}")
    return result.stdout


def git(*args: str) -> str:
    return run(["git", "-C", str(ROOT), *args]).strip()


# -- host tools --------------------------------------------------------------------------------------------


def ensure_host_tools(tools: dict[str, str] = HOST_TOOLS) -> None:
    """apt-get install the Debian packages whose commands are missing (CI is a fresh machine each time)."""
    missing = sorted({package for command, package in tools.items() if shutil.which(command) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(f"missing {', '.join(missing)}: run as root, or apt-get install {' '.join(missing)}")
    say(f"Installing {' '.join(missing)} with apt-get …")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


# -- inputs and the cache ----------------------------------------------------------------------------------


def version() -> str:
    """The project's version at HEAD (pyproject.toml): the image's tag."""
    import tomllib

    return str(tomllib.loads(git("show", "HEAD:pyproject.toml"))["project"]["version"])


def deployment_args() -> list[str]:
    """The Deployment's container args at HEAD: the image's default command (Cmd), so `podman run IMAGE`
    runs what the chart and manifests/ run."""
    doc = yaml.safe_load(git("show", f"HEAD:{DEPLOYMENT}"))
    return [str(a) for a in doc["spec"]["template"]["spec"]["containers"][0]["args"]]


def source_date_epoch() -> int:
    """The commit time of the last commit that changed what goes into the image: the same for every build of
    these inputs, whatever else was committed since."""
    paths = [*SOURCES, "image"]
    return int(git("log", "-1", "--format=%ct", "HEAD", "--", *paths) or git("log", "-1", "--format=%ct", "HEAD"))


def input_hash() -> str:
    """What decides the image's bytes: the lock files, the committed trees that go in, these scripts, the
    Debian suite and mirrors. (Debian point releases within the suite are not in it: the cache is per suite.)"""
    digest = hashlib.sha256()
    for path in (LOCK, BUILD_LOCK, *sorted(HERE.glob("*.py"))):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for tree in SOURCES:
        digest.update(f"{tree}={git('rev-parse', f'HEAD:{tree}')}\0".encode())
    digest.update(json.dumps(deployment_args()).encode())
    digest.update("\n".join((SUITE, *MIRRORS, str(source_date_epoch()))).encode())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    return assets.cache_dir().parent


def cached() -> Image:
    """Where the image of these inputs is (or will be) cached."""
    return Image(cache_root() / f"image-{input_hash()}", version())


def collect_garbage(keep: Path, unused_days: float = 7) -> None:
    """Remove the cached images no build or test has used for `unused_days` (every commit that changes
    operator/ is a new one, 45 MB each). A cache hit touches its directory; other checkouts on this machine
    share the cache, so a recent one is never removed under them."""
    deadline = time.time() - unused_days * 86400
    for directory in cache_root().glob("image-" + "[0-9a-f]" * 16):
        if directory != keep and directory.stat().st_mtime < deadline:
            shutil.rmtree(directory, ignore_errors=True)


def ensure(log: bool = True) -> Image:
    """The image of HEAD's inputs, built (about a minute or two) only when not cached."""
    image = cached()
    if (image.directory / "build.json").is_file():
        os.utime(image.directory)
        return image
    with assets.file_lock(cache_root() / ".image-build.lock"):
        if (image.directory / "build.json").is_file():
            return image
        started = time.monotonic()
        if log:
            say(f"Building the operator image into {image.directory} …")
        image.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".image-", dir=image.directory.parent))
        try:
            build(staging / "out", staging / "work", cache_root() / "image-downloads")
            shutil.rmtree(image.directory, ignore_errors=True)
            (staging / "out").replace(image.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if log:
            say(f"  built in {time.monotonic() - started:.0f}s: {image.digest}")
        collect_garbage(keep=image.directory)
    return image


# -- the build ---------------------------------------------------------------------------------------------


def check_lock() -> None:
    """Every dependency pyproject.toml pins is in image/requirements.lock at the same version: a lock that
    lags behind pyproject.toml would ship other code than the tests ran."""
    import tomllib

    deps = tomllib.loads(git("show", "HEAD:pyproject.toml"))["project"]["dependencies"]
    lock = LOCK.read_text()
    for dep in deps:
        name, _, pinned = dep.partition("==")
        name = name.split("[")[0].strip().lower().replace("_", "-")
        if f"\n{name}=={pinned.strip()} " not in lock:
            raise BuildError(f"image/requirements.lock does not pin {name}=={pinned.strip()} as pyproject.toml "
                             "does: run `make image-lock`")


def build(out: Path, work: Path, downloads: Path) -> None:
    """Build into `out` (archive, SBOM, build.json); `work` is scratch; `downloads` caches .debs and wheels
    (they only save downloading: every byte is checked, by apt's signatures and by the lock's hashes)."""
    if os.geteuid() != 0:
        raise BuildError("the image build needs root (chroot, file ownership in the layer)")
    ensure_host_tools()
    check_lock()
    started = time.monotonic()
    epoch = source_date_epoch()
    tag = version()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), TZ="UTC", LC_ALL="C.UTF-8", PYTHONHASHSEED="0")
    shutil.rmtree(work, ignore_errors=True)
    for path in (out, work, downloads / "debs", downloads / "pip"):
        path.mkdir(parents=True, exist_ok=True)
    logfile = work / "build.log"
    root = work / "rootfs"

    def step(what: str) -> None:
        say(f"  [{time.monotonic() - started:5.1f}s] {what}")

    step(f"source: git archive HEAD ({', '.join(SOURCES)}), SOURCE_DATE_EPOCH={epoch}")
    src = work / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", *SOURCES],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(src, filter="data")
    (src / "README.md").write_text(README_STUB)

    step(f"rootfs: mmdebstrap --variant=essential --include=python3 {SUITE}")
    debs = downloads / "debs"
    run(["mmdebstrap", "--quiet", "--mode=root", "--variant=essential", "--include=python3",
         "--aptopt=Acquire::Retries \"3\"", "--skip=download/empty",
         "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
         f"--setup-hook=sync-in '{debs}' /var/cache/apt/archives/",
         f"--customize-hook=sync-out /var/cache/apt/archives '{debs}'",
         SUITE, str(root), *MIRRORS], env=env, log=logfile)
    _keep_newest_debs(debs)

    step("trim: purge everything outside python3's Depends closure (base-files kept)")
    status = rootfs.parse_status(root / "var/lib/dpkg/status")
    keep = rootfs.closure(status, ["python3", "base-files"])
    purge = sorted(set(status) - keep)
    info_dir = root / "var/lib/dpkg/info"
    for package in purge:  # their maintainer scripts need the very shell, perl and dpkg being removed
        for name in (package, f"{package}:amd64"):
            for kind in ("preinst", "prerm", "postrm", "postinst", "config", "templates", "triggers"):
                (info_dir / f"{name}.{kind}").unlink(missing_ok=True)
    # The host's dpkg does the bookkeeping (status and file removal) of the image's.
    run(["dpkg", f"--root={root}", "--purge", "--force-remove-essential", "--force-remove-protected",
         "--force-depends", "--no-triggers", *purge], log=logfile)
    _clean_debian(root)

    step("python: the lock's wheels (--require-hashes) and the project's wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--cache-dir", str(downloads / "pip")]
    site = root / SITE.lstrip("/")
    run([*pip, "install", "--quiet", "--target", str(site), "--no-compile", "--only-binary=:all:",
         "--require-hashes", "--no-deps", "--implementation", "cp", "--python-version", PYTHON,
         "--abi", f"cp{PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none",
         "--platform", "manylinux_2_36_x86_64", "--platform", "manylinux_2_28_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64", "--platform", "any",
         "-r", str(LOCK)], env=env, log=logfile)
    backend = _build_env(downloads)
    run([str(backend / "bin/python"), "-m", "pip", "--disable-pip-version-check", "wheel", "--quiet",
         "--no-deps", "--no-build-isolation", "-w", str(work / "wheel"), str(src)], env=env, log=logfile)
    wheels = sorted((work / "wheel").glob("*.whl"))
    run([*pip, "install", "--quiet", "--no-index", "--no-deps", "--no-compile", "--target", str(site),
         *map(str, wheels)], env=env, log=logfile)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with the host's shebang
    for unused in UNUSED:
        if (site / unused).is_dir():
            shutil.rmtree(site / unused)
        else:
            (site / unused).unlink()
    for pattern in ("test_*.py", "*_test.py", "conftest.py"):
        for test in site.rglob(pattern):
            test.unlink()
    for direct_url in site.glob("*.dist-info/direct_url.json"):  # records the build's path
        direct_url.unlink()
    rootfs.prune_records(site)

    step("bytecode: the image's python3 -m compileall --invalidation-mode unchecked-hash")
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    # -f: compileall skips a module whose pyc matches a *timestamp* header, and python3 itself would have
    # written such pycs of what compileall imports (re, ...) without PYTHONDONTWRITEBYTECODE.
    run([chroot, str(root), "/usr/bin/python3", "-m", "compileall", "-q", "-f", "-j", "1", "--invalidation-mode",
         "unchecked-hash", "/usr/lib/python3", f"/usr/lib/python{PYTHON}", SITE],
        env={"PATH": "/usr/bin", "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0",
             "PYTHONDONTWRITEBYTECODE": "1"}, log=logfile)
    for path in (root / "dev", root / "tmp", root / "root"):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "root").chmod(0o700)

    step("sbom, fixed times")
    sbom_text = sbom.cyclonedx(root, NAME, tag, epoch)
    (out / f"{NAME}-{tag}.sbom.cdx.json").write_text(sbom_text)
    _clamp_mtimes(root, epoch)

    step("oci: umoci init/new/insert/config/gc, tar")
    digest = _oci(root, work / "oci", out / f"{NAME}-{tag}.oci.tar", tag, epoch)
    sizes = _sizes(work / "oci", digest)
    info = {
        "name": NAME, "version": tag, "manifest_digest": digest, "source_date_epoch": epoch,
        "built_from_commit": git("rev-parse", "HEAD"), "build_seconds": round(time.monotonic() - started, 1),
        **sizes, "debian_packages": {name: status[name]["Version"] for name in sorted(keep)},
        "python_packages": sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")),
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    step(f"done: {digest}, layer {sizes['uncompressed_bytes'] / 1e6:.0f} MB, "
         f"gzip {sizes['compressed_bytes'] / 1e6:.1f} MB")


def _keep_newest_debs(debs: Path) -> None:
    """The .deb cache keeps one version of each package (it would grow with every point release)."""
    newest: dict[str, Path] = {}
    for deb in sorted(debs.glob("*.deb"), key=lambda p: p.stat().st_mtime):
        name = deb.name.split("_")[0]
        if name in newest:
            newest[name].unlink(missing_ok=True)
        newest[name] = deb


def _clean_debian(root: Path) -> None:
    """What the install and the purge leave that the image must not carry: logs, caches, apt's state, the
    machine id, man pages and docs (copyright files stay), dangling links; and the users the image runs as."""
    for pattern in ("var/cache/*", "var/log/*", "var/lib/apt", "etc/apt", "var/lib/dpkg/*-old",
                    "var/lib/dpkg/available", "var/lib/dpkg/lock*", "var/lib/dpkg/triggers",
                    "var/lib/dpkg/alternatives", "var/lib/dpkg/updates/*", "var/lib/python", "var/lib/pam",
                    "var/lib/systemd", "var/lib/shells.state", "var/lib/misc", "etc/rc?.d", "etc/init.d",
                    "etc/alternatives", "etc/ld.so.cache", "etc/machine-id", "etc/hostname", "etc/resolv.conf",
                    "etc/mtab", "etc/shadow*", "etc/gshadow*", "etc/passwd-", "etc/group-", "etc/subuid",
                    "etc/subgid", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/bug",
                    "usr/share/locale", "usr/share/pixmaps", "usr/share/doc-base", "usr/share/menu", "run/*",
                    "tmp/*", f"usr/lib/python{PYTHON}/test"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in sorted((root / "usr/share/doc").rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.name != "copyright":
            path.unlink()
    for pyc in list(root.rglob("*.pyc")):  # Debian's timestamp pycs: compiled again below, hash-based
        pyc.unlink()
    rootfs.remove_dangling_links(root)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n"
                                     "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                                     f"nonroot:x:{UID}:{UID}:nonroot:/home/nonroot:/sbin/nologin\n")
    (root / "etc/group").write_text(f"root:x:0:\nnogroup:x:65534:\nnonroot:x:{UID}:\n")
    (root / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\nservices: files\n")
    home = root / "home/nonroot"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    os.chown(home, UID, UID)
    # Where the ServiceAccount volume is mounted. Not through var/run: it is a link to the absolute /run,
    # which the build (outside the image) would follow to the host's own /run.
    assert os.readlink(root / "var/run") == "/run"
    (root / "run/secrets/kubernetes.io/serviceaccount").mkdir(parents=True)


def _build_env(downloads: Path) -> Path:
    """A venv with the wheel's build backend at the versions and hashes of image/build-requirements.lock
    (cached by that file's hash): no unpinned setuptools from build isolation."""
    key = hashlib.sha256(BUILD_LOCK.read_bytes()).hexdigest()[:16]
    venv = cache_root() / f"image-backend-{key}"
    if (venv / ".ready").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet",
         "--cache-dir", str(downloads / "pip"), "--require-hashes", "--only-binary=:all:", "-r", str(BUILD_LOCK)])
    (venv / ".ready").touch()
    return venv


def _clamp_mtimes(root: Path, epoch: int) -> None:
    """No file newer than SOURCE_DATE_EPOCH (the .debs' own older times are kept, as they are reproducible)."""
    paths = [root]
    for directory, dirs, files in os.walk(root):
        paths += [Path(directory) / name for name in (*dirs, *files)]
    for path in paths:
        if path.lstat().st_mtime > epoch:
            os.utime(path, (epoch, epoch), follow_symlinks=False)


def _oci(root: Path, layout: Path, archive: Path, tag: str, epoch: int) -> str:
    """umoci: one layer holding `root`, the config the Deployment runs with; then the layout as a tar with
    sorted names, fixed times and owners. Returns the manifest digest."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    ref = f"{layout}:{tag}"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", ref])
    run(["umoci", "insert", "--image", ref, "--history.created", created, "--history.created_by",
         f"image/build.py: mmdebstrap {SUITE} python3, trimmed; pip --target {SITE}", str(root), "/"])
    config = ["umoci", "config", "--image", ref, "--created", created, "--history.created", created,
              "--history.created_by", "image/build.py: config", "--author", f"{NAME} image/build.py",
              "--os", "linux", "--architecture", "amd64", "--config.user", f"{UID}:{UID}",
              "--config.workingdir", "/home/nonroot"]
    for part in ("python3", "-m", "pxsec"):
        config += ["--config.entrypoint", part]
    for arg in deployment_args():
        config += ["--config.cmd", arg]
    for var in ("PATH=/usr/local/bin:/usr/bin", "HOME=/home/nonroot", "PYTHONDONTWRITEBYTECODE=1",
                "PYTHONUNBUFFERED=1", "LANG=C.UTF-8"):
        config += ["--config.env", var]
    for port in ("8080/tcp", "8081/tcp"):
        config += ["--config.exposedports", port]
    labels = {"org.opencontainers.image.title": NAME, "org.opencontainers.image.version": tag,
              "org.opencontainers.image.created": created,
              "org.opencontainers.image.source": "https://github.com/pxsec/px-security-operator",
              "org.opencontainers.image.licenses": "Apache-2.0"}
    for key, value in labels.items():
        config += ["--config.label", f"{key}={value}", "--manifest.annotation", f"{key}={value}"]
    run(config)
    run(["umoci", "gc", "--layout", str(layout)])
    for directory, dirs, files in os.walk(layout):
        for name in [*dirs, *files]:
            os.utime(Path(directory) / name, (epoch, epoch), follow_symlinks=False)
    run(["tar", "--sort=name", f"--mtime=@{epoch}", "--owner=0", "--group=0", "--numeric-owner",
         "--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
         "-C", str(layout), "-cf", str(archive), "."])
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def _sizes(layout: Path, digest: str) -> dict[str, int]:
    """The layer's size as stored (gzip) and unpacked (its tar), and the archive's."""
    manifest = json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_text())
    compressed = sum(int(layer["size"]) for layer in manifest["layers"])
    uncompressed = 0
    for layer in manifest["layers"]:
        with gzip.open(layout / "blobs/sha256" / layer["digest"].split(":")[1]) as stream:
            while chunk := stream.read(1 << 20):
                uncompressed += len(chunk)
    return {"compressed_bytes": compressed, "uncompressed_bytes": uncompressed}


# -- the lock files ----------------------------------------------------------------------------------------


def refresh_locks() -> None:
    """pip-compile (pip-tools, a dev extra) both lock files, with every wheel's hash, wheels only."""
    compile_ = [str(Path(sys.executable).parent / "pip-compile"), "--quiet", "--generate-hashes",
                "--allow-unsafe", "--strip-extras", "--no-emit-find-links", "--upgrade"]
    env = dict(os.environ, CUSTOM_COMPILE_COMMAND="make image-lock")
    env.pop("PIP_FIND_LINKS", None)
    run([*compile_, "--pip-args", "--only-binary=:all:", "-o", str(LOCK.relative_to(ROOT)), "pyproject.toml"],
        cwd=ROOT, env=env)
    run([*compile_, "-o", str(BUILD_LOCK.relative_to(ROOT)), "image/build-requirements.in"], cwd=ROOT, env=env)
    say(f"refreshed {LOCK.relative_to(ROOT)} and {BUILD_LOCK.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the archive and SBOM are copied")
    parser.add_argument("--lock", action="store_true", help="refresh image/*.lock (pip-compile) and exit")
    args = parser.parse_args(argv)
    try:
        if args.lock:
            refresh_locks()
            return 0
        started = time.monotonic()
        image = ensure()
        args.out.mkdir(parents=True, exist_ok=True)
        for path in (image.archive, image.sbom):
            shutil.copyfile(path, args.out / path.name)
        (args.out / f"{NAME}-{image.version}.digest").write_text(image.digest + "\n")
        info = image.info
        print(f"{args.out / image.archive.name}\n  manifest {image.digest}\n"
              f"  layer {info['uncompressed_bytes'] / 1e6:.1f} MB uncompressed, {info['compressed_bytes'] / 1e6:.1f} MB"
              f" gzip; {len(info['debian_packages'])} Debian and {len(info['python_packages'])} Python packages\n"
              f"  SBOM {args.out / image.sbom.name}\n  {time.monotonic() - started:.1f}s")
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
