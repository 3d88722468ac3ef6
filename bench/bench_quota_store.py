"""Quota stores through the whole proxy: bare pass-through vs Lockgate with the memory store vs
Lockgate with a real redis-server, side by side in one run.

The parties of bench_proxy.py (a fast loopback upstream, the bare aiohttp
pass-through, Lockgate with keys, quotas, metrics and the access log on), one
more Lockgate whose quotas live in its own redis-server (no persistence), and
this load generator, each a process. Interleaved rounds, each party keeping
its best. Goals (Redis against the others, as measured in the same run):
throughput at least 0.8x the bare pass-through at concurrency 16 and 64, CPU
per request at most 1.25x the memory store's, added p50 latency at
concurrency 1 at most 0.3 ms above the memory store's. The redis-server's own
CPU per request is printed beside (it shares the cores with the proxy).

    .venv/bin/python bench/bench_quota_store.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import (CHAT_BODY, KEY, Party, Result, free_port, measure, run_async, spawn,  # noqa: E402
                         wait_serving)
from bench_quota import start_redis  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

GOAL_THROUGHPUT = 0.80  # of bare, at every concurrency above 1
GOAL_CPU = 1.25  # of the memory store's CPU per request
GOAL_ADDED_MS = 0.3  # added p50 latency at c=1 over the memory store's
CONCURRENCIES = (1, 16, 64)


async def main_async(args: argparse.Namespace) -> int:
    redis, url = start_redis()
    me = [sys.executable, str(Path(__file__).resolve().parent / "bench_proxy.py")]
    up_port = free_port()
    upstream = Party("direct", up_port, process=spawn([*me, "--role", "upstream", "--port", str(up_port)]))

    def lockgate(name: str, store: str) -> Party:
        port, admin = free_port(), free_port()
        return Party(name, port, headers={"Authorization": f"Bearer {KEY}"},
                     process=spawn([*me, "--role", "lockgate", "--port", str(port), "--admin-port", str(admin),
                                    "--upstream-port", str(up_port), "--quota-store", store]))

    bare_port = free_port()
    parties = [upstream, Party("bare", bare_port, process=spawn([*me, "--role", "bare", "--port", str(bare_port),
                                                                "--upstream-port", str(up_port)])),
               lockgate("memory", "memory"), lockgate("redis", url)]
    cases = [(f"chat c={c}", CHAT_BODY, c) for c in CONCURRENCIES]
    best: dict[str, dict[str, Result]] = {case: {} for case, _, _ in cases}
    redis_cpu: dict[str, float] = {}  # case -> the redis-server's CPU ms per request in the kept redis round
    try:
        for party in parties:
            if not await wait_serving(party):
                print(f"{party.name} did not start serving")
                return 1
        for _ in range(args.rounds):
            for party in parties:
                for one in cases:
                    before = cpu_seconds(redis.pid)
                    ((case, result),) = (await measure(party, [one], args.seconds)).items()
                    if best[case].get(party.name) is None or result.rps > best[case][party.name].rps:
                        best[case][party.name] = result
                        if party.name == "redis":
                            redis_cpu[case] = (cpu_seconds(redis.pid) - before) * 1000 / max(1, result.requests)
    finally:
        for party in parties:
            party.stop()
        redis.kill()
        redis.wait()
    print(f"Loopback, {args.seconds:.0f} s per case, best of {args.rounds} interleaved rounds; "
          f"cpu = the proxy's process only (redis-server's: its own column); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'case':<10} {'party':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms/req':>10} {'vs bare':>8} "
          f"{'errors':>6} {'redis-server cpu ms/req':>23}")
    for case, by_party in best.items():
        bare = by_party["bare"]
        for name, r in by_party.items():
            server = f"{redis_cpu[case]:23.3f}" if name == "redis" and case in redis_cpu else ""
            print(f"{case:<10} {name:<8} {r.rps:8.0f} {r.pct(r.latencies, 0.5):7.2f} {r.pct(r.latencies, 0.99):7.2f} "
                  f"{r.cpu_ms_per_request:10.3f} {r.rps / bare.rps * 100:7.1f}% {r.errors:6d} {server}")
    return 0 if summary(best) else 1


def summary(best: dict[str, dict[str, Result]]) -> bool:
    met = True
    low = best["chat c=1"]
    added = low["redis"].pct(low["redis"].latencies, 0.5) - low["memory"].pct(low["memory"].latencies, 0.5)
    ok = added <= GOAL_ADDED_MS
    met &= ok
    print(f"\nredis vs memory, added p50 at c=1: {added:+.3f} ms (goal <= {GOAL_ADDED_MS} ms) {'met' if ok else 'MISSED'}")
    for c in CONCURRENCIES[1:]:
        row = best[f"chat c={c}"]
        ratio = row["redis"].rps / row["bare"].rps
        cpu = row["redis"].cpu_ms_per_request / row["memory"].cpu_ms_per_request
        ok = ratio >= GOAL_THROUGHPUT and cpu <= GOAL_CPU and row["redis"].errors == 0
        met &= ok
        print(f"redis at c={c}: throughput {ratio:.2f}x bare (goal >= {GOAL_THROUGHPUT}), memory "
              f"{row['memory'].rps / row['bare'].rps:.2f}x; cpu per request {cpu:.2f}x the memory store's "
              f"(goal <= {GOAL_CPU}) {'met' if ok else 'MISSED'}")
    print(f"goal {'MET' if met else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    return run_async(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
