"""The command line reads a file the way kubectl does, through one path, for all three commands.

`pxsec validate -f`, `pxsec render -f` and `pxsec token verify -f` read through `pxsec.cli.read`: the
same bytes give the same verdict from each. Each finding of issue 12 about reading has a test here,
run through all three commands where it applies: `secretName: 1e3` is a number (kubectl sends one),
`size: 0o4000` is 2048, a key written twice is an error, a 471-byte alias bomb, a 50 MB input and
500-level nesting each end at once in one line naming the file, `kind: List` items are judged,
`metadata` is checked, generateName is treated alike, and escape sequences never reach the terminal.
The go-yaml behaviour pinned here was read off k8s.io/apimachinery v0.37.2 + sigs.k8s.io/yaml v1.6.0
(go.yaml.in/yaml/v2 v2.4.4), the libraries of kubectl 1.37 (see tests/kubeyaml for the differential
test against them).
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pxsec import kubeyaml
from pxsec.cli import read as cliread
from pxsec.cli import render as cli_render
from pxsec.cli import token as cli_token
from pxsec.cli import validate as cli_validate

HEADER = "apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurity\n"
GOOD = HEADER + "metadata: {name: px-cluster, namespace: portworx}\nspec:\n  selfSigned:\n    sharedSecret: {}\n"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"  # not accepted: only the reading of -f matters here


class Result:
    def __init__(self, code: int, out: str, err: str, seconds: float) -> None:
        self.code, self.out, self.err, self.seconds = code, out, err, seconds

    def one_line(self) -> str:
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err and "recursion" not in self.err
        return lines[0]


def _run(call: Callable[[io.StringIO, io.StringIO], int]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code = call(out, err)
    return Result(code, out.getvalue(), err.getvalue(), time.monotonic() - started)


def validate(path: str, stdin: Any = None) -> Result:
    return _run(lambda out, err: cli_validate.run_validate(path, stdin=stdin or io.StringIO(), stdout=out,
                                                           stderr=err))


def render(path: str, stdin: Any = None, target: str = "storagecluster") -> Result:
    return _run(lambda out, err: cli_render.run_render(path, target, stdin=stdin or io.StringIO(), stdout=out,
                                                       stderr=err))


def verify(path: str, stdin: Any = None) -> Result:
    args = argparse.Namespace(token=TOKEN, file=path, secrets_dir=None, from_cluster=False, namespace=None,
                              jwks=None)
    return _run(lambda out, err: cli_token.run_verify(args, stdin=stdin or io.StringIO(), stdout=out, stderr=err))


COMMANDS = {"validate": validate, "render": render, "verify": verify}
# What each command answers for a file it cannot read, and for an invalid PxSecurity.
UNREADABLE = {"validate": 2, "render": 2, "verify": 2}
INVALID = {"validate": 1, "render": 1, "verify": 2}


def write(tmp_path: Path, text: str | bytes, name: str = "cr.yaml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(params=sorted(COMMANDS))
def command(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- scalars, as kubectl reads them ---------------------------------------------------------------


def test_secret_name_1e3_is_the_number_kubectl_sends(tmp_path: Path, command: str) -> None:
    """kubectl (go-yaml v2) reads `1e3` as the float 1000 and sends the JSON number 1000: the API server
    rejects a number where the CRD wants a string, so offline must too."""
    path = write(tmp_path, GOOD.replace("sharedSecret: {}", "sharedSecret: {secretName: 1e3}"))
    result = COMMANDS[command](path)
    assert result.code == INVALID[command], result.err
    assert 'spec.selfSigned.sharedSecret.secretName in body must be of type string: "integer"' in result.err
    quoted = COMMANDS[command](write(tmp_path, GOOD.replace("sharedSecret: {}", "sharedSecret: {secretName: '1e3'}"),
                                     "quoted.yaml"))
    assert quoted.code in (0, 1) and "must be of type string" not in quoted.err


def test_size_0o4000_is_2048_as_kubectl_reads_it(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, GOOD + "    rsa: {secretName: px-jwt-rsa, size: 0o4000}\n")
    result = COMMANDS[command](path)
    assert result.code in (0, 1) and "size" not in result.err, result.err  # verify: 1 = token rejected
    if command == "render":
        assert "px-jwt-rsa" in result.out


@pytest.mark.parametrize(("plain", "value"), [
    # go.yaml.in/yaml/v2 v2.4.4 resolve.go via sigs.k8s.io/yaml v1.6.0 (what kubectl 1.37 sends)
    ("1e3", 1000.0), ("1E3", 1000.0), (".5", 0.5), ("1.", 1.0), ("+.5", 0.5), ("-.5e-3", -0.0005),
    ("0o4000", 2048), ("04000", 2048), ("0x800", 2048), ("0X1f", 31), ("0b101", 5), ("-0b11", -3),
    ("1_000", 1000), ("0x_1F", 31), ("+12", 12), ("-0", 0), ("08", 8.0), ("09.5", 9.5),
    ("9223372036854775807", 2**63 - 1), ("18446744073709551615", 2**64 - 1), ("99999999999999999999", 1e20),
    ("1e400", "1e400"), ("0x", "0x"), ("_1", "_1"), ("1_", 1), ("._5", "._5"), (".5_0", 0.5),
    ("y", True), ("Y", True), ("yes", True), ("On", True), ("TRUE", True), ("n", False), ("No", False),
    ("off", False), ("False", False), ("yEs", "yEs"), ("~", None), ("null", None), ("NULL", None), ("", None),
    ("2030-01-01", "2030-01-01"), ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"), ("12:30:00", "12:30:00"),
    ("<<", "<<"), ("0.", 0.0), ("00", 0), ("1e", "1e"), ("0o8", "0o8"), ("0b2", "0b2"),
])
def test_plain_scalars_resolve_as_go_yaml_v2_does(plain: str, value: Any) -> None:
    got = kubeyaml.plain_scalar(plain)
    assert got == value and type(got) is type(value), (plain, got)


@pytest.mark.parametrize(("text", "expected"), [
    ("a: !!str 12", {"a": "12"}), ("a: !!int '12'", {"a": 12}), ("a: !!float 1", {"a": 1.0}),
    ("a: !!binary aGk=", {"a": "hi"}), ("a: !foo bar", {"a": "bar"}), ("a: ! 12", {"a": "12"}),
    ("a: '1e3'", {"a": "1e3"}), ('a: "0o17"', {"a": "0o17"}),
    ("1e3: a\n1.5: b\ny: d\n0x10: e\n1e7: f\n0.1: g", {"1000": "a", "1.5": "b", "true": "d", "16": "e",
                                                        "1e+07": "f", "0.1": "g"}),
    ("base: &b {p: 1, q: 2}\nm: {<<: *b, q: 3}", {"base": {"p": 1, "q": 2}, "m": {"p": 1, "q": 3}}),
    ("m: {a: 1, <<: {a: 2}}", {"m": {"a": 2}}),  # go-yaml v2 merges in order
    ("m: {<<: [{a: 1}, {a: 2, b: 2}]}", {"m": {"a": 1, "b": 2}}),  # earlier maps win
])
def test_documents_decode_as_kubectl_decodes_them(text: str, expected: Any) -> None:
    assert [d.value for d in kubeyaml.documents(text + "\n")] == [expected]


@pytest.mark.parametrize(("text", "problem"), [
    ("a: !!int 1.5", "cannot decode !!float `1.5` as a !!int"),
    ("a: .inf", "json: unsupported value: +Inf"),
    ("~: 1", "unsupported map key of type: <nil>"),
    ("18446744073709551615: 1", "unsupported map key of type: uint64"),
    ("[a]: 1", "invalid map key"),
    ("a: &x [*x]", "anchor 'x' value contains itself"),
    ("a: *nope", "unknown anchor 'nope' referenced"),
    ("a: !!binary '***'", "!!binary value contains invalid base64 data"),
    ("m: {<<: [1]}", "map merge requires map or sequence of maps as the value"),
    ("--- {a: 1}", "invalid Yaml document separator"),
])
def test_what_kubectl_cannot_decode_is_an_error(text: str, problem: str) -> None:
    with pytest.raises(kubeyaml.KubeYAMLError) as caught:
        list(kubeyaml.documents(text + "\n"))
    assert problem in str(caught.value)


# --- duplicate keys -------------------------------------------------------------------------------


def test_a_key_written_twice_is_an_error_naming_both_lines(tmp_path: Path, command: str) -> None:
    """go-yaml v2 keeps the last one silently; kubectl apply -k (go-yaml v3) refuses: so does pxsec."""
    path = write(tmp_path, GOOD + "  guestAccess: Enabled\n  guestAccess: Disabled\n")
    result = COMMANDS[command](path)
    assert result.code == UNREADABLE[command]
    assert result.one_line().endswith(f'{path}: line 8, column 3: not valid YAML: mapping key "guestAccess" already '
                                      "defined at line 7")


def test_keys_that_collide_once_written_as_json_are_duplicates(tmp_path: Path) -> None:
    """`1:` and `"1":` differ in YAML and are the same JSON key: kubectl would keep one at random."""
    result = validate(write(tmp_path, GOOD + "  secretTemplate:\n    labels: {1: a, '1': b}\n"))
    assert result.code == 2 and 'mapping key "1" already defined' in result.one_line()


# --- bounds ---------------------------------------------------------------------------------------

ALIAS_BOMB = "# 387420489 strings once expanded\n" + HEADER + """metadata: {name: bomb}
spec:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_an_alias_bomb_fails_at_once_in_one_line(tmp_path: Path, command: str) -> None:
    assert len(ALIAS_BOMB.encode()) == 471
    path = write(tmp_path, ALIAS_BOMB)
    result = COMMANDS[command](path)
    assert result.code == UNREADABLE[command]
    line = result.one_line()
    assert line.endswith(f"{path}: document 1, line 9, column 22: document contains excessive aliasing (go-yaml's "
                         "limit, which kubectl applies: 5540 of 5592 values would come from aliases)")
    assert result.seconds < 1


