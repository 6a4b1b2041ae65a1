"""Living beside the Portworx Operator: who owns which shared object, decided from the spec and the
StorageCluster as read. Pure: no client, no clock of its own.

Most users run Portworx through the Portworx Operator (libopenstorage/operator). When a StorageCluster
has security on, it manages some of the objects a PxSecurity manages too. What it does, read from its
source at 303cc37 (paths are in that repository), and what follows for us:

* **Key Secrets** (`component/auth.go` createPrivateKeysSecret, `pkg/util/k8s/k8s.go`
  CreateOrAppendToSecret): every reconcile it rebuilds `px-system-secrets` and the StorageCluster's
  shared-secret Secret as a *fresh* object — its data keys, annotations exactly
  `{stork.libopenstorage.org/skip-resource: "true"}`, no labels, no owner references — and PUTs it
  whenever the existing one's data or annotations differ. So on those two Secrets we write exactly
  that shape and nothing else, ever (`SharedSecretShape`): no labels, no origin annotations, no
  template metadata, no owner reference. What we would have put there lives in our status instead.
  Any write to the shared-secret Secret also changes its resourceVersion, which makes it re-mint its
  two tokens: after creating it we never touch it again.
* **Fixed names** (`deployment.go`): it overrides the Portworx pods' `PORTWORX_AUTH_SYSTEM_KEY` /
  `..._APPS_KEY` env with `px-system-secrets`, and `PORTWORX_AUTH_JWT_ISSUER` /
  `..._SHAREDSECRET` with `spec.security.auth.selfSigned` — so those are what Portworx uses. The CRD
  rule `system-secret-fixed-with-storagecluster` keeps `spec.system.secretName` at px-system-secrets.
* **Its tokens** (`maintainAuthTokenSecret`): `px-admin-token` and `px-user-token` are minted by it,
  re-minted on every start of it and whenever the shared-secret Secret is written. We never write
  them; we check them (`judge_tokens`) with the keys and issuer the StorageCluster names.
* **Uninstall** (`component/auth.go` Delete): a StorageCluster deleted with `spec.deleteStrategy`
  makes it delete `px-shared-secret` and `px-system-secrets` by those names, whoever made them, and
  again on each pass while the uninstall runs. We never race it: while the uninstall runs we recreate
  nothing (`Coexistence.standing_aside`). What `deletionPolicy: Retain` means against it: the
  *values* are retained. While the StorageCluster has a deleteStrategy we keep a copy of exactly those
  Secrets' data in a Secret of our own (`retained_secret_name`); once the uninstall is over, the
  Secrets are recreated from that copy, so a reinstall finds the same keys and every token stays
  valid. A copy is used only if it holds the very values status recorded (same fingerprint).
* **Its saved defaults** are not conflicts: see `pxsec.scmerge`.

"Targeted" is `spec.storageCluster` being set at all: that is the promise that a Portworx Operator
runs (or will run) this cluster, so from the first write our shared Secrets have its shape and no
handover is ever needed. Without it (DaemonSet, px-runc installs) none of this applies.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from pxsec import conditions, keyplan, verify
from pxsec.conditions import Condition, rfc3339
from pxsec.spec import (
    DEFAULT_SELF_SIGNED_ISSUER,
    DEFAULT_SHARED_SECRET,
    DEFAULT_SYSTEM_SECRET,
    ECDSAKey,
    PxSecuritySpec,
    RSAKey,
    SelfSigned,
)

# The only metadata the Portworx Operator leaves on the Secrets it shares with us.
SHARED_ANNOTATIONS: Final[Mapping[str, str]] = {keyplan.STORK_SKIP_ANNOTATION: "true"}

PORTWORX_OPERATOR: Final = "PortworxOperator"
# Said in status on each Secret shared with it: why the template, markers and owner reference are absent.
SHARED_NOTE: Final = (
    "shared with the Portworx Operator: kept exactly as it writes it (annotation "
    "stork.libopenstorage.org/skip-resource only), because it replaces any other label, annotation or "
    "owner reference with an update; spec.secretTemplate and deletionPolicy Delete do not apply to it, "
    "and it is deleted by the StorageCluster's uninstall (see the KeysRetained condition)")
PXSECURITY: Final = "PxSecurity"

# Its two token Secrets: (roles, groups) as it mints them (component/auth.go).
OPERATOR_TOKENS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "px-admin-token": (("system.admin",), ("*",)),
    "px-user-token": (("system.user",), ()),
}
# What its uninstall deletes by name (component/auth.go Delete).
UNINSTALL_DELETES: Final = (DEFAULT_SHARED_SECRET, DEFAULT_SYSTEM_SECRET)

RETAINED_SUFFIX: Final = "-px-security-retained"
_ENV_JWT_ISSUER: Final = "PORTWORX_AUTH_JWT_ISSUER"
_ENV_RSA_PUBKEY: Final = "PORTWORX_AUTH_JWT_RSA_PUBKEY"
_ENV_ECDS_PUBKEY: Final = "PORTWORX_AUTH_JWT_ECDS_PUBKEY"  # sic: ECDS
_DEFAULT_LIFETIME: Final = "24h"
_LAST_SECOND: Final = 253402300800  # 10000-01-01T00:00:00Z


def retained_secret_name(cr_name: str) -> str:
    """Our own Secret holding a copy of the values the StorageCluster's uninstall deletes."""
    return f"{cr_name}{RETAINED_SUFFIX}"


