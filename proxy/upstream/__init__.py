"""A lean keep-alive HTTP/1.1 client for the LLM forward path.

`UpstreamPool(settings).post(url, body, headers, connect_timeout=...)`
sends one request in one write and returns a `Response` once its headers
are in: `status`, `headers` (lower-case names), `read()`, `readany()`,
`drop()`, `complete`, `close()`. Failures raise `UpstreamError`, a
`ConnectionError`. The settings (`UpstreamSettings`) hold its caps; a
provider's own proxy and TLS material come as an `UpstreamTransport`.
"""

from lockgate.proxy.upstream.connection import HIGH_WATER
from lockgate.proxy.upstream.errors import (
    ConnectFailed,
    ConnectTimeout,
    InvalidRequest,
    MalformedResponse,
    ProxyFailed,
    ResponseTooLarge,
    ServerDisconnected,
    TLSFailed,
    UpstreamError,
)
from lockgate.proxy.upstream.limits import UpstreamSettings
from lockgate.proxy.upstream.pool import KEEPALIVE, UpstreamPool
from lockgate.proxy.upstream.response import Response
from lockgate.proxy.upstream.transport import UpstreamTransport

__all__ = ["HIGH_WATER", "KEEPALIVE", "ConnectFailed", "ConnectTimeout", "InvalidRequest", "MalformedResponse",
           "ProxyFailed", "Response", "ResponseTooLarge", "ServerDisconnected", "TLSFailed", "UpstreamError",
           "UpstreamPool", "UpstreamSettings", "UpstreamTransport"]
