"""Every Secret value the operator reads, hostile (issue 24, the property suite's operator half): the key
checks KeySync runs on keys users bring (`check_key_pair`, `check_shared_secret`, `shared_secret_warnings`),
the public keys and shared secret `TokensAccepted` verifies with (`VerifyKeys.from_secrets` then `verify`),
and a token Secret's value (`verify` of whatever `auth-token` holds). Each gets hostile bytes shaped like
the CLI's hostile inputs (tests/hostile/test_cli_inputs_hostile.py), up to the 1 MiB a Secret holds.

What must hold: nothing raises (a raise would be an `InternalError` condition and a back-off loop for a
value no retry fixes); every message is text without the marker planted in the value (a Secret's bytes
never reach a condition, an Event or a log); and the same bytes get the same answer twice (the checks are
memoized by value: a cached answer must be the computed one). And each first call is bounded: at most
`TIME_BOUND` seconds and `MEMORY_BOUND` bytes allocated at its peak for up to 1 MiB of input — the linear
readers (`pxsec.gopem`, `pxsec.gocert`, `pxsec.gorsa`) take milliseconds; a check that runs in a reconcile
holds the GIL, so a quadratic one stalls every other reconcile (the regular expression gopem replaced took
minutes on the "begin lines" shape below).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pxsec import keymaterial
from pxsec.keymaterial import KeyKind
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys, verify

MARKER = "QzXwVrTyUpLmKjHgFdSaPoIu"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SPEC = parse_spec({"selfSigned": {"issuer": "operator.portworx.io", "sharedSecret": {},
                                  "rsa": {"secretName": "px-jwt-rsa"}, "ecdsa": {"secretName": "px-jwt-ecdsa"}}})
TOKENS = ["eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJvcGVyYXRvci5wb3J0d29yeC5pbyJ9.c2ln",
          "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJvcGVyYXRvci5wb3J0d29yeC5pbyJ9.c2ln",
          "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJvcGVyYXRvci5wb3J0d29yeC5pbyJ9.c2ln"]
SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PEM = "-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"
TIME_BOUND = 1.0  # seconds per call; the worst seen is 0.13 s (60,000 PEM header lines)
MEMORY_BOUND = 64 * 2**20  # bytes allocated at the peak of one call; the worst seen is 3.2 MiB
T = TypeVar("T")


def _forget() -> None:
    """Drop the memoized key checks, so that a measured call computes its answer."""
    keymaterial._check_key_pair.cache_clear()
    keymaterial.load_private_key.cache_clear()


def bounded(call: Callable[[], T]) -> T:
    """`call()`, failing the test if it took more than TIME_BOUND or allocated more than MEMORY_BOUND at its
    peak. Timed and traced in two runs: tracing every allocation slows a call many times over."""
    _forget()
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    _forget()
    tracemalloc.start()
    try:
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed <= TIME_BOUND and peak <= MEMORY_BOUND, (elapsed, peak)
    return result


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([1, 100, 10_000, 60_000]))
    shape = draw(st.sampled_from(["begin lines", "end lines", "pem", "certificate", "headers", "random",
                                  "control", "long line"]))
    if shape == "begin lines":
        text = "-----BEGIN A-----\n" * size + MARKER
    elif shape == "end lines":
        text = MARKER + "\n-----END A-----" * size
    elif shape == "pem":
        kind = draw(st.sampled_from(["PUBLIC KEY", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]))
        text = PEM.format(kind=kind, body=(MARKER + "AAAA") * min(size, 10_000))
    elif shape == "certificate":  # base64 of DER-ish bytes: a SEQUENCE of SEQUENCEs with long lengths
        body = draw(st.binary(min_size=0, max_size=200))
        der = b"\x30\x84\x00\x10\x00\x00" + b"\x30\x82\xff\xff" * min(size, 1_000) + body + MARKER.encode()
        text = PEM.format(kind="CERTIFICATE", body=base64.b64encode(der).decode())
    elif shape == "headers":
        text = "-----BEGIN PUBLIC KEY-----\n" + f"{MARKER}: v\n" * size + "AAAA\n-----END PUBLIC KEY-----\n"
    elif shape == "random":
        raw = draw(st.binary(min_size=1, max_size=500))
        return raw + MARKER.encode() + raw * (size // 100)
    elif shape == "control":
        text = "\x1b]0;owned\x07" + MARKER + "\r\n\x00" * min(size, 1_000)
    else:
        text = MARKER + "a" * size * 10
    return text.encode("utf-8", "surrogatepass")


def said(*texts: object) -> str:
    return " ".join(str(t) for t in texts)


@SETTINGS
@given(hostile(), st.sampled_from([KeyKind.RSA, KeyKind.ECDSA]), st.booleans())
def test_key_pairs_users_bring(value: bytes, kind: KeyKind, as_private: bool) -> None:
    pair = (value, None) if as_private else (None, value)
    first = bounded(lambda: keymaterial.check_key_pair(*pair, kind))
    assert keymaterial.check_key_pair(*pair, kind) == first
    assert all(isinstance(p, str) and MARKER not in p and p.isprintable() for p in first), first


@SETTINGS
@given(hostile())
def test_shared_secrets_users_bring(value: bytes) -> None:
    problems = bounded(lambda: keymaterial.check_shared_secret(value, "shared-secret"))
    problems += bounded(lambda: keymaterial.shared_secret_warnings(value, "shared-secret"))
    assert MARKER not in said(*problems)


@SETTINGS
@given(hostile(), st.sampled_from(["px-shared-secret/shared-secret", "px-jwt-rsa/public.pem",
                                   "px-jwt-ecdsa/public.pem", "px-jwt-rsa/private.pem"]), st.sampled_from(TOKENS))
def test_what_tokens_accepted_verifies_with(value: bytes, where: str, token: str) -> None:
    name, key = where.split("/")
    keys = VerifyKeys.from_secrets(SPEC, {name: {key: value}})
    verdict = bounded(lambda: verify(token, SPEC, keys, NOW))
    assert not verdict.accepted
    assert MARKER not in said(verdict.reason, *verdict.warnings)


@SETTINGS
@given(hostile())
def test_whatever_a_token_secret_holds(value: bytes) -> None:
    verdict = bounded(lambda: verify(value.decode("utf-8", "replace"), SPEC, VerifyKeys(shared_secret=b"s" * 64), NOW))
    assert not verdict.accepted
    assert MARKER not in said(verdict.reason, *verdict.warnings)