def test_aliases_within_go_yamls_ratio_are_expanded_as_kubectl_expands_them(tmp_path: Path) -> None:
    text = GOOD + "  secretTemplate:\n    labels: &l {team: storage}\n    annotations: *l\n"
    result = validate(write(tmp_path, text))
    assert (result.code, result.out) == (0, "ok: 1 document valid\n"), result.err


def test_aliases_beyond_the_api_servers_request_size_stop_before_they_are_built(tmp_path: Path) -> None:
    """Under go-yaml's ratio, but more than the 3 MiB the API server takes: stopped while expanding."""
    text = "big: &big " + "x" * 1_500_000 + "\nlist: [*big, *big, *big]\n"
    result = validate(write(tmp_path, text))
    assert result.code == 2
    assert "more than 3145728 bytes (3 MiB) as JSON, its aliases expanded" in result.one_line()


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_a_50_mb_input_is_refused_before_it_is_parsed(tmp_path: Path, command: str, how: str) -> None:
    data = (GOOD + "  tokens:\n" + "    - {secretName: px-admin-token, roles: [system.admin]}\n" * 900_000).encode()
    assert len(data) > 50_000_000
    if how == "file":
        path, stdin = write(tmp_path, data), None
        size = f"{len(data)} bytes"
    else:
        path, stdin = "-", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        size = "more than 3145728 bytes"
    result = COMMANDS[command](path, stdin)
    assert result.code == UNREADABLE[command]
    shown = "<stdin>" if how == "stdin" else path
    assert result.one_line().endswith(
        f"{shown}: {size}: larger than 3 MiB (3145728 bytes), the API server's limit for a request body; pxsec "
        "reads no more (split the file, or give it only the PxSecurity)")
    assert result.seconds < 1


