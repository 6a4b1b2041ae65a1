"""YAML read the way `kubectl apply -f` 1.37 reads it, with bounds a pull request cannot get around.

kubectl (k8s.io/kubectl v0.37.2) reads a file with k8s.io/apimachinery's YAMLOrJSONDecoder: the text is
cut into documents at lines that start with `---` (anything but a comment after it is an error), each
document goes through sigs.k8s.io/yaml v1.6.0, which parses it with go.yaml.in/yaml/v2 v2.4.4 and
turns it into the JSON sent to the API server. This module does the same, so `pxsec validate`,
`pxsec render` and `pxsec token verify -f` judge the JSON kubectl would send:

* **Plain scalars as go-yaml v2 resolves them** (`resolve.go`), not as the YAML 1.2 core schema says:
  `y`, `Y`, `yes`, `on`, `true` (and capitalised forms) are `true`, `n`, `no`, `off`, `false` are
  `false`; `~`, `null` and the empty scalar are null; integers are Go's `strconv.ParseInt(s, 0, 64)`
  after removing every `_`, so `0o4000` and `04000` are 2048, `0x800` is 2048, `0b101` is 5, `1_000`
  is 1000; floats are YAML's float pattern (`1e3`, `.5`, `1.`), so `secretName: 1e3` is the number
  1000; an out-of-range float (`1e400`) stays a string, `.inf` / `.nan` are floats JSON cannot carry
  (kubectl fails: "json: unsupported value"); dates stay strings. Quoted scalars are strings; tags
  `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!binary` behave as in go-yaml.
* **Keys as sigs.k8s.io/yaml writes them into JSON**: `1:` is "1", `true:` and `y:` are "true", a
  float key is Go's `%g` of its float32; a null or uint64 key fails (as in kubectl).
* **Merge keys** (`<<`) merge in go-yaml v2's order.
* **Documents** are cut exactly as apimachinery's YAMLReader cuts them (CRLF read as LF; a file that
  starts with a UTF-16 byte order mark is one document, as kubectl reads it).

Where pxsec is stricter than `kubectl apply -f`, on purpose:

* **A key written twice in one mapping is an error** (go-yaml v2 keeps the last one silently; go-yaml v3,
  which `kubectl apply -k` uses, and the API server's strict YAML decoding refuse it). A security
  setting spelled twice must not depend on which reader wins.
* **Bounds.** Aliases are expanded exactly as far as go-yaml v2 allows (its alias-to-decode ratio,
  "document contains excessive aliasing"), and never beyond the JSON size the API server accepts in one
  request (3 MiB), counted while expanding so a 471-byte alias bomb stops after a few thousand nodes.
  Nesting stops at `MAX_DEPTH` levels (kubectl's parser allows 10,000; no Kubernetes object comes near
  100, and a deeper document is refused by pxsec without the recursion a deeper walk would need).

Parsing uses libyaml (PyYAML's C parser) when it is installed — go-yaml v2 is a Go port of libyaml,
so both accept the same syntax — and builds values from its events without recursion, stopping at the
first limit crossed. Documents are decoded lazily, one at a time.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml import events

MAX_OBJECT_BYTES: Final = 3 * 1024 * 1024  # the API server's limit for one request body (maxRequestBodyBytes)
MAX_DEPTH: Final = 100
SEPARATOR: Final = "---"

_Loader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
WITH_LIBYAML: Final = _Loader is not yaml.SafeLoader

# go.yaml.in/yaml/v2 decode.go: the alias expansion allowed, as a share of all decode operations.
_ALIAS_RATIO_LOW: Final = 400_000
_ALIAS_RATIO_HIGH: Final = 4_000_000


class KubeYAMLError(yaml.YAMLError):
    """A document kubectl would not send (or pxsec will not read): one line, no file name.

    `line` and `column` count from 1 in the whole text (None when the problem has no one place);
    `document` is the document's number in the file (from 1). `limit` is True for pxsec's bounds.
    """

    def __init__(self, problem: str, *, line: int | None = None, column: int | None = None,
                 document: int | None = None, limit: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.column = column
        self.document = document
        self.limit = limit

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        return f"{where}{self.problem}"


@dataclass(frozen=True)
class Document:
    """One document of a stream: its number (from 1, counted as YAML counts documents), the line it
    starts on, and its value as JSON types (dict with str keys, list, str, int, float, bool, None)."""

    index: int
    line: int
    value: Any


# --------------------------------------------------------------------------------------------------
# Plain scalars: go.yaml.in/yaml/v2 resolve.go
# --------------------------------------------------------------------------------------------------

_TAG: Final = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, BINARY, MERGE = (
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "binary", "merge")
)
_RESOLVABLE: Final = frozenset({"", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP})

_MAP: Final[dict[str, tuple[str, Any]]] = {}
for _words, _tag, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", BOOL, True),
    ("n N no No NO false False FALSE off Off OFF", BOOL, False),
    ("~ null Null NULL", NULL, None),
    (".nan .NaN .NAN", FLOAT, math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", FLOAT, math.inf),
    ("-.inf -.Inf -.INF", FLOAT, -math.inf),
    ("<<", MERGE, "<<"),
):
    for _word in _words.split():
        _MAP[_word] = (_tag, _value)
_MAP[""] = (NULL, None)

_HINT: Final = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"),
                **dict.fromkeys("yYnNtTfFoO~", "M"), ".": "."}
_YAML_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT: Final = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_DIGITS: Final = {2: frozenset("01"), 8: frozenset("01234567"), 10: frozenset("0123456789"),
                  16: frozenset("0123456789abcdefABCDEF")}
_UINT64_MAX: Final = 2**64 - 1
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# What a resolved value is in Go, where it matters (map keys): go-yaml gives uint64 above MaxInt64.
GO_UINT64: Final = "uint64"


def _parse_uint(text: str) -> int | None:
    """strconv.ParseUint(text, 0, 64) for text without underscores: None when Go returns an error."""
    if not text:
        return None
    base = 10
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            base, text = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
        else:
            base, text = 8, text[1:]
    if not text:
        return 0
    if not set(text) <= _DIGITS[base]:
        return None
    value = int(text, base)
    return value if value <= _UINT64_MAX else None


def _parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) for text without underscores."""
    if not text:
        return None
    negative = text[0] == "-"
    if text[0] in "+-":
        text = text[1:]
    magnitude = _parse_uint(text)
    if magnitude is None:
        return None
    value = -magnitude if negative else magnitude
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _underscore_ok(text: str) -> bool:
    """strconv's underscoreOK: underscores only between digits (or after a base prefix)."""
    saw = "^"
    if text[:1] in ("-", "+"):
        text = text[1:]
    index = 0
    hexadecimal = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        index, saw, hexadecimal = 2, "0", text[1].lower() == "x"
    for char in text[index:]:
        if (char.isdigit() and char.isascii()) or (hexadecimal and char.lower() in "abcdef"):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _finite(text: str) -> float | None:
    value = float(text)
    return None if math.isinf(value) else value  # Go's ParseFloat: ErrRange


