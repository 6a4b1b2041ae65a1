"""Judge a token the way Portworx (OpenStorage `pkg/auth`) judges it, and say precisely why not.

People debug PX-Security by pasting tokens into jwt.io, which answers "signature verified" for tokens
Portworx still rejects (wrong `iss` by a trailing slash, `iat` two seconds in the future, the shared
secret base64-decoded, ES256 on a P-384 key), and a Python JWT library disagrees with Portworx's Go
libraries on hostile tokens. This module follows OpenStorage's path step by step, with each library's
own reading of the bytes (`pxsec.gojson`), and is checked against the real libraries
(golang-jwt/jwt/v4 v4.3.0, coreos/go-oidc v2.2.1) by the differential tests in `tests/interop`:

1. **Routing** (`pkg/auth/token.go` TokenIssuer): the claims segment is base64url-decoded and decoded
   with Go's encoding/json into OpenStorage's `Claims` struct — names matched case-insensitively, the
   last spelling winning, so `"ISS"` after `"iss"` picks the issuer. An empty iss, or a claims segment
   that is not that shape (`"roles": "admin"`), is rejected here, before any signature. One
   authenticator per exact issuer: `spec.selfSigned.issuer`, the apps issuer `apps.portworx.io` (Stork's
   tokens, checked with the system Secret's `apps-secret`, `PORTWORX_AUTH_SYSTEM_APPS_KEY`) and
   `spec.oidc.issuer`; any other issuer is "not trusted".
2. **Self-signed** (`pkg/auth/selfsigned.go`, golang-jwt v4.3.0): the public keys are parsed when
   Portworx starts — one that does not parse leaves the issuer without an authenticator; `jwt.Parse`
   needs exactly three segments (RawURLEncoding: `=` padding is illegal), JSON header and claims (a
   number beyond float64 anywhere is an error), an `alg` golang-jwt knows; the alg prefix picks the key
   (`HS*` the shared secret's bytes, `RS*` RSA, `ES*` ECDSA; `none`, `PS*` and the rest are "Unknown
   token algorithm"); `crit` is ignored. The library's time checks on the claims map, with no leeway:
   `exp` 0 means *no expiry*, otherwise `now < exp`; `iat` and `nbf` 0 are skipped, otherwise `<= now`;
   a value that is not a number fails its check; fractions are truncated; a value beyond Go's time range
   wraps (exp 1e30 is long past). A bad signature (or a missing key) is reported before the clock. Then
   `iss, sub, exp, iat, name, email` must be present (exact names), and the username claim of the
   decoded `Claims` non-empty.
3. **OIDC** (`pkg/auth/oidc.go`, go-oidc v2.2.1 over go-jose v2): go-jose parses the token (whitespace
   stripped; a repeated header name, a bad `x5c` or `jwk`, a non-string `kid` are errors); go-oidc
   decodes its own claim struct (case-insensitive too: `exp` may even be a numeric string), checks the
   audience, `exp < now` (no leeway, no truncation of the clock), `nbf` with one minute of leeway, and
   never `iat`; the alg must be one the provider advertises (RS/ES/PS only, RS256 if none); the key set
   is decoded as a whole (one junk entry makes every signature fail) and each key with the token's kid
   (or every key, without one) is tried; `crit` other than `b64` fails. Then OpenStorage requires the
   same claims, moves `namespace + "roles"` / `+ "groups"` to the top, re-encodes (names sorted) and
   decodes into `Claims`, and requires the username claim.

`Verdict.cause` names the first step that failed, in the vocabulary the differential tests share with
the Go checker; `Verdict.warnings` says why an accepted token is dangerous (it never expires, its claim
names are spelled twice, ...). Everything is pure: the clock is a parameter, keys are bytes, nothing
logs, and no input makes `verify` raise. Reasons name claims, issuers, algorithms and Secrets, never a
token or a key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pxsec import gojson, gopem, gorsa
from pxsec.gojson import JSONNumber, JSONObject, JSONValue
from pxsec.keymaterial import ALGORITHM_CURVE as _ALGORITHM_CURVE
from pxsec.keymaterial import CURVE_ALGORITHM, SEC_TO_JOSE, PublicKey, load_public_key
from pxsec.spec import KEY_APPS_SECRET, KEY_PRIVATE_PEM, KEY_PUBLIC_PEM, KEY_SHARED_SECRET, PxSecuritySpec

# What verification takes: what cryptography loads, or the numbers of an RSA key only Go reads.
AnyPublicKey = PublicKey | gorsa.GoRSAKey

SELF_SIGNED: Final = "self-signed"
OIDC: Final = "oidc"
# Stork's (and the Portworx apps') issuer, verified with PORTWORX_AUTH_SYSTEM_APPS_KEY (facts 1a).
APPS_ISSUER: Final = "apps.portworx.io"

# Verdict.cause: the first step of OpenStorage's path that failed (shared with tests/interop/main.go).
ACCEPTED: Final = "accepted"
CAUSE_MALFORMED: Final = "malformed"
CAUSE_CLAIMS: Final = "claims"
CAUSE_NO_ISSUER: Final = "no-issuer"
CAUSE_UNTRUSTED_ISSUER: Final = "untrusted-issuer"
CAUSE_CONFIG: Final = "config"
CAUSE_ALG: Final = "alg"
CAUSE_NO_KEY: Final = "no-key"
CAUSE_SIGNATURE: Final = "signature"
CAUSE_JWKS: Final = "jwks"
CAUSE_EXP: Final = "exp"
CAUSE_IAT: Final = "iat"
CAUSE_NBF: Final = "nbf"
CAUSE_AUDIENCE: Final = "audience"
CAUSE_REQUIRED_CLAIM: Final = "required-claim"
CAUSE_USERNAME: Final = "username"
CAUSE_UNCHECKED: Final = "unchecked"  # pxsec only: no JWKS was given, so the signature was not checked

# OpenStorage's `requiredClaims`, in its order: checked for presence, for both sources.
REQUIRED_CLAIMS: Final = ("iss", "sub", "exp", "iat", "name", "email")
CLAIM_FIELDS: Final = ("iss", "sub", "name", "email", "roles", "groups")  # pkg/auth/claims.go Claims
HS_ALGORITHMS: Final = ("HS256", "HS384", "HS512")
RS_ALGORITHMS: Final = ("RS256", "RS384", "RS512")
ES_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
PS_ALGORITHMS: Final = ("PS256", "PS384", "PS512")
SELF_SIGNED_ALGORITHMS: Final = HS_ALGORITHMS + RS_ALGORITHMS + ES_ALGORITHMS
OIDC_ALGORITHMS: Final = RS_ALGORITHMS + ES_ALGORITHMS + PS_ALGORITHMS
# Every alg golang-jwt v4.3.0 registers (GetSigningMethod); anything else is "unavailable".
GOLANG_JWT_ALGORITHMS: Final = SELF_SIGNED_ALGORITHMS + PS_ALGORITHMS + ("EdDSA", "none")
# ES256 pairs with P-256 and so on: golang-jwt and go-jose reject a signature of the wrong size.
ALGORITHM_CURVE: Final = _ALGORITHM_CURVE  # alg -> curve (also oidc's)
# go-oidc tolerates an `nbf` up to one minute ahead of the clock (and checks no `iat` at all).
OIDC_NBF_LEEWAY: Final = 60
# An accepted token valid for longer than this is worth a warning: a leaked one stays useful that long.
LONG_LIFETIME: Final = 366 * 86400

_HASHES: Final[Mapping[str, Callable[[], hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_ES_SIZE: Final = {"ES256": 32, "ES384": 48, "ES512": 66}
_SHOWN_MAX = 80
_JOSE_CURVES: Final = SEC_TO_JOSE



class MalformedToken(ValueError):
    """The text is not a compact JWS with JSON header and claims. The message never quotes the token."""


@dataclass(frozen=True)
class Decoded:
    """The unverified parts of a token: enough to route it and to explain a rejection."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


