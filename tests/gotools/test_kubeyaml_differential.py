"""pxsec reads YAML as kubectl 1.37 does: the same streams, judged by `pxsec.kubeyaml` and by kubectl's
own libraries (tests/kubeyaml: k8s.io/apimachinery v0.37.2's YAMLOrJSONDecoder, sigs.k8s.io/yaml v1.6.0,
go.yaml.in/yaml/v2 v2.4.4, built with Go once per machine), must give the same JSON documents.

Where pxsec differs on purpose it is stricter, and only that is allowed: a key written twice (go-yaml v2
keeps the last one), and a few plain scalars in flow context that libyaml refuses and go-yaml reads
(`[a:]`) — pxsec then says "not valid YAML" and judges nothing, never something else. Streams starting
with `{` are left out: kubectl reads those with encoding/json first.

Derandomized hypothesis (STREAMS streams, the same on every run), then chosen streams. The reader is built
with Go once per machine (`make tools`); when it cannot be had the tests fail in one line, never skip.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pxsec import kubeyaml
from tests.kubeyaml import build

pytestmark = pytest.mark.go

STREAMS = 600


@pytest.fixture(scope="module")
def kubectl_reader() -> str:
    try:
        return str(build.ensure())
    except build.Unavailable as error:
        pytest.fail(str(error), pytrace=False)


def kubectl_reads(binary: str, streams: list[str]) -> list[Any]:
    result = subprocess.run([binary], input="\x00".join(streams).encode(), capture_output=True, check=True,
                            timeout=120)
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def pxsec_reads(stream: str) -> Any:
    try:
        return [document.value for document in kubeyaml.documents(stream)]
    except kubeyaml.KubeYAMLError as error:
        return {"error": str(error)}


def same(go: Any, ours: Any) -> bool:
    """The same JSON: numbers compared by value (Go writes the float 1000 as 1000)."""
    if isinstance(go, bool) or isinstance(ours, bool):
        return go is ours
    if isinstance(go, int | float) and isinstance(ours, int | float):
        return float(go) == float(ours)
    if isinstance(go, dict) and isinstance(ours, dict):
        return go.keys() == ours.keys() and all(same(go[key], ours[key]) for key in go)
    if isinstance(go, list) and isinstance(ours, list):
        return len(go) == len(ours) and all(same(a, b) for a, b in zip(go, ours, strict=True))
    return bool(go == ours)


def allowed_difference(ours: Any) -> bool:
    if not isinstance(ours, dict):
        return False
    message = ours["error"]
    return "already defined at line" in message or "found unexpected ':'" in message or (
        "did not find expected whitespace or line break" in message)


WORDS = ["y", "n", "yes", "No", "on", "OFF", "true", "False", "null", "~", "", "1e3", "1E3", "2e5", ".5", "1.", "+.5",
         "-0", "0o17", "0o4000", "017", "04000", "08", "0x1F", "0X1f", "0b101", "-0b11", "1_000", "0x_1F", "_1", "1_",
         "1e400", ".inf", "-.Inf", ".nan", "99999999999999999999", "18446744073709551615", "9223372036854775808",
         "2030-01-01", "2030-1-2", "2030-01-01T00:00:00Z", "12:30:00", "<<", "0.", "00", "1e", "'1e3'", '"0o17"',
         "!!str 1", "!!int '12'", "!!int 1.5", "!!float 1", "!!bool yes", "!!null ~", "!!binary aGk=", "!foo bar",
         "! 12", "a b", "px-cluster", "-x", "'y'", '"\\e[31m"', "|\n  text", ">-\n  folded",
         # tags over the edges of int64 and uint64 (issue 24: go-yaml converts an int to !!float, not a uint64)
         "!!float 9223372036854775808", "!!float 9223372036854775807", "!!float -9223372036854775808",
         "!!float 18446744073709551616", "!!int 9223372036854775808", "!!int 18446744073709551616", "!!float 0x10",
         "!!float 0o17", "!!int 1e3", "!!str 0o17", "!!float 1_000"]
KEYS = ["k", "y", "n", "1", "1e3", "0x10", "true", "'1'", "<<", "1.5", "~", "on"]


@st.composite
def node(draw: st.DrawFn, depth: int = 0) -> str:
    """A value; now and then anchored (&a, &b, possibly again inside itself) or an alias (*a, *b, possibly
    unknown yet or inside the node it names): go-yaml binds anchors in document order, where a node starts."""
    anchoring = draw(st.integers(0, 11))
    if anchoring == 0:
        return draw(st.sampled_from(["*a", "*b"]))
    if anchoring == 1:
        return f"&{draw(st.sampled_from(['a', 'b']))} {draw(plain_node(depth))}"
    return draw(plain_node(depth))


@st.composite
def plain_node(draw: st.DrawFn, depth: int = 0) -> str:
    roll = draw(st.integers(0, 9))
    if depth > 3 or roll < 5:
        return draw(st.sampled_from(WORDS)).replace("\n", "\n" + "  " * (depth + 1))
    if roll < 7:
        return "[" + ", ".join(draw(st.lists(node(depth + 1), max_size=3))) + "]"
    if roll < 9:
        pairs = draw(st.lists(st.tuples(st.sampled_from(KEYS), node(depth + 1)), max_size=3))
        return "{" + ", ".join(f"{key}: {value}" for key, value in pairs) + "}"
    indent = "  " * (depth + 1)
    items = draw(st.lists(node(depth + 1), min_size=1, max_size=3))
    return "\n" + "".join(f"{indent}- {item}\n" for item in items).rstrip("\n")


@st.composite
def stream(draw: st.DrawFn) -> str:
    documents = []
    for _ in range(draw(st.integers(1, 3))):
        lines = [f"f{index}: {draw(node())}" for index in range(draw(st.integers(1, 4)))]
        if draw(st.booleans()):
            lines = ["base: &b {p: 1, q: 2}", *lines, "m: {<<: *b, q: 3}", "c: &c [x]", "d: [*c, *c]"]
        documents.append("\n".join(lines) + "\n")
    text = draw(st.sampled_from(["---\n", "--- # c\n", "\n---\n", "---\n---\n"])).join(documents)
    if draw(st.integers(0, 4)) == 0:
        text = text.replace("\n", "\r\n")
    if draw(st.integers(0, 4)) == 0:
        text = "# head\n" + text
    return text


@settings(max_examples=STREAMS, derandomize=True, database=None, deadline=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream())
def test_pxsec_reads_yaml_as_kubectl_does(kubectl_reader: str, text: str) -> None:
    [go] = kubectl_reads(kubectl_reader, [text])
    ours = pxsec_reads(text)
    if isinstance(go, list):
        go = [document for document in go if document is not None]  # kubectl skips empty documents
    if isinstance(go, dict) or isinstance(ours, dict):
        assert (isinstance(go, dict) and isinstance(ours, dict)) or allowed_difference(ours), (go, ours)
    else:
        assert same(go, ours), (go, ours)


@pytest.mark.parametrize("text", [
    "a: 1e3\nb: 0o4000\nc: y\nd: n\ne: 0755\nf: 1_000\ng: 0b101\nh: 1e400\ni: .5\nj: 2030-01-01\n",
    "1e3: a\n1.5: b\ny: c\n0x10: d\n1e7: e\n0.1: f\n-.inf: g\n",
    "a: !!str 12\nb: !!int '12'\nc: !!float 1\nd: !!binary aGk=\ne: !foo bar\nf: ! 12\n",
    "base: &b {p: 1, q: 2}\nm: {a: 1, <<: *b, q: 3}\nl: {<<: [{a: 1}, {a: 2, b: 2}]}\n",
    "a: 1\n---\n---\n# c\n---\nb: 2\r\n--- # x\nc: [1, 2]\n",
    "a: .inf\n", "~: 1\n", "[a]: 1\n", "a: &x [*x]\n", "a: *nope\n", "--- {a: 1}\n", "a: !!int 1.5\n",
    "18446744073709551615: 1\n",
    # issue 24: anchors bind where their node starts, in document order; !!float of a uint64
    "x: &r [system.admin, &r system.user]\nroles: *r\n", "a: &a [&a x, *a]\n", "a: &a {b: &a 1, c: *a}\nd: *a\n",
    "a: &a [1, &b [*a]]\n", "a: &a [1]\nb: &a [2]\nc: *a\n",
    "k: !!float 9223372036854775808\n", "k: !!float 9223372036854775807\n", "k: !!float 18446744073709551616\n",
])
def test_chosen_streams_read_as_kubectl_reads_them(kubectl_reader: str, text: str) -> None:
    [go] = kubectl_reads(kubectl_reader, [text])
    ours = pxsec_reads(text)
    if isinstance(go, dict):
        assert isinstance(ours, dict), (go, ours)
    else:
        assert same([document for document in go if document is not None], ours), (go, ours)
