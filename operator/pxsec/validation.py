"""What makes a PxSecurity acceptable: the spec schema and the validation rules, in one place.

Validation has to happen where the user meets it first — `kubectl apply`, Argo CD, Flux — so the
rules ship inside the CRD as OpenAPI constraints and CEL (`x-kubernetes-validations`), and the API
server rejects a bad object before the operator ever sees it. The same rules must also run offline
(`pxsec validate -f cr.yaml` in a GitOps pipeline, no cluster at hand), with the same verdict and the
same words. Two copies of the rules would drift, so there is exactly one:

* `SPEC_SCHEMA` is the structural schema of `spec` (types, enums, defaults, lengths, descriptions);
  `pxsec.crdgen` puts it into the CRD, and `check_document` walks it here.
* `RULES` is the table of everything the schema cannot say. Each row carries the CEL expression and
  message emitted into the CRD *and* a Python predicate implementing the same check, so the offline
  validator never needs a CEL interpreter. Every row has a case in `tests/cases/invalid.yaml`, and the
  e2e admission test proves the API server and this module reject each case with the same message.

The offline check follows the API server's order: unknown fields (strict field validation), null
pruning and defaulting, the OpenAPI schema, list-map keys, then — only if the schema found no
"blocking" error, exactly like the server — the rules. Messages have the API server's shape
(`spec.guestAccess: Unsupported value: "Foo": supported values: ...`), so a person sees the same
line from `pxsec validate` and from `kubectl apply`.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import yaml

from pxsec.spec import (
    API_GROUP,
    API_VERSION,
    DEFAULT_ECDSA_CURVE,
    DEFAULT_RSA_SIZE,
    DEFAULT_SELF_SIGNED_ISSUER,
    DEFAULT_SHARED_SECRET,
    DEFAULT_SYSTEM_SECRET,
    DEFAULT_TOKEN_LIFETIME,
    KIND,
)

API_VERSION_FULL: Final = f"{API_GROUP}/{API_VERSION}"

GUEST_ACCESS: Final = ("Enabled", "Disabled", "Managed")
USERNAME_CLAIMS: Final = ("sub", "email", "name")
DELETION_POLICIES: Final = ("Retain", "Delete")
SIGNING_KEYS: Final = ("SharedSecret", "RSA", "ECDSA")
RSA_SIZES: Final = (2048, 3072, 4096)
ECDSA_CURVES: Final = ("P-256", "P-384", "P-521")

# Regular expressions shared by CEL (RE2) and Python (re). They are written in the subset where both
# engines agree: no \s, \d or POSIX classes; `$` is translated to `\Z` for Python (see `_re2_search`).
DNS1123_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HTTPS_URL_NO_QUERY: Final = r"^https://[^/?#\t\n\f\r ]+(/[^?#\t\n\f\r ]*)?$"
TOKEN_LIFETIME: Final = r"^[1-9][0-9]*(s|m|h|d|y)$"
CONFIGMAP_KEY: Final = r"^[-._a-zA-Z0-9]+$"
QUALIFIED_KEY: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# A label or annotation key: a DNS-subdomain prefix (<= 253) + "/" + a name (<= 63).
QUALIFIED_KEY_MAX: Final = 253 + 1 + 63

# Upper bounds. Besides keeping objects sane they are what lets the API server estimate the cost of
# the CEL rules; a CRD whose rules could exceed the cost budget is rejected when it is applied.
MAX_NAME: Final = 253
MAX_URL: Final = 2048
MAX_CLAIM: Final = 1024
MAX_TOKENS: Final = 32
MAX_ROLES: Final = 32
MAX_GROUPS: Final = 64
MAX_TEMPLATE_ENTRIES: Final = 64
MAX_ANNOTATION_VALUE: Final = 4096

# Error types of k8s.io/apimachinery's field.Error, with the words the API server prints for them.
REQUIRED: Final = "Required value"
NOT_SUPPORTED: Final = "Unsupported value"
TOO_LONG: Final = "Too long"
TOO_MANY: Final = "Too many"
TYPE_INVALID: Final = "Invalid type"
INVALID: Final = "Invalid value"
DUPLICATE: Final = "Duplicate value"
UNKNOWN: Final = "Unknown field"
# These schema errors make the API server skip the CEL rules (apiextensions-apiserver's
# `hasBlockingErr`): the object has not got the shape the rules were written for.
BLOCKING: Final = frozenset({REQUIRED, NOT_SUPPORTED, TOO_LONG, TOO_MANY, TYPE_INVALID})
RULES_SKIPPED: Final = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


# --------------------------------------------------------------------------------------------------
# The schema of `spec`
# --------------------------------------------------------------------------------------------------


def _string(description: str, *, max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": max_length, **extra}


def _object(
    description: str,
    properties: dict[str, dict[str, Any]],
    *,
    required: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "description": description, "properties": properties}
    if required:
        node["required"] = list(required)
    node.update(extra)
    return node


def _string_map(description: str, *, value_max: int) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "maxProperties": MAX_TEMPLATE_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": value_max},
    }


def _secret_name(description: str, **extra: Any) -> dict[str, Any]:
    return _string(description, max_length=MAX_NAME, **extra)


SPEC_SCHEMA: Final[dict[str, Any]] = _object(
    "The token sources PX-Security accepts and the Secrets the operator keeps for them. At least one "
    "of oidc and selfSigned is required.",
    {
        "storageCluster": _object(
            "The Portworx StorageCluster (core.libopenstorage.org/v1) in this namespace the settings are "
            "for. The rendered initialization parameters are always written to the ConfigMap named in "
            "status.parameters; set apply to also merge them into the StorageCluster.",
            {
                "name": _string("Name of the StorageCluster. Required when apply is true.", max_length=MAX_NAME),
                "apply": {
                    "type": "boolean",
                    "default": False,
                    "description": "Opt in: merge the rendered security settings (spec.security, "
                    "spec.env, spec.volumes) into the StorageCluster. Default false: the operator only "
                    "renders the parameters, and you (or your GitOps tool) apply them.",
                },
            },
        ),
        "guestAccess": _string(
            "What callers without a token may do: the rules of the system.guest role. Becomes the "
            "StorageCluster's spec.security.auth.guestAccess. Enabled: guests keep the default rules "
            "(access to public volumes); Disabled: guests may do nothing (make sure every component "
            "has a token first); Managed: the operator leaves system.guest as you set it with pxctl. "
            "Default Enabled.",
            max_length=16,
            enum=list(GUEST_ACCESS),
            default="Enabled",
        ),
        "usernameClaim": _string(
            "Which token claim Portworx uses as the user name: PORTWORX_AUTH_USERNAME_CLAIM, px-runc "
            "-username_claim. The claim must be non-empty in every token. Default sub.",
            max_length=8,
            enum=list(USERNAME_CLAIMS),
            default="sub",
        ),
        "system": _object(
            "The Secret with the system secrets Portworx needs whenever security is on.",
            {
                "secretName": _secret_name(
                    "Secret holding key system-secret (PORTWORX_AUTH_SYSTEM_KEY: the nodes sign their "
                    "cluster-internal tokens with it) and key apps-secret (PORTWORX_AUTH_SYSTEM_APPS_KEY, "
                    "and PX_SHARED_SECRET of Stork and Autopilot). Missing keys are generated once, "
                    "existing ones are adopted as they are and never replaced. Must not be the Secret of "
                    f"a key or a token. Default {DEFAULT_SYSTEM_SECRET}.",
                    default=DEFAULT_SYSTEM_SECRET,
                ),
            },
            default={},
        ),
        "oidc": _object(
            "Accept tokens issued by an OpenID Connect provider. Portworx reads the provider's "
            "discovery document and JWKS and verifies RS, ES and PS signatures (never HS); the "
            "operator probes them and reports the result in status.oidc and the OIDCReady condition. "
            "Optional; at least one of oidc and selfSigned is required.",
            {
                "issuer": _string(
                    "The provider's issuer URL: PORTWORX_AUTH_OIDC_ISSUER, px-runc -oidc_issuer. An "
                    "https:// URL without query or fragment that must equal, character for character "
                    "(a trailing slash counts), the issuer in the provider's "
                    "/.well-known/openid-configuration and the iss claim of its tokens.",
                    max_length=MAX_URL,
                ),
                "clientID": _string(
                    "The client ID the provider issues tokens for: PORTWORX_AUTH_OIDC_CLIENTID, px-runc "
                    "-oidc_client_id. A token's aud claim must contain it. Required: Portworx turns "
                    "OIDC on only when both the issuer and the client ID are set.",
                    max_length=MAX_CLAIM,
                ),
                "customClaimNamespace": _string(
                    "Prefix of namespaced roles and groups claims: PORTWORX_AUTH_OIDC_CUSTOM_NAMESPACE, "
                    "px-runc -oidc_custom_claim_namespace. For Auth0-style claims such as "
                    "https://myoidc.provider.com/roles write https://myoidc.provider.com/ — only roles "
                    "and groups are namespaced, and the lookup is plain concatenation, so include the "
                    "separator. A namespaced claim overrides the top-level one. Optional.",
                    max_length=MAX_CLAIM,
                ),
                "certificateAuthority": _object(
                    "CA certificates to trust when the operator probes a private provider's discovery "
                    "document and JWKS. Optional: by default the system's trusted CAs are used.",
                    {
                        "configMapRef": _object(
                            "A ConfigMap in this namespace holding PEM certificates.",
                            {
                                "name": _string("Name of the ConfigMap.", max_length=MAX_NAME),
                                "key": _string(
                                    "Key of the ConfigMap holding the PEM certificates. Default ca.crt.",
                                    max_length=MAX_NAME,
                                    default="ca.crt",
                                ),
                            },
                            required=("name",),
                        ),
                    },
                    required=("configMapRef",),
                ),
            },
            required=("issuer",),
        ),
        "selfSigned": _object(
            "Accept tokens signed with keys kept in Secrets in this namespace: the tokens the operator "
            "mints (spec.tokens) and the ones you make with pxsec token generate or pxctl auth token "
            "generate. One issuer; up to one key of each kind, and all of them may coexist (the alg "
            "of a token picks the key: HS* the shared secret, RS* RSA, ES* ECDSA). Optional; at "
            "least one of oidc and selfSigned is required.",
            {
                "issuer": _string(
                    "The iss claim of self-signed tokens: PORTWORX_AUTH_JWT_ISSUER, StorageCluster "
                    "spec.security.auth.selfSigned.issuer, px-runc -jwt_issuer. A plain name, not a URL: "
                    "it must not contain http:// or https://. Portworx picks the authenticator by "
                    "the exact iss, so every token generator must use the same value. Default "
                    f"{DEFAULT_SELF_SIGNED_ISSUER}.",
                    max_length=MAX_CLAIM,
                    default=DEFAULT_SELF_SIGNED_ISSUER,
                ),
                "tokenLifetime": _string(
                    "Lifetime of the tokens the operator mints, which it refreshes before they expire "
                    "(StorageCluster spec.security.auth.selfSigned.tokenLifetime): one whole number and "
                    "one unit, s, m, h, d or y (365 days), e.g. 24h, 7d, 1y. Combined units such as "
                    f"1h30m are rejected, as Portworx rejects them. Default {DEFAULT_TOKEN_LIFETIME}.",
                    max_length=16,
                    default=DEFAULT_TOKEN_LIFETIME,
                ),
                "sharedSecret": _object(
                    "A shared secret for HS256 tokens: PORTWORX_AUTH_JWT_SHAREDSECRET, StorageCluster "
                    "spec.security.auth.selfSigned.sharedSecret. 64 characters of the base64 alphabet, "
                    "used as ASCII bytes. Write sharedSecret: {} for the default Secret name; an "
                    "empty value (sharedSecret: with nothing after it) is null and means no shared "
                    "secret.",
                    {
                        "secretName": _secret_name(
                            "Secret holding key shared-secret. Generated once if missing, adopted as "
                            f"it is if present, never replaced. Default {DEFAULT_SHARED_SECRET}.",
                            default=DEFAULT_SHARED_SECRET,
                        ),
                    },
                ),
                "rsa": _object(
                    "An RSA key pair for RS256 tokens. Portworx gets the public key as a file: "
                    "PORTWORX_AUTH_JWT_RSA_PUBKEY, px-runc -jwt_rsa_pubkey_file.",
                    {
                        "secretName": _secret_name(
                            "Secret holding keys private.pem (PKCS#8) and public.pem (PKIX). Generated "
                            "once if missing, adopted as it is if present, never replaced."
                        ),
                        "size": {
                            "type": "integer",
                            "enum": list(RSA_SIZES),
                            "default": DEFAULT_RSA_SIZE,
                            "description": "Modulus size in bits of a key the operator generates: 2048, "
                            f"3072 or 4096. An adopted key keeps its own size. Default {DEFAULT_RSA_SIZE}.",
                        },
                    },
                    required=("secretName",),
                ),
                "ecdsa": _object(
                    "An ECDSA key pair for ES256/ES384/ES512 tokens. Portworx gets the public key as a "
                    "file: PORTWORX_AUTH_JWT_ECDS_PUBKEY, px-runc -jwt_ecds_pubkey_file (spelled ECDS).",
                    {
                        "secretName": _secret_name(
                            "Secret holding keys private.pem (PKCS#8) and public.pem (PKIX). Generated "
                            "once if missing, adopted as it is if present, never replaced."
                        ),
                        "curve": _string(
                            "Curve of a key the operator generates: P-256 signs ES256 (what pxctl and "
                            "the Portworx tools use), P-384 ES384, P-521 ES512. Default "
                            f"{DEFAULT_ECDSA_CURVE}.",
                            max_length=8,
                            enum=list(ECDSA_CURVES),
                            default=DEFAULT_ECDSA_CURVE,
                        ),
                    },
                    required=("secretName",),
                ),
            },
        ),
        "tokens": {
            "type": "array",
            "description": "Tokens the operator mints with a spec.selfSigned key, stores and refreshes "
            "before they expire — e.g. an admin token for automation and a user token that CSI "
            "StorageClasses point at. Each goes into its own Secret, key auth-token. Requires "
            "spec.selfSigned.",
            "maxItems": MAX_TOKENS,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["secretName"],
            "items": _object(
                "One token and the Secret it is kept in.",
                {
                    "secretName": _secret_name(
                        "Secret the token is written to, key auth-token. Also the token's name claim; "
                        "its sub and email claims are <secretName>@<issuer>. Unique, and not the Secret "
                        "of a key or of the system secrets."
                    ),
                    "roles": {
                        "type": "array",
                        "description": "Portworx roles in the token's roles claim, e.g. system.admin, "
                        "system.user, system.view, or a role you created. At least one.",
                        "minItems": 1,
                        "maxItems": MAX_ROLES,
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    },
                    "groups": {
                        "type": "array",
                        "description": 'Groups in the token\'s groups claim; ["*"] means every group. Default none.',
                        "maxItems": MAX_GROUPS,
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    },
                    "signingKey": _string(
                        "Which spec.selfSigned key signs this token: SharedSecret (HS256), RSA (RS256) "
                        "or ECDSA (ES256, ES384 or ES512 by curve). The key must be configured. If "
                        "omitted, the operator uses the shared secret if there is one, else RSA, else "
                        "ECDSA.",
                        max_length=16,
                        enum=list(SIGNING_KEYS),
                    ),
                },
                required=("secretName", "roles"),
            ),
        },
        "secretTemplate": _object(
            "Labels and annotations put on every Secret the operator creates. The PxSecurity's own "
            "labels are never copied (they may carry a GitOps tool's tracking label).",
            {
                "labels": _string_map("Labels for the generated Secrets.", value_max=63),
                "annotations": _string_map("Annotations for the generated Secrets.", value_max=MAX_ANNOTATION_VALUE),
            },
        ),
        "deletionPolicy": _string(
            "What happens to the generated Secrets when this PxSecurity is deleted. Retain: they stay, "
            "so a re-created PxSecurity adopts the same keys and issued tokens keep working. Delete: "
            "they carry an owner reference to the PxSecurity and the garbage collector deletes them "
            "with it — every token signed with those keys stops working. Default Retain.",
            max_length=8,
            enum=list(DELETION_POLICIES),
            default="Retain",
        ),
    },
)


# --------------------------------------------------------------------------------------------------
# The rule table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One validation rule, in both languages.

    `location` is where in the schema the rule is attached: dotted property names, `[*]` for the items
    of a list or the values of a map (e.g. `spec.tokens[*].secretName`). `cel` and `check` must agree:
    `check` receives the same value CEL sees as `self` (after defaulting) and returns True when valid.
    `field_path` (CEL `fieldPath`, relative to `location`) is where the API server reports a failure.
    """

    id: str
    location: str
    cel: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None

    def to_crd(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry for the CRD."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def _cel_str(value: str) -> str:
    """A CEL single-quoted string literal holding exactly `value`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # RE2's `$` (without the m flag) matches only at the very end; Python's also before a final "\n".
    python = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    return re.compile(python)


def _re2_search(pattern: str, value: str) -> bool:
    """What CEL's `value.matches(pattern)` returns: an unanchored RE2 search."""
    return _compiled(pattern).search(value) is not None


def _matches(pattern: str) -> tuple[str, Callable[[Any], bool]]:
    """The CEL expression and the predicate for "self matches `pattern`"."""
    return f"self.matches({_cel_str(pattern)})", lambda value: _re2_search(pattern, value)


_DNS_HINT: Final = (
    "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)


def _dns_rule(rule_id: str, location: str, what: str) -> Rule:
    cel, check = _matches(DNS1123_SUBDOMAIN)
    where = location.replace("[*]", "[]")
    return Rule(rule_id, location, cel, f"{where} must be a valid {what} name ({_DNS_HINT})", check)


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    """obj[k1][k2]... or None when a step is missing (CEL's `has()` chain)."""
    value: Any = obj
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _key_secret_names(spec: Mapping[str, Any]) -> list[str]:
    """Names of the Secrets holding the self-signed keys that are configured."""
    self_signed = spec.get("selfSigned")
    if not isinstance(self_signed, Mapping):
        return []
    return [
        self_signed[key]["secretName"]
        for key in ("sharedSecret", "rsa", "ecdsa")
        if isinstance(self_signed.get(key), Mapping)
    ]


def _self_signed_names_distinct(self_signed: Mapping[str, Any]) -> bool:
    names = _key_secret_names({"selfSigned": self_signed})
    return len(names) == len(set(names))


def _system_name_distinct(spec: Mapping[str, Any]) -> bool:
    return spec["system"]["secretName"] not in _key_secret_names(spec)


def _token_names_distinct_from_keys(spec: Mapping[str, Any]) -> bool:
    reserved = {spec["system"]["secretName"], *_key_secret_names(spec)}
    return all(token["secretName"] not in reserved for token in spec.get("tokens", []))


def _token_signing_keys_configured(spec: Mapping[str, Any]) -> bool:
    field_of = {"SharedSecret": "sharedSecret", "RSA": "rsa", "ECDSA": "ecdsa"}
    return all(
        "signingKey" not in token or _get(spec, "selfSigned", field_of[token["signingKey"]]) is not None
        for token in spec.get("tokens", [])
    )


def _token_names_unique(tokens: list[Mapping[str, Any]]) -> bool:
    names = [token["secretName"] for token in tokens]
    return len(names) == len(set(names))


def _qualified_keys(mapping: Mapping[str, Any]) -> bool:
    return all(len(key) <= QUALIFIED_KEY_MAX and _re2_search(QUALIFIED_KEY, key) for key in mapping)


_HTTPS_CEL, _HTTPS_CHECK = _matches(HTTPS_URL_NO_QUERY)
_LIFETIME_CEL, _LIFETIME_CHECK = _matches(TOKEN_LIFETIME)
_CM_KEY_CEL, _CM_KEY_CHECK = _matches(CONFIGMAP_KEY)
_LABEL_VALUE_CEL, _LABEL_VALUE_CHECK = _matches(LABEL_VALUE)
_QUALIFIED_KEYS_CEL: Final = f"self.all(k, k.size() <= {QUALIFIED_KEY_MAX} && k.matches({_cel_str(QUALIFIED_KEY)}))"

# The key Secrets that are configured, as CEL conditions "<name> != x" joined by &&.
_CEL_NOT_A_KEY_SECRET: Final = (
    "(!has(self.selfSigned) || ("
    "(!has(self.selfSigned.sharedSecret) || self.selfSigned.sharedSecret.secretName != {x}) && "
    "(!has(self.selfSigned.rsa) || self.selfSigned.rsa.secretName != {x}) && "
    "(!has(self.selfSigned.ecdsa) || self.selfSigned.ecdsa.secretName != {x})))"
)

RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "spec-token-source",
        "spec",
        "has(self.oidc) || has(self.selfSigned)",
        "spec needs at least one token source: set spec.oidc, spec.selfSigned, or both",
        lambda spec: "oidc" in spec or "selfSigned" in spec,
    ),
    _dns_rule("storage-cluster-name", "spec.storageCluster.name", "StorageCluster"),
    Rule(
        "storage-cluster-apply-needs-name",
        "spec.storageCluster",
        "!self.apply || has(self.name)",
        "spec.storageCluster.name is required when spec.storageCluster.apply is true: it names the "
        "StorageCluster the settings are merged into",
        lambda sc: not sc["apply"] or "name" in sc,
        field_path=".name",
    ),
    _dns_rule("system-secret-name", "spec.system.secretName", "Secret"),
    Rule(
        "system-secret-distinct",
        "spec",
        _CEL_NOT_A_KEY_SECRET.format(x="self.system.secretName"),
        "spec.system.secretName must differ from the Secrets of the spec.selfSigned keys (defaults: "
        f"system {DEFAULT_SYSTEM_SECRET}, sharedSecret {DEFAULT_SHARED_SECRET}): each Secret has one "
        "purpose",
        _system_name_distinct,
        field_path=".system.secretName",
    ),
    Rule(
        "oidc-issuer-https",
        "spec.oidc.issuer",
        _HTTPS_CEL,
        "spec.oidc.issuer must be an https:// URL without query or fragment, e.g. https://accounts.example.com",
        _HTTPS_CHECK,
    ),
    Rule(
        "oidc-client-id",
        "spec.oidc",
        "has(self.clientID) && self.clientID != ''",
        "spec.oidc.clientID is required with spec.oidc.issuer: Portworx turns OIDC on only when both "
        "are set, and a token's aud must contain the client ID",
        lambda oidc: bool(oidc.get("clientID")),
        field_path=".clientID",
    ),
    Rule(
        "oidc-custom-claim-namespace",
        "spec.oidc.customClaimNamespace",
        "self != ''",
        "spec.oidc.customClaimNamespace must not be empty: omit it, or give the prefix of the roles "
        "and groups claims including its separator, e.g. https://myoidc.provider.com/",
        lambda value: value != "",
    ),
    _dns_rule("oidc-ca-configmap-name", "spec.oidc.certificateAuthority.configMapRef.name", "ConfigMap"),
    Rule(
        "oidc-ca-configmap-key",
        "spec.oidc.certificateAuthority.configMapRef.key",
        _CM_KEY_CEL,
        "spec.oidc.certificateAuthority.configMapRef.key must be a valid ConfigMap key: letters, "
        "digits, '-', '_' and '.'",
        _CM_KEY_CHECK,
    ),
    Rule(
        "self-signed-key",
        "spec.selfSigned",
        "has(self.sharedSecret) || has(self.rsa) || has(self.ecdsa)",
        "spec.selfSigned needs at least one of sharedSecret, rsa, ecdsa (sharedSecret: {} uses the "
        f"default Secret {DEFAULT_SHARED_SECRET})",
        lambda self_signed: any(key in self_signed for key in ("sharedSecret", "rsa", "ecdsa")),
    ),
    Rule(
        "self-signed-issuer",
        "spec.selfSigned.issuer",
        "self != '' && !self.contains('http://') && !self.contains('https://')",
        "spec.selfSigned.issuer must be a non-empty name without http:// or https://, e.g. "
        f"{DEFAULT_SELF_SIGNED_ISSUER}: OpenStorage refuses self-signed issuers that look like URLs",
        lambda value: value != "" and "http://" not in value and "https://" not in value,
    ),
    Rule(
        "self-signed-token-lifetime",
        "spec.selfSigned.tokenLifetime",
        _LIFETIME_CEL,
        "spec.selfSigned.tokenLifetime must be one positive whole number and one unit, s, m, h, d or "
        "y, e.g. 24h or 7d: Portworx accepts no combined units such as 1h30m",
        _LIFETIME_CHECK,
    ),
    _dns_rule("shared-secret-name", "spec.selfSigned.sharedSecret.secretName", "Secret"),
    _dns_rule("rsa-secret-name", "spec.selfSigned.rsa.secretName", "Secret"),
    _dns_rule("ecdsa-secret-name", "spec.selfSigned.ecdsa.secretName", "Secret"),
    Rule(
        "self-signed-secrets-distinct",
        "spec.selfSigned",
        "(!has(self.sharedSecret) || !has(self.rsa) || self.sharedSecret.secretName != "
        "self.rsa.secretName) && "
        "(!has(self.sharedSecret) || !has(self.ecdsa) || self.sharedSecret.secretName != "
        "self.ecdsa.secretName) && "
        "(!has(self.rsa) || !has(self.ecdsa) || self.rsa.secretName != self.ecdsa.secretName)",
        "spec.selfSigned.sharedSecret, rsa and ecdsa must each name a different Secret (sharedSecret "
        f"defaults to {DEFAULT_SHARED_SECRET}): each Secret holds one key",
        _self_signed_names_distinct,
    ),
    _dns_rule("token-secret-name", "spec.tokens[*].secretName", "Secret"),
    Rule(
        "token-secrets-unique",
        "spec.tokens",
        "self.all(t, self.exists_one(u, u.secretName == t.secretName))",
        "spec.tokens[].secretName must be unique: each token is kept in its own Secret",
        _token_names_unique,
    ),
    Rule(
        "token-secrets-distinct",
        "spec",
        "!has(self.tokens) || self.tokens.all(t, t.secretName != self.system.secretName && "
        + _CEL_NOT_A_KEY_SECRET.format(x="t.secretName")
        + ")",
        "spec.tokens[].secretName must differ from spec.system.secretName and from the Secrets of the "
        f"spec.selfSigned keys (defaults: system {DEFAULT_SYSTEM_SECRET}, sharedSecret "
        f"{DEFAULT_SHARED_SECRET}): each Secret has one purpose",
        _token_names_distinct_from_keys,
        field_path=".tokens",
    ),
    Rule(
        "tokens-need-self-signed",
        "spec",
        "!has(self.tokens) || size(self.tokens) == 0 || has(self.selfSigned)",
        "spec.tokens needs spec.selfSigned with at least one key: the operator signs the tokens it "
        "mints with a self-signed key",
        lambda spec: not spec.get("tokens") or "selfSigned" in spec,
        field_path=".tokens",
    ),
    Rule(
        "token-signing-key-configured",
        "spec",
        "!has(self.tokens) || self.tokens.all(t, !has(t.signingKey) || "
        "(t.signingKey == 'SharedSecret' && has(self.selfSigned) && has(self.selfSigned.sharedSecret)) || "
        "(t.signingKey == 'RSA' && has(self.selfSigned) && has(self.selfSigned.rsa)) || "
        "(t.signingKey == 'ECDSA' && has(self.selfSigned) && has(self.selfSigned.ecdsa)))",
        "spec.tokens[].signingKey must name a key configured in spec.selfSigned: SharedSecret needs "
        "sharedSecret, RSA needs rsa, ECDSA needs ecdsa",
        _token_signing_keys_configured,
        field_path=".tokens",
    ),
    Rule(
        "secret-template-label-keys",
        "spec.secretTemplate.labels",
        _QUALIFIED_KEYS_CEL,
        "spec.secretTemplate.labels keys must be valid label keys: an optional DNS subdomain and '/', "
        "then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
        "or digit",
        _qualified_keys,
    ),
    Rule(
        "secret-template-label-values",
        "spec.secretTemplate.labels[*]",
        _LABEL_VALUE_CEL,
        "spec.secretTemplate.labels values must be valid label values: empty, or at most 63 letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit",
        _LABEL_VALUE_CHECK,
    ),
    Rule(
        "secret-template-annotation-keys",
        "spec.secretTemplate.annotations",
        _QUALIFIED_KEYS_CEL,
        "spec.secretTemplate.annotations keys must be valid annotation keys: an optional DNS subdomain "
        "and '/', then a name of at most 63 letters, digits, '-', '_' or '.', starting and ending with "
        "a letter or digit",
        _qualified_keys,
    ),
)