@dataclass(frozen=True)
class VerifyKeys:
    """The verification half of the self-signed key material, as Portworx is given it.

    `shared_secret` is the Secret's value as stored (its bytes are the HMAC key, newline and all); the
    PEMs are PKIX public keys or X.509 certificates; `apps_secret` is the system Secret's `apps-secret`
    (the key of issuer apps.portworx.io). Only kinds configured in `spec.selfSigned` are used, as
    Portworx only receives those.
    """

    shared_secret: bytes | None = field(default=None, repr=False)
    rsa_public_pem: bytes | None = None
    ecdsa_public_pem: bytes | None = None
    apps_secret: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_secrets(cls, spec: PxSecuritySpec, secrets: Mapping[str, Mapping[str, bytes] | None]) -> VerifyKeys:
        """Pick the keys out of Secret data (Secret name -> key -> bytes), by the names in the spec.

        A key pair Secret without `public.pem` gets the public half derived from `private.pem`: the
        operator always adds exactly that, so it is what Portworx will mount.
        """
        apps = (secrets.get(spec.system_secret) or {}).get(KEY_APPS_SECRET)
        ss = spec.self_signed
        if ss is None:
            return cls(apps_secret=apps)
        shared = (secrets.get(ss.shared_secret) or {}).get(KEY_SHARED_SECRET) if ss.shared_secret else None
        rsa_pem = _public_half(secrets.get(ss.rsa.secret_name)) if ss.rsa else None
        ecdsa_pem = _public_half(secrets.get(ss.ecdsa.secret_name)) if ss.ecdsa else None
        return cls(shared_secret=shared, rsa_public_pem=rsa_pem, ecdsa_public_pem=ecdsa_pem, apps_secret=apps)


@dataclass(frozen=True)
class Verdict:
    """What Portworx would do with a token: `accepted`, by which source, as whom, and why (not).

    `cause` is the first failing step (`ACCEPTED` when accepted); `warnings` say why a token Portworx
    accepts is dangerous all the same.
    """

    accepted: bool
    source: str | None  # "self-signed" | "oidc" | None (no authenticator for this iss)
    issuer: str | None
    algorithm: str | None
    username: str | None
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    reason: str
    cause: str = ACCEPTED
    warnings: tuple[str, ...] = ()


def _public_half(data: Mapping[str, bytes] | None) -> bytes | None:
    if not data:
        return None
    if KEY_PUBLIC_PEM in data:
        return data[KEY_PUBLIC_PEM]
    private = data.get(KEY_PRIVATE_PEM)
    if private is None:
        return None
    try:
        key = serialization.load_pem_private_key(private, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- unverified parsing (for the operator's own bookkeeping) -----------------------------------------


def to_python(value: JSONValue) -> Any:
    """A JSON value as plain Python (dict with the last of repeated names, int/float numbers), without
    recursion. A number beyond float64 becomes an infinite float."""
    def scalar(item: JSONValue) -> Any:
        if isinstance(item, JSONNumber):
            text = item.text
            # An integer of more digits than int64 has is no int Go would read: as a float (Python's
            # int() also refuses more than 4,300 digits).
            whole = re.fullmatch(r"-?[0-9]+", text) is not None and len(text) <= 20
            return int(text) if whole else float(text)
        return item

    if not isinstance(value, JSONObject | list):
        return scalar(value)
    root: Any = {} if isinstance(value, JSONObject) else []
    todo: list[tuple[JSONValue, Any]] = [(value, root)]
    while todo:
        source, target = todo.pop()
        pairs: Sequence[tuple[Any, JSONValue]] = (
            source.members if isinstance(source, JSONObject)
            else list(enumerate(source)) if isinstance(source, list) else ())
        for key, item in pairs:
            if isinstance(item, JSONObject | list):
                child: Any = {} if isinstance(item, JSONObject) else []
                todo.append((item, child))
                converted: Any = child
            else:
                converted = scalar(item)
            if isinstance(target, dict):
                target[key] = converted
            else:
                target.append(converted)
    return root


def _segment_json(segment: str, what: str) -> JSONValue:
    raw = gojson.b64url(segment)
    if raw is None:
        raise MalformedToken(f"not a JWT: the {what} is not base64url")
    try:
        return gojson.parse(raw)
    except gojson.GoJSONError:
        raise MalformedToken(f"not a JWT: the {what} is not base64url-encoded JSON") from None


def decode_unverified(token: str) -> Decoded:
    """Header and claims of a compact JWS, without checking anything, read as Go reads them (invalid
    UTF-8 tolerated, the last of repeated names). Raises MalformedToken."""
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken(f"not a JWT: expected 3 dot-separated parts, found {len(parts)}")
    header, body = _segment_json(parts[0], "header"), _segment_json(parts[1], "claims segment")
    if not isinstance(header, JSONObject):
        raise MalformedToken("not a JWT: the header is not a JSON object")
    if not isinstance(body, JSONObject):
        raise MalformedToken("not a JWT: the claims segment is not a JSON object")
    return Decoded(header=to_python(header), claims=to_python(body))


def show(value: object) -> str:
    """A claim value fit for a message: quoted, one line, and short (claims are attacker-controlled)."""
    if isinstance(value, JSONNumber):
        text = value.text
    elif isinstance(value, JSONObject):
        text = "{...}"
    elif isinstance(value, list):
        text = "[" + ", ".join(show(v) for v in value[:5]) + (", ...]" if len(value) > 5 else "]")
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=True)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


# -- keys and signatures -----------------------------------------------------------------------------




def curve_name(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The JOSE name of a key's curve (P-256, ...), or the library's name for curves JOSE lacks."""
    return _JOSE_CURVES.get(key.curve.name, key.curve.name)


def _rsa_numbers(key: object) -> gorsa.GoRSAKey | None:
    if isinstance(key, gorsa.GoRSAKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return gorsa.GoRSAKey(numbers.n, numbers.e)
    return None


def _check_signature(signing_input: bytes, signature: bytes, alg: str, key: bytes | AnyPublicKey) -> bool:
    """Go's verification of `alg` over `signing_input`: HMAC compare; RSA PKCS#1 v1.5 exactly as Go's
    crypto/rsa checks and computes it (`pxsec.gorsa`: not OpenSSL, which differs on exponents and sizes);
    PSS (salt length auto) with a signature of exactly the modulus size and a key of at least 1024 bits;
    ECDSA with r||s of exactly twice the alg's size."""
    digest = _HASHES.get(alg[2:])
    if digest is None:
        return False
    try:
        if alg in HS_ALGORITHMS:
            if not isinstance(key, bytes):
                return False
            expected = hmac.new(key, signing_input, getattr(hashlib, f"sha{alg[2:]}")).digest()
            return hmac.compare_digest(expected, signature)
        if alg in RS_ALGORITHMS:
            numbers = _rsa_numbers(key)
            return numbers is not None and gorsa.verify_pkcs1v15(numbers, alg[2:], signing_input, signature)
        if alg in PS_ALGORITHMS:
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 1024:
                return False
            if len(signature) != (key.key_size + 7) // 8:
                return False
            key.verify(signature, signing_input, padding.PSS(mgf=padding.MGF1(digest()), salt_length=padding.PSS.AUTO),
                       digest())
            return True
        if alg in ES_ALGORITHMS:
            size = _ES_SIZE[alg]
            if not isinstance(key, ec.EllipticCurvePublicKey) or len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            if r == 0 or s == 0:
                return False
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest()))
            return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return False


