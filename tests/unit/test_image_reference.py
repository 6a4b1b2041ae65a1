"""The image reference follows the project's version everywhere a user installs from: the chart (appVersion,
and values.yaml's repository with the tag defaulting to it), manifests/ (the Deployment every overlay renders)
and what `make image` tags its archive with; and image/requirements.lock pins what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from image import build
from tests.unit.test_install_manifests import kustomize

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "px-security-operator"
REPOSITORY = "ghcr.io/pxsec/px-security-operator"


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_chart_follows_the_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart["appVersion"] == version() == chart["version"]
    assert values["image"]["repository"] == REPOSITORY
    assert values["image"]["tag"] == "", "the tag defaults to appVersion; a fixed tag would not follow the version"
    template = (CHART / "templates" / "deployment.yaml").read_text()
    assert "{{ .Values.image.tag | default .Chart.AppVersion }}" in template


@pytest.mark.parametrize("overlay", ["manifests/cluster-wide", "manifests/namespaced"])
def test_overlays_follow_the_version(overlay: str) -> None:
    deployments = [d for d in kustomize(overlay) if d["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{REPOSITORY}:{version()}"


def test_make_image_names_the_archive_by_the_version() -> None:
    assert REPOSITORY.rsplit("/", 1)[1] == build.NAME
    assert build.Image(Path("dist"), version()).archive.name == f"{build.NAME}-{version()}.oci.tar"


def test_the_lock_pins_what_pyproject_pins() -> None:
    lock = build.LOCK.read_text()
    pinned = dict(re.findall(r"^([a-z0-9-]+)==(\S+) \\$", lock, re.MULTILINE))
    assert pinned, "no pins found in image/requirements.lock"
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, wanted = dep.partition("==")
        name = re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")
        assert pinned.get(name) == wanted.strip(), f"{name}: lock {pinned.get(name)}, pyproject {wanted}: refresh it"
    # Every pin carries its hashes (pip --require-hashes refuses the lock otherwise, but say which).
    for block in re.split(r"\n(?=[a-z])", lock.split("\n\n", 1)[1]):
        assert "--hash=sha256:" in block, block.splitlines()[0]