def test_an_input_of_exactly_3_mib_is_read(tmp_path: Path) -> None:
    data = GOOD + "# " + "x" * (cliread.MAX_INPUT_BYTES - len(GOOD) - 3) + "\n"
    assert len(data.encode()) == cliread.MAX_INPUT_BYTES
    assert validate(write(tmp_path, data)).code == 0


@pytest.mark.parametrize("style", ["flow", "block", "sequence"])
def test_500_level_nesting_is_one_line_naming_the_file(tmp_path: Path, command: str, style: str) -> None:
    deep = {
        "flow": "  secretTemplate: " + "[" * 500 + "]" * 500 + "\n",
        "block": "".join("  " * (level + 1) + f"k{level}:\n" for level in range(500)),
        "sequence": "  tokens:\n    " + "- " * 500 + "x\n",
    }[style]
    path = write(tmp_path, GOOD + deep)
    result = COMMANDS[command](path)
    assert result.code == UNREADABLE[command]
    line = result.one_line()
    assert f"{path}: document 1, line " in line and line.endswith(
        "nested more than 100 levels deep (pxsec's limit; no Kubernetes object needs that many)")
    assert result.seconds < 1


def test_100_levels_are_read(tmp_path: Path) -> None:
    nested = "[" * 98 + "]" * 98  # the document and spec.secretTemplate are two levels
    result = validate(write(tmp_path, GOOD + f"  secretTemplate: {nested}\n"))
    assert result.code == 1 and "spec.secretTemplate in body must be of type object" in result.err


