"""`lockgate run --workers N`: throughput and CPU per request for one worker against two.

The same manifests (one key, one model on a fast loopback upstream), quotas
in a real redis-server, the access log off (to /dev/null), and the load
generator of bench_proxy.py. The CPU per request is summed over the whole
process group (supervisor and workers). Goal: with two workers, at most 10 %
more CPU per request than with one. Throughput is printed as measured without
a goal: the load generator, the upstream and Redis share the same cores.

    .venv/bin/python bench/bench_workers.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the manifests of the quota tests

from bench_proxy import (CHAT_BODY, KEY, MODEL, Party, Result, free_port, measure, run_async, spawn,  # noqa: E402
                         wait_serving)
from bench_quota import start_redis  # noqa: E402

from tests.integration.quota.proxies import write_manifests  # noqa: E402

LOCKGATE = str(Path(sys.executable).parent / "lockgate")
GOAL_CPU = 1.10  # two workers' CPU per request over one worker's


async def main_async(args: argparse.Namespace) -> int:
    redis, url = start_redis()
    me = [sys.executable, str(Path(__file__).resolve().parent / "bench_proxy.py")]
    up_port = free_port()
    upstream = Party("direct", up_port, process=spawn([*me, "--role", "upstream", "--port", str(up_port)]))
    tmp = tempfile.TemporaryDirectory(prefix="lockgate-workers-bench-")
    write_manifests(Path(tmp.name), f"http://127.0.0.1:{up_port}/v1", rpm=10**9, tpm=10**12, monthly=10**15,
                    model=MODEL, key=KEY)

    def lockgate(workers: int) -> Party:
        port, admin = free_port(), free_port()
        return Party(f"workers={workers}", port, headers={"Authorization": f"Bearer {KEY}"},
                     process=spawn([LOCKGATE, "run", "-f", tmp.name, "--port", str(port), "--admin-port", str(admin),
                                    "--state-dir", f"{tmp.name}/state-{workers}", "--quota-store", url,
                                    "--workers", str(workers), "--log-level", "WARNING"]))

    parties = [lockgate(1), lockgate(2)]
    cases = [(f"chat c={c}", CHAT_BODY, c) for c in (1, args.concurrency)]
    best: dict[str, dict[str, Result]] = {case: {} for case, _, _ in cases}
    try:
        for party in [upstream, *parties]:
            if not await wait_serving(party):
                print(f"{party.name} did not start serving")
                return 1
        for _ in range(args.rounds):
            for party in parties:
                for case, result in (await measure(party, cases, args.seconds)).items():
                    kept = best[case].get(party.name)
                    if kept is None or result.rps > kept.rps:
                        best[case][party.name] = result
    finally:
        for party in [*parties, upstream]:
            party.stop()
        redis.kill()
        redis.wait()
        tmp.cleanup()
    print(f"lockgate run, quotas in redis-server, {args.seconds:.0f} s per case, best of {args.rounds} rounds; "
          f"cpu = supervisor + workers")
    print(f"{'case':<10} {'party':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms/req':>10} {'errors':>6}")
    for case, by_party in best.items():
        for name, r in by_party.items():
            print(f"{case:<10} {name:<10} {r.rps:8.0f} {r.pct(r.latencies, 0.5):7.2f} {r.pct(r.latencies, 0.99):7.2f} "
                  f"{r.cpu_ms_per_request:10.3f} {r.errors:6d}")
    high = best[f"chat c={args.concurrency}"]
    ratio = high["workers=2"].cpu_ms_per_request / high["workers=1"].cpu_ms_per_request
    met = ratio <= GOAL_CPU and all(r.errors == 0 for row in best.values() for r in row.values())
    print(f"two workers' CPU per request at c={args.concurrency}: {ratio:.2f}x one worker's (goal <= {GOAL_CPU}); "
          f"throughput {high['workers=2'].rps / high['workers=1'].rps:.2f}x (no goal: shared cores) "
          f"{'MET' if met else 'MISSED'}")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    return run_async(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
