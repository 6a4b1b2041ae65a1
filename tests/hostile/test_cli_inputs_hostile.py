"""Every file input of `pxsec token`, hostile: bounded in time and memory, one line when refused, nothing of
the input echoed (issue 24, "a property suite for every file input").

The inputs are `token generate`'s --shared-secret-file, --rsa-private-keyfile, --ecdsa-private-keyfile and
--auth-config, and `token verify`'s --jwks, the token on stdin, and a Secret's key under --secrets-dir (a
public.pem, a shared-secret) — the same bytes the operator reads from Secrets. Each is given hostile bytes
(derandomized hypothesis: PEM framing attacks, YAML and JSON nesting, repeated BEGIN/END lines, huge lines,
random bytes, control characters, sizes past each cap) in a worker whose memory is capped
(tests/support/cli_sandbox.py, the same bounds as tests/hostile/test_cli_hostile.py), while every other
input is good. Every answer must be: exit 0, 1 or 2; exit 2 in one printable line; no traceback; and a
marker planted in the input (24 random letters) never in the output — a secret given in the wrong place
must not reach a terminal or a CI log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxsec import keymaterial
from pxsec.cli.token import MAX_SECRET_BYTES
from tests.hostile.test_cli_hostile import SETTINGS, Sandbox
from tests.support.cli_sandbox import GENERATE_INPUTS, VERIFY_INPUTS

pytestmark = pytest.mark.slow  # make test-slow and CI (README)

COMMANDS = [f"generate:{name}" for name in GENERATE_INPUTS] + [f"verify:{name}" for name in VERIFY_INPUTS]
MARKER = "QzXwVrTyUpLmKjHgFdSaPoIu"  # planted in every input: it must never be printed
EXAMPLES = 25  # per input kind: 200 hostile inputs, 200 bounded calls
PXSECURITY = """\
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata: {name: px-cluster, namespace: portworx}
spec:
  oidc: {issuer: "https://login.example.com/realms/px", clientID: portworx}
  selfSigned: {issuer: operator.portworx.io, sharedSecret: {}, rsa: {secretName: px-jwt-rsa}}
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    material = tmp_path_factory.mktemp("material")
    (material / "pxsecurity.yaml").write_text(PXSECURITY)
    (material / "auth.yaml").write_text("name: alice\nemail: alice@example.com\nroles: [system.admin]\n")
    (material / "shared-secret").write_text(keymaterial.generate_shared_secret())
    previous = os.environ.get("PXSEC_SANDBOX_MATERIAL")
    os.environ["PXSEC_SANDBOX_MATERIAL"] = str(material)
    box = Sandbox(tmp_path_factory.mktemp("inputs"))
    try:
        yield box
    finally:
        box.stop()
        if previous is None:
            os.environ.pop("PXSEC_SANDBOX_MATERIAL", None)
        else:
            os.environ["PXSEC_SANDBOX_MATERIAL"] = previous


PEM = "-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """Bytes shaped to hurt a reader of keys, tokens, YAML or JSON, with the marker inside."""
    size = draw(st.sampled_from([1, 10, 1_000, 100_000, 600_000]))
    shape = draw(st.sampled_from([
        "begin lines", "end lines", "pem", "pem with junk", "yaml nesting", "json nesting", "flow nesting",
        "long line", "random bytes", "control characters", "aliases", "token", "past the cap",
    ]))
    marker = MARKER
    if shape == "begin lines":
        text = "-----BEGIN A-----\n" * size + marker
    elif shape == "end lines":
        text = marker + "\n-----END A-----" * size
    elif shape == "pem":
        text = PEM.format(kind=draw(st.sampled_from(["PUBLIC KEY", "PRIVATE KEY", "EC PRIVATE KEY", "CERTIFICATE"])),
                          body=(marker + "AAAA") * min(size, 50_000))
    elif shape == "pem with junk":
        text = PEM.format(kind="PUBLIC KEY", body=marker) + "x" * size + PEM.format(kind="PUBLIC KEY", body="!!")
    elif shape == "yaml nesting":
        text = "name: " + "- " * min(size, 5_000) + marker + "\n"
    elif shape == "json nesting":
        text = '{"keys": ' + "[" * min(size, 100_000) + f'"{marker}"' + "]" * min(size, 100_000) + "}"
    elif shape == "flow nesting":
        text = "roles: " + "{a: " * min(size, 10_000) + marker + "}" * min(size, 10_000) + "\n"
    elif shape == "long line":
        text = marker + "a" * size * 3
    elif shape == "random bytes":
        raw = draw(st.binary(min_size=1, max_size=2_000))
        return raw + marker.encode() + raw * (size // 1_000)
    elif shape == "control characters":
        text = "\x1b]0;owned\x07\x1b[2J" + marker + "\r\n\x00\x9b" * min(size, 1_000)
    elif shape == "aliases":
        text = "a: &a [" + ",".join([marker] * 9) + "]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
    elif shape == "token":
        text = "eyJhbGciOiJub25lIn0." + marker + "." + "A" * size
    else:
        text = marker + "x" * (MAX_SECRET_BYTES + 1)
    return text.encode("utf-8", "surrogatepass")


def well_formed(command: str, answer: dict[str, object]) -> None:
    code, out, err = answer["code"], str(answer["out"]), str(answer["err"])
    assert code in (0, 1, 2), (command, code, err)
    assert "Traceback" not in err, err
    for line in (out + err).splitlines():
        assert line.isprintable(), (command, line[:200])
    if code == 2:
        assert len(err.splitlines()) == 1 and out == "", (command, err[:300])
    assert MARKER not in out and MARKER not in err, (command, (out + err)[:300])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_file_input_is_bounded_and_never_echoed(sandbox: Sandbox, command: str) -> None:
    @settings(max_examples=EXAMPLES, **SETTINGS)
    @given(hostile())
    def each(data: bytes) -> None:
        path = sandbox.directory / f"{command.replace(':', '-')}.input"
        path.write_bytes(data)
        sandbox.figures.inputs[command] = sandbox.figures.inputs.get(command, 0) + 1
        well_formed(command, sandbox.call(command, path, f"{len(data)} bytes"))

    each()

