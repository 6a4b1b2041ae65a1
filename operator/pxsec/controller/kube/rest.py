"""JSON in, JSON out, over the Kubernetes client's connection pool and credentials.

Why not the generated API classes: each call went through pydantic argument validation, model
serialization and deserialization into typed models that the callers turned back into dicts — most of
the operator's CPU in a burst, with nothing gained (the API server validates; the callers want dicts).
Authentication (tokens, refreshed ServiceAccount tokens, client certificates, CA) stays the client's; only its
request preparation is bypassed: `param_serialize` re-read the credentials (the kubeconfig loader's refresh hook)
and re-computed the server URL on every request — about a fifth of a request's CPU in a burst. The bearer
header is taken from the client at most every AUTH_REUSE seconds instead (client-go re-reads a ServiceAccount
token file once a minute). Requests that are not streams go over `transport.py` (its docstring says why); watch
streams, and everything through a proxy, over the client's urllib3 pool.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from typing import Any, cast
from urllib.parse import quote, urlencode

import kubernetes
import urllib3

from pxsec.controller.kube.transport import Response, Transport

THROTTLED_ATTEMPTS = 3  # a 429 is sent again twice at most, after its Retry-After (capped)
MAX_RETRY_AFTER = 2.0
REQUEST_TIMEOUT = (10.0, 60.0)  # connect, read: a hung API server fails the reconcile, it is retried
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # a JSON body is YAML
# The object's metadata, not the whole object (less to encode there and to parse here): what the metadata
# watches ask for, and writes whose response is needed only for its resourceVersion (status patches, Events).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
AUTH_REUSE = 10.0  # seconds a bearer header read from the client is used before it is read again


class HttpError(Exception):
    """A response other than 2xx (the gateway turns it into a GatewayError naming what was attempted)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status, self.body = status, body


class RestClient:
    def __init__(self, client: kubernetes.client.ApiClient, transport: Transport | None = None) -> None:
        """`transport`: for requests that are not streams (default: one for the client's configuration,
        unless it needs urllib3's — a proxy, custom socket options)."""
        self.client = client
        self.transport = transport or Transport.for_configuration(client.configuration)
        self._host = str(client.configuration.host).rstrip("/")
        self._pool = client.rest_client.pool_manager
        # The one server's connection pool itself: a PoolManager parses the URL and looks its pool up again
        # on every request (a tenth of a request's CPU). Through a proxy, the PoolManager's own way.
        self._server = None if client.configuration.proxy else self._pool.connection_from_url(self._host)
        self._auth: dict[str, str] = {}
        self._auth_until = float("-inf")
        self._auth_lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        """The client's default headers (User-Agent) and its current bearer header, read again every
        AUTH_REUSE seconds (the refresh hook re-reads a token file or runs an exec plugin)."""
        now = time.monotonic()
        with self._auth_lock:
            if now >= self._auth_until:
                settings = self.client.configuration.auth_settings()
                auth = {s["key"]: str(s["value"]) for s in settings.values()
                        if s.get("in") == "header" and s.get("value")}
                self._auth, self._auth_until = {**self.client.default_headers, **auth}, now + AUTH_REUSE
            return dict(self._auth)

    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json",
                accept: str = "application/json") -> dict[str, Any]:
        resp = self.open(method, path, query, body, content_type, accept)
        return cast(dict[str, Any], json.loads(resp.data)) if resp.data else {}

    def open(self, method: str, path: str, query: list[tuple[str, str]] | None = None, body: Any = None,
             content_type: str = "application/json", accept: str = "application/json",
             timeout: tuple[float, float] = REQUEST_TIMEOUT, stream: bool = False
             ) -> urllib3.BaseHTTPResponse | Response:
        """The response of a 2xx request (`stream`: not read yet, e.g. a watch); HttpError otherwise."""
        headers = self._headers()
        headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = content_type
        uri = path + ("?" + urlencode(query, quote_via=quote) if query else "")
        payload = None if body is None else json.dumps(body).encode()
        for attempt in range(THROTTLED_ATTEMPTS):
            resp: urllib3.BaseHTTPResponse | Response
            if self.transport is not None and not stream:
                resp = self.transport.request(method, uri, headers, payload, timeout)
            elif self._server is not None:  # what PoolManager.urlopen does for a same-host request, no more
                resp = self._server.urlopen(method, uri, body=payload, headers=headers, preload_content=not stream,
                                            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                                            assert_same_host=False, redirect=False)
            else:
                resp = self._pool.request(method, self._host + uri, body=payload, headers=headers,
                                          preload_content=not stream,
                                          timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
            # 429 means the API server did not process the request (API Priority and Fairness): any verb may
            # be sent again after Retry-After, as client-go does, instead of failing the whole reconcile.
            if resp.status != 429 or attempt + 1 == THROTTLED_ATTEMPTS:
                break
            resp.release_conn()
            time.sleep(_retry_after(resp.headers.get("Retry-After")))
        if not 200 <= resp.status < 300:
            data = resp.read() if stream else resp.data
            resp.release_conn()
            raise HttpError(resp.status, data or b"")
        return resp


def _retry_after(value: str | None) -> float:
    """Seconds to wait before sending a 429'd request again: its Retry-After (whole seconds), capped; 1 s
    without one, as client-go waits."""
    try:
        seconds = float(value) if value is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else 1.0  # NaN: the default


def core_path(namespace: str, plural: str, name: str = "") -> str:
    """A core/v1 namespaced resource (collection, or one object)."""
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}" + (f"/{quote(name, safe='')}" if name else "")


def group_path(group: str, version: str, namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    """A namespaced resource of an API group ("" namespace: across all namespaces)."""
    base = f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    return base + f"/{plural}" + (f"/{quote(name, safe='')}" if name else "") + (f"/{sub}" if sub else "")


_config_lock = threading.Lock()
_api_client: kubernetes.client.ApiClient | None = None


def api_client() -> kubernetes.client.ApiClient:
    """A shared client: in-cluster config when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    global _api_client
    with _config_lock:
        if _api_client is None:
            configuration = kubernetes.client.Configuration()
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            else:
                kubernetes.config.load_kube_config(client_configuration=configuration)
            _api_client = kubernetes.client.ApiClient(configuration)
        return _api_client


def new_client(pool: int | None = None) -> RestClient:
    """A client with a connection pool of its own, configured as the shared one (the long-lived watch
    connections must not crowd out the reconciles' requests). `pool`: the connections it keeps — one per
    watch stream that may be open at once, else every stream past the pool's size is a new TLS connection,
    dropped (with a warning) when the stream ends."""
    configuration = api_client().configuration
    if pool is not None:
        configuration = copy.copy(configuration)
        configuration.connection_pool_maxsize = pool
    return RestClient(kubernetes.client.ApiClient(configuration))
