"""image/rootfs.py: which Debian packages the image keeps (python3's run-time Depends closure, never the
installer's tools), and the clean-up of links and RECORD files after the purge; and the translation of the
Deployment's container spec into an OCI runtime config (tests/support/container.py), without runc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from image import rootfs
from tests.support import container

ROOT = Path(__file__).resolve().parents[2]

STATUS = """\
Package: python3
Status: install ok installed
Version: 3.11.2-1+b1
Depends: python3.11 (>= 3.11.2-1~), libpython3-stdlib (= 3.11.2-1+b1)
Pre-Depends: python3-minimal (= 3.11.2-1+b1)

Package: python3.11
Status: install ok installed
Version: 3.11.2-6
Depends: python3.11-minimal (= 3.11.2-6), libpython3.11-stdlib (= 3.11.2-6), media-types | mime-support

Package: python3-minimal
Status: install ok installed
Version: 3.11.2-1+b1
Pre-Depends: dpkg (>= 1.13.20)
Depends: python3.11-minimal

Package: python3.11-minimal
Status: install ok installed
Version: 3.11.2-6
Depends: libc6 (>= 2.36)

Package: libpython3-stdlib
Status: install ok installed
Version: 3.11.2-1+b1
Depends: libpython3.11-stdlib

Package: libpython3.11-stdlib
Status: install ok installed
Version: 3.11.2-6
Depends: libc6, libssl3 (>= 3.0.0)

Package: media-types
Status: install ok installed
Version: 10.0.0

Package: libc6
Status: install ok installed
Version: 2.36-9
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Version: 12.2.0-14

Package: libssl3
Status: install ok installed
Version: 3.0.11-1
Description: a description
 that continues on the next line

Package: dpkg
Status: install ok installed
Version: 1.21.22
Pre-Depends: tar (>= 1.28)

Package: tar
Status: install ok installed
Version: 1.34

Package: bash
Status: install ok installed
Version: 5.2.15

Package: removed-one
Status: deinstall ok config-files
Version: 1
"""


def test_closure_keeps_what_python3_needs_and_not_the_installer(tmp_path: Path) -> None:
    (tmp_path / "status").write_text(STATUS)
    packages = rootfs.parse_status(tmp_path / "status")
    assert "removed-one" not in packages and packages["libssl3"]["Description"].endswith("on the next line")
    keep = rootfs.closure(packages, ["python3"])
    assert keep == {"python3", "python3.11", "python3-minimal", "python3.11-minimal", "libpython3-stdlib",
                    "libpython3.11-stdlib", "media-types", "libc6", "libgcc-s1", "libssl3"}
    assert set(packages) - keep == {"dpkg", "tar", "bash"}
    with pytest.raises(ValueError, match="not installed"):
        rootfs.closure(packages, ["perl"])


def test_dangling_links_are_judged_inside_the_rootfs(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_text("")
    os.symlink("python3.11", tmp_path / "usr/bin/python3")
    os.symlink("/usr/bin/python3", tmp_path / "usr/bin/absolute")  # absolute: relative to the rootfs
    os.symlink("/usr/bin/perl", tmp_path / "usr/bin/gone")
    os.symlink("/etc", tmp_path / "usr/bin/hosts-etc")  # exists on the host, not in the image
    removed = rootfs.remove_dangling_links(tmp_path)
    assert sorted(r.split(" ")[0] for r in removed) == ["/usr/bin/gone", "/usr/bin/hosts-etc"]
    assert (tmp_path / "usr/bin/absolute").is_symlink()


def test_records_lose_the_lines_of_removed_files(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg-1.dist-info").mkdir()
    record = tmp_path / "pkg-1.dist-info/RECORD"
    record.write_text("pkg/__init__.py,sha256=x,0\npkg/tests/test_a.py,sha256=y,1\n../../../bin/pkg,sha256=z,2\n"
                      "pkg-1.dist-info/RECORD,,\n")
    rootfs.prune_records(tmp_path)
    assert record.read_text() == "pkg/__init__.py,sha256=x,0\npkg-1.dist-info/RECORD,,\n"


def test_runtime_spec_is_the_deployments_container(tmp_path: Path) -> None:
    deploy = yaml.safe_load((ROOT / "manifests/operator/deployment.yaml").read_text())
    image_config = {
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["python3", "-m", "pxsec", "operator"],
                    "env": ["PATH=/usr/bin", "TERM=xterm"], "capabilities": {"bounding": ["CAP_KILL"]}},
        "root": {"path": "rootfs"}, "mounts": [{"destination": "/proc", "type": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]},
    }
    spec = container.runtime_spec(image_config, deploy, rootfs=tmp_path / "rootfs", hostname="pod-a",
                                   netns="/proc/1/fd/3", sa_dir=tmp_path / "sa", hosts=tmp_path / "hosts")
    process = spec["process"]
    (declared,) = deploy["spec"]["template"]["spec"]["containers"]
    assert process["args"] == ["python3", "-m", "pxsec", *declared["args"]]
    assert process["user"] == {"uid": 65532, "gid": 65532}
    assert all(caps == [] for caps in process["capabilities"].values()) and process["noNewPrivileges"] is True
    assert spec["root"] == {"path": str(tmp_path / "rootfs"), "readonly": True}
    assert "POD_NAMESPACE=pxsec-system" in process["env"] and "KUBERNETES_SERVICE_PORT=443" in process["env"]
    assert not any(e.startswith("TERM=") for e in process["env"])
    assert {"type": "network", "path": "/proc/1/fd/3"} in spec["linux"]["namespaces"]
    assert spec["linux"]["resources"]["memory"] == {"limit": 256 << 20}
    assert spec["linux"]["resources"]["cpu"] == {"quota": 100000, "period": 100000}
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/tmp"]["type"] == "tmpfs" and f"size={16 << 20}" in mounts["/tmp"]["options"]
    assert mounts[container.SA_DIR]["source"] == str(tmp_path / "sa") and "ro" in mounts[container.SA_DIR]["options"]
    assert mounts["/etc/hosts"]["source"] == str(tmp_path / "hosts")
