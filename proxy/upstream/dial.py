"""Opening a connection: happy eyeballs over the host's addresses, a CONNECT tunnel, TLS.

The addresses race as RFC 8305 says (aiohappyeyeballs: the next one starts
when the last has not connected within the delay, families interleaved).
A TLS or tunnel failure on the address that connected does not end the
attempt while other addresses remain: the next dial leaves that one out.
The caller bounds the whole with the provider's connect timeout.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import aiohappyeyeballs

from lockgate.proxy.upstream.connection import Connection, OriginConnections
from lockgate.proxy.upstream.errors import ConnectFailed, ProxyFailed, TLSFailed
from lockgate.proxy.upstream.request import Origin
from lockgate.proxy.upstream.resolve import Resolver
from lockgate.proxy.upstream.transport import Reach

_TUNNEL_HEAD = 16 * 1024  # the most of a proxy's answer to CONNECT that is read


async def dial(slot: OriginConnections, reach: Reach, resolver: Resolver,
               factory: Callable[[], Connection]) -> Connection:
    origin = slot.origin
    loop = asyncio.get_running_loop()
    first_hop = reach.proxy or origin
    addresses = await resolver.resolve(first_hop.host, first_hop.port)
    failure: ConnectFailed | None = None
    while addresses:
        sock = await _race(addresses, first_hop, slot.settings.happy_eyeballs_delay)
        peer = sock.getpeername()[0]
        addresses = [a for a in addresses if a != peer]
        try:
            if reach.proxy is not None:
                await _tunnel(loop, sock, reach.proxy, origin, reach.proxy_authorization)
            _, conn = await loop.create_connection(factory, sock=sock, ssl=reach.ssl,
                                                   server_hostname=origin.host if reach.ssl else None)
            return conn
        except ssl.SSLError as exc:
            failure = TLSFailed(f"TLS with the upstream {origin} failed: {exc.reason or type(exc).__name__}")
        except ConnectFailed as exc:
            failure = exc
        except OSError as exc:
            failure = ConnectFailed(f"cannot connect to the upstream {origin} ({type(exc).__name__})")
        except BaseException:
            sock.close()
            raise
        sock.close()
    assert failure is not None
    raise failure


async def _race(addresses: list[str], hop: Origin, delay: float) -> socket.socket:
    infos = [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, hop.port, 0, 0)) if ":" in a
             else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, hop.port)) for a in addresses]
    try:
        return await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=delay, interleave=1)
    except OSError as exc:
        raise ConnectFailed(f"cannot connect to the upstream {hop} ({type(exc).__name__})") from None


async def _tunnel(loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Origin, origin: Origin,
                  authorization: str | None) -> None:
    """Asks the proxy for a tunnel to `origin` (CONNECT); returns once it answered 200."""
    credentials = f"Proxy-Authorization: {authorization}\r\n" if authorization else ""
    await loop.sock_sendall(sock, f"CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n{credentials}\r\n".encode())
    head = b""
    while (end := head.find(b"\r\n\r\n")) < 0:
        if len(head) > _TUNNEL_HEAD:
            raise ProxyFailed(f"the proxy {proxy} sent an answer head over {_TUNNEL_HEAD} bytes")
        data = await loop.sock_recv(sock, 4096)
        if not data:
            raise ProxyFailed(f"the proxy {proxy} closed the connection before answering CONNECT")
        head += data
    if end + 4 != len(head):
        raise ProxyFailed(f"the proxy {proxy} sent bytes after its answer to CONNECT")
    status = head[:head.find(b"\r\n")].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        code = status[1].decode("latin-1")[:3] if len(status) > 1 else "?"
        raise ProxyFailed(f"the proxy {proxy} refused the tunnel to {origin} ({code})")
