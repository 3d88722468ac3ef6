"""Cost of a quota check per request (admit + settle), memory store vs Redis store.

Starts its own redis-server on a free loopback port (no persistence), runs each
store for a bounded time, sequentially and with concurrent callers, and prints
microseconds per check and checks per second side by side.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService, make_quota_service

DURATION = 1.5  # seconds per measurement
KEY = ConsumerKey(id="bench/key", consumer="bench", hashes=(),
                  limits=RateLimits(rpm=10**9, tpm=10**12, monthly_tokens=10**15),
                  model_limits={"gpt-4o": RateLimits(rpm=10**9, tpm=10**12)})
REQUEST = AdmitRequest(KEY, "gpt-4o", "bench/provider", RateLimits(rpm=10**9, tpm=10**12), 500)


async def measure(service: QuotaService, concurrency: int) -> tuple[float, int, int]:
    """(µs per check, checks per second, refusals) of admit+settle for DURATION seconds."""
    done = refused = 0
    end = time.perf_counter() + DURATION

    async def worker() -> None:
        nonlocal done, refused
        while time.perf_counter() < end:
            try:
                reservation = await service.admit(REQUEST)
            except QuotaRejected:  # e.g. the store timed out on a busy host: counted, not hidden
                refused += 1
                continue
            await service.settle(reservation, 300)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return elapsed / max(1, done) * concurrency * 1e6, int(done / elapsed), refused


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise TimeoutError("redis-server did not start")


async def main() -> None:
    proc, url = start_redis()
    try:
        with tempfile.TemporaryDirectory() as state:
            stores = {"memory": make_quota_service("memory", state_dir=state),
                      "redis": make_quota_service(url + "?socket_timeout=1&socket_connect_timeout=1", "closed", 1)}
            rows = []
            for concurrency in (1, 16):
                row = [f"admit+settle, {concurrency} caller{'s' if concurrency > 1 else ''}"]
                for service in stores.values():
                    await measure(service, concurrency)  # warm up: connections, scripts, caches
                    us, rate, refused = await measure(service, concurrency)
                    row += [f"{us:,.0f} µs", f"{rate:,}/s" + (f" ({refused} refused)" if refused else "")]
                rows.append(row)
            for service in stores.values():
                await service.close()
    finally:
        proc.kill()
        proc.wait()
    head = ["quota check (key + model + provider windows, month)", "memory", "", "redis", ""]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("µs per check: latency each caller sees; /s: checks per second of the whole process")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
