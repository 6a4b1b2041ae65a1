"""Kubeconfig files for the local control plane: the admin's (client certificate) and a
ServiceAccount's (bearer token from the TokenRequest API), so the operator under test is bound by the
RBAC in `manifests/` exactly as it would be in a cluster."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def render(server: str, ca: Path, user: dict[str, Any], name: str = "pxsec-local",
           namespace: str | None = None) -> str:
    """A single-context kubeconfig; `user` is the kubeconfig `user` stanza."""
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": context}],
        "current-context": name,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_cert_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path) -> Path:
    user = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    path.write_text(render(server, ca, user))
    path.chmod(0o600)
    return path


def write_token_kubeconfig(path: Path, server: str, ca: Path, token: str, namespace: str | None = None) -> Path:
    path.write_text(render(server, ca, {"token": token}, namespace=namespace))
    path.chmod(0o600)
    return path
