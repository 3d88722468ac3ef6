"""Failures of an upstream exchange.

Every one is a `ConnectionError`, so the forward path's connect-error
handling (failover, outlier ejection, the mid-stream error event) treats
them alike. Messages name the origin at most: never a header value, since
headers carry credentials.
"""

from __future__ import annotations


class UpstreamError(ConnectionError):
    """The exchange with an upstream failed."""


class InvalidRequest(UpstreamError):
    """The request cannot be sent as asked: an unsupported URL or a header with CR, LF or NUL."""


class ConnectFailed(UpstreamError):
    """No connection: the name did not resolve, or every address refused or was unreachable."""


class ConnectTimeout(ConnectFailed, TimeoutError):
    """No connection within the provider's connect timeout (a TimeoutError too, like any timeout)."""


class TLSFailed(ConnectFailed):
    """The TLS handshake failed, e.g. the certificate is not trusted or names another host."""


class ProxyFailed(ConnectFailed):
    """The HTTP proxy refused or broke the CONNECT tunnel to the upstream."""


class ServerDisconnected(UpstreamError):
    """The upstream closed or reset the connection before the response was complete."""


class MalformedResponse(UpstreamError):
    """The upstream's bytes are not an HTTP/1.1 response."""


class ResponseTooLarge(UpstreamError):
    """The response passed a cap: header bytes or count, a whole body, one stream event."""


class NotSent(ServerDisconnected):
    """The connection closed before any byte of the request was written: it may go on another one."""
