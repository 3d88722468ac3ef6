"""The pure parts of an upstream request: where it goes, and the bytes of its head.

A URL is split once (cached by its string), and the fixed part of the head
(request line, Host, Accept-Encoding) is built with it; each request only
adds its Content-Length and its own headers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from lockgate.proxy.upstream.errors import InvalidRequest

DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters kept as they are in a request target: URL delimiters, unreserved ones and '%' (existing escapes).
_TARGET_SAFE = "/?[]@!$&'()*+,;=:%-._~"


class Origin(NamedTuple):
    scheme: str
    host: str  # lower case, IPv6 literals without brackets, IDNA-encoded
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Target:
    origin: Origin
    key: str  # the origin as a string: the pool's key for its idle connections (hashed once)
    head: bytes  # "POST <path> HTTP/1.1", Host and Accept-Encoding, each line ended


@functools.lru_cache(maxsize=4096)
def split_url(url: str) -> Target:
    """Where a POST to `url` goes. Raises InvalidRequest for what cannot be sent (without echoing the URL)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequest("the upstream URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidRequest(f"unsupported upstream URL scheme {scheme!r}: http and https only")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("credentials in an upstream URL are not supported")
    host = parts.hostname or ""
    if not host:
        raise InvalidRequest("the upstream URL has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidRequest("the upstream URL's host name is not valid") from None
    origin = Origin(scheme, host, port or DEFAULT_PORTS[scheme])
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = f"[{host}]" if ":" in host else host
    if origin.port != DEFAULT_PORTS[scheme]:
        host_header += f":{origin.port}"
    # Identity: answers are parsed for usage, so they must not come compressed.
    head = f"POST {quote(path, safe=_TARGET_SAFE)} HTTP/1.1\r\nHost: {host_header}\r\nAccept-Encoding: identity\r\n"
    return Target(origin, f"{scheme}://{origin}", head.encode("ascii"))


def request_head(target: Target, headers: Mapping[str, str], length: int) -> bytes:
    """The whole head of a request with a body of `length` bytes.

    Refuses a header whose name or value holds CR, LF or NUL (they would split
    the head); the error names the header, never its value.
    """
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    count = len(headers)
    # Each line adds exactly one CR and one LF: any other is inside a name or a value.
    if lines.count("\r") != count or lines.count("\n") != count or "\0" in lines:
        raise InvalidRequest(_refusal(headers))
    return target.head + f"Content-Length: {length}\r\n{lines}\r\n".encode()


def _refusal(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if any(c in name for c in "\r\n\0"):
            return "a header name holds a CR, LF or NUL character"
        if any(c in value for c in "\r\n\0"):
            return f"the value of the header {name!r} holds a CR, LF or NUL character"
    return "a header holds a CR, LF or NUL character"
