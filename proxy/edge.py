"""The door: what a client sends is checked here before anything else keeps it.

- `request_id_of`: the client's `x-request-id` only when it is a short token
  of printable ASCII, else a new id (the id goes to upstreams, logs and
  answers, so it must be safe for all three); `assign_request_id` for the
  entry point that decides it.
- `forwardable`: client headers that may travel on to an upstream, dropped
  when the name is not an HTTP token or the value not plain visible ASCII.
- `install`: every answer of an app carries an `x-request-id`, and the
  `Server` header names Lockgate without a version.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Mapping

from aiohttp import web, web_response

SERVER = "lockgate"
REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128

_REQUEST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~:/=@-]{1," + str(MAX_REQUEST_ID) + "}")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 9110 token
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*|")  # visible ASCII, inner spaces and tabs
_KEY = web.RequestKey("lockgate_request_id", str)

_ids = random.Random(os.urandom(16))


def new_request_id() -> str:
    """24 hex digits, unpredictable enough to correlate logs (not a secret): no system call per request."""
    return f"{_ids.getrandbits(96):024x}"


def clean_request_id(value: str | None) -> str | None:
    """`value` when it is a short printable token, else None."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return None


def request_id_of(request: web.Request) -> str:
    """The request's id: the client's own when it is a safe token, else a new one (the same for the whole request)."""
    found: str | None = request.get(_KEY)
    if found is None:
        found = assign_request_id(request)
    return found


def assign_request_id(request: web.Request) -> str:
    """`request_id_of` for an entry point, the first to ask: decided without looking for one (a miss in
    the request's mapping raises and catches a KeyError inside, on every request)."""
    found = request[_KEY] = clean_request_id(request.headers.get(REQUEST_ID)) or new_request_id()
    return found


def is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def is_field_value(value: str) -> bool:
    return _FIELD_VALUE.fullmatch(value) is not None


def forwardable(headers: Mapping[str, str], names: Iterable[str] = (), prefix: str | None = None) -> dict[str, str]:
    """The client headers named in `names` (and those whose lower-case name starts with `prefix`)
    that are safe to send on: a token name and a visible-ASCII value. Others are dropped."""
    out = {name: headers[name] for name in names if name in headers}
    if prefix is not None:
        out.update({k: v for k, v in headers.items() if k.lower().startswith(prefix)})
    return {k: v for k, v in out.items() if is_token(k) and is_field_value(v)}


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER
    if REQUEST_ID not in headers:
        headers[REQUEST_ID] = request_id_of(request)


def install(app: web.Application) -> None:
    """Stamp every answer of `app` with the Server name and the request id."""
    # aiohttp's own answers to unparsable requests never reach an app's signals: its default goes too.
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]
    app.on_response_prepare.append(_stamp)