def retained_key(secret: str, key: str) -> str:
    """`px-system-secrets` / `system-secret` -> `px-system-secrets.system-secret` (a valid Secret key)."""
    return f"{secret}.{key}"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


@dataclass(frozen=True)
class MountedKey:
    """A public key the StorageCluster gives Portworx: the file its env entry names, and the Secret key
    a volume projects there (None when no volume mounts that path: Portworx finds no file)."""

    path: str
    secret: str | None = None
    key: str | None = None

    def show(self) -> str:
        return f"Secret {self.secret} key {self.key}" if self.secret else f"{self.path} (no volume mounts it)"


def _mounted(spec: Mapping[str, Any], env_name: str) -> MountedKey | None:
    path = next((_text(e.get("value")) for e in spec.get("env") or []
                 if isinstance(e, Mapping) and e.get("name") == env_name), None)
    if not path:
        return None
    for volume in spec.get("volumes") or []:
        mount = _text(_map(volume).get("mountPath")) if isinstance(volume, Mapping) else None
        secret = _map(_map(volume).get("secret"))
        if not mount or not path.startswith(mount.rstrip("/") + "/") or not _text(secret.get("secretName")):
            continue
        relative = path[len(mount.rstrip("/")) + 1:]
        items = [i for i in secret.get("items") or [] if isinstance(i, Mapping)]
        key = next((_text(i.get("key")) for i in items if i.get("path") == relative), None) if items else relative
        return MountedKey(path, _text(secret.get("secretName")), key) if key else MountedKey(path)
    return MountedKey(path)


@dataclass(frozen=True)
class StorageClusterView:
    """What matters to us of a StorageCluster, with the Portworx Operator's defaults filled in as it
    fills them (`portworx.go` setSecuritySpecDefaults), so `issuer`/`shared_secret` are what Portworx
    pods receive."""

    name: str
    exists: bool = False
    auth_enabled: bool = False
    issuer: str | None = None
    shared_secret: str | None = None
    token_lifetime: str | None = None
    delete_strategy: str | None = None
    deleting: bool = False
    rsa_key: MountedKey | None = None  # PORTWORX_AUTH_JWT_RSA_PUBKEY and the volume behind it
    ecdsa_key: MountedKey | None = None  # PORTWORX_AUTH_JWT_ECDS_PUBKEY and the volume behind it

    @property
    def uninstalling(self) -> bool:
        """Deleted with a deleteStrategy: its uninstall deletes the key Secrets by name."""
        return self.exists and self.deleting and self.delete_strategy is not None


