"""Proxy benchmark: direct vs a bare aiohttp pass-through vs Lockgate (vs LiteLLM and Portkey when installable).

Every party runs in its own process on loopback: a fast OpenAI-shaped upstream,
the proxy under test, and this load generator (a minimal keep-alive HTTP/1.1
client, so the client costs little). For each party it prints requests/s,
p50/p99 latency and the proxy's CPU time per request at concurrency 1 and at
a higher concurrency, then streaming first-byte latency and streams/s, and the
ratios to the bare pass-through. Lockgate runs with keys, quotas, metrics,
usage accounting and the access log on; "lg-noquota" is the same with the
quota service replaced by one that admits everything, to show its cost.

    .venv/bin/python bench/bench_proxy.py [--seconds 3] [--concurrency 32] [--skip-others]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Coroutine
from typing import Any

CACHE = Path(os.environ.get("LOCKGATE_BENCH_CACHE", Path.home() / ".cache" / "lockgate" / "bench"))
KEY = "lg-bench-key-0123456789abcdef"
LITELLM_KEY = "sk-bench-master-0123456789abcdef0123456789abcdef"
MODEL = "gpt-4o"
STREAM_CHUNKS = 20
CHAT_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                        "max_tokens": 32}).encode()
STREAM_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Count to twenty."}],
                          "max_tokens": 32, "stream": True}).encode()


# --- roles run in child processes -------------------------------------------

def role_upstream(port: int) -> None:
    from aiohttp import web

    answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": MODEL,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                                      "finish_reason": "stop", "logprobs": None}],
                         "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}).encode()

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
        payload: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    usage_chunk = b"data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                                          "model": MODEL, "choices": [],
                                          "usage": {"prompt_tokens": 12, "completion_tokens": STREAM_CHUNKS,
                                                    "total_tokens": 12 + STREAM_CHUNKS}}).encode() + b"\n\n"
    pieces = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": f" {i}"}) for i in range(STREAM_CHUNKS)]
    pieces.append(chunk({}, "stop"))

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.Response(body=answer, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(usage_chunk)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    _run_app(app, port)


def role_bare(port: int, upstream_port: int) -> None:
    """The floor for a Python proxy: read, forward on a pooled session, relay (streams chunk by chunk)."""
    import aiohttp
    from aiohttp import web

    target = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app["session"].post(target, data=body, headers={"Content-Type": "application/json"}) as up:
            if up.headers.get("Content-Type", "").startswith("text/event-stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                async for data in up.content.iter_any():
                    await response.write(data)
                await response.write_eof()
                return response
            return web.Response(body=await up.read(), status=up.status, content_type="application/json")

    app = web.Application()
    app.on_startup.append(on_startup)
    app.router.add_post("/v1/chat/completions", chat)
    _run_app(app, port)


def role_lockgate(port: int, admin_port: int, upstream_port: int, quotas: bool = True,
                  quota_store: str = "memory") -> None:
    from lockgate.api import ir
    from lockgate.proxy.quota import UnlimitedQuota
    from lockgate.proxy.server import ProxyServer, ProxySettings, run, tune_gc
    from lockgate.proxy.source import Snapshot, StaticSource
    from lockgate.proxy.tracing import tracing_from_environment

    provider = ir.Provider(id="bench/openai", type="openai", base_url=f"http://127.0.0.1:{upstream_port}/v1",
                           credential="bench/openai", retries=ir.Retries(attempts=0),
                           models=(ir.ProviderModel(name=MODEL, upstream_model=MODEL,
                                                    limits=ir.RateLimits(rpm=10**9, tpm=10**12)),))
    key = ir.ConsumerKey(id="bench/key", consumer="bench", hashes=(ir.ApiKeyHash(sha256=ir.hash_key(KEY)),),
                         models=("gpt-*",), limits=ir.RateLimits(rpm=10**9, tpm=10**12, monthly_tokens=10**15))
    config = ir.GatewayConfig(providers=(provider,), keys=(key,)).with_hash()
    snapshot = Snapshot(config, ir.Credentials(values={"bench/openai": "sk-bench"}))
    # The access log is on, as in production, written to /dev/null.
    # Tracing as `lockgate proxy` sets it: from the OTEL_* variables (off without them; bench_tracing.py sets them).
    settings = ProxySettings(port=port, admin_port=admin_port, drain_seconds=0.5, access_log=os.devnull,
                             state_dir=tempfile.mkdtemp(prefix="lockgate-bench-"),
                             tracing=tracing_from_environment(os.environ), quota_store=quota_store)
    if quotas:
        run(StaticSource(snapshot), settings)
        return

    async def without_quotas() -> None:  # to show what the quota service costs
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with ProxyServer(StaticSource(snapshot), settings, quota=UnlimitedQuota()):
            tune_gc()  # as serve() does
            await stop.wait()

    import uvloop
    uvloop.run(without_quotas())


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run a benchmark's main coroutine on uvloop when installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _run_app(app: Any, port: int) -> None:
    from aiohttp import web

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the load generator ---------------------------------------------------------

class Conn:
    """One keep-alive HTTP/1.1 connection: just enough protocol for these answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, float | None]:
        """Status, and seconds until the first body byte (streams)."""
        start = time.perf_counter()
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        first: float | None = None
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                await self.reader.readexactly(size + 2)
                if first is None:
                    first = time.perf_counter() - start
        else:
            at = lower.find(b"content-length:")
            length = int(lower[at + 15: lower.find(b"\r\n", at)]) if at >= 0 else 0
            await self.reader.readexactly(length)
        return status, first

    def close(self) -> None:
        self.writer.close()