_TIMESTAMP: Final = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?"
)


def _timestamp(text: str) -> bool:
    """Whether go-yaml v2's parseTimestamp accepts the text (its four time.Parse layouts)."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return False
    year, month, day = (int(group) for group in match.groups()[:3])
    clock = [int(group) for group in match.groups()[3:] if group is not None]
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30,
            31, 30, 31]
    if not 1 <= month <= 12 or not 1 <= day <= days[month - 1]:
        return False
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)


def _implicit(tag: str, text: str) -> tuple[str, Any, str | None]:
    """go-yaml v2's resolve() before its tag check: (resolved tag, value, GO_UINT64 or None)."""
    hint = _HINT.get(text[0], "") if text else "N"
    if hint and tag not in (STR, BINARY):
        if text in _MAP:
            found_tag, found = _MAP[text]
            return found_tag, found, None
        if hint == ".":
            if ("_" not in text or _underscore_ok(text)) and _DOT_FLOAT.fullmatch(text.replace("_", "")):
                value = _finite(text.replace("_", ""))
                if value is not None:
                    return FLOAT, value, None
        elif hint in "DS":
            if tag in ("", TIMESTAMP) and _timestamp(text):
                return TIMESTAMP, text, None  # decoded into interface{}, a timestamp stays its text
            plain = text.replace("_", "")
            number = _parse_int(plain)
            if number is not None:
                return INT, number, None
            if not plain.startswith(("+", "-")):
                number = _parse_uint(plain)
                if number is not None:
                    return INT, number, GO_UINT64
            if _YAML_FLOAT.fullmatch(plain):
                value = _finite(plain)
                if value is not None:
                    return FLOAT, value, None
    return STR, text, None


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def resolve(tag: str, text: str) -> tuple[Any, str | None]:
    """The value go-yaml v2 decodes a scalar with `tag` ("" for a plain one) into, and GO_UINT64 when Go
    holds it as a uint64. Raises KubeYAMLError where go-yaml fails ("cannot decode !!str `x` as a !!int")."""
    if tag == BINARY:
        try:
            data = base64.b64decode("".join(text.split("\n")).replace("\r", ""), validate=True)
        except (binascii.Error, ValueError):
            raise KubeYAMLError("!!binary value contains invalid base64 data") from None
        return data.decode("utf-8", "replace"), None  # json.Marshal replaces invalid UTF-8
    if tag not in _RESOLVABLE:
        return text, None  # an unknown tag is ignored: the text, as a string
    found_tag, value, go_type = _implicit(tag, text)
    if tag in ("", found_tag, STR):
        return (text if tag == STR else value), go_type
    if tag == FLOAT and found_tag == INT and go_type != GO_UINT64:  # go-yaml converts int and int64, not uint64
        return float(value), None
    raise KubeYAMLError(f"cannot decode {_short(found_tag)} `{text}` as a {_short(tag)}")


