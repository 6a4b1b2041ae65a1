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


@pytest.mark.parametrize("pattern", ["team-*", "*", "ns?", "[ab]c", "!kube-system", ""])
def test_namespace_patterns_are_a_usage_error(pattern: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Secrets and ConfigMaps are watched per namespace by name: a pattern would silently watch nothing.
    with pytest.raises(SystemExit) as exc:
        main(["operator", "--namespace", "ok", "--namespace", pattern])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not patterns" in err and "--namespace" in err, err


def test_leader_election_without_a_namespace_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr("pxsec.cli.default_namespace", lambda: None)
    assert main(["operator", "--leader-elect"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pxsec: error: --leader-elect needs --leader-election-namespace"), err


def test_the_last_line_of_defence_never_prints_an_empty_error(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object) -> int:
        raise MemoryError()

    monkeypatch.setattr("pxsec.cli._validate", boom)
    assert main(["validate", "-f", "x.yaml"]) == 1
    assert capsys.readouterr().err == "pxsec: error: MemoryError\n"


def test_the_last_line_of_defence_never_prints_a_file_name(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", "eyJhbGciOi.secret.token")

    monkeypatch.setattr("pxsec.cli._validate", boom)
    assert main(["validate", "-f", "x.yaml"]) == 1
    assert capsys.readouterr().err == "pxsec: error: No such file or directory\n"
