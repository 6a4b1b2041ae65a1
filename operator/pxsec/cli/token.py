"""`pxsec token generate` and `pxsec token verify`: tokens from the command line, judged as Portworx would.

    pxsec token generate --auth-config user.yaml --issuer operator.portworx.io \\
        (--shared-secret-file F | --rsa-private-keyfile F | --ecdsa-private-keyfile F |
         --from-secret NAMESPACE/NAME | --shared-secret S | $PXSEC_SHARED_SECRET) \\
        [--token-duration 1d] [--output FILE]
    pxsec token verify (TOKEN | -) -f cr.yaml [--secrets-dir DIR | --from-cluster [-n NS]] [--jwks FILE]

`generate` takes `pxctl auth token generate`'s flags, so existing scripts keep working; the auth config
is the same YAML (name, email, sub, roles, groups). `sub` may be left out (or empty): it is then derived
as OpenStorage's token generator derives it (cmd/osd-token-generator/main.go: the standard base64 of
`openstorage.io/<name>/<email>`), and a note says so. It differs where pxctl's output would be
rejected: `iat` is backdated 10 minutes (OpenStorage has no iat leeway, so a node whose clock lags would
reject a fresh token), and an ECDSA key signs with the algorithm of its curve (ES384 for P-384), not
always ES256. An RSA key below 2048 bits signs with a warning (the operator reports such a key as
invalid key material). A secret on the command line (`--shared-secret S`, kept for pxctl compatibility)
lands in the shell history and the process list: prefer `--shared-secret-file F` (`-` reads stdin) or
the environment variable PXSEC_SHARED_SECRET, which is used when no key flag is given. One trailing
newline of a secret file is ignored, with a warning: a Secret made from that file keeps it, and Portworx
would then reject the token.

`verify` applies OpenStorage's rules (`pxsec.verify`, checked against golang-jwt and go-oidc by
tests/interop) to a token against a PxSecurity file — read exactly as `pxsec validate` and `pxsec render`
read it (`pxsec.cli.read`) — with the key material from a directory laid out like mounted Secrets
(`DIR/<secretName>/<key>`) or from the cluster (the CR's namespace, via $KUBECONFIG). With
`--from-cluster` and a `spec.storageCluster`, the issuer and shared-secret Secret are those the
StorageCluster gives Portworx (the Portworx Operator's, if our spec names none). The system Secret's
`apps-secret` is the key of issuer `apps.portworx.io` (Stork's tokens). `-` reads the token from stdin,
which keeps it out of the shell history. It prints the verdict on stdout — `accepted by Portworx: ...`
with the roles and groups, and a `warning:` line for each reason an accepted token is dangerous all the
same (it never expires, its claim names are spelled twice, ...) — and never prints the token or a key.

Exit status: 0 success (generate) or accepted (verify, whatever the warnings); 1 rejected (verify); 2
the command could not run (bad flags, unreadable file, invalid PxSecurity, no cluster). Errors are one
line on stderr, never a traceback, and never contain a token, a secret, or an argument that could be one.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import errno
import io
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pxsec import coexist, keymaterial, kubeyaml, tokens
from pxsec.cli import read as cliread
from pxsec.cli.parse import OneLineParser, namespace_name
from pxsec.spec import KEY_PRIVATE_PEM, KEY_SHARED_SECRET, PxSecuritySpec
from pxsec.verify import Verdict, VerifyKeys, verify

EXIT_OK: Final = 0
EXIT_REJECTED: Final = 1
EXIT_ERROR: Final = 2

SHARED_SECRET_ENV: Final = "PXSEC_SHARED_SECRET"
AUTH_CONFIG_KEYS: Final = ("name", "email", "sub", "roles", "groups")
# cmd/osd-token-generator/main.go: "Create a mostly unique id if none found".
SUBJECT_PREFIX: Final = "openstorage.io/"


class CommandError(Exception):
    """A problem worth one line on stderr. Messages never carry a token, a secret or a key."""


# -- reading things -----------------------------------------------------------------------------------


# What each input may hold, at most. A Secret holds at most 1 MiB, so no key, shared secret or token read
# from one is larger; an auth config is a handful of claims. Only this much (plus one byte, to know it is
# more) is ever read: /dev/zero, a FIFO or a 5 GB file given by mistake costs nothing.
MAX_SECRET_BYTES: Final = 1 << 20
MAX_AUTH_CONFIG_BYTES: Final = 64 << 10


def _read_capped(path: str, what: str, cap: int, stdin: IO[str] | None = None) -> bytes:
    """The bytes of `path` (`-`: stdin's, as they are), at most `cap`: more is refused, and never read."""
    try:
        if path == "-":
            if stdin is None:
                raise CommandError(f"{what} cannot come from stdin here")
            binary = getattr(stdin, "buffer", None)
            data: bytes = (binary.read(cap + 1) if binary is not None
                           else stdin.read(cap + 1).encode("utf-8", "surrogateescape"))
        else:
            with open(path, "rb") as handle:
                data = handle.read(cap + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if path == "-":
            raise CommandError(f"cannot read {what} from stdin: {reason}") from None
        if error.errno in cliread.NOT_OPENED:
            raise CommandError(f"cannot read {what}: {reason} (the name given is not shown: it may be a "
                               "secret given in the place of a file)") from None
        raise CommandError(f"cannot read {what} {cliread.printable(path)}: {reason}") from None
    if len(data) > cap:
        where = "stdin" if path == "-" else "the file"
        raise CommandError(f"{what}: {where} holds more than {cap} bytes, more than any {what} can be; "
                           "nothing more was read")
    return data


# unicode.IsSpace: the Latin-1 spaces Go names, then the White_Space property beyond them.
_GO_SPACE: Final = "\t\n\v\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
    "\u200a\u2028\u2029\u202f\u205f\u3000"


def go_trim_space(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE)


def _shown(path: str) -> str:
    return cliread.shown_name(path)


def _read_text(path: str, what: str, cap: int, stdin: IO[str] | None = None) -> str:
    data = _read_capped(path, what, cap, stdin)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {what}: not UTF-8 text") from None


def _given_bytes(value: str) -> bytes:
    """The bytes of an argument or environment variable as the user gave them: Python decodes them with
    surrogateescape, so a byte that is not UTF-8 comes back as it was (never an encoding error that
    would quote it and its position)."""
    return os.fsencode(value)


def _read_cluster_secret(namespace: str, name: str) -> dict[str, bytes] | None:
    """A Secret's data from the cluster ($KUBECONFIG, or in-cluster config), None if it does not exist.

    One of the command line's two Kubernetes reads (with `_read_cluster_storagecluster`), kept here so the
    rest stays pure and testable.
    """
    try:
        from pxsec.controller.kube.gateway import Gateway
        from pxsec.controller.kube.store import Store

        observed = Gateway(Store()).read_secret(namespace, name)
    except Exception as error:  # config loading, connection, RBAC: one line, whatever the client raised
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandError(f"cannot read Secret {namespace}/{name} from the cluster: {text}") from None
    return dict(observed.data) if observed is not None else None


def _read_cluster_storagecluster(namespace: str, name: str) -> dict[str, Any] | None:
    """A StorageCluster from the cluster, None if it (or its CRD) does not exist."""
    try:
        from pxsec.controller.kube.gateway import Gateway
        from pxsec.controller.kube.store import Store

        return Gateway(Store()).read_storagecluster(namespace, name)
    except Exception as error:  # as _read_cluster_secret: one line, whatever the client raised
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandError(f"cannot read StorageCluster {namespace}/{name} from the cluster: {text}") from None


def _read_dir_secret(directory: Path, name: str) -> dict[str, bytes] | None:
    """`DIR/<name>/<key>` files as Secret data, as a mounted Secret lays them out."""
    folder = directory / name
    if not folder.is_dir():
        return None
    try:
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    except OSError as error:
        raise CommandError(f"cannot read {cliread.printable(str(folder))}: {error.strerror or 'error'}") from None
    return {f.name: _read_capped(str(f), f"Secret {name} key {cliread.printable(f.name)}", MAX_SECRET_BYTES)
            for f in files}


def _load_pxsecurity(path: str, stdin: IO[str]) -> cliread.Loaded:
    """The PxSecurity in the file, read, validated and defaulted as `pxsec validate` / `render` do."""
    try:
        return cliread.read_pxsecurity(path, stdin, hide_unopened=True)
    except cliread.ReadError as error:
        message = str(error)
        if error.kind == cliread.UNREADABLE and "cannot read" in message:
            message = message.replace(": cannot read:", ": cannot read PxSecurity file:", 1)
        raise CommandError(message) from None


def _secret_names(spec: PxSecuritySpec) -> list[str]:
    """The Secrets whose keys Portworx verifies with: self-signed keys, then the system Secret (apps-secret)."""
    ss = spec.self_signed
    names = [] if ss is None else [n for n in (ss.shared_secret, ss.rsa.secret_name if ss.rsa else None,
                                               ss.ecdsa.secret_name if ss.ecdsa else None) if n]
    return [*names, spec.system_secret] if spec.system_secret not in names else names


# -- generate -----------------------------------------------------------------------------------------


def _auth_config(path: str, stdin: IO[str]) -> dict[str, Any]:
    # Read as Go's YAML reads it (pxsec.kubeyaml: a key written twice, deep nesting and alias bombs refused;
    # `y` is true), never PyYAML's: a second `roles:` must not silently win.
    text = _read_text(path, "auth config", MAX_AUTH_CONFIG_BYTES, stdin)
    try:
        first = next(iter(kubeyaml.documents(text)), None)
    except kubeyaml.KubeYAMLError as error:
        raise CommandError(cliread.describe(_shown(path), error)) from None
    raw = first.value if first is not None else None
    if not isinstance(raw, Mapping):
        raise CommandError(f"{_shown(path)}: expected a mapping with {', '.join(AUTH_CONFIG_KEYS)}")
    unknown = sorted(str(k) for k in raw if k not in AUTH_CONFIG_KEYS)
    if unknown:
        raise CommandError(f"{_shown(path)}: unknown key {', '.join(unknown)} (expected {', '.join(AUTH_CONFIG_KEYS)})")
    config: dict[str, Any] = {}
    for key in ("name", "email"):
        value = raw.get(key)
        if not isinstance(value, str):
            raise CommandError(f"{_shown(path)}: {key} is required and must be a string (OpenStorage requires it)")
        config[key] = value
    sub = raw.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise CommandError(f"{_shown(path)}: sub must be a string (or left out, to be derived from name and email)")
    config["sub"] = sub or ""
    for key in ("roles", "groups"):
        value = raw.get(key)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CommandError(f"{_shown(path)}: {key} must be a list of strings")
        config[key] = value
    if not config["roles"]:
        raise CommandError(f"{_shown(path)}: roles is empty: a token without roles is denied everything")
    return config


def derived_subject(name: str, email: str) -> str:
    """`sub` when the auth config gives none, as OpenStorage's token generator makes it
    (cmd/osd-token-generator/main.go): base64.StdEncoding of "openstorage.io/" + name + "/" + email."""
    return base64.b64encode(f"{SUBJECT_PREFIX}{name}/{email}".encode()).decode("ascii")


def _key_warnings(ring: tokens.KeyRing, kind: str) -> list[str]:
    """What the operator would call invalid or weak about a signing key that Portworx still accepts."""
    if kind != tokens.RSA or ring.rsa_private_pem is None:
        return []
    key = keymaterial.load_private_key(ring.rsa_private_pem)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < keymaterial.MIN_RSA_BITS:
        return [f"the RSA key is {key.key_size} bits: the operator reports RSA keys below "
                f"{keymaterial.MIN_RSA_BITS} bits as invalid key material (Portworx still accepts tokens it signs)"]
    return []


def _shared_secret_ring(secret: bytes, err: IO[str]) -> tokens.KeyRing:
    if not secret.strip():  # empty or whitespace only: no key anyone should sign with (the operator refuses it)
        raise CommandError("the shared secret is empty or only whitespace")
    for problem in (keymaterial.check_shared_secret(secret, "the shared secret")
                    + keymaterial.shared_secret_warnings(secret, "the shared secret")):
        print(cliread.printable(f"pxsec token generate: warning: {problem}"), file=err)
    return tokens.KeyRing(shared_secret=secret)


SecretReader = Callable[[str, str], dict[str, bytes] | None]


_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _secret_ref(ref: str) -> tuple[str, str]:
    """NAMESPACE/NAME of --from-secret. Anything else is described, never repeated: a mistyped argument
    may be the secret itself (`--from-secret` given where `--shared-secret` was meant)."""
    namespace, _, name = ref.partition("/")
    if (not _DNS_LABEL.fullmatch(namespace) or not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253):
        raise CommandError(f"--from-secret expects NAMESPACE/NAME (a namespace and a Secret name, lowercase "
                           f"DNS names); the {len(ref)}-character argument given is not that (not shown: it may "
                           "be a secret)")
    return namespace, name


def _ring_from_secret(ref: str, read_secret: SecretReader) -> tuple[tokens.KeyRing, str]:
    namespace, name = _secret_ref(ref)
    data = read_secret(namespace, name)
    if data is None:
        raise CommandError(f"Secret {namespace}/{name} not found")
    if KEY_SHARED_SECRET in data and KEY_PRIVATE_PEM in data:
        raise CommandError(f"Secret {namespace}/{name} holds both {KEY_SHARED_SECRET} and {KEY_PRIVATE_PEM}; "
                           "use a key flag instead")
    if KEY_SHARED_SECRET in data:
        return tokens.KeyRing(shared_secret=data[KEY_SHARED_SECRET]), tokens.SHARED_SECRET
    if KEY_PRIVATE_PEM in data:
        pem = data[KEY_PRIVATE_PEM]
        kind = _pem_kind(pem, f"Secret {namespace}/{name}")
        ring = tokens.KeyRing(rsa_private_pem=pem) if kind == tokens.RSA else tokens.KeyRing(ecdsa_private_pem=pem)
        return ring, kind
    raise CommandError(f"Secret {namespace}/{name} has neither {KEY_SHARED_SECRET} nor {KEY_PRIVATE_PEM}")


def _pem_kind(pem: bytes, where: str) -> str:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise CommandError(f"{where}: {KEY_PRIVATE_PEM} is not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return tokens.RSA
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return tokens.ECDSA
    raise CommandError(f"{where}: {KEY_PRIVATE_PEM} is neither an RSA nor an ECDSA key")


def _strip_newline(value: bytes) -> bytes:
    """A secret file written by `echo` ends in a newline that is not part of the secret."""
    return value.removesuffix(b"\n").removesuffix(b"\r")


def _signing_ring(args: argparse.Namespace, stdin: IO[str], err: IO[str], env: Mapping[str, str],
                  read_secret: SecretReader) -> tuple[tokens.KeyRing, str]:
    if args.shared_secret is not None:
        return _shared_secret_ring(_given_bytes(args.shared_secret), err), tokens.SHARED_SECRET
    if args.shared_secret_file is not None:
        raw = _read_capped(args.shared_secret_file, "shared secret file", MAX_SECRET_BYTES, stdin)
        secret = _strip_newline(raw)
        if secret != raw and args.shared_secret_file != "-":
            print("pxsec token generate: warning: the shared secret file ends with a newline, which was left out "
                  "of the key; a Secret made from this file (kubectl create secret --from-file) keeps it, and "
                  "Portworx, which uses the Secret's value as it is, would reject this token", file=err)
        return _shared_secret_ring(secret, err), tokens.SHARED_SECRET
    if args.rsa_private_keyfile is not None:
        pem = _read_capped(args.rsa_private_keyfile, "RSA key file", MAX_SECRET_BYTES)
        return tokens.KeyRing(rsa_private_pem=pem), tokens.RSA
    if args.ecdsa_private_keyfile is not None:
        pem = _read_capped(args.ecdsa_private_keyfile, "ECDSA key file", MAX_SECRET_BYTES)
        return tokens.KeyRing(ecdsa_private_pem=pem), tokens.ECDSA
    if args.from_secret is not None:
        return _ring_from_secret(args.from_secret, read_secret)
    if env.get(SHARED_SECRET_ENV):
        return _shared_secret_ring(_given_bytes(env[SHARED_SECRET_ENV]), err), tokens.SHARED_SECRET
    raise CommandError("no signing key: give one of --shared-secret-file, --rsa-private-keyfile, "
                       f"--ecdsa-private-keyfile, --from-secret, --shared-secret, or set {SHARED_SECRET_ENV}")


def _write_private(path: str, text: str) -> None:
    """Write the token to `path` with mode 0600, also when the file exists with another mode: a regular
    file is made private before it is emptied and written (and nothing is written if it cannot be);
    a FIFO or a terminal (`--output /dev/stdout`) is written as it is. A symbolic link is not followed
    (a link planted where the token goes would send it elsewhere)."""
    shown = cliread.printable(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOCTTY | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise CommandError(f"--output {shown} is a symbolic link; give the file itself") from None
        raise CommandError(f"cannot write {shown}: {error.strerror or 'error'}") from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            try:
                os.fchmod(fd, 0o600)
            except OSError as error:
                raise CommandError(f"cannot make {shown} private (mode 0600): {error.strerror or 'error'}; the "
                                   "token was not written") from None
            os.ftruncate(fd, 0)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            fd = -1
            handle.write(text)  # no trailing newline: `kubectl create secret --from-file` keeps it
    except OSError as error:
        raise CommandError(f"cannot write {shown}: {error.strerror or 'error'}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def run_generate(args: argparse.Namespace, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
                 stderr: IO[str] | None = None, env: Mapping[str, str] | None = None,
                 now: datetime.datetime | None = None, read_secret: SecretReader | None = None) -> int:
    """`pxsec token generate`: sign the auth config's claims; the token goes to --output or stdout."""
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    # Warnings and notes are said only once the token is made: a refusal is one line, nothing before it.
    notes = io.StringIO()
    try:
        if args.output is not None and not args.output:
            raise CommandError("--output needs a file name (leave it out to print the token)")
        if args.shared_secret_file == "-" and args.auth_config == "-":
            raise CommandError("--auth-config and --shared-secret-file cannot both read stdin")
        issuer: str = args.issuer
        if not issuer or "http://" in issuer or "https://" in issuer:
            raise CommandError("--issuer must be a plain name such as operator.portworx.io: self-signed issuers "
                               "must not contain http:// or https://")
        try:
            lifetime = tokens.parse_lifetime(args.token_duration)
        except ValueError:  # its words quote the value, which may be a secret typed in the wrong place
            raise CommandError("--token-duration: use one positive whole number and one unit, s, m, h, d or y "
                               "(365 days), at most 100 years, e.g. 24h, 7d, 1y") from None
        config = _auth_config(args.auth_config, stdin)
        ring, kind = _signing_ring(args, stdin, notes, env if env is not None else os.environ,
                                   read_secret or _read_cluster_secret)
        for warning in _key_warnings(ring, kind):
            print(cliread.printable(f"pxsec token generate: warning: {warning}"), file=notes)
        if not config["sub"]:
            config["sub"] = derived_subject(config["name"], config["email"])
            print("pxsec token generate: note: no sub in the auth config, so it is derived as OpenStorage's token "
                  "generator derives it (cmd/osd-token-generator): base64 of \"openstorage.io/<name>/<email>\"",
                  file=notes)
        issued = now or datetime.datetime.now(datetime.UTC)
        seconds = int(issued.timestamp())
        claims = {
            "iss": issuer, **config,
            "iat": seconds - int(tokens.CLOCK_SKEW.total_seconds()),
            "exp": seconds + int(lifetime.total_seconds()),
        }
        try:
            token, algorithm = tokens.sign_claims(claims, kind, ring)
        except (tokens.SigningError, tokens.NoSigningKey) as error:
            raise CommandError(str(error)) from None
    except CommandError as error:
        print(cliread.printable(f"pxsec token generate: error: {error}"), file=err)
        return EXIT_ERROR
    if args.output is not None:
        try:
            _write_private(args.output, token)
        except CommandError as error:
            print(cliread.printable(f"pxsec token generate: error: {error}"), file=err)
            return EXIT_ERROR
    err.write(notes.getvalue())
    if args.output is not None:
        expires = datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(cliread.printable(f"wrote a {algorithm} token for {config['sub']} (issuer {issuer}, expires {expires}) "
                                f"to {args.output}"),
              file=err)
    else:
        print(token, file=out)
    return EXIT_OK


# -- verify -------------------------------------------------------------------------------------------


def _printable(value: str) -> str:
    """Claims are attacker-controlled: never let one put escape sequences on a terminal."""
    return value if value.isprintable() else json.dumps(value)


def _print_verdict(verdict: Verdict, spec: PxSecuritySpec, out: IO[str]) -> None:
    if not verdict.accepted:
        print(cliread.printable(f"rejected: {verdict.reason}"), file=out)
        return
    # "accepted by Portworx: the ... issuer ... verified the ALG signature ..."
    print(cliread.printable(verdict.reason), file=out)
    print(f"source: {verdict.source}", file=out)
    print(f"issuer: {_printable(verdict.issuer or '')}", file=out)
    print(f"username ({spec.username_claim}): {_printable(verdict.username or '')}", file=out)
    print(f"roles: {', '.join(_printable(r) for r in verdict.roles) or '(none: every call is denied)'}", file=out)
    groups = ", ".join(_printable(g) for g in verdict.groups) or "(none)"
    print(f"groups: {groups}{' (all groups)' if '*' in verdict.groups else ''}", file=out)
    for warning in verdict.warnings:
        print(cliread.printable(f"warning: {warning}"), file=out)


def _as_portworx_receives_it(loaded: cliread.Loaded, namespace: str, err: IO[str]) -> PxSecuritySpec:
    """With a spec.storageCluster: the issuer and shared-secret Secret that StorageCluster gives Portworx
    (the Portworx Operator's own, when our spec names none) — `pxsec.coexist.portworx_spec`."""
    spec = loaded.spec
    if not spec.storage_cluster.targeted:
        return spec
    name = spec.storage_cluster.name or loaded.name or ""
    view = coexist.view(name, _read_cluster_storagecluster(namespace, name))
    if not view.auth_enabled:
        return spec
    print(cliread.printable(f"pxsec token verify: note: judged as StorageCluster {namespace}/{name} configures "
                            f"Portworx (issuer {view.issuer}, shared secret in Secret {view.shared_secret})"), file=err)
    return coexist.portworx_spec(spec, view)


def run_verify(args: argparse.Namespace, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
               stderr: IO[str] | None = None, now: datetime.datetime | None = None,
               read_secret: SecretReader | None = None) -> int:
    """`pxsec token verify`: print whether Portworx configured by the file would accept the token."""
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    read = read_secret or _read_cluster_secret
    try:
        if args.token == "-" and args.file == "-":
            raise CommandError("the token and -f cannot both come from stdin")
        # Trimmed as Go's strings.TrimSpace trims (str.strip would also take U+001C-U+001F, which Go keeps);
        # what is left, even nothing, is judged as Portworx would judge it: a verdict, not a usage error.
        token = go_trim_space(_read_text("-", "token", MAX_SECRET_BYTES, stdin) if args.token == "-" else args.token)
        loaded = _load_pxsecurity(args.file, stdin)
        spec = loaded.spec
        secrets: dict[str, Mapping[str, bytes] | None] = {}
        if args.secrets_dir is not None:
            directory = Path(args.secrets_dir)
            try:
                is_dir = directory.is_dir()
            except OSError:  # a name too long to be a path (is_dir lets ENAMETOOLONG through)
                is_dir = False
            if not is_dir:
                raise CommandError("--secrets-dir: not a directory (the name given is not shown: it may be a "
                                   "secret given in the place of a directory)")
            secrets = {name: _read_dir_secret(directory, name) for name in _secret_names(spec)}
        elif args.from_cluster:
            namespace = args.namespace or loaded.namespace
            if not namespace:
                raise CommandError(f"{args.file} has no metadata.namespace; pass -n NAMESPACE with --from-cluster")
            spec = _as_portworx_receives_it(loaded, namespace, err)
            secrets = {name: read(namespace, name) for name in _secret_names(spec)}
        # judged as go-oidc decodes it
        jwks = _read_capped(args.jwks, "JWKS file", MAX_SECRET_BYTES) if args.jwks else None
    except CommandError as error:
        print(cliread.printable(f"pxsec token verify: error: {error}"), file=err)
        return EXIT_ERROR

    try:
        verdict = verify(token, spec, VerifyKeys.from_secrets(spec, secrets),
                         now or datetime.datetime.now(datetime.UTC), jwks)
    except Exception as error:  # a bug of ours must still be one line, never a traceback or a verdict
        print(f"pxsec token verify: error: cannot judge the token ({type(error).__name__}); please report it",
              file=err)
        return EXIT_ERROR
    _print_verdict(verdict, spec, out)
    if not verdict.accepted and verdict.source == "self-signed" and not secrets:
        print("pxsec token verify: note: no key material given; pass --secrets-dir DIR or --from-cluster", file=err)
    if not verdict.accepted and verdict.source == "oidc" and jwks is None:
        print("pxsec token verify: note: pass --jwks FILE (the provider's jwks_uri document) to check "
              "the signature", file=err)
    return EXIT_OK if verdict.accepted else EXIT_REJECTED


def _missing_subcommand(args: argparse.Namespace) -> int:
    print("pxsec token: error: choose a subcommand, generate or verify (see pxsec token --help)", file=sys.stderr)
    return EXIT_ERROR


# -- wiring -------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `token generate` and `token verify` to the `pxsec` command's subparsers."""
    token = subparsers.add_parser("token", help="generate and verify PX-Security tokens")
    sub = token.add_subparsers(dest="token_command", metavar="{generate,verify}", parser_class=OneLineParser)
    token.set_defaults(func=_missing_subcommand)

    gen = sub.add_parser(
        "generate", help="sign a token (flags of pxctl auth token generate)",
        description="Sign a token with a shared secret (HS256), an RSA key (RS256) or an ECDSA key "
        "(ES256/384/512 by curve). The token is written to --output (mode 0600) or stdout.")
    gen.add_argument("--auth-config", required=True, metavar="FILE",
                     help="YAML with name, email, roles, groups and optionally sub (- for stdin)")
    gen.add_argument("--issuer", required=True, help="the iss claim: spec.selfSigned.issuer, e.g. operator.portworx.io")
    keys = gen.add_mutually_exclusive_group()
    keys.add_argument("--shared-secret-file", metavar="FILE",
                      help="file holding the shared secret (- for stdin); one trailing newline is ignored")
    keys.add_argument("--rsa-private-keyfile", metavar="FILE", help="RSA private key PEM (PKCS#1 or PKCS#8)")
    keys.add_argument("--ecdsa-private-keyfile", metavar="FILE", help="ECDSA private key PEM (SEC1 or PKCS#8)")
    keys.add_argument("--from-secret", metavar="NAMESPACE/NAME",
                      help="read the key (shared-secret or private.pem) from a Secret in the cluster ($KUBECONFIG)")
    keys.add_argument("--shared-secret", metavar="SECRET",
                      help="the shared secret itself (pxctl compatibility: it ends up in your shell history; "
                      f"prefer --shared-secret-file or ${SHARED_SECRET_ENV})")
    gen.add_argument("--token-duration", default="1d", metavar="DURATION",
                     help="lifetime: one number and one unit, s m h d y (default 1d)")
    gen.add_argument("--output", "-o", metavar="FILE", help="write the token here (mode 0600) instead of stdout")
    gen.set_defaults(func=run_generate)

    ver = sub.add_parser(
        "verify", help="would Portworx accept this token? (OpenStorage's rules)",
        description="Judge a token against a PxSecurity as Portworx would: which issuer accepts it and "
        "with which roles and groups, or the precise reason it is rejected. Exit 0 accepted, 1 rejected, "
        "2 error. The token is never printed.")
    ver.add_argument("token", metavar="TOKEN", help="the token, or - to read it from stdin (keeps it out of history)")
    ver.add_argument("-f", "--file", required=True,
                     help="YAML file with a PxSecurity (the first one), read as pxsec validate reads it")
    source = ver.add_mutually_exclusive_group()
    source.add_argument("--secrets-dir", metavar="DIR", help="key material as DIR/<secretName>/<key>")
    source.add_argument("--from-cluster", action="store_true",
                        help="read the key Secrets from the cluster ($KUBECONFIG), in the CR's namespace")
    ver.add_argument("-n", "--namespace", type=namespace_name,
                     help="namespace for --from-cluster (default: the CR's metadata.namespace)")
    ver.add_argument("--jwks", metavar="FILE", help="the OIDC provider's JWKS (JSON), to check OIDC signatures")
    ver.set_defaults(func=run_verify)
