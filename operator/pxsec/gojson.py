"""JSON and base64url read the way Go reads them, so `pxsec.verify` sees the token Portworx sees.

Portworx decodes tokens with Go's `encoding/json` (and go-jose's fork of it) and `encoding/base64`.
Python's `json` and `base64` disagree with them on inputs an attacker can choose, and each disagreement
is a verdict that differs from Portworx's:

* **Syntax.** Go accepts exactly RFC 8259 JSON: no `NaN`/`Infinity`, no byte-order mark, no UTF-16/32,
  whitespace only space, tab, CR, LF; at most 10000 levels of nesting (encoding/json scanner.go).
* **Strings.** Invalid UTF-8 and lone surrogate escapes are not errors: each bad byte, and each bad
  `\\u` escape, becomes U+FFFD (decode.go unquoteBytes, utf8.DecodeRune).
* **Numbers.** Into `interface{}` a number is a float64; one beyond float64's range (`1e400`) is an
  error wherever it is, even in a claim nobody reads.
* **Objects.** Into a map, a repeated name keeps its last value. Into a struct, names match the field
  **case-insensitively** (`bytes.EqualFold`: `ROLES`, `Roles`, and even U+017F LONG S or U+212A KELVIN
  SIGN where `s` or `k` are), each match overwrites the field in document order, `null` leaves a
  string field as it was, and an array decoded into a slice reuses the slice's earlier elements
  (decode.go object / array / literalStore). `decode_struct` reproduces exactly that.
* **go-jose's fork** (gopkg.in/square/go-jose.v2/json) matches names case-sensitively and rejects a
  repeated name anywhere (`has_duplicate_names`).
* **base64url** (`RawURLEncoding`): no `=` padding, no `+` or `/`, CR and LF ignored, a length of
  4n+1 rejected, unused trailing bits not checked.

Pure functions; values are `JSONValue`: `JSONObject` (members in document order, repeats kept),
`list`, `str`, `JSONNumber` (the literal), `bool`, `None`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

MAX_DEPTH: Final = 10000  # encoding/json scanner.go maxNestingDepth
_WHITESPACE: Final = b" \t\r\n"
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')  # string bytes that need no attention
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_HEX = frozenset(b"0123456789abcdefABCDEF")


class GoJSONError(ValueError):
    """Not JSON as Go reads it (a syntax error). The message never quotes the input."""


class GoJSONTypeError(ValueError):
    """JSON, but a value Go cannot store where it is decoded (wrong type, number out of range)."""


@dataclass(frozen=True, slots=True)
class JSONNumber:
    """A number, kept as its literal: Go converts it only where it is decoded into a number."""

    text: str

    def float64(self) -> float:
        """strconv.ParseFloat(text, 64); GoJSONTypeError beyond float64's range, as Go's decoder says."""
        value = float(self.text)
        if math.isinf(value):
            raise GoJSONTypeError(f"json: cannot unmarshal number {self.text[:40]} into Go value of type float64")
        return value


@dataclass(frozen=True, slots=True)
class JSONObject:
    """An object's members in document order; a repeated name appears as often as it was written."""

    members: tuple[tuple[str, JSONValue], ...]

    def last(self) -> dict[str, JSONValue]:
        """As a Go map: the last value of each name wins."""
        return dict(self.members)


JSONValue = JSONObject | list["JSONValue"] | str | JSONNumber | bool | None


def kind(value: JSONValue) -> str:
    """The JSON type name Go's errors use: object, array, string, number, bool, null."""
    return next((name for types, name in _KINDS if isinstance(value, types)), "null")


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (JSONObject, "object"), (list, "array"), (str, "string"), (JSONNumber, "number"), (bool, "bool"))


# -- UTF-8 as utf8.DecodeRune reads it -----------------------------------------------------------------

# The second byte's range for each valid first byte of a multi-byte sequence (unicode/utf8 first/acceptRanges).
_SECOND: Final = {**{b: (0x80, 0xBF, 2) for b in range(0xC2, 0xE0)}, 0xE0: (0xA0, 0xBF, 3),
                  **{b: (0x80, 0xBF, 3) for b in range(0xE1, 0xED)}, 0xED: (0x80, 0x9F, 3),
                  0xEE: (0x80, 0xBF, 3), 0xEF: (0x80, 0xBF, 3), 0xF0: (0x90, 0xBF, 4),
                  **{b: (0x80, 0xBF, 4) for b in range(0xF1, 0xF4)}, 0xF4: (0x80, 0x8F, 4)}


