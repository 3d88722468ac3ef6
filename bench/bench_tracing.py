"""Tracing benchmark: the proxy's CPU per request with tracing off, and on at 100 % sampling.

What is measured: the CPU time (user + system) of the proxy process only, per
request served, with tracing off (no OTEL_* variables: no trace step, no
tracing code loaded), on with every request sampled and exported over
OTLP/HTTP, and on with nothing sampled. The proxy's export thread and its
encoding are part of the proxy process, so they are counted: each traced
window ends only once the sink has received every span of its requests (the
warm-up's spans are drained before it starts), so no window pays for another's
export and none leaves its own out.

Why a sink and not the Collector: on two cores, a Collector writing the
previous window's spans to a file competed for the CPU with whichever party
came next, which skewed one column (the 0 % one read 1.54x off). The spans go
to a loopback OTLP sink that parses each batch, counts the spans and drops
them, at low priority (nice 10); the bench checks that every request's spans
arrived (spans per request in the table). That a real Collector accepts the
same export with the right links and attributes is
tests/integration/test_tracing_collector.py's job.

How: the fast upstream and the keep-alive HTTP client of bench_proxy.py, on
loopback. The three proxies are measured at the same time, each sent the same
paced load (a fixed rate of requests, at most so many in flight), so load from
elsewhere on the machine weighs on all three alike and each serves as many
requests at the same concurrency: with a closed loop, whichever party the
machine slowed served fewer requests per wake-up, and CPU per request moved by
tens of per cent from one window to the next. Each case runs several rounds;
the ratio to off is taken per round, and the table gives the median and the
spread (min-max) over the rounds.

Goal: tracing on at 100 % costs under 15 % more CPU per request than off.

    .venv/bin/python bench/bench_tracing.py [--seconds 3] [--rounds 5] [--rate-scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import uvloop

from bench_proxy import (CHAT_BODY, KEY, STREAM_BODY, Conn, Party, Result, build_request, free_port, process_cpu,
                         spawn, wait_serving)

GOAL_CPU_RATIO = 1.15  # traced / untraced CPU per request
BENCH_PROXY = str(Path(__file__).with_name("bench_proxy.py"))
DRAIN_TIMEOUT = 15.0  # seconds for a window's spans to reach the sink
WARM_UP = 100  # requests to each party before a window


# --- the OTLP sink (a child process) ---------------------------------------------------

def role_sink(port: int) -> None:
    """An OTLP/HTTP JSON receiver that parses each batch, counts its spans and drops them.
    GET /count?server=N answers once N SERVER spans (one per request) have arrived, or at its timeout."""
    import orjson
    from aiohttp import web

    os.nice(10)
    counts = {"spans": 0, "server": 0}
    arrived = asyncio.Condition()

    async def traces(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        for resource in body["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    counts["spans"] += 1
                    counts["server"] += span["kind"] == 2
        async with arrived:
            arrived.notify_all()
        return web.json_response({})

    async def count(request: web.Request) -> web.Response:
        want = int(request.query.get("server", "0"))
        async with arrived:
            try:
                await asyncio.wait_for(arrived.wait_for(lambda: counts["server"] >= want),
                                       float(request.query.get("timeout", "0")))
            except TimeoutError:
                pass
        return web.json_response(counts)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/count", count)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.party = Party("sink", self.port, process=spawn([sys.executable, __file__, "--role", "sink", "--port",
                                                             str(self.port)]))

    async def ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # (a child process starting: nothing to await but its port)
            try:
                await self.counts()
                return True
            except OSError:
                await asyncio.sleep(0.1)
        return False

    async def counts(self, server: int = 0, timeout: float = 0.0) -> dict[str, int]:
        """The spans received so far, once `server` SERVER spans are in (or the timeout passed)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET /count?server={server}&timeout={timeout} HTTP/1.1\r\nHost: sink\r\n"
                     "Connection: close\r\n\r\n".encode())
        raw = await reader.read()
        writer.close()
        return {k: int(v) for k, v in json.loads(raw.split(b"\r\n\r\n", 1)[1]).items()}


