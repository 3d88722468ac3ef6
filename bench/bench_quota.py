"""Cost of a quota check per request (admit + settle), memory store vs Redis store.

1. CPU time of the memory store's check in steady state: the bench_proxy
   configuration (a key with rpm, tpm and a monthly budget; a provider model
   with rpm and tpm), its window full of a minute's requests at 5,000 per
   second and pruning as it goes, the x-ratelimit-* headers copied into a
   response's as the data plane does. `--against REF` measures the quota code
   of git revision REF in the same process, in interleaved rounds, so the two
   are compared under the same load; an admit-everything service shows the
   floor (what calling any quota service costs).
2. Wall-clock latency and throughput of the memory store and of a Redis store
   (its own redis-server on a free loopback port, no persistence), with one and
   with sixteen concurrent callers.

    .venv/bin/python bench/bench_quota.py [--against main] [--skip-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import importlib.util
import io
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService, make_quota_service

DURATION = 1.5  # seconds per wall-clock measurement
KEY = ConsumerKey(id="bench/key", consumer="bench", hashes=(),
                  limits=RateLimits(rpm=10**9, tpm=10**12, monthly_tokens=10**15),
                  model_limits={"gpt-4o": RateLimits(rpm=10**9, tpm=10**12)})
REQUEST = AdmitRequest(KEY, "gpt-4o", "bench/provider", RateLimits(rpm=10**9, tpm=10**12), 500)
# As bench/bench_proxy.py configures Lockgate: no per-model limits.
PROXY_KEY = ConsumerKey(id="bench/key", consumer="bench", hashes=(), models=("gpt-*",),
                        limits=RateLimits(rpm=10**9, tpm=10**12, monthly_tokens=10**15))
PROVIDER_LIMITS = RateLimits(rpm=10**9, tpm=10**12)
RATE = 5_000  # requests per second the memory store's clock advances by, one check after the other
WINDOW = 60.0
CHECKS = 50_000  # per CPU round
ROUNDS = 7
PACKAGE = "lockgate.proxy.quota"


# --- CPU time of the memory store, this tree against another revision ------------------

class StepClock:
    """A monotonic clock that advances one request's share of RATE per reading: the memory store
    reads it once per admission, so its windows see RATE requests per second."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1 / RATE
        return self.now


def quota_at(ref: str) -> dict[str, ModuleType]:
    """The quota package's modules as of git `ref`, imported next to this tree's (which stay in place)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", ref, "proxy/quota"], check=True,
                             capture_output=True).stdout
    where = Path(tempfile.mkdtemp(prefix="lockgate-quota-")) / "quota"
    atexit.register(shutil.rmtree, where.parent, ignore_errors=True)  # kept until then: tracebacks read it
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where.parent, filter="data")
    (where.parent / "proxy" / "quota").rename(where)

    def ours() -> dict[str, ModuleType]:
        return {name: m for name, m in sys.modules.items() if name == PACKAGE or name.startswith(PACKAGE + ".")}

    current = ours()
    parent = sys.modules["lockgate.proxy"]
    for name in current:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(PACKAGE, where / "__init__.py",
                                                      submodule_search_locations=[str(where)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
        spec.loader.exec_module(package)
        for sub in ("service", "memory_store"):  # imported now: their functions' own imports would find ours
            importlib.import_module(f"{PACKAGE}.{sub}")
        theirs = ours()
    finally:
        for name in ours():
            del sys.modules[name]
        sys.modules.update(current)
        parent.quota = current[PACKAGE]  # type: ignore[attr-defined]
    return theirs


def memory_service(modules: dict[str, ModuleType], state_dir: str) -> Any:
    store = modules[f"{PACKAGE}.memory_store"].MemoryStore(WINDOW, state_dir, clock=StepClock())
    return modules[f"{PACKAGE}.service"].StoreQuotaService(store, "memory", WINDOW)


async def cpu_per_check(service: Any, admit_request: type, checks: int) -> float:
    """CPU µs per admit + header copy + settle, as the data plane makes them."""
    admit, settle = service.admit, service.settle
    started = time.process_time()
    for _ in range(checks):
        reservation = await admit(admit_request(PROXY_KEY, "gpt-4o", "bench/openai", PROVIDER_LIMITS, 500))
        headers = {"x-request-id": "0123456789abcdef"}
        if reservation.headers:
            headers.update(reservation.headers)
        await settle(reservation, 300)
    return (time.process_time() - started) / checks * 1e6


async def cpu_table(against: str | None) -> None:
    parties: dict[str, tuple[Any, type]] = {}
    with tempfile.TemporaryDirectory() as state:
        this = {name: importlib.import_module(name) for name in (PACKAGE, f"{PACKAGE}.service",
                                                                   f"{PACKAGE}.memory_store")}
        parties["this tree"] = (memory_service(this, state + "/this"), AdmitRequest)
        if against:
            theirs = quota_at(against)
            parties[against] = (memory_service(theirs, state + "/theirs"), theirs[PACKAGE].AdmitRequest)
        unlimited = this[PACKAGE].UnlimitedQuota()
        parties["admit-everything"] = (unlimited, AdmitRequest)
        for service, request in parties.values():  # fill the window: a minute of requests
            await cpu_per_check(service, request, int(WINDOW * RATE) + 1000)
        samples: dict[str, list[float]] = {name: [] for name in parties}
        for _ in range(ROUNDS):
            for name, (service, request) in parties.items():
                samples[name].append(await cpu_per_check(service, request, CHECKS))
        for service, _ in parties.values():
            await service.close()
    floor = statistics.median(samples["admit-everything"])
    print(f"CPU per request in the memory store (key rpm+tpm+month, provider rpm+tpm; a full {WINDOW:g} s window "
          f"at {RATE:,}/s; median of {ROUNDS} interleaved rounds of {CHECKS:,})")
    for name, values in samples.items():
        median = statistics.median(values)
        extra = "" if name == "admit-everything" else f"   quota work {median - floor:5.2f} µs"
        print(f"  {name:<18} {median:6.2f} µs/request{extra}")


# --- wall clock, memory against Redis ----------------------------------------------------

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


async def latency_table() -> None:
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", metavar="REF", help="also measure the quota code of this git revision")
    parser.add_argument("--skip-redis", action="store_true", help="only the memory store's CPU time")
    args = parser.parse_args()
    await cpu_table(args.against)
    if not args.skip_redis:
        print()
        await latency_table()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
