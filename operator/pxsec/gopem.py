"""PEM read as Go's `encoding/pem.Decode` reads it (Go 1.25.2 and later), in linear time.

OpenStorage loads the public keys Portworx verifies with through golang-jwt (`ParseRSAPublicKeyFromPEM`,
`ParseECPublicKeyFromPEM`), which take the first block `pem.Decode` finds, whatever its type. To say
"Portworx would accept this token" we must find the same block, including where Go is lenient (trailing
blanks after the BEGIN line, `Key: value` header lines, a repeated BEGIN line, a broken block before a good
one) and where it is strict (BEGIN must start a line, nothing but blanks after END, no vertical tab in the
base64). And it must be cheap on hostile input: a key Secret is written by users, and the regular
expression this replaces took minutes on 1 MiB of repeated BEGIN lines while holding the GIL.

The algorithm (Go's, since the fix for CVE-2025-61723): find the first END line, take the last BEGIN line
before it, check that pair; on failure go on after that END. Each byte is looked at a bounded number of
times, so the cost is linear in the input.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final

_BEGIN: Final = b"-----BEGIN "
_END: Final = b"\n-----END "
_DASHES: Final = b"-----"


@dataclass(frozen=True)
class Block:
    type: str
    headers: dict[str, str] = field(default_factory=dict)
    bytes: bytes = b""


def _line(data: bytes, start: int, stop: int) -> tuple[bytes, int]:
    """Go's getLine on data[start:stop]: the line without its end (\\n or \\r\\n) and trailing blanks, and the
    index just after its \\n (or `stop`)."""
    newline = data.find(b"\n", start, stop)
    if newline < 0:
        end = after = stop
    else:
        end, after = newline, newline + 1
        if end > start and data[end - 1] == 0x0D:
            end -= 1
    return data[start:end].rstrip(b" \t"), after


_ALPHABET: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _b64(data: bytes) -> bytes | None:
    """Go's base64.StdEncoding.Decode after pem's removeSpacesAndTabs: CR and LF are skipped; whole quanta of
    four, with `=` only as the last one or two characters of the last quantum; any other byte is an error.
    Bits left over in the last quantum are ignored (StdEncoding is not Strict)."""
    cleaned = data.translate(None, b" \t\r\n")
    body = cleaned.rstrip(b"=")
    if len(cleaned) % 4 or len(cleaned) - len(body) > 2 or not _ALPHABET.issuperset(body):
        return None
    try:
        return base64.b64decode(cleaned, validate=False)
    except (binascii.Error, ValueError):
        return None


def decode(data: bytes) -> Block | None:
    """The first PEM block of `data` as Go's pem.Decode finds it, or None where Go finds none."""
    pos = 0
    while True:
        end_index = data.find(_END, pos)
        if end_index < 0:
            return None
        trailer = end_index + len(_END)  # just after "\n-----END "
        begin = data.rfind(_BEGIN, pos, end_index)
        if begin < 0 or (begin > pos and data[begin - 1] != 0x0A):
            pos = trailer
            continue
        type_line, cursor = _line(data, begin + len(_BEGIN), len(data))
        if not type_line.endswith(_DASHES):
            pos = trailer
            continue
        type_ = type_line[: -len(_DASHES)]
        headers: dict[str, str] = {}
        while True:
            if cursor >= len(data):
                return None
            line, after = _line(data, cursor, len(data))
            key, colon, value = line.partition(b":")
            if not colon:
                break
            headers[key.strip().decode("latin-1")] = value.strip().decode("latin-1")
            cursor = after
        # Where "\n-----END " starts, relative to the cursor: -1 when END directly follows the BEGIN line.
        body_end = end_index - cursor
        if headers and body_end < 0:
            if trailer < cursor:  # Go's END index went negative while reading headers: it gives up
                return None
            pos = trailer
            continue
        end_trailer_start = trailer
        wanted = len(type_) + len(_DASHES)
        if len(data) - end_trailer_start < wanted:
            pos = trailer
            continue
        end_trailer = data[end_trailer_start:end_trailer_start + wanted]
        if not end_trailer.startswith(type_) or not end_trailer.endswith(_DASHES):
            pos = trailer
            continue
        rest_of_end_line, _ = _line(data, end_trailer_start + wanted, len(data))
        if rest_of_end_line:
            pos = trailer
            continue
        body = b""
        if body_end > 0:
            decoded = _b64(data[cursor:end_index])
            if decoded is None:
                pos = trailer
                continue
            body = decoded
        return Block(type_.decode("latin-1"), headers, body)