def signature_verifies(token: str, algorithm: str, key: bytes | AnyPublicKey) -> bool:
    """Whether the JWS signature of `token` verifies under `key` with exactly `algorithm` (golang-jwt's
    way: over the token's own first two segments)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    signature = gojson.b64url(parts[2])
    if signature is None:
        return False
    return _check_signature(f"{parts[0]}.{parts[1]}".encode(), signature, algorithm, key)


# -- time, as golang-jwt and go-oidc read it ---------------------------------------------------------


def _unix(now: datetime.datetime) -> tuple[int, int]:
    """(seconds, nanoseconds) of an aware datetime, seconds rounded down as Go's Unix() does."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    delta = now - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, rest = divmod(micros, 1_000_000)
    return seconds, rest * 1000


def _numeric_date(value: float) -> int:
    """golang-jwt's newNumericDateFromSeconds, truncated to seconds, as Go's internal seconds (since
    year 1): fractions dropped toward the past, int64 overflow as amd64 converts and Go's `+` wraps."""
    whole = float(math.trunc(value)) if math.isfinite(value) else value
    seconds = gojson.int64_of_float(whole)
    fraction = value - whole if math.isfinite(value) else 0.0
    if math.trunc(fraction * 1e9) < 0:
        seconds -= 1  # time.Unix normalises a negative nanosecond part into the previous second
    return gojson.wrap64(seconds + gojson.UNIX_TO_INTERNAL)


def _internal_to_unix(internal: int) -> int:
    return internal - gojson.UNIX_TO_INTERNAL


def _when(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} (beyond any calendar date)"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(seconds: float) -> str:
    """A rough, readable duration: 2s, 5m, 3h, 12d, 40y."""
    whole = max(0, math.ceil(seconds)) if math.isfinite(seconds) else 0
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= 2 * size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _beyond_go_time(value: JSONValue, internal: int) -> bool:
    """Whether Go's conversion of a time claim overflowed (int64, or the year-1 epoch Go counts from)."""
    unix = _internal_to_unix(internal)
    number = float(value.text) if isinstance(value, JSONNumber) else float(unix)
    return not -62135596800 <= unix <= 253402300799 or abs(number - unix) > 1


def _expired_text(value: JSONValue, at: int, now_internal: int, leeway: str) -> str:
    if _beyond_go_time(value, at):
        return (f"exp {show(value)} is beyond what Go's time can hold: the conversion overflows to a moment "
                "long past, so the token counts as expired")
    truncated = ""
    if isinstance(value, JSONNumber) and not float(value.text).is_integer():
        truncated = f"; Go reads exp {value.text} as whole seconds"
    return f"token expired at {_when(_internal_to_unix(at))} ({_ago(now_internal - at)} ago{leeway}{truncated})"


def _self_signed_times(claims: Mapping[str, JSONValue], now: int) -> list[tuple[str, str]]:
    """golang-jwt v4.3.0 MapClaims.Valid at `now` (whole seconds): (cause, problem) in exp, iat, nbf order."""
    now_internal = now + gojson.UNIX_TO_INTERNAL
    problems: list[tuple[str, str]] = []
    for name, cause in (("exp", CAUSE_EXP), ("iat", CAUSE_IAT), ("nbf", CAUSE_NBF)):
        if name not in claims:
            continue
        value = claims[name]
        if not isinstance(value, JSONNumber):
            effect = {"exp": "as expired", "iat": "as issued in the future", "nbf": "as not valid yet"}[name]
            problems.append((cause, f"{name} must be a number of seconds since 1970, got {show(value)}: "
                                    f"golang-jwt treats it {effect}"))
            continue
        number = float(value.text)
        if number == 0:
            continue  # golang-jwt: 0 is "unset"
        at = _numeric_date(number)
        if name == "exp" and not now_internal < at:
            problems.append((cause, _expired_text(value, at, now_internal, "; no leeway")))
        elif name == "iat" and not now_internal >= at:
            problems.append((cause, f"iat {_when(_internal_to_unix(at))} is {_ago(at - now_internal)} in the "
                                    "future: OpenStorage allows no leeway (backdate iat or fix the clock of the "
                                    "machine that signed it)"))
        elif name == "nbf" and not now_internal >= at:
            problems.append((cause, f"token is not valid before {_when(_internal_to_unix(at))} (nbf; no leeway)"))
    return problems


# -- the claims as OpenStorage decodes them ----------------------------------------------------------


@dataclass(frozen=True)
class _Claims:
    """pkg/auth/claims.go Claims as encoding/json fills it, and which member names it was filled from."""

    values: Mapping[str, str]
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    spelled: Mapping[str, list[str]]

    def text(self, name: str) -> str:
        return self.values.get(name, "")


def _decode_claims(members: Sequence[tuple[str, JSONValue]]) -> _Claims:
    """Raises GoJSONTypeError as json.Unmarshal into Claims would."""
    strings: dict[str, str] = {}
    slices: dict[str, gojson.GoSlice] = {}
    fields: dict[str, gojson.FieldDecoder] = {name: gojson.decode_string(strings, name)
                                              for name in ("iss", "sub", "name", "email")}
    fields.update({name: gojson.decode_strings(slices, name) for name in ("roles", "groups")})
    spelled = gojson.decode_struct(members, fields)
    return _Claims(strings, slices.get("roles", gojson.GoSlice()).values(),
                   slices.get("groups", gojson.GoSlice()).values(), spelled)


def _claims_problem(error: gojson.GoJSONTypeError, members: Sequence[tuple[str, JSONValue]]) -> str:
    """Say which claim has the wrong shape, in OpenStorage's terms."""
    for name, value in members:
        target = next((f for f in CLAIM_FIELDS if gojson.matches(name, f)), None)
        if target is None:
            continue
        spelled = f"{target} (spelled {json.dumps(name)})" if name != target else target
        if target in ("roles", "groups"):
            if value is not None and (not isinstance(value, list)
                                      or any(v is not None and not isinstance(v, str) for v in value)):
                return (f"{spelled} must be an array of strings, got {show(value)} (OpenStorage decodes the claims "
                        "into its Claims struct and rejects the token)")
        elif value is not None and not isinstance(value, str):
            return (f"{spelled} must be a string, got {show(value)} (OpenStorage decodes the claims into its "
                    "Claims struct and rejects the token)")
    return f"the claims do not fit OpenStorage's Claims struct ({error})"


def _shadow_warnings(spelled: Mapping[str, list[str]]) -> list[str]:
    out = []
    for name in CLAIM_FIELDS:
        names = spelled.get(name, [])
        if names and set(names) == {name} and len(names) > 1:
            out.append(f"the claims hold {name} {len(names)} times: Portworx uses the last one; other tools may "
                       "read the first, and an auditor reading the token may under-state what it can do")
        elif len(names) > 1 or (names and names[0] != name):
            listing = ", ".join(json.dumps(n) for n in names)
            out.append(f"the claims spell {name} as {listing}: Portworx (Go's encoding/json) matches claim names "
                       f"case-insensitively and uses the last, {json.dumps(names[-1])}; other tools may read "
                       "another one, and an auditor reading the token may under-state what it can do")
    return out


