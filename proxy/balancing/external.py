"""external: ask an endpoint picker service, never depend on it.

The gateway POSTs the model, the prefix digest and the candidates (with what
it knows of their load) to the picker and waits at most `timeout`. The picker
answers either with JSON {"endpoint": "<url or host:port>"} or, like a
Gateway API Inference Extension endpoint picker, with the
`x-gateway-destination-endpoint` header ("host:port", possibly a
comma-separated list of fallbacks). Anything else (slow, down, an answer that
is not a candidate) falls back to least-tokens, and after a failure the
picker is left alone for a short back-off so a dead picker costs one timeout,
not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from lockgate.api.ir import ExternalPicker
from lockgate.common.http import client_session
from lockgate.proxy.balancing.choice import Choice
from lockgate.proxy.balancing.state import EndpointState

log = logging.getLogger(__name__)

DESTINATION_HEADER = "x-gateway-destination-endpoint"
FAILURE_BACKOFF = 1.0  # seconds during which a failed picker is not asked


def picker_body(
    model: str, digest: str, prompt_tokens: int, max_tokens: int, candidates: Sequence[EndpointState]
) -> dict[str, Any]:
    return {
        "model": model,
        "prefixDigest": digest,
        "promptTokens": prompt_tokens,
        "maxTokens": max_tokens,
        "candidates": [
            {
                "url": s.url,
                "address": _address(s.url),
                "inFlight": s.in_flight,
                "outstandingTokens": s.outstanding_tokens,
            }
            for s in candidates
        ],
    }


def _address(url: str) -> str:
    parsed = URL(url)
    host = f"[{parsed.host}]" if parsed.host and ":" in parsed.host else parsed.host
    return f"{host}:{parsed.port}"


def read_answer(
    headers: Mapping[str, str], body: Any, candidates: Sequence[EndpointState]
) -> Choice | None:
    """The candidate the picker named, by header first, else by JSON body; None if it named none."""
    by_key: dict[str, str] = {}
    for s in candidates:
        by_key[s.url] = s.url
        by_key[_address(s.url)] = s.url
    header = headers.get(DESTINATION_HEADER, "")
    for position, item in enumerate(x.strip() for x in header.split(",") if x.strip()):
        if item in by_key:
            detail = f"header named {item}" + (f" (fallback {position + 1})" if position else "")
            return Choice(by_key[item], "picker-header", detail)
    named = body.get("endpoint") if isinstance(body, dict) else None
    if isinstance(named, str) and named.rstrip("/") in by_key:
        return Choice(by_key[named.rstrip("/")], "picker", f"picker named {named}")
    return None


class PickerClient:
    """Calls the picker within its deadline; returns None whenever it cannot be trusted."""

    def __init__(self, config: ExternalPicker, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._quiet_until = 0.0
        self.last_error = ""

    async def ask(self, body: dict[str, Any], candidates: Sequence[EndpointState]) -> Choice | None:
        if self._clock() < self._quiet_until:
            self.last_error = "backing off after a failure"
            return None
        if self._session is None:
            self._session = client_session()
        try:
            async with asyncio.timeout(self.config.timeout):
                async with self._session.post(self.config.url, json=body) as response:
                    payload: Any = None
                    if response.status == 200 and response.content_type == "application/json":
                        payload = await response.json()
                    choice = read_answer(response.headers, payload, candidates) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            self._fail(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)
            return None
        if choice is None:
            self._fail(f"status {response.status} named no candidate")
        return choice

    def _fail(self, error: str) -> None:
        self.last_error = error
        self._quiet_until = self._clock() + FAILURE_BACKOFF
        log.debug("endpoint picker %s failed: %s", self.config.url, error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
