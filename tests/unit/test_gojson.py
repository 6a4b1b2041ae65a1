"""pxsec.gojson: JSON and base64url as Go reads them. The differential suite (tests/interop) proves the
verdicts against Go itself; these pin the reading rules one by one, with Go's behaviour in the comment."""

from __future__ import annotations

import pytest

from pxsec import gojson
from pxsec.gojson import GoJSONError, GoJSONTypeError, JSONNumber, JSONObject


@pytest.mark.parametrize("text", [
    b"", b" ", b"NaN", b"Infinity", b"-Infinity", b"\xef\xbb\xbf{}", b'{"a":1,}', b"[1,]", b"01", b"1.", b".5",
    b"+1", b"{'a':1}", b'{"a" 1}', b'"\x01"', b'"\\x"', b'"\\u12"', b"{} {}", b"\x0b{}", b"[" * 10001 + b"]" * 10001,
])
def test_what_go_rejects(text: bytes) -> None:
    with pytest.raises(GoJSONError):
        gojson.parse(text)


def test_what_go_accepts() -> None:
    assert gojson.parse(b' \t\r\n{"a":[1,-0.5e3,true,null,"x"]} \n') == JSONObject(
        (("a", [JSONNumber("1"), JSONNumber("-0.5e3"), True, None, "x"]),))
    assert isinstance(gojson.parse(b"[" * 10000 + b"]" * 10000), list)  # Go's limit is 10000 levels


@pytest.mark.parametrize(("raw", "text"), [
    (b'"\xff"', "\ufffd"),                      # each invalid byte is one U+FFFD
    (b'"\xe2\x82"', "\ufffd\ufffd"),            # a truncated sequence: one per byte (Python would say one)
    (b'"\xed\xa0\x80"', "\ufffd" * 3),          # a UTF-8-encoded surrogate is invalid
    (b'"\\ud800"', "\ufffd"),                   # a lone surrogate escape
    (b'"\\ud800\\u0041"', "\ufffdA"),           # not followed by a low surrogate
    (b'"\\ud83d\\ude00"', "\U0001f600"),        # a pair
    (b'"\\udc00\\ud800"', "\ufffd\ufffd"),      # low then high
    (b'"a\\u0000b"', "a\x00b"),
])
def test_strings_as_go_unquotes_them(raw: bytes, text: str) -> None:
    assert gojson.parse(raw) == text


def test_numbers_are_checked_where_go_converts_them() -> None:
    value = gojson.parse(b'{"a":{"b":[1e400]}}')
    with pytest.raises(GoJSONTypeError):
        gojson.check_numbers(value)
    gojson.check_numbers(gojson.parse(b'{"a":1e-400}'))  # underflow is 0, not an error


def test_struct_decoding_is_case_insensitive_and_last_wins() -> None:
    strings: dict[str, str] = {}
    slices: dict[str, gojson.GoSlice] = {}
    fields = {"sub": gojson.decode_string(strings, "sub"), "roles": gojson.decode_strings(slices, "roles")}
    members = gojson.parse(b'{"sub":"a","SUB":null,"\xc5\xbfub":"b","roles":["x","y"],"ROLES":["z"],'
                           b'"Roles":[null,null]}')
    assert isinstance(members, JSONObject)
    spelled = gojson.decode_struct(members.members, fields)
    assert strings["sub"] == "b"  # null leaves it; U+017F (long s) folds to "s"
    assert slices["roles"].values() == ("z", "y")  # reflect reuses the slice's earlier elements
    assert spelled["roles"] == ["roles", "ROLES", "Roles"]
    with pytest.raises(GoJSONTypeError):
        gojson.decode_struct([("sub", 5)], fields)  # type: ignore[list-item]


def test_base64url_as_rawurlencoding() -> None:
    assert gojson.b64url("YWI") == b"ab"
    assert gojson.b64url("YW\nI") == b"ab"  # CR and LF are skipped
    for bad in ("YWI=", "YW+I", "YW/I", "Y", "YWI "):
        assert gojson.b64url(bad) is None


def test_time_conversions_as_amd64_does_them() -> None:
    assert gojson.int64_of_float(1e30) == -(1 << 63)
    assert gojson.int64_of_float(-1.9) == -1
    assert gojson.wrap64((1 << 63) + 5) == -(1 << 63) + 5
    assert gojson.parse_int64("9223372036854775808") is None