def cpu_seconds(pid: int) -> float:
    """The process' CPU time in nanoseconds' precision: the sum over its threads of /proc's schedstat
    (the ticks of /proc/PID/stat are 10 ms, a few per cent of a window); the ticks where schedstat is missing."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError):
        return process_cpu([pid])


# --- parties and windows -----------------------------------------------------------------

@dataclass
class Traced:
    """A Lockgate party, and the requests it answered so far (each makes one SERVER span when sampled)."""
    party: Party
    exported: bool
    answered: int = 0
    spans_per_request: list[float] = field(default_factory=list)


def lockgate(name: str, up_port: int, env: dict[str, str], exported: bool = False) -> Traced:
    port, admin = free_port(), free_port()
    # The parent's OTEL_* variables must not leak into the untraced party.
    clean = {k: "" for k in os.environ if k.startswith("OTEL_")}
    party = Party(name, port, headers={"Authorization": f"Bearer {KEY}"},
                  process=spawn([sys.executable, BENCH_PROXY, "--role", "lockgate", "--port", str(port),
                                 "--admin-port", str(admin), "--upstream-port", str(up_port)], env={**clean, **env}))
    return Traced(party, exported)


async def drained(traced: Traced, sink: Sink) -> dict[str, int]:
    counts = await sink.counts(traced.answered, DRAIN_TIMEOUT)
    if counts["server"] < traced.answered:
        raise RuntimeError(f"{traced.party.name}: {traced.answered - counts['server']} requests' spans never "
                           f"reached the sink in {DRAIN_TIMEOUT:.0f} s")
    return counts


@dataclass
class Case:
    name: str
    body: bytes
    rate: float  # requests per second sent to each party
    in_flight: int  # at most this many at once per party


async def paced(traced: Traced, case: Case, seconds: float, result: Result) -> None:
    """`case.rate` requests a second for `seconds`, on up to `case.in_flight` keep-alive connections."""
    party = traced.party
    raw = build_request(party.port, party.path, case.body, party.headers)
    idle: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(case.in_flight):
        idle.put_nowait(await Conn.open(party.port))

    async def one(conn: Conn) -> None:
        start = time.perf_counter()
        try:
            status, first = await conn.request(raw)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):  # the party dropped the connection
            result.requests += 1
            result.errors += 1
            conn.close()
            idle.put_nowait(await Conn.open(party.port))
            return
        result.latencies.append(time.perf_counter() - start)
        if first is not None:
            result.first_bytes.append(first)
        result.requests += 1
        traced.answered += 1
        result.errors += status != 200
        idle.put_nowait(conn)

    loop = asyncio.get_running_loop()
    tasks = []
    began = loop.time()
    for n in range(round(case.rate * seconds)):
        delay = began + n / case.rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the pace itself: nothing to wait for but the clock
        tasks.append(asyncio.create_task(one(await idle.get())))
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - began
    while not idle.empty():
        idle.get_nowait().close()


async def window(parties: list[Traced], case: Case, seconds: float, sink: Sink) -> list[Result]:
    """One measured window, every party at once: warm-up, then the paced load; it lasts until the sink has
    every span of the traced party's requests."""
    for traced in parties:  # warm-up: pools and caches
        await paced(traced, replace(case, rate=case.rate * 2), WARM_UP / case.rate, Result())
    exported = [t for t in parties if t.exported]
    before = [await drained(t, sink) for t in exported]
    results = [Result() for _ in parties]
    cpu_before = [cpu_seconds(t.party.process.pid) for t in parties if t.party.process is not None]
    await asyncio.gather(*(paced(t, case, seconds, r) for t, r in zip(parties, results)))
    after = [await drained(t, sink) for t in exported]
    for traced, b, a in zip(exported, before, after):
        served = results[parties.index(traced)].requests
        traced.spans_per_request.append((a["spans"] - b["spans"]) / served)
    for traced, result, cpu in zip(parties, results, cpu_before):
        assert traced.party.process is not None
        result.cpu_seconds = cpu_seconds(traced.party.process.pid) - cpu
    return results