def test_alias_chains_count_their_expanded_depth(tmp_path: Path) -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150))
    result = validate(write(tmp_path, text))
    assert result.code == 2 and "nested more than 100 levels deep once its aliases are expanded" in result.one_line()


def test_the_c_loader_is_used_where_it_is_installed() -> None:
    installed = bool(getattr(yaml, "__with_libyaml__", False))
    assert installed == kubeyaml.WITH_LIBYAML
    if kubeyaml.WITH_LIBYAML:
        assert kubeyaml._Loader is yaml.CSafeLoader


# --- kind: List -----------------------------------------------------------------------------------

LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: other}
  - apiVersion: pxsec.dev/v1alpha1
    kind: PxSecurity
    metadata: {name: first}
    spec: {selfSigned: {sharedSecret: {}}}
  - apiVersion: pxsec.dev/v1alpha1
    kind: PxSecurity
    metadata: {name: second}
    spec: {guestAccess: Maybe, selfSigned: {sharedSecret: {}}}
"""


def test_each_item_of_a_list_is_judged(tmp_path: Path) -> None:
    result = validate(write(tmp_path, LIST))
    assert result.code == 1
    assert result.err.splitlines()[0] == (f'{tmp_path / "cr.yaml"}: document 1, item 3 (second): spec.guestAccess: '
                                          'Unsupported value: "Maybe": supported values: "Enabled", "Disabled", '
                                          '"Managed"')
    fixed = validate(write(tmp_path, LIST.replace("guestAccess: Maybe", "guestAccess: Managed")))
    assert (fixed.code, fixed.out) == (0, "ok: 2 documents valid (1 other document skipped)\n"), fixed.err


def test_render_and_verify_take_the_first_pxsecurity_item(tmp_path: Path) -> None:
    path = write(tmp_path, LIST)
    rendered = render(path)
    assert rendered.code == 0 and "name: first\n" in rendered.out
    assert verify(path).code == 1  # the file is read; the token is rejected


def test_items_of_a_typed_list_take_its_kind(tmp_path: Path) -> None:
    """PxSecurityList items without kind and apiVersion are PxSecurity objects, as kubectl decodes them."""
    text = ("apiVersion: pxsec.dev/v1alpha1\nkind: PxSecurityList\nitems:\n"
            "  - metadata: {name: typed}\n    spec: {selfSigned: {sharedSecret: {}}}\n"
            "  - metadata: {name: Typed_Bad}\n    spec: {selfSigned: {sharedSecret: {}}}\n")
    result = validate(write(tmp_path, text))
    assert result.code == 1 and "document 1, item 2 (Typed_Bad): metadata.name: Invalid value" in result.err


def test_a_list_of_400000_items_is_flattened_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24, finding 5: `kind: List` with 1,000,000 empty items (3,000,035 bytes, under the cap) took 102 s
    of CPU, flattened with `pop(0)` and `children + pending`. The decoded document is given directly (the YAML
    parse takes seconds of its own, and is linear): what is timed is the flattening of 400,000 items, which
    must stay depth-first in kubectl's order — the nested List's items come where that List stands.

    The bound sits between the two: the stack takes about 1 s (2 s with two CPUs shared by other e2e suites);
    `pop(0)` moves up to 400,000 pointers per item, 640 GB in all: 31 s on that same loaded machine."""
    size = 400_000
    items: list[Any] = [{}] * size
    items[1] = {"kind": "List", "items": [{"metadata": {"name": "nested-1"}}, {"metadata": {"name": "nested-2"}}]}
    document = {"apiVersion": "v1", "kind": "List", "items": items}
    monkeypatch.setattr(kubeyaml, "documents", lambda text, whole=False: iter([kubeyaml.Document(1, 1, document)]))
    started = time.perf_counter()
    flattened = list(kubeyaml.objects("(decoded above)"))
    elapsed = time.perf_counter() - started
    assert len(flattened) == size + 1 and flattened[-1].item == size + 1
    assert [item.value.get("metadata") for item in flattened[:4]] == [None, {"name": "nested-1"},
                                                                       {"name": "nested-2"}, None]
    assert elapsed < 10.0, elapsed


