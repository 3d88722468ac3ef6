"""`--workers N`: N serving processes behind one port, one configuration source, one admin port.

The supervisor (the process started) forks the workers before it starts its
event loop. Each worker binds the public port with SO_REUSEPORT, so the
kernel spreads connections between them, and serves its admin app on a unix
socket. The supervisor alone runs the configuration source: each snapshot is
pickled once (off its event loop) and sent to every worker over a pipe, and a
worker unpickles and compiles it off its own loop. The supervisor serves the
admin port: /metrics merges the workers' (each sample labelled with its
`worker`), /readyz is ready when every worker is, /healthz when every worker
is alive, /config and /usage come from the first worker.

Quotas: the workers count like replicas. With a shared store (Redis) that
changes nothing: every worker reserves in it, so limits stay exact. With the
memory store each worker enforces its share (limit / (workers x replicas)).
A worker that dies stops the supervisor (and so the pod, which Kubernetes
restarts); SIGTERM is passed on to every worker, which drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import signal
import struct
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from lockgate.proxy.settings import ProxySettings
from lockgate.proxy.source import ConfigSource, Snapshot

log = logging.getLogger("lockgate.workers")

FRAME = struct.Struct("!Q")  # length prefix of a pickled snapshot on a worker's pipe
ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=5)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup CPU limit (a pod's)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def resolve_workers(requested: str, quota_store: str) -> int:
    """`auto`: the usable CPUs when quotas live in a shared store; 1 with the memory store, whose
    limits N workers would split N ways. A number is taken as given."""
    if requested != "auto":
        value = int(requested)
        if value < 1:
            raise ValueError(f"--workers must be at least 1, not {value}")
        return value
    return 1 if quota_store == "memory" else usable_cpus()


class PipeSource:
    """A worker's configuration source: the snapshots the supervisor sends over a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def updates(self) -> AsyncIterator[Snapshot]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**32)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(self.fd, "rb"))
        while True:
            try:
                (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                data = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                # The supervisor is gone (killed, or stopping): a worker never serves on alone, orphaned;
                # SIGTERM runs this worker's own drain.
                log.warning("the supervisor closed the configuration pipe: stopping")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            snapshot = await asyncio.to_thread(pickle.loads, data)
            yield snapshot


def worker_settings(settings: ProxySettings, index: int, count: int, admin_path: str) -> ProxySettings:
    state_dir = str(Path(settings.state_dir) / f"worker-{index}") if settings.state_dir and count > 1 else \
        settings.state_dir
    return replace(settings, workers=1, reuse_port=True, admin_path=admin_path, state_dir=state_dir,
                   replicas_hint=settings.replicas_hint * count)


def _worker(index: int, count: int, fd: int, settings: ProxySettings, admin_path: str) -> None:
    from lockgate.proxy.server import run

    run(PipeSource(fd), worker_settings(settings, index, count, admin_path))


class Supervisor:
    def __init__(self, source: ConfigSource, settings: ProxySettings, count: int) -> None:
        self.source = source
        self.settings = settings
        self.count = count
        self.dir = tempfile.mkdtemp(prefix="lockgate-workers-")
        self.admin_paths = [os.path.join(self.dir, f"admin-{i}.sock") for i in range(count)]
        self.pids: list[int] = []
        self.pipes: list[int] = []

    def fork(self) -> None:
        """Start the workers; call before any event loop runs in this process."""
        for i in range(self.count):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(write)
                for fd in self.pipes:
                    os.close(fd)
                code = 0
                try:
                    _worker(i, self.count, read, self.settings, self.admin_paths[i])
                except BaseException:
                    log.exception("worker %d failed", i)
                    code = 1
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            os.close(read)
            self.pids.append(pid)
            self.pipes.append(write)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        died: asyncio.Future[tuple[int, int]] = loop.create_future()
        watcher = asyncio.create_task(self._watch_children(died))
        feeder = asyncio.create_task(self._feed())
        runner = web.AppRunner(self._admin_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.settings.host, self.settings.admin_port, reuse_address=True).start()
        log.info("%d workers serving on %s:%d, admin on %s:%d", self.count, self.settings.host, self.settings.port,
                 self.settings.host, self.settings.admin_port)
        stopping = asyncio.create_task(stop.wait())
        either: list[asyncio.Future[Any]] = [stopping, died]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if died.done():
            pid, status = died.result()
            log.error("worker %d ended (status %d): stopping", pid, status)
            code = 1
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        await asyncio.to_thread(self._reap, list(self.pids))
        for task in (feeder, watcher, stopping):
            task.cancel()
        await runner.cleanup()
        return code

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        writers = []
        for fd in self.pipes:
            transport, protocol = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(fd, "wb"))
            writers.append(transport)
        async for snapshot in self.source.updates():
            data = await asyncio.to_thread(pickle.dumps, snapshot, pickle.HIGHEST_PROTOCOL)
            for transport in writers:
                transport.write(FRAME.pack(len(data)) + data)

    async def _watch_children(self, died: asyncio.Future[tuple[int, int]]) -> None:
        while True:
            pid, status = await asyncio.to_thread(os.wait)
            if pid in self.pids and not died.done():
                self.pids.remove(pid)
                died.set_result((pid, status))
                return

    @staticmethod
    def _reap(pids: list[int]) -> None:
        """Wait for each worker to end. `pids` is a copy: the watcher may take a worker off
        `self.pids` meanwhile (it reaped it), and a list changed while iterated skips the next one,
        which left a worker still draining a stream behind and ended the pod under it."""
        for pid in pids:
            with contextlib.suppress(ChildProcessError):  # the watcher reaped it: it has ended
                os.waitpid(pid, 0)

    # --- the admin port ---------------------------------------------------

    async def _get(self, index: int, path: str, method: str = "GET") -> tuple[int, bytes, str]:
        connector = aiohttp.UnixConnector(path=self.admin_paths[index])
        async with aiohttp.ClientSession(connector=connector, timeout=ADMIN_TIMEOUT) as session:
            async with session.request(method, f"http://worker{path}") as response:
                return response.status, await response.read(), response.content_type

    async def _each(self, path: str, method: str = "GET") -> list[tuple[int, bytes, str]]:
        async def one(i: int) -> tuple[int, bytes, str]:
            try:
                return await self._get(i, path, method)
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError):
                return 503, b"", "text/plain"

        return list(await asyncio.gather(*(one(i) for i in range(self.count))))

    def _admin_app(self) -> web.Application:
        app = web.Application()

        async def all_of(request: web.Request) -> web.Response:
            # The same answers as one serving process's admin port (the probes and tools read them).
            answers = await self._each(request.path)
            failing = [i for i, (status, _, _) in enumerate(answers) if status != 200]
            if failing:
                return web.json_response({"status": "not ready" if request.path == "/readyz" else "failing",
                                          "reason": f"workers {failing} are not"}, status=503)
            return web.json_response({"status": "ready" if request.path == "/readyz" else "ok"})

        async def every(request: web.Request) -> web.Response:
            """An action each worker must take (a cache purge: each may keep its own store)."""
            answers = await self._each(request.path_qs, request.method)
            status, body, content_type = answers[0]
            if any(s != 200 for s, _, _ in answers):
                status = max(s for s, _, _ in answers)
            return web.Response(status=status, body=body, content_type=content_type)

        async def metrics(_: web.Request) -> web.Response:
            answers = await self._each("/metrics")
            body = merge_expositions((i, text.decode()) for i, (status, text, _) in enumerate(answers) if status == 200)
            return web.Response(body=body, content_type="text/plain", charset="utf-8")

        async def first(request: web.Request) -> web.Response:
            status, body, content_type = await self._get(0, request.path_qs)
            return web.Response(status=status, body=body, content_type=content_type)

        app.router.add_get("/healthz", all_of)
        app.router.add_get("/readyz", all_of)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/config", first)
        app.router.add_get("/usage", first)
        app.router.add_get("/budgets", first)
        app.router.add_post("/cache/purge", every)
        return app


class _Merged:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_expositions(texts: Iterable[tuple[int, str]]) -> bytes:
    """One exposition from the workers': every sample gets a `worker` label, families keep one header."""
    merged: dict[str, Metric] = {}
    for index, text in texts:
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                target.samples.append(sample._replace(labels={**sample.labels, "worker": str(index)}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(merged.values())))  # type: ignore[arg-type]
    return generate_latest(registry)


def serve_workers(source_factory: Callable[[], ConfigSource], settings: ProxySettings) -> int:
    """Fork the workers, then supervise them on this process' own loop until SIGTERM or a worker dies."""
    supervisor = Supervisor(_Deferred(source_factory), settings, settings.workers)
    supervisor.fork()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(supervisor.run())
    return uvloop.run(supervisor.run())


class _Deferred:
    """Makes the source in the supervisor only, once its loop runs (the workers never see it)."""

    def __init__(self, factory: Callable[[], ConfigSource]) -> None:
        self.factory = factory

    def updates(self) -> AsyncIterator[Snapshot]:
        return self.factory().updates()