def plain_scalar(text: str) -> Any:
    """The JSON value kubectl makes of an unquoted scalar (`1e3` -> 1000.0, `0o4000` -> 2048, `n` -> False)."""
    return resolve("", text)[0]


def _float32_g(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32): how sigs.k8s.io/yaml writes a float map key."""
    if math.isnan(value):
        return "NaN"
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        return "+Inf" if value > 0 else "-Inf"
    single = struct.unpack("<f", packed)[0]
    if math.isinf(single):
        return "+Inf" if single > 0 else "-Inf"
    if single == 0:
        return "-0" if math.copysign(1, single) < 0 else "0"
    sign = "-" if single < 0 else ""
    for precision in range(1, 10):
        text = f"{abs(single):.{precision - 1}e}"
        if struct.pack("<f", float(text)) == struct.pack("<f", abs(single)):
            break
    mantissa, exponent_text = text.split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    if exponent < -4 or exponent >= 6:  # shortest 'g' switches to %e at precision 6
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def json_key(value: Any, go_type: str | None) -> tuple[str | None, str | None]:
    """(the JSON key sigs.k8s.io/yaml makes of a decoded YAML key, or None and why it cannot)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, str):
        return value, None
    if value is None:
        return None, "unsupported map key of type: <nil> (a null key)"
    if go_type == GO_UINT64:
        return None, f"unsupported map key of type: uint64, key: {value:#x}"
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        text = _float32_g(value)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text), None
    return None, "invalid map key: a sequence or mapping"


# --------------------------------------------------------------------------------------------------
# Decoding one document from parser events, without recursion
# --------------------------------------------------------------------------------------------------


def _allowed_alias_ratio(decodes: int) -> float:
    if decodes <= _ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * ((decodes - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW))


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


_JSON_ESCAPED: Final = re.compile("[\"\\\\\x00-\x1f<>&\u2028\u2029]")


def _json_size(value: Any) -> int:
    """The bytes Go's json.Marshal writes for a scalar (it escapes <, > and & too)."""
    if isinstance(value, str):
        size = len(value) + 2 if value.isascii() else len(value.encode("utf-8", "replace")) + 2
        for char in _JSON_ESCAPED.findall(value):
            size += 1 if char in '"\\\n\r\t' else 5
        return size
    if value is None or value is True:
        return 4
    if value is False:
        return 5
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return len(str(int(value)))
    return len(repr(value))


@dataclass
class _Anchor:
    value: Any
    decodes: int  # decode operations go-yaml does for the node (nested aliases expanded)
    size: int  # the JSON bytes it adds
    depth: int
    is_map: bool


class _Frame:
    __slots__ = ("anchor", "decodes", "depth", "explicit", "is_map", "key", "key_column", "key_line", "merge",
                 "size", "value", "waiting_value")

    def __init__(self, is_map: bool, anchor: str | None, decodes: int, size: int) -> None:
        self.is_map = is_map
        self.value: Any = {} if is_map else []
        self.anchor = anchor
        self.decodes = decodes  # the decoder's counts before this node, to size it as an anchor
        self.size = size
        self.depth = 1
        self.key = ""
        self.key_line = 0
        self.key_column = 0
        self.waiting_value = False
        self.merge = False
        self.explicit: dict[str, int] = {}  # key -> line (from 1, in the file) where it was written


