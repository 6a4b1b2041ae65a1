"""Reproducible: a second build of the same commit, from scratch (its own empty .deb and wheel download
caches, its own work directory), gives the same manifest digest and a byte-identical archive and SBOM.
Marked slow (one more build, one to two minutes): CI runs it in `make test-slow`."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from image import build


def fresh(tmp_path: Path, label: str) -> dict[str, object]:
    out = tmp_path / label / "out"
    build.build(out, tmp_path / label / "work", tmp_path / label / "downloads")
    info: dict[str, object] = json.loads((out / "build.json").read_text())
    info["dir"] = str(out)
    return info


@pytest.mark.slow
def test_two_builds_of_one_commit_are_one_image(image: build.Image, tmp_path: Path) -> None:
    second = fresh(tmp_path, "second")
    first: dict[str, object] = dict(image.info, dir=str(image.directory))
    if second["debian_packages"] != first["debian_packages"]:
        # The cached image is older than a Debian (security) update of the suite: compare two builds of today.
        first, second = second, fresh(tmp_path, "third")
    print(f"\nfirst {first['manifest_digest']} ({first['build_seconds']}s), "
          f"second {second['manifest_digest']} ({second['build_seconds']}s)")
    assert second["manifest_digest"] == first["manifest_digest"]
    for name in (image.archive.name, image.sbom.name):
        assert filecmp.cmp(Path(str(first["dir"])) / name, Path(str(second["dir"])) / name, shallow=False), name
