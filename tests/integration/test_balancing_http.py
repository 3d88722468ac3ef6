"""Balancer strategies that talk HTTP: engine metrics scraped from real loopback
servers, and an external endpoint picker that answers, answers late, or not at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from lockgate.api import ir
from lockgate.proxy.balancing import PickRequest, StrategyBalancer
from tests.loopback import serve_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(routes: dict[tuple[str, str], Handler]) -> AsyncIterator[str]:
    """A loopback aiohttp server on a free port; yields its base URL."""
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    async with serve_app(app) as url:
        yield url


def engine_page(waiting: float, running: float, cache: float) -> str:
    return (
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{model_name="m"}} {waiting}\n'
        "# TYPE vllm:num_requests_running gauge\n"
        f'vllm:num_requests_running{{model_name="m"}} {running}\n'
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        f'vllm:kv_cache_usage_perc{{model_name="m"}} {cache}\n'
    )


class FakeEngine:
    """Serves /metrics from mutable numbers, or 500 once `broken`."""

    def __init__(self, waiting: float) -> None:
        self.waiting = waiting
        self.broken = False
        self.scrapes = 0

    async def metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        if self.broken:
            return web.Response(status=500)
        return web.Response(text=engine_page(self.waiting, 2, 0.3), content_type="text/plain")


async def until(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def test_engine_metrics_scrapes_loopback_engines_and_falls_back_when_stale() -> None:
    busy, idle = FakeEngine(waiting=6), FakeEngine(waiting=0)
    async with serve({("GET", "/metrics"): busy.metrics}) as busy_url, serve({("GET", "/metrics"): idle.metrics}) as idle_url:
        urls = [f"{busy_url}/v1", f"{idle_url}/v1"]
        metrics = ir.EngineMetrics(
            interval=0.05, waiting_metric="vllm:num_requests_waiting", running_metric="vllm:num_requests_running",
            cache_metric="vllm:kv_cache_usage_perc", stale_after=0.3,
        )
        balancer = StrategyBalancer(urls, ir.LoadBalancing(strategy="engine-metrics", metrics=metrics, max_concurrency=3), "vllm")
        try:
            first = await balancer.pick(PickRequest("m", prompt_tokens=10, max_tokens=10))
            assert first is not None and first.reason.startswith("stale-fallback")  # nothing scraped yet
            first.release(ok=True)
            await until(lambda: all(s.engine is not None for s in balancer.states.values()))
            assert balancer.states[urls[0]].engine.waiting == 6  # type: ignore[union-attr]

            leases = [await balancer.pick(PickRequest("m", prompt_tokens=10, max_tokens=10)) for _ in range(3)]
            assert all(lease is not None and lease.url == urls[1] and lease.reason.startswith("metrics") for lease in leases)
            # the idle engine is at maxConcurrency: only the busy one is eligible now
            spill = await balancer.pick(PickRequest("m"))
            assert spill is not None and spill.url == urls[0]
            for lease in [*leases, spill]:
                assert lease is not None
                lease.release(ok=True)

            busy.broken = idle.broken = True
            await until(lambda: idle.scrapes > 0 and all(
                not s.metrics_fresh(time.monotonic(), 0.3) for s in balancer.states.values()))
            stale = await balancer.pick(PickRequest("m", prompt_tokens=10, max_tokens=10))
            assert stale is not None and stale.reason.startswith("stale-fallback")
            await balancer.close()
            assert await balancer.pick(PickRequest("m")) is not None
            assert balancer._scraper is not None and balancer._scraper._task is None  # not restarted
        finally:
            await balancer.close()


def external(url: str, timeout: float = 0.05) -> ir.LoadBalancing:
    return ir.LoadBalancing(strategy="external", external=ir.ExternalPicker(url=url, timeout=timeout))


ENDPOINTS = ["http://127.0.0.1:18001/v1", "http://127.0.0.1:18002/v1"]


async def test_slow_picker_falls_back_within_the_deadline_and_backs_off() -> None:
    released = asyncio.Event()
    calls = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await released.wait()
        return web.json_response({"endpoint": ENDPOINTS[0]})

    async with serve({("POST", "/pick"): slow}) as picker:
        balancer = StrategyBalancer(ENDPOINTS, external(f"{picker}/pick", timeout=0.1))
        try:
            started = time.monotonic()
            lease = await balancer.pick(PickRequest("m", prefix="hello", prompt_tokens=5, max_tokens=5))
            elapsed = time.monotonic() - started
            assert lease is not None and lease.reason.startswith("picker-fallback")
            assert "Timeout" in lease.reason and "least-tokens" in lease.reason
            assert elapsed < 1.0  # the deadline, not the picker, bounds the wait
            # a failed picker is not asked again for a while: no second timeout to pay
            started = time.monotonic()
            again = await balancer.pick(PickRequest("m", prefix="hello"))
            assert again is not None and "backing off" in again.reason
            assert time.monotonic() - started < 0.05
            assert calls == 1
        finally:
            released.set()
            await balancer.close()


async def test_picker_that_answers_by_header_or_json_is_followed() -> None:
    seen: list[dict] = []

    async def by_header(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.Response(status=200, headers={"x-gateway-destination-endpoint": "127.0.0.1:18002"})

    async def by_json(request: web.Request) -> web.Response:
        return web.json_response({"endpoint": ENDPOINTS[0]})

    async with serve({("POST", "/header"): by_header, ("POST", "/json"): by_json}) as picker:
        header_balancer = StrategyBalancer(ENDPOINTS, external(f"{picker}/header", timeout=2.0))
        json_balancer = StrategyBalancer(ENDPOINTS, external(f"{picker}/json", timeout=2.0))
        try:
            for _ in range(3):
                lease = await header_balancer.pick(PickRequest("qwen", prefix="system", prompt_tokens=7, max_tokens=3))
                assert lease is not None and lease.url == ENDPOINTS[1] and lease.reason.startswith("picker-header")
            assert seen[0]["model"] == "qwen" and len(seen[0]["prefixDigest"]) == 32
            assert [c["address"] for c in seen[0]["candidates"]] == ["127.0.0.1:18001", "127.0.0.1:18002"]
            assert seen[2]["candidates"][1]["inFlight"] == 2  # the gateway shares what it holds
            lease = await json_balancer.pick(PickRequest("qwen"))
            assert lease is not None and lease.url == ENDPOINTS[0] and lease.reason.startswith("picker:")
            # an excluded endpoint is not offered, so a picker naming it is ignored
            lease = await json_balancer.pick(PickRequest("qwen", excluded=frozenset({ENDPOINTS[0]})))
            assert lease is not None and lease.url == ENDPOINTS[1] and lease.reason.startswith("picker-fallback")
            # a request of an old snapshot may still pick after close: it must not reopen the client
            await header_balancer.close()
            calls = len(seen)
            late = await header_balancer.pick(PickRequest("qwen"))
            assert late is not None and "balancer closed" in late.reason and len(seen) == calls
        finally:
            await header_balancer.close()
            await json_balancer.close()


async def test_unreachable_picker_falls_back() -> None:
    async with serve({}) as gone:
        pass  # the port is closed again: connections are refused
    balancer = StrategyBalancer(ENDPOINTS, external(f"{gone}/pick", timeout=1.0))
    try:
        lease = await balancer.pick(PickRequest("m"))
        assert lease is not None and lease.reason.startswith("picker-fallback")
    finally:
        await balancer.close()