class _Decoder:
    """go-yaml v2's decoder, driven by parser events: its decode counts, anchors and merges, and the JSON
    conversion of sigs.k8s.io/yaml; values as JSON types."""

    def __init__(self, first_line: int) -> None:
        self.first_line = first_line
        self.decodes = 0
        self.alias_decodes = 0
        self.size = 0
        # An anchor is bound where its node starts, as go-yaml's parser binds it (document order): a
        # collection still open is bound to its frame, and an alias to it is one that contains itself.
        self.anchors: dict[str, _Anchor | _Frame] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.done = False
        self.deferred: KubeYAMLError | None = None  # found by the JSON conversion, after decoding
        self.non_finite = False  # a .inf or .nan was decoded: JSON cannot carry it
        self.mark: Any = None  # where the current event starts

    @property
    def line(self) -> int | None:
        return None if self.mark is None else self.first_line + self.mark.line

    @property
    def column(self) -> int | None:
        return None if self.mark is None else self.mark.column + 1

    # -- bookkeeping -----------------------------------------------------------------------------

    def _fail(self, problem: str, *, limit: bool = False) -> KubeYAMLError:
        return KubeYAMLError(problem, line=self.line, column=self.column, limit=limit)

    def _count(self, decodes: int, aliased: int) -> None:
        self.decodes += decodes
        self.alias_decodes += aliased
        if (self.alias_decodes > 100 and self.decodes > 1000
                and self.alias_decodes / self.decodes > _allowed_alias_ratio(self.decodes)):
            raise self._fail(
                "document contains excessive aliasing (go-yaml's limit, which kubectl applies: "
                f"{self.alias_decodes} of {self.decodes} values would come from aliases)", limit=True)

    def _grow(self, size: int) -> None:
        self.size += size
        if self.size > MAX_OBJECT_BYTES:
            raise self._fail(
                f"the document is more than {MAX_OBJECT_BYTES} bytes (3 MiB) as JSON, its aliases expanded: "
                "the API server refuses a request body that large", limit=True)

    def _waiting_merge(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].waiting_value and self.stack[-1].merge

    # -- events ------------------------------------------------------------------------------------

    def feed(self, event: events.Event) -> None:
        self.mark = event.start_mark
        kind = type(event)
        if kind is events.ScalarEvent:
            self._scalar(event)  # type: ignore[arg-type]
        elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
            self._start(event, kind is events.MappingStartEvent)  # type: ignore[arg-type]
        elif kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
            frame = self.stack.pop()
            if frame.anchor is not None and self.anchors.get(frame.anchor) is frame:  # not bound again inside
                self.anchors[frame.anchor] = _Anchor(frame.value, self.decodes - frame.decodes,
                                                     self.size - frame.size, frame.depth, frame.is_map)
            self._attach(frame.value, None, frame.depth)
        elif kind is events.AliasEvent:
            self._alias(event.anchor or "")  # type: ignore[attr-defined]
        elif kind is events.DocumentStartEvent:
            self._count(1, 0)
        elif kind is events.DocumentEndEvent:
            self.done = True

    def _start(self, event: events.CollectionStartEvent, is_map: bool) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self._fail(f"nested more than {MAX_DEPTH} levels deep (pxsec's limit; no Kubernetes object "
                             "needs that many)", limit=True)
        before = self.decodes
        # go-yaml merges a sequence given to `<<` item by item: the sequence itself is not decoded.
        self._count(0 if not is_map and self._waiting_merge() else 1, 0)
        self._grow(2)
        frame = _Frame(is_map, event.anchor, before, self.size - 2)
        self.stack.append(frame)
        if event.anchor is not None:
            self.anchors[event.anchor] = frame

    def _scalar(self, event: events.ScalarEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        tag = event.tag or ""
        plain = bool(event.implicit[0])
        if (frame is not None and frame.is_map and not frame.waiting_value and event.value == "<<"
                and ((plain and tag in ("", "!")) or tag == MERGE)):
            frame.waiting_value = frame.merge = True  # go-yaml does not decode a merge key
            return
        self._count(1, 0)
        value: Any
        go_type: str | None
        if tag == "!" or (not tag and not plain):
            value, go_type = event.value, None  # quoted, or the non-specific tag: a string
        else:
            try:
                value, go_type = resolve(tag, event.value)
            except KubeYAMLError as error:
                raise self._fail(error.problem) from None
        if type(value) is float and not math.isfinite(value):
            self.non_finite = True
        size = _json_size(value)
        self._grow(size)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, 1, size, 0, False)
        self._attach(value, go_type, 0)

    def _alias(self, name: str) -> None:
        anchor = self.anchors.get(name)
        if anchor is None:
            raise self._fail(f"unknown anchor '{name}' referenced")
        if isinstance(anchor, _Frame):
            raise self._fail(f"anchor '{name}' value contains itself")
        if self._waiting_merge() and not anchor.is_map:
            raise self._fail("map merge requires map or sequence of maps as the value")
        self._count(1 + anchor.decodes, anchor.decodes)
        if len(self.stack) + anchor.depth > MAX_DEPTH:
            raise self._fail(f"nested more than {MAX_DEPTH} levels deep once its aliases are expanded "
                             "(pxsec's limit; no Kubernetes object needs that many)", limit=True)
        self._grow(anchor.size)
        self._attach(_copy(anchor.value), None, anchor.depth)

    def _attach(self, value: Any, go_type: str | None, depth: int) -> None:
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame.depth = max(frame.depth, depth + 1)
        if not frame.is_map:
            if frame.value:
                self._grow(1)  # the comma
            frame.value.append(value)
            return
        if not frame.waiting_value:
            if isinstance(value, dict | list):
                raise self._fail("invalid map key: a sequence or mapping cannot be a key")
            key, problem = json_key(value, go_type)
            if problem is not None and self.deferred is None:
                self.deferred = self._fail(problem)
            frame.key = key if key is not None else ""
            frame.key_line, frame.key_column = self.line or 0, self.column or 0
            frame.waiting_value = True
            # the key is written as a JSON string, then a colon, after a comma unless it is the first
            self._grow(_json_size(frame.key) - _json_size(value) + 1 + (1 if frame.value else 0))
            return
        frame.waiting_value = False
        if frame.merge:
            frame.merge = False
            if isinstance(value, dict):
                frame.value.update(value)
            elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
                for item in reversed(value):  # earlier mappings take precedence
                    frame.value.update(item)
            else:
                raise self._fail("map merge requires map or sequence of maps as the value")
            return
        if frame.key in frame.explicit:
            raise KubeYAMLError(f"not valid YAML: mapping key {_quote(frame.key)} already defined at line "
                                f"{frame.explicit[frame.key]}", line=frame.key_line, column=frame.key_column)
        frame.explicit[frame.key] = frame.key_line
        frame.value[frame.key] = value

    def finish(self) -> Any:
        if self.deferred is not None:
            raise self.deferred
        bad = _non_finite(self.root) if self.non_finite else None
        if bad is not None:
            raise KubeYAMLError(f"json: unsupported value: {bad} (JSON has no infinity or NaN; kubectl fails)")
        return self.root


