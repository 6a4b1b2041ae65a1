"""A stand-in for the Portworx Operator (libopenstorage/operator) — its security behaviour only.

The real Portworx Operator cannot be built here, and our operator has to live beside it. This program
does what the Portworx Operator does to the security objects of one namespace's StorageClusters, and
nothing else, so e2e tests can run the two side by side. Every behaviour below names the upstream file it
comes from (libopenstorage/operator, Apache-2.0, read at commit 303cc37; no code of theirs is copied):

  util.go          drivers/storage/portworx/util/util.go        (AuthEnabled, GenerateToken)
  portworx.go      drivers/storage/portworx/portworx.go         (setSecuritySpecDefaults)
  storagecluster.go pkg/controller/storagecluster/storagecluster.go (the reconcile loop, the full update)
  auth.go          drivers/storage/portworx/component/auth.go   (createPrivateKeysSecret,
                   maintainAuthTokenSecret, isTokenSecretRefreshRequired, Delete)
  k8s.go           pkg/util/k8s/k8s.go                          (CreateOrAppendToSecret, DeleteSecret)

    python -m tests.support.portworx_standin --namespace NS --period SECONDS [--uninstall-passes N]

It talks to the cluster in $KUBECONFIG (in the tests: a TokenRequest token of its own ServiceAccount,
portworx-operator/portworx-operator, bound by tests/fixtures/portworx-standin-rbac.yaml), with user
agent and field manager "portworx-operator". It prints one line per write (verb, kind, name — never a
value), one line per pass, and stops cleanly on SIGTERM. It is independent of the project's code on
purpose (its own token minting with PyJWT, its own client): it must behave like the other controller,
not like ours.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import os
import re
import secrets
import signal
import sys
import threading
import time
import warnings
from types import FrameType
from typing import Any, cast

import jwt
import kubernetes
from jwt.warnings import InsecureKeyLengthWarning
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL, KIND = "core.libopenstorage.org", "v1", "storageclusters", "StorageCluster"
AGENT = "portworx-operator"  # user agent and field manager of every request

# auth.go / k8s.go: the key Secrets carry exactly this annotation, and nothing else.
SKIP_ANNOTATIONS = {"stork.libopenstorage.org/skip-resource": "true"}
# The stand-in's choice of name: the behaviour document only says the Portworx Operator keeps a
# finalizer on the StorageCluster that waits for the uninstall.
FINALIZER = "operator.libopenstorage.org/delete"

SHARED_SECRET_NAME = "px-shared-secret"  # portworx.go default; also the fixed name auth.go Delete uses
SYSTEM_SECRETS_NAME = "px-system-secrets"  # fixed (auth.go)
SHARED_SECRET_KEY, SYSTEM_SECRET_KEY, APPS_SECRET_KEY = "shared-secret", "system-secret", "apps-secret"
TOKEN_KEY = "auth-token"
# maintainAuthTokenSecret: (Secret name, roles, groups)
TOKENS: tuple[tuple[str, list[str], list[str]], ...] = (
    ("px-admin-token", ["system.admin"], ["*"]),
    ("px-user-token", ["system.user"], []),
)

ENV_SHARED_SECRET = "PORTWORX_AUTH_JWT_SHAREDSECRET"
ENV_SYSTEM_KEY = "PORTWORX_AUTH_SYSTEM_KEY"
ENV_APPS_KEY = "PORTWORX_AUTH_SYSTEM_APPS_KEY"
ENV_ISSUER = "PORTWORX_AUTH_JWT_ISSUER"

DEFAULT_ISSUER = "operator.portworx.io"  # portworx.go
DEFAULT_LIFETIME = "24h"  # portworx.go
GUEST_ACCESS_DEFAULT = "Enabled"  # portworx.go

REFRESH_BUFFER = 60  # auth.go isTokenSecretRefreshRequired: re-mint when it expires within 1 minute
IAT_BACKDATE = 600  # util.go GenerateToken: iat = now - 10 minutes (clock skew)
_LIFETIME = re.compile(r"^(\d+)(s|m|h|d|y)$")  # util.go: one number, one unit; y = 365 days
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}

# Go's HMAC takes any key length; PyJWT only warns below 32 bytes. Behave like Go, quietly.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


def _untyped(thing: object) -> Any:
    """The kubernetes client's watch, config loader and serializer are untyped."""
    return thing


def log(message: str) -> None:
    print(message, flush=True)