def view(name: str, obj: Mapping[str, Any] | None) -> StorageClusterView:
    if obj is None:
        return StorageClusterView(name)
    spec = _map(obj.get("spec"))
    security = _map(spec.get("security"))
    auth = _map(security.get("auth"))
    # util.go AuthEnabled: security.enabled, and auth.enabled absent or true.
    enabled = security.get("enabled") is True and auth.get("enabled") is not False
    self_signed = _map(auth.get("selfSigned"))
    env_issuer = next((_text(e.get("value")) for e in spec.get("env") or []
                       if isinstance(e, Mapping) and e.get("name") == _ENV_JWT_ISSUER), None)
    strategy = _text(_map(spec.get("deleteStrategy")).get("type"))
    return StorageClusterView(
        name=name,
        exists=True,
        auth_enabled=enabled,
        issuer=(_text(self_signed.get("issuer")) or env_issuer or DEFAULT_SELF_SIGNED_ISSUER) if enabled else None,
        shared_secret=(_text(self_signed.get("sharedSecret")) or DEFAULT_SHARED_SECRET) if enabled else None,
        token_lifetime=(_text(self_signed.get("tokenLifetime")) or _DEFAULT_LIFETIME) if enabled else None,
        delete_strategy=strategy,
        deleting=bool(_map(obj.get("metadata")).get("deletionTimestamp")),
        rsa_key=_mounted(spec, _ENV_RSA_PUBKEY) if enabled else None,
        ecdsa_key=_mounted(spec, _ENV_ECDS_PUBKEY) if enabled else None,
    )


@dataclass(frozen=True)
class Coexistence:
    """Who writes what, for one reconcile. Everything empty when no StorageCluster is targeted."""

    targeted: bool = False
    cluster: StorageClusterView | None = None
    shared_secrets: frozenset[str] = frozenset()  # our key Secrets it also writes: its shape only
    operator_tokens: frozenset[str] = frozenset()  # token Secrets that are its, never ours to write
    retained: frozenset[str] = frozenset()  # key Secrets its uninstall would delete: values copied
    standing_aside: frozenset[str] = frozenset()  # ...being deleted right now: not recreated

    @property
    def checks_tokens(self) -> bool:
        """Whether Portworx's view of the tokens can be judged: a StorageCluster with auth on, not leaving."""
        c = self.cluster
        return c is not None and c.exists and c.auth_enabled and not c.deleting


def plan(spec: PxSecuritySpec, cr_name: str, storagecluster: Mapping[str, Any] | None) -> Coexistence:
    """Decide the split for this spec and this StorageCluster (None: absent, or not targeted)."""
    if not spec.storage_cluster.targeted:
        return Coexistence()
    sc = view(spec.storage_cluster.name or cr_name, storagecluster)
    ours = [r.name for r in keyplan.requirements(spec)]
    shared = {spec.system_secret, DEFAULT_SYSTEM_SECRET} & set(ours)
    if spec.self_signed is not None and spec.self_signed.shared_secret:
        shared.add(spec.self_signed.shared_secret)
    if sc.shared_secret in ours:
        shared.add(sc.shared_secret)
    # Its tokens are its own once it runs security for this cluster — already (auth on), or as soon
    # as our apply turns it on. Before that (apply: false, security off) the names are free.
    tokens = frozenset(OPERATOR_TOKENS) if (spec.storage_cluster.apply or sc.auth_enabled) else frozenset()
    retained = frozenset(n for n in UNINSTALL_DELETES if n in ours) if sc.delete_strategy else frozenset()
    return Coexistence(
        targeted=True,
        cluster=sc,
        shared_secrets=frozenset(shared),
        operator_tokens=tokens,
        retained=retained,
        standing_aside=retained if sc.uninstalling else frozenset(),
    )


def system_secret_problem(spec: PxSecuritySpec, co: Coexistence) -> str | None:
    """A system Secret of another name than px-system-secrets beside the Portworx Operator is never what
    Portworx reads. The CRD rejects it; an object stored before that rule existed is said to be wrong here."""
    if co.targeted and spec.system_secret != DEFAULT_SYSTEM_SECRET:
        return (f"spec.system.secretName {spec.system_secret} is not used: beside the Portworx Operator, Portworx "
                f"and Stork take the system keys from {DEFAULT_SYSTEM_SECRET}; set spec.system.secretName to "
                f"{DEFAULT_SYSTEM_SECRET} (or leave it out)")
    return None


