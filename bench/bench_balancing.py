"""Balancing strategies against simulated engines over loopback HTTP.

Four fake engines (two fast, two at half speed), each with limited slots, a
FIFO queue, a prefix cache and a vLLM-style /metrics page (sim_engine.py).
The workload: multi-turn chats whose sessions share a dozen long system
prompts, arriving open-loop at a fixed rate (the same seeded schedule for
every strategy). Each strategy drives the real `StrategyBalancer`: pick,
stream the request over HTTP, `first_token()` at the first chunk, `release()`
at the end. Prints p50/p99 latency, throughput and the prompt-token cache-hit
rate per strategy, with ratios against round-robin, and exits non-zero when
prefix-affinity or engine-metrics fails to beat round-robin on p99 and
cache-hit rate.

Run: .venv/bin/python bench/bench_balancing.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from lockgate.api import ir
from lockgate.proxy.balancing import PickRequest, StrategyBalancer
from lockgate.proxy.balancing.external import DESTINATION_HEADER
from lockgate.proxy.balancing.prefix import prompt_prefix
from lockgate.proxy.balancing.prefix_affinity import prefix_affinity
from lockgate.proxy.balancing.state import EndpointState
from sim_engine import EngineSpec, SimEngine, tokens

FAST = dict(slots=4, prefill_rate=16_000.0, decode_interval=0.004, cache_tokens=24_000, kv_tokens=20_000)
SLOW = dict(slots=4, prefill_rate=8_000.0, decode_interval=0.008, cache_tokens=24_000, kv_tokens=20_000)
ENGINES = [
    EngineSpec("fast-1", **FAST),  # type: ignore[arg-type]
    EngineSpec("fast-2", **FAST),  # type: ignore[arg-type]
    EngineSpec("slow-1", **SLOW),  # type: ignore[arg-type]
    EngineSpec("slow-2", **SLOW),  # type: ignore[arg-type]
]
RUN_LIMIT = 60.0  # seconds per strategy at most
STRATEGIES = ["round-robin", "least-request", "least-tokens", "prefix-affinity", "engine-metrics", "external"]


@dataclass(frozen=True)
class Workload:
    sessions: int = 110
    session_rate: float = 10.0  # new chats per second
    system_prompts: int = 12
    system_tokens: int = 1600
    turns: tuple[int, int] = (3, 6)
    user_tokens: tuple[int, int] = (60, 400)
    output_tokens: tuple[int, int] = (16, 80)
    think: float = 0.15  # mean seconds between a reply and the next turn
    seed: int = 7


@dataclass(frozen=True)
class Session:
    start: float
    system: str
    users: tuple[str, ...]
    max_tokens: tuple[int, ...]
    thinks: tuple[float, ...]


def text(rng: random.Random, n_tokens: int) -> str:
    words = []
    length = 0
    while length < n_tokens * 4:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 7)))
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[: n_tokens * 4]


def make_sessions(w: Workload) -> list[Session]:
    rng = random.Random(w.seed)
    systems = [text(rng, w.system_tokens) for _ in range(w.system_prompts)]
    sessions, start = [], 0.0
    for _ in range(w.sessions):
        start += rng.expovariate(w.session_rate)
        turns = rng.randint(*w.turns)
        sessions.append(
            Session(
                start=start,
                system=rng.choice(systems),
                users=tuple(text(rng, rng.randint(*w.user_tokens)) for _ in range(turns)),
                max_tokens=tuple(rng.randint(*w.output_tokens) for _ in range(turns)),
                thinks=tuple(rng.expovariate(1 / w.think) for _ in range(turns)),
            )
        )
    return sessions


@dataclass
class Outcome:
    latency: float
    ttft: float
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    engine: str
    end: float


@dataclass
class Run:
    strategy: str
    outcomes: list[Outcome] = field(default_factory=list)
    failures: int = 0
    started: float = 0.0
    rules: dict[str, int] = field(default_factory=dict)  # the balancer's picks by deciding rule

    def p(self, q: float) -> float:
        latencies = sorted(o.latency for o in self.outcomes)
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    @property
    def wall(self) -> float:
        return max(o.end for o in self.outcomes) - self.started

    @property
    def hit_rate(self) -> float:
        return sum(o.cached_tokens for o in self.outcomes) / sum(o.prompt_tokens for o in self.outcomes)

    def share(self, prefix: str) -> float:
        return sum(o.engine.startswith(prefix) for o in self.outcomes) / len(self.outcomes)


async def one_request(
    http: aiohttp.ClientSession, balancer: StrategyBalancer, names: dict[str, str],
    messages: list[dict[str, str]], max_tokens: int, run: Run,
) -> str:
    prompt = sum(tokens(m["content"]) for m in messages)
    started = time.monotonic()
    lease = await balancer.pick(
        PickRequest("sim", prefix=prompt_prefix({"messages": messages}), prompt_tokens=prompt, max_tokens=max_tokens)
    )
    assert lease is not None, "no endpoint is excluded or capped in this benchmark"
    ttft, reply = 0.0, ""
    usage: dict[str, Any] = {}
    try:
        body = {"model": "sim", "messages": messages, "max_tokens": max_tokens, "stream": True}
        async with http.post(f"{lease.url}/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[6:])
                if not ttft:
                    ttft = time.monotonic() - started
                    lease.first_token()
                reply += chunk["choices"][0]["delta"].get("content", "")
                usage = chunk.get("usage") or usage
    except aiohttp.ClientError:
        lease.release(ok=False)
        run.failures += 1
        return ""
    lease.release(ok=True, output_tokens=usage["completion_tokens"])
    end = time.monotonic()
    run.outcomes.append(
        Outcome(end - started, ttft, usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"],
                usage["completion_tokens"], names[lease.url], end)
    )
    return reply


async def chat(
    session: Session, t0: float, http: aiohttp.ClientSession, balancer: StrategyBalancer,
    names: dict[str, str], run: Run,
) -> None:
    await asyncio.sleep(max(0.0, t0 + session.start - time.monotonic()))
    messages = [{"role": "system", "content": session.system}]
    for user, max_tokens, think in zip(session.users, session.max_tokens, session.thinks):
        messages.append({"role": "user", "content": user})
        reply = await one_request(http, balancer, names, messages, max_tokens, run)
        messages.append({"role": "assistant", "content": reply})
        await asyncio.sleep(think)


async def pick_endpoint(request: web.Request) -> web.Response:
    """A stand-in external endpoint picker: prefix-affinity over what the gateway sends it."""
    body = await request.json()
    states = [EndpointState(c["url"], in_flight=c["inFlight"]) for c in body["candidates"]]
    choice = prefix_affinity(states, body["prefixDigest"], epsilon=0.25)
    address = next(c["address"] for c in body["candidates"] if choice and c["url"] == choice.url)
    return web.Response(headers={DESTINATION_HEADER: address})


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def settings(strategy: str, picker_url: str) -> ir.LoadBalancing:
    return ir.LoadBalancing(
        strategy=strategy,
        # the simulation runs ~10x faster than real serving, so does the scrape
        metrics=ir.EngineMetrics(
            interval=0.1, waiting_metric="vllm:num_requests_waiting", running_metric="vllm:num_requests_running",
            cache_metric="vllm:kv_cache_usage_perc", stale_after=1.0,
        ),
        external=ir.ExternalPicker(url=picker_url, timeout=0.05),
    )


async def run_strategy(strategy: str, sessions: list[Session], picker_url: str) -> Run:
    engines = [SimEngine(spec) for spec in ENGINES]  # cold caches for every strategy
    runners, names = [], {}
    for engine in engines:
        runner, base = await start(engine.app())
        runners.append(runner)
        names[f"{base}/v1"] = engine.spec.name
    balancer = StrategyBalancer(list(names), settings(strategy, picker_url), engine="vllm")
    run = Run(strategy)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            run.started = t0 = time.monotonic() + 0.05
            async with asyncio.timeout(RUN_LIMIT):  # bounded even if an engine wedges
                await asyncio.gather(*(chat(s, t0, http, balancer, names, run) for s in sessions))
    finally:
        run.rules = dict(balancer.decisions)
        await balancer.close()
        for runner in runners:
            await runner.cleanup()
    return run


def report(runs: list[Run]) -> bool:
    base = runs[0]
    print(f"{'strategy':<16}{'n':>5}{'p50 s':>7}{'p99 s':>7}{'ttft50':>7}{'req/s':>7}{'tok/s':>6}{'hits':>7}"
          f"{'slow':>6} | vs round-robin: {'p50':>5}{'p99':>6}{'req/s':>6}{'hits':>6}")
    for r in runs:
        rate, base_rate = len(r.outcomes) / r.wall, len(base.outcomes) / base.wall
        ttft = statistics.median(o.ttft for o in r.outcomes)
        out_rate = sum(o.output_tokens for o in r.outcomes) / r.wall
        print(f"{r.strategy:<16}{len(r.outcomes):>5}{r.p(0.5):>7.3f}{r.p(0.99):>7.3f}{ttft:>7.3f}{rate:>7.1f}"
              f"{out_rate:>6.0f}{r.hit_rate:>7.1%}{r.share('slow'):>6.0%} |{'':>16}"
              f"{r.p(0.5) / base.p(0.5):>5.2f}{r.p(0.99) / base.p(0.99):>6.2f}{rate / base_rate:>6.2f}"
              f"{r.hit_rate / base.hit_rate:>6.2f}")
    print("hits: prompt tokens served from the engines' prefix caches; slow: share of requests on the slow engines")
    for r in runs:
        total = sum(r.rules.values())
        shares = ", ".join(f"{rule} {count / total:.0%}" for rule, count in sorted(r.rules.items(), key=lambda x: -x[1]))
        print(f"  {r.strategy} decided by: {shares}")
    ok = True
    for r in runs:
        if r.failures:
            print(f"{r.strategy}: {r.failures} failed requests")
            ok = False
        if r.strategy in ("prefix-affinity", "engine-metrics"):
            beats = r.p(0.99) < base.p(0.99) and r.hit_rate > base.hit_rate
            print(f"{r.strategy} beats round-robin on p99 and cache hits: {'yes' if beats else 'NO'}")
            ok = ok and beats
    return ok


async def main(quick: bool, strategies: list[str]) -> bool:
    workload = Workload(sessions=50) if quick else Workload()
    sessions = make_sessions(workload)
    picker_app = web.Application()
    picker_app.router.add_post("/pick", pick_endpoint)
    picker, picker_base = await start(picker_app)
    try:
        requests = sum(len(s.users) for s in sessions)
        print(f"{len(ENGINES)} engines (2 fast, 2 at half speed, 4 slots each), {len(sessions)} chats, "
              f"{requests} requests, {workload.system_prompts} shared system prompts")
        runs = []
        for strategy in strategies:
            runs.append(await run_strategy(strategy, sessions, f"{picker_base}/pick"))
        return report(runs)
    finally:
        await picker.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller workload, for a smoke run")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated, round-robin first")
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(main(args.quick, args.strategies.split(","))) else 1)
