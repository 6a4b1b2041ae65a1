"""The control plane's failure modes are one clear line, and a failed start leaves nothing running."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pxsec.devcluster import assets, orphans
from pxsec.devcluster.controlplane import ControlPlane, ControlPlaneError

pytestmark = pytest.mark.e2e


def test_missing_binary_is_one_clear_line(tmp_path: Path) -> None:
    found = assets.ensure(build=True)
    broken = replace(found, kube_apiserver=tmp_path / "kube-apiserver")
    with pytest.raises(ControlPlaneError) as err:
        ControlPlane(broken).start()
    assert str(err.value) == f"kube-apiserver binary not found or not executable: {tmp_path / 'kube-apiserver'}"


def test_port_clash_is_named_and_leaves_no_process() -> None:
    before = {pid for pid, _ in orphans.leftovers()}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plane = ControlPlane(assets.ensure(build=True), apiserver_port=port, startup_timeout=60)
        with pytest.raises(ControlPlaneError) as err:
            plane.start()
    assert str(err.value).splitlines()[0].startswith("kube-apiserver: port already in use")
    assert plane.procs == []
    assert {pid for pid, _ in orphans.leftovers()} <= before
