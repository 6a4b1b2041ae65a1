"""The PxSecurity spec as typed, defaulted values.

The CRD's schema and CEL rules (and `pxsec.validation` offline) decide whether a spec is acceptable;
this module only turns an accepted spec mapping into frozen dataclasses with the same defaults the CRD
declares, so the core never has to ask "is this key present?". Parsing is pure and never touches the
cluster: the operator and the offline CLI both start here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_GROUP = "pxsec.dev"
API_VERSION = "v1alpha1"
KIND = "PxSecurity"
PLURAL = "pxsecurities"

DEFAULT_SYSTEM_SECRET = "px-system-secrets"
DEFAULT_SHARED_SECRET = "px-shared-secret"
DEFAULT_SELF_SIGNED_ISSUER = "operator.portworx.io"
DEFAULT_TOKEN_LIFETIME = "24h"
# tokenLifetime: one whole number and one unit (a year is 365 days), at most 100 years — the one
# source of these figures for the CRD rule, `pxsec validate` and the minting code.
LIFETIME_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
MAX_TOKEN_LIFETIME_SECONDS = 100 * 365 * 86400
DEFAULT_RSA_SIZE = 4096
DEFAULT_ECDSA_CURVE = "P-256"

# Keys inside the Secrets, exactly as Portworx and its operator name them.
KEY_SYSTEM_SECRET = "system-secret"
KEY_APPS_SECRET = "apps-secret"
KEY_SHARED_SECRET = "shared-secret"
KEY_PRIVATE_PEM = "private.pem"
KEY_PUBLIC_PEM = "public.pem"
KEY_AUTH_TOKEN = "auth-token"
DEFAULT_TENANT_SECRET = "px-user-token"  # the name tenant StorageClasses use with ${pvc.namespace}
DEFAULT_TENANT_ROLES = ("system.user",)
NAMESPACE_EXIT = ("Orphan", "Delete")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SpecError(ValueError):
    """The spec cannot be read at all (wrong type where a mapping was expected)."""


@dataclass(frozen=True)
class StorageClusterRef:
    """`spec.storageCluster`. `targeted` is whether the field is there at all: a PxSecurity that names a
    StorageCluster shares Secrets with the Portworx Operator that runs it (see `pxsec.coexist`)."""

    name: str | None = None
    apply: bool = False
    targeted: bool = False
    change_policy: str = "Manual"  # Manual | Automatic: changes that disrupt a running cluster wait for approval
    approved_change: str | None = None  # the id of the pending change a person approved
    probe_nodes: bool = True  # ask each Portworx node whether it accepts the current keys (pxsec.nodecheck)


@dataclass(frozen=True)
class CARef:
    config_map: str
    key: str = "ca.crt"


@dataclass(frozen=True)
class OIDC:
    issuer: str
    client_id: str
    custom_claim_namespace: str | None = None
    certificate_authority: CARef | None = None


@dataclass(frozen=True)
class RSAKey:
    secret_name: str
    size: int = DEFAULT_RSA_SIZE


@dataclass(frozen=True)
class ECDSAKey:
    secret_name: str
    curve: str = DEFAULT_ECDSA_CURVE


@dataclass(frozen=True)
class KeyRotation:
    """`spec.rotation` (pxsec.rotation): lifetimes as written (`90d`), parsed where used."""

    every: str | None = None
    grace_period: str | None = None
    emergency: bool = False


@dataclass(frozen=True)
class SelfSigned:
    issuer: str = DEFAULT_SELF_SIGNED_ISSUER
    token_lifetime: str = DEFAULT_TOKEN_LIFETIME
    shared_secret: str | None = None
    rsa: RSAKey | None = None
    ecdsa: ECDSAKey | None = None


@dataclass(frozen=True)
class TokenSpec:
    secret_name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...] = ()
    signing_key: str | None = None  # SharedSecret | RSA | ECDSA; None = best available


@dataclass(frozen=True)
class LabelSelector:
    """A standard label selector (metav1.LabelSelector): matchLabels and matchExpressions, all must hold."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (key, operator, values)


@dataclass(frozen=True)
class TenantSpec:
    """`spec.tenants[]`: one token per selected namespace, in Secret `secret_name`."""

    name: str
    selector: LabelSelector
    secret_name: str = DEFAULT_TENANT_SECRET
    subject: str = ""  # sub/email/name of the token; "" = the tenant's name
    roles: tuple[str, ...] = DEFAULT_TENANT_ROLES
    groups: tuple[str, ...] = ()
    signing_key: str | None = None  # None: the best available, as for spec.tokens
    token_lifetime: str | None = None  # None: selfSigned.tokenLifetime
    on_namespace_exit: str = "Orphan"

    @property
    def identity(self) -> str:
        return self.subject or self.name


@dataclass(frozen=True)
class SecretTemplate:
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PxSecuritySpec:
    storage_cluster: StorageClusterRef = StorageClusterRef()
    guest_access: str = "Enabled"
    username_claim: str = "sub"
    system_secret: str = DEFAULT_SYSTEM_SECRET
    oidc: OIDC | None = None
    self_signed: SelfSigned | None = None
    tokens: tuple[TokenSpec, ...] = ()
    secret_template: SecretTemplate = SecretTemplate()
    deletion_policy: str = "Retain"
    rotation: KeyRotation | None = None
    tenants: tuple[TenantSpec, ...] = ()


def _map(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a mapping")
    return value


def _rotation(r: Mapping[str, Any]) -> KeyRotation:
    every, grace = r.get("every"), r.get("gracePeriod")
    return KeyRotation(every=str(every) if every else None, grace_period=str(grace) if grace else None,
                       emergency=r.get("emergency") is True)


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where} must be a list of strings")
    return tuple(value)


