"""Scrape engines' Prometheus metrics on an interval into their EndpointStates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from lockgate.api.ir import EngineMetrics
from lockgate.common.http import client_session
from lockgate.proxy.balancing.state import EndpointState, EngineSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineReading:
    waiting: float
    running: float
    cache_usage: float


def parse_engine_metrics(text: str, names: EngineMetrics) -> EngineReading | None:
    """Queue depth, running count and KV-cache usage from Prometheus text.

    Gauges are summed across label sets (several models or ranks on one
    endpoint), cache usage takes the fullest. None when the queue gauge is
    missing: then the page is not the engine we expected.
    """
    sums: dict[str, float] = {}
    peaks: dict[str, float] = {}
    wanted = {names.waiting_metric, names.running_metric, names.cache_metric}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
                peaks[sample.name] = max(peaks.get(sample.name, 0.0), sample.value)
    if names.waiting_metric not in sums:
        return None
    return EngineReading(
        waiting=sums[names.waiting_metric],
        running=sums.get(names.running_metric, 0.0),
        cache_usage=peaks.get(names.cache_metric, 0.0),
    )


def metrics_url(endpoint_url: str, path: str) -> str:
    """The metrics page sits at the server root, not under the API base path."""
    return str(URL(endpoint_url).origin().with_path(path))


class MetricsScraper:
    """Background task scraping every endpoint each `interval` seconds."""

    def __init__(
        self,
        names: EngineMetrics,
        states: Callable[[], Iterable[EndpointState]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.names = names
        self._states = states
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lockgate-metrics-scraper")

    async def scrape_once(self) -> None:
        """Scrape every endpoint concurrently, each within the interval."""
        if self._session is None:
            self._session = client_session()
        await asyncio.gather(*(self._scrape(state) for state in list(self._states())))

    async def _scrape(self, state: EndpointState) -> None:
        assert self._session is not None
        try:
            timeout = aiohttp.ClientTimeout(total=max(self.names.interval, 0.05))
            async with self._session.get(metrics_url(state.url, self.names.path), timeout=timeout) as response:
                if response.status != 200:
                    return
                reading = parse_engine_metrics(await response.text(), self.names)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            log.debug("metrics scrape of %s failed: %s", state.url, err)
            return  # the sample ages out and the strategy falls back
        if reading is not None:
            state.engine = EngineSample(
                reading.waiting, reading.running, reading.cache_usage, self._clock(), state.in_flight
            )

    async def _run(self) -> None:
        while True:
            started = self._clock()
            try:
                await self.scrape_once()
            except Exception:  # keep scraping: one bad page must not end the loop for good
                log.exception("metrics scrape failed")
            await asyncio.sleep(max(0.0, self.names.interval - (self._clock() - started)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
