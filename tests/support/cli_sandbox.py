"""A worker process that runs the command line's entry functions on one input at a time, inside a memory
limit, and measures each call: for the hostile-input suites (tests/hostile/test_cli_hostile.py).

    python -m tests.support.cli_sandbox MEMORY_BYTES

It imports everything first, then caps its address space (RLIMIT_AS) at what it uses then plus
MEMORY_BYTES, and answers one JSON line per request line on stdin:

    {"command": "validate" | "render" | "verify" | "generate:<input>" | "verify:<input>", "path": FILE}
    -> {"code": 0, "out": "...", "err": "...", "seconds": 0.003, "peak_rss": 1234567}

`peak_rss` is the call's own peak resident memory above what the process held before it (Linux resets
the high-water mark through /proc/self/clear_refs), so one call's figure is not hidden by an earlier one.
An exception out of a CLI function (MemoryError included) is answered as {"crash": "..."}: a user would
have seen a traceback. The parent kills the worker if an answer takes longer than its time bound.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pxsec.cli import render as cli_render
from pxsec.cli import token as cli_token
from pxsec.cli import validate as cli_validate

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status(field: str) -> int:
    """A `kB` field of /proc/self/status, in bytes (0 where there is none)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


# The token commands' file inputs (tests/hostile/test_cli_inputs_hostile.py): each takes the hostile file in
# one place and good material everywhere else ($PXSEC_SANDBOX_MATERIAL: a PxSecurity, an auth config and a
# shared-secret file, written by the test).
GENERATE_INPUTS = {"shared-secret-file": "shared_secret_file", "rsa-private-keyfile": "rsa_private_keyfile",
                   "ecdsa-private-keyfile": "ecdsa_private_keyfile", "auth-config": "auth_config"}
VERIFY_INPUTS = ("jwks", "token-stdin", "secrets-dir-public-pem", "secrets-dir-shared-secret")


def _token_input(command: str, path: str, material: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kind = command.removeprefix("generate:").removeprefix("verify:")
    if command.startswith("generate:"):
        args = argparse.Namespace(auth_config=str(material / "auth.yaml"), issuer="operator.portworx.io",
                                  shared_secret_file=None, rsa_private_keyfile=None, ecdsa_private_keyfile=None,
                                  from_secret=None, shared_secret=None, token_duration="1h", output=None)
        if kind == "auth-config":
            args.shared_secret_file = str(material / "shared-secret")
        setattr(args, GENERATE_INPUTS[kind], path)
        code = cli_token.run_generate(args, stdin=io.StringIO(), stdout=out, stderr=err, env={},
                                      read_secret=lambda ns, name: None)
        return code, out.getvalue(), err.getvalue()
    args = argparse.Namespace(token=TOKEN, file=str(material / "pxsecurity.yaml"), secrets_dir=None,
                              from_cluster=False, namespace=None, jwks=None)
    stdin = io.StringIO()
    if kind == "jwks":
        args.jwks = path
    elif kind == "token-stdin":
        args.token = "-"
        stdin = io.StringIO(Path(path).read_bytes().decode("utf-8", "surrogateescape"))
    else:  # the hostile bytes as one key of a mounted Secret
        secrets = Path(path + ".d")
        name, key = ("px-jwt-rsa", "public.pem") if kind == "secrets-dir-public-pem" else (
            "px-shared-secret", "shared-secret")
        (secrets / name).mkdir(parents=True, exist_ok=True)
        (secrets / name / key).write_bytes(Path(path).read_bytes())
        args.secrets_dir = str(secrets)
    code = cli_token.run_verify(args, stdin=stdin, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run(command: str, path: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO()
    if command.startswith(("generate:", "verify:")):
        return _token_input(command, path, Path(os.environ["PXSEC_SANDBOX_MATERIAL"]))
    if command == "validate":
        code = cli_validate.run_validate(path, stdin=stdin, stdout=out, stderr=err)
    elif command == "render":
        code = cli_render.run_render(path, "storagecluster", stdin=stdin, stdout=out, stderr=err)
    else:
        args = argparse.Namespace(token=TOKEN, file=path, secrets_dir=None, from_cluster=False, namespace=None,
                                  jwks=None)
        code = cli_token.run_verify(args, stdin=stdin, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def main() -> int:
    headroom = int(sys.argv[1])
    baseline = _status("VmSize")
    if baseline:
        resource.setrlimit(resource.RLIMIT_AS, (baseline + headroom, baseline + headroom))
    print(json.dumps({"ready": True, "address_space_limit": baseline + headroom if baseline else None}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, Any]
        exact = _reset_peak()
        before = _status("VmRSS") if exact else 0
        started = time.monotonic()
        try:
            code, out, err = run(request["command"], request["path"])
            answer = {"code": code, "out": out, "err": err}
        except BaseException as error:  # reported: the parent fails the test
            answer = {"crash": "".join(traceback.format_exception_only(type(error), error)).strip()}
        answer["seconds"] = time.monotonic() - started
        peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        answer["peak_rss"] = max(0, peak - before)
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
