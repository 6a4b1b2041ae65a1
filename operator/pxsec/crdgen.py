"""Build the PxSecurity CustomResourceDefinition from `pxsec.crdschema` and the rules in `pxsec.celrules`.

`crds/pxsecurity.yaml` is generated, never edited: the unit tests fail when it differs from what this
module produces, so the CRD the API server enforces and the offline validator cannot drift apart.
Regenerate it with

    python -m pxsec.crdgen --output crds/pxsecurity.yaml

`spec` is `pxsec.crdschema`'s schema with every rule of `pxsec.celrules` attached; this module adds what
only the CRD needs: the status schema the operator writes, the printer columns `kubectl get pxsec` shows,
and the envelope.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

import yaml

from pxsec.celrules import spec_schema_with_rules
from pxsec.crdschema import MAX_NAME
from pxsec.spec import API_GROUP, API_VERSION, KIND, PLURAL

CRD_NAME: Final = f"{PLURAL}.{API_GROUP}"
SHORT_NAME: Final = "pxsec"
CATEGORY: Final = "portworx"
HEADER: Final = (
    "# Generated from operator/pxsec/crdschema.py, celrules.py and crdgen.py. Do not edit:\n"
    "# change those and run `python -m pxsec.crdgen --output crds/pxsecurity.yaml`.\n"
)

CONDITION_TYPES: Final = ("Ready", "KeysReady", "OIDCReady", "TokensReady", "ParametersRendered",
                          "StorageClusterApplied", "TokensAccepted", "KeysRetained")


def _s(description: str, max_length: int | None = None, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string", "description": description}
    if max_length is not None:
        node["maxLength"] = max_length
    node.update(extra)
    return node


def _time(description: str) -> dict[str, Any]:
    return _s(description, format="date-time")


def _int(description: str) -> dict[str, Any]:
    return {"type": "integer", "format": "int64", "minimum": 0, "description": description}


def _list_map(description: str, key: str, item: dict[str, Any], max_items: int) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "maxItems": max_items,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": [key],
        "items": item,
    }


def _obj(description: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "description": description, "properties": properties}
    if required:
        node["required"] = list(required)
    return node


STATUS_SCHEMA: Final[dict[str, Any]] = _obj(
    "What the operator observed and did. Written by the operator only.",
    {
        "observedGeneration": _int("The metadata.generation this status describes."),
        "issuers": _s("The token sources in effect, comma-separated: oidc, self-signed (the ISSUERS column).", 64),
        "nextRenewal": _time("When the next minted token is refreshed (the NEXT RENEWAL column)."),
        "conditions": _list_map(
            "Ready sums up KeysReady (the Secrets are present, adopted or generated), OIDCReady (the "
            "provider's discovery document and JWKS were probed), TokensReady (the tokens are minted "
            "and current), ParametersRendered (the initialization parameters are written), "
            "StorageClusterApplied (with spec.storageCluster.apply) and TokensAccepted (with a "
            "StorageCluster that has security on: Portworx, as it configures it, accepts every token, "
            "the Portworx Operator's included). KeysRetained (informational) says what an uninstall of "
            "the StorageCluster with a deleteStrategy does to the key Secrets.",
            "type",
            _obj(
                "A condition, as in metav1.Condition.",
                {
                    "type": _s("One of " + ", ".join(CONDITION_TYPES) + ".", 316),
                    "status": _s("True, False or Unknown.", 16, enum=["True", "False", "Unknown"]),
                    "reason": _s("A CamelCase reason for the status.", 1024),
                    "message": _s("What a person should know, in a sentence.", 32768),
                    "observedGeneration": _int("The metadata.generation the condition was computed for."),
                    "lastTransitionTime": _time("When the status last changed."),
                },
                required=("type", "status"),
            ),
            16,
        ),
        "secrets": _list_map(
            "The Secrets holding key material, by name. Fingerprints only: nothing secret is ever written to status.",
            "name",
            _obj(
                "One Secret the operator generated or adopted.",
                {
                    "name": _s("Name of the Secret.", MAX_NAME),
                    "purpose": _s("What it holds: system, sharedSecret, rsa, ecdsa or token.", 64),
                    "keys": {
                        "type": "array",
                        "description": "The keys of the Secret the operator relies on.",
                        "maxItems": 16,
                        "items": {"type": "string", "maxLength": MAX_NAME},
                    },
                    "fingerprint": _s("sha256:<hex> of the key material (of the public key for key pairs).", 128),
                    "origin": _s(
                        "Generated: created by the operator. Adopted: it existed, and was taken as it was.",
                        16,
                        enum=["Generated", "Adopted"],
                    ),
                    "revision": _int(
                        "Starts at 1 and grows each time the key material had to be generated again after "
                        "the Secret was lost: every token signed with the old key is invalid."
                    ),
                    "sharedWith": _s(
                        "PortworxOperator when the Portworx Operator manages this Secret too: it is kept in "
                        "exactly the shape that operator writes (see notes).", 32),
                    "notes": {
                        "type": "array",
                        "description": "What a person should know about this Secret: a weak value adopted as "
                        "it is, template metadata or owner references that cannot be applied and why.",
                        "maxItems": 16,
                        "items": {"type": "string", "maxLength": 1024},
                    },
                },
                required=("name",),
            ),
            64,
        ),
        "oidc": _obj(
            "The last probe of the OIDC provider.",
            {
                "lastProbeTime": _time("When the discovery document and JWKS were last fetched."),
                "issuerMatches": {
                    "type": "boolean",
                    "description": "Whether the discovery document's issuer equals spec.oidc.issuer exactly.",
                },
                "jwksKeyCount": _int("Number of keys in the provider's JWKS."),
                "jwksHash": _s("sha256:<hex> of the JWKS, to see when the provider rotated its keys.", 128),
                "algorithms": {
                    "type": "array",
                    "description": "Signing algorithms Portworx can verify for this provider: the RS, ES and PS "
                    "algorithms it announces (id_token_signing_alg_values_supported), or RS256 when it announces "
                    "none (as go-oidc assumes).",
                    "maxItems": 32,
                    "items": {"type": "string", "maxLength": 32},
                },
            },
        ),
        "tokens": _list_map(
            "The tokens the operator minted, and the Portworx Operator's own tokens it checks, by Secret.",
            "secretName",
            _obj(
                "One token; the token itself is only in its Secret.",
                {
                    "secretName": _s("The Secret holding the token, key auth-token.", MAX_NAME),
                    "expiresAt": _time("The token's exp."),
                    "renewalTime": _time("When the operator mints its replacement."),
                    "signingKey": _s("The key that signed it: SharedSecret, RSA or ECDSA.", 16),
                    "mintedBy": _s("PortworxOperator for its px-admin-token / px-user-token, which this "
                                   "operator never writes; absent for the tokens minted here.", 32),
                    "accepted": {"type": "boolean",
                                 "description": "Whether Portworx, as the StorageCluster configures it, accepts it."},
                    "reason": _s("Why it would be rejected, or 'accepted'.", 1024),
                },
                required=("secretName",),
            ),
            32,
        ),
        "storageCluster": _obj(
            "The targeted StorageCluster as the Portworx Operator configures Portworx from it (names only).",
            {
                "name": _s("Its name.", MAX_NAME),
                "exists": {"type": "boolean", "description": "Whether it exists."},
                "securityEnabled": {"type": "boolean",
                                    "description": "spec.security.enabled, and auth.enabled not false."},
                "issuer": _s("The self-signed issuer Portworx trusts (its auth.selfSigned.issuer).", 1024),
                "sharedSecret": _s("The Secret Portworx takes the HS256 key from.", MAX_NAME),
                "deleteStrategy": _s("Its spec.deleteStrategy.type, when set.", 64),
                "deleting": {"type": "boolean", "description": "Whether it is being deleted."},
            },
        ),
        "warnings": {
            "type": "array", "maxItems": 8,
            "description": "What Portworx will not give exactly as the spec says (e.g. not OIDC-only with a "
                           "StorageCluster; a tokenLifetime below the minimum, stored before the rule). "
                           "Nothing is refused for these.",
            "items": _s("One warning.", 1024),
        },
        "rotation": _obj(
            "Where the last key rotation stands (spec.rotation; docs/rotation.md).",
            {
                "phase": _s("Mounting, Acknowledging, Resigning, Grace, Revoking (emergency) or Completed (the "
                            "ROTATION column).", 16),
                "trigger": _s("The pxsec.dev/rotate-keys value last used (a new value starts a rotation).", 256),
                "startedAt": _time("When the rotation started."),
                "since": _time("When its phase began."),
                "from": _obj("The key it rotates from.", {"kind": _s("RSA or ECDSA.", 8),
                                                          "secret": _s("Its Secret.", MAX_NAME)}),
                "to": _obj("The key it rotates to.", {"kind": _s("RSA or ECDSA.", 8),
                                                      "secret": _s("Its Secret.", MAX_NAME)}),
                "retired": _obj("The retired key: still mounted, signing nothing, replaced by the next rotation.",
                                {"kind": _s("RSA or ECDSA.", 8), "secret": _s("Its Secret.", MAX_NAME)}),
                "revision": _int("The revision of the newest key a rotation made (its Secret is <name>-r<n>)."),
                "acknowledged": _s("Portworx nodes that accept the new key / all nodes.", 32),
                "revoked": _s("Emergency: Portworx nodes that reject the old key / all nodes.", 32),
                "revokedKey": _obj("The key the last rotation revoked (emergency).",
                                   {"kind": _s("RSA or ECDSA.", 8), "secret": _s("Its Secret.", MAX_NAME)}),
                "dropped": {
                    "type": "array", "maxItems": 8,
                    "description": "Keys no longer given to Portworx whose Secrets wait for no pod to mount them "
                                   "(then deleted under deletionPolicy Delete, kept under Retain).",
                    "items": _obj("One key.", {"kind": _s("RSA or ECDSA.", 8), "secret": _s("Its Secret.", MAX_NAME)}),
                },
                "message": _s("What it does or waits for, in words.", 4096),
                "sharedSecret": _obj(
                    "Where the last rotation of the shared secret stands (annotation pxsec.dev/rotate-shared-secret).",
                    {
                        "phase": _s("Switching, Acknowledging or Completed.", 16),
                        "trigger": _s("The pxsec.dev/rotate-shared-secret value last used.", 256),
                        "startedAt": _time("When it started."),
                        "since": _time("When its phase began."),
                        "switchedAt": _time("When the StorageCluster first named the new Secret: the window "
                                            "during which tokens of either secret may be rejected opened."),
                        "from": _s("The Secret of the shared secret it rotates from.", MAX_NAME),
                        "to": _s("The Secret of the new shared secret.", MAX_NAME),
                        "revision": _int("The revision of the newest Secret a rotation made (<name>-r<n>)."),
                        "acknowledged": _s("Portworx nodes that accept the new secret / all nodes.", 32),
                        "dropped": {"type": "array", "maxItems": 8,
                                    "description": "Secrets no longer given to Portworx, until no pod uses them.",
                                    "items": _s("One Secret.", MAX_NAME)},
                        "message": _s("What it does or waits for, and the window, in words.", 4096),
                    },
                ),
            },
        ),
        "tenants": {
            "type": "array", "maxItems": 32,
            "description": "Per tenant (spec.tenants): the namespaces its selector picks and those holding its "
                           "current token, the next renewal, and at most 20 problems (never one entry per "
                           "namespace: the TenantsReady condition says the same in words).",
            "items": _obj("One tenant.", {
                "name": _s("The tenant.", 63),
                "selected": _int("Namespaces its selector picks (the PxSecurity's own namespace aside)."),
                "ready": _int("Of those, the namespaces holding its current token."),
                "nextRenewal": _time("When the first of its tokens is minted again."),
                "problems": {"type": "array", "maxItems": 21,
                             "description": "What keeps a namespace from its token (a conflict, a Secret that is "
                                            "not ours, a namespace not served), at most 20, then how many more.",
                             "items": _s("One problem.", 1024)},
            }, required=("name",)),
        },
        "nodes": _obj(
            "What the Portworx nodes answered to a canary token signed with each key the StorageCluster gives "
            "them (spec.storageCluster.probeNodes): the NodesAcknowledged condition says the same in words.",
            {
                "acknowledged": _s("Nodes that accept every key / all nodes, e.g. 3/3.", 32),
                "keys": {"type": "array", "maxItems": 8, "description": "The keys probed (algorithm and Secret).",
                         "items": _s("One key.", 512)},
                "revoked": _obj(
                    "Emergency rotation: the nodes' answer to a canary signed with the revoked key.",
                    {"key": _s("The revoked key (algorithm and Secret).", 512),
                     "rejecting": _s("Nodes that reject it / all nodes.", 32),
                     "notRejecting": {"type": "array", "maxItems": 64,
                                      "description": "Nodes that still accept it or could not be asked.",
                                      "items": _s("One StorageNode.", MAX_NAME)}},
                ),
                "notAcknowledging": {
                    "type": "array", "maxItems": 64,
                    "description": "The nodes that reject a key, or could not be asked.",
                    "items": _obj("One node.", {
                        "node": _s("The StorageNode.", MAX_NAME),
                        "rejects": {"type": "array", "maxItems": 8, "description": "The keys it rejects.",
                                    "items": _s("One key.", 512)},
                        "unreachable": _s("Why it could not be asked.", 256)}, required=("node",)),
                },
            },
        ),
        "pendingChange": _obj(
            "A change to a running StorageCluster that waits for approval (spec.storageCluster.changePolicy "
            "Manual): set spec.storageCluster.approvedChange to its id to apply exactly this change.",
            {
                "id": _s("The change id: a hash of the patch, the same in pxsec plan.", 16),
                "effects": {
                    "type": "array", "maxItems": 8,
                    "description": "What it would do: RollingRestart, TokensInvalidated, KeysUnmounted.",
                    "items": _obj("One effect.", {"type": _s("The kind of effect.", 32),
                                                  "message": _s("What it would do, in words.", 4096)},
                                  required=("type",)),
                },
                "fields": {"type": "array", "maxItems": 64, "description": "The StorageCluster fields it changes "
                           "(path: before → after; values shown only where they are not secret).",
                           "items": _s("One field.", 1024)},
                "since": _time("When it started waiting."),
            },
        ),
        "parameters": _obj(
            "Where the rendered initialization parameters are.",
            {
                "configMapName": _s("The ConfigMap holding them (the PARAMETERS column).", MAX_NAME),
                "hash": _s("sha256:<hex> of the rendered parameters: it changes when they change.", 128),
            },
        ),
        "kopf": {
            "type": "object",
            "description": "Bookkeeping of the operator framework (kopf). Not for people.",
            "x-kubernetes-preserve-unknown-fields": True,
        },
    },
)

_READY: Final = '.status.conditions[?(@.type=="Ready")]'
PRINTER_COLUMNS: Final[list[dict[str, Any]]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": f"{_READY}.status",
        "description": "The status of the Ready condition.",
    },
    {
        "name": "Issuers",
        "type": "string",
        "jsonPath": ".status.issuers",
        "description": "The token sources in effect.",
    },
    {
        "name": "Parameters",
        "type": "string",
        "jsonPath": ".status.parameters.configMapName",
        "description": "The ConfigMap with the rendered initialization parameters.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Next Renewal",
        "type": "string",
        "jsonPath": ".status.nextRenewal",
        "priority": 1,
        "description": "When the next minted token is refreshed.",
    },
    {
        "name": "Rotation",
        "type": "string",
        "jsonPath": ".status.rotation.phase",
        "priority": 1,
        "description": "Where the last key rotation stands.",
    },
    {
        "name": "Message",
        "type": "string",
        "jsonPath": f"{_READY}.message",
        "priority": 1,
        "description": "The message of the Ready condition.",
    },
]


def openapi_schema() -> dict[str, Any]:
    """The `openAPIV3Schema` of the CRD's only version."""
    return {
        "type": "object",
        "description": (
            f"{KIND} turns on PX-Security for one Portworx StorageCluster: it names the token sources "
            "Portworx accepts (an OIDC provider, self-signed keys, or both), and the operator generates "
            "and keeps the key material in Secrets (once, never silently again), renders the "
            "initialization parameters, mints and refreshes tokens, and reports it all in status."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": _s("The versioned schema of this object: pxsec.dev/v1alpha1."),
            "kind": _s(f"The kind of this object: {KIND}."),
            "metadata": {"type": "object"},
            "spec": spec_schema_with_rules(),
            "status": STATUS_SCHEMA,
        },
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a plain dict ready for YAML or the API."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "selectableFields": [{"jsonPath": ".spec.storageCluster.name"}],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style, and lists indented under their key, as kubectl and most CRDs print them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def crd_yaml() -> str:
    """The text of crds/pxsecurity.yaml."""
    body = yaml.dump(
        build_crd(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    """`python -m pxsec.crdgen [--output FILE]`: print the CRD, or write it to FILE."""
    parser = argparse.ArgumentParser(prog="python -m pxsec.crdgen", description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", type=Path, help="write here instead of to stdout")
    args = parser.parse_args(argv)
    text = crd_yaml()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
