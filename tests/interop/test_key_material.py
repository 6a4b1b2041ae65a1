"""Public key files read as Portworx reads them: each PEM below is given to `pxsec.verify` and to the Go checker
(golang-jwt's ParseRSAPublicKeyFromPEM / ParseECPublicKeyFromPEM over Go's encoding/pem, as OpenStorage builds
its authenticator) with a token signed by the matching private key. The verdicts must be equal: a framing Go
refuses makes the authenticator fail to start ("config"), one Go accepts verifies the token.

The framings are those a hand-made or tool-made `public.pem` has (CRLF, headers, comments before BEGIN,
spaces), those Go refuses and a regular expression accepted (an indented BEGIN, text after END, END on the
base64 line, a vertical tab), and those Go accepts and it refused (blanks after BEGIN, a header line, a
repeated BEGIN, a broken block first) — and a crafted 1 MiB of repeated BEGIN lines before the key, which Go
reads in linear time and so must we (it used to take minutes here, holding the GIL of the whole operator).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import gopem
from pxsec.spec import parse_spec
from pxsec.verify import VerifyKeys, verify
from tests.interop import checker
from tests.interop.test_differential import go_equal
from tests.interop.tokens import forge, public_pem

pytestmark = pytest.mark.go

T = 1_900_000_000
NOW = datetime.datetime.fromtimestamp(T, datetime.UTC)
ISSUER = "operator.portworx.io"
CLAIMS = {"iss": ISSUER, "sub": "alice", "name": "Alice", "email": "alice@example.com", "roles": ["system.admin"],
          "iat": T - 600, "exp": T + 3600}
CRAFTED = b"-----BEGIN A-----\n" * (1 << 20 // 18)  # ~1 MiB of BEGIN lines without an END


def framings(pem: bytes) -> dict[str, tuple[bytes, bool]]:
    """name -> (PEM bytes, whether Go reads the key from it)."""
    lines = pem.decode().strip().split("\n")
    begin, body, end = lines[0], lines[1:-1], lines[-1]

    def join(*parts: str) -> bytes:
        return "\n".join(parts).encode() + b"\n"

    b64 = "\n".join(body)
    return {
        "as generated": (pem, True),
        "crlf": (pem.replace(b"\n", b"\r\n"), True),
        "no final newline": (pem.rstrip(b"\n"), True),
        "comment lines before": (b"# our RSA key\nsomething: else\n" + pem, True),
        "text after on later lines": (pem + b"trailing words\n", True),
        "blanks after BEGIN": (join(begin + "  \t", b64, end), True),
        "blanks after END": (join(begin, b64, end + " \t"), True),
        "header line": (join(begin, "Comment: made by hand", b64, end), True),
        "header and blank line": (join(begin, "Proc-Type: 4,ENCRYPTED", "", b64, end), True),
        "blank lines in the body": (join(begin, "", b64.replace("\n", "\n\n"), "", end), True),
        "spaces and tabs in the body": (join(begin, b64.replace("\n", " \t\n "), end), True),
        "one long base64 line": (join(begin, "".join(body), end), True),
        "repeated BEGIN line": (join(begin, begin, b64, end), True),
        "broken block first": (join("-----BEGIN JUNK-----", "!!!!", "-----END JUNK-----", begin, b64, end), True),
        "another type first": (join("-----BEGIN X-----", "AAAA", "-----END X-----", begin, b64, end), False),
        "crafted BEGIN lines first": (CRAFTED + pem, True),
        "indented BEGIN": (join("  " + begin, b64, end), False),
        "text before BEGIN on its line": (join("key:" + begin, b64, end), False),
        "text after END on its line": (join(begin, b64, end + " # rsa"), False),
        "END on the base64 line": (join(begin, b64 + end), False),
        "vertical tab in the body": (join(begin, b64.replace("\n", "\v\n", 1), end), False),
        "END of another type": (join(begin, b64, end.replace("PUBLIC KEY", "PRIVATE KEY")), False),
        "no END": (join(begin, b64), False),
        "BEGIN without dashes": (join(begin[:-5], b64, end), False),
        "a padding character too many": (join(begin, b64 + "=", end), False),
        "padding inside": (join(begin, "AA==" + b64, end), False),
        "a quantum short": (join(begin, b64[:-1], end), False),
        "only a newline": (b"\n", False),
        "crafted only": (CRAFTED, False),
    }


@pytest.fixture(scope="module")
def binary() -> Path:
    return checker.checker_or_fail()


def cases() -> list[tuple[str, Any, str, bytes, bool]]:
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for kind, key, alg in (("rsa", rsa_key, "RS256"), ("ecdsa", ec_key, "ES256")):
        token = forge({"alg": alg, "typ": "JWT"}, CLAIMS, key, alg)
        for name, (pem, readable) in framings(public_pem(key)).items():
            out.append((f"{kind}: {name}", kind, token, pem, readable))
    return out


def test_every_framing_gets_portworxs_verdict(binary: Path) -> None:
    spec = {"rsa": parse_spec({"selfSigned": {"issuer": ISSUER, "rsa": {"secretName": "k"}}}),
            "ecdsa": parse_spec({"selfSigned": {"issuer": ISSUER, "ecdsa": {"secretName": "k"}}})}
    judged = cases()
    go_cases, ours = [], []
    for case_id, kind, token, pem, _ in judged:
        keys = VerifyKeys(rsa_public_pem=pem) if kind == "rsa" else VerifyKeys(ecdsa_public_pem=pem)
        go_cases.append(checker.case_for(case_id, token, spec[kind], keys, NOW))
        ours.append(verify(token, spec[kind], keys, NOW))
    verdicts = checker.judge(binary, go_cases)
    differences, pinned = [], []
    for (case_id, _, _, _, readable), mine, go in zip(judged, ours, verdicts, strict=True):
        diffs = go_equal(mine, go)
        if diffs:
            differences.append(f"{case_id}: {'; '.join(diffs)} (pxsec: {mine.reason}; Go: {go.get('error')})")
        if go["accepted"] is not readable:
            pinned.append(f"{case_id}: Go {'accepts' if go['accepted'] else 'refuses'} ({go.get('error')})")
    assert not differences, "\n".join(differences)
    assert not pinned, "the expectations written here are not Go's:\n" + "\n".join(pinned)


def test_the_block_found_is_gos_block() -> None:
    """Where Go finds a block, `gopem` finds the same type and bytes (checked through the key above); here the
    shapes that have no key in them."""
    assert gopem.decode(b"-----BEGIN X-----\n-----END X-----\n") == gopem.Block("X", {}, b"")
    assert gopem.decode(b"-----BEGIN X-----\n\n-----END X-----") == gopem.Block("X", {}, b"")
    assert gopem.decode(b"-----BEGIN X-----\nA: b\n-----END X-----\n") is None  # a header needs a newline before END
    with_header = gopem.Block("X", {"A": "b"}, b"\0\0\0")
    assert gopem.decode(b"-----BEGIN X-----\nA: b\n\nAAAA\n-----END X-----\n") == with_header