def _decode_rune(data: bytes, i: int) -> tuple[str, int]:
    """(character, size) at data[i]: U+FFFD and size 1 for anything that is not valid UTF-8."""
    first = data[i]
    spec = _SECOND.get(first)
    if spec is None:
        return "\ufffd", 1
    low, high, size = spec
    if i + size > len(data) or not low <= data[i + 1] <= high:
        return "\ufffd", 1
    if any(not 0x80 <= b <= 0xBF for b in data[i + 2:i + size]):
        return "\ufffd", 1
    return data[i:i + size].decode("utf-8"), size


def go_utf8(data: bytes) -> str:
    """Bytes as a Go string converted to runes: every byte that is not valid UTF-8 is one U+FFFD."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i] < 0x80:
            out.append(chr(data[i]))
            i += 1
            continue
        char, size = _decode_rune(data, i)
        out.append(char)
        i += size
    return "".join(out)


def _unquote(raw: bytes) -> str:
    """A string literal's content (between the quotes, already scanned) as Go's unquoteBytes decodes it."""
    if b"\\" not in raw:
        return go_utf8(raw)
    out: list[str] = []
    i = 0
    n = len(raw)
    simple = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f",
              ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}
    while i < n:
        c = raw[i]
        if c != 0x5C:  # not a backslash
            start = i
            while i < n and raw[i] != 0x5C:
                i += 1
            out.append(go_utf8(raw[start:i]))
            continue
        escape = raw[i + 1]
        if escape != ord("u"):
            out.append(simple[escape])
            i += 2
            continue
        code = int(raw[i + 2:i + 6], 16)
        i += 6
        if 0xD800 <= code <= 0xDFFF:
            following = _u4(raw, i)
            if 0xD800 <= code < 0xDC00 and following is not None and 0xDC00 <= following <= 0xDFFF:
                out.append(chr(0x10000 + ((code - 0xD800) << 10) + (following - 0xDC00)))
                i += 6
                continue
            out.append("\ufffd")
            continue
        out.append(chr(code))
    return "".join(out)


def _u4(raw: bytes, i: int) -> int | None:
    if i + 6 > len(raw) or raw[i] != 0x5C or raw[i + 1] != ord("u") or not all(b in _HEX for b in raw[i + 2:i + 6]):
        return None
    return int(raw[i + 2:i + 6], 16)


# -- the scanner and parser ----------------------------------------------------------------------------


def _describe(byte: int) -> str:
    """How Go's scanner names a byte in its errors: 'x' for printable ASCII, else its escape."""
    if 0x20 <= byte < 0x7F and byte not in (0x27, 0x5C):
        return f"'{chr(byte)}'"
    return f"'\\x{byte:02x}'"


@dataclass
class _Frame:
    container: list[Any]
    is_object: bool
    key: str | None = None
    pending: list[str] = field(default_factory=list)


