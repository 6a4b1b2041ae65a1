"""Judge an OIDC provider the way Portworx (coreos go-oidc v2) will: pure, so it can be tested exhaustively.

Portworx turns OIDC on by calling go-oidc's `NewProvider(issuer)` on every node. If that fails the
storage cluster starts without the OIDC authenticator and every OIDC token is "not a trusted issuer" —
usually discovered only when a user's token is refused. The operator probes the provider first and
says why in the `OIDCReady` condition and `status.oidc`, applying go-oidc's own rules:

* The discovery document lives at `strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"`
  and its `issuer` must equal the configured issuer **exactly** — a trailing slash or a letter case
  counts. (Tokens' `iss` must equal it too, so the document's value is what `spec.oidc.issuer` needs.)
* Signing algorithms are the announced `id_token_signing_alg_values_supported` that go-oidc supports
  (RS/ES/PS 256/384/512, never HS); when the provider announces none, go-oidc assumes RS256.
* The JWKS must hold a key that can verify those algorithms: RSA for RS*/PS*, EC on the matching
  curve for ES*, with `use` absent or "sig".

Nothing here touches the network or reads the clock: `pxsec.controller.oidcprobe` fetches, this module judges
what was fetched (or the error the fetch met), and `now` is a parameter. Messages are one line, name
the URL that failed, and carry at most a key count and a hash — never key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509

from pxsec import conditions
from pxsec.spec import CARef
from pxsec.verify import ALGORITHM_CURVE, ES_ALGORITHMS, OIDC_ALGORITHMS, PS_ALGORITHMS, RS_ALGORITHMS

# Condition reasons, in the order the probe meets them.
PROVIDER_READY: Final = "ProviderReady"
CA_CONFIGMAP_MISSING: Final = "CAConfigMapMissing"
CA_INVALID: Final = "CAInvalid"
DISCOVERY_FAILED: Final = "DiscoveryFailed"
ISSUER_MISMATCH: Final = "IssuerMismatch"
JWKS_FAILED: Final = "JWKSFailed"
NO_USABLE_KEYS: Final = "NoUsableKeys"
NO_SUPPORTED_ALGORITHMS: Final = "NoSupportedAlgorithms"

# Where a fetch error happened: picks the reason `judge()` reports for it.
STAGE_CA_MISSING: Final = "ca-missing"  # the CA ConfigMap or its key is absent
STAGE_CA: Final = "ca"  # the CA bundle is there but unusable
STAGE_DISCOVERY: Final = "discovery"
STAGE_JWKS: Final = "jwks"
_STAGE_REASON: Final = {
    STAGE_CA_MISSING: CA_CONFIGMAP_MISSING,
    STAGE_CA: CA_INVALID,
    STAGE_DISCOVERY: DISCOVERY_FAILED,
    STAGE_JWKS: JWKS_FAILED,
}

WELL_KNOWN: Final = "/.well-known/openid-configuration"
ALGORITHMS_FIELD: Final = "id_token_signing_alg_values_supported"
# go-oidc's fallback when the provider announces no algorithm it supports.
ASSUMED_ALGORITHM: Final = "RS256"
# Curves go-jose can verify ES signatures with (alg -> curve is verify.ALGORITHM_CURVE).
SIGNING_CURVES: Final = frozenset(ALGORITHM_CURVE.values())
# JWK members that are private key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1): never hashed, never shown.
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_QUOTED_MAX = 200  # issuers may be long; a message stays one readable line


@dataclass(frozen=True)
class ProbeResult:
    """What one probe of the provider found: the condition to report and the `status.oidc` facts.

    `jwks` is the provider's key set as fetched, for `pxsec.verify.verify(..., jwks=...)` together
    with `algorithms` as `oidc_algorithms`. It is public key material but bulky and provider-controlled:
    it never goes into status, logs or Events (`status_fields()` leaves it out; repr hides it).
    """

    ok: bool
    reason: str
    message: str
    issuer_matches: bool | None
    jwks_key_count: int | None
    jwks_hash: str | None
    algorithms: tuple[str, ...]
    probed_at: datetime
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def condition(self) -> conditions.Condition:
        """The OIDCReady condition this result stands for."""
        return conditions.Condition(conditions.OIDC_READY, self.ok, self.reason, self.message)


@dataclass(frozen=True)
class Discovery:
    """The parts of a discovery document go-oidc uses, and the first thing wrong with it (if any)."""

    issuer: str | None  # as the document states it
    issuer_matches: bool | None  # None: the document could not be read far enough to tell
    jwks_uri: str | None
    algorithms: tuple[str, ...]  # announced ∩ go-oidc's supported, or (RS256,) when none announced
    assumed: bool  # True when go-oidc's RS256 fallback applies because nothing was announced
    announced: tuple[str, ...]
    problem: tuple[str, str] | None  # (reason, message)


@dataclass(frozen=True)
class CAProblem:
    """Why the CA bundle for a private provider could not be had; feed to `judge(error=, stage=)`."""

    stage: str  # STAGE_CA_MISSING | STAGE_CA
    message: str


def discovery_url(issuer: str) -> str:
    """The discovery document URL exactly as go-oidc builds it (it trims one trailing slash, then appends)."""
    return issuer.removesuffix("/") + WELL_KNOWN


def _quote(value: str) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= _QUOTED_MAX else text[: _QUOTED_MAX - 4] + '..."'


def _is_https(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


# -- the CA bundle ---------------------------------------------------------------------------------------


def check_ca(ca_pem: bytes) -> str | None:
    """None when `ca_pem` holds at least one PEM certificate, else why not, as a predicate ("is empty").

    Checked before any connection so that an empty key or a pasted private key is reported as such,
    rather than as the puzzling TLS failure it would cause. The caller names the bundle.
    """
    if not ca_pem.strip():
        return "is empty"
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        return "holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return "holds a PEM certificate that cannot be parsed"
    if not certs:
        return "holds no PEM certificate"
    return None


def ca_bundle(config_map: Mapping[str, Any] | None, ref: CARef, namespace: str) -> bytes | CAProblem:
    """The CA bundle bytes named by `ref`, from a ConfigMap as the API server returns it, or the problem.

    `config_map` is the serialized object (`data` holds strings, `binaryData` base64) or None when it
    does not exist. The gateway reads it; this only picks the key and checks it, so the reconciler
    needs no knowledge of either form.
    """
    where = f"ConfigMap {namespace}/{ref.config_map}"
    if config_map is None:
        return CAProblem(STAGE_CA_MISSING, f"{where} (spec.oidc.certificateAuthority) not found")
    data = config_map.get("data") or {}
    binary = config_map.get("binaryData") or {}
    raw: bytes
    if isinstance(data, Mapping) and isinstance(data.get(ref.key), str):
        raw = str(data[ref.key]).encode("utf-8")
    elif isinstance(binary, Mapping) and isinstance(binary.get(ref.key), str):
        try:
            raw = base64.b64decode(str(binary[ref.key]), validate=True)
        except (binascii.Error, ValueError):
            return CAProblem(STAGE_CA, f"{where} key {ref.key} is not valid base64 in binaryData")
    else:
        keys = sorted({str(k) for k in (data if isinstance(data, Mapping) else {})}
                      | {str(k) for k in (binary if isinstance(binary, Mapping) else {})})
        found = ", ".join(keys[:10]) if keys else "none"
        return CAProblem(STAGE_CA_MISSING, f"{where} has no key {ref.key} (spec.oidc.certificateAuthority; "
                                           f"keys found: {found})")
    problem = check_ca(raw)
    if problem is not None:
        return CAProblem(STAGE_CA, f"{where} key {ref.key} (spec.oidc.certificateAuthority) {problem}")
    return raw


# -- the discovery document ------------------------------------------------------------------------------


def _issuer_hint(stated: str, configured: str) -> str:
    if stated.rstrip("/") == configured.rstrip("/"):
        return " (they differ only by a trailing slash, which counts)"
    if stated.lower() == configured.lower():
        return " (they differ only in letter case, which counts)"
    return ""


def read_discovery(configured_issuer: str, discovery: Any) -> Discovery:
    """Pick out of a discovery document what go-oidc uses, and the first rule it breaks.

    Wrong JSON types are failures because go-oidc decodes the document into a Go struct and gives up
    on the first type error. An issuer mismatch is reported before anything else that is wrong, as
    go-oidc refuses the provider at that point.
    """
    url = discovery_url(configured_issuer)

    def broken(message: str, reason: str = DISCOVERY_FAILED, **kw: Any) -> Discovery:
        fields: dict[str, Any] = {"issuer": None, "issuer_matches": None, "jwks_uri": None, "algorithms": (),
                                  "assumed": False, "announced": ()}
        fields.update(kw)
        return Discovery(**fields, problem=(reason, message))

    if not isinstance(discovery, Mapping):
        return broken(f"the discovery document at {url} is not a JSON object")
    stated = discovery.get("issuer")
    if stated is not None and not isinstance(stated, str):
        return broken(f"the discovery document at {url} has an issuer that is not a string")
    raw_algs = discovery.get(ALGORITHMS_FIELD)
    if raw_algs is not None and not (isinstance(raw_algs, list) and all(isinstance(a, str) for a in raw_algs)):
        return broken(f"the discovery document at {url} has an {ALGORITHMS_FIELD} that is not a list of strings")
    jwks_uri = discovery.get("jwks_uri")
    if jwks_uri is not None and not isinstance(jwks_uri, str):
        return broken(f"the discovery document at {url} has a jwks_uri that is not a string")

    announced = tuple(dict.fromkeys(raw_algs or ()))
    supported = tuple(a for a in announced if a in OIDC_ALGORITHMS)
    assumed = not announced
    algorithms = (ASSUMED_ALGORITHM,) if assumed else supported
    issuer_matches = stated == configured_issuer
    parsed: dict[str, Any] = {"issuer": stated, "issuer_matches": issuer_matches, "jwks_uri": jwks_uri,
                              "algorithms": algorithms, "assumed": assumed, "announced": announced}

    if not stated:
        return broken(f"the discovery document at {url} states no issuer; go-oidc requires it to equal "
                      f"spec.oidc.issuer {_quote(configured_issuer)} exactly", ISSUER_MISMATCH,
                      **{**parsed, "issuer_matches": False})
    if not issuer_matches:
        return broken(f"the discovery document at {url} states issuer {_quote(stated)}, but spec.oidc.issuer is "
                      f"{_quote(configured_issuer)}: go-oidc requires them to be equal character for character"
                      f"{_issuer_hint(stated, configured_issuer)}; tokens from this provider carry "
                      f"iss {_quote(stated)}, so that is the value spec.oidc.issuer needs", ISSUER_MISMATCH, **parsed)
    if not jwks_uri:
        return broken(f"the discovery document at {url} has no jwks_uri, so there are no keys to verify "
                      f"tokens with", **parsed)
    if not _is_https(jwks_uri):
        return broken(f"the discovery document at {url} points to jwks_uri {_quote(jwks_uri)}, which is not an "
                      f"https URL: signing keys fetched without TLS could be forged", JWKS_FAILED, **parsed)
    return Discovery(**parsed, problem=None)


# -- the JWKS --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet:
    """What a JWKS holds, reduced to what may be reported: counts, kinds, a hash."""

    count: int
    hash: str
    usable: tuple[Mapping[str, Any], ...]  # signing keys go-oidc can use (RSA, or EC on a supported curve)
    kinds: tuple[str, ...]  # e.g. ("EC/P-256", "RSA"), sorted, of the usable keys
    publishes_private: bool
    problem: str | None


def _public_members(key: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in key.items() if k not in PRIVATE_MEMBERS}


def jwks_hash(keys: list[Mapping[str, Any]]) -> str:
    """sha256 over canonical JSON of the public members of each key, the keys sorted.

    Canonical (sorted members, no whitespace, keys ordered by their own canonical form) so that two
    fetches of the same key set hash alike even when the provider reorders keys or members: the
    hash changes exactly when the provider rotates its keys.
    """
    canonical = sorted(json.dumps(_public_members(k), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                       for k in keys)
    digest = hashlib.sha256(("[" + ",".join(canonical) + "]").encode("ascii")).hexdigest()
    return f"sha256:{digest}"


def _signing_key(key: Mapping[str, Any]) -> bool:
    if key.get("use") not in (None, "sig"):
        return False
    kty = key.get("kty")
    return kty == "RSA" or (kty == "EC" and key.get("crv") in SIGNING_CURVES)


def _kind(key: Mapping[str, Any]) -> str:
    return "RSA" if key.get("kty") == "RSA" else f"EC/{key.get('crv')}"


def read_jwks(jwks: Any, jwks_uri: str) -> KeySet:
    """Count, hash and sort out the keys of a JWKS; `problem` when it is not a JWKS at all."""
    raw = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(raw, list):
        return KeySet(0, jwks_hash([]), (), (), False,
                      f"the JWKS at {jwks_uri} is not a JSON object with a keys array")
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            return KeySet(len(raw), jwks_hash([]), (), (), False,
                          f"the JWKS at {jwks_uri} is malformed: key {i} is not a JSON object")
    keys: list[Mapping[str, Any]] = raw
    usable = tuple(k for k in keys if _signing_key(k))
    return KeySet(
        count=len(keys),
        hash=jwks_hash(keys),
        usable=usable,
        kinds=tuple(sorted({_kind(k) for k in usable})),
        publishes_private=any(PRIVATE_MEMBERS & set(k) for k in keys),
        problem=None,
    )


def _verifies(key: Mapping[str, Any], alg: str) -> bool:
    if alg in ES_ALGORITHMS:
        return key.get("kty") == "EC" and key.get("crv") == ALGORITHM_CURVE[alg]
    return alg in RS_ALGORITHMS + PS_ALGORITHMS and key.get("kty") == "RSA"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- the judgement ---------------------------------------------------------------------------------------


def judge(configured_issuer: str, discovery: Mapping[str, Any] | None, jwks: Mapping[str, Any] | None,
          now: datetime, *, error: str | None = None, stage: str | None = None) -> ProbeResult:
    """Judge what a probe of `configured_issuer` found; `now` becomes `probed_at`.

    `error` is a one-line description of a failure met along the way (it should name the URL), and
    `stage` where: STAGE_CA_MISSING / STAGE_CA (nothing was fetched), STAGE_DISCOVERY, STAGE_JWKS.
    Without `stage`, an error is the discovery's when no document is given, else the JWKS's. The
    first failure decides the reason; what was learnt before it (issuer match, algorithms, key count)
    is still reported, so `status.oidc` shows how far the probe got.
    """
    url = discovery_url(configured_issuer)

    def result(ok: bool, reason: str, message: str, *, issuer_matches: bool | None = None,
               algorithms: tuple[str, ...] = (), key_set: KeySet | None = None,
               fetched: Mapping[str, Any] | None = None) -> ProbeResult:
        return ProbeResult(
            ok=ok, reason=reason, message=message, issuer_matches=issuer_matches,
            jwks_key_count=key_set.count if key_set is not None else None,
            jwks_hash=key_set.hash if key_set is not None else None,
            algorithms=algorithms, probed_at=now, jwks=fetched)

    if error is not None:
        stage = stage or (STAGE_DISCOVERY if discovery is None else STAGE_JWKS)
        if stage not in _STAGE_REASON:
            raise ValueError(f"unknown probe stage {stage!r}")
        if stage in (STAGE_CA_MISSING, STAGE_CA):
            return result(False, _STAGE_REASON[stage], f"{error}; the OIDC provider {configured_issuer} was not "
                                                       f"probed")
        if stage == STAGE_DISCOVERY:
            return result(False, DISCOVERY_FAILED, f"cannot read the OIDC discovery document: {error}")
    if discovery is None:
        return result(False, DISCOVERY_FAILED, f"the OIDC discovery document at {url} was not fetched")

    found = read_discovery(configured_issuer, discovery)
    known: dict[str, Any] = {"issuer_matches": found.issuer_matches, "algorithms": found.algorithms}
    if found.problem is not None:
        return result(False, *found.problem, **known)
    assert found.jwks_uri is not None  # read_discovery reports a missing one as its problem
    jwks_uri = found.jwks_uri
    if error is not None:
        return result(False, JWKS_FAILED, f"cannot read the provider's JWKS: {error}", **known)
    if jwks is None:
        return result(False, JWKS_FAILED, f"the JWKS at {jwks_uri} was not fetched", **known)

    key_set = read_jwks(jwks, jwks_uri)
    if key_set.problem is not None:
        return result(False, JWKS_FAILED, key_set.problem, **known)
    known["key_set"] = key_set
    known["fetched"] = jwks
    warning = ("; warning: the JWKS publishes private or symmetric key members — the provider's keys are "
               "exposed and must be rotated") if key_set.publishes_private else ""

    if not found.algorithms:
        shown = ", ".join(found.announced[:8]) + (", ..." if len(found.announced) > 8 else "")
        return result(False, NO_SUPPORTED_ALGORITHMS,
                      f"the provider at {url} announces only {shown} in {ALGORITHMS_FIELD}, but Portworx (go-oidc) "
                      f"verifies OIDC tokens with RS, ES or PS 256/384/512 only, never HS{warning}", **known)
    if key_set.count == 0:
        return result(False, NO_USABLE_KEYS, f"the JWKS at {jwks_uri} has no keys, so no token can be "
                                             f"verified{warning}", **known)
    if not key_set.usable:
        return result(False, NO_USABLE_KEYS,
                      f"none of the {_plural(key_set.count, 'key')} in the JWKS at {jwks_uri} is a signing key "
                      f"go-oidc can use (RSA, or EC on P-256/P-384/P-521, with use absent or \"sig\"){warning}",
                      **known)
    verifiable = tuple(a for a in found.algorithms if any(_verifies(k, a) for k in key_set.usable))
    if not verifiable:
        return result(False, NO_USABLE_KEYS,
                      f"the JWKS at {jwks_uri} holds {', '.join(key_set.kinds)} signing keys, none of which can "
                      f"verify the provider's algorithms {', '.join(found.algorithms)}{warning}", **known)

    usable = (f"{_plural(key_set.count, 'key')}" if len(key_set.usable) == key_set.count
              else f"{len(key_set.usable)} of {_plural(key_set.count, 'key')} usable")
    assumed = (f"; the discovery document announces no {ALGORITHMS_FIELD}, so go-oidc assumes RS256"
               if found.assumed else "")
    return result(True, PROVIDER_READY,
                  f"OIDC provider {configured_issuer} is ready: the discovery document's issuer matches, "
                  f"the JWKS at {jwks_uri} has {usable} ({', '.join(key_set.kinds)}), "
                  f"algorithms {', '.join(found.algorithms)}{assumed}{warning}", **known)


def status_fields(result: ProbeResult) -> dict[str, Any]:
    """`status.oidc` for a result: the CRD's properties exactly, None fields left out.

    `algorithms` is reported once a discovery document was read (an empty list then says "none
    usable"); before that it would be a guess, so it is left out like the other unknowns.
    """
    fields: dict[str, Any] = {"lastProbeTime": conditions.rfc3339(result.probed_at)}
    if result.issuer_matches is not None:
        fields["issuerMatches"] = result.issuer_matches
    if result.jwks_key_count is not None:
        fields["jwksKeyCount"] = result.jwks_key_count
    if result.jwks_hash is not None:
        fields["jwksHash"] = result.jwks_hash
    if result.issuer_matches is not None or result.algorithms:
        fields["algorithms"] = list(result.algorithms)
    return fields
