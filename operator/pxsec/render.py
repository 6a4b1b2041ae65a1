"""Render the initialization parameters of a storage cluster from a PxSecurity spec — pure, one code path.

The operator writes `render_all(...)` into the ConfigMap `configmap_name(cr)`; `pxsec render --target T`
prints `render_text(..., T, fmt)`. Both call the functions below with the same (defaulted) spec, so the
offline output is byte-for-byte what the operator stores: a GitOps pipeline can diff them.

**Nothing secret is rendered, by construction.** The renderer receives only the spec — Secret *names* —
never Secret data, so it cannot leak a value: secret values reach Portworx as `valueFrom.secretKeyRef`,
public keys as files mounted from their Secret (only the `public.pem` key is projected, so a private key
never reaches a Portworx pod).

Targets, and the facts they rest on (Portworx Operator `component/auth.go`, `util.go`; OpenStorage):

* `storagecluster` — a patch for a `core.libopenstorage.org/v1` StorageCluster; see `storagecluster()`.
* `daemonset` — env, volumes and volumeMounts for a DaemonSet-based install (no Portworx Operator).
* `px-runc` — `px-runc` / oci-monitor arguments (single dash, underscores) plus the secret env.
* `stork` — `PX_SHARED_SECRET` and `PX_JWT_ISSUER` for a Stork that the Portworx Operator does not run.
* `storageclass` — CSI and in-tree StorageClass parameters pointing volumes at the user token Secret.
* `storageclass-tenant` — CSI StorageClass parameters for tenants: each tenant's token Secret, looked up in
  the PVC's namespace (`${pvc.namespace}`).

Environment names are those Portworx reads: `PORTWORX_AUTH_JWT_ECDS_PUBKEY` is spelled ECDS (not ECDSA),
and the `*_PUBKEY` values are file paths, as the Portworx Operator's migration copies the
`-jwt_*_pubkey_file <file>` arguments into them. `PORTWORX_AUTH_SYSTEM_APPS_KEY` (issuer
`apps.portworx.io`) needs Portworx >= 2.6 and Stork >= 2.5; older clusters used `PORTWORX_AUTH_STORK_KEY`
with issuer `stork.openstorage.io`, which this renderer does not produce.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import yaml

from pxsec.keymaterial import KeyKind
from pxsec.spec import (
    DEFAULT_SYSTEM_SECRET,
    DEFAULT_TENANT_SECRET,
    KEY_APPS_SECRET,
    KEY_AUTH_TOKEN,
    KEY_PUBLIC_PEM,
    KEY_SHARED_SECRET,
    KEY_SYSTEM_SECRET,
    PxSecuritySpec,
)

TARGETS: Final = ("storagecluster", "daemonset", "px-runc", "stork", "storageclass", "storageclass-tenant")
FORMATS: Final = ("yaml", "json")

STORAGECLUSTER_API_VERSION: Final = "core.libopenstorage.org/v1"
STORAGECLUSTER_KIND: Final = "StorageCluster"
DEFAULT_NAMESPACE: Final = "default"
CONFIGMAP_SUFFIX: Final = "-px-security"
MAX_NAME: Final = 253

# Environment variables of the Portworx container (facts 1a).
ENV_SYSTEM_KEY: Final = "PORTWORX_AUTH_SYSTEM_KEY"
ENV_APPS_KEY: Final = "PORTWORX_AUTH_SYSTEM_APPS_KEY"
ENV_SHARED_SECRET: Final = "PORTWORX_AUTH_JWT_SHAREDSECRET"
ENV_JWT_ISSUER: Final = "PORTWORX_AUTH_JWT_ISSUER"
ENV_OIDC_ISSUER: Final = "PORTWORX_AUTH_OIDC_ISSUER"
ENV_OIDC_CLIENT_ID: Final = "PORTWORX_AUTH_OIDC_CLIENTID"
ENV_OIDC_NAMESPACE: Final = "PORTWORX_AUTH_OIDC_CUSTOM_NAMESPACE"
ENV_USERNAME_CLAIM: Final = "PORTWORX_AUTH_USERNAME_CLAIM"
ENV_RSA_PUBKEY: Final = "PORTWORX_AUTH_JWT_RSA_PUBKEY"
ENV_ECDS_PUBKEY: Final = "PORTWORX_AUTH_JWT_ECDS_PUBKEY"  # sic: ECDS

# Stork and Autopilot (facts 1a, 2).
ENV_PX_SHARED_SECRET: Final = "PX_SHARED_SECRET"
ENV_PX_JWT_ISSUER: Final = "PX_JWT_ISSUER"
APPS_ISSUER: Final = "apps.portworx.io"

# Where the public keys are mounted. The StorageCluster CRD asks for files "installed on a subfolder
# under /etc/pwx" (its TLS fields say so), and /etc/pwx is what px-runc containers see of the host.
PUBKEY_ROOT: Final = "/etc/pwx/pxsec"

# The user token Secret the Portworx Operator mints itself when security is on (facts 2).
PORTWORX_USER_TOKEN_SECRET: Final = "px-user-token"
USER_ROLE: Final = "system.user"
CSI_PROVISIONER: Final = "pxd.portworx.com"
IN_TREE_PROVISIONER: Final = "kubernetes.io/portworx-volume"


@dataclass(frozen=True)
class PublicKey:
    """One self-signed public key Portworx reads from a file: where it comes from and where it goes."""

    kind: KeyKind  # RSA or ECDSA: also the mount folder and the volume name's middle
    secret_name: str
    env: str
    flag: str

    @property
    def volume_name(self) -> str:
        return f"pxsec-{self.kind}-pubkey"

    @property
    def mount_path(self) -> str:
        return f"{PUBKEY_ROOT}/{self.kind}"

    @property
    def file_path(self) -> str:
        return f"{self.mount_path}/{KEY_PUBLIC_PEM}"


def public_keys(spec: PxSecuritySpec) -> list[PublicKey]:
    """The configured public keys, RSA first (a fixed order keeps every rendering stable)."""
    ss = spec.self_signed
    keys: list[PublicKey] = []
    if ss is not None and ss.rsa is not None:
        keys.append(PublicKey(KeyKind.RSA, ss.rsa.secret_name, ENV_RSA_PUBKEY, "-jwt_rsa_pubkey_file"))
    if ss is not None and ss.ecdsa is not None:
        keys.append(PublicKey(KeyKind.ECDSA, ss.ecdsa.secret_name, ENV_ECDS_PUBKEY, "-jwt_ecds_pubkey_file"))
    return keys


# --------------------------------------------------------------------------------------------------
# Building blocks: env entries and volumes
# --------------------------------------------------------------------------------------------------


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _system_env(spec: PxSecuritySpec) -> list[dict[str, Any]]:
    """System key and apps key, from the system Secret (never their values)."""
    return [
        _from_secret(ENV_SYSTEM_KEY, spec.system_secret, KEY_SYSTEM_SECRET),
        _from_secret(ENV_APPS_KEY, spec.system_secret, KEY_APPS_SECRET),
    ]


def _oidc_env(spec: PxSecuritySpec) -> list[dict[str, Any]]:
    if spec.oidc is None:
        return []
    env = [_value(ENV_OIDC_ISSUER, spec.oidc.issuer), _value(ENV_OIDC_CLIENT_ID, spec.oidc.client_id)]
    if spec.oidc.custom_claim_namespace:
        env.append(_value(ENV_OIDC_NAMESPACE, spec.oidc.custom_claim_namespace))
    return env


def _claim_and_key_env(spec: PxSecuritySpec) -> list[dict[str, Any]]:
    """The username claim (always: explicit beats a default someone else may change) and key paths."""
    env = [_value(ENV_USERNAME_CLAIM, spec.username_claim)]
    env += [_value(key.env, key.file_path) for key in public_keys(spec)]
    return env


def _secret_volume(key: PublicKey) -> dict[str, Any]:
    """Only public.pem is projected: the private key in the same Secret never reaches Portworx."""
    return {"secretName": key.secret_name, "items": [{"key": KEY_PUBLIC_PEM, "path": KEY_PUBLIC_PEM}]}


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


def storagecluster(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """A patch for the StorageCluster: `spec.security`, `spec.env`, `spec.volumes`.

    What goes where, and why:

    * `spec.security.enabled: true` and `auth.guestAccess`. `auth.enabled` is left out: unset, it
      inherits `security.enabled`.
    * `auth.selfSigned` only when spec.selfSigned exists: `issuer`, `tokenLifetime`, and `sharedSecret`
      = the *name* of our shared-secret Secret, so the Portworx Operator reads its HS256 key from our
      Secret (and mints its own px-admin-token / px-user-token with it) instead of generating its own.
      Without a shared secret in our spec the field is omitted and the Portworx Operator falls back to
      `px-shared-secret`, generated by itself — it always signs its tokens with HS256.
    * The Portworx Operator itself injects `PORTWORX_AUTH_JWT_SHAREDSECRET` (from the selfSigned
      sharedSecret Secret), `PORTWORX_AUTH_JWT_ISSUER` (selfSigned.issuer), `PORTWORX_AUTH_SYSTEM_KEY`
      and `PORTWORX_AUTH_SYSTEM_APPS_KEY` (both from `px-system-secrets`) whenever security is on, so
      they are not repeated here. Exception: when spec.system.secretName is not `px-system-secrets`
      the Portworx Operator would read (or generate) `px-system-secrets`; it looks at a `spec.env`
      entry of the same name first, so the two are added as `secretKeyRef`s to our Secret.
    * `spec.env`: the OIDC settings (there are no OIDC fields in the StorageCluster CRD), the username
      claim (always, even `sub`), and the public-key file paths (`PORTWORX_AUTH_JWT_RSA_PUBKEY`,
      `PORTWORX_AUTH_JWT_ECDS_PUBKEY`).
    * `spec.volumes` in the CRD's own shape (`name`, `mountPath`, `readOnly`, `secret.{secretName,
      items}`): each key's Secret mounted where its env entry points. Omitted when there is no key,
      because the list is atomic: an empty list applied as it is would wipe the user's volumes.

    The name is spec.storageCluster.name, else the PxSecurity's name (`cr_name`).
    """
    name = spec.storage_cluster.name or cr_name
    if not name:
        raise ValueError("the storagecluster target needs spec.storageCluster.name or the PxSecurity's name")
    auth: dict[str, Any] = {"guestAccess": spec.guest_access}
    ss = spec.self_signed
    if ss is not None:
        self_signed: dict[str, Any] = {"issuer": ss.issuer, "tokenLifetime": ss.token_lifetime}
        if ss.shared_secret:
            self_signed["sharedSecret"] = ss.shared_secret
        auth["selfSigned"] = self_signed
    env: list[dict[str, Any]] = []
    if spec.system_secret != DEFAULT_SYSTEM_SECRET:
        env += _system_env(spec)
    env += _oidc_env(spec)
    env += _claim_and_key_env(spec)
    body: dict[str, Any] = {"security": {"enabled": True, "auth": auth}, "env": env}
    volumes = [
        {"name": key.volume_name, "mountPath": key.mount_path, "readOnly": True, "secret": _secret_volume(key)}
        for key in public_keys(spec)
    ]
    if volumes:
        body["volumes"] = volumes
    return {
        "apiVersion": STORAGECLUSTER_API_VERSION,
        "kind": STORAGECLUSTER_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def daemonset(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """Env, pod volumes and container volumeMounts for the Portworx container of a DaemonSet install.

    Without the Portworx Operator nothing is injected, so every setting is here: the secrets as
    `secretKeyRef` (system key, apps key, the JWT shared secret when configured), the self-signed
    issuer, OIDC, username claim and public-key paths as plain values.
    """
    env = _system_env(spec)
    ss = spec.self_signed
    if ss is not None:
        if ss.shared_secret:
            env.append(_from_secret(ENV_SHARED_SECRET, ss.shared_secret, KEY_SHARED_SECRET))
        env.append(_value(ENV_JWT_ISSUER, ss.issuer))
    env += _oidc_env(spec)
    env += _claim_and_key_env(spec)
    keys = public_keys(spec)
    return {
        "env": env,
        "volumeMounts": [{"name": k.volume_name, "mountPath": k.mount_path, "readOnly": True} for k in keys],
        "volumes": [{"name": k.volume_name, "secret": _secret_volume(k)} for k in keys],
    }


def px_runc(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """`px-runc install` / oci-monitor arguments, the secret env, and the public-key files.

    Portworx takes secrets only as environment variables, so they are `env` (`secretKeyRef`, for the
    oci-monitor container; on a host, export the Secret's value under that name). Everything else is an
    argument (single dash, underscores). `files` names which Secret key must be at which path on every
    node for `-jwt_*_pubkey_file`.
    """
    args: list[str] = []
    if spec.oidc is not None:
        args += ["-oidc_issuer", spec.oidc.issuer, "-oidc_client_id", spec.oidc.client_id]
        if spec.oidc.custom_claim_namespace:
            args += ["-oidc_custom_claim_namespace", spec.oidc.custom_claim_namespace]
    env = _system_env(spec)
    ss = spec.self_signed
    if ss is not None:
        args += ["-jwt_issuer", ss.issuer]
        if ss.shared_secret:
            env.append(_from_secret(ENV_SHARED_SECRET, ss.shared_secret, KEY_SHARED_SECRET))
    keys = public_keys(spec)
    for key in keys:
        args += [key.flag, key.file_path]
    args += ["-username_claim", spec.username_claim]
    files = [{"path": k.file_path, "secretKeyRef": {"name": k.secret_name, "key": KEY_PUBLIC_PEM}} for k in keys]
    return {"args": args, "env": env, "files": files}


def stork(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """Env for a Stork (or Autopilot) deployment that talks to a PX-Security cluster.

    Stork signs its own tokens with `PX_SHARED_SECRET` and puts `PX_JWT_ISSUER` in their `iss`.
    Portworx picks the verifying key by the exact issuer, and it verifies `apps.portworx.io` tokens with
    `PORTWORX_AUTH_SYSTEM_APPS_KEY` = the system Secret's `apps-secret`. So the secret is that key and
    the issuer is `apps.portworx.io` — never the self-signed issuer, which Portworx would check against
    the user shared secret and reject. (The Portworx Operator sets the same pair on the Stork it runs,
    reading `px-system-secrets` by that fixed name; with another system Secret name it copies the
    values named by the StorageCluster's `spec.env` into `px-system-secrets` when that Secret lacks them.)
    """
    return {
        "env": [
            _from_secret(ENV_PX_SHARED_SECRET, spec.system_secret, KEY_APPS_SECRET),
            _value(ENV_PX_JWT_ISSUER, APPS_ISSUER),
        ]
    }


def user_token_secret(spec: PxSecuritySpec) -> tuple[str, bool]:
    """(Secret name, minted by this operator?) of the token StorageClasses should use.

    With a StorageCluster targeted, `px-user-token`: the Portworx Operator running that cluster mints
    it whenever security is on, and it is the name its own StorageClasses use (`pxsec.coexist`).
    Otherwise the first spec.tokens entry with role `system.user` (least privilege that can manage
    volumes); else `px-user-token` all the same, with a note.
    """
    if spec.storage_cluster.targeted:
        return PORTWORX_USER_TOKEN_SECRET, False
    for token in spec.tokens:
        if USER_ROLE in token.roles:
            return token.secret_name, True
    return PORTWORX_USER_TOKEN_SECRET, False


def storageclass(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """StorageClass parameters that hand the user token to CSI (`pxd.portworx.com`) and in-tree volumes.

    CSI gets no environment: the external provisioner, node plugin and resizer read the token from the
    Secret named by `csi.storage.k8s.io/{provisioner,node-publish,controller-expand}-secret-*`;
    the in-tree driver from `openstorage.io/auth-secret-*`. The Secret's key is `auth-token`.
    """
    secret, ours = user_token_secret(spec)
    csi: dict[str, str] = {}
    for op in ("provisioner", "node-publish", "controller-expand"):
        csi[f"csi.storage.k8s.io/{op}-secret-name"] = secret
        csi[f"csi.storage.k8s.io/{op}-secret-namespace"] = namespace
    out: dict[str, Any] = {
        "tokenSecret": {
            "name": secret,
            "namespace": namespace,
            "key": KEY_AUTH_TOKEN,
            "mintedBy": "px-security-operator" if ours else "Portworx Operator",
        },
    }
    if not ours and not spec.storage_cluster.targeted:
        out["note"] = (
            f"no spec.tokens entry has role {USER_ROLE}: these parameters point at "
            f"{PORTWORX_USER_TOKEN_SECRET}, which the Portworx Operator mints when it runs the cluster "
            f"with security on; for any other install add a token with roles [{USER_ROLE}] to the PxSecurity"
        )
    out["csi"] = {"provisioner": CSI_PROVISIONER, "parameters": csi}
    out["inTree"] = {
        "provisioner": IN_TREE_PROVISIONER,
        "parameters": {"openstorage.io/auth-secret-name": secret, "openstorage.io/auth-secret-namespace": namespace},
    }
    return out


def storageclass_tenant(spec: PxSecuritySpec, namespace: str, cr_name: str | None) -> dict[str, Any]:
    """StorageClass parameters for tenants (Portworx multi-tenancy, CSI only): the token Secret is looked up
    in the namespace of each PVC (`${pvc.namespace}`, external-provisioner's template), where the operator
    keeps the tenant's token (spec.tenants). One class per tenant Secret name. StorageClasses cannot be
    changed once created, and a PersistentVolume keeps the Secret reference it was provisioned with: the
    Secret's name chosen here is for good."""
    by_secret: dict[str, list[str]] = {}
    for tenant in spec.tenants:
        by_secret.setdefault(tenant.secret_name, []).append(tenant.name)
    out: dict[str, Any] = {}
    if not by_secret:
        by_secret = {DEFAULT_TENANT_SECRET: []}
        out["note"] = ("no spec.tenants: these parameters point at the default tenant Secret name, which the "
                       "operator keeps only in the namespaces a tenant selects")
    classes = []
    for secret, names in sorted(by_secret.items()):
        parameters: dict[str, str] = {}
        for op in ("provisioner", "node-publish", "controller-expand"):
            parameters[f"csi.storage.k8s.io/{op}-secret-name"] = secret
            parameters[f"csi.storage.k8s.io/{op}-secret-namespace"] = "${pvc.namespace}"
        classes.append({"tokenSecret": {"name": secret, "namespace": "${pvc.namespace}", "key": KEY_AUTH_TOKEN},
                        "tenants": names, "csi": {"provisioner": CSI_PROVISIONER, "parameters": parameters}})
    out["storageClasses"] = classes
    return out


_RENDERERS: Final[dict[str, Callable[[PxSecuritySpec, str, str | None], dict[str, Any]]]] = {
    "storagecluster": storagecluster,
    "daemonset": daemonset,
    "px-runc": px_runc,
    "stork": stork,
    "storageclass": storageclass,
    "storageclass-tenant": storageclass_tenant,
}


# --------------------------------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------------------------------


def render(spec: PxSecuritySpec, namespace: str | None, target: str, *, cr_name: str | None = None) -> dict[str, Any]:
    """The structured rendering of one target (a fresh object each call: callers may mutate it).

    `namespace` is the PxSecurity's namespace, where its Secrets are; None means `default`, where
    kubectl puts an object that names none. `cr_name` is the PxSecurity's name, the StorageCluster's
    name when spec.storageCluster.name is absent.
    """
    if target not in _RENDERERS:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    return _RENDERERS[target](spec, namespace or DEFAULT_NAMESPACE, cr_name)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  # libyaml when present
    """SafeDumper without anchors/aliases, quoting every string that some YAML reader on the way to the
    API server would take for something else.

    PyYAML resolves YAML 1.1; kubectl (sigs.k8s.io/yaml, go-yaml) and YAML 1.2 readers also read `1e3`
    and `2E-5` as floats (no dot needed), `0o17`, `0b101` and `1_000` as integers, and `y`/`n` as
    booleans. A Secret or StorageCluster named `1e3` is a valid DNS name: written plain, it would come
    back as the number 1000.0. Each resolver below only makes the dumper quote such strings.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_data(self, data: Any) -> yaml.Node:
        """The nodes SafeRepresenter makes, for the types renderers produce, without its per-object
        dispatch and alias bookkeeping (no aliases here): the representer was most of a ConfigMap's render
        time, and an operator renders one per object it creates. Anything else, and any other style
        setting, goes the general way (tests/unit/test_render_yaml.py holds the two equal)."""
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR, data)
        if self.default_style is not None or self.default_flow_style is None or self.sort_keys:
            return cast(yaml.Node, super().represent_data(data))
        if kind is dict:
            return yaml.MappingNode(_MAP, [(self.represent_data(k), self.represent_data(v)) for k, v in data.items()],
                                    flow_style=self.default_flow_style)
        if kind is list:
            return yaml.SequenceNode(_SEQ, [self.represent_data(item) for item in data],
                                     flow_style=self.default_flow_style)
        if kind is bool:
            return yaml.ScalarNode(_BOOL, "true" if data else "false")
        if kind is int:
            return yaml.ScalarNode(_INT, str(data))
        if data is None:
            return yaml.ScalarNode(_NULL, "null")
        return cast(yaml.Node, super().represent_data(data))

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The implicit tag of a scalar, remembered: the same keys and values recur in every document, and
        each look-up runs the resolvers' regular expressions (bounded: a namespace name is new every time)."""
        if kind is not yaml.ScalarNode or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) < _RESOLVED_MAX:
                _RESOLVED[key] = tag
        return tag


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_BOOL, _INT, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:null"
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}
_RESOLVED_MAX = 4096


_Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9_]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
               r"|^\.(?:nan|NaN|NAN)$"),
    list("-+.0123456789"))
_Dumper.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(?:0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+|[0-9][0-9_]*)$"),
    list("-+0123456789"))


def to_text(obj: Any, fmt: str = "yaml") -> str:
    """Deterministic text: the renderers' fixed key order, no line folding, a trailing newline."""
    if fmt == "yaml":
        text: str = yaml.dump(
            obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=2**31 - 1
        )
        return text
    if fmt == "json":
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def render_text(
    spec: PxSecuritySpec, namespace: str | None, target: str, fmt: str = "yaml", *, cr_name: str | None = None
) -> str:
    """`render(...)` as text: what `pxsec render -o FMT` prints and (yaml) what the ConfigMap holds."""
    obj = render(spec, namespace, target, cr_name=cr_name)
    if fmt == "yaml" and _plain(namespace or DEFAULT_NAMESPACE):
        # Rendered for a stand-in namespace, the text is the same for every namespace (remembered once);
        # the namespace is then put in its places. Valid when the namespace is written as itself (a plain
        # scalar, as the stand-in is), nothing else in the rendering is the stand-in, and the stand-in
        # fills the namespace's places whole (never part of a longer string).
        marked = render(spec, _NS_MARK, target, cr_name=cr_name)
        if _NS_MARK not in json.dumps(obj, ensure_ascii=False):
            text = _yaml_text(marked)
            if text.count(_NS_MARK) == _mark_slots(marked):
                return text.replace(_NS_MARK, namespace or DEFAULT_NAMESPACE)
    return _yaml_text(obj) if fmt == "yaml" else to_text(obj, fmt)


_NS_MARK: Final = "pxsec-namespace-0b5e7a91"  # a plain YAML scalar that no rendering writes otherwise


def _mark_slots(obj: Any) -> int:
    """How many values are the stand-in namespace, whole; -1 when it is part of a longer string or a key
    (a spec that happens to contain it: then nothing is replaced)."""
    if isinstance(obj, str):
        return 1 if obj == _NS_MARK else (-1 if _NS_MARK in obj else 0)
    items: list[Any] = []
    if isinstance(obj, Mapping):
        if any(_NS_MARK in str(k) for k in obj):
            return -1
        items = list(obj.values())
    elif isinstance(obj, list):
        items = obj
    total = 0
    for item in items:
        n = _mark_slots(item)
        if n < 0:
            return -1
        total += n
    return total


@functools.lru_cache(maxsize=4096)
def _plain(namespace: str) -> bool:
    """Whether the YAML dumper writes this namespace as itself (not quoted: `true`, `123`, `null` are)."""
    return to_text({"k": namespace}) == f"k: {namespace}\n"


_TEXTS: OrderedDict[str, str] = OrderedDict()  # the JSON of a rendered object -> its YAML text
_TEXTS_MAX = 256
_texts_lock = threading.Lock()


def _yaml_text(obj: Any) -> str:
    """`to_text(obj)`, remembered by the object's JSON (order kept: the text follows the renderers' key
    order). Most targets do not name the namespace, so objects of the same spec in other namespaces — a
    fleet of PxSecurities, a burst of them — get the same documents, and JSON (C) is several times cheaper
    than the YAML representer (Python). Bounded; a pure function, remembered."""
    key = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    with _texts_lock:
        text = _TEXTS.get(key)
        if text is not None:
            _TEXTS.move_to_end(key)
            return text
    text = to_text(obj, "yaml")
    with _texts_lock:
        _TEXTS[key] = text
        if len(_TEXTS) > _TEXTS_MAX:
            _TEXTS.popitem(last=False)
    return text


def configmap_key(target: str) -> str:
    return f"{target}.yaml"


def render_all(spec: PxSecuritySpec, namespace: str | None, *, cr_name: str | None = None) -> dict[str, str]:
    """The ConfigMap's data: `<target>.yaml` -> `render_text(spec, namespace, target, "yaml")`."""
    return {configmap_key(t): render_text(spec, namespace, t, "yaml", cr_name=cr_name) for t in TARGETS}


def content_hash(data: Mapping[str, str]) -> str:
    """`sha256:<hex>` over the ConfigMap data, independent of key order (goes into status.parameters)."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def configmap_name(cr_name: str) -> str:
    """`<cr_name>-px-security`. A name that would exceed 253 characters is shortened and made unique
    by a hash of the full CR name, so a long but valid PxSecurity name still gets a valid ConfigMap."""
    name = f"{cr_name}{CONFIGMAP_SUFFIX}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(cr_name.encode("utf-8")).hexdigest()[:8]
    head = cr_name[: MAX_NAME - len(CONFIGMAP_SUFFIX) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{CONFIGMAP_SUFFIX}"