def _str_map(value: Any, where: str) -> dict[str, str]:
    raw = _map(value, where)
    return {str(k): str(v) for k, v in raw.items()}


def parse_spec(raw: Any) -> PxSecuritySpec:
    """Turn an accepted `spec` mapping into a PxSecuritySpec, filling the CRD's defaults.

    Raises only SpecError: whatever shape the input has (a stored object from before a CRD rule, a file
    on the command line), callers catch one exception type.
    """
    try:
        return _parse(raw)
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecError(f"spec cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


def _parse(raw: Any) -> PxSecuritySpec:
    # The defaults are the CRD's (crdschema), filled in as the API server does; nothing here repeats
    # one. Imported here: crdschema itself imports this module's names.
    from pxsec.crdschema import defaulted

    spec = defaulted(_map(raw, "spec"))

    sc = _map(spec.get("storageCluster"), "spec.storageCluster")
    storage_cluster = StorageClusterRef(name=sc.get("name"), apply=bool(sc.get("apply")),
                                        targeted="storageCluster" in spec,
                                        change_policy=str(sc.get("changePolicy", StorageClusterRef.change_policy)),
                                        approved_change=sc.get("approvedChange"),
                                        probe_nodes=sc.get("probeNodes") is not False)

    oidc: OIDC | None = None
    if "oidc" in spec:
        o = _map(spec["oidc"], "spec.oidc")
        ca_ref = _map(_map(o.get("certificateAuthority"), "spec.oidc.certificateAuthority").get("configMapRef"),
                      "spec.oidc.certificateAuthority.configMapRef")
        oidc = OIDC(
            issuer=str(o["issuer"]),
            client_id=str(o.get("clientID", "")),
            custom_claim_namespace=o.get("customClaimNamespace") or None,
            certificate_authority=CARef(config_map=str(ca_ref["name"]), key=str(ca_ref["key"])) if ca_ref else None,
        )

    self_signed: SelfSigned | None = None
    if "selfSigned" in spec:
        s = _map(spec["selfSigned"], "spec.selfSigned")
        rsa = _map(s["rsa"], "spec.selfSigned.rsa") if "rsa" in s else None
        ecdsa = _map(s["ecdsa"], "spec.selfSigned.ecdsa") if "ecdsa" in s else None
        self_signed = SelfSigned(
            issuer=str(s["issuer"]),
            token_lifetime=str(s["tokenLifetime"]),
            shared_secret=str(_map(s["sharedSecret"], "spec.selfSigned.sharedSecret")["secretName"])
            if "sharedSecret" in s else None,
            rsa=RSAKey(secret_name=str(rsa["secretName"]), size=int(rsa["size"])) if rsa is not None else None,
            ecdsa=ECDSAKey(secret_name=str(ecdsa["secretName"]), curve=str(ecdsa["curve"])) if ecdsa is not None
            else None,
        )

    tokens_raw = spec.get("tokens") or []
    if not isinstance(tokens_raw, list):
        raise SpecError("spec.tokens must be a list")
    tokens = tuple(
        TokenSpec(
            secret_name=str(_map(t, f"spec.tokens[{i}]")["secretName"]),
            roles=_strs(t.get("roles"), f"spec.tokens[{i}].roles"),
            groups=_strs(t.get("groups"), f"spec.tokens[{i}].groups"),
            signing_key=t.get("signingKey"),
        )
        for i, t in enumerate(tokens_raw)
    )

    tmpl = _map(spec.get("secretTemplate"), "spec.secretTemplate")
    return PxSecuritySpec(
        storage_cluster=storage_cluster,
        guest_access=str(spec["guestAccess"]),
        username_claim=str(spec["usernameClaim"]),
        system_secret=str(_map(spec["system"], "spec.system")["secretName"]),
        oidc=oidc,
        self_signed=self_signed,
        tokens=tokens,
        secret_template=SecretTemplate(
            labels=_str_map(tmpl.get("labels"), "spec.secretTemplate.labels"),
            annotations=_str_map(tmpl.get("annotations"), "spec.secretTemplate.annotations"),
        ),
        deletion_policy=str(spec["deletionPolicy"]),
        rotation=_rotation(_map(spec["rotation"], "spec.rotation")) if "rotation" in spec else None,
        tenants=_tenants(spec.get("tenants")),
    )


def _selector(value: Any, where: str) -> LabelSelector:
    raw = _map(value, where)
    expressions = []
    for i, e in enumerate(raw.get("matchExpressions") or []):
        e = _map(e, f"{where}.matchExpressions[{i}]")
        expressions.append((str(e.get("key", "")), str(e.get("operator", "")),
                            _strs(e.get("values"), f"{where}.matchExpressions[{i}].values")))
    return LabelSelector(_str_map(raw.get("matchLabels"), f"{where}.matchLabels"), tuple(expressions))


def _tenants(value: Any) -> tuple[TenantSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError("spec.tenants must be a list")
    out = []
    for i, t in enumerate(value):
        where = f"spec.tenants[{i}]"
        t = _map(t, where)
        out.append(TenantSpec(
            name=str(t.get("name", "")),
            selector=_selector(t.get("namespaceSelector"), f"{where}.namespaceSelector"),
            secret_name=str(t.get("secretName") or DEFAULT_TENANT_SECRET),
            subject=str(t.get("subject") or ""),
            roles=_strs(t.get("roles"), f"{where}.roles") if t.get("roles") is not None else DEFAULT_TENANT_ROLES,
            groups=_strs(t.get("groups"), f"{where}.groups"),
            signing_key=str(t["signingKey"]) if t.get("signingKey") else None,
            token_lifetime=str(t["tokenLifetime"]) if t.get("tokenLifetime") else None,
            on_namespace_exit=str(t.get("onNamespaceExit") or "Orphan"),
        ))
    return tuple(out)
