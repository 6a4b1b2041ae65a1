"""A stand-in for the Portworx Operator (libopenstorage/operator) — its security behaviour only.

The real Portworx Operator cannot be built here, and our operator has to live beside it. This program
does what the Portworx Operator does to the security objects of one namespace's StorageClusters, and
nothing else, so e2e tests can run the two side by side. Every behaviour below names the upstream file and
function it comes from (libopenstorage/operator, Apache-2.0, read at commit 303cc37; line numbers at that
commit; no code of theirs is copied):

  util.go           drivers/storage/portworx/util/util.go   AuthEnabled (1151), IsTLSEnabledOnCluster (941),
                    GenerateToken (1088), GetSecretKeyValue (1112)
  portworx.go       drivers/storage/portworx/portworx.go    PreInstall (828: a component not enabled is
                    deleted), DeleteStorage (1017), deleteComponents (1116), setSecuritySpecDefaults (1480)
  storagecluster.go pkg/controller/storagecluster/storagecluster.go  deleteStorageCluster (871),
                    setStorageClusterDefaults (1494: the full update of the StorageCluster)
  update.go         pkg/controller/storagecluster/update.go  matchSelectedFields (912), isBounceRequired (996),
                    isSecurityBounceRequired (1030); sc util.go elementsMatch (74)
  uninstall.go      drivers/storage/portworx/uninstall.go   GetNodeWiperStatus (101)
  auth.go           drivers/storage/portworx/component/auth.go  Delete (138), createPrivateKeysSecret (215),
                    maintainAuthTokenSecret (337), isTokenSecretRefreshRequired (402)
  k8s.go            pkg/util/k8s/k8s.go                     UpdateStorageCluster (1231), removeOwners (1894),
                    CreateOrAppendToSecret (1947), DeleteSecret (1992)

    python -m tests.support.portworx_standin --namespace NS --period SECONDS [--write-delay SECONDS]

Models, where the real thing needs more than an API server:
- Portworx pods: one per StorageNode (core.libopenstorage.org/v1 storagenodes) of the namespace; every
  StorageNode there is taken to belong to the namespace's StorageCluster (upstream allows one StorageCluster).
- The node wiper of an uninstall (a DaemonSet upstream): it "wipes" one StorageNode per pass.
- The running revision of the pods (ControllerRevisions upstream): kept in memory, per StorageCluster.

It talks to the cluster in $KUBECONFIG (in the tests: a TokenRequest token of its own ServiceAccount,
portworx-operator/portworx-operator, bound by tests/fixtures/portworx-standin-rbac.yaml), with user
agent and field manager "portworx-operator". It prints one line per write (verb, kind, name — never a
value), one line per restarted pod and per wiped node, one line per pass, and stops cleanly on SIGTERM.
It is independent of the project's code on purpose (its own token minting with PyJWT, its own client): it
must behave like the other controller, not like ours.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any, cast

import jwt
import kubernetes
from jwt.warnings import InsecureKeyLengthWarning
from kubernetes.client.exceptions import ApiException

from tests.support.portworx_pods import Pods, decoded, pod_env

GROUP, VERSION, PLURAL, KIND = "core.libopenstorage.org", "v1", "storageclusters", "StorageCluster"
NODES = "storagenodes"  # StorageNodes: one per Portworx pod (the stand-in's model of the pods)
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


def _nil_or_empty(value: Any) -> bool:
    """portworx.go setSecuritySpecDefaults tests guestAccess and issuer for nil *or* "" (a Go pointer to an
    empty string); tokenLifetime and sharedSecret only for nil (a JSON null or an absent key)."""
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


def tls_enabled(spec: dict[str, Any]) -> bool:
    """util.go IsTLSEnabledOnCluster: security.enabled and security.tls.enabled both true."""
    security = spec.get("security") or {}
    enabled = (security.get("tls") or {}).get("enabled")
    return security.get("enabled") is True and enabled is True


def _as_set(items: Any) -> list[str]:
    """sc util.go elementsMatch: the same elements in any order (a multiset), so a reorder is no change."""
    return sorted(json.dumps(item, sort_keys=True) for item in items or [])


# The fields of a revision, as named in the restart log lines.
REVISION_FIELDS = ("image", "env", "volumes", "security.enabled (auth)", "security.tls.enabled",
                   "security.tls", "security.auth.selfSigned.issuer", "security.auth.selfSigned.sharedSecret")


def revision(spec: dict[str, Any]) -> dict[str, Any]:
    """The fields of a spec whose change restarts the Portworx pods, and only the security-relevant ones
    of update.go matchSelectedFields (912): image; env and volumes as sets; isSecurityBounceRequired (1030):
    auth toggled, TLS toggled, with auth on the selfSigned issuer or sharedSecret (the Secret's name), with
    TLS on the tls block. (Upstream also compares kvdb, storage, network, resources, CSI and more: the
    stand-in leaves those out, as it leaves out everything but security.) tokenLifetime, guestAccess and
    any Secret's content are not there: changing them restarts nothing."""
    security = spec.get("security") or {}
    self_signed = ((security.get("auth") or {}).get("selfSigned") or {}) if auth_enabled(spec) else {}
    return dict(zip(REVISION_FIELDS, (
        spec.get("image"), _as_set(spec.get("env")), _as_set(spec.get("volumes")), auth_enabled(spec),
        tls_enabled(spec), security.get("tls") if tls_enabled(spec) else None,
        self_signed.get("issuer"), self_signed.get("sharedSecret"),
    ), strict=True))


def bounce_fields(running: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """update.go: the revision fields in which the spec differs from the running pods' (empty: no restart)."""
    current = revision(spec)
    return [name for name in REVISION_FIELDS if running.get(name) != current[name]]


def env_entry(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in spec.get("env") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def set_security_defaults(spec: dict[str, Any]) -> None:
    """portworx.go setSecuritySpecDefaults, with auth on; never overwrites a set value.

    - no (or an empty) auth: guestAccess Enabled and the default selfSigned block;
    - auth present: guestAccess nil or "" becomes Enabled; an empty selfSigned becomes the default block;
      a non-empty selfSigned gets: issuer, where nil or "", = spec.env PORTWORX_AUTH_JWT_ISSUER if set,
      else operator.portworx.io; tokenLifetime 24h and sharedSecret px-shared-secret only where nil.
      A "" tokenLifetime or sharedSecret is kept, and the later steps fail on it every pass, as upstream
      (a Get of Secret "" errors; ParseExtendedDuration("") errors): see create_private_keys_secrets and
      maintain_tokens.
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
    if _nil_or_empty(auth.get("guestAccess")):
        auth["guestAccess"] = GUEST_ACCESS_DEFAULT
    self_signed = auth.get("selfSigned")
    if _empty(self_signed):
        auth["selfSigned"] = default_self_signed()
        return
    if _nil_or_empty(self_signed.get("issuer")):
        entry = env_entry(spec, ENV_ISSUER)
        from_env = entry.get("value") if entry else None
        self_signed["issuer"] = from_env if isinstance(from_env, str) and from_env else DEFAULT_ISSUER
    if self_signed.get("tokenLifetime") is None:
        self_signed["tokenLifetime"] = DEFAULT_LIFETIME
    if self_signed.get("sharedSecret") is None:
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
    def __init__(self, client: kubernetes.client.ApiClient, namespace: str, write_delay: float = 0.0,
                 stopping: threading.Event | None = None, pods: Pods | None = None) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.namespace = namespace
        # Seconds between a pass's read of a StorageCluster and its update of it: a test lands a write
        # of its own in that window, deterministically (k8s.go UpdateStorageCluster then reverts it).
        self.write_delay = write_delay
        self.stopping = stopping or threading.Event()
        # auth.go resourceVersionCache: per token Secret, the shared-secret Secret's resourceVersion it
        # was minted with. In memory only, so every start re-mints both tokens.
        self.minted_with: dict[str, str] = {}
        # The node wiper of an uninstall (uninstall.go): per StorageCluster uid, the StorageNodes wiped so
        # far; present once the wiper has started. In memory: a restart of the stand-in starts it over
        # (upstream the wiper DaemonSet and its pods' readiness outlive a restart of the operator).
        self.wiped: dict[str, set[str]] = {}
        # The running revision of the Portworx pods (update.go: upstream a ControllerRevision per spec
        # hash, the pods labelled with theirs), per StorageCluster uid: revision() of the spec the pods
        # run. In memory, and a start takes each StorageCluster's current spec as running: a change made
        # while the stand-in is down restarts nothing. (A ConfigMap would survive restarts, but it would
        # be a write of the stand-in's own that no upstream object matches, in the namespace whose writes
        # the tests count.)
        self.running: dict[str, dict[str, Any]] = {}
        self.restarts = 0  # Portworx pods restarted by this process
        # With --pods-binary: the Portworx pods as processes (tests/support/portworx_pods.py), replaced by
        # a rolling update; without, a restart is a log line per StorageNode. The processes are children
        # of this one: a restart of the stand-in restarts them too (upstream, pods outlive the operator).
        self.pods = pods
        self.update_state: dict[str, str] = {}  # StorageCluster uid -> the Update condition it last wrote
        self.node_status: dict[str, tuple[str, str]] = {}  # StorageNode -> (mgmtIP, phase) in its status

    # -- API calls (dicts in, dicts out) ---------------------------------------------------------

    def _ref(self, name: str) -> str:
        return f"{self.namespace}/{name}"

    def storage_nodes(self) -> list[str]:
        """The names of the namespace's StorageNodes (none when their CRD is not installed)."""
        try:
            listed = cast(dict[str, Any],
                          self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, NODES))
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(str(item["metadata"]["name"]) for item in listed.get("items") or [])

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

    def update_storagecluster(self, desired: dict[str, Any], why: str) -> dict[str, Any] | None:
        """k8s.go UpdateStorageCluster (1231): GET the current object, copy *its* resourceVersion onto the
        object to write (computed from this pass's earlier read), and PUT it unless it equals the current
        one. So it does not fail on a conflict: the last writer wins, and whatever changed between the
        pass's read and this write is reverted. (A write landing between that GET and the PUT still gets
        a 409: the next pass tries again, None.) --write-delay sleeps before the GET. Upstream's GET goes
        through the controller's client, which may answer from its informer cache; the stand-in's GET
        asks the API server, so its update is never based on a lagging copy."""
        name = desired["metadata"]["name"]
        if self.write_delay > 0:
            log(f"StorageCluster {self._ref(name)}: read; update in {self.write_delay:g}s ({why})")
            self.stopping.wait(self.write_delay)
        try:
            existing = cast(dict[str, Any], self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body = copy.deepcopy(desired)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        if body == existing:
            return existing
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
        try:
            nodes = self.storage_nodes()
        except ApiException as exc:
            log(f"error: list StorageNodes: {exc.status} {exc.reason}")
            return
        for cluster in listed.get("items") or []:
            name = cluster["metadata"]["name"]
            try:
                self.reconcile(cluster, nodes)
            except Skip as exc:
                log(f"StorageCluster {self._ref(name)}: {exc}")
            except ApiException as exc:  # status and reason only: a body could echo an object
                log(f"error: StorageCluster {self._ref(name)}: {exc.status} {exc.reason}")

    def reconcile(self, cluster: dict[str, Any], nodes: list[str]) -> None:
        if cluster["metadata"].get("deletionTimestamp"):
            self.uninstall(cluster, nodes)
            return
        # storagecluster.go setStorageClusterDefaults: set defaults on a copy; if anything changed,
        # update the whole object (k8s.go UpdateStorageCluster).
        desired = copy.deepcopy(cluster)
        spec = desired.get("spec")
        if isinstance(spec, dict):
            set_security_defaults(spec)
        finalizers = list(desired["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            desired["metadata"]["finalizers"] = [*finalizers, FINALIZER]
        if desired != cluster:
            updated = self.update_storagecluster(desired, "defaults")
            if updated is None:
                return
            cluster = updated
        spec = cluster.get("spec") or {}
        self.roll_pods(cluster, nodes)
        if not auth_enabled(spec):
            # portworx.go PreInstall: a component that is not enabled is deleted, every pass.
            self.delete_auth(cluster)
            return
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
        if not shared_name:  # kept "" by the defaults: upstream's Get of Secret "" fails, every pass
            raise Skip('Secret "": resource name may not be empty (spec.security.auth.selfSigned.sharedSecret)')
        shared = self.key_value(spec, ENV_SHARED_SECRET, shared_name, SHARED_SECRET_KEY)
        system = self.key_value(spec, ENV_SYSTEM_KEY, SYSTEM_SECRETS_NAME, SYSTEM_SECRET_KEY)
        apps = self.key_value(spec, ENV_APPS_KEY, SYSTEM_SECRETS_NAME, APPS_SECRET_KEY)
        self.create_or_append(shared_name, {SHARED_SECRET_KEY: shared})
        self.create_or_append(SYSTEM_SECRETS_NAME, {SYSTEM_SECRET_KEY: system, APPS_SECRET_KEY: apps})

    # -- tokens (auth.go maintainAuthTokenSecret / isTokenSecretRefreshRequired) -----------------

    def maintain_tokens(self, cluster: dict[str, Any]) -> None:
        self_signed = cluster["spec"]["security"]["auth"]["selfSigned"]
        issuer = str(self_signed.get("issuer") or "")
        shared_name = str(self_signed["sharedSecret"])
        for name, roles, groups in TOKENS:
            if not self.refresh_required(name, shared_name, issuer):
                continue
            # auth.go createToken: the lifetime is parsed only to mint (a "" one fails here, every pass).
            lifetime = parse_lifetime(str(self_signed.get("tokenLifetime") or ""))
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
        if existing is None:
            return True  # the token Secret is missing (NotFound): treated as expired
        token = (existing.get("data") or {}).get(TOKEN_KEY)
        if not token:
            # util.go GetSecretKeyValue: a missing or empty key is an error that is not a NotFound, so
            # isTokenSecretRefreshRequired returns it: no re-mint, the same error every pass.
            raise Skip(f"failed to check token secret expiration {name}: failed to get key {TOKEN_KEY} "
                       f"inside secret {self._ref(name)}")
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

    # -- the Portworx pods (update.go: the rolling update) ---------------------------------------

    def roll_pods(self, cluster: dict[str, Any], nodes: list[str]) -> None:
        """update.go: when the spec differs from the running pods' revision in a bounce-relevant field
        (revision()), every Portworx pod is restarted (upstream rolling, maxUnavailable at a time; here
        one log line per pod, at once) and the spec becomes the running revision. A pod is a StorageNode:
        with none there is nothing to restart, whatever status.phase says (a phase Running without
        StorageNodes has no pod here to restart). The first time it sees a StorageCluster (and after its
        own start) it only records the revision: the pods run what the spec says."""
        uid = str(cluster["metadata"]["uid"])
        spec = cluster.get("spec") or {}
        if self.pods is not None:
            self.run_pods(cluster, nodes)
            return
        running = self.running.get(uid)
        self.running[uid] = revision(spec)
        if running is None:
            return
        fields = bounce_fields(running, spec)
        if not fields:
            return
        name = cluster["metadata"]["name"]
        for node in nodes:
            self.restarts += 1
            log(f"restart Portworx pod {self._ref(node)} ({', '.join(fields)})")
        log(f"StorageCluster {self._ref(name)}: new revision ({', '.join(fields)}): {len(nodes)} Portworx pods "
            f"restarted; {self.restarts} pod restarts in total since start")

    def run_pods(self, cluster: dict[str, Any], nodes: list[str]) -> None:
        """The pods as processes: one pass of the rolling update, each StorageNode's mgmtIP, and the
        StorageCluster's Update condition (status.go) when it changes."""
        assert self.pods is not None
        spec = cluster.get("spec") or {}
        digest = json.dumps(revision(spec), sort_keys=True)

        def read(name: str) -> dict[str, bytes] | None:
            return decoded(self.get_secret(name))

        def env_for(pod_spec: dict[str, Any]) -> dict[str, str]:
            ss = ((pod_spec.get("security") or {}).get("auth") or {}).get("selfSigned") or {}
            return pod_env(pod_spec, auth_enabled(pod_spec), str(ss.get("issuer") or DEFAULT_ISSUER),
                           str(ss.get("sharedSecret") or SHARED_SECRET_NAME), read)

        before = self.pods.restarts
        state = self.pods.sync(spec, digest, nodes, env_for, read)
        for _ in range(self.pods.restarts - before):
            self.restarts += 1
            log(f"restart Portworx pod (rolling update of StorageCluster {self._ref(cluster['metadata']['name'])}); "
                f"{self.restarts} pod restarts in total since start")
        for node in nodes:
            pod = self.pods.pods.get(node)
            if pod is None:
                continue
            # storagenode.go: the node's address and phase, as Portworx reports them (a restarted pod is
            # Initializing until its API answers, and for the pass that started it at least: Portworx takes
            # minutes to start, a stand-in milliseconds, and the node's status shows every restart).
            shown = (pod.ip, "Online" if pod.ready() and not pod.just_started else "Initializing")
            pod.just_started = False
            if self.node_status.get(node) != shown:
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.namespace, NODES, node,
                    {"status": {"network": {"mgmtIP": shown[0]}, "phase": shown[1]}})
                self.node_status[node] = shown
        uid = str(cluster["metadata"]["uid"])
        if self.update_state.get(uid) != state:
            remaining = sum(1 for p in self.pods.pods.values() if not p.ready() or p.revision != digest)
            message = ("Portworx update completed" if state == "Completed" else
                       f"Portworx update in progress, {remaining} nodes remaining")
            status = dict(cluster.get("status") or {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Update"]
            conditions.append({"source": "Portworx", "type": "Update", "status": state, "message": message})
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, cluster["metadata"]["name"],
                {"status": {"conditions": conditions}})
            self.update_state[uid] = state
            log(f"StorageCluster {self._ref(cluster['metadata']['name'])}: Update {state} ({message})")

    # -- deletion (auth.go Delete; k8s.go DeleteSecret) -------------------------------------------

    def delete_secret_of(self, name: str, owner_uid: str | None) -> None:
        """k8s.go DeleteSecret (1992), with this StorageCluster as the owner (owner_uid) or with no owner:
        - owner given: delete the Secret if this StorageCluster is its only owner; if it has others too,
          only drop this reference (an update of the object as read); if the Secret has no owners or not
          this one, leave it ("Cannot delete secret … as it is not owned");
        - no owner given: delete it if it has no ownerReferences at all; if it has any, leave it (the same
          refusal: removeOwners removes nothing, so every reference "remains")."""
        secret = self.get_secret(name)
        if secret is None:
            return
        refs = secret["metadata"].get("ownerReferences") or []
        rest = [r for r in refs if owner_uid is None or r.get("uid") != owner_uid]
        if (not refs and owner_uid is not None) or (refs and len(rest) == len(refs)):
            log(f"cannot delete Secret {self._ref(name)}: not owned")
            return
        if not rest:
            self.delete_secret(name)
            return
        secret["metadata"]["ownerReferences"] = rest
        self.replace_secret(secret, " (owner reference removed)")

    def delete_auth(self, cluster: dict[str, Any]) -> None:
        """auth.go Delete (138): run by PreInstall for auth off, every pass, and by deleteComponents on
        uninstall whether auth is on or not. The token Secrets, owned by this StorageCluster; then, only
        in deletion with a non-empty spec.deleteStrategy.type, the key Secrets by their fixed names with
        no owner (so a key Secret with any ownerReference is kept)."""
        meta = cluster["metadata"]
        uid = str(meta["uid"])
        for token_name, _, _ in TOKENS:
            self.delete_secret_of(token_name, uid)
        strategy = str(((cluster.get("spec") or {}).get("deleteStrategy") or {}).get("type") or "")
        if not meta.get("deletionTimestamp") or not strategy:
            return
        self.delete_secret_of(SHARED_SECRET_NAME, None)
        self.delete_secret_of(SYSTEM_SECRETS_NAME, None)

    def uninstall(self, cluster: dict[str, Any], nodes: list[str]) -> None:
        """storagecluster.go deleteStorageCluster (871): while its finalizer is on, every pass runs
        portworx.go DeleteStorage (1017): every component's Delete, then the uninstall's state; the
        finalizer goes (a full update) once that is complete."""
        meta = cluster["metadata"]
        if FINALIZER not in (meta.get("finalizers") or []):
            return  # nothing of ours is holding it
        self.delete_auth(cluster)
        if not self.uninstall_complete(cluster, nodes):
            return
        body = copy.deepcopy(cluster)
        body["metadata"]["finalizers"] = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        if self.update_storagecluster(body, "finalizer removed") is not None:
            self.wiped.pop(str(meta["uid"]), None)

    def uninstall_complete(self, cluster: dict[str, Any], nodes: list[str]) -> bool:
        """portworx.go DeleteStorage: without a deleteStrategy it is complete at once. With one, the node
        wiper is started on the first pass; uninstall.go GetNodeWiperStatus (101) counts its pods: total =
        the nodes it runs on (the StorageNodes), completed = the pods done (the nodes wiped; here one more
        per pass). Complete only when completed != 0, total != 0 and completed == total: with no
        StorageNode, never."""
        if (cluster.get("spec") or {}).get("deleteStrategy") is None:
            return True
        name, uid = cluster["metadata"]["name"], str(cluster["metadata"]["uid"])
        wiped = self.wiped.get(uid)
        if wiped is None:
            self.wiped[uid] = set()
            log(f"StorageCluster {self._ref(name)}: node wiper started")
            return False
        todo = [node for node in nodes if node not in wiped]
        if todo:
            wiped.add(todo[0])
            log(f"wipe Portworx node {self._ref(todo[0])}")
        completed, total = sum(1 for node in nodes if node in wiped), len(nodes)
        log(f"StorageCluster {self._ref(name)}: node wiper: completed {completed}, total {total}")
        return completed != 0 and total != 0 and completed == total


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
    parser.add_argument("--write-delay", type=float, default=0.0,
                        help="seconds between a pass's read of a StorageCluster and its update (tests: a window "
                             "in which a write of theirs lands and is then reverted)")
    parser.add_argument("--pods-binary", type=Path, default=None,
                        help="run the Portworx pods as processes of this binary (pxsec-interop: node mode)")
    parser.add_argument("--pods-dir", type=Path, default=None, help="the pods' root directories and logs")
    args = parser.parse_args(argv)

    configuration = kubernetes.client.Configuration()
    _untyped(kubernetes.config).load_kube_config(config_file=os.environ.get("KUBECONFIG"),
                                       client_configuration=configuration)
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = AGENT
    stop, wake = threading.Event(), threading.Event()
    pods = None
    if args.pods_binary is not None:
        pods = Pods(args.pods_binary, args.pods_dir or Path.cwd() / "pods", log)
    standin = StandIn(client, args.namespace, args.write_delay, stop, pods)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_watch, args=(standin.custom, args.namespace, wake, stop), daemon=True).start()
    log(f"portworx-operator stand-in started: namespace {args.namespace}, period {args.period}s, "
        f"write delay {args.write_delay:g}s, pid {os.getpid()}")
    passes = 0
    while not stop.is_set():
        wake.clear()
        standin.run_pass()
        passes += 1
        log(f"pass {passes} done at {dt.datetime.now(dt.UTC).isoformat()}")
        wake.wait(args.period)
    if pods is not None:
        pods.stop()
    log("portworx-operator stand-in stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
