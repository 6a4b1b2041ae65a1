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

from pxsec import cli, keymaterial
from pxsec.cli import token as cli_token

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
    assert result.out.startswith("accepted by Portworx: the self-signed issuer \"operator.portworx.io\" verified the "
                                 "HS256 signature")
    assert "source: self-signed" in result.out
    assert "issuer: operator.portworx.io" in result.out
    assert "warning" not in result.out + result.err
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
    assert reads == [("portworx", "px-shared-secret"), ("portworx", "px-jwt-rsa"), ("portworx", "px-jwt-ecdsa"),
                     ("portworx", "px-system-secrets")]
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
    monkeypatch.setattr("pxsec.controller.kube.rest._api_client", None)
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = run("token", "verify", "-", "-f", str(material.cr), "--from-cluster", stdin=token)
    assert_one_line_error(result, token)
    assert "cannot read Secret portworx/px-shared-secret from the cluster" in result.err


def oidc_token(material: Material) -> tuple[dict[str, Any], str]:
    """Bob's RS256 token from the test provider, and the public JWK (kid k1) that verifies it."""
    key = jwk.JWK.from_pem(material.rsa[0])
    public = {**json.loads(key.export_public()), "kid": "k1"}
    claims = {"iss": "https://login.example.com/realms/storage", "aud": "portworx", "sub": "bob", "name": "Bob",
              "email": "bob@example.com", "roles": ["system.view"], "iat": 1_700_000_000, "exp": 4_000_000_000}
    signed = jws.JWS(json.dumps(claims))
    signed.add_signature(jwk.JWK(**{**json.loads(key.export()), "kid": "k1"}), alg="RS256",
                         protected=json.dumps({"alg": "RS256", "kid": "k1"}))
    return public, signed.serialize(compact=True)


