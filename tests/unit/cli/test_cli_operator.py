"""`pxsec operator`'s own arguments: refused in one line before anything starts."""

from __future__ import annotations

import pytest

from pxsec.cli import main


@pytest.mark.parametrize("value", ["0", "65", "four", "-1"])
def test_workers_out_of_range_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["operator", "--workers", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers" in err, err


@pytest.mark.parametrize("pattern", ["team-*", "ns?", "[ab]c", "!kube-system", ""])
def test_namespace_patterns_are_refused(pattern: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Secrets and ConfigMaps are watched per namespace by name: a pattern would silently watch nothing.
    assert main(["operator", "--namespace", "ok", "--namespace", pattern]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not patterns" in err, err