class Skip(Exception):
    """This StorageCluster cannot be reconciled this pass (the reason names objects, never values)."""


# -- pure rules ----------------------------------------------------------------------------------


def _unset(value: Any) -> bool:
    """nil or "" (the behaviour document: defaults go only where a value is nil or empty)."""
    return value is None or value == ""


def _empty(block: Any) -> bool:
    """A Go struct of pointers equal to its zero value: absent, or no field set."""
    return not isinstance(block, dict) or all(v is None for v in block.values())


def auth_enabled(spec: dict[str, Any]) -> bool:
    """util.go AuthEnabled: security.enabled, and security.auth.enabled absent or true."""
    security = spec.get("security") or {}
    if security.get("enabled") is not True:
        return False
    enabled = (security.get("auth") or {}).get("enabled")
    return enabled is None or enabled is True


def env_entry(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in spec.get("env") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def set_security_defaults(spec: dict[str, Any]) -> None:
    """portworx.go setSecuritySpecDefaults, with auth on; never overwrites a set value.

    - no (or an empty) auth: guestAccess Enabled and the default selfSigned block;
    - auth present: an empty guestAccess becomes Enabled; an empty selfSigned becomes the default block;
      a non-empty selfSigned gets, only where unset: issuer = spec.env PORTWORX_AUTH_JWT_ISSUER if set,
      else operator.portworx.io; tokenLifetime 24h; sharedSecret px-shared-secret.
    """
    if not auth_enabled(spec):
        return
    security = spec["security"]

    def default_self_signed() -> dict[str, Any]:
        return {"issuer": DEFAULT_ISSUER, "tokenLifetime": DEFAULT_LIFETIME, "sharedSecret": SHARED_SECRET_NAME}

    auth = security.get("auth")
    if _empty(auth):
        security["auth"] = {"guestAccess": GUEST_ACCESS_DEFAULT, "selfSigned": default_self_signed()}
        return
    if _unset(auth.get("guestAccess")):
        auth["guestAccess"] = GUEST_ACCESS_DEFAULT
    self_signed = auth.get("selfSigned")
    if _empty(self_signed):
        auth["selfSigned"] = default_self_signed()
        return
    if _unset(self_signed.get("issuer")):
        entry = env_entry(spec, ENV_ISSUER)
        from_env = entry.get("value") if entry else None
        self_signed["issuer"] = from_env if isinstance(from_env, str) and from_env else DEFAULT_ISSUER
    if _unset(self_signed.get("tokenLifetime")):
        self_signed["tokenLifetime"] = DEFAULT_LIFETIME
    if _unset(self_signed.get("sharedSecret")):
        self_signed["sharedSecret"] = SHARED_SECRET_NAME


def parse_lifetime(text: str) -> int:
    """Seconds of a tokenLifetime (util.go: ^\\d+(s|m|h|d|y)$, y = 365 days)."""
    match = _LIFETIME.match(text or "")
    if not match:
        raise Skip(f"tokenLifetime {text!r} is not one number and one unit (s, m, h, d, y)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def generate_secret() -> bytes:
    """auth.go: 128 random bytes, standard base64, the first 64 characters."""
    return base64.b64encode(secrets.token_bytes(128))[:64]


def mint(name: str, roles: list[str], groups: list[str], issuer: str, lifetime: int, key: bytes) -> str:
    """util.go GenerateToken: HS256 over the ASCII bytes of the shared secret."""
    now = int(time.time())
    claims = {
        "iss": issuer, "sub": f"{name}@{issuer}", "name": name, "email": f"{name}@{issuer}",
        "roles": roles, "groups": groups, "iat": now - IAT_BACKDATE, "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- the controller ------------------------------------------------------------------------------


class StandIn:
    def __init__(self, client: kubernetes.client.ApiClient, namespace: str, uninstall_passes: int) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.namespace = namespace
        self.uninstall_passes = uninstall_passes
        # auth.go resourceVersionCache: per token Secret, the shared-secret Secret's resourceVersion it
        # was minted with. In memory only, so every start re-mints both tokens.
        self.minted_with: dict[str, str] = {}
        # The uninstall's progress: passes seen in deletion, per StorageCluster uid.
        self.deletion_passes: dict[str, int] = {}

    # -- API calls (dicts in, dicts out) ---------------------------------------------------------

    def _ref(self, name: str) -> str:
        return f"{self.namespace}/{name}"

    def get_secret(self, name: str) -> dict[str, Any] | None:
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], _untyped(self.client).sanitize_for_serialization(secret))

    def create_secret(self, body: dict[str, Any]) -> None:
        self.core.create_namespaced_secret(self.namespace, cast(Any, body), field_manager=AGENT)
        log(f"create Secret {self._ref(body['metadata']['name'])}")

    def replace_secret(self, body: dict[str, Any], why: str = "") -> None:
        name = body["metadata"]["name"]
        self.core.replace_namespaced_secret(name, self.namespace, cast(Any, body), field_manager=AGENT)
        log(f"update Secret {self._ref(name)}{why}")

    def delete_secret(self, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        log(f"delete Secret {self._ref(name)}")

    def replace_storagecluster(self, body: dict[str, Any], why: str) -> dict[str, Any] | None:
        """storagecluster.go: a PUT of the whole object as read (its resourceVersion included). On 409 it
        simply tries again on a later pass (None)."""
        name = body["metadata"]["name"]
        try:
            result = cast(dict[str, Any], self.custom.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, body, field_manager=AGENT))
        except ApiException as exc:
            if exc.status == 409:
                log(f"conflict updating StorageCluster {self._ref(name)}; next pass")
                return None
            raise
        log(f"update StorageCluster {self._ref(name)} ({why})")
        return result

    # -- one pass --------------------------------------------------------------------------------

    def run_pass(self) -> None:
        try:
            listed = cast(dict[str, Any],
                          self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL))
        except ApiException as exc:
            log(f"error: list StorageClusters: {exc.status} {exc.reason}")
            return
        for cluster in listed.get("items") or []:
            name = cluster["metadata"]["name"]
            try:
                self.reconcile(cluster)
            except Skip as exc:
                log(f"StorageCluster {self._ref(name)}: {exc}")
            except ApiException as exc:  # status and reason only: a body could echo an object
                log(f"error: StorageCluster {self._ref(name)}: {exc.status} {exc.reason}")

    def reconcile(self, cluster: dict[str, Any]) -> None:
        if cluster["metadata"].get("deletionTimestamp"):
            self.uninstall(cluster)
            return
        # storagecluster.go: set defaults on a copy; if anything changed, update the whole object.
        desired = copy.deepcopy(cluster)
        spec = desired.get("spec")
        if isinstance(spec, dict):
            set_security_defaults(spec)
        finalizers = list(desired["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            desired["metadata"]["finalizers"] = [*finalizers, FINALIZER]
        if desired != cluster:
            updated = self.replace_storagecluster(desired, "defaults")
            if updated is None:
                return
            cluster = updated
        spec = cluster.get("spec") or {}
        if not auth_enabled(spec):
            return  # auth.go: with auth off it does nothing to Secrets
        self.create_private_keys_secrets(cluster)
        self.maintain_tokens(cluster)
        # auth.go then sets the system.guest role over the Portworx SDK: that needs a running Portworx,
        # so the stand-in does not do it.

    # -- key Secrets (auth.go createPrivateKeysSecret; k8s.go CreateOrAppendToSecret) ------------

    def _env_value(self, entry: dict[str, Any]) -> bytes:
        value_from = entry.get("valueFrom")
        if value_from:
            ref = value_from.get("secretKeyRef") or {}
            if not ref.get("name") or not ref.get("key"):
                raise Skip(f"env {entry.get('name')}: only valueFrom.secretKeyRef is resolved")
            secret = self.get_secret(ref["name"])
            data = (secret or {}).get("data") or {}
            if ref["key"] not in data:
                raise Skip(f"env {entry.get('name')}: Secret {ref['name']} key {ref['key']} not found")
            return base64.b64decode(data[ref["key"]])
        return str(entry.get("value") or "").encode()

    def key_value(self, spec: dict[str, Any], env_name: str, secret_name: str, key: str) -> bytes:
        """A spec.env entry of that name; else the existing Secret's key; else a new random value."""
        entry = env_entry(spec, env_name)
        if entry is not None:
            return self._env_value(entry)
        existing = self.get_secret(secret_name)
        value = ((existing or {}).get("data") or {}).get(key)
        if value:
            return base64.b64decode(value)
        return generate_secret()

    def create_or_append(self, name: str, values: dict[str, bytes]) -> None:
        fresh: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret",
            # no labels, no ownerReferences, no resourceVersion
            "metadata": {"name": name, "namespace": self.namespace, "annotations": dict(SKIP_ANNOTATIONS)},
            "data": {k: _b64(v) for k, v in values.items()},
        }
        existing = self.get_secret(name)
        if existing is None:
            self.create_secret(fresh)
            return
        existing_data = existing.get("data") or {}
        data_differ = fresh["data"] != existing_data
        if data_differ:
            fresh["data"].update(existing_data)  # existing values win; extra keys are kept
        annotations_differ = fresh["metadata"]["annotations"] != (existing["metadata"].get("annotations") or {})
        # Labels are never compared. If data or annotations differ: an unconditional PUT of the fresh
        # object, so every label, other annotation and ownerReference on the Secret goes.
        if data_differ or annotations_differ:
            self.replace_secret(fresh)

    def create_private_keys_secrets(self, cluster: dict[str, Any]) -> None:
        spec = cluster["spec"]
        shared_name = ((spec["security"].get("auth") or {}).get("selfSigned") or {}).get("sharedSecret")
        if not shared_name:
            raise Skip("no spec.security.auth.selfSigned.sharedSecret")
        shared = self.key_value(spec, ENV_SHARED_SECRET, shared_name, SHARED_SECRET_KEY)
        system = self.key_value(spec, ENV_SYSTEM_KEY, SYSTEM_SECRETS_NAME, SYSTEM_SECRET_KEY)
        apps = self.key_value(spec, ENV_APPS_KEY, SYSTEM_SECRETS_NAME, APPS_SECRET_KEY)
        self.create_or_append(shared_name, {SHARED_SECRET_KEY: shared})
        self.create_or_append(SYSTEM_SECRETS_NAME, {SYSTEM_SECRET_KEY: system, APPS_SECRET_KEY: apps})

    # -- tokens (auth.go maintainAuthTokenSecret / isTokenSecretRefreshRequired) -----------------

    def maintain_tokens(self, cluster: dict[str, Any]) -> None:
        self_signed = cluster["spec"]["security"]["auth"]["selfSigned"]
        issuer = str(self_signed.get("issuer") or "")
        lifetime = parse_lifetime(str(self_signed.get("tokenLifetime") or ""))
        shared_name = str(self_signed["sharedSecret"])
        for name, roles, groups in TOKENS:
            if not self.refresh_required(name, shared_name, issuer):
                continue
            shared = self.get_secret(shared_name)  # read again for minting, as upstream does
            data = (shared or {}).get("data") or {}
            if shared is None or SHARED_SECRET_KEY not in data:
                raise Skip(f"Secret {shared_name} key {SHARED_SECRET_KEY} not found")
            token = mint(name, roles, groups, issuer, lifetime, base64.b64decode(data[SHARED_SECRET_KEY]))
            self.create_or_update_token(cluster, name, token)
            self.minted_with[name] = str(shared["metadata"]["resourceVersion"])

    def refresh_required(self, name: str, shared_name: str, issuer: str) -> bool:
        shared = self.get_secret(shared_name)
        if shared is None:
            raise Skip(f"Secret {shared_name} not found")
        if self.minted_with.get(name) != shared["metadata"]["resourceVersion"]:
            return True  # not minted since start, or any write to the shared-secret Secret
        existing = self.get_secret(name)
        token = ((existing or {}).get("data") or {}).get(TOKEN_KEY)
        if not token:
            return True  # the token Secret or its key is missing
        try:
            claims = jwt.decode(base64.b64decode(token), options={"verify_signature": False})
        except jwt.PyJWTError:
            # Upstream returns the parse error (no re-mint); the next pass tries again.
            raise Skip(f"Secret {name}: {TOKEN_KEY} is not a JWT") from None
        if time.time() + REFRESH_BUFFER > float(claims.get("exp") or 0):
            return True  # expires within a minute
        return bool(claims.get("iss") != issuer)  # the issuer changed

    def create_or_update_token(self, cluster: dict[str, Any], name: str, token: str) -> None:
        meta = cluster["metadata"]
        controller_ref = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }
        existing = self.get_secret(name)
        others = [r for r in ((existing or {}).get("metadata") or {}).get("ownerReferences") or []
                  if r.get("uid") != meta["uid"]]
        fresh: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": dict(SKIP_ANNOTATIONS),
                         "ownerReferences": [controller_ref, *others]},  # no labels
            "data": {TOKEN_KEY: _b64(token.encode())},
        }
        if existing is None:
            self.create_secret(fresh)
        elif fresh["data"] != (existing.get("data") or {}):
            self.replace_secret(fresh)  # unconditional PUT of the fresh object

    # -- deletion (auth.go Delete; k8s.go DeleteSecret) -------------------------------------------

    def delete_owned_secret(self, name: str, owner_uid: str) -> None:
        """k8s.go DeleteSecret with an owner: delete it if this StorageCluster is its only owner; if it has
        other owners too, only drop this reference (an update of the object as read); if this
        StorageCluster does not own it, leave it alone. (The behaviour document's observation: on
        deletion it deletes px-user-token and drops its owner reference from px-admin-token.)"""
        secret = self.get_secret(name)
        if secret is None:
            return
        refs = secret["metadata"].get("ownerReferences") or []
        rest = [r for r in refs if r.get("uid") != owner_uid]
        if not refs or len(rest) == len(refs):
            return
        if not rest:
            self.delete_secret(name)
            return
        secret["metadata"]["ownerReferences"] = rest
        self.replace_secret(secret, " (owner reference removed)")

    def uninstall(self, cluster: dict[str, Any]) -> None:
        meta = cluster["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return  # nothing of ours is holding it
        uid = str(meta["uid"])
        passes = self.deletion_passes[uid] = self.deletion_passes.get(uid, 0) + 1
        spec = cluster.get("spec") or {}
        strategy = str((spec.get("deleteStrategy") or {}).get("type") or "")
        if auth_enabled(spec):
            # auth.go Delete, on every pass while the StorageCluster is in deletion: the token Secrets
            # always; with a delete strategy also the key Secrets, by these fixed names, whoever made them.
            for token_name, _, _ in TOKENS:
                self.delete_owned_secret(token_name, uid)
            if strategy:
                self.delete_secret_if_present(SHARED_SECRET_NAME)
                self.delete_secret_if_present(SYSTEM_SECRETS_NAME)
        # Its finalizer waits for the uninstall: with a delete strategy the stand-in calls it done after
        # --uninstall-passes passes in deletion; without one there is nothing to wait for.
        if strategy and passes < self.uninstall_passes:
            return
        body = copy.deepcopy(cluster)
        body["metadata"]["finalizers"] = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        if self.replace_storagecluster(body, "finalizer removed") is not None:
            self.deletion_passes.pop(uid, None)

    def delete_secret_if_present(self, name: str) -> None:
        """k8s.go DeleteSecret: read, then delete what is there (a 404 is nothing to do)."""
        if self.get_secret(name) is not None:
            self.delete_secret(name)


# -- the process ---------------------------------------------------------------------------------


def _watch(custom: kubernetes.client.CustomObjectsApi, namespace: str, wake: threading.Event,
           stop: threading.Event) -> None:
    """Wake the loop on every StorageCluster event of the namespace (storagecluster.go: a change is
    reconciled at once, not only on the next period)."""
    while not stop.is_set():
        watcher = _untyped(kubernetes.watch).Watch()
        try:
            for _ in watcher.stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                                    timeout_seconds=60):
                wake.set()
                if stop.is_set():
                    break
        except Exception as exc:  # reconnect; the periodic pass covers the gap
            log(f"watch: {type(exc).__name__}; reconnecting")
            stop.wait(1)
        finally:
            watcher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.portworx_standin",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True, help="the namespace whose StorageClusters it manages")
    parser.add_argument("--period", type=float, default=30.0, help="seconds between passes (real one: ~30)")
    parser.add_argument("--uninstall-passes", type=int, default=5,
                        help="passes in deletion before the uninstall counts as done (with a deleteStrategy)")
    args = parser.parse_args(argv)

    configuration = kubernetes.client.Configuration()
    _untyped(kubernetes.config).load_kube_config(config_file=os.environ.get("KUBECONFIG"),
                                       client_configuration=configuration)
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = AGENT
    standin = StandIn(client, args.namespace, args.uninstall_passes)

    stop, wake = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_watch, args=(standin.custom, args.namespace, wake, stop), daemon=True).start()
    log(f"portworx-operator stand-in started: namespace {args.namespace}, period {args.period}s, "
        f"pid {os.getpid()}")
    passes = 0
    while not stop.is_set():
        wake.clear()
        standin.run_pass()
        passes += 1
        log(f"pass {passes} done at {dt.datetime.now(dt.UTC).isoformat()}")
        wake.wait(args.period)
    log("portworx-operator stand-in stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