# --------------------------------------------------------------------------------------------------
# The retained copy
# --------------------------------------------------------------------------------------------------


def retained_data(secrets: Mapping[str, Mapping[str, bytes]], names: Iterable[str],
                  keys: Mapping[str, tuple[str, ...]]) -> dict[str, bytes]:
    """The copy's content: each retained Secret's keys (that exist) under `<secret>.<key>`."""
    out: dict[str, bytes] = {}
    for name in sorted(names):
        data = secrets.get(name) or {}
        for key in keys.get(name, ()):
            if key in data:
                out[retained_key(name, key)] = data[key]
    return out


def from_retained(copy: Mapping[str, bytes], name: str, keys: tuple[str, ...]) -> dict[str, bytes]:
    """One Secret's data back out of the copy (only the keys it holds)."""
    return {key: copy[retained_key(name, key)] for key in keys if retained_key(name, key) in copy}


def retained_condition(co: Coexistence, copy_name: str, missing: Iterable[str] = ()) -> Condition | None:
    """`KeysRetained`: said up front whenever the StorageCluster has a deleteStrategy — what its
    uninstall will do to the Secrets and what the operator does then. None when there is nothing to say."""
    sc = co.cluster
    if sc is None or sc.delete_strategy is None or not co.retained:
        return None
    names = " and ".join(sorted(co.retained))
    absent = sorted(missing)
    if absent:
        return conditions.false(
            conditions.KEYS_RETAINED, "NothingToRetain",
            f"StorageCluster {sc.name} has deleteStrategy {sc.delete_strategy}, and Secret(s) "
            f"{', '.join(absent)} are gone with no copy of their values: they will be generated again "
            "(new revision)")
    if sc.uninstalling:
        return conditions.true(
            conditions.KEYS_RETAINED, "StorageClusterUninstalling",
            f"StorageCluster {sc.name} is being uninstalled ({sc.delete_strategy}): the Portworx Operator "
            f"deletes {names}; the operator stands aside and recreates them from Secret {copy_name} "
            "with the same values when the uninstall is over")
    return conditions.true(
        conditions.KEYS_RETAINED, "Retained",
        f"StorageCluster {sc.name} has deleteStrategy {sc.delete_strategy}: its uninstall deletes {names}; "
        f"their values are kept in Secret {copy_name} and the Secrets are recreated with them when the "
        "uninstall is over, so a reinstall finds the same keys and issued tokens stay valid")


# --------------------------------------------------------------------------------------------------
# Tokens, as Portworx configured by the StorageCluster would judge them
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCheck:
    secret_name: str
    minted_by: str  # PXSECURITY | PORTWORX_OPERATOR
    token: str | None  # None: the Secret or its auth-token key is missing


@dataclass
class TokensJudged:
    condition: Condition | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)  # status.tokens rows for its tokens
    next_check: dt.datetime | None = None  # the earliest exp among accepted tokens


def portworx_spec(spec: PxSecuritySpec, sc: StorageClusterView) -> PxSecuritySpec:
    """The spec as Portworx receives it from this StorageCluster: its issuer and shared-secret Secret, and
    the public keys it mounts (after our apply they are ours; with a conflict or `apply: false` they may not
    be, and a key our spec has but the StorageCluster does not mount is no key to Portworx)."""
    base = spec.self_signed or SelfSigned(shared_secret=None)
    rsa = RSAKey(sc.rsa_key.secret, **({"size": base.rsa.size} if base.rsa else {})) \
        if sc.rsa_key and sc.rsa_key.secret else None
    ecdsa = ECDSAKey(sc.ecdsa_key.secret, **({"curve": base.ecdsa.curve} if base.ecdsa else {})) \
        if sc.ecdsa_key and sc.ecdsa_key.secret else None
    return replace(spec, self_signed=replace(base, issuer=sc.issuer or base.issuer, shared_secret=sc.shared_secret,
                                             rsa=rsa, ecdsa=ecdsa))


