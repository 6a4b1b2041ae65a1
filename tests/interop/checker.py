"""Run the Go checker (tests/interop/main.go) on cases and read its verdicts.

A case is what Portworx would be configured with (issuers, keys as bytes, the OIDC client and key set)
plus a token and a pinned clock; `case_for` builds one from the same `PxSecuritySpec` and `VerifyKeys`
that `pxsec.verify.verify` receives, so both judge exactly the same question.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pxsec.spec import PxSecuritySpec
from pxsec.verify import APPS_ISSUER, OIDC_ALGORITHMS, VerifyKeys
from tests.interop import build


def checker_or_fail() -> Path:
    """The checker binary; a clear failure (never a skip) when it cannot be had."""
    try:
        return build.ensure(log=True)
    except build.CheckerUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def b64(data: bytes) -> str:
    """Bytes as encoding/json carries a Go []byte: standard base64."""
    return base64.b64encode(data).decode("ascii")


def case_for(case_id: str, token: str, spec: PxSecuritySpec, keys: VerifyKeys, now: datetime.datetime,
             jwks: bytes | None = None, algorithms: Sequence[str] | None = None) -> dict[str, Any]:
    """The Go checker's case for the question `verify(token, spec, keys, now, jwks, oidc_algorithms=...)`.

    Only the keys the spec configures reach Portworx (and so the checker), as pxsec.verify assumes.
    """
    self_signed: list[dict[str, Any]] = []
    ss = spec.self_signed
    if ss is not None:
        entry: dict[str, Any] = {"issuer": ss.issuer}
        if ss.shared_secret and keys.shared_secret:
            entry["sharedSecret"] = b64(keys.shared_secret)
        if ss.rsa and keys.rsa_public_pem:
            entry["rsaPublicPem"] = keys.rsa_public_pem.decode("latin-1")
        if ss.ecdsa and keys.ecdsa_public_pem:
            entry["ecdsaPublicPem"] = keys.ecdsa_public_pem.decode("latin-1")
        self_signed.append(entry)
    if keys.apps_secret:
        self_signed.append({"issuer": APPS_ISSUER, "sharedSecret": b64(keys.apps_secret)})
    oidc: dict[str, Any] | None = None
    if spec.oidc is not None:
        oidc = {"issuer": spec.oidc.issuer, "clientID": spec.oidc.client_id,
                "namespace": spec.oidc.custom_claim_namespace or "",
                "jwks": b64(jwks if jwks is not None else b'{"keys":[]}'),
                "algorithms": list(algorithms if algorithms is not None else OIDC_ALGORITHMS)}
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    delta = now - epoch
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, rest = divmod(micros, 1_000_000)
    return {"id": case_id, "token": token, "nowUnix": seconds, "nowNanos": rest * 1000,
            "usernameClaim": spec.username_claim, "selfSigned": self_signed, "oidc": oidc}


def judge(binary: Path, cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Go verdicts, in the cases' order."""
    result = subprocess.run([str(binary)], input=json.dumps({"cases": list(cases)}), capture_output=True,
                            text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise AssertionError(f"the Go checker failed (exit {result.returncode}): {result.stderr.strip()}")
    verdicts: list[dict[str, Any]] = json.loads(result.stdout)["results"]
    assert [v["id"] for v in verdicts] == [c["id"] for c in cases]
    return verdicts
