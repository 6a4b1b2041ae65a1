"""The README's main command works as written: `pxsec dev up` (here with --once so it stops by itself)
starts its own control plane, runs the operator as its ServiceAccount, applies a sample, reaches Ready,
shows `kubectl get pxsec -o wide` and only the *names* of the Secrets, and leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pxsec.devcluster import orphans

pytestmark = pytest.mark.e2e


def test_dev_up_reaches_ready_and_cleans_up() -> None:
    before = {pid for pid, _ in orphans.leftovers()}
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    result = subprocess.run([sys.executable, "-m", "pxsec", "dev", "up", "--once"], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "NAME" in out and "READY" in out and "ISSUERS" in out and "MESSAGE" in out  # -o wide
    assert "px-cluster" in out and "True" in out
    assert "Secrets made by the operator (names only): " in out
    names = out.split("Secrets made by the operator (names only): ")[1].splitlines()[0]
    assert "px-jwt-rsa" in names and "px-system-secrets" in names
    assert "export KUBECONFIG=" in out
    assert "BEGIN" not in out + result.stderr  # no key material printed
    assert {pid for pid, _ in orphans.leftovers()} <= before