# --------------------------------------------------------------------------------------------------
# Schema navigation shared with crdgen
# --------------------------------------------------------------------------------------------------


def location_steps(location: str) -> list[str]:
    """`spec.tokens[*].secretName` -> ["spec", "tokens", "[*]", "secretName"]."""
    steps: list[str] = []
    for part in location.split("."):
        if part.endswith("[*]"):
            steps += [part[:-3], "[*]"]
        else:
            steps.append(part)
    return steps


def schema_at(root: dict[str, Any], steps: list[str]) -> dict[str, Any]:
    """The node of the schema `root` (whose properties include `spec`) at `steps`."""
    node = root
    for step in steps:
        if step == "[*]":
            node = node["items"] if node.get("type") == "array" else node["additionalProperties"]
        else:
            node = node["properties"][step]
    return node


def spec_schema_with_rules() -> dict[str, Any]:
    """SPEC_SCHEMA with every rule's CEL attached where it belongs: what the CRD carries as `spec`."""
    root: dict[str, Any] = {"properties": {"spec": copy.deepcopy(SPEC_SCHEMA)}}
    for rule in RULES:
        node = schema_at(root, location_steps(rule.location))
        node.setdefault("x-kubernetes-validations", []).append(rule.to_crd())
    spec: dict[str, Any] = root["properties"]["spec"]
    return spec


