"""What is in the image `make image` builds, and what is not: read from the unpacked OCI archive.

Not there: a shell, a package manager, pip, a compiler; secrets (private keys, cloud and registry tokens,
credentials files) and paths of the machine that built it; caches, logs, tests; bytecode that Python would
write at run time (every module has its unchecked-hash pyc from the build, valid whatever the file times).
There: the config the Deployment relies on, and an SBOM naming every Debian and Python package in it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import yaml

from image import build

ROOT = Path(__file__).resolve().parents[2]
SITE = build.SITE.lstrip("/")
# Things that have no business in an operator's image.
FORBIDDEN_COMMANDS = ("sh", "bash", "dash", "zsh", "busybox", "dpkg", "apt", "apt-get", "perl", "pip", "pip3",
                      "gcc", "cc", "cpp", "ld", "as", "make", "curl", "wget", "su", "sudo", "mount")
# What each kind of secret looks like, and literal strings one of which it must contain (a fast
# bytes.find decides whether the expression runs at all: 180 MB are read).
SECRET_PATTERNS: dict[str, tuple[tuple[bytes, ...], re.Pattern[bytes]]] = {
    "a private key": ((b"PRIVATE KEY-----",),
                      re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=]{40}")),
    "an AWS access key id": ((b"AKIA", b"ASIA"), re.compile(rb"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")),
    "a GitHub token": ((b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
                       re.compile(rb"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{60,}")),
    "a Slack token": ((b"xox",), re.compile(rb"\bxox[abpr]-[A-Za-z0-9-]{10,}")),
    "a kubeconfig credential": ((b"-data:",), re.compile(rb"client-(key|certificate)-data:\s*[A-Za-z0-9+/=]{40}")),
    "a JSON Web Token": ((b"eyJ",), re.compile(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}")),
    # Where this machine built it: its cache, the build's staging directory, this checkout.
    "a path of the build machine": (
        tuple(str(p).encode() for p in (build.cache_root() / "image-", "/.image-", ROOT)),
        re.compile(b"|".join(re.escape(str(p).encode()) for p in (build.cache_root() / "image-", "/.image-", ROOT)))),
}
# Matches that are public examples, each checked by hand: PyJWT's README encodes {"some": "payload"} with
# the key "secret".
KNOWN_PUBLIC = {("a JSON Web Token", f"/{SITE}/pyjwt-*.dist-info/METADATA")}
CREDENTIAL_FILES = (".netrc", ".pypirc", ".git-credentials", "id_rsa", "id_ed25519", "id_ecdsa", "credentials",
                    "config.json", ".dockercfg", "known_hosts", "shadow", "gshadow")


def walk(rootfs: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(rootfs):
        for name in (*dirs, *files):
            yield Path(directory) / name


def test_config_is_what_the_deployment_runs(image: build.Image, bundle: Path) -> None:
    config = json.loads((bundle / "config.json").read_text())
    process = config["process"]
    deployment = yaml.safe_load((ROOT / "manifests/operator/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert process["args"] == ["python3", "-m", "pxsec", *container["args"]]
    assert (process["user"]["uid"], process["user"]["gid"]) == (65532, 65532)
    env = dict(e.split("=", 1) for e in process["env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/home/nonroot"
    assert container["image"].endswith(f":{image.version}")


def test_skopeo_loads_the_archive(image: build.Image, tmp_path: Path) -> None:
    """What the README tells a user to run, into a local OCI layout instead of a registry: skopeo checks every
    blob's digest on the way, and the copy is the same manifest."""
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{image.archive}", f"oci:{tmp_path / 'copy'}:pushed"],
                   check=True, capture_output=True, text=True)
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{image.archive}"],
                                       check=True, capture_output=True, text=True).stdout)
    assert config["config"]["User"] == "65532:65532" and config["created"].startswith("20")
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == image.version