def test_an_item_that_is_not_an_object_is_unreadable(tmp_path: Path) -> None:
    result = validate(write(tmp_path, "apiVersion: v1\nkind: List\nitems: [a]\n"))
    assert result.code == 2 and "document 1: items[0] is a string, not an object" in result.one_line()


# --- metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("metadata", "expected"), [
    ("{name: a, labels: [team, storage]}", "metadata.labels: json: cannot unmarshal array into Go struct field "
     "ObjectMeta.metadata.labels of type map[string]string (kubectl cannot decode the object)"),
    ("{name: a, labels: {team: 5}}", "metadata.labels: json: cannot unmarshal number into Go struct field "
     "ObjectMeta.metadata.labels of type string"),
    ("{name: a, annotations: {a: {b: c}}}", "metadata.annotations: json: cannot unmarshal object into Go struct "
     "field ObjectMeta.metadata.annotations of type string"),
    ("[a]", "metadata: json: cannot unmarshal array into Go struct field metadataOnlyObject.metadata of type "
     "v1.ObjectMeta"),
    ("{name: 5}", "metadata.name: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of "
     "type string"),
    ("{name: a, namespace: Bad_NS}", "metadata.namespace: Invalid value: \"Bad_NS\": a lowercase RFC 1123 label must "
     "consist of lower case alphanumeric characters or '-'"),
    ("{name: a, namespace: a.b}", 'metadata.namespace: Invalid value: "a.b": must not contain dots'),
    ("{name: a, labels: {'bad key': v}}", 'metadata.labels: Invalid value: "bad key": name part must consist of'),
    ("{name: a, annotations: {x: {}}}", "metadata.annotations: json: cannot unmarshal object"),
    ("{name: a, colour: blue}", 'unknown field "metadata.colour"'),
    ("{namespace: portworx}", "metadata.name: Required value: name or generateName is required"),
])
def test_metadata_is_checked_as_kubectl_and_the_api_server_check_it(tmp_path: Path, command: str, metadata: str,
                                                                    expected: str) -> None:
    text = HEADER + f"metadata: {metadata}\nspec: {{selfSigned: {{sharedSecret: {{}}}}}}\n"
    result = COMMANDS[command](write(tmp_path, text))
    assert result.code == INVALID[command], result.err
    assert expected in result.err


def test_generate_name_is_refused_alike_by_validate_render_and_verify(tmp_path: Path) -> None:
    """kubectl apply refuses generateName without a name ("cannot use generate name with apply"); pxsec
    judges what kubectl apply sends, and render could not know the generated name: all three refuse, with
    the same words. With a name beside it, generateName is only checked (the name wins)."""
    path = write(tmp_path, HEADER + "metadata: {generateName: px-}\nspec: {selfSigned: {sharedSecret: {}}}\n")
    lines = {name: run(path) for name, run in COMMANDS.items()}
    assert {name: result.code for name, result in lines.items()} == {"validate": 1, "render": 1, "verify": 2}
    for result in lines.values():
        assert "metadata.name: Required value: kubectl apply cannot use metadata.generateName" in result.err
    named = write(tmp_path, HEADER + "metadata: {name: px, generateName: px-}\n"
                  "spec: {selfSigned: {sharedSecret: {}}}\n", "named.yaml")
    assert [run(named).code for run in COMMANDS.values()] == [1 if name == "verify" else 0 for name in COMMANDS]


