"""`pxsec render`: prints exactly `render_text` (so, for yaml, the operator's ConfigMap value), through
the real argument parser; bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pxsec.cli import render as cli_render
from pxsec.render import FORMATS, TARGETS, render_all, render_text
from tests.unit.test_render import EXAMPLES, GOLDEN, load_example


def parser() -> argparse.ArgumentParser:
    """A `pxsec`-like parser with only `render` registered, as cli.py will do it."""
    root = argparse.ArgumentParser(prog="pxsec")
    sub = root.add_subparsers(dest="command", required=True)
    cli_render.register(sub)
    return root


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = cli_render.run_render(args.file, args.target, args.output, args.namespace,
                                 stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_prints_exactly_render_text(example: Path, target: str, fmt: str) -> None:
    code, out, err = run(["render", "-f", str(example), "--target", target, "-o", fmt])
    assert (code, err) == (0, "")
    spec, name = load_example(example)
    assert out == render_text(spec, "default", target, fmt, cr_name=name)
    if fmt == "yaml":
        assert out == render_all(spec, "default", cr_name=name)[f"{target}.yaml"], "== the ConfigMap value"
        assert out == (GOLDEN / example.stem / f"{target}.yaml").read_text(encoding="utf-8")


def test_default_format_is_yaml_and_the_func_is_wired() -> None:
    args = parser().parse_args(["render", "-f", str(EXAMPLES[0]), "--target", "stork"])
    assert args.output == "yaml" and args.namespace is None
    assert args.func.__module__ == "pxsec.cli.render"


def test_namespace_from_flag_then_document_then_default() -> None:
    text = EXAMPLES[0].read_text(encoding="utf-8")
    with_ns = text.replace("metadata:\n  name: px-cluster\n", "metadata:\n  name: px-cluster\n  namespace: portworx\n")
    assert with_ns != text
    _, out, _ = run(["render", "-f", "-", "--target", "storageclass"], stdin=with_ns)
    assert "namespace: portworx" in out
    _, out, _ = run(["render", "-f", "-", "--target", "storageclass", "-n", "other"], stdin=with_ns)
    assert "namespace: other" in out and "portworx\n" not in out.replace("namespace: other", "")
    _, out, _ = run(["render", "-f", "-", "--target", "storageclass"], stdin=text)
    assert "namespace: default" in out


def test_reads_the_first_pxsecurity_and_skips_other_kinds() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: portworx}\n---\n" + EXAMPLES[0].read_text()
    text += "\n---\n: : not yaml ["
    code, out, err = run(["render", "-f", "-", "--target", "stork"], stdin=text)
    assert (code, err) == (0, "")
    spec, name = load_example(EXAMPLES[0])
    assert out == render_text(spec, "default", "stork", cr_name=name)


def test_applies_the_api_servers_defaults() -> None:
    """`sharedSecret: {}` and an absent issuer/lifetime come out as the API server stores them."""
    doc = ("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\nmetadata: {name: c}\n"
           "spec: {selfSigned: {sharedSecret: {}}}\n")
    code, out, _ = run(["render", "-f", "-", "--target", "storagecluster"], stdin=doc)
    assert code == 0
    assert "issuer: operator.portworx.io" in out
    assert "tokenLifetime: 24h" in out
    assert "sharedSecret: px-shared-secret" in out
    assert "name: c\n" in out, "the CR name when spec.storageCluster.name is absent"


@pytest.mark.parametrize(
    ("stdin", "code", "expect"),
    [
        ("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\nmetadata: {name: c}\nspec: {guestAccess: Maybe}\n",
         1, '<stdin>: document 1 (c): spec.guestAccess: Unsupported value: "Maybe"'),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", 1, "<stdin>: no PxSecurity document found"),
        ("a: [b\n", 2, "<stdin>: line 2, column 1: not valid YAML"),
        # kubectl apply refuses generateName without a name; validate and render say so alike
        ("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\nmetadata: {generateName: c-}\n"
         "spec: {selfSigned: {sharedSecret: {}}}\n",
         1, "<stdin>: document 1: metadata.name: Required value: kubectl apply cannot use metadata.generateName"),
    ],
)
def test_bad_input_is_one_line_per_problem_and_non_zero(stdin: str, code: int, expect: str) -> None:
    got, out, err = run(["render", "-f", "-", "--target", "storagecluster"], stdin=stdin)
    assert got == code
    assert out == ""
    assert err.startswith(expect), err
    assert "Traceback" not in err
    for line in err.splitlines():
        assert line.startswith("<stdin>: ")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run(["render", "-f", str(missing), "--target", "stork"])
    assert (code, out) == (2, "")
    assert err == f"{missing}: cannot read: No such file or directory\n"


def test_every_problem_is_printed() -> None:
    doc = ("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\nmetadata: {name: c}\n"
           "spec: {guestAccess: Maybe, usernameClaim: uid}\n")
    code, _, err = run(["render", "-f", "-", "--target", "stork"], stdin=doc)
    assert code == 1
    assert len(err.splitlines()) >= 2
    assert "spec.guestAccess" in err and "spec.usernameClaim" in err


def test_unknown_target_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["render", "-f", "x", "--target", "helm"])
    assert exc.value.code == 2
    assert "invalid choice: 'helm'" in capsys.readouterr().err


def test_as_a_process_stdout_is_exactly_the_rendering() -> None:
    """Through a real interpreter and real stdout (encoding, newlines): byte-for-byte."""
    example = EXAMPLES[0]
    script = (
        "import argparse, sys; from pxsec.cli import render as cli_render\n"
        "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='c', required=True)\n"
        "cli_render.register(s); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "render", "-f", str(example), "--target", "storagecluster"],
        capture_output=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    spec, name = load_example(example)
    assert result.stdout == render_text(spec, "default", "storagecluster", cr_name=name).encode("utf-8")


def test_a_reader_that_went_away_ends_it_quietly(tmp_path: Path) -> None:
    """`pxsec render … | head -1`: the pipe closes before the output is written; no error line, exit 141
    (128 + SIGPIPE, what a shell reports for a tool killed by it), as any Unix tool behaves."""
    example = Path(__file__).resolve().parents[3] / "examples" / "all-together.yaml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "pxsec", "render", "-f", str(example), "--target", "daemonset"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has started and rendered anything
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == b""
