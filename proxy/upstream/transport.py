"""How an origin is reached: directly or through an HTTP CONNECT proxy, with which TLS context.

A provider may bring its own proxy, CA bundle and client certificate
(`UpstreamTransport`, built once per configuration and hashable: the pool
keys connections by it, so connections made with one client certificate
never serve another provider). Without one, the settings' environment
proxies apply (HTTPS_PROXY for https upstreams, HTTP_PROXY for http ones,
both as CONNECT tunnels; NO_PROXY names the hosts reached directly) and the
system's trust store. The decision is made once per origin, not per request.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from lockgate.proxy.upstream.errors import InvalidRequest, TLSFailed
from lockgate.proxy.upstream.limits import UpstreamSettings
from lockgate.proxy.upstream.request import Origin


@dataclass(frozen=True, slots=True)
class UpstreamTransport:
    """A provider's own way to its upstream."""

    proxy: str | None = None  # "http://[user:password@]host:port" (CONNECT); "": direct; None: the environment's
    ca_pem: str | None = None  # CAs trusted instead of the system's (PEM)
    cert_pem: str | None = field(default=None, repr=False)  # client certificate chain for mTLS (PEM)
    key_pem: str | None = field(default=None, repr=False)  # its private key (PEM)


@dataclass(frozen=True, slots=True)
class Reach:
    proxy: Origin | None  # the CONNECT proxy, or None for a direct connection
    proxy_authorization: str | None = field(default=None, repr=False)
    ssl: ssl.SSLContext | None = None  # for https upstreams


def reach_for(origin: Origin, transport: UpstreamTransport | None, settings: UpstreamSettings,
              default_ssl: Callable[[], ssl.SSLContext]) -> Reach:
    """How to reach `origin`. Raises InvalidRequest for a proxy URL that cannot be used, TLSFailed for PEM that
    does not load."""
    if transport is not None and transport.proxy is not None:
        proxy_url = transport.proxy or None
    else:
        proxy_url = settings.https_proxy if origin.tls else settings.http_proxy
        if proxy_url and settings.no_proxy and bypasses_proxy(origin.host, settings.no_proxy):
            proxy_url = None
    proxy, authorization = parse_proxy(proxy_url) if proxy_url else (None, None)
    context = None
    if origin.tls:
        if transport is not None and (transport.ca_pem or transport.cert_pem):
            context = tls_context(transport.ca_pem, transport.cert_pem, transport.key_pem)
        else:
            context = default_ssl()
    return Reach(proxy, authorization, context)


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY names `host`: "*", the host, a parent domain ("example.com", ".example.com",
    "*.example.com"), an address or a network of addresses ("10.0.0.0/8"); a port in an entry is ignored."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.lower().split(","):
        entry = raw.strip()
        if entry == "*":
            return True
        if entry.startswith("["):  # [v6]:port
            entry = entry[1:].partition("]")[0]
        elif entry.count(":") == 1:  # host:port
            entry = entry.partition(":")[0]
        entry = entry.removeprefix("*").lstrip(".")
        if not entry:
            continue
        if address is not None and ("/" in entry or entry[0].isdigit() or ":" in entry):
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == entry or host.endswith("." + entry):
            return True
    return False


def parse_proxy(url: str) -> tuple[Origin, str | None]:
    """The proxy's origin and Proxy-Authorization value (Basic, from the URL's credentials)."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        port = parts.port
    except ValueError:
        raise InvalidRequest("the proxy URL is not valid") from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise InvalidRequest("a proxy URL must be http://host:port (an HTTP CONNECT proxy)")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Origin("http", parts.hostname.lower(), port or 80), authorization


@functools.lru_cache(maxsize=64)
def tls_context(ca_pem: str | None, cert_pem: str | None, key_pem: str | None) -> ssl.SSLContext:
    """A client TLS context trusting `ca_pem` (else the system's store) and presenting `cert_pem`."""
    try:
        context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        if cert_pem:
            with _pem_file(cert_pem) as cert, _pem_file(key_pem or "") as key:
                context.load_cert_chain(cert, key if key_pem else None)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise TLSFailed(f"the provider's CA bundle or client certificate does not load ({type(exc).__name__})") \
            from None
    return context


@contextmanager
def _pem_file(text: str) -> Iterator[str]:
    """A path to `text` for OpenSSL, which loads client certificates from files only: an anonymous
    in-memory file where the system has them (nothing reaches a disk), else a private temporary file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("pem", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, text.encode())
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as file:  # created 0600
        file.write(text)
        file.flush()
        yield file.name