def _non_finite(value: Any) -> str | None:
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is float and not math.isfinite(item):
            return "NaN" if math.isnan(item) else ("+Inf" if item > 0 else "-Inf")
        if type(item) is dict:
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
    return None


def _quote(text: str) -> str:
    """Go's %q, so a key with control characters never reaches a terminal raw."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}.get(char, f"\\x{code:02x}"))
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _yaml_problem(error: yaml.YAMLError) -> tuple[str, int | None, int | None]:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return problem, None, None
    return problem, mark.line, mark.column + 1


def decode_document(text: str, first_line: int = 1) -> Any:
    """The value of the first YAML document in `text` (None for none), as go-yaml v2 via sigs.k8s.io/yaml
    decodes it (later documents of the text are not looked at, like yaml.Unmarshal). `first_line` is the
    text's first line in the file, for error positions. Raises KubeYAMLError."""
    loader = _Loader(text)
    decoder = _Decoder(first_line)
    try:
        while not decoder.done and loader.check_event():
            decoder.feed(loader.get_event())
    except KubeYAMLError:
        raise
    except yaml.YAMLError as error:
        problem, line, column = _yaml_problem(error)
        raise KubeYAMLError(f"not valid YAML: {problem}", line=None if line is None else first_line + line,
                            column=column) from None
    except RecursionError:  # not expected (no recursion above), kept so nothing can escape as a traceback
        raise KubeYAMLError(f"nested more than {MAX_DEPTH} levels deep", limit=True) from None
    finally:
        loader.dispose()
    return decoder.finish()


# --------------------------------------------------------------------------------------------------
# Streams: apimachinery's YAMLReader
# --------------------------------------------------------------------------------------------------


def _is_content(line: str) -> bool:
    stripped = line.strip().lstrip("\ufeff")
    return bool(stripped) and not stripped.startswith("#")