# --------------------------------------------------------------------------------------------------
# The offline validator
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, as the API server would say it.

    `kind` is the field.Error type ("Required value", ...), which decides whether the rules still
    run; `rule` names the rule table entry that found it, if any.
    """

    path: str
    message: str
    kind: str = INVALID
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _go_value(value: Any) -> str:
    """How Go's field.Error prints a bad value: %q for strings, %v for numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, sort_keys=True, default=str)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, expected: str | None) -> bool:
    if expected is None:
        return True
    actual = _json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _prune_unknown(value: Any, schema: Mapping[str, Any] | None, path: str, out: list[Problem]) -> None:
    """Report and drop fields the schema does not declare, like strict field validation does.

    This follows the API server's pruning walk, quirks included: a mapping where the schema wants
    something else (say, an object for a list) has no declared fields, so all its keys are unknown.
    """
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties: Mapping[str, Any] = (schema or {}).get("properties") or {}
        extra = (schema or {}).get("additionalProperties")
        for key in list(value):
            where = _child(path, str(key))
            if key in properties:
                _prune_unknown(value[key], properties[key], where, out)
            elif isinstance(extra, Mapping):
                _prune_unknown(value[key], extra, where, out)
            else:
                hint = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.8)
                suffix = f'; did you mean "{hint[0]}"?' if hint else ""
                message = f'field not declared in schema (unknown field "{where}"{suffix})'
                out.append(Problem(where, message, UNKNOWN))
                del value[key]
    elif isinstance(value, list):
        items = (schema or {}).get("items")
        for index, item in enumerate(value):
            _prune_unknown(item, items if isinstance(items, Mapping) else None, f"{path}[{index}]", out)


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Prune nulls and fill in defaults in place, the way the API server does before validating.

    A null in a field that is not nullable is dropped and, if the field has a default, replaced by
    it; a default is itself defaulted further down (so `system: {}` gets its `secretName`).
    """
    if isinstance(value, dict) and schema.get("type") == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key in [k for k, v in value.items() if v is None and k in properties]:
            del value[key]
        for key, prop in properties.items():
            if key not in value and "default" in prop:
                value[key] = copy.deepcopy(prop["default"])
        for key, item in value.items():
            if key in properties:
                apply_defaults(item, properties[key])
            elif isinstance(schema.get("additionalProperties"), Mapping):
                apply_defaults(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            apply_defaults(item, schema["items"])


def _not_supported(value: Any, schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    if "enum" in schema and (value not in schema["enum"] or _json_type(value) != _json_type(schema["enum"][0])):
        allowed = ", ".join(json.dumps(str(option)) for option in schema["enum"])
        out.append(Problem(path, f"{NOT_SUPPORTED}: {_go_value(value)}: supported values: {allowed}", NOT_SUPPORTED))


def _check_schema(value: Any, schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    """The OpenAPI checks of kube-openapi, with the API server's wording and order for each failure."""
    expected = schema.get("type")
    if not _type_ok(value, expected):
        actual = _json_type(value)
        message = f'{INVALID}: "{actual}": {path} in body must be of type {expected}: "{actual}"'
        out.append(Problem(path, message, TYPE_INVALID))
        _not_supported(value, schema, path, out)
        return
    if isinstance(value, str):
        # kube-openapi counts characters, whatever its message says
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            message = f"{TOO_LONG}: may not be more than {schema['maxLength']} bytes"
            out.append(Problem(path, message, TOO_LONG))
        if "minLength" in schema and len(value) < schema["minLength"]:
            message = f"{INVALID}: {_go_value(value)}: {path} in body should be at least "
            out.append(Problem(path, message + f"{schema['minLength']} chars long"))
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            message = f"{TOO_MANY}: {len(value)}: must have at most {schema['maxItems']} items"
            out.append(Problem(path, message, TOO_MANY))
        if "minItems" in schema and len(value) < schema["minItems"]:
            message = f"{INVALID}: {len(value)}: {path} in body should have at least {schema['minItems']} items"
            out.append(Problem(path, message))
        for index, item in enumerate(value):
            _check_schema(item, schema["items"], f"{path}[{index}]", out)
        _check_list_map(value, schema, path, out)
    elif isinstance(value, Mapping):
        for name in schema.get("required", []):
            if name not in value:
                out.append(Problem(_child(path, name), REQUIRED, REQUIRED))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            message = f"{TOO_MANY}: {len(value)}: must have at most {schema['maxProperties']} items"
            out.append(Problem(path, message, TOO_MANY))
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _check_schema(item, properties[key], _child(path, key), out)
            elif isinstance(extra, Mapping):
                _check_schema(item, extra, _child(path, key), out)
    _not_supported(value, schema, path, out)


