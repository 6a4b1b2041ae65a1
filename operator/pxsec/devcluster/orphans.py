"""`python -m pxsec.devcluster.orphans`: fail if any etcd / kube-* process started from a pxsec
control-plane directory is still running (run after the test suite: no orphans, ever)."""

from __future__ import annotations

import sys
from pathlib import Path

MARKER = "pxsec-controlplane-"


def leftovers() -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0]:
            continue
        exe = Path(argv[0].decode(errors="replace")).name
        if exe in {"etcd", "kube-apiserver", "kube-controller-manager"} and any(MARKER.encode() in a for a in argv):
            found.append((int(proc.name), exe))
    return found


def main() -> int:
    left = leftovers()
    if left:
        for pid, exe in left:
            print(f"orphan: {exe} (pid {pid}) from a pxsec control plane is still running", file=sys.stderr)
        return 1
    print("no control-plane processes left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
