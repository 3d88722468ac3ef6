"""Name resolution for upstream connections: the system's, plus RFC 6761's
rule that `localhost` and every name under `.localhost` are the loopback
host (glibc resolves only `localhost` itself).

EndpointSlices may not hold loopback IPs, but may hold FQDNs: a slice with
`addressType: FQDN` and `a.localhost` reaches a server on 127.0.0.1, which is
how a node-local or test upstream is discovered like any other."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


def is_loopback_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


class LoopbackNamesResolver(AbstractResolver):
    def __init__(self, fallback: AbstractResolver | None = None) -> None:
        self._fallback = fallback or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if not is_loopback_name(host):
            return await self._fallback.resolve(host, port, family)
        address, fam = ("::1", socket.AF_INET6) if family == socket.AF_INET6 else ("127.0.0.1", socket.AF_INET)
        return [ResolveResult(hostname=host, host=address, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self._fallback.close()