def _check_list_map(value: list[Any], schema: Mapping[str, Any], path: str, out: list[Problem]) -> None:
    """x-kubernetes-list-type: map — no two items with the same keys."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys:
        return
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not all(k in item for k in keys):
            continue
        identity = json.dumps({k: item[k] for k in keys}, separators=(",", ":"), sort_keys=True)
        if identity in seen:
            out.append(Problem(f"{path}[{index}]", f"{DUPLICATE}: {identity}", DUPLICATE))
        seen.add(identity)


def _values_at(value: Any, steps: list[str], path: str) -> Iterator[tuple[str, Any]]:
    """Every value present at `steps` below `value`, with its path as the API server writes it."""
    if not steps:
        yield path, value
        return
    step, rest = steps[0], steps[1:]
    if step == "[*]":
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _values_at(item, rest, f"{path}[{index}]")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                yield from _values_at(item, rest, f"{path}[{key}]")
    elif isinstance(value, Mapping) and step in value:
        yield from _values_at(value[step], rest, _child(path, step))


def _check_rules(doc: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES:
        for path, value in _values_at(doc, location_steps(rule.location), ""):
            if not rule.check(value):
                where = path + (rule.field_path or "")
                # The API server shows the value the rule judged, unless it is an object or a list.
                shown = "" if isinstance(value, Mapping | list) else f"{_go_value(value)}: "
                problems.append(Problem(where, f"{INVALID}: {shown}{rule.message}", rule=rule.id))
    return problems


def _check_metadata(doc: Mapping[str, Any]) -> list[Problem]:
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return [Problem("metadata", f'{INVALID}: "{_json_type(metadata)}": metadata must be an object', TYPE_INVALID)]
    name = metadata.get("name")
    if name is None:
        if metadata.get("generateName"):
            return []
        return [Problem("metadata.name", f"{REQUIRED}: name or generateName is required", REQUIRED)]
    if not isinstance(name, str) or len(name) > MAX_NAME or not _re2_search(DNS1123_SUBDOMAIN, name):
        return [
            Problem(
                "metadata.name",
                f"{INVALID}: {_go_value(name)}: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                f"'{DNS1123_SUBDOMAIN[1:-1]}')",
            )
        ]
    return []


_TOP_LEVEL: Final = ("apiVersion", "kind", "metadata", "spec", "status")


def _as_json(value: Any) -> Any:
    """A deep copy with only JSON types, as the API server receives it after kubectl's YAML-to-JSON:
    mapping keys become strings (`1:` -> "1", `true:` -> "true"), dates and times become strings."""
    if isinstance(value, Mapping):
        return {_go_key(key): _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _go_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _JSONishLoader(yaml.SafeLoader):
    """PyYAML's safe loader, resolving plain scalars the way kubectl's YAML parser (go-yaml v2) does:
    `2030-01-01` stays a string, and `y`, `n` (any case) are booleans like `yes` and `no`. So
    `pxsec validate` judges the same JSON the API server receives."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # JSON keys are strings: `1:` and `true:` are "1" and "true", never the same Python key.
        self.flatten_mapping(node)
        return {
            _go_key(self.construct_object(key, deep=deep)): self.construct_object(value, deep=deep)
            for key, value in node.value
        }

    def construct_go_bool(self, node: yaml.ScalarNode) -> bool:
        return str(self.construct_scalar(node)).lower() in ("y", "yes", "true", "on")


_JSONishLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JSONishLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_JSONishLoader.add_constructor("tag:yaml.org,2002:bool", _JSONishLoader.construct_go_bool)


def check_document(doc: Mapping[str, Any]) -> list[Problem]:
    """Every problem the API server would report for creating `doc`, as `Problem`s ([] = valid).

    The input is not modified. `status` is ignored, as the API server ignores it on create.
    """
    if not isinstance(doc, Mapping):
        return [Problem("<document>", "not a mapping: a Kubernetes object is a YAML mapping", TYPE_INVALID)]
    problems: list[Problem] = []
    if doc.get("apiVersion") != API_VERSION_FULL or doc.get("kind") != KIND:
        problems.append(
            Problem(
                "apiVersion/kind",
                f"expected apiVersion {API_VERSION_FULL} and kind {KIND}, got "
                f"{doc.get('apiVersion')!s} {doc.get('kind')!s}",
                TYPE_INVALID,
            )
        )
        return problems
    obj: dict[str, Any] = _as_json(doc)
    for key in list(obj):
        if key not in _TOP_LEVEL:
            problems.append(Problem(key, f'field not declared in schema (unknown field "{key}")', UNKNOWN))
            del obj[key]
    obj.pop("status", None)
    problems += _check_metadata(obj)

    spec = obj.get("spec")
    if spec is None:
        problems.append(Problem("spec", REQUIRED, REQUIRED))
    else:
        _prune_unknown(spec, SPEC_SCHEMA, "spec", problems)
        apply_defaults(spec, SPEC_SCHEMA)
        _check_schema(spec, SPEC_SCHEMA, "spec", problems)
    if any(problem.kind in BLOCKING for problem in problems):
        problems.append(Problem("spec", RULES_SKIPPED))
    else:
        problems += _check_rules(obj)
    return problems