def test_nothing_that_should_not_be_there(bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    problems: list[str] = []
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin"):
        for command in FORBIDDEN_COMMANDS:
            if os.path.lexists(rootfs / directory / command):
                problems.append(f"/{directory}/{command}")
    for path in walk(rootfs):
        rel = "/" + str(path.relative_to(rootfs))
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            if path.name in ("tests", "test", ".git", ".cache", "__pypackages__", ".ssh", ".kube", ".docker"):
                problems.append(f"{rel}/: a directory that is never needed at run time")
            elif path.name in ("pip", "ensurepip", "setuptools", "wheel") and "-packages" in rel:
                problems.append(f"{rel}/: an installer")
            elif mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
                problems.append(f"{rel}/: world-writable")
            continue
        if not stat.S_ISREG(mode):
            continue
        if mode & (stat.S_ISUID | stat.S_ISGID):
            problems.append(f"{rel}: setuid/setgid")
        if mode & stat.S_IWOTH:
            problems.append(f"{rel}: world-writable")
        if path.name in CREDENTIAL_FILES or re.match(r"(test_.*|.*_test|conftest)\.py$", path.name):
            problems.append(f"{rel}: a credentials or test file")
        if path.suffix in (".log", ".swp", ".orig", ".rej", ".whl", ".egg") or path.name == "direct_url.json":
            problems.append(f"{rel}: a build or run leftover")
    for directory in ("var/cache", "var/log", "tmp", "run"):
        leftovers = [p for p in walk(rootfs / directory) if not p.is_dir()]
        problems += [f"/{p.relative_to(rootfs)}: cache, log or state" for p in leftovers]
    assert not problems, "\n".join(problems)


def test_no_secrets(bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    found = []
    for path in walk(rootfs):
        if path.is_file() and not path.is_symlink():
            rel = f"/{path.relative_to(rootfs)}"
            data = path.read_bytes()
            for what, (anchors, pattern) in SECRET_PATTERNS.items():
                if not any(anchor in data for anchor in anchors):
                    continue
                for match in pattern.finditer(data):
                    if not any(w == what and fnmatch.fnmatch(rel, glob) for w, glob in KNOWN_PUBLIC):
                        found.append(f"{rel}: {what} ({match.group(0)[:40]!r}…)")
    assert not found, "\n".join(found)


def test_bytecode_is_complete_and_from_the_build(bundle: Path) -> None:
    """Every module has its pyc, hash-based and unchecked (PEP 552 flags 0b01): with PYTHONDONTWRITEBYTECODE
    and a read-only root Python writes none, and a timestamp pyc would be one written outside the build."""
    rootfs = bundle / "rootfs"
    missing, wrong = [], []
    for base in ("usr/lib/python3.11", SITE):
        for source in (rootfs / base).rglob("*.py"):
            pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
            if not pyc.is_file():
                missing.append(str(source.relative_to(rootfs)))
        for pyc in (rootfs / base).rglob("*.pyc"):
            header = pyc.read_bytes()[:16]
            flags = int.from_bytes(header[4:8], "little")
            if flags != 0b01 or pyc.parent.name != "__pycache__":
                wrong.append(f"{pyc.relative_to(rootfs)}: flags {flags:#b}")
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:5]}"
    assert not wrong, f"{len(wrong)} pycs not from the build, e.g. {wrong[:5]}"


def test_sbom_names_every_package(image: build.Image, bundle: Path) -> None:
    sbom = json.loads(image.sbom.read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["version"] == image.version
    purls = {c["purl"] for c in sbom["components"]}
    debs = {p.split("@")[0].removeprefix("pkg:deb/debian/") for p in purls if p.startswith("pkg:deb/")}
    assert debs == set(image.info["debian_packages"]) and "python3" in debs
    pythons = {p.removeprefix("pkg:pypi/") for p in purls if p.startswith("pkg:pypi/")}
    locked = set(re.findall(r"^([a-z0-9-]+)==(\S+)", build.LOCK.read_text(), re.MULTILINE))
    assert {f"{name}@{version}" for name, version in locked} <= pythons
    assert f"px-security-operator@{image.version}" in pythons
    rootfs = bundle / "rootfs"
    assert len(pythons) == len(list((rootfs / SITE).glob("*.dist-info")))
