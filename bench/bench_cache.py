"""Response cache benchmark: a cache hit vs a miss vs a Route without a cache, side by side, in one proxy.

One Lockgate process serves three hosts of one namespace in front of a fast
loopback upstream: `hit.bench` (a cache policy; every measured request is a
hit), `miss.bench` (a policy whose entries never fit, so every request is
looked up, misses, goes upstream and is not kept) and `plain.bench` (no
cache: the plain pass-through). For each it prints requests/s, p50 latency
and the proxy's CPU time per request at concurrency 1 and 16, whole and
streamed, in interleaved rounds (best kept); then the memory an entry takes
in the in-process store and a semantic index record. Goal: a hit costs less
CPU than a pass-through request.

    .venv/bin/python bench/bench_cache.py [--seconds 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import (KEY, MODEL, STREAM_CHUNKS, Party, Result, free_port, load, spawn,  # noqa: E402
                         wait_serving)

HOSTS = ("hit.bench", "miss.bench", "plain.bench")
CHAT = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                   "max_tokens": 32, "temperature": 0}).encode()
STREAM = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Count to twenty."}],
                     "max_tokens": 32, "temperature": 0, "stream": True}).encode()
GOAL_CPU_RATIO = 1.0  # a hit's CPU per request over a pass-through's: below this


def role_lockgate(port: int, admin_port: int, upstream_port: int) -> None:
    from lockgate.api import ir
    from lockgate.proxy.server import ProxySettings, run
    from lockgate.proxy.source import Snapshot, StaticSource

    provider = ir.Provider(id="bench/openai", type="openai", base_url=f"http://127.0.0.1:{upstream_port}/v1",
                           credential="bench/openai", retries=ir.Retries(attempts=0),
                           models=(ir.ProviderModel(name=MODEL, upstream_model=MODEL),))
    key = ir.ConsumerKey(id="bench/key", consumer="bench", hashes=(ir.ApiKeyHash(sha256=ir.hash_key(KEY)),),
                         limits=ir.RateLimits(rpm=10**9, tpm=10**12, monthly_tokens=10**15))
    routes = (ir.Route(id="bench/hit", type="openai", hosts=("hit.bench",), cache=ir.CachePolicy(ttl=3600)),
              ir.Route(id="bench/miss", type="openai", hosts=("miss.bench",),
                       cache=ir.CachePolicy(ttl=3600, max_entry_bytes=1)),
              ir.Route(id="bench/plain", type="openai", hosts=("plain.bench", "127.0.0.1")))
    config = ir.GatewayConfig(providers=(provider,), keys=(key,), routes=routes).with_hash()
    snapshot = Snapshot(config, ir.Credentials(values={"bench/openai": "sk-bench"}))
    run(StaticSource(snapshot), ProxySettings(port=port, admin_port=admin_port, drain_seconds=0.5,
                                              access_log=os.devnull, state_dir=tempfile.mkdtemp(prefix="lg-bench-")))


def raw_request(host: str, body: bytes) -> bytes:
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def entry_bytes() -> list[tuple[str, float, float]]:
    """(what, bytes measured by tracemalloc per entry, bytes the store accounts per entry)."""
    from lockgate.proxy.cache.entry import stream_entry, whole_entry
    from lockgate.proxy.cache.key import request_hash, store_key
    from lockgate.proxy.cache.memory import MemoryStore
    from lockgate.proxy.cache.semantic import SemanticIndex, normalised
    from lockgate.proxy.providers.base import Usage

    answer = json.dumps({"id": "chatcmpl-0123456789abcdef01234567", "object": "chat.completion", "created": 0,
                         "model": MODEL, "choices": [{"index": 0, "message": {"role": "assistant",
                                                                              "content": "Hello there! " * 20},
                                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 12, "completion_tokens": 80, "total_tokens": 92}}).encode()
    chunks = b"".join(b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"gpt-4o",'
                      b'"choices":[{"index":0,"delta":{"content":" %d"},"finish_reason":null}]}\n\n' % i
                      for i in range(STREAM_CHUNKS)) + b"data: [DONE]\n\n"
    count = 2000
    out = []
    for what, data in (("whole chat answer", whole_entry(answer, Usage(12, 80, True))),
                       (f"stream of {STREAM_CHUNKS} chunks", stream_entry(chunks, Usage(12, 20, True)))):
        assert data is not None
        store = MemoryStore(1 << 30)
        encoded = [data.encode() for _ in range(count)]
        keys = [store_key("bench/hit", "ns", request_hash("chat", MODEL, {"n": i})) for i in range(count)]
        async def fill() -> None:
            for k, value in zip(keys, encoded):
                await store.set(k, value, 3600)

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await fill()  # the keys and values exist already: this is what the store adds
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        key_and_value = sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in zip(keys, encoded)) / count
        out.append((what, held / count + key_and_value, float(MemoryStore._cost(keys[0], encoded[0]))))
    index = SemanticIndex()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        vector = normalised([float((i * 7 + j) % 13) for j in range(1536)])
        assert vector is not None
        index.add("bench/hit", count, "p", f"k{i}", 4e9, vector)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    out.append(("semantic record, 1536 dims", held / count, 1536 * 4.0))
    return out


async def main_async(args: argparse.Namespace) -> int:
    me = [sys.executable, str(Path(__file__).resolve())]
    proxy_script = [sys.executable, str(Path(__file__).resolve().parent / "bench_proxy.py")]
    up_port, port, admin = free_port(), free_port(), free_port()
    upstream = Party("upstream", up_port, process=spawn([*proxy_script, "--role", "upstream", "--port", str(up_port)]))
    proxy = Party("lockgate", port, headers={"Authorization": f"Bearer {KEY}"}, process=spawn([*me, "--role", "lockgate", "--port", str(port), "--admin-port",
                                                    str(admin), "--upstream-port", str(up_port)]))
    try:
        if not await wait_serving(proxy):
            print("the proxy did not start serving")
            return 1
        assert proxy.process is not None
        pids = [proxy.process.pid]
        cases = [(f"{kind} c={c}", body, c) for kind, body in (("chat", CHAT), ("stream", STREAM)) for c in (1, 16)]
        best: dict[str, dict[str, Result]] = {case: {} for case, _, _ in cases}
        for _ in range(args.rounds):
            for case, body, concurrency in cases:
                for host in HOSTS:
                    result = await load(port, raw_request(host, body), concurrency, args.seconds, pids)
                    kept = best[case].get(host)
                    if kept is None or result.rps > kept.rps:
                        best[case][host] = result
    finally:
        proxy.stop()
        upstream.stop()
    print(f"Loopback, {os.cpu_count()} CPUs, {args.seconds:.0f} s per case, best of {args.rounds} rounds; "
          f"cpu = the proxy process only")
    print(f"{'case':<13}{'party':<13}{'req/s':>9}{'p50 ms':>9}{'cpu ms/req':>12}{'errors':>8}")
    for case, by_host in best.items():
        for host, r in by_host.items():
            print(f"{case:<13}{host.split('.')[0]:<13}{r.rps:>9.0f}{r.pct(r.latencies, 0.5):>9.3f}"
                  f"{r.cpu_ms_per_request:>12.3f}{r.errors:>8}")
    print("\nMemory per entry")
    for what, measured, accounted in await entry_bytes():
        print(f"  {what:<28} {measured:>9.0f} bytes measured, {accounted:>7.0f} bytes counted by the store")
    print("\nSummary")
    met = True
    for case, by_host in best.items():
        hit, miss, plain = by_host["hit.bench"], by_host["miss.bench"], by_host["plain.bench"]
        ratio = hit.cpu_ms_per_request / plain.cpu_ms_per_request
        errors = hit.errors + miss.errors + plain.errors
        met = met and ratio < GOAL_CPU_RATIO and errors == 0
        print(f"  {case:<11} hit cpu {ratio * 100:5.1f}% of pass-through, miss cpu "
              f"{miss.cpu_ms_per_request / plain.cpu_ms_per_request * 100:5.1f}%; hit throughput "
              f"{hit.rps / plain.rps:.2f}x pass-through")
    print(f"  goal {'MET' if met else 'MISSED'}: a hit costs less CPU than a pass-through request, no errors")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("lockgate",))
    parser.add_argument("--port", type=int)
    parser.add_argument("--admin-port", type=int)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.role == "lockgate":
        role_lockgate(args.port, args.admin_port, args.upstream_port)
        return 0
    import uvloop
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