# --- main --------------------------------------------------------------------------------

def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


async def main_async(args: argparse.Namespace) -> int:
    up_port = free_port()
    upstream = Party("direct", up_port, process=spawn([sys.executable, BENCH_PROXY, "--role", "upstream", "--port",
                                                       str(up_port)]))
    sink = Sink()
    endpoint = f"http://127.0.0.1:{sink.port}/v1/traces"
    parties = [
        lockgate("off", up_port, {}),
        lockgate("on 100%", up_port, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on",
                                      "OTEL_SERVICE_NAME": "lockgate-bench"}, exported=True),
        lockgate("on 0%", up_port, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
                                    "OTEL_TRACES_SAMPLER": "always_off"}),
    ]
    scale = args.rate_scale
    cases = [Case(f"chat {100 * scale:.0f}/s", CHAT_BODY, 100 * scale, 1),
             Case(f"chat {400 * scale:.0f}/s", CHAT_BODY, 400 * scale, 32),
             Case(f"stream {100 * scale:.0f}/s", STREAM_BODY, 100 * scale, 16)]
    runs: dict[str, dict[str, list[Result]]] = {case.name: {t.party.name: [] for t in parties} for case in cases}
    load_before = os.getloadavg()
    try:
        if not await sink.ready() or not await wait_serving(upstream):
            print("the OTLP sink or the upstream did not start")
            return 1
        for traced in parties:
            if not await wait_serving(traced.party):
                print(f"lockgate ({traced.party.name}) did not start serving")
                return 1
            traced.answered += 1
        for _ in range(args.rounds):
            for case in cases:
                for traced, result in zip(parties, await window(parties, case, args.seconds, sink)):
                    runs[case.name][traced.party.name].append(result)
    finally:
        for party in [*(t.party for t in parties), sink.party, upstream]:
            party.stop()
    load_after = os.getloadavg()
    exported = next(t for t in parties if t.exported)
    print(f"Loopback, {os.cpu_count()} CPUs, {args.rounds} rounds of {args.seconds:.0f} s per case, the three parties "
          f"at once under the same paced load (chat 100/s one at a time, chat 400/s up to 32 in flight, streams "
          f"100/s up to 16, times {scale}); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.\n"
          f"cpu = the proxy process only (its span export included); median (min-max) over the rounds; 'vs off' "
          f"paired per round.")
    print(f"{'case':<15}{'tracing':<9}{'req/s':>7}{'p50 ms':>8}{'cpu ms/req':>24}{'vs off':>20}{'errors':>7}")
    worst = 0.0
    errors = 0
    for case, by_party in runs.items():
        off = by_party["off"]
        for name, results in by_party.items():
            ratios = [r.cpu_ms_per_request / o.cpu_ms_per_request for r, o in zip(results, off)]
            if name == "on 100%":
                worst = max(worst, statistics.median(ratios))
            errors += sum(r.errors for r in results)
            print(f"{case:<15}{name:<9}{statistics.median([r.rps for r in results]):>7.0f}"
                  f"{statistics.median([r.pct(r.latencies, 0.5) for r in results]):>8.2f}"
                  f"{spread([r.cpu_ms_per_request for r in results], '.3f'):>24}{spread(ratios, '.2f'):>20}"
                  f"{sum(r.errors for r in results):>7}")
    print(f"spans per traced request: {spread(exported.spans_per_request, '.2f')}, every one received by the sink")
    met = worst < GOAL_CPU_RATIO and not errors
    print(f"\nSummary\n  goal {'MET' if met else 'MISSED'}: tracing on at 100 % sampling costs "
          f"{(worst - 1) * 100:+.1f}% CPU per request over off in the worst case (median of rounds; goal < "
          f"{(GOAL_CPU_RATIO - 1) * 100:.0f}%); off has no trace step in its pipeline")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("sink",))
    parser.add_argument("--port", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate-scale", type=float, default=1.0, help="multiplies every case's request rate")
    args = parser.parse_args()
    if args.role == "sink":
        role_sink(args.port)
        return 0
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