def _username_problem(claim: str, claims: _Claims) -> str | None:
    if claims.text(claim) == "":
        return f"usernameClaim is {claim}, so the token's {claim} must not be empty"
    return None


def _missing_required(names: Mapping[str, JSONValue] | set[str]) -> str | None:
    missing = [name for name in REQUIRED_CLAIMS if name not in names]
    if not missing:
        return None
    return (f"required claim{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
            f"(OpenStorage requires {', '.join(REQUIRED_CLAIMS)}; names are matched exactly)")


# -- routing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Routed:
    parts: list[str]
    body: JSONObject
    claims: _Claims


def _route(token: str) -> _Routed | tuple[str, str]:
    """pkg/auth/token.go TokenIssuer: the claims decoded into Claims; (cause, reason) when it fails."""
    parts = token.split(".")
    if len(parts) < 3:
        return CAUSE_MALFORMED, f"not a JWT: expected 3 dot-separated parts, found {len(parts)}"
    raw = gojson.b64url(parts[1])
    if raw is None:
        return CAUSE_MALFORMED, "not a JWT: the claims segment is not base64url" + _b64_hint(parts[1])
    try:
        body = gojson.parse(raw)
    except gojson.GoJSONError as error:
        return CAUSE_MALFORMED, f"not a JWT: the claims segment is not JSON as Go reads it ({error})" + _json_hint(raw)
    if body is None:
        return CAUSE_MALFORMED, "not a JWT: the claims segment is null"
    if not isinstance(body, JSONObject):
        return CAUSE_CLAIMS, f"the claims segment is a JSON {gojson.kind(body)}, not an object"
    try:
        claims = _decode_claims(body.members)
    except gojson.GoJSONTypeError as error:
        return CAUSE_CLAIMS, _claims_problem(error, body.members)
    if claims.text("iss") == "":
        return CAUSE_NO_ISSUER, "the token has no iss claim, so no authenticator can be picked"
    return _Routed(parts, body, claims)


def _b64_hint(segment: str) -> str:
    if "=" in segment:
        return " ('=' padding: JWTs use unpadded base64url, and Go's decoder rejects padding)"
    if "+" in segment or "/" in segment:
        return " ('+' or '/': that is standard base64, not base64url)"
    return ""


def _json_hint(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return ": it starts with a byte-order mark"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and (raw[0] == 0 or raw[1] == 0)):
        return ": it is UTF-16 or UTF-32, and Go reads only UTF-8"
    return ""


# -- self-signed authenticators ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    material: bytes | AnyPublicKey
    described: str  # "the shared secret (Secret px-shared-secret)"


@dataclass(frozen=True)
class _SelfSigned:
    """One JwtAuthenticator: its keys by kind (None: not configured), or why Portworx cannot build it."""

    issuer: str
    label: str  # "the self-signed issuer" / "the apps issuer"
    keys: Mapping[str, _Key | None]  # "HS" | "RS" | "ES"
    absent: Mapping[str, str]  # why a kind has no key: not configured, or not provided to pxsec
    config_problem: str | None = None


def _self_signed_auth(spec: PxSecuritySpec, keys: VerifyKeys) -> _SelfSigned | None:
    ss = spec.self_signed
    if ss is None:
        return None
    iss = show(ss.issuer)
    found: dict[str, _Key | None] = {"HS": None, "RS": None, "ES": None}
    absent: dict[str, str] = {}
    if not ss.shared_secret:
        absent["HS"] = f"issuer {iss} has no shared secret (spec.selfSigned.sharedSecret is not set)"
    elif not keys.shared_secret:
        absent["HS"] = (f"issuer {iss} uses the shared secret in Secret {ss.shared_secret}, "
                        "but its value was not provided")
    else:
        found["HS"] = _Key(keys.shared_secret, f"the shared secret (Secret {ss.shared_secret})")
    problem = None
    for prefix, kind, configured, pem in (("RS", "RSA", ss.rsa, keys.rsa_public_pem),
                                          ("ES", "ECDSA", ss.ecdsa, keys.ecdsa_public_pem)):
        field_name = "rsa" if kind == "RSA" else "ecdsa"
        if configured is None:
            absent[prefix] = f"issuer {iss} has no {kind} key (spec.selfSigned.{field_name} is not set)"
            continue
        if not pem:
            absent[prefix] = (f"issuer {iss} uses the {kind} key in Secret {configured.secret_name}, "
                              "but its public key was not provided")
            continue
        key: AnyPublicKey | str = load_public_key(pem)
        if isinstance(key, str) and kind == "RSA":  # a key Go's x509 parses and OpenSSL will not load
            der = gopem.decode(pem)
            key = (gorsa.parse_pkix(der.bytes) if der is not None else None) or key
        wrong_type = (kind == "RSA" and not isinstance(key, rsa.RSAPublicKey | gorsa.GoRSAKey)) or (
            kind == "ECDSA" and not isinstance(key, ec.EllipticCurvePublicKey))
        if isinstance(key, str) or wrong_type:
            why = key if isinstance(key, str) else f"is not an {kind} key"
            problem = problem or (f"Portworx cannot start the authenticator of issuer {iss}: the {kind} public key "
                                  f"(Secret {configured.secret_name}) {why}, and golang-jwt parses it at start")
            continue
        assert not isinstance(key, str)
        found[prefix] = _Key(key, f"the {kind} key (Secret {configured.secret_name})")
    return _SelfSigned(ss.issuer, "the self-signed issuer", found, absent, problem)


def _apps_auth(keys: VerifyKeys) -> _SelfSigned | None:
    if not keys.apps_secret:
        return None
    why = f"issuer {show(APPS_ISSUER)} verifies only HS tokens (PORTWORX_AUTH_SYSTEM_APPS_KEY)"
    return _SelfSigned(APPS_ISSUER, "the apps issuer (Stork's tokens)",
                       {"HS": _Key(keys.apps_secret, "the apps key (the system Secret's apps-secret)"),
                        "RS": None, "ES": None}, {"RS": why, "ES": why})


def _hs_hint(signing_input: bytes, signature: bytes, alg: str, secret: bytes) -> str:
    """Why an HS signature made with almost this secret fails: newline, or base64-decoded."""
    if secret.endswith(b"\n") and _check_signature(signing_input, signature, alg, secret.rstrip(b"\r\n")):
        return (": the Secret's value ends with a newline and the token was signed without it; Portworx uses the "
                "value as it is, newline included (recreate the Secret without it, e.g. with printf, not echo)")
    if _check_signature(signing_input, signature, alg, secret + b"\n"):
        return (": the token was signed with a trailing newline that the Secret's value does not have (a "
                "secret file written by echo?)")
    try:
        decoded = base64.b64decode(secret + b"=" * (-len(secret) % 4), validate=True)
    except (binascii.Error, ValueError):
        return ""
    if decoded and _check_signature(signing_input, signature, alg, decoded):
        return (": it was signed with the base64-decoded secret, but Portworx uses the secret's ASCII bytes "
                "as the HMAC key")
    return ""


