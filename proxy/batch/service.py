"""What the Files and Batch endpoints do, for one key at a time.

Every object belongs to the key (its ApiKey id) that made it; another key gets 404 for it, as
for an id that never existed. Limits: an upload's size, the files a key holds, the lines of a
batch (checked when it is validated), the completion windows accepted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from lockgate.api.duration import parse_duration
from lockgate.proxy.batch.files import FileDir, TooLarge
from lockgate.proxy.batch.records import ENDPOINTS, FINAL_STATUSES, FileRecord, batch_object, new_id, page
from lockgate.proxy.batch.state import BatchState
from lockgate.proxy.batch.worker import BatchWorker
from lockgate.proxy.errors import ApiError, bad_request
from lockgate.proxy.gateway import Gateway
from lockgate.proxy.settings import BatchSettings

PURPOSES = ("batch",)
DAY = 86400
MIN_EXPIRY, MAX_EXPIRY = 3600, 30 * DAY  # expires_after.seconds bounds (OpenAI's)
BATCH_KEEP_SECONDS = 30 * DAY  # a batch's record outlives its creation by this long
MAX_METADATA = 16


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, f"No such {kind} object: {object_id[:80]}.", code="not_found", param="id",
                    error_type="not_found")


class BatchService:
    def __init__(self, settings: BatchSettings, gateway: Gateway) -> None:
        assert settings.store and settings.files_dir
        self.settings = settings
        self.state = BatchState(settings.store)
        self.files = FileDir(settings.files_dir)
        self.worker = BatchWorker(self.state, self.files, gateway, settings)

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def close(self) -> None:
        await self.worker.stop()
        await self.state.close()

    # --- files ---------------------------------------------------------------

    async def receive(self, owner: str, content: AsyncIterator[bytes]) -> tuple[str, int]:
        """Stores an upload's content (413 past the cap; 429 when the key holds its most files):
        its new id and size. `register` makes it a file."""
        if await self.state.count_files(owner) >= self.settings.max_files_per_key:
            raise ApiError(429, f"This key holds {self.settings.max_files_per_key} files, the most it may; "
                           "delete some first.", code="too_many_files", error_type="policy_rate_limited")
        file_id = new_id("file-")
        try:
            size = await self.files.write_stream(file_id, content, self.settings.max_file_bytes)
        except TooLarge:
            raise ApiError(413, f"The file is larger than {self.settings.max_file_bytes} bytes.",
                           code="file_too_large", param="file", error_type="payload_too_large") from None
        return file_id, size

    async def register(self, owner: str, file_id: str, size: int, filename: str, purpose: str | None,
                       expires_seconds: int | None) -> dict[str, Any]:
        """The File object of content `receive` stored; with a bad purpose the content is dropped (400)."""
        if purpose not in PURPOSES:
            self.files.remove(file_id)
            raise bad_request(f"Invalid 'purpose': this gateway accepts {', '.join(PURPOSES)}.",
                              code="invalid_value", param="purpose")
        now = int(time.time())
        seconds = expires_seconds if expires_seconds is not None else self.settings.file_days * DAY
        record = FileRecord(file_id, owner, size, now, filename[:255] or "upload.jsonl", purpose, now + seconds)
        await self.state.put_file(record)
        return record.to_openai()

    async def file(self, owner: str, file_id: str) -> FileRecord:
        record = await self.state.get_file(file_id) if _plausible(file_id) else None
        if record is None or record.owner != owner:
            raise not_found("File", file_id)
        if record.expired(time.time()):
            await self._forget(record)
            raise not_found("File", file_id)
        return record

    async def content(self, owner: str, file_id: str) -> Path:
        path = self.files.path((await self.file(owner, file_id)).id)
        if not path.exists():
            raise not_found("File", file_id)
        return path

    async def delete_file(self, owner: str, file_id: str) -> dict[str, Any]:
        await self._forget(await self.file(owner, file_id))
        return {"id": file_id, "object": "file", "deleted": True}

    async def _forget(self, record: FileRecord) -> None:
        await self.state.forget_file(record.owner, record.id)
        self.files.remove(record.id)

    async def list_files(self, owner: str, purpose: str | None, limit: int, order: str,
                         after: str | None) -> dict[str, Any]:
        ids = await self.state.file_ids(owner)
        if order == "asc":
            ids.reverse()
        now = time.time()
        listed: list[FileRecord] = []
        for file_id, record in zip(ids, await self.state.files(ids)):
            if record is None or record.expired(now):
                await self._forget(record or FileRecord(file_id, owner, 0, 0, "", ""))
            elif purpose is None or record.purpose == purpose:
                listed.append(record)
        if after is not None:
            position = next((i for i, r in enumerate(listed) if r.id == after), None)
            listed = listed[position + 1:] if position is not None else []
        return page([r.to_openai() for r in listed[:limit]], len(listed) > limit)

    # --- batches -------------------------------------------------------------

    async def create_batch(self, owner: str, host: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint, window, input_id = body.get("endpoint"), body.get("completion_window"), body.get("input_file_id")
        if not isinstance(input_id, str) or not input_id:
            raise bad_request("Missing required parameter: 'input_file_id'.", "missing_required_parameter",
                              "input_file_id")
        if endpoint not in ENDPOINTS:
            raise bad_request(f"Invalid 'endpoint': one of {', '.join(ENDPOINTS)}.", "invalid_value", "endpoint")
        if window not in self.settings.completion_windows:
            raise bad_request(f"Invalid 'completion_window': one of {', '.join(self.settings.completion_windows)}.",
                              "invalid_value", "completion_window")
        metadata = _metadata(body.get("metadata"))
        output_seconds = _expires_after(body.get("output_expires_after"), "output_expires_after")
        source = await self.file(owner, input_id)
        if source.purpose != "batch":
            raise bad_request("The input file must be uploaded with purpose 'batch'.", "invalid_value",
                              "input_file_id")
        now = int(time.time())
        assert isinstance(endpoint, str) and isinstance(window, str)
        fields = {"id": new_id("batch_"), "owner": owner, "key": owner, "host": host, "endpoint": endpoint,
                  "input_file_id": input_id, "completion_window": window, "status": "validating",
                  "created_at": str(now), "expires_at": str(now + int(parse_duration(window))),
                  "chunk_lines": str(self.settings.chunk_lines),
                  "output_seconds": str(output_seconds or self.settings.file_days * DAY),
                  "metadata": orjson.dumps(metadata).decode() if metadata is not None else ""}
        await self.state.create_batch(fields, owner, BATCH_KEEP_SECONDS)
        self.worker.wake()
        return batch_object(fields)

    async def _batch(self, owner: str, batch_id: str) -> dict[str, str]:
        fields = await self.state.get_batch(batch_id) if _plausible(batch_id) else None
        if fields is None or fields.get("owner") != owner:
            raise not_found("Batch", batch_id)
        return fields

    async def batch(self, owner: str, batch_id: str) -> dict[str, Any]:
        return batch_object(await self._batch(owner, batch_id))

    async def cancel(self, owner: str, batch_id: str) -> dict[str, Any]:
        fields = await self._batch(owner, batch_id)
        if fields["status"] in FINAL_STATUSES or fields["status"] == "finalizing":
            raise ApiError(409, f"Cannot cancel a batch with status '{fields['status']}'.", code="invalid_state",
                           error_type="bad_request")
        await self.state.transition(batch_id, ("validating", "in_progress"), "cancelling",
                                    cancelling_at=int(time.time()))
        self.worker.wake()
        return await self.batch(owner, batch_id)

    async def list_batches(self, owner: str, after: str | None, limit: int) -> dict[str, Any]:
        listed: list[dict[str, Any]] = []
        cursor = after
        while len(listed) <= limit:
            ids = await self.state.batch_ids(owner, cursor, limit + 1 - len(listed))
            if not ids:
                break
            for batch_id in ids:
                fields = await self.state.get_batch(batch_id)
                if fields is None:  # its record expired
                    await self.state.forget_batch(owner, batch_id)
                else:
                    listed.append(batch_object(fields))
            cursor = ids[-1]
        return page(listed[:limit], len(listed) > limit)


def _plausible(object_id: str) -> bool:
    return 0 < len(object_id) <= 64 and object_id.replace("-", "").replace("_", "").isalnum()


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) > MAX_METADATA
            or not all(isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                       for k, v in value.items())):
        raise bad_request("'metadata' takes up to 16 string pairs (keys up to 64, values up to 512 characters).",
                          "invalid_value", "metadata")
    return value


def _expires_after(value: object, param: str) -> int | None:
    """`{"anchor": "created_at", "seconds": N}` with N in OpenAI's bounds; None when not given."""
    if value is None:
        return None
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if (not isinstance(value, dict) or value.get("anchor") != "created_at" or not isinstance(seconds, int)
            or not MIN_EXPIRY <= seconds <= MAX_EXPIRY):
        raise bad_request(f"'{param}' is {{\"anchor\": \"created_at\", \"seconds\": {MIN_EXPIRY}..{MAX_EXPIRY}}}.",
                          "invalid_value", param)
    return seconds


def expires_from_form(anchor: str | None, seconds: str | None) -> int | None:
    """The multipart `expires_after[anchor]` / `expires_after[seconds]` fields of an upload."""
    if anchor is None and seconds is None:
        return None
    try:
        number: object = int(seconds) if seconds is not None else None
    except ValueError:
        number = seconds
    return _expires_after({"anchor": anchor, "seconds": number}, "expires_after")


BATCH: web.AppKey[BatchService] = web.AppKey("lockgate_batch", BatchService)