def validate_document(doc: Mapping[str, Any]) -> list[str]:
    """Validate one PxSecurity object offline: [] if the API server would accept it, else one
    "field: message" line per problem, worded as the API server words it."""
    return [str(problem) for problem in check_document(doc)]


@dataclass(frozen=True)
class DocumentResult:
    """The verdict on one document of a YAML stream; `index` counts from 1, as people do."""

    index: int
    label: str
    problems: list[str]


def _label(doc: Any) -> str:
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        return ""
    name = str(metadata["name"])
    namespace = metadata.get("namespace")
    return f"{namespace}/{name}" if namespace else name


def is_pxsecurity(doc: Any) -> bool:
    """Whether a document is meant as a PxSecurity (and should be validated as one).

    Anything of our kind or our API group counts, so a wrong apiVersion is reported, not skipped;
    other objects in the same file (Namespaces, ConfigMaps, ...) are not ours to judge.
    """
    if not isinstance(doc, Mapping):
        return True
    api_version = str(doc.get("apiVersion", ""))
    return doc.get("kind") == KIND or api_version.split("/")[0] == API_GROUP


def iter_stream(text: str) -> Iterator[DocumentResult | None]:
    """Validate each document of a YAML stream as it is parsed.

    Yields a DocumentResult for every PxSecurity document and None for a document that is skipped
    (empty, or another kind of object), so callers can count them. Parsing is lazy: a YAML syntax
    error raises `yaml.YAMLError` only when the broken document is reached.
    """
    for index, doc in enumerate(yaml.load_all(text, Loader=_JSONishLoader), start=1):
        if doc is None or not is_pxsecurity(doc):
            yield None
            continue
        yield DocumentResult(index, _label(doc), validate_document(doc))


def validate_stream(text: str) -> list[tuple[int, str, list[str]]]:
    """Validate every PxSecurity document in a YAML stream: (document index from 1, "ns/name" or
    name or "", problems) for each. Empty documents and other kinds are skipped. Raises
    `yaml.YAMLError` if the text is not YAML."""
    return [(r.index, r.label, r.problems) for r in iter_stream(text) if r is not None]
