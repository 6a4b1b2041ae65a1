"""Key material shared by the token tests: generated once per session (RSA takes a while)."""

from __future__ import annotations

import pytest

from pxsec import keymaterial


@pytest.fixture(scope="session")
def secret() -> bytes:
    return keymaterial.generate_shared_secret().encode("ascii")


@pytest.fixture(scope="session")
def rsa_pair() -> tuple[bytes, bytes]:
    return keymaterial.generate_rsa(2048)


@pytest.fixture(scope="session")
def ec_pairs() -> dict[str, tuple[bytes, bytes]]:
    return {curve: keymaterial.generate_ecdsa(curve) for curve in ("P-256", "P-384", "P-521")}
