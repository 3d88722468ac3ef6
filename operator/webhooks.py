"""Budget alert webhooks: CloudEvents JSON POSTed in the background, retried with
backoff on connection errors, 429 and 5xx, signed when a signing secret is set.
A delivery that still fails after its attempts is logged (the Event and the
condition remain); the event id is stable, so a receiver can drop repeats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from lockgate.common.http import client_session
from lockgate.operator.alerts import SIGNATURE_HEADER, signature

log = logging.getLogger("lockgate.operator.webhooks")

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def delivery(event: Mapping[str, Any], secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery (pure)."""
    body = orjson.dumps(event)
    headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "lockgate-operator"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret.encode())
    return body, headers


class WebhookSender:
    def __init__(self, attempts: int = 4, backoff: float = 0.5, timeout: float = 10.0) -> None:
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    def send(self, url: str, event: Mapping[str, Any], secret: str | None) -> asyncio.Task[bool]:
        """Deliver in the background (status writing never waits on a receiver)."""
        task = asyncio.ensure_future(self.deliver(url, event, secret))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def deliver(self, url: str, event: Mapping[str, Any], secret: str | None) -> bool:
        body, headers = delivery(event, secret)
        if self._http is None:
            self._http = client_session(timeout=aiohttp.ClientTimeout(total=self.timeout))
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with self._http.post(url, data=body, headers=headers, allow_redirects=False) as response:
                    if response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        break  # the receiver refuses this event: retrying will not change that
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = type(exc).__name__
        log.warning("budget alert %s not delivered to its webhook: %s", event.get("id"), problem)
        return False

    async def close(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self._http is not None:
            await self._http.close()
            self._http = None
