"""A lean keep-alive HTTP/1.1 client for the LLM forward path.

`UpstreamPool.post(url, body, headers, connect_timeout=...)` sends one
request in one write and returns a `Response` once its headers are in:
`status`, `headers` (lower-case names), `read()`, `readany()`, `complete`,
`close()`. Failures raise `UpstreamError`, a `ConnectionError`.
"""

from lockgate.proxy.upstream.connection import HIGH_WATER, Response
from lockgate.proxy.upstream.errors import (
    ConnectFailed,
    ConnectTimeout,
    InvalidRequest,
    MalformedResponse,
    ServerDisconnected,
    TLSFailed,
    UpstreamError,
)
from lockgate.proxy.upstream.pool import KEEPALIVE, UpstreamPool

__all__ = ["HIGH_WATER", "KEEPALIVE", "ConnectFailed", "ConnectTimeout", "InvalidRequest", "MalformedResponse",
           "Response", "ServerDisconnected", "TLSFailed", "UpstreamError", "UpstreamPool"]