def mounted_secrets(sc: StorageClusterView) -> list[str]:
    """The Secrets whose keys Portworx reads for this StorageCluster (shared secret, mounted public keys)."""
    names = [sc.shared_secret] + [k.secret for k in (sc.rsa_key, sc.ecdsa_key) if k is not None]
    return [n for n in names if n]


def judge_tokens(spec: PxSecuritySpec, co: Coexistence, checks: Iterable[TokenCheck],
                 keys: verify.VerifyKeys, now: dt.datetime) -> TokensJudged:
    """`TokensAccepted`: would Portworx, configured by the StorageCluster, accept every token of the
    cluster — ours and the Portworx Operator's? A token that would be rejected is a False condition,
    not silence. Its tokens not minted yet are named in the message but are not a failure: minting them
    is its job, and it may not run yet."""
    out = TokensJudged()
    if not co.checks_tokens or co.cluster is None:
        return out
    sc = co.cluster
    px_spec = portworx_spec(spec, sc)
    rejected: list[str] = []
    pending: list[str] = []
    accepted = 0
    for check in checks:
        row: dict[str, Any] = {"secretName": check.secret_name, "mintedBy": check.minted_by}
        if check.token is None:
            pending.append(check.secret_name)
            if check.minted_by == PORTWORX_OPERATOR:
                out.entries.append({**row, "accepted": False, "reason": "not minted yet"})
            continue
        verdict = verify.verify(check.token, px_spec, keys, now)
        exp = verify.decode_unverified(check.token).claims.get("exp") if verdict.accepted else None
        # exp 0 never expires (golang-jwt v4); beyond year 9999 there is no date to show or to wake at.
        if isinstance(exp, int | float) and math.isfinite(exp) and 0 < exp < _LAST_SECOND:
            expires = dt.datetime.fromtimestamp(int(exp), dt.UTC)
            row["expiresAt"] = rfc3339(expires)
            if out.next_check is None or expires < out.next_check:
                out.next_check = expires
        if verdict.accepted:
            accepted += 1
        else:
            owner = "the Portworx Operator's" if check.minted_by == PORTWORX_OPERATOR else "minted here,"
            rejected.append(f"{check.secret_name} ({owner}) would be rejected: {verdict.reason}")
        if check.minted_by == PORTWORX_OPERATOR:
            out.entries.append({**row, "accepted": verdict.accepted,
                                "reason": "accepted" if verdict.accepted else verdict.reason})
    mounted = [f"{kind} key from {k.show()}" for kind, k in (("RSA", sc.rsa_key), ("ECDSA", sc.ecdsa_key)) if k]
    where = (f"StorageCluster {sc.name} (issuer {verify.show(sc.issuer)}, shared secret "
             f"{sc.shared_secret}{''.join('; ' + m for m in mounted)})")
    if rejected:
        out.condition = conditions.false(conditions.TOKENS_ACCEPTED, "WouldBeRejected",
                                         f"as configured by {where}: " + " | ".join(rejected))
        return out
    message = f"{accepted} token(s) verify as configured by {where}"
    if pending:
        message += f"; not minted yet: {', '.join(pending)}"
    out.condition = conditions.true(conditions.TOKENS_ACCEPTED, "Accepted", message)
    return out


def verify_keys_for(spec: PxSecuritySpec, sc: StorageClusterView,
                    secrets: Mapping[str, Mapping[str, bytes] | None]) -> verify.VerifyKeys:
    """Portworx's verification keys, as the StorageCluster gives them: the shared secret of the Secret it
    names, and exactly the Secret keys it mounts where its public-key env entries point."""
    base = verify.VerifyKeys.from_secrets(portworx_spec(spec, sc), secrets)

    def pem(key: MountedKey | None) -> bytes | None:
        return (secrets.get(key.secret) or {}).get(key.key) if key and key.secret and key.key else None

    return replace(base, rsa_public_pem=pem(sc.rsa_key), ecdsa_public_pem=pem(sc.ecdsa_key))