def split_documents(text: str) -> Iterator[tuple[int, int, str]]:
    """(document number, first line, text) of each document, cut as kubectl cuts a stream
    (apimachinery's YAMLReader): at lines starting with `---`, which may be followed by nothing but
    spaces or a comment (else KubeYAMLError), with CRLF read as LF. Numbers count documents as YAML does:
    an empty document between two separators has one, comments before the first separator do not."""
    terminated = text.endswith("\n")
    lines = text.split("\n")
    if terminated:
        lines.pop()
    number = 0
    start = 1
    buffer: list[str] = []
    separated = False
    for line_number, line in enumerate(lines, start=1):
        if line.endswith("\r") and (terminated or line_number < len(lines)):
            line = line[:-1]  # bufio.Reader.ReadLine drops the CR of a CRLF
        if not line.startswith(SEPARATOR):
            buffer.append(line + "\n")
            continue
        rest = line[len(SEPARATOR):].strip()
        if rest and not rest.startswith("#"):
            raise KubeYAMLError(f"invalid Yaml document separator: {_quote(rest)} (kubectl allows only a comment "
                                "after ---)", line=line_number, column=len(SEPARATOR) + 1)
        if separated or any(_is_content(kept) for kept in buffer):
            number += 1
            if buffer:
                yield number, start, "".join(buffer)
        separated = True
        buffer = []
        start = line_number + 1
    if any(_is_content(kept) for kept in buffer):
        yield number + 1, start, "".join(buffer)


def documents(text: str, *, whole: bool = False) -> Iterator[Document]:
    """The documents of a stream as kubectl sends them, decoded lazily: a caller that stops early never
    sees a broken document after the one it wanted. Empty and null documents are skipped, as kubectl
    skips them. `whole`: the text is one document, its first YAML document only (how kubectl reads a
    UTF-16 file: its separator search finds no `---` in UTF-16). Raises KubeYAMLError, document set."""
    chunks = iter([(1, 1, text)]) if whole else split_documents(text)
    for number, line, chunk in chunks:
        try:
            value = decode_document(chunk, line)
        except KubeYAMLError as error:
            error.document = number
            raise
        if value is not None:
            yield Document(number, line, value)


# --------------------------------------------------------------------------------------------------
# Lists: kubectl sends each item of a List as its own object
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One object kubectl would send: the document it is in, its position in the (flattened) items of a
    List document (None for a plain document), and the object."""

    document: int
    item: int | None
    value: Any

    @property
    def where(self) -> str:
        return f"document {self.document}" + (f", item {self.item}" if self.item is not None else "")


def _is_list(value: Any) -> bool:
    """k8s.io/apimachinery's unstructured decoding: any object with an `items` field is a list."""
    return isinstance(value, dict) and "items" in value


def objects(text: str, *, whole: bool = False) -> Iterator[Item]:
    """Every object kubectl would send for `text`: plain documents, and the items of List documents
    (any object with `items`, as unstructured decoding sees it), flattened; an item without kind and
    apiVersion takes the list's kind (minus `List`) and apiVersion, as kubectl gives it."""
    for document in documents(text, whole=whole):
        if not _is_list(document.value):
            yield Item(document.index, None, document.value)
            continue
        number = 0
        # A stack, children pushed in reverse: the same depth-first order as kubectl's flattening, in
        # linear time (a list of a million items must not cost a million list copies).
        pending: list[Any] = [document.value]
        while pending:
            current = pending.pop()
            if not _is_list(current):
                number += 1
                yield Item(document.index, number, current)
                continue
            items = current.get("items")
            if items is None:
                continue
            if not isinstance(items, list):
                raise KubeYAMLError(f"items must be a list of objects, not {_json_kind(items)} (kubectl cannot "
                                    "decode it)", document=document.index)
            kind = current.get("kind") if isinstance(current.get("kind"), str) else ""
            api_version = current.get("apiVersion") if isinstance(current.get("apiVersion"), str) else ""
            children = []
            for position, child in enumerate(items):
                if not isinstance(child, dict):
                    raise KubeYAMLError(f"items[{position}] is {_json_kind(child)}, not an object (kubectl cannot "
                                        "decode it)", document=document.index)
                unnamed = not isinstance(child.get("kind"), str) or not child.get("kind")
                if unnamed and (not isinstance(child.get("apiVersion"), str) or not child.get("apiVersion")):
                    child = {**child, "kind": kind.removesuffix("List"), "apiVersion": api_version}
                children.append(child)
            pending.extend(reversed(children))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
