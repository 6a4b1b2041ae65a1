"""Fixtures for tests against the real local control plane.

`cluster` starts etcd + kube-apiserver + kube-controller-manager once per session (binaries from
KUBEBUILDER_ASSETS / TEST_ASSET_* / the cache, built on first use), or uses $PXSEC_TEST_KUBECONFIG when
pointed at an existing cluster. The operator runs as a real subprocess with a ServiceAccount token,
bound by the RBAC in manifests/.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from pxsec.devcluster import assets
from pxsec.devcluster.cluster import Cluster, OperatorProcess, project_root

ROOT = project_root()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("PXSEC_TEST_KUBECONFIG")
    found = assets.ensure(build=True)
    if external:
        yield Cluster(kubeconfig=Path(external), kubectl_bin=found.kubectl)
        return
    with Cluster.local(found) as c:
        yield c


@pytest.fixture(scope="session")
def crds_installed(cluster: Cluster) -> None:
    cluster.install_crds(ROOT)


@pytest.fixture(scope="session")
def rbac_installed(cluster: Cluster) -> None:
    cluster.install_rbac(ROOT)


@pytest.fixture(scope="session")
def storagecluster_crd(cluster: Cluster) -> None:
    """The real StorageCluster and StorageNode CRDs (tests/fixtures, from the Portworx Operator, Apache-2.0):
    StorageNodes are what the Portworx stand-in restarts and wipes, and what tells our operator Portworx runs."""
    for crd, name in (("storagecluster-crd.yaml", "storageclusters"), ("storagenode-crd.yaml", "storagenodes")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "tests" / "fixtures" / crd))
        cluster.wait_established(f"{name}.core.libopenstorage.org")


@pytest.fixture()
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def operator(cluster: Cluster, crds_installed: None, rbac_installed: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator for the session, running as its ServiceAccount (not cluster-admin)."""
    kubeconfig = cluster.service_account_kubeconfig()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(kubeconfig=kubeconfig, log=log).start()
    proc.wait_for_log("px-security-operator started")
    yield proc
    proc.stop()
