"""CPU cost of one upstream round trip: aiohttp's ClientSession vs Lockgate's upstream pool.

The same loopback upstream (bench_proxy's, in its own process) answers both
clients, which run in this process on uvloop as the proxy does, in
interleaved rounds (best round kept) so load from other processes weighs on
both alike. The time measured is this process's CPU time only: request
head, send, parse, body. The aiohttp client is set up as the gateway's
session was (pooled, no auto decompression, DNS cache, loopback names).

    .venv/bin/python bench/bench_upstream.py [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

from bench_proxy import CHAT_BODY, STREAM_BODY, Party, free_port, spawn, wait_serving
from lockgate.common.resolver import LoopbackNamesResolver
from lockgate.proxy.upstream import UpstreamPool

HEADERS = {"Content-Type": "application/json", "x-request-id": "0123456789abcdef01234567",
           "Authorization": "Bearer sk-bench-0123456789abcdef"}
GOAL_RATIO = 0.5  # the pool's CPU per round trip, at most this share of aiohttp's (chat, c=32)

RoundTrip = Callable[[bytes], Awaitable[int]]  # body -> bytes received


def aiohttp_client(url: str) -> tuple[RoundTrip, Callable[[], Awaitable[None]]]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=60, resolver=LoopbackNamesResolver())
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",))
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)

    async def round_trip(body: bytes) -> int:
        response = await session.post(url, data=body, headers=HEADERS, timeout=timeout)
        size = 0
        while chunk := await response.content.readany():
            size += len(chunk)
        response.release()
        return size

    return round_trip, session.close


def pool_client(url: str) -> tuple[RoundTrip, Callable[[], Awaitable[None]]]:
    pool = UpstreamPool()

    async def round_trip(body: bytes) -> int:
        response = await pool.post(url, body, HEADERS, connect_timeout=10)
        size = 0
        while chunk := await response.readany():
            size += len(chunk)
        response.close()
        return size

    return round_trip, pool.close


async def cpu_per_request(round_trip: RoundTrip, body: bytes, requests: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per round trip (after a warm-up that opens the connections)."""
    await asyncio.gather(*(round_trip(body) for _ in range(concurrency)))
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            assert await round_trip(body) > 0

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - start) / requests * 1e6


async def main_async(args: argparse.Namespace) -> int:
    port = free_port()
    upstream = Party("upstream", port, process=spawn([sys.executable, str(Path(__file__).with_name("bench_proxy.py")),
                                                      "--role", "upstream", "--port", str(port)]))
    try:
        if not await wait_serving(upstream):
            print("the upstream did not start")
            return 1
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        cases = [("chat c=1", CHAT_BODY, 1, args.requests), ("chat c=32", CHAT_BODY, 32, args.requests),
                 ("stream c=16", STREAM_BODY, 16, args.requests // 4)]
        clients = {"aiohttp": aiohttp_client(url), "pool": pool_client(url)}
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for case, body, concurrency, requests in cases:
                for name, (round_trip, _) in clients.items():
                    cpu = await cpu_per_request(round_trip, body, requests, concurrency)
                    key = (case, name)
                    best[key] = min(cpu, best.get(key, cpu))
        for _, close in clients.values():
            await close()
    finally:
        upstream.stop()
    print(f"CPU µs per upstream round trip in the client process (best of {args.rounds} interleaved rounds)")
    print(f"{'case':<14}{'aiohttp':>10}{'pool':>10}{'pool/aiohttp':>14}")
    for case, *_ in cases:
        old, new = best[(case, "aiohttp")], best[(case, "pool")]
        print(f"{case:<14}{old:>10.1f}{new:>10.1f}{new / old * 100:>13.0f}%")
    ratio = best[("chat c=32", "pool")] / best[("chat c=32", "aiohttp")]
    met = ratio <= GOAL_RATIO
    print(f"goal {'MET' if met else 'MISSED'}: the pool's CPU per chat round trip at c=32 is {ratio * 100:.0f}% "
          f"of aiohttp's (goal <= {GOAL_RATIO * 100:.0f}%)")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="round trips per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    return uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
