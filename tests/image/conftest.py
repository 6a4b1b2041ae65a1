"""The operator's image, built by `make image` (image/build.py, cached by the hash of its inputs: a warm run
finds it in milliseconds) and unpacked once per session for the tests that look into it or run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from image import build
from tests.support import container


@pytest.fixture(scope="session")
def image() -> build.Image:
    """The image of HEAD, built when not cached; a build that cannot run is a failure, never a skip."""
    try:
        build.ensure_host_tools()  # umoci and runc, also when the image itself comes from a restored cache
        return build.ensure()
    except build.BuildError as error:
        pytest.fail(f"the image cannot be built: {error}", pytrace=False)


@pytest.fixture(scope="session")
def bundle(image: build.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image unpacked (umoci) as an OCI runtime bundle: rootfs/ and the image's config.json."""
    return container.unpack(image.archive, image.version, tmp_path_factory.mktemp("image") / "bundle")
