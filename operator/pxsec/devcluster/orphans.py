"""`python -m pxsec.devcluster.orphans`: fail if any etcd / kube-* process started from a pxsec
control-plane directory is still running, or an operator container of tests/image (`python3 -m pxsec` in
a PID namespace of its own: runc's foreground process was killed before it could stop it) — run after the
test suite: no orphans, ever."""

from __future__ import annotations

import os
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
            found.append((int(proc.name), f"{exe} from a pxsec control plane"))
        elif argv[:3] == [b"python3", b"-m", b"pxsec"] and _own_root(proc):
            found.append((int(proc.name), "an operator container of tests/image (python3 -m pxsec under runc)"))
    return found


def _own_root(proc: Path) -> bool:
    """In a PID namespace of its own, as a container's processes are (its /proc/PID/root reads "/")."""
    try:
        return os.readlink(proc / "ns" / "pid") != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def main() -> int:
    left = leftovers()
    if left:
        for pid, what in left:
            print(f"orphan: {what} (pid {pid}) is still running", file=sys.stderr)
        return 1
    print("no control-plane or operator-container processes left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
