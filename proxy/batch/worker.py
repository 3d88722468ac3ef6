"""The batch work this replica does: claim a task, hold its lease while running it, release it.

Tasks: validate an input file (then queue its chunks), run a chunk of lines, finalize (write
the output and error files, set the final status). A replica that stops gives its leases
back; one that dies lets them run out, and another replica claims its tasks then. Lines
already recorded are skipped, so a chunk taken over runs only what was not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from redis.exceptions import RedisError

from lockgate.proxy.batch import lines as fmt
from lockgate.proxy.batch.files import FileDir
from lockgate.proxy.batch.records import FileRecord, new_id
from lockgate.proxy.batch.runner import Outcome, key_entry, run_line
from lockgate.proxy.batch.state import BatchState
from lockgate.proxy.errors import unauthorized
from lockgate.proxy.gateway import Gateway
from lockgate.proxy.settings import BatchSettings

log = logging.getLogger("lockgate.proxy.batch")

POLL_SECONDS = 1.0  # how often an idle replica looks for work queued by others (or leases run out)
RUNNING = ("in_progress", "cancelling")
RESULT_SLICE = 1000  # results read (and written out) at a time when finalizing


class BatchWorker:
    def __init__(self, state: BatchState, files: FileDir, gateway: Gateway, settings: BatchSettings) -> None:
        self.state, self.files, self.gateway, self.settings = state, files, gateway, settings
        self.id = f"{os.getpid()}-{secrets.token_hex(6)}"
        self.lease_ms = int(settings.lease_seconds * 1000)
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._loop(), name=f"batch-worker-{i}") for i in range(self.settings.workers)]

    def wake(self) -> None:
        """Work was queued here: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []

    async def _loop(self) -> None:
        while True:
            try:
                task = await self.state.claim(self.id, self.lease_ms) if self.gateway.snapshot is not None else None
            except (RedisError, OSError) as e:
                log.warning("batch state store unavailable: %s", e)
                task = None
            if task is None:
                await self._idle()
                continue
            try:
                await self._leased(task)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.state.release(task, self.id, give_back=True))
                raise
            except Exception:  # the lease runs out and the task is tried again
                log.exception("batch task %s failed", task)
                continue
            with contextlib.suppress(RedisError, OSError):
                await self.state.release(task, self.id)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        self._wake.clear()

    async def _leased(self, task: str) -> None:
        keeper = asyncio.create_task(self._keep(task))
        try:
            batch_id, _, part = task.rpartition(":")
            if part == "validate":
                await self.validate(batch_id)
            elif part == "final":
                await self.finalize(batch_id)
            else:
                await self.run_chunk(batch_id, int(part))
        finally:
            keeper.cancel()

    async def _keep(self, task: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            with contextlib.suppress(RedisError, OSError):
                if not await self.state.renew(task, self.id, self.lease_ms):
                    log.warning("batch task %s: lease lost to another replica", task)
                    return

    # --- tasks ---------------------------------------------------------------

    async def validate(self, batch_id: str) -> None:
        fields = await self.state.get_batch(batch_id)
        if fields is None:
            return
        now = int(time.time())
        if fields["status"] == "cancelling":
            await self.state.transition(batch_id, ("cancelling",), "cancelled", cancelled_at=now)
            return
        if fields["status"] != "validating":
            return
        if now >= int(fields["expires_at"]):
            await self.state.transition(batch_id, ("validating",), "expired", expired_at=now)
            return
        path = self.files.path(fields["input_file_id"])
        chunk_lines = int(fields["chunk_lines"])
        try:
            found = await asyncio.to_thread(self._validate_file, path, fields["endpoint"], chunk_lines)
        except FileNotFoundError:
            found = fmt.Validation(errors=[{"code": "file_not_found", "message": "The input file no longer exists.",
                                            "param": "input_file_id", "line": None}])
        if found.errors:
            await self.state.transition(batch_id, ("validating",), "failed", failed_at=now,
                                        errors=orjson.dumps(found.errors).decode())
            return
        await self.state.start(batch_id, now, found.total, orjson.dumps(found.offsets).decode(), found.model,
                               len(found.offsets))
        self.wake()

    def _validate_file(self, path: Path, endpoint: str, chunk_lines: int) -> fmt.Validation:
        with path.open("rb") as source:
            return fmt.validate(source, endpoint, chunk_lines=chunk_lines, max_lines=self.settings.max_lines,
                                max_line_bytes=self.gateway.max_body_bytes)

    async def run_chunk(self, batch_id: str, chunk: int) -> None:
        fields = await self.state.get_batch(batch_id)
        if fields is None:
            return
        if fields["status"] == "in_progress":
            await self._run_lines(batch_id, chunk, fields)
        if fields["status"] in RUNNING:
            await self.state.chunk_done(batch_id, chunk)
            self.wake()

    async def _run_lines(self, batch_id: str, chunk: int, fields: dict[str, str]) -> None:
        offsets: list[int] = orjson.loads(fields["offsets"])
        size = int(fields["chunk_lines"])
        first = chunk * size
        try:
            raws = await asyncio.to_thread(_read_chunk, self.files.path(fields["input_file_id"]), offsets[chunk], size)
        except FileNotFoundError:
            raws = []
        todo = set(range(first, first + len(raws))) - await self.state.recorded(batch_id, list(
            range(first, first + len(raws))))
        slots = asyncio.Semaphore(self.settings.line_concurrency)
        stop = asyncio.Event()

        async def one(index: int, raw: bytes) -> None:
            async with slots:
                if stop.is_set():
                    return
                status = (await self.state.get_batch_status(batch_id)) or "gone"
                if status != "in_progress":
                    stop.set()  # cancelled: the remaining lines do not run
                    return
                await self._run_one(batch_id, index, raw, fields)

        async with asyncio.TaskGroup() as group:
            for offset, raw in enumerate(raws):
                if first + offset in todo:
                    group.create_task(one(first + offset, raw))

    async def _run_one(self, batch_id: str, index: int, raw: bytes, fields: dict[str, str]) -> None:
        line = fmt.parse_line(raw, fields["endpoint"])
        deadline = float(fields["expires_at"])
        if time.time() >= deadline:
            await self.state.set_fields(batch_id, expired=1)
            text = fmt.not_run(line.custom_id, "batch_expired",
                               "This request could not be executed before the completion window expired.")
            await self.state.record(batch_id, index, text, False, 0, 0)
            return
        entry = key_entry(self.gateway, fields["key"])
        if entry is None:
            gone = unauthorized("The API key that created this batch no longer exists.")
            outcome = Outcome(gone.status, orjson.dumps(gone.body()), "")
        else:
            outcome = await run_line(self.gateway, entry, fields["host"], fields["endpoint"], line.body, deadline)
        ok = 200 <= outcome.status < 300
        text = fmt.answered(line.custom_id, outcome.status, outcome.request_id, outcome.body)
        await self.state.record(batch_id, index, text, ok, outcome.input_tokens, outcome.output_tokens)

    async def finalize(self, batch_id: str) -> None:
        fields = await self.state.get_batch(batch_id)
        if fields is None or fields["status"] not in RUNNING + ("finalizing",):
            return
        now = int(time.time())
        cancelled = fields["status"] == "cancelling"
        if fields["status"] == "in_progress":
            await self.state.transition(batch_id, ("in_progress",), "finalizing", finalizing_at=now)
        ids = await self._write_outputs(batch_id, fields)
        if cancelled:
            await self.state.transition(batch_id, ("cancelling",), "cancelled", cancelled_at=now, **ids)
        elif fields.get("expired"):
            await self.state.transition(batch_id, ("finalizing",), "expired", expired_at=now, **ids)
        else:
            await self.state.transition(batch_id, ("finalizing",), "completed", completed_at=now, **ids)
        await self.state.drop_work(batch_id)

    async def _write_outputs(self, batch_id: str, fields: dict[str, str]) -> dict[str, str]:
        """The output and error files, a slice of results at a time; the ids of those with lines.
        A finalizing run taken over writes the same files under the same ids."""
        writers = {True: self.files.writer(), False: self.files.writer()}
        try:
            total = int(fields.get("total") or 0)
            for start in range(0, total, RESULT_SLICE):
                results = await self.state.results(batch_id, start, min(RESULT_SLICE, total - start))
                for ok, writer in writers.items():
                    await asyncio.to_thread(writer.write, [text for good, text in results if good == ok])
            ids: dict[str, str] = {}
            now = int(time.time())
            for (ok, writer), (field, suffix) in zip(writers.items(), (("output_file_id", "output"),
                                                                       ("error_file_id", "error"))):
                if not writer.count:
                    continue
                file_id = await self.state.claim_field(batch_id, field, new_id("file-"))
                await asyncio.to_thread(writer.commit, file_id)
                await self.state.put_file(FileRecord(file_id, fields["owner"], writer.size, now,
                                                     f"{batch_id}_{suffix}.jsonl", "batch_output",
                                                     now + int(fields["output_seconds"])))
                ids[field] = file_id
            return ids
        finally:
            for writer in writers.values():
                writer.discard()


def _read_chunk(path: Path, offset: int, count: int) -> list[bytes]:
    with path.open("rb") as source:
        source.seek(offset)
        lines: Iterator[bytes] = iter(source)
        return list(fmt.chunk_lines_from(lines, count))