def parse(data: bytes) -> JSONValue:
    """One JSON value filling `data` (surrounding whitespace allowed), as json.Unmarshal accepts it.

    Raises GoJSONError for anything Go's scanner rejects. Iterative, so deep nesting cannot overflow
    Python's stack; nesting deeper than Go's 10000 levels is an error, as it is in Go.
    """
    n = len(data)
    i = 0

    def skip_ws(j: int) -> int:
        while j < n and data[j] in _WHITESPACE:
            j += 1
        return j

    def fail(j: int, looking: str) -> GoJSONError:
        if j >= n:
            return GoJSONError("unexpected end of JSON input")
        return GoJSONError(f"invalid character {_describe(data[j])} {looking}")

    def scan_string(j: int) -> tuple[str, int]:
        # data[j] is the opening quote
        k = j + 1
        while True:
            plain = _PLAIN.match(data, k)  # always matches, possibly nothing
            assert plain is not None
            k = plain.end()
            if k >= n:
                raise GoJSONError("unexpected end of JSON input")
            c = data[k]
            if c == 0x22:
                return _unquote(data[j + 1:k]), k + 1
            if c < 0x20:
                raise GoJSONError(f"invalid character {_describe(c)} in string literal")
            if c == 0x5C:
                if k + 1 >= n:
                    raise GoJSONError("unexpected end of JSON input")
                e = data[k + 1]
                if e in b'"\\/bfnrt':
                    k += 2
                    continue
                if e == ord("u"):
                    for m in range(k + 2, k + 6):
                        if m >= n:
                            raise GoJSONError("unexpected end of JSON input")
                        if data[m] not in _HEX:
                            raise GoJSONError(f"invalid character {_describe(data[m])} in \\u hexadecimal "
                                              "character escape")
                    k += 6
                    continue
                raise GoJSONError(f"invalid character {_describe(e)} in string escape code")
            k += 1

    def scan_scalar(j: int) -> tuple[JSONValue, int]:
        c = data[j]
        if c == 0x22:
            return scan_string(j)
        for word, value in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                for m, expected in enumerate(word):
                    if j + m >= n:
                        raise GoJSONError("unexpected end of JSON input")
                    if data[j + m] != expected:
                        raise fail(j + m, f"in literal {word.decode()} (expecting '{chr(expected)}')")
                return value, j + len(word)
        if c == 0x2D or 0x30 <= c <= 0x39:
            match = _NUMBER.match(data, j)
            assert match is not None or c == 0x2D
            if match is None:
                raise fail(j + 1, "in numeric literal")
            end = match.end()  # a byte the number cannot continue with ("01", "1.") fails as the next token
            return JSONNumber(data[j:end].decode("ascii")), end
        raise fail(j, "looking for beginning of value")

    def scan_key(i: int) -> tuple[str, int]:
        """An object key and its colon, at i (after white space): the key and the index after the colon."""
        if i >= n:
            raise GoJSONError("unexpected end of JSON input")
        if data[i] != 0x22:
            raise fail(i, "looking for beginning of object key string")
        key, i = scan_string(i)
        i = skip_ws(i)
        if i >= n:
            raise GoJSONError("unexpected end of JSON input")
        if data[i] != 0x3A:
            raise fail(i, "after object key")
        return key, i + 1

    stack: list[_Frame] = []
    result: JSONValue = None
    i = skip_ws(i)
    if i >= n:
        raise GoJSONError("unexpected end of JSON input")
    while True:
        # read a value at i
        i = skip_ws(i)
        if i >= n:
            raise GoJSONError("unexpected end of JSON input")
        c = data[i]
        value: JSONValue
        if c in (0x7B, 0x5B):  # { [
            if len(stack) + 1 > MAX_DEPTH:
                raise GoJSONError("exceeded max depth")
            is_object = c == 0x7B
            frame = _Frame([], is_object)
            i = skip_ws(i + 1)
            if i < n and data[i] == (0x7D if is_object else 0x5D):
                value = JSONObject(()) if is_object else []
                i += 1
            else:
                if is_object:
                    frame.key, i = scan_key(i)
                stack.append(frame)
                continue
        else:
            value, i = scan_scalar(i)
        # attach the value, closing containers as long as they end here
        while True:
            if not stack:
                result = value
                i = skip_ws(i)
                if i < n:
                    raise fail(i, "after top-level value")
                return result
            top = stack[-1]
            if top.is_object:
                assert top.key is not None
                top.container.append((top.key, value))
            else:
                top.container.append(value)
            i = skip_ws(i)
            if i >= n:
                raise GoJSONError("unexpected end of JSON input")
            c = data[i]
            if c == 0x2C:  # ,
                i = skip_ws(i + 1)
                if top.is_object:
                    top.key, i = scan_key(i)
                break  # read the next value
            closing = 0x7D if top.is_object else 0x5D
            if c != closing:
                raise fail(i, "after object key:value pair" if top.is_object else "after array element")
            stack.pop()
            i += 1
            value = JSONObject(tuple(top.container)) if top.is_object else list(top.container)


def walk(value: JSONValue) -> Iterator[JSONValue]:
    """Every value inside `value` (itself included), without recursion."""
    todo: list[JSONValue] = [value]
    while todo:
        current = todo.pop()
        yield current
        if isinstance(current, JSONObject):
            todo.extend(v for _, v in current.members)
        elif isinstance(current, list):
            todo.extend(current)


def check_numbers(value: JSONValue) -> None:
    """Decoding into interface{} converts every number: GoJSONTypeError if one is beyond float64."""
    for item in walk(value):
        if isinstance(item, JSONNumber):
            item.float64()


def has_duplicate_names(value: JSONValue) -> str | None:
    """go-jose's fork rejects an object with a repeated name, at any depth: the first such name, or None."""
    for item in walk(value):
        if isinstance(item, JSONObject):
            seen: set[str] = set()
            for name, _ in item.members:
                if name in seen:
                    return name
                seen.add(name)
    return None


def is_number_text(text: str) -> bool:
    """encoding/json isValidNumber: a JSON string may stand for a json.Number only if it spells one."""
    return _NUMBER_TEXT.match(text) is not None


# -- case-insensitive names (encoding/json fold.go) ---------------------------------------------------

# Runes outside ASCII whose simple case folding reaches an ASCII letter (unicode.SimpleFold orbits):
# LATIN SMALL LETTER LONG S folds with s/S, KELVIN SIGN with k/K. No other rune folds onto ASCII.
_FOLD_TO_ASCII: Final = {"\u017f": "S", "\u212a": "K"}


def fold(name: str) -> str:
    """foldName, for comparing with ASCII field names: ASCII upper-cased, long s -> S, Kelvin sign -> K."""
    return "".join(_FOLD_TO_ASCII.get(c, c.upper() if c < "\x80" else c) for c in name)


