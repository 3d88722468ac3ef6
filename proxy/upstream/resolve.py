"""Addresses of upstream hosts: the system's resolver behind a short cache, and the loopback names.

`localhost` and every name under `.localhost` are the loopback host
(RFC 6761), as for every other upstream connection of the proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from lockgate.common.resolver import is_loopback_name
from lockgate.proxy.upstream.errors import ConnectFailed

DNS_TTL = 10.0  # seconds a resolved name is reused: short, so moved endpoints are followed


class Resolver:
    def __init__(self, ttl: float = DNS_TTL) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses, in the resolver's order. Raises ConnectFailed when there is none."""
        if is_loopback_name(host):
            return ["127.0.0.1"]
        if _is_address(host):
            return [host]
        loop = asyncio.get_running_loop()
        now = loop.time()
        cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConnectFailed(f"cannot resolve the upstream host {host!r} ({type(exc).__name__})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise ConnectFailed(f"the upstream host {host!r} has no address")
        if len(self._cache) > 1024:  # names come from configuration: a bound, not an eviction policy
            self._cache.clear()
        self._cache[host] = (now + self.ttl, addresses)
        return addresses


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