def test_oidc_token_with_a_jwks_file(run: Any, material: Material) -> None:
    public, token = oidc_token(material)
    (material.root / "jwks.json").write_text(json.dumps({"keys": [public]}))
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
    (["--issuer", ISSUER, "--token-duration", "1h30m"], "--token-duration: use one positive whole number"),
    ([], "required: --issuer"),
])
def test_bad_generate_flags(flags: list[str], expected: str, run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--shared-secret", material.secret, *flags)
    assert_one_line_error(result, material.secret)
    assert expected in result.err


@pytest.mark.parametrize(("auth", "expected"), [
    ("name: a\nemail: a@b\nsub: 7\nroles: [system.admin]\n", "sub must be a string"),
    ("email: a@b\nroles: [system.admin]\n", "name is required"),
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
    (["-f", "{auth}"], "no PxSecurity document found"),
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


def test_an_empty_token_is_judged_as_portworx_judges_it(run: Any, material: Material) -> None:
    result = run("token", "verify", "-", "-f", str(material.cr), stdin="\n \u3000")
    assert result.code == 1 and "not a JWT" in result.out, (result.out, result.err)


def test_a_token_is_trimmed_as_gos_trimspace_trims_it(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    padded = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                 stdin="\u00a0\t" + token + "\u2028\n")
    assert padded.code == 0, padded.out
    assert cli_token.go_trim_space("\x1c" + token + "\x1f") == "\x1c" + token + "\x1f"  # Go keeps these
    separated = run("token", "verify", "-", "-f", str(material.cr), "--secrets-dir", str(material.secrets_dir),
                    stdin="\x1c" + token)
    assert separated.code == 1, separated.out


def test_token_without_subcommand(run: Any) -> None:
    result = run("token")
    assert_one_line_error(result)
    assert "generate or verify" in result.err


# -- issue 10: the resource read as validate/render read it, Portworx's edges, no exceptions -------------------


def hs256(body: dict[str, Any], secret: bytes, header: dict[str, Any] | None = None) -> str:
    """A token written by hand (no library would write some of these)."""
    import hashlib
    import hmac

    def seg(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    h = seg(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    c = seg(json.dumps(body).encode())
    return f"{h}.{c}.{seg(hmac.new(secret, f'{h}.{c}'.encode(), hashlib.sha256).digest())}"


def body(**overrides: Any) -> dict[str, Any]:
    import time

    now = int(time.time())
    base = {"iss": ISSUER, "sub": "alice", "name": "alice", "email": "alice@example.com",
            "roles": ["system.admin"], "groups": ["*"], "iat": now - 600, "exp": now + 3600}
    return {**base, **overrides}


def verify_with(run: Any, material: Material, token: str, *extra: str, cr: Path | None = None) -> Run:
    result: Run = run("token", "verify", "-", "-f", str(cr or material.cr), "--secrets-dir",
                      str(material.secrets_dir), *extra, stdin=token)
    return result


@pytest.mark.parametrize(("replace", "code", "expected"), [
    ("issuer: operator.portworx.io\n    sharedSecret: {}", 0, "accepted by Portworx"),
    ("issuer: null\n    sharedSecret: {}", 0, "accepted by Portworx"),  # pruned, then defaulted
    ("issuer: operator.portworx.io\n    sharedSecret: {secretName: null}", 0, "accepted by Portworx"),
    ("issuer: y\n    sharedSecret: {}", 2, "spec.selfSigned.issuer"),  # a boolean, as kubectl reads it
])
def test_verify_reads_the_resource_as_validate_and_render_do(replace: str, code: int, expected: str, run: Any,
                                                             material: Material) -> None:
    cr = material.root / "variant.yaml"
    cr.write_text(CR.replace("issuer: operator.portworx.io\n    sharedSecret: {}", replace)
                  .replace("rsa: {secretName: px-jwt-rsa}", "rsa: {secretName: px-jwt-rsa, size: null}"))
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    result = verify_with(run, material, token, cr=cr)
    assert result.code == code, result.out + result.err
    assert expected in result.out + result.err
    assert "Traceback" not in result.err and token not in result.out + result.err


def test_validate_and_verify_agree_on_the_same_file(run: Any, material: Material) -> None:
    cr = material.root / "bool-issuer.yaml"
    cr.write_text(CR.replace("issuer: operator.portworx.io", "issuer: y"))
    validated = run("validate", "-f", str(cr))
    verified = run("token", "verify", "-", "-f", str(cr), stdin="a.e30.c")
    assert validated.code == 1 and verified.code == 2
    first_problem = validated.err.splitlines()[0].split(": ", 2)[-1].strip()
    assert first_problem.startswith("spec.selfSigned.issuer")
    assert first_problem in verified.err


def test_sub_is_optional_and_derived_like_openstorages_generator(run: Any, material: Material) -> None:
    for auth in ("name: alice\nemail: alice@example.com\nroles: [system.admin]\n",
                 "name: alice\nemail: alice@example.com\nsub: ''\nroles: [system.admin]\n"):
        path = material.root / "no-sub.yaml"
        path.write_text(auth)
        result = run("token", "generate", "--auth-config", str(path), "--issuer", ISSUER,
                     "--shared-secret-file", str(material.secret_file))
        assert result.code == 0, result.err
        derived = base64.b64encode(b"openstorage.io/alice/alice@example.com").decode()
        assert payload(result.out.strip())["sub"] == derived
        assert "osd-token-generator" in result.err
        cr = material.root / "sub-cr.yaml"
        cr.write_text(CR.replace("usernameClaim: email", "usernameClaim: sub"))
        assert verify_with(run, material, result.out.strip(), cr=cr).code == 0


def test_a_1024_bit_rsa_key_signs_with_a_warning(run: Any, material: Material) -> None:
    (material.root / "rsa1024.pem").write_bytes(keymaterial.generate_rsa(1024)[0])
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--rsa-private-keyfile", str(material.root / "rsa1024.pem"))
    assert result.code == 0
    assert "warning: the RSA key is 1024 bits" in result.err and "invalid key material" in result.err


def test_a_secret_file_with_a_newline_warns_and_verify_explains(run: Any, material: Material) -> None:
    with_newline = material.root / "secret.txt"
    with_newline.write_text(material.secret + "\n")
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", str(with_newline))
    assert result.code == 0 and "ends with a newline" in result.err
    (material.secret_file).write_text(material.secret + "\n")  # the Secret made from that file keeps it
    verdict = verify_with(run, material, result.out.strip())
    assert verdict.code == 1
    assert "the Secret's value ends with a newline" in verdict.out


def test_exp_zero_is_accepted_with_a_warning(run: Any, material: Material) -> None:
    token = hs256(body(exp=0), material.secret.encode())
    result = verify_with(run, material, token)
    assert result.code == 0, result.out
    assert result.out.startswith("accepted by Portworx")
    assert "warning: exp is 0" in result.out and "never expires" in result.out


def test_case_variant_roles_show_what_portworx_reads(run: Any, material: Material) -> None:
    token = hs256({**body(roles=["system.user"]), "ROLES": ["system.admin"]}, material.secret.encode())
    result = verify_with(run, material, token)
    assert result.code == 0
    assert "roles: system.admin" in result.out and "case-insensitively" in result.out


@pytest.mark.parametrize("token", [
    "",
    "a.b",
    "....",
    "a.e30.c",
    "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJvcGVyYXRvci5wb3J0d29yeC5pbyJ9.AA==",
    "eyJhbGciOiJub25lIiwiY3JpdCI6WyJleHAiXX0.eyJpc3MiOiJvcGVyYXRvci5wb3J0d29yeC5pbyJ9.",
    "\u00e9\u00e9.\u00e9.\u00e9",
    "x" * 5000,
])
def test_every_outcome_is_a_verdict_or_a_usage_error(token: str, run: Any, material: Material) -> None:
    result = run("token", "verify", token or "-", "-f", str(material.cr), "--secrets-dir",
                 str(material.secrets_dir), stdin=token)
    assert result.code in (1, 2), result
    assert result.out.startswith("rejected: ") or (result.code == 2 and result.err.count("\n") == 1)
    assert "Traceback" not in result.err


def test_a_bug_in_the_verifier_is_still_one_line(run: Any, material: Material, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(cli_token, "verify", broken)
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    assert_one_line_error(verify_with(run, material, token), token)


def test_the_apps_issuer_is_verified_with_the_system_secrets_apps_key(run: Any, material: Material) -> None:
    apps = b"apps-key-apps-key-apps-key-apps-key-apps-key-apps-key-apps-key-0"
    (material.secrets_dir / "px-system-secrets").mkdir()
    (material.secrets_dir / "px-system-secrets" / "apps-secret").write_bytes(apps)
    cr = material.root / "sub-cr.yaml"
    cr.write_text(CR.replace("usernameClaim: email", "usernameClaim: sub"))
    token = hs256(body(iss="apps.portworx.io", sub="stork"), apps)
    result = verify_with(run, material, token, cr=cr)
    assert result.code == 0, result.out
    assert "apps issuer" in result.out and "issuer: apps.portworx.io" in result.out


def test_from_cluster_follows_the_storageclusters_issuer_and_shared_secret(
        run: Any, material: Material, monkeypatch: pytest.MonkeyPatch) -> None:
    # Our spec names no shared secret; the Portworx Operator generated px-shared-secret for the StorageCluster.
    cr = material.root / "sc-cr.yaml"
    cr.write_text(CR.replace("    sharedSecret: {}\n", "").replace("spec:\n", "spec:\n  storageCluster: {name: px}\n"))
    sc = {"spec": {"security": {"enabled": True, "auth": {"selfSigned": {"issuer": "px.example.com"}}}}}
    reads: list[str] = []

    def read_secret(namespace: str, name: str) -> dict[str, bytes] | None:
        reads.append(name)
        return {"shared-secret": material.secret.encode()} if name == "px-shared-secret" else None

    monkeypatch.setattr(cli_token, "_read_cluster_secret", read_secret)
    monkeypatch.setattr(cli_token, "_read_cluster_storagecluster", lambda ns, name: sc if name == "px" else None)
    token = hs256(body(iss="px.example.com"), material.secret.encode())
    result = run("token", "verify", "-", "-f", str(cr), "--from-cluster", stdin=token)
    assert result.code == 0, result.out + result.err
    assert "px-shared-secret" in reads
    assert "StorageCluster portworx/px" in result.err


def test_a_junk_jwks_is_judged_as_go_oidc_would(run: Any, material: Material) -> None:
    public, token = oidc_token(material)
    for document, code, expected in (({"keys": [public, {"kty": "junk"}]}, 1, "every signature fails"),
                                     ({"keys": [{**public, "use": "enc"}]}, 0, "accepted by Portworx"),
                                     ("not json", 1, "not JSON")):
        path = material.root / "jwks.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        result = run("token", "verify", "-", "-f", str(material.cr), "--jwks", str(path), stdin=token)
        assert result.code == code, result.out
        assert expected in result.out


# -- secret hygiene (issue 12) ----------------------------------------------------------------------------------


def test_output_onto_an_existing_file_ends_with_mode_0600(run: Any, material: Material) -> None:
    """The help promises mode 0600; a file that existed with another mode must not keep it."""
    out = material.root / "token.jwt"
    out.write_text("old content that is longer than a token would ever be " * 40)
    out.chmod(0o644)
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file), "--output", str(out))
    assert (result.code, result.out) == (0, ""), result.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().count(".") == 2 and "old content" not in out.read_text()


def test_output_into_a_file_that_cannot_be_made_private_is_refused(run: Any, material: Material,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = material.root / "shared.jwt"
    out.write_text("")
    out.chmod(0o664)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(cli_token.os, "fchmod", refuse)
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file), "--output", str(out))
    assert_one_line_error(result)
    assert "0600" in result.err
    assert out.read_text() == ""  # nothing written where others may read it


NOT_UTF8 = "s3cr3t-\udcff-value-that-is-long-enough-for-hs256"  # argv/environ carry the byte 0xff like this


def _no_echo(result: Run) -> None:
    text = result.out + result.err
    for needle in ("\udcff", "\\udcff", "0xff", "position", "s3cr3t", "surrogates"):
        assert needle not in text, text


def test_a_non_utf8_byte_in_a_shared_secret_argument_is_neither_echoed_nor_located(run: Any,
                                                                                    material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret", NOT_UTF8)
    _no_echo(result)
    assert result.code == 0, result.err  # the bytes as given, as Portworx would take them from a Secret
    assert "the shared secret is not ASCII text" in result.err


def test_a_non_utf8_byte_in_the_shared_secret_environment_is_not_echoed(run: Any, material: Material,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli_token.SHARED_SECRET_ENV, NOT_UTF8)
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER)
    _no_echo(result)
    assert result.code == 0, result.err


def test_a_non_utf8_byte_in_a_shared_secret_on_stdin_is_not_echoed(run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", "-", stdin=NOT_UTF8)
    _no_echo(result)
    assert result.code == 0, result.err


@pytest.mark.parametrize("mistyped", ["S3cr3t+pa55w0rd==", "nsxy/qwrt/extra", "/px-jwt-rsa", "a bcd/efgh",
                                      "Portworx/px-jwt-rsa", "portworx/Not_A_Name", "portworx/s3cr3t+valu"])
def test_from_secret_never_echoes_a_mistyped_argument(run: Any, material: Material, mistyped: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped --from-secret may be the secret itself: it is described, never repeated."""
    monkeypatch.setattr(cli_token, "_read_cluster_secret", lambda ns, name: pytest.fail("no cluster read"))
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--from-secret", mistyped)
    parts = [part for part in (mistyped, *mistyped.split("/")) if len(part) >= 4 and part != "portworx"]
    assert_one_line_error(result, *parts)
    assert "--from-secret expects NAMESPACE/NAME" in result.err


# -- issue 24: crashes through the catch-all, unbounded reads, secrets echoed when misplaced ---------------------


def test_an_oidc_exp_of_thousands_of_digits_is_a_verdict(run: Any, material: Material) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k1"}').rstrip(b"=").decode()
    claims = ('{"iss":"https://login.example.com/realms/storage","aud":"portworx","sub":"bob","name":"Bob",'
              '"email":"bob@example.com","iat":1700000000,"exp":' + "9" * 5000 + "}").encode()
    token = f"{header}.{base64.urlsafe_b64encode(claims).rstrip(b'=').decode()}.c2ln"
    result = run("token", "verify", "-", "-f", str(material.cr), stdin=token)
    assert result.code == 1 and "cannot judge" not in result.err, (result.out, result.err)


def test_an_auth_config_nested_5000_deep_is_one_line(run: Any, material: Material) -> None:
    deep = material.root / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    result = run("token", "generate", "--auth-config", str(deep), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file))
    assert_one_line_error(result)
    assert "nested more than 100 levels deep" in result.err


@pytest.mark.parametrize("where", ["--shared-secret-file", "--auth-config", "--jwks", "stdin token"])
def test_an_endless_input_is_read_no_further_than_its_cap(where: str, run: Any, material: Material) -> None:
    zero = "/dev/zero"
    if where == "--shared-secret-file":
        result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER, where, zero)
    elif where == "--auth-config":
        result = run("token", "generate", "--auth-config", zero, "--issuer", ISSUER,
                     "--shared-secret-file", str(material.secret_file))
    elif where == "--jwks":
        result = run("token", "verify", "x.y.z", "-f", str(material.cr), "--jwks", zero)
    else:
        big = "a" * (cli_token.MAX_SECRET_BYTES + 1)
        result = run("token", "verify", "-", "-f", str(material.cr), stdin=big)
    assert_one_line_error(result)
    assert "nothing more was read" in result.err


def test_a_large_auth_config_is_refused_before_it_is_parsed(run: Any, material: Material) -> None:
    big = material.root / "big.yaml"
    big.write_text(AUTH + "# " + "x" * cli_token.MAX_AUTH_CONFIG_BYTES + "\n")
    result = run("token", "generate", "--auth-config", str(big), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file))
    assert_one_line_error(result)
    assert f"more than {cli_token.MAX_AUTH_CONFIG_BYTES} bytes" in result.err


def test_secrets_given_in_the_place_of_a_file_are_never_echoed(run: Any, material: Material) -> None:
    token = generate(run, material, "--shared-secret-file", str(material.secret_file))
    rsa_pem = material.rsa[0].decode()
    cases = [
        ["token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
         "--shared-secret-file", material.secret],
        ["token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
         "--rsa-private-keyfile", rsa_pem],
        ["token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
         "--shared-secret-file", str(material.secret_file), "--token-duration", material.secret],
        ["token", "verify", "-", "-f", token],
        ["token", "verify", "-", "-f", str(material.cr), "--jwks", token],
        ["token", "verify", "-", "-f", str(material.cr), "--secrets-dir", token],
    ]
    for argv in cases:
        result = run(*argv, stdin=token if argv[2] == "-" else "")
        assert result.code == 2, (argv[:4], result.err)
        for secret in (material.secret, material.secret[:16], token, token.split(".")[0], rsa_pem.splitlines()[1]):
            assert secret not in result.err and secret not in result.out, (argv[:4], result.err)


def test_an_auth_config_with_a_key_written_twice_is_refused(run: Any, material: Material) -> None:
    twice = material.root / "twice.yaml"
    twice.write_text(AUTH + "roles: [system.user]\n")
    result = run("token", "generate", "--auth-config", str(twice), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file))
    assert_one_line_error(result)
    assert 'mapping key "roles" already defined at line 4' in result.err


@pytest.mark.parametrize("secret", ["", "   ", "\t\n"])
def test_an_empty_or_blank_shared_secret_signs_nothing(secret: str, run: Any, material: Material) -> None:
    result = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", "-", stdin=secret)
    assert_one_line_error(result)
    assert "the shared secret is empty or only whitespace" in result.err and result.out == ""


def test_output_must_name_a_file_and_never_follows_a_link(run: Any, material: Material) -> None:
    empty = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                "--shared-secret-file", str(material.secret_file), "--output", "")
    assert_one_line_error(empty)
    assert "--output needs a file name" in empty.err and empty.out == ""
    target = material.root / "elsewhere"
    target.write_text("")
    link = material.root / "token.link"
    link.symlink_to(target)
    linked = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file), "--output", str(link))
    assert_one_line_error(linked)
    assert "is a symbolic link" in linked.err and target.read_text() == ""


def test_namespaces_are_names(run: Any, material: Material) -> None:
    for argv in (["render", "-f", str(material.cr), "--target", "storagecluster", "-n", "a\nb\x1b[2J"],
                 ["token", "verify", "x.y.z", "-f", str(material.cr), "--from-cluster", "-n", "Bad_NS"]):
        result = run(*argv)
        assert result.code == 2 and "not a namespace name" in result.err, result.err
        assert "\x1b" not in result.err and "Bad_NS" not in result.err


def test_control_characters_in_claims_and_names_stay_off_the_terminal(run: Any, material: Material) -> None:
    auth = material.root / "evil.yaml"
    auth.write_text('name: x\nemail: a@b\nsub: "\\e]0;owned\\a\\e[2J"\nroles: [system.admin]\n')
    result = run("token", "generate", "--auth-config", str(auth), "--issuer", ISSUER,
                 "--shared-secret-file", str(material.secret_file), "--output", str(material.root / "t"))
    assert result.code == 0 and "\x1b" not in result.err and "\\x1b]0;owned" in result.err, result.err


def small_rsa_key(bits: int) -> Any:
    """An RSA key below what cryptography will generate (1024 bits), from primes found here."""
    import random

    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    rng = random.Random(bits)

    def prime(size: int) -> int:
        while True:
            n = rng.getrandbits(size) | (1 << (size - 1)) | 1
            if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
                return n

    e = 65537
    while True:
        p, q = prime(bits // 2), prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e and (p * q).bit_length() == bits:
            break
    d = pow(e, -1, phi)
    numbers = rsa_keys.RSAPrivateNumbers(p, q, d, rsa_keys.rsa_crt_dmp1(d, p), rsa_keys.rsa_crt_dmq1(d, q),
                                         rsa_keys.rsa_crt_iqmp(p, q), rsa_keys.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def test_a_512_bit_rsa_key_is_named_when_its_token_is_rejected(run: Any, material: Material) -> None:
    from cryptography.hazmat.primitives import serialization

    key = small_rsa_key(512)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (material.root / "rsa512.pem").write_bytes(private)
    (material.secrets_dir / "px-jwt-rsa" / "private.pem").write_bytes(private)
    (material.secrets_dir / "px-jwt-rsa" / "public.pem").write_bytes(public)
    signed = run("token", "generate", "--auth-config", str(material.auth), "--issuer", ISSUER,
                 "--rsa-private-keyfile", str(material.root / "rsa512.pem"))
    assert signed.code == 0 and "512 bits" in signed.err
    result = verify_with(run, material, signed.out.strip())
    assert result.code == 1, result.out
    assert "RSA 512-bit keys are refused" in result.out and "at least 1024" in result.out, result.out