def _alg_problem(alg: JSONValue) -> str | None:
    """golang-jwt's lookup of the header's alg, then OpenStorage's prefix rule."""
    if not isinstance(alg, str):
        return ("the token header has no alg" if alg is None
                else f"alg must be a string, got {show(alg)} (golang-jwt: signing method (alg) is unspecified)")
    if alg not in GOLANG_JWT_ALGORITHMS:
        return f"alg {show(alg)} is not an algorithm golang-jwt knows (names are case-sensitive)"
    if alg == "none":
        return "alg none (an unsigned token) is never accepted"
    if alg in PS_ALGORITHMS:
        return (f"token is {alg}, which self-signed issuers do not accept: the alg prefix picks the key and only "
                "HS (shared secret), RS (RSA) and ES (ECDSA) exist")
    if alg[:2] not in ("HS", "RS", "ES"):
        return f"alg {show(alg)} is not accepted for self-signed tokens ({', '.join(SELF_SIGNED_ALGORITHMS)})"
    return None


def _curve_hint(alg: str, key: AnyPublicKey) -> str:
    """Why an RS or ES signature cannot verify with this key whatever it signs: a curve that does not go
    with the alg, or an RSA key under Go's minimum."""
    numbers = _rsa_numbers(key)
    refused = gorsa.check(numbers) if numbers is not None else None
    if refused is not None:
        return f": the key cannot verify anything in Portworx: {refused}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        have, want = curve_name(key), ALGORITHM_CURVE[alg]
        if have != want:
            return (f": the key is on {have} ({alg} needs {want}; a {have} key signs "
                    f"{CURVE_ALGORITHM.get(have, 'nothing JOSE knows')})")
    return ""


