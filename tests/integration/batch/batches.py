"""Helpers of the batch tests: input files and waiting for a batch's end through the SDK."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import orjson
from openai.types import Batch

FINAL = {"completed", "failed", "expired", "cancelled"}


def chat_lines(count: int, endpoint: str = "/v1/chat/completions", prompt: str = "q{i}") -> bytes:
    rows = [{"custom_id": f"line-{i}", "method": "POST", "url": endpoint,
             "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt.format(i=i)}]}}
            for i in range(count)]
    return jsonl(rows)


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


async def submit(client: openai.AsyncOpenAI, data: bytes, window: str = "24h") -> Batch:
    upload = await client.files.create(file=("input.jsonl", data), purpose="batch")
    return await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                       completion_window=window)  # type: ignore[arg-type]


async def wait_until(client: openai.AsyncOpenAI, batch_id: str, statuses: set[str] = FINAL,
                     timeout: float = 60.0) -> Batch:
    """Polls the batch as a client does, until its status is one of `statuses`."""
    end = time.monotonic() + timeout
    while True:
        batch = await client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < end, f"batch still {batch.status}: {batch.request_counts}"
        await asyncio.sleep(0.05)


async def output_rows(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    content = await client.files.content(file_id)
    return [orjson.loads(line) for line in content.content.splitlines() if line.strip()]
