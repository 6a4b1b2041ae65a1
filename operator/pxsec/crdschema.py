"""The schema of a PxSecurity's `spec`: types, enums, defaults, size limits, and the descriptions
`kubectl explain` shows.

It is a module of its own because two consumers read it and neither owns it: `pxsec.crdgen` emits it
into the CRD, where the API server enforces it on `kubectl apply`, and `pxsec.validation` walks it
offline for `pxsec validate`. One schema for both means the two verdicts cannot drift apart. What a
structural schema cannot say (conditions across fields, formats) is in `pxsec.celrules`, which also
reuses the allowed values, regular expressions and limits defined here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from pxsec.keymaterial import CURVE_TABLE
from pxsec.spec import (
    DEFAULT_ECDSA_CURVE,
    DEFAULT_RSA_SIZE,
    DEFAULT_SELF_SIGNED_ISSUER,
    DEFAULT_SHARED_SECRET,
    DEFAULT_SYSTEM_SECRET,
    DEFAULT_TENANT_ROLES,
    DEFAULT_TENANT_SECRET,
    DEFAULT_TOKEN_LIFETIME,
    NAMESPACE_EXIT,
    SELECTOR_OPERATORS,
)

GUEST_ACCESS: Final = ("Enabled", "Disabled", "Managed")
USERNAME_CLAIMS: Final = ("sub", "email", "name")
DELETION_POLICIES: Final = ("Retain", "Delete")
CHANGE_POLICIES: Final = ("Manual", "Automatic")
SIGNING_KEYS: Final = ("SharedSecret", "RSA", "ECDSA")
RSA_SIZES: Final = (2048, 3072, 4096)
ECDSA_CURVES: Final = tuple(c.name for c in CURVE_TABLE)

# Regular expressions shared by CEL (RE2) and Python (re). They are written in the subset where both
# engines agree: no \s, \d or POSIX classes; `$` is translated to `\Z` for Python
# (see `pxsec.celrules.re2_search`).
DNS1123_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# https://, a host (a name, an IPv4 address or a bracketed IPv6 one; no user:password@) and an optional
# port of 1-5 digits, then an optional path: no query, no fragment, no whitespace.
HTTPS_URL_NO_QUERY: Final = (r"^https://(\[[0-9A-Fa-f:.]+\]|[^/?#\t\n\f\r @:\[\]]+)(:[0-9]{1,5})?"
                             r"(/[^?#\t\n\f\r ]*)?$")
TOKEN_LIFETIME: Final = r"^[1-9][0-9]*(s|m|h|d|y)$"
CHANGE_ID: Final = r"^[0-9a-f]{12}$"  # pxsec.impact.change_id
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
MAX_TENANTS: Final = 32
MAX_SELECTOR_TERMS: Final = 16
MAX_SELECTOR_VALUES: Final = 64
MAX_ROLES: Final = 32
MAX_GROUPS: Final = 64
MAX_TEMPLATE_ENTRIES: Final = 64
MAX_ANNOTATION_VALUE: Final = 4096


# --------------------------------------------------------------------------------------------------
# Schema builders and the schema of `spec`
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
                "changePolicy": _string(
                    "With apply: what happens to a change that would restart Portworx pods or make tokens "
                    "fail on a StorageCluster that runs (phase Running or Degraded, or StorageNodes exist). "
                    "Manual: it waits in status.pendingChange (StorageClusterApplied=False, reason "
                    "AwaitingApproval) until approvedChange names it. Automatic: applied at once. A "
                    "StorageCluster that runs nothing yet gets every change at once. Default Manual.",
                    max_length=16,
                    enum=list(CHANGE_POLICIES),
                    default=CHANGE_POLICIES[0],
                ),
                "approvedChange": _string(
                    "The id of the pending change (status.pendingChange.id, also printed by pxsec plan) you "
                    "approve: exactly that change is applied once; a different change needs a new approval.",
                    max_length=12,
                ),
                "probeNodes": {
                    "type": "boolean",
                    "default": True,
                    "description": "Ask each Portworx node (its StorageNode's status.network.mgmtIP, on the SDK "
                    "REST gateway port) whether it accepts a 5-minute, read-only canary token signed with each "
                    "key the StorageCluster gives it: the NodesAcknowledged condition and status.nodes. Needs "
                    "the operator to reach the nodes on that port. Default true.",
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
        "tenants": {
            "type": "array",
            "description": "Tenants (Portworx multi-tenancy, the shared-secret model): for each, one token Secret "
            "in every namespace its namespaceSelector selects — namespaces created later and restore targets "
            "included — kept fresh like spec.tokens, so that a tenant StorageClass (the rendered "
            "storageclass-tenant.yaml, ${pvc.namespace}) finds it. Never in the StorageCluster's namespace; "
            "a namespace two tenants select gets nothing (Conflict); a Secret of that name that is not ours "
            "is never touched. Requires spec.selfSigned.",
            "maxItems": MAX_TENANTS,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": _object(
                "One tenant.",
                {
                    "name": _string("The tenant's name: a DNS label, unique among the tenants.", max_length=63),
                    "namespaceSelector": _object(
                        "The namespaces this tenant owns (a standard label selector; not empty).",
                        {
                            "matchLabels": _string_map("Labels a namespace must have.", value_max=63),
                            "matchExpressions": {
                                "type": "array", "maxItems": MAX_SELECTOR_TERMS,
                                "description": "Requirements on a namespace's labels; all must hold.",
                                "items": _object(
                                    "One requirement.",
                                    {
                                        "key": _string("The label key.", max_length=QUALIFIED_KEY_MAX),
                                        "operator": _string("In, NotIn, Exists or DoesNotExist.", max_length=16,
                                                            enum=list(SELECTOR_OPERATORS)),
                                        "values": {"type": "array", "maxItems": MAX_SELECTOR_VALUES,
                                                   "description": "The values (In, NotIn: at least one; "
                                                   "Exists, DoesNotExist: none).",
                                                   "items": {"type": "string", "maxLength": 63}},
                                    },
                                    required=("key", "operator"),
                                ),
                            },
                        },
                    ),
                    "secretName": _secret_name(
                        f"The Secret in each selected namespace, key auth-token. Default {DEFAULT_TENANT_SECRET}: "
                        "the name the tenant StorageClass gives with ${pvc.namespace}.",
                        default=DEFAULT_TENANT_SECRET,
                    ),
                    "subject": _string(
                        "The token's sub, email and name: the identity Portworx records as the owner of the "
                        "volumes the tenant creates. Default: the tenant's name. Cannot change once set "
                        "(the volumes would lose their owner).",
                        max_length=MAX_CLAIM,
                    ),
                    "roles": {
                        "type": "array",
                        "description": "Portworx roles in the token. Default [system.user]; system.admin is "
                        "refused (every pod that can read the namespace's Secrets would be a Portworx admin).",
                        "default": list(DEFAULT_TENANT_ROLES),
                        "minItems": 1,
                        "maxItems": MAX_ROLES,
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    },
                    "groups": {
                        "type": "array",
                        "description": 'Groups in the token (e.g. the tenant\'s name). "*" is refused: it makes '
                        "the token an ownership admin over every volume. Default none.",
                        "maxItems": MAX_GROUPS,
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    },
                    "signingKey": _string(
                        "Which spec.selfSigned key signs the tenant's tokens (SharedSecret, RSA, ECDSA); if "
                        "omitted, as for spec.tokens. A key rotation moves RSA/ECDSA tokens with it.",
                        max_length=16,
                        enum=list(SIGNING_KEYS),
                    ),
                    "tokenLifetime": _string(
                        "The tenant tokens' lifetime (e.g. 24h); default selfSigned.tokenLifetime. Each is "
                        "renewed between half and three quarters of it, spread per namespace.",
                        max_length=16,
                    ),
                    "onNamespaceExit": _string(
                        "A namespace that stops being selected: Orphan keeps its Secret (default), Delete "
                        "deletes it — never while a PersistentVolume provisioned with it exists (its volume "
                        "could not be deleted).",
                        max_length=8,
                        enum=list(NAMESPACE_EXIT),
                        default="Orphan",
                    ),
                },
                required=("name", "namespaceSelector"),
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
            "with it — every token signed with those keys stops working — and a key a rotation replaced is "
            "deleted once no Portworx pod mounts it. Default Retain.",
            max_length=8,
            enum=list(DELETION_POLICIES),
            default="Retain",
        ),
        "rotation": _object(
            "Rotate keys on a running cluster (docs/rotation.md). The asymmetric signing key without a "
            "rejected request: the RSA and ECDSA slots take turns; a new key goes into a new Secret "
            "(<name>-r<n>) in the free slot, the StorageCluster mounts it beside the current one (one rolling "
            "restart, approved like any change to a running cluster), once every Portworx node accepts it "
            "(NodesAcknowledged) every token not signed with the shared secret is signed with it, and after "
            "the grace period the old key is retired (still trusted until the next rotation replaces it). "
            "Start one by giving the annotation pxsec.dev/rotate-keys a new value, or by a schedule (every). "
            "The shared secret only on demand (annotation pxsec.dev/rotate-shared-secret): Portworx holds one "
            "shared secret, so tokens signed with the old one fail on restarted nodes, and new ones on nodes "
            "not yet restarted, until the rolling restart ends. Needs spec.selfSigned and apply: true on the "
            "StorageCluster; a schedule needs selfSigned.rsa or .ecdsa.",
            {
                "every": _string(
                    "Start a rotation of the asymmetric key this long after the last one started (e.g. 90d): "
                    "one whole number and one unit, s, m, h, d or y. Without it, only the annotation starts one.",
                    max_length=16,
                ),
                "gracePeriod": _string(
                    "How long the old key stays the one not retired after every token is signed with the new "
                    "one. Default: the tokens' lifetime (selfSigned.tokenLifetime).",
                    max_length=16,
                ),
                "emergency": {
                    "type": "boolean",
                    "default": False,
                    "description": "After a leak: no grace period, and the old key is no longer given to "
                    "Portworx (a second rolling restart); the rotation completes once every node rejects a "
                    "token signed with it. Any token signed with it outside our Secrets is rejected from then.",
                },
            },
        ),
    },
)


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


def defaulted(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of `spec` with the schema's defaults filled in and nulls pruned, as the API server stores it:
    the one source of every default (`spec.parse_spec` reads only what this returns)."""
    out: dict[str, Any] = copy.deepcopy(dict(spec or {}))
    apply_defaults(out, SPEC_SCHEMA)
    return out
