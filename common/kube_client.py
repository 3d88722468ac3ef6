"""A small asyncio client for the Kubernetes API, on aiohttp.

Shared by the proxy's Kubernetes config source (list + watch of ConfigMaps and
one Secret) and by the operator's writers (publish, status, Events, key
Secrets). The kubeconfig (or in-cluster service account) is read once with the
official `kubernetes` package's loader, which knows every kubeconfig shape;
all requests then go through aiohttp so nothing blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import aiohttp

from lockgate.common.http import client_session

MERGE_PATCH = "application/merge-patch+json"
# Lists and watches of object metadata only (names, labels, versions; no data).
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A Kubernetes API answer other than 2xx, with its Status body."""

    def __init__(self, status: int, body: Mapping[str, Any] | None, what: str) -> None:
        reason = (body or {}).get("reason", "")
        message = (body or {}).get("message", "")
        super().__init__(f"{what}: HTTP {status} {reason} {message}".strip())
        self.status = status
        self.reason = str(reason)
        self.body = dict(body or {})


@dataclass
class Connection:
    """Where the API server is and how to authenticate to it."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token: Callable[[], str | None] = field(default=lambda: None)


def load_connection(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """From a kubeconfig file (or $KUBECONFIG / ~/.kube/config), else in-cluster."""
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration

    cfg = Configuration()
    try:
        kconfig.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg,
                                 persist_config=False)  # type: ignore[no-untyped-call]  # untyped package
    except kconfig.ConfigException:
        if kubeconfig:
            raise
        kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return connection_from(cfg)


def connection_from(cfg: Any) -> Connection:
    ctx: ssl.SSLContext | bool
    if cfg.verify_ssl:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file and isinstance(ctx, ssl.SSLContext):
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.host.startswith("https"):
        ctx = False

    def token() -> str | None:
        # In-cluster tokens are projected and rotate: the hook re-reads them.
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        value: str | None = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        return value

    return Connection(server=cfg.host.rstrip("/"), ssl_context=ctx, token=token)


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """`/api/v1/namespaces/ns/secrets/x` and the like."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{quote(namespace)}")
    parts.append(plural)
    if name:
        parts.append(quote(name))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class KubeApi:
    """JSON in, JSON out; `ApiError` for non-2xx answers."""

    def __init__(self, connection: Connection, timeout: float = 30.0, connections: int = 20) -> None:
        self.connection = connection
        self._limit = connections  # long watches each hold one
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=5)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> KubeApi:
        return cls(load_connection(kubeconfig))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(tls=self.connection.ssl_context, limit=self._limit)
        return self._session

    def _headers(self, content_type: str | None = None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        token = self.connection.token()
        if token:
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                      content_type: str = "application/json", accept: str = "application/json") -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        async with self._client().request(
            method, self.connection.server + path, data=data, params=params,
            headers=self._headers(content_type if data is not None else None, accept), timeout=self._timeout,
        ) as resp:
            text = await resp.text()
            payload = _json_or_none(text)
            if resp.status >= 300:
                raise ApiError(resp.status, payload, f"{method} {path}")
            return payload or {}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path, params=params)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body)

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> dict[str, Any]:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except ApiError as e:
            if e.status != 404:
                raise

    async def watch(self, path: str, resource_version: str, params: Mapping[str, str] | None = None,
                    timeout_seconds: int = 290, accept: str = "application/json") -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) from a resourceVersion until the
        server ends the stream. A 410 Gone comes back as an ERROR event."""
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(timeout_seconds), **(params or {})}
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=timeout_seconds + 30)
        async with self._client().get(self.connection.server + path, params=query, headers=self._headers(accept=accept),
                                      timeout=timeout) as resp:
            if resp.status >= 300:
                raise ApiError(resp.status, _json_or_none(await resp.text()), f"WATCH {path}")
            # Events can be larger than aiohttp's line limit (a 1 MiB ConfigMap),
            # so lines are split here.
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def sleep_backoff(attempt: int, base: float = 0.2, cap: float = 5.0) -> None:
    """Exponential backoff between reconnects, capped."""
    await asyncio.sleep(min(cap, base * (2 ** min(attempt, 10))))