def build_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *[f"{k}: {v}" for k, v in headers.items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds * 1000 / self.requests if self.requests else float("nan")


async def load(port: int, raw: bytes, concurrency: int, seconds: float, pids: list[int]) -> Result:
    conns = [await Conn.open(port) for _ in range(concurrency)]
    result = Result()
    for conn in conns[:4]:  # warm-up: pools and caches
        for _ in range(20):
            await conn.request(raw)
    stop_at = time.perf_counter() + seconds

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                status, first = await conn.request(raw)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):  # the party dropped the connection
                result.requests += 1
                result.errors += 1
                conn.close()
                conn = await Conn.open(port)
                continue
            result.latencies.append(time.perf_counter() - start)
            if first is not None:
                result.first_bytes.append(first)
            result.requests += 1
            if status != 200:
                result.errors += 1

    cpu_before = process_cpu(pids)
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = process_cpu(pids) - cpu_before
    for conn in conns:
        conn.close()  # (a worker may have replaced its own; those close with the loop)
    return result


def process_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of the given process groups (a proxy and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pids:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# --- parties -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Party:
    name: str
    port: int
    path: str = "/v1/chat/completions"
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    note: str = ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def spawn(args: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, cwd=cwd)


async def wait_serving(party: Party, timeout: float = 60.0) -> bool:
    raw = build_request(party.port, party.path, CHAT_BODY, party.headers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if party.process is not None and party.process.poll() is not None:
            return False
        try:
            conn = await Conn.open(party.port)
            status, _ = await asyncio.wait_for(conn.request(raw), 10)
            conn.close()
            if status == 200:
                return True
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.2)
    return False


def litellm_party(upstream_port: int) -> Party | str:
    binary = CACHE / "litellm-venv" / "bin" / "litellm"
    if not binary.exists():
        return f"LiteLLM skipped: not installed (python3 -m venv {CACHE}/litellm-venv && pip install 'litellm[proxy]')"
    port = free_port()
    config = CACHE / "litellm-config.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    process = spawn([str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                     "--num_workers", "1"], env={"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"})
    return Party("litellm", port, headers={"Authorization": f"Bearer {LITELLM_KEY}"}, process=process,
                 note="LiteLLM proxy, master key only (virtual keys and budgets need its Postgres)")


def portkey_party(upstream_port: int) -> Party | str:
    root = CACHE / "portkey" / "node_modules" / "@portkey-ai" / "gateway"
    entry = next((p for p in (root / "build" / "start-server.js", root / "dist" / "start-server.js") if p.exists()), None)
    if entry is None or shutil.which("node") is None:
        return f"Portkey skipped: not installed (cd {CACHE}/portkey && npm install @portkey-ai/gateway)"
    port = free_port()
    process = spawn(["node", str(entry), f"--port={port}", "--headless"], cwd=str(root))
    headers = {"Authorization": "Bearer sk-bench", "x-portkey-provider": "openai",
               "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1"}
    return Party("portkey", port, headers=headers, process=process,
                 note="Portkey gateway 1.15.2 on this node (its streams fail here: 'immutable' headers error)")


# --- main ------------------------------------------------------------------------------

def table(title: str, rows: list[tuple[str, Result]], base: Result | None, stream: bool = False) -> None:
    print(f"\n{title}")
    head = f"{'party':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11} {'vs bare':>8} {'errors':>7}"
    if stream:
        head += f" {'1st byte p50':>13}"
    print(head)
    for name, r in rows:
        ratio = f"{r.rps / base.rps * 100:7.1f}%" if base and base.rps else "      -"
        line = (f"{name:<10} {r.rps:9.0f} {r.pct(r.latencies, 0.5):8.2f} {r.pct(r.latencies, 0.99):8.2f} "
                f"{r.cpu_ms_per_request:11.3f} {ratio:>8} {r.errors:7d}")
        if stream:
            line += f" {r.pct(r.first_bytes, 0.5):12.2f}ms"
        print(line)


async def measure(party: Party, cases: list[tuple[str, bytes, int]], seconds: float) -> dict[str, Result]:
    pids = [party.process.pid] if party.process is not None and party.name != "direct" else []
    out: dict[str, Result] = {}
    for case, body, concurrency in cases:
        raw = build_request(party.port, party.path, body, party.headers)
        out[case] = await load(party.port, raw, concurrency, seconds, pids)
    return out


async def main_async(args: argparse.Namespace) -> int:
    up_port = free_port()
    me = [sys.executable, __file__]
    upstream = Party("direct", up_port, process=spawn([*me, "--role", "upstream", "--port", str(up_port)]))

    def bare() -> Party:
        port = free_port()
        return Party("bare", port, process=spawn([*me, "--role", "bare", "--port", str(port),
                                                  "--upstream-port", str(up_port)]))

    def lockgate(quotas: bool = True) -> Party:
        port, admin = free_port(), free_port()
        return Party("lockgate" if quotas else "lg-noquota", port, headers={"Authorization": f"Bearer {KEY}"},
                     process=spawn([*me, "--role", "lockgate", "--port", str(port), "--admin-port", str(admin),
                                    "--upstream-port", str(up_port), *([] if quotas else ["--no-quota"])]))

    cases = [("chat c=1", CHAT_BODY, 1), (f"chat c={args.concurrency}", CHAT_BODY, args.concurrency),
             ("stream c=1", STREAM_BODY, 1), (f"stream c={args.stream_concurrency}", STREAM_BODY,
                                              args.stream_concurrency)]
    notes: list[str] = []
    results: dict[str, dict[str, Result]] = {case: {} for case, _, _ in cases}
    try:
        if not await wait_serving(upstream):
            print("the upstream did not start")
            return 1
        def keep_best(name: str, measured: dict[str, Result]) -> None:
            for case, result in measured.items():
                best = results[case].get(name)
                if best is None or result.rps > best.rps:
                    results[case][name] = result

        # The core parties run side by side in interleaved rounds, each keeping its best round, so that
        # load from other processes on a shared machine weighs on all of them alike.
        core = [upstream, bare(), lockgate(), lockgate(quotas=False)]
        try:
            for party in core[1:]:
                if not await wait_serving(party):
                    print(f"{party.name} did not start serving")
                    return 1
            for _ in range(args.rounds):
                for party in core:
                    keep_best(party.name, await measure(party, cases, args.seconds))
        finally:
            for party in core[1:]:
                party.stop()
        # The others one at a time, alone with the upstream.
        others = [] if args.skip_others else [lambda: litellm_party(up_port), lambda: portkey_party(up_port)]
        for factory in others:
            party = factory()
            if isinstance(party, str):
                notes.append(party)
                continue
            try:
                if not await wait_serving(party, timeout=120):
                    notes.append(f"{party.name} skipped: it did not start serving")
                    continue
                keep_best(party.name, await measure(party, cases, args.seconds))
                if party.note:
                    notes.append(f"{party.name} = {party.note}")
            finally:
                party.stop()
        print(f"Loopback, {os.cpu_count()} CPUs, {args.seconds:.0f} s per case (best of {args.rounds} rounds for "
              f"direct, bare and lockgate); cpu = the proxy's processes only.")
        for case, by_party in results.items():
            table(case, list(by_party.items()), by_party.get("bare"), stream=case.startswith("stream"))
        met = summary(results, args, notes)
    finally:
        upstream.stop()
    return 0 if met else 1


GOAL_THROUGHPUT = 0.80  # of the bare pass-through, at the higher concurrency
GOAL_ADDED_MS = 0.3  # added p50 latency over direct, at concurrency 1


def summary(results: dict[str, dict[str, Result]], args: argparse.Namespace, notes: list[str]) -> bool:
    """Prints the ratios and whether Lockgate met its goals."""
    def p50(r: Result, first: bool = False) -> float:
        return r.pct(r.first_bytes if first else r.latencies, 0.5)

    print("\nSummary")
    low = results["chat c=1"]
    if {"lockgate", "bare", "direct"} <= low.keys():
        added, added_bare = p50(low["lockgate"]) - p50(low["direct"]), p50(low["bare"]) - p50(low["direct"])
        print(f"  added p50 latency at c=1: lockgate {added:.3f} ms, bare {added_bare:.3f} ms "
              f"(lockgate over bare {added - added_bare:+.3f} ms)")
    high = results[f"chat c={args.concurrency}"]
    for name, r in high.items():
        if name != "direct" and "bare" in high and "direct" in high:
            print(f"  {name:<9} throughput at c={args.concurrency}: {r.rps / high['bare'].rps * 100:6.1f}% of bare, "
                  f"{r.rps / high['direct'].rps * 100:6.1f}% of direct; cpu {r.cpu_ms_per_request:.3f} ms/req "
                  f"(bare's cpu per request / this one's: "
                  f"{high['bare'].cpu_ms_per_request / r.cpu_ms_per_request * 100:.1f}%)")
    streams = results[f"stream c={args.stream_concurrency}"]
    if {"lockgate", "bare"} <= streams.keys():
        print(f"  streams/s at c={args.stream_concurrency}: lockgate {streams['lockgate'].rps:.0f}, "
              f"bare {streams['bare'].rps:.0f} ({streams['lockgate'].rps / streams['bare'].rps * 100:.1f}%)")
    first = results["stream c=1"]
    if {"lockgate", "bare", "direct"} <= first.keys():
        base = p50(first["direct"], True)
        print(f"  stream first-byte overhead p50 at c=1: lockgate {p50(first['lockgate'], True) - base:.3f} ms, "
              f"bare {p50(first['bare'], True) - base:.3f} ms")
    for note in notes:
        print(f"  note: {note}")
    if not ({"lockgate", "bare", "direct"} <= low.keys() and {"lockgate", "bare"} <= high.keys()):
        print("  goal: not measured (a core party did not run)")
        return False
    ratio = high["lockgate"].rps / high["bare"].rps
    added = p50(low["lockgate"]) - p50(low["direct"])
    met = ratio >= GOAL_THROUGHPUT and added <= GOAL_ADDED_MS
    print(f"  goal {'MET' if met else 'MISSED'}: throughput {ratio * 100:.1f}% of bare (goal >= "
          f"{GOAL_THROUGHPUT * 100:.0f}%), added latency {added:.3f} ms at c=1 (goal <= {GOAL_ADDED_MS} ms)")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("upstream", "bare", "lockgate"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--admin-port", type=int)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream-concurrency", type=int, default=16)
    parser.add_argument("--no-quota", action="store_true", help="(lockgate role) the quota service off")
    parser.add_argument("--quota-store", default="memory", help="(lockgate role) memory or a redis:// URL")
    parser.add_argument("--rounds", type=int, default=2, help="rounds for direct, bare and Lockgate (best kept)")
    parser.add_argument("--skip-others", action="store_true", help="only direct, bare and Lockgate")
    args = parser.parse_args()
    if args.role == "upstream":
        role_upstream(args.port)
    elif args.role == "bare":
        role_bare(args.port, args.upstream_port)
    elif args.role == "lockgate":
        role_lockgate(args.port, args.admin_port, args.upstream_port, quotas=not args.no_quota,
                      quota_store=args.quota_store)
    else:
        try:
            import uvloop
            return uvloop.run(main_async(args))
        except ImportError:
            return asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