# --- terminal escapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["\x1b[31mred\x1b[0m", "\x1b]0;pwned\x07", "\x9b31m", "\u202eevil", "a\rb"])
def test_names_never_reach_the_terminal_raw(tmp_path: Path, command: str, hostile: str) -> None:
    quoted = json.dumps(hostile)  # a YAML double-quoted scalar carrying the characters
    text = HEADER + f"metadata: {{name: {quoted}, namespace: {quoted}}}\nspec:\n" \
        f"  selfSigned: {{sharedSecret: {{}}}}\n  {quoted}: 1\n  secretTemplate: {{labels: {{{quoted}: {quoted}}}}}\n"
    result = COMMANDS[command](write(tmp_path, text))
    assert result.code == INVALID[command]
    raw = [char for char in hostile if not char.isprintable()]
    assert not [char for char in raw if char in result.err + result.out], repr(result.err)
    for line in (result.err + result.out).split("\n"):
        assert line.isprintable(), repr(line)
    assert "\\x1b" in result.err or "\\u009b" in result.err or "\\u202e" in result.err or "\\r" in result.err


def test_a_file_name_with_escapes_is_escaped_too(tmp_path: Path) -> None:
    result = validate(str(tmp_path / "\x1b[2Jmissing.yaml"))
    assert result.code == 2 and result.one_line().isprintable() and "\\x1b[2J" in result.err


# --- streams, as apimachinery's YAMLReader cuts them ---------------------------------------------


def test_crlf_and_separators_with_comments(tmp_path: Path) -> None:
    text = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: portworx}\n--- # the resource\n" + GOOD).replace(
        "\n", "\r\n")
    result = validate(write(tmp_path, text.encode()))
    assert (result.code, result.out) == (0, "ok: 1 document valid (1 other document skipped)\n"), result.err


def test_content_after_a_separator_is_an_error_as_in_kubectl(tmp_path: Path, command: str) -> None:
    result = COMMANDS[command](write(tmp_path, "--- " + GOOD))
    assert result.code == UNREADABLE[command]
    assert 'line 1, column 4: invalid Yaml document separator: "apiVersion: pxsec.dev/v1alpha1"' in result.one_line()


def test_utf16_with_a_byte_order_mark_is_one_document_as_kubectl_reads_it(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + (GOOD + "---\n" + GOOD.replace("px-cluster", "Second_Bad")).encode("utf-16-le")
    result = validate(write(tmp_path, data))
    assert (result.code, result.out) == (0, "ok: 1 document valid\n"), result.err


@pytest.mark.parametrize("data", [b"\xff\xfe\xfd", GOOD.encode() + b"\xc3(\n"])
def test_bytes_that_are_not_utf8_are_one_line(tmp_path: Path, command: str, data: bytes) -> None:
    if data.startswith(b"\xff\xfe"):
        data = b"apiVersion: \xff\n"
    path = write(tmp_path, data)
    result = COMMANDS[command](path)
    assert result.code == UNREADABLE[command]
    assert result.one_line().endswith("not UTF-8 text")


# --- one path -------------------------------------------------------------------------------------


def test_the_three_commands_read_through_one_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      command: str) -> None:
    calls: list[str] = []
    original = kubeyaml.objects

    def spy(text: str, *, whole: bool = False) -> Any:
        calls.append(command)
        return original(text, whole=whole)

    monkeypatch.setattr(kubeyaml, "objects", spy)
    COMMANDS[command](write(tmp_path, GOOD))
    assert calls == [command]


def test_render_and_verify_do_not_parse_documents_after_the_first_pxsecurity(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "---\n: : not yaml [\n")
    assert render(path).code == 0
    assert verify(path).code == 1
    assert validate(path).code == 2  # validate reads everything
