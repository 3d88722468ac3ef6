"""Programmed: has every proxy replica loaded the published configuration?

Replicas are the ready endpoints of the proxy Service's EndpointSlices (the
admin port); each answers GET /config with the hashes it has loaded. The
pure parts decide; `ProxyFleet` does the HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from lockgate.api.ir import GatewayConfig, canonical_json
from lockgate.api.meta import Condition
from lockgate.common.http import client_session

log = logging.getLogger("lockgate.operator.programmed")

ADMIN_PORT_NAMES = ("admin", "http-admin", "metrics")


@dataclass(frozen=True)
class Rollout:
    """How far the published configuration has reached the proxies."""

    config_hash: str
    credentials_hash: str
    replicas: int
    loaded: int
    discovery: bool = True  # False: no proxy Service configured, publishing is all we know

    @property
    def complete(self) -> bool:
        if not self.discovery:
            return bool(self.config_hash)
        return self.replicas > 0 and self.loaded == self.replicas


def replica_urls(slices: Iterable[Mapping[str, Any]], default_port: int) -> list[str]:
    """Admin base URLs of the ready endpoints in a Service's EndpointSlices.

    Each slice's port named like `admin` wins; otherwise `default_port`.
    Ports are per slice, so replicas on one host (tests) use one slice each."""
    urls: set[str] = set()
    for es in slices:
        ports = {p.get("name"): p.get("port") for p in es.get("ports") or []}
        port = next((ports[n] for n in ADMIN_PORT_NAMES if ports.get(n)), None) or default_port
        for endpoint in es.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.add(f"http://{host}:{port}")
    return sorted(urls)


def rollout(config_hash: str, credentials_hash: str, reports: Mapping[str, Mapping[str, Any] | None]) -> Rollout:
    """Count replicas that report exactly this configuration (None: unreachable)."""
    loaded = sum(
        1 for r in reports.values()
        if r is not None and r.get("hash") == config_hash
        and (not credentials_hash or r.get("credentialsHash") in (None, credentials_hash))
    )
    return Rollout(config_hash, credentials_hash, len(reports), loaded)


def fingerprints(config: GatewayConfig, memo: dict[tuple[str, str], tuple[Any, str]] | None = None
                 ) -> dict[tuple[str, str], str]:
    """(kind, namespace/name) -> hash of that object's part of the IR. `memo`
    (the same dict every call) keeps the hashes of parts equal to last time's."""
    parts: list[tuple[str, Any]] = [
        *(("ModelProvider", p) for p in config.providers), *(("ApiKey", k) for k in config.keys),
        *(("Route", r) for r in config.routes), *(("MCPServer", m) for m in config.mcp_servers),
    ]
    memo = {} if memo is None else memo
    found: dict[tuple[str, str], str] = {}
    for kind, item in parts:
        known = memo.get((kind, item.id))
        if known is not None and (known[0] is item or known[0] == item):
            found[(kind, item.id)] = known[1]
            continue
        digest = hashlib.sha256(canonical_json(item.model_dump(mode="json")).encode()).hexdigest()
        memo[(kind, item.id)] = (item, digest)
        found[(kind, item.id)] = digest
    for gone in set(memo) - set(found):
        del memo[gone]
    return found


def programmed_condition(state: Rollout, accepted: bool, generation: int | None,
                         previous: Mapping[str, Any] | None, unchanged: bool = False) -> Condition:
    """Programmed for one object.

    True once every replica loaded the configuration. An object already
    Programmed at this generation stays so, as it is, while changes of other
    objects roll out and after, when its own part of the configuration is
    `unchanged` since it was programmed (a rotated key or moved endpoints are
    changes): a new key among many rewrites no other status."""
    if not accepted:
        return Condition(type="Programmed", status="False", reason="NotAccepted",
                         message="The object is not part of the published configuration")
    if unchanged and previous is not None and previous.get("status") == "True" \
            and previous.get("observedGeneration") == generation:
        return Condition.model_validate(previous)  # its message names the configuration that programmed it
    if state.complete:
        message = (f"Published as configuration {state.config_hash[:12]}" if not state.discovery else
                   f"All {state.replicas} proxy replicas loaded configuration {state.config_hash[:12]}")
        return Condition(type="Programmed", status="True", reason="Programmed", message=message)
    if state.replicas == 0:
        return Condition(type="Programmed", status="False", reason="NoReplicas",
                         message="No ready proxy replica found behind the proxy Service")
    return Condition(type="Programmed", status="False", reason="Pending",
                     message=f"{state.loaded} of {state.replicas} proxy replicas loaded configuration "
                             f"{state.config_hash[:12]}")


class ProxyFleet:
    """Reads GET /config and GET /usage from every replica, concurrently."""

    def __init__(self, timeout: float = 2.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, url: str) -> dict[str, Any] | None:
        if self._session is None:
            self._session = client_session(timeout=self._timeout)
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            log.debug("proxy %s did not answer: %s", url, e)
            return None

    async def collect(self, base_urls: Iterable[str], path: str) -> dict[str, dict[str, Any] | None]:
        urls = list(base_urls)
        answers = await asyncio.gather(*(self._get(u + path) for u in urls))
        return dict(zip(urls, answers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
