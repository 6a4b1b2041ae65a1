"""`pxsec token generate` and `pxsec token verify`, run the way a person runs them (through `pxsec.cli.main`).

Until `pxsec.cli` registers the token commands itself, the tests register them on its parser; once it
does, they run against the real wiring unchanged. Kubernetes is replaced by a dict where a Secret
would be read from the cluster: the call site is one function, `_read_cluster_secret`.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jws

from pxsec import cli, cli_token, keymaterial

ISSUER = "operator.portworx.io"
CR = """\
apiVersion: pxsec.dev/v1alpha1
kind: PxSecurity
metadata:
  name: px-cluster
  namespace: portworx
spec:
  usernameClaim: email
  oidc:
    issuer: https://login.example.com/realms/storage
    clientID: portworx
  selfSigned:
    issuer: operator.portworx.io
    sharedSecret: {}
    rsa: {secretName: px-jwt-rsa}
    ecdsa: {secretName: px-jwt-ecdsa, curve: P-384}
"""
AUTH = """\
name: alice
email: alice@example.com
sub: alice
roles: [system.admin]
groups: ["*"]
"""


@pytest.fixture(autouse=True)
def token_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    original = cli.build_parser

    def build_parser() -> argparse.ArgumentParser:
        parser = original()
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "token" not in subparsers.choices:
            cli_token.register(subparsers)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture()
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    def invoke(*argv: str, stdin: str = "") -> Run:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            code = cli.main(list(argv))
        except SystemExit as exit_:  # argparse
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Run(code, captured.out, captured.err)

    return invoke


@dataclass(frozen=True)
class Material:
    root: Path
    secrets_dir: Path
    secret: str
    rsa: tuple[bytes, bytes]
    ecdsa: tuple[bytes, bytes]
    cr: Path
    auth: Path

    @property
    def secret_file(self) -> Path:
        return self.secrets_dir / "px-shared-secret" / "shared-secret"


@pytest.fixture(scope="module")
def keys() -> tuple[str, tuple[bytes, bytes], tuple[bytes, bytes]]:
    return keymaterial.generate_shared_secret(), keymaterial.generate_rsa(2048), keymaterial.generate_ecdsa("P-384")


@pytest.fixture()
def material(tmp_path: Path, keys: tuple[str, tuple[bytes, bytes], tuple[bytes, bytes]]) -> Material:
    secret, rsa, ecdsa = keys
    secrets_dir = tmp_path / "secrets"
    for name, data in {
        "px-shared-secret": {"shared-secret": secret.encode()},
        "px-jwt-rsa": {"private.pem": rsa[0], "public.pem": rsa[1]},
        "px-jwt-ecdsa": {"private.pem": ecdsa[0], "public.pem": ecdsa[1]},
    }.items():
        (secrets_dir / name).mkdir(parents=True)
        for key, value in data.items():
            (secrets_dir / name / key).write_bytes(value)
    (tmp_path / "rsa.pem").write_bytes(rsa[0])
    (tmp_path / "ecdsa.pem").write_bytes(ecdsa[0])
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR)
    auth = tmp_path / "auth.yaml"
    auth.write_text(AUTH)
    return Material(tmp_path, secrets_dir, secret, rsa, ecdsa, cr, auth)


def generate(run: Any, m: Material, *key_flags: str, stdin: str = "") -> str:
    result = run("token", "generate", "--auth-config", str(m.auth), "--issuer", ISSUER, *key_flags, stdin=stdin)
    assert result.code == 0, result.err
    token: str = result.out.strip()
    assert token.count(".") == 2
    return token


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return body


def assert_one_line_error(result: Run, *secrets: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert result.err.strip() and "\n" not in result.err.strip(), result.err
    for secret in secrets:
        assert secret not in result.err and secret not in result.out


# -- generate, then verify ------------------------------------------------------------------------------------


def test_generate_then_verify_from_stdin(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin=token + "\n")
    assert result.code == 0, result.out + result.err
    assert result.out.startswith("accepted by the self-signed issuer \"operator.portworx.io\": HS256 signature")
    assert "source: self-signed" in result.out
    assert "username (email): alice@example.com" in result.out
    assert "roles: system.admin" in result.out
    assert "groups: * (all groups)" in result.out
    assert token not in result.out + result.err
    assert material.secret not in result.out + result.err


def test_generated_tokens_verify_with_jwcrypto(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file), "--token-duration", "2h")
    signed = jws.JWS()
    signed.deserialize(token)
    key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(material.secret.encode()).rstrip(b"=").decode())
    signed.verify(key, alg="HS256")
    body = json.loads(signed.payload)
    assert {k: body[k] for k in ("iss", "sub", "name", "email", "roles", "groups")} == {
        "iss": ISSUER, "sub": "alice", "name": "alice", "email": "alice@example.com",
        "roles": ["system.admin"], "groups": ["*"]}
    assert body["exp"] - body["iat"] == 2 * 3600 + 600  # iat is backdated 10 minutes


def test_rsa_key_to_a_private_file_then_verify_by_argument(run: Any, material: Material) -> None:
    out = material.root / "token.jwt"
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--rsa-private-keyfile", str(material.root / "rsa.pem"), "--output", str(out))
    assert result.code == 0, result.err
    assert result.out == ""
    token = out.read_text()
    assert not token.endswith("\n")  # kubectl create secret --from-file would keep a newline
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert token not in result.err
    verdict = run("token", "verify", token, "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir))
    assert verdict.code == 0 and "RS256" in verdict.out
    assert token not in verdict.out + verdict.err


def test_ecdsa_p384_signs_es384(run: Any, material: Material) -> None:
    token = generate(run, material, "--ecdsa-private-keyfile", str(material.root / "ecdsa.pem"))
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES384"
    result = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin=token)
    assert result.code == 0, result.out


def test_shared_secret_from_the_environment(run: Any, material: Material, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli_token.SHARED_SECRET_ENV, material.secret)
    token = generate(run, material)
    result = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin=token)
    assert result.code == 0, result.out


def test_shared_secret_file_from_stdin_ignores_the_trailing_newline(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", "-", stdin=material.secret + "\n")
    result = run("token", "verify", token, "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir))
    assert result.code == 0, result.out


def test_pxctl_style_shared_secret_flag_still_works(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret", material.secret)
    result = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin=token)
    assert result.code == 0, result.out


def test_a_short_shared_secret_is_a_warning_without_the_secret(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret", "tooshort")
    assert result.code == 0
    assert "warning" in result.err and "tooshort" not in result.err


# -- verify's verdicts ----------------------------------------------------------------------------------------


def test_rejected_is_exit_1_with_the_reason(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret", "a-different-secret-of-sufficient-length-0123456789")
    result = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin=token)
    assert result.code == 1
    assert result.out.startswith("rejected: the HS256 signature does not verify")
    assert token not in result.out + result.err


def test_wrong_issuer_is_rejected(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", "stork.openstorage.io",
                 "--shared-secret-file", str(material.secret_file))
    verdict = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                  stdin=result.out)
    assert verdict.code == 1 and "not a trusted issuer" in verdict.out


def test_without_key_material_self_signed_tokens_are_not_accepted(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", "-f", str(material.cr), stdin=token)
    assert result.code == 1
    assert "was not provided" in result.out and "--secrets-dir" in result.err


def test_verify_from_the_cluster_reads_the_crs_namespace(run: Any, material: Material,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[str, str]] = []

    def read(namespace: str, name: str) -> dict[str, bytes] | None:
        reads.append((namespace, name))
        return {"shared-secret": material.secret.encode()} if name == "px-shared-secret" else None

    monkeypatch.setattr(cli_token, "_read_cluster_secret", read)
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", "-f", str(material.cr), "--from-cluster", stdin=token)
    assert result.code == 0, result.out
    assert reads == [("portworx", "px-shared-secret"), ("portworx", "px-jwt-rsa"), ("portworx", "px-jwt-ecdsa")]
    run("token", "verify", "-", "-f", str(material.cr), "--from-cluster", "-n", "elsewhere", stdin=token)
    assert reads[-1][0] == "elsewhere"


def test_generate_from_a_secret_in_the_cluster(run: Any, material: Material, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {("portworx", "px-jwt-rsa"): {"private.pem": material.rsa[0], "public.pem": material.rsa[1]}}
    monkeypatch.setattr(cli_token, "_read_cluster_secret", lambda ns, name: secrets.get((ns, name)))
    token = generate(run, material, "--from-secret", "portworx/px-jwt-rsa")
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "RS256"
    missing = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                  "--from-secret", "portworx/nope")
    assert_one_line_error(missing)
    assert "portworx/nope not found" in missing.err


def test_a_cluster_that_cannot_be_reached_is_one_line(run: Any, material: Material,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr("pxsec.gateway._api_client", None)
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", "-f", str(material.cr), "--from-cluster", stdin=token)
    assert_one_line_error(result, token)
    assert "cannot read Secret portworx/px-shared-secret from the cluster" in result.err


def test_oidc_token_with_a_jwks_file(run: Any, material: Material) -> None:
    key = jwk.JWK.from_pem(material.rsa[0])
    public = json.loads(key.export_public())
    (material.root / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "k1"}]}))
    claims = {"iss": "https://login.example.com/realms/storage", "aud": "portworx", "sub": "bob", "name": "Bob",
              "email": "bob@example.com", "roles": ["system.view"], "iat": 1_700_000_000, "exp": 4_000_000_000}
    signed = jws.JWS(json.dumps(claims))
    signed.add_signature(jwk.JWK(**{**json.loads(key.export()), "kid": "k1"}), alg="RS256",
                         protected=json.dumps({"alg": "RS256", "kid": "k1"}))
    token = signed.serialize(compact=True)
    without = run("token", "verify", "-", "-f", str(material.cr), stdin=token)
    assert without.code == 1 and "signature was not checked" in without.out and "--jwks" in without.err
    result = run("token", "verify", "-", "-f", str(material.cr), "--jwks", str(material.root / "jwks.json"),
                 stdin=token)
    assert result.code == 0, result.out
    assert "source: oidc" in result.out and "username (email): bob@example.com" in result.out
    assert "groups: (none)" in result.out


# -- errors: one line, exit 2, nothing secret -------------------------------------------------------------------


def test_two_key_flags(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret", material.secret, "--rsa-private-keyfile", "x.pem")
    assert_one_line_error(result, material.secret)
    assert "not allowed with" in result.err


def test_no_key_at_all(run: Any, material: Material, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli_token.SHARED_SECRET_ENV, raising=False)
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER)
    assert_one_line_error(result)
    assert "no signing key" in result.err


@pytest.mark.parametrize(("flags", "expected"), [
    (["--issuer", "https://operator.portworx.io"], "must not contain http:// or https://"),
    (["--issuer", ISSUER, "--token-duration", "1h30m"], "invalid lifetime"),
    ([], "required: --issuer"),
])
def test_bad_generate_flags(flags: list[str], expected: str, run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--shared-secret", material.secret, *flags)
    assert_one_line_error(result, material.secret)
    assert expected in result.err


@pytest.mark.parametrize(("auth", "expected"), [
    ("name: a\nemail: a@b\nroles: [system.admin]\n", "sub is required"),
    ("name: a\nemail: a@b\nsub: a\nrolse: [system.admin]\n", "unknown key rolse"),
    ("name: a\nemail: a@b\nsub: a\nroles: system.admin\n", "roles must be a list of strings"),
    ("name: a\nemail: a@b\nsub: a\n", "roles is empty"),
    ("- not a mapping\n", "expected a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_auth_config(auth: str, expected: str, run: Any, material: Material) -> None:
    path = material.root / "bad-auth.yaml"
    path.write_text(auth)
    result = run("token", "generate", "--auth-config", str(path), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file))
    assert_one_line_error(result, material.secret)
    assert expected in result.err


def test_an_encrypted_or_foreign_key_file(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--rsa-private-keyfile", str(material.root / "ecdsa.pem"))
    assert_one_line_error(result)
    assert "not an RSA key" in result.err
    missing = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                  "--rsa-private-keyfile", str(material.root / "missing.pem"))
    assert_one_line_error(missing)
    assert "cannot read RSA key file" in missing.err


def test_a_token_typed_in_the_wrong_place_is_never_echoed(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    attempts = [
        ("token", "verify", token, "-f", str(material.cr), token),  # twice
        ("token", "verify", "-f", str(material.cr), "--bogus=" + token, token),
        ("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER, token),
        ("token", token),  # forgot "verify"
        ("token", "verify", token, "-f", str(material.cr), "--secrets-dir"),
    ]
    for argv in attempts:
        result = run(*argv)
        assert result.code == 2, argv
        for part in token.split("."):
            assert part not in result.err and part not in result.out, argv
        assert "\n" not in result.err.strip(), result.err


def test_a_shared_secret_typed_as_an_unknown_flag_value_is_never_echoed(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 f"--shared={material.secret}")
    assert_one_line_error(result, material.secret)
    assert "--shared" in result.err


@pytest.mark.parametrize(("argv_tail", "expected"), [
    (["-f", "missing.yaml"], "cannot read PxSecurity file"),
    (["-f", "{cr}", "--secrets-dir", "missing-dir"], "not a directory"),
    (["-f", "{cr}", "--jwks", "missing.json"], "cannot read JWKS file"),
    (["-f", "{cr}", "--secrets-dir", "{secrets}", "--from-cluster"], "not allowed with"),
    (["-f", "{invalid}"], "not a valid PxSecurity"),
    (["-f", "{auth}"], "expected exactly one PxSecurity document, found 0"),
])
def test_bad_verify_input(argv_tail: list[str], expected: str, run: Any, material: Material) -> None:
    invalid = material.root / "invalid.yaml"
    invalid.write_text(CR.replace("tokenLifetime", "x").replace("issuer: operator.portworx.io",
                                                                 "issuer: https://operator.portworx.io"))
    tail = [a.format(cr=material.cr, secrets=material.secrets_dir, invalid=invalid, auth=material.auth)
            for a in argv_tail]
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", *tail, stdin=token)
    assert_one_line_error(result, token)
    assert expected in result.err


def test_an_empty_token(run: Any, material: Material) -> None:
    result = run("token", "verify", "-", "-f", str(material.cr), stdin="\n")
    assert_one_line_error(result)
    assert "no token given" in result.err


def test_token_without_subcommand(run: Any) -> None:
    result = run("token")
    assert_one_line_error(result)
    assert "generate or verify" in result.err