def _judge_self_signed(token: str, routed: _Routed, auth: _SelfSigned, spec: PxSecuritySpec,
                       now: tuple[int, int]) -> Verdict:
    iss = auth.issuer

    def reject(cause: str, reason: str, alg: str | None = None) -> Verdict:
        return Verdict(False, SELF_SIGNED, iss, alg, None, (), (), reason, cause)

    if auth.config_problem:
        return reject(CAUSE_CONFIG, auth.config_problem)
    parts = routed.parts
    if len(parts) != 3:
        return reject(CAUSE_MALFORMED, f"not a JWT: expected 3 dot-separated parts, found {len(parts)} "
                                       "(golang-jwt: token contains an invalid number of segments)")
    header_raw = gojson.b64url(parts[0])
    if header_raw is None:
        return reject(CAUSE_MALFORMED, "not a JWT: the header is not base64url" + _b64_hint(parts[0]))
    try:
        header = gojson.parse(header_raw)
    except gojson.GoJSONError as error:
        return reject(CAUSE_MALFORMED, f"not a JWT: the header is not JSON as Go reads it ({error})"
                      + _json_hint(header_raw))
    if header is not None and not isinstance(header, JSONObject):
        return reject(CAUSE_MALFORMED, f"not a JWT: the header is a JSON {gojson.kind(header)}, not an object")
    for what, value in (("header", header), ("claims", routed.body)):
        try:
            gojson.check_numbers(value)
        except gojson.GoJSONTypeError:
            return reject(CAUSE_MALFORMED, f"the token's {what} hold a number beyond float64's range, which "
                                           "golang-jwt cannot decode")
    fields = header.last() if isinstance(header, JSONObject) else {}
    alg_value = fields.get("alg")
    problem = _alg_problem(alg_value)
    if problem:
        return reject(CAUSE_ALG, problem, alg_value if isinstance(alg_value, str) else None)
    assert isinstance(alg_value, str)
    alg = alg_value
    claims_map = routed.body.last()
    times = _self_signed_times(claims_map, now[0])

    prefix = alg[:2]
    key = auth.keys.get(prefix)
    signature = gojson.b64url(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    # golang-jwt checks the key type first for HS, the signature's encoding first for RS and ES.
    if prefix == "HS" and key is None:
        return reject(CAUSE_NO_KEY, f"token is {alg} but {auth.absent.get(prefix, 'there is no key')}", alg)
    if signature is None:
        return reject(CAUSE_SIGNATURE, "the signature segment is not base64url" + _b64_hint(parts[2]), alg)
    if key is None:
        return reject(CAUSE_NO_KEY, f"token is {alg} but {auth.absent.get(prefix, 'there is no key')}", alg)
    if not _check_signature(signing_input, signature, alg, key.material):
        hint = (_hs_hint(signing_input, signature, alg, key.material) if isinstance(key.material, bytes)
                else _curve_hint(alg, key.material))
        return reject(CAUSE_SIGNATURE, f"the {alg} signature does not verify with {key.described}{hint}", alg)
    if times:
        return reject(times[0][0], "; ".join(problem for _, problem in times), alg)
    missing = _missing_required(claims_map)
    if missing:
        return reject(CAUSE_REQUIRED_CLAIM, missing, alg)
    claims = routed.claims
    username_problem = _username_problem(spec.username_claim, claims)
    if username_problem:
        return reject(CAUSE_USERNAME, username_problem, alg)
    warnings = _shadow_warnings(claims.spelled) + _self_signed_warnings(claims_map, fields, now[0])
    return Verdict(True, SELF_SIGNED, iss, alg, claims.text(spec.username_claim), claims.roles, claims.groups,
                   f"accepted by Portworx: {auth.label} {show(iss)} verified the {alg} signature with "
                   f"{key.described}", ACCEPTED, tuple(warnings))


def _self_signed_warnings(claims: Mapping[str, JSONValue], header: Mapping[str, JSONValue], now: int) -> list[str]:
    out = []
    exp = claims.get("exp")
    if isinstance(exp, JSONNumber):
        number = float(exp.text)
        if number == 0:
            out.append("exp is 0, which golang-jwt reads as \"no expiry\": this token never expires, and a leaked "
                       "copy works forever")
        else:
            left = _internal_to_unix(_numeric_date(number)) - now
            if left > LONG_LIFETIME:
                out.append(f"the token is valid for another {_ago(left)}: a leaked copy works that long")
    if "crit" in header:
        out.append(f"the header marks {show(header['crit'])} as critical, but golang-jwt ignores crit: those "
                   "extensions are not enforced")
    return out


# -- OIDC ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JWK:
    kid: str
    key: PublicKey | None  # None: parsed, but cannot verify RS/ES/PS (oct, OKP, a private key)
    described: str


def _jwk_bytes(raw: Mapping[str, JSONValue], name: str) -> bytes | str | None:
    """A byteBuffer member: None when absent or null, bytes, or an error string."""
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{name} must be a string"
    if value == "":
        return b""
    decoded = gojson.b64url(value)
    return decoded if decoded is not None else f"{name} is not base64url"


def _parse_jwk(value: JSONValue, index: int) -> _JWK | str:
    """go-jose v2.6.0 JSONWebKey.UnmarshalJSON, for verification keys: a key, or why the set is junk."""
    where = f"key {index + 1}"
    if value is None:
        return f"{where} is null (go-jose: unknown json web key type '')"
    if not isinstance(value, JSONObject):
        return f"{where} is a JSON {gojson.kind(value)}, not an object"
    duplicate = gojson.has_duplicate_names(value)
    if duplicate is not None:
        return f"{where} repeats the member {json.dumps(duplicate)} (go-jose rejects repeated names)"
    raw = value.last()
    strings: dict[str, str] = {}
    for name in ("use", "kty", "kid", "crv", "alg", "x5t", "x5t#S256"):
        member = raw.get(name)
        if member is not None and not isinstance(member, str):
            return f"{where}: {name} must be a string"
        strings[name] = member if isinstance(member, str) else ""
    if raw.get("x5u") is not None:
        return f"{where}: x5u cannot be decoded by go-jose v2 (a URL where it expects an object)"
    buffers: dict[str, bytes | None] = {}
    for name in ("k", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi"):
        decoded = _jwk_bytes(raw, name)
        if isinstance(decoded, str):
            return f"{where}: {decoded}"
        buffers[name] = decoded
    certs: list[x509.Certificate] = []
    chain = raw.get("x5c")
    if chain is not None:
        if not isinstance(chain, list):
            return f"{where}: x5c must be an array of strings"
        for item in chain:
            der = gojson.b64std(item) if isinstance(item, str) else (b"" if item is None else None)
            if der is None:
                return f"{where}: x5c holds something that is not base64"
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError:
                return f"{where}: x5c holds something that is not a certificate"
    kty = strings["kty"]
    key: PublicKey | None = None
    key_pub: PublicKey | None = None
    if kty == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}.get(strings["crv"])
        if curve is None:
            return f"{where}: unsupported elliptic curve {json.dumps(strings['crv'])}"
        x, y, d = buffers["x"], buffers["y"], buffers["d"]
        size = (curve.key_size + 7) // 8
        if x is None or y is None:
            return f"{where}: an EC key needs x and y"
        if len(x) != size or len(y) != size:
            return f"{where}: x or y has the wrong length for {strings['crv']}"
        if d is not None and len(d) != size:
            return f"{where}: d has the wrong length for {strings['crv']}"
        try:
            public = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                                   curve).public_key()
        except ValueError:
            return f"{where}: x/y are not on {strings['crv']}"
        key_pub = public
        key = public if d is None else None
    elif kty == "RSA":
        n, e = buffers["n"], buffers["e"]
        if buffers["d"] is not None:
            missing = [m for m in ("n", "e", "d", "p", "q") if buffers[m] is None]
            if missing:
                return f"{where}: an RSA private key needs {', '.join(missing)}"
        elif n is None or e is None:
            return f"{where}: an RSA key needs n and e"
        assert n is not None and e is not None
        try:
            public_rsa: rsa.RSAPublicKey | None = rsa.RSAPublicNumbers(int.from_bytes(e, "big"),
                                                                       int.from_bytes(n, "big")).public_key()
        except ValueError:
            public_rsa = None  # go-jose keeps it; it just never verifies anything
        key_pub = public_rsa
        key = public_rsa if buffers["d"] is None else None
    elif kty == "oct":
        if certs:
            return f"{where}: an oct (symmetric) key with a certificate chain"
        if buffers["k"] is None:
            return f"{where}: an oct key needs k"
    elif kty == "OKP":
        if strings["crv"] != "Ed25519" or buffers["x"] is None:
            return f"{where}: unknown OKP curve {json.dumps(strings['crv'])}"
    else:
        return f"{where}: unknown key type {json.dumps(kty)}"
    if certs and key_pub is not None:
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if certs[0].public_key().public_bytes(*spki) != key_pub.public_bytes(*spki):
            return f"{where}: the key and its x5c certificate differ"
    for name, size in (("x5t", 20), ("x5t#S256", 32)):
        text = strings[name]
        thumb = gojson.b64url(text) if text else b""
        if thumb is None:
            return f"{where}: {name} is not base64url"
        if len(thumb) == 2 * size:
            try:
                thumb = bytes.fromhex(thumb.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return f"{where}: {name} is not a thumbprint"
        if thumb and len(thumb) != size:
            return f"{where}: {name} has the wrong size"
        if thumb and certs:
            der = certs[0].public_bytes(serialization.Encoding.DER)
            digest = hashlib.sha1(der).digest() if size == 20 else hashlib.sha256(der).digest()
            if digest != thumb:
                return f"{where}: {name} does not match its certificate"
    kind_text = f"{kty}{'/' + strings['crv'] if strings['crv'] else ''}"
    return _JWK(strings["kid"], key, kind_text)


def _decode_jwks(jwks: bytes) -> list[_JWK] | str:
    """go-oidc's remote key set: encoding/json into JSONWebKeySet (`keys` matched case-insensitively),
    each entry go-jose's JSONWebKey. Any failure fails the whole set."""
    try:
        document = gojson.parse(jwks)
    except gojson.GoJSONError as error:
        return f"the JWKS is not JSON as Go reads it ({error})"
    if document is None:
        return []
    if not isinstance(document, JSONObject):
        return f"the JWKS is a JSON {gojson.kind(document)}, not an object"
    entries: JSONValue = None
    for name, value in document.members:
        if gojson.matches(name, "keys"):
            entries = value
    if entries is None:
        return []
    if not isinstance(entries, list):
        return "the JWKS keys member is not an array"
    keys: list[_JWK] = []
    for index, entry in enumerate(entries):
        parsed = _parse_jwk(entry, index)
        if isinstance(parsed, str):
            return parsed
        keys.append(parsed)
    return keys


@dataclass(frozen=True)
class _Jose:
    """What go-jose's ParseSigned keeps of a compact token."""

    header: Mapping[str, JSONValue]
    header_raw: bytes
    payload: bytes
    signature: bytes


def _parse_jose(token: str) -> _Jose | str:
    stripped = gojson.strip_go_space(token)
    if stripped.startswith("{"):
        return "the token is a JWS JSON serialization, which pxsec does not model (go-jose would parse it)"
    parts = stripped.split(".")
    if len(parts) != 3:
        return f"compact JWS format must have three parts, found {len(parts)}"
    decoded = [gojson.b64url(p) for p in parts]
    for segment, what, raw in zip(parts, ("header", "payload", "signature"), decoded, strict=True):
        if raw is None:
            return f"the {what} is not base64url" + _b64_hint(segment)
    header_raw, payload, signature = (v if v is not None else b"" for v in decoded)
    header: Mapping[str, JSONValue] = {}
    if header_raw:
        try:
            parsed = gojson.parse(header_raw)
        except gojson.GoJSONError as error:
            return f"the header is not JSON as Go reads it ({error})"
        if parsed is not None and not isinstance(parsed, JSONObject):
            return f"the header is a JSON {gojson.kind(parsed)}, not an object"
        if isinstance(parsed, JSONObject):
            duplicate = gojson.has_duplicate_names(parsed)
            if duplicate is not None:
                return f"the header repeats {json.dumps(duplicate)}, which go-jose rejects"
            header = parsed.last()
    for name, value in header.items():
        if value is None:
            continue
        if name in ("kid", "alg", "nonce") and not isinstance(value, str):
            return f"the header's {name} must be a string, got {show(value)}"
        if name == "x5c":
            if not isinstance(value, list) or not all(isinstance(v, str) or v is None for v in value):
                return "the header's x5c must be an array of base64 certificates"
            for item in value:
                der = gojson.b64std(item) if isinstance(item, str) else b""
                try:
                    x509.load_der_x509_certificate(der or b"")
                except ValueError:
                    return "the header's x5c holds something that is not a base64 certificate"
        elif name == "jwk":
            embedded = _parse_jwk(value, 0)
            if isinstance(embedded, str) or embedded.key is None:
                return "the header's jwk is not a valid public key"
        else:
            try:
                gojson.check_numbers(value)
            except gojson.GoJSONTypeError:
                return f"the header's {name} holds a number beyond float64's range"
    return _Jose(header, header_raw, payload, signature)


def _jose_verifies(jose: _Jose, alg: str, key: _JWK) -> bool:
    """go-jose DetachedVerify with one key: crit must list only b64; b64 false signs the raw payload."""
    crit = jose.header.get("crit")
    if crit is not None:
        if not isinstance(crit, list) or not all(isinstance(c, str) for c in crit):
            return False
        if any(c != "b64" for c in crit):
            return False
    if key.key is None:
        return False
    payload = jose.payload if jose.header.get("b64") is False else gojson.b64url_encode(jose.payload).encode()
    signing_input = gojson.b64url_encode(jose.header_raw).encode() + b"." + payload
    return _check_signature(signing_input, jose.signature, alg, key.key)


@dataclass
class _IDToken:
    """go-oidc v2.2.1 idToken as encoding/json fills it (names case-insensitive)."""

    strings: dict[str, str] = field(default_factory=dict)
    audience: list[str] = field(default_factory=list)
    times: dict[str, int | None] = field(default_factory=dict)  # internal seconds; None: nbf null
    claim_names: dict[str, str] | None = None
    claim_sources: set[str] = field(default_factory=set)


def _json_time(value: JSONValue, member: str) -> int:
    """go-oidc jsonTime.UnmarshalJSON: a number (or a string spelling one), Int64 else int64(Float64)."""
    if isinstance(value, JSONNumber):
        text = value.text
    elif isinstance(value, str) and gojson.is_number_text(value):
        text = value
    else:
        raise gojson.GoJSONTypeError(f"{member} must be a number, got {show(value)}")
    whole = gojson.parse_int64(text)
    if whole is None:
        number = float(text)
        if math.isinf(number):
            raise gojson.GoJSONTypeError(f"{member} {text[:40]} is beyond float64's range")
        whole = gojson.int64_of_float(number)
    return gojson.wrap64(whole + gojson.UNIX_TO_INTERNAL)


def _decode_id_token(members: Sequence[tuple[str, JSONValue]]) -> _IDToken:
    out = _IDToken()

    def string(name: str) -> gojson.FieldDecoder:
        return gojson.decode_string(out.strings, name)

    def audience(value: JSONValue, member: str) -> None:
        if value is None or isinstance(value, str):
            out.audience = [value or ""]
            return
        if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
            out.audience = [v or "" for v in value]  # type: ignore[misc]
            return
        raise gojson.GoJSONTypeError(f"aud must be a string or an array of strings, got {show(value)}")

    def time_field(name: str, pointer: bool) -> gojson.FieldDecoder:
        def store(value: JSONValue, member: str) -> None:
            if value is None and pointer:
                out.times[name] = None
                return
            out.times[name] = _json_time(value, member)
        return store

    def claim_names(value: JSONValue, member: str) -> None:
        if value is None:
            out.claim_names = None
            return
        if not isinstance(value, JSONObject):
            raise gojson.GoJSONTypeError("_claim_names must be an object")
        names = dict(out.claim_names or {})
        for name, src in value.members:
            if src is not None and not isinstance(src, str):
                raise gojson.GoJSONTypeError("_claim_names values must be strings")
            names[name] = src if isinstance(src, str) else names.get(name, "")
        out.claim_names = names

    def claim_sources(value: JSONValue, member: str) -> None:
        if value is None:
            out.claim_sources = set()
            return
        if not isinstance(value, JSONObject):
            raise gojson.GoJSONTypeError("_claim_sources must be an object")
        for name, src in value.members:
            if src is not None and not isinstance(src, JSONObject):
                raise gojson.GoJSONTypeError("_claim_sources values must be objects")
            if isinstance(src, JSONObject):
                sink: dict[str, str] = {}
                gojson.decode_struct(src.members, {"endpoint": gojson.decode_string(sink, "endpoint"),
                                                   "access_token": gojson.decode_string(sink, "access_token")})
            out.claim_sources.add(name)

    fields: dict[str, gojson.FieldDecoder] = {
        "iss": string("iss"), "sub": string("sub"), "aud": audience,
        "exp": time_field("exp", False), "iat": time_field("iat", False), "nbf": time_field("nbf", True),
        "nonce": string("nonce"), "at_hash": string("at_hash"),
        "_claim_names": claim_names, "_claim_sources": claim_sources,
    }
    gojson.decode_struct(members, fields)
    return out


def _judge_oidc(token: str, routed: _Routed, spec: PxSecuritySpec, now: tuple[int, int],
                jwks: bytes | None, oidc_algorithms: Sequence[str] | None) -> Verdict:
    oidc = spec.oidc
    assert oidc is not None
    iss = oidc.issuer
    alg_seen: str | None = None

    def reject(cause: str, reason: str, claims: _Claims | None = None) -> Verdict:
        if claims is None:
            return Verdict(False, OIDC, iss, alg_seen, None, (), (), reason, cause)
        return Verdict(False, OIDC, iss, alg_seen, claims.text(spec.username_claim), claims.roles, claims.groups,
                       reason, cause)

    jose = _parse_jose(token)
    if isinstance(jose, str):
        return reject(CAUSE_MALFORMED, f"not a JWT as go-jose reads it: {jose}")
    alg_value = jose.header.get("alg")
    alg_seen = alg_value if isinstance(alg_value, str) else None
    try:
        id_token = _decode_id_token(routed.body.members)
    except gojson.GoJSONTypeError as error:
        return reject(CAUSE_CLAIMS, f"go-oidc cannot decode the claims: {error}")
    if id_token.claim_names:
        for name, src in id_token.claim_names.items():
            if src == "" or src not in id_token.claim_sources:
                return reject(CAUSE_CLAIMS, f"go-oidc cannot resolve the distributed claim {json.dumps(name)}")
    if not oidc.client_id:
        return reject(CAUSE_CONFIG, "spec.oidc.clientID is empty: Portworx turns OIDC on only with a client ID")
    if oidc.client_id not in id_token.audience:
        aud = routed.body.last().get("aud")
        return reject(CAUSE_AUDIENCE, f"aud {show(aud) if 'aud' in routed.body.last() else '(missing)'} does not "
                                      f"contain the client ID {show(oidc.client_id)}")
    now_internal = now[0] + gojson.UNIX_TO_INTERNAL
    exp = id_token.times.get("exp", 0) or 0
    if (exp, 0) < (now_internal, now[1]):
        value = routed.body.last().get("exp")
        if "exp" not in id_token.times:
            return reject(CAUSE_EXP, "the token has no exp, so go-oidc reads it as expired long ago")
        return reject(CAUSE_EXP, _expired_text(value, exp, now_internal, ""))
    nbf = id_token.times.get("nbf")
    if nbf is not None and (now_internal + OIDC_NBF_LEEWAY, now[1]) < (nbf, 0):
        return reject(CAUSE_NBF, f"token is not valid before {_when(_internal_to_unix(nbf))} "
                                 "(nbf, beyond go-oidc's one minute of leeway)")
    allowed = [a for a in (oidc_algorithms if oidc_algorithms is not None else OIDC_ALGORITHMS)
               if a in OIDC_ALGORITHMS] or ["RS256"]
    alg = alg_seen or ""
    if alg not in allowed:
        if alg == "none" or alg.lower() == "none":
            return reject(CAUSE_ALG, "alg none (an unsigned token) is never accepted")
        if alg in HS_ALGORITHMS:
            return reject(CAUSE_ALG, f"token is {alg}, but OIDC tokens must be signed with RS, ES or PS "
                                     "algorithms, never HS")
        return reject(CAUSE_ALG, f"alg {show(alg_value)} is not accepted for OIDC issuer {show(iss)} "
                                 f"({', '.join(allowed)})")
    if jwks is not None:
        keys = _decode_jwks(jwks)
        if isinstance(keys, str):
            return reject(CAUSE_JWKS, f"go-oidc cannot use the provider's key set, so every signature fails: {keys}")
        kid_value = jose.header.get("kid")
        kid = kid_value if isinstance(kid_value, str) else ""
        candidates = [k for k in keys if kid == "" or k.kid == kid]
        if not any(_jose_verifies(jose, alg, k) for k in candidates):
            return reject(CAUSE_SIGNATURE, _jwks_failure(jose, alg, kid, keys, candidates))
    try:
        gojson.check_numbers(routed.body)
    except gojson.GoJSONTypeError:
        return reject(CAUSE_CLAIMS, "a claim holds a number beyond float64's range, which OpenStorage cannot decode")
    claims_map = routed.body.last()
    missing = _missing_required(claims_map)
    if missing:
        return reject(CAUSE_REQUIRED_CLAIM, missing)
    effective = dict(claims_map)
    namespace = oidc.custom_claim_namespace
    if namespace:
        for name in ("roles", "groups"):
            if namespace + name in effective:
                effective[name] = effective[namespace + name]  # a namespaced claim overrides the top level
    ordered = [(name, effective[name]) for name in gojson.sorted_by_bytes(list(effective))]
    try:
        claims = _decode_claims(ordered)
    except gojson.GoJSONTypeError as error:
        return reject(CAUSE_CLAIMS, _claims_problem(error, ordered))
    username_problem = _username_problem(spec.username_claim, claims)
    if username_problem:
        return reject(CAUSE_USERNAME, username_problem, claims)
    if jwks is None:
        return reject(CAUSE_UNCHECKED, "the claims are acceptable, but the signature was not checked (no JWKS "
                                       "given), so the token is not accepted", claims)
    warnings = _shadow_warnings(routed.claims.spelled) + _oidc_warnings(id_token, exp, now_internal)
    return Verdict(True, OIDC, iss, alg, claims.text(spec.username_claim), claims.roles, claims.groups,
                   f"accepted by Portworx: the OIDC issuer {show(iss)}, {alg} signature verified with the JWKS",
                   ACCEPTED, tuple(warnings))


def _jwks_failure(jose: _Jose, alg: str, kid: str, keys: Sequence[_JWK], candidates: Sequence[_JWK]) -> str:
    with_kid = f" with kid {show(kid)}" if kid else ""
    if not candidates:
        return f"no key in the JWKS has kid {show(kid)}" if kid else "the JWKS has no keys"
    crit = jose.header.get("crit")
    if isinstance(crit, list) and any(c != "b64" for c in crit):
        return (f"the header marks {show(crit)} as critical, and go-jose supports no such extension, so the "
                "signature check fails")
    usable = [k for k in candidates if k.key is not None and (
        (alg in ES_ALGORITHMS and isinstance(k.key, ec.EllipticCurvePublicKey)
         and curve_name(k.key) == ALGORITHM_CURVE[alg])
        or (alg not in ES_ALGORITHMS and isinstance(k.key, rsa.RSAPublicKey)))]
    if not usable:
        kinds = ", ".join(sorted({k.described for k in candidates}))
        return f"no key in the JWKS{with_kid} can verify {alg} (found {kinds})"
    return f"the {alg} signature does not verify with any key of the JWKS{with_kid}"


def _oidc_warnings(id_token: _IDToken, exp: int, now_internal: int) -> list[str]:
    out = []
    iat = id_token.times.get("iat")
    if iat is not None and iat > now_internal:
        out.append(f"iat is {_ago(iat - now_internal)} in the future: go-oidc never checks iat, so Portworx accepts "
                   "a token that claims to be issued later")
    if exp - now_internal > LONG_LIFETIME:
        out.append(f"the token is valid for another {_ago(exp - now_internal)}: a leaked copy works that long")
    return out


# -- the entry point -------------------------------------------------------------------------------------


def _jwks_bytes(jwks: Mapping[str, Any] | bytes | str | None) -> bytes | None:
    if jwks is None or isinstance(jwks, bytes):
        return jwks
    if isinstance(jwks, str):
        return jwks.encode("utf-8", "surrogatepass")
    return json.dumps(jwks).encode()


def verify(token: str, spec: PxSecuritySpec, keys: VerifyKeys, now: datetime.datetime,
           jwks: Mapping[str, Any] | bytes | str | None = None, *,
           oidc_algorithms: Sequence[str] | None = None) -> Verdict:
    """Would Portworx, configured from `spec` with `keys`, accept `token` at `now`?

    `jwks` is the OIDC provider's key set, as the bytes of its jwks_uri document (best: decoded exactly
    as go-oidc decodes them) or an already parsed object; without it an OIDC token's claims are judged
    but it is not accepted. `oidc_algorithms` are the provider's advertised
    `id_token_signing_alg_values_supported` when known (go-oidc then allows only those; it falls back to
    RS256 when the provider lists none it supports); by default RS/ES/PS 256/384/512.
    """
    clock = _unix(now)
    routed = _route(token)
    if not isinstance(routed, _Routed):
        cause, reason = routed
        return Verdict(False, None, None, None, None, (), (), reason, cause)
    iss = routed.claims.text("iss")
    self_signed = _self_signed_auth(spec, keys)
    apps = _apps_auth(keys)
    if self_signed is not None and iss == self_signed.issuer:
        return _judge_self_signed(token, routed, self_signed, spec, clock)
    if apps is not None and iss == APPS_ISSUER:
        return _judge_self_signed(token, routed, apps, spec, clock)
    if spec.oidc is not None and iss == spec.oidc.issuer:
        return _judge_oidc(token, routed, spec, clock, _jwks_bytes(jwks), oidc_algorithms)
    return Verdict(False, None, iss, None, None, (), (), _untrusted(iss, spec, routed, apps is not None),
                   CAUSE_UNTRUSTED_ISSUER)


def _untrusted(iss: str, spec: PxSecuritySpec, routed: _Routed, apps: bool) -> str:
    trusted = []
    if spec.self_signed is not None:
        trusted.append(f"{show(spec.self_signed.issuer)} (self-signed)")
    if apps:
        trusted.append(f"{show(APPS_ISSUER)} (apps)")
    if spec.oidc is not None:
        trusted.append(f"{show(spec.oidc.issuer)} (OIDC)")
    reason = f"{show(iss)} is not a trusted issuer; trusted: {', '.join(trusted) or 'none'}"
    spelled = routed.claims.spelled.get("iss", [])
    if spelled and spelled[-1] != "iss":
        reason += (f" (Portworx reads the issuer from {json.dumps(spelled[-1])}: claim names are matched "
                   "case-insensitively and the last one wins)")
    for configured in [spec.self_signed.issuer if spec.self_signed else None, spec.oidc.issuer if spec.oidc else None]:
        if configured is None:
            continue
        if iss.rstrip("/") == configured.rstrip("/"):
            return reason + f" (differs from {show(configured)} only by a trailing slash: the match is exact)"
        if re.sub(r"^https?://", "", iss) == re.sub(r"^https?://", "", configured):
            return reason + f" (differs from {show(configured)} only by its scheme: the match is exact)"
        if iss.lower() == configured.lower():
            return reason + f" (differs from {show(configured)} only in case: the match is exact)"
    return reason