def matches(name: str, field_name: str) -> bool:
    """Whether encoding/json would store the member `name` into the field tagged `field_name`."""
    return name == field_name or fold(name) == fold(field_name)


# -- decoding into a Go struct -------------------------------------------------------------------------


@dataclass
class GoSlice:
    """A Go []string as the decoder leaves it: `length` visible elements of a backing array it reuses."""

    backing: list[str] = field(default_factory=list)
    length: int = 0

    def values(self) -> tuple[str, ...]:
        return tuple(self.backing[:self.length])


FieldDecoder = Callable[[JSONValue, str], None]


def decode_string(into: dict[str, str], name: str) -> FieldDecoder:
    """A `string` field: a string sets it, null leaves it as it was, anything else is an error."""
    def store(value: JSONValue, member: str) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise GoJSONTypeError(f"json: cannot unmarshal {kind(value)} into Go struct field .{member} of type string")
        into[name] = value
    return store


def decode_strings(into: dict[str, GoSlice], name: str) -> FieldDecoder:
    """A `[]string` field, with reflect's slice reuse: null is nil, [] a fresh empty slice, and a
    shorter array after a longer one keeps the earlier values where it has nulls."""
    def store(value: JSONValue, member: str) -> None:
        current = into.setdefault(name, GoSlice())
        if value is None:
            into[name] = GoSlice()
            return
        if not isinstance(value, list):
            raise GoJSONTypeError(f"json: cannot unmarshal {kind(value)} into Go struct field .{member} "
                                  "of type []string")
        for index, item in enumerate(value):
            if index >= len(current.backing):
                current.backing.append("")
            if index >= current.length:
                current.length = index + 1
            if item is None:
                continue
            if not isinstance(item, str):
                raise GoJSONTypeError(f"json: cannot unmarshal {kind(item)} into Go struct field .{member} "
                                      "of type string")
            current.backing[index] = item
        if not value:
            into[name] = GoSlice()
        else:
            current.length = len(value)
    return store


def decode_struct(members: Iterable[tuple[str, JSONValue]], fields: Mapping[str, FieldDecoder]) -> dict[str, list[str]]:
    """Decode an object's members, in order, into the fields (tag name -> decoder), as encoding/json does.

    Returns, for each field, the member names that were stored into it (to show case-variant shadowing).
    Raises GoJSONTypeError at the first member of the wrong type (Go reports the first one too).
    """
    seen: dict[str, list[str]] = {}
    for name, value in members:
        target = next((f for f in fields if matches(name, f)), None)
        if target is None:
            continue
        seen.setdefault(target, []).append(name)
        fields[target](value, name)
    return seen


# -- numbers as Go converts them ----------------------------------------------------------------------


UNIX_TO_INTERNAL: Final = 62135596800  # time package: seconds from year 1 to 1970


def int64_of_float(value: float) -> int:
    """Go's int64(f) on amd64 (CVTTSD2SI): truncation toward zero; NaN or out of range is MinInt64."""
    if math.isnan(value) or not -(2.0 ** 63) <= value < 2.0 ** 63:
        return _INT64_MIN
    return int(value)


def wrap64(value: int) -> int:
    """Two's-complement int64 overflow, as Go's `+` wraps."""
    return (value - _INT64_MIN) % (1 << 64) + _INT64_MIN


def parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None when it fails (syntax or range)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 19:  # beyond int64 whatever the digits (and beyond int()'s 4,300-digit limit)
        return None
    number = -int(digits) if text.startswith("-") else int(digits)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


# -- base64url as encoding/base64 RawURLEncoding decodes it ------------------------------------------


def b64url(segment: str) -> bytes | None:
    """base64.RawURLEncoding.DecodeString: None where Go reports "illegal base64 data"."""
    text = segment.replace("\r", "").replace("\n", "")
    if not _B64URL.match(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64std(text: str) -> bytes | None:
    """base64.StdEncoding.DecodeString (padding required; CR/LF ignored), None on error."""
    clean = text.replace("\r", "").replace("\n", "")
    if len(clean) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", clean):
        return None
    try:
        return base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError):
        return None


# Unicode White_Space as Go's unicode.IsSpace sees it (go-jose strips these from a token).
_GO_SPACE: Final = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def strip_go_space(text: str) -> str:
    """go-jose's stripWhitespace: every unicode.IsSpace rune removed, wherever it is."""
    return "".join(c for c in text if c not in _GO_SPACE)


def sorted_by_bytes(names: Sequence[str]) -> list[str]:
    """Map keys in the order json.Marshal writes them: by their UTF-8 bytes."""
    return sorted(names, key=lambda name: name.encode("utf-8", "surrogatepass"))
