"""The control-plane build recipe: the replace list comes from Kubernetes' own go.mod."""

from __future__ import annotations

from pathlib import Path

import pytest

from pxsec.devcluster import assets

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	github.com/spf13/cobra v1.10.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
	k8s.io/cri-api => ./staging/src/k8s.io/cri-api
	github.com/onsi/ginkgo => github.com/onsi/ginkgo v1.0.0
)
"""


def test_staging_modules_are_replaced_by_their_matching_release() -> None:
    text = assets.kubernetes_go_mod(UPSTREAM, "v1.37.2")
    assert "require k8s.io/kubernetes v1.37.2" in text
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in text
    assert "\tk8s.io/cri-api => k8s.io/cri-api v0.37.2" in text
    assert "ginkgo" not in text  # only staging paths are rewritten


def test_no_staging_replaces_is_an_error() -> None:
    with pytest.raises(assets.AssetError):
        assets.staging_replaces("module x\n", "v0.1.0")


def test_lookup_order_env_then_kubebuilder_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("etcd", "custom-etcd"):
        f = (kb if name == "etcd" else tmp_path) / name
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(kb))
    monkeypatch.delenv("TEST_ASSET_ETCD", raising=False)
    assert assets.locate("etcd") == kb / "etcd"
    monkeypatch.setenv("TEST_ASSET_ETCD", str(tmp_path / "custom-etcd"))
    assert assets.locate("etcd") == tmp_path / "custom-etcd"
    monkeypatch.setenv("TEST_ASSET_ETCD", str(tmp_path / "nope"))
    with pytest.raises(assets.AssetError, match="TEST_ASSET_ETCD"):
        assets.locate("etcd")


def test_cache_dir_is_versioned_and_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PXSEC_CACHE_DIR", str(tmp_path))
    assert assets.cache_dir() == tmp_path / f"k8s-{assets.KUBERNETES_VERSION}_etcd-{assets.ETCD_VERSION}"
