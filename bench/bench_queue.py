"""What the admission queue costs a request when nothing waits.

1. CPU time of taking and giving back an endpoint: the balancer alone (a
   provider without maxConcurrency) against the slot path (maxConcurrency and a
   queue wait configured, every endpoint with room), in interleaved rounds.
2. Wall-clock latency through the whole proxy over loopback HTTP: one gateway
   serving two models on the same loopback upstream, `plain` (a self-hosted
   provider without maxConcurrency) and `queued` (maxConcurrency with room to
   spare and a 30 s queue wait), requests alternating between the two, so both
   see the same load. Prints the medians and their ratio; exits non-zero when
   the queued model is more than 10 % slower.

    .venv/bin/python bench/bench_queue.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time

import aiohttp
from aiohttp import web

from lockgate.api import ir
from lockgate.proxy.admission import Slots, Ticket
from lockgate.proxy.balancing import PickRequest, StrategyBalancer

ENDPOINTS = [f"http://127.0.0.1:{18000 + i}/v1" for i in range(4)]
KEY = "lg-bench-queue-key-0123456789"
GOAL = 1.10  # queued / plain median latency, at most


def provider(name: str, max_concurrency: int | None, port: int = 1, max_wait: float = 0.0) -> ir.Provider:
    return ir.Provider(id=f"bench/{name}", type="openai-compatible", base_path="/v1",
                       endpoints=(ir.Endpoint(address="127.0.0.1", port=port),),
                       retries=ir.Retries(attempts=0), queue_max_wait=max_wait,
                       load_balancing=ir.LoadBalancing(max_concurrency=max_concurrency),
                       models=(ir.ProviderModel(name=name, upstream_model=name),))


async def cpu(rounds: int, picks: int) -> None:
    plain = StrategyBalancer(ENDPOINTS, ir.LoadBalancing())
    capped = StrategyBalancer(ENDPOINTS, ir.LoadBalancing(max_concurrency=1000))
    queued = provider("queued", 1000, max_wait=30.0)
    slots = Slots()
    request = PickRequest("m", prompt_tokens=100, max_tokens=100)

    async def direct() -> None:
        for _ in range(picks):
            lease = await plain.pick(request)
            assert lease is not None
            lease.release(True, 10)

    async def through_slots() -> None:
        for _ in range(picks):
            lease = await slots.acquire(capped, queued, request, Ticket("bench", "interactive", 1, 30.0))
            assert lease is not None
            lease.release(True, 10)

    times: dict[str, list[float]] = {"balancer alone": [], "slots, nothing waits": []}
    for _ in range(rounds):
        for name, run in (("balancer alone", direct), ("slots, nothing waits", through_slots)):
            t0 = time.process_time()
            await run()
            times[name].append((time.process_time() - t0) / picks * 1e6)
    base = statistics.median(times["balancer alone"])
    print(f"CPU per request, take and give back an endpoint ({rounds} rounds x {picks}):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median:7.2f} us  ({median / base:.2f}x)")
    print(f"  queue overhead per request when nothing waits: {statistics.median(times['slots, nothing waits']) - base:+.2f} us")


async def upstream_app() -> web.AppRunner:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def wall(rounds: int, requests: int) -> bool:
    from lockgate.proxy.quota import UnlimitedQuota
    from lockgate.proxy.server import ProxyServer, ProxySettings
    from lockgate.proxy.source import Snapshot, StaticSource

    runner = await upstream_app()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    key = ir.ConsumerKey(id="bench/key", consumer="bench", hashes=(ir.ApiKeyHash(sha256=ir.hash_key(KEY)),))
    config = ir.GatewayConfig(providers=(provider("plain", None, port), provider("queued", 1000, port, 30.0)),
                              keys=(key,)).with_hash()
    settings = ProxySettings(port=0, admin_port=0, drain_seconds=0.5, access_log=None,
                             state_dir=tempfile.mkdtemp(prefix="lockgate-bench-"))
    latencies: dict[str, list[float]] = {"plain": [], "queued": []}
    async with ProxyServer(StaticSource(Snapshot(config, ir.Credentials())), settings, quota=UnlimitedQuota()) as server:
        await server.wait_ready()
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession() as http:
            for round_ in range(rounds + 1):  # the first round warms up
                for i in range(requests):
                    model = "plain" if (i + round_) % 2 == 0 else "queued"
                    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                    t0 = time.perf_counter()
                    async with http.post(url, json=body, headers=headers) as response:
                        assert response.status == 200, await response.text()
                        await response.read()
                    if round_:
                        latencies[model].append(time.perf_counter() - t0)
    await runner.cleanup()
    plain, queued = (statistics.median(latencies[m]) * 1e3 for m in ("plain", "queued"))
    ratio = queued / plain
    print(f"Latency through the proxy, sequential, loopback ({rounds} rounds x {requests}, alternating):")
    print(f"  plain   p50 {plain:6.3f} ms")
    print(f"  queued  p50 {queued:6.3f} ms  ({ratio:.3f}x; goal <= {GOAL:.2f}x)")
    return ratio <= GOAL


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    await cpu(3 if args.quick else 7, 5_000 if args.quick else 20_000)
    ok = await wall(3 if args.quick else 5, 200 if args.quick else 400)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
