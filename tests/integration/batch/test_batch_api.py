"""The Files and Batch API through the official openai SDK, against a real redis-server and a
loopback upstream: lines run through the pipeline, results land in the output and error files."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import openai
import pytest

from lockgate.proxy.settings import BatchSettings
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.batch.batches import chat_lines, jsonl, output_rows, submit, wait_until
from tests.integration.batch.echo_upstream import EchoUpstream
from tests.integration.conftest import StartGateway, base_url

pytestmark = pytest.mark.redis


def _snap(echo: EchoUpstream):  # type: ignore[no-untyped-def]
    return snapshot([provider("ns/local", "openai", echo.url, [("gpt-4o", "gpt-4o")])],
                    [key("ns/team-a", KEY), key("ns/team-b", OTHER_KEY, consumer="team-b")])


async def _clients(gateway: StartGateway, echo: EchoUpstream, settings: BatchSettings
                   ) -> tuple[openai.AsyncOpenAI, openai.AsyncOpenAI, str]:
    server = await gateway(_snap(echo), batch=settings)
    url = base_url(server)
    return openai.AsyncOpenAI(base_url=url, api_key=KEY), openai.AsyncOpenAI(base_url=url, api_key=OTHER_KEY), url


async def test_every_line_answered_in_the_output_file_errors_in_the_error_file(gateway, echo, batch_settings) -> None:
    client, _, _ = await _clients(gateway, echo, batch_settings)
    failing = {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
               "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "fail"}]}}
    unknown_model = {"custom_id": "nomodel", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}}
    data = chat_lines(25) + b"\n" + jsonl([failing, unknown_model])  # a blank line is ignored
    created = await submit(client, data)
    assert created.status == "validating" and created.endpoint == "/v1/chat/completions"
    assert created.expires_at is not None and created.expires_at - created.created_at == 86400
    done = await wait_until(client, created.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (27, 25, 2)
    assert done.usage is not None and (done.usage.input_tokens, done.usage.output_tokens) == (75, 50)
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.model == "gpt-4o"
    rows = await output_rows(client, done.output_file_id)
    assert [r["custom_id"] for r in rows] == [f"line-{i}" for i in range(25)]
    for i, row in enumerate(rows):
        assert row["id"].startswith("batch_req_") and row["error"] is None
        assert row["response"]["status_code"] == 200 and row["response"]["request_id"]
        assert row["response"]["body"]["choices"][0]["message"]["content"] == f"echo: q{i}"
    errors = {r["custom_id"]: r for r in await output_rows(client, done.error_file_id)}
    assert errors["bad"]["response"]["status_code"] == 400
    assert errors["bad"]["response"]["body"]["error"]["code"] == "bad_prompt"
    assert errors["nomodel"]["response"]["status_code"] == 404
    assert errors["nomodel"]["response"]["body"]["error"]["code"] == "model_not_found"
    files = {f.id: f async for f in client.files.list()}
    assert files[done.output_file_id].purpose == "batch_output"  # type: ignore[index]
    assert files[done.error_file_id].purpose == "batch_output"  # type: ignore[index]
    assert files[created.input_file_id].purpose == "batch"
    assert [b.id async for b in client.batches.list()] == [created.id]
    assert echo.total == 25


async def test_a_key_sees_only_its_own_files_and_batches_and_unknown_ids_are_404(gateway, echo,
                                                                                batch_settings) -> None:
    client, other, url = await _clients(gateway, echo, batch_settings)
    created = await submit(client, chat_lines(2))
    done = await wait_until(client, created.id)
    assert done.output_file_id is not None
    calls = [other.files.retrieve(created.input_file_id), other.files.content(done.output_file_id),
             other.files.delete(created.input_file_id), other.batches.retrieve(created.id),
             other.batches.cancel(created.id), client.files.retrieve("file-nothere"),
             client.batches.retrieve("batch_nothere"), client.batches.cancel("batch_nothere"),
             other.batches.create(input_file_id=created.input_file_id, endpoint="/v1/chat/completions",
                                  completion_window="24h")]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as refused:
            await call
        assert refused.value.status_code == 404
    assert [f async for f in other.files.list()] == [] and [b async for b in other.batches.list()] == []
    async with aiohttp.ClientSession() as session:
        for path in ("/files/file-nothere", "/batches/batch_nothere", "/files/..%2F..%2Fetc%2Fpasswd/content",
                     "/files/file-nothere/content"):
            async with session.get(url + path, headers={"Authorization": f"Bearer {KEY}"}) as response:
                assert response.status == 404, path
                assert (await response.json())["error"]["type"] == "invalid_request_error"
        async with session.get(url + "/batches") as response:  # no key
            assert response.status == 401
    deleted = await client.files.delete(created.input_file_id)
    assert deleted.deleted and created.input_file_id not in [f.id async for f in client.files.list()]


async def test_bad_requests_and_invalid_files_get_openai_errors(gateway, echo, batch_settings) -> None:
    client, _, _ = await _clients(gateway, echo, dataclasses.replace(batch_settings, max_file_bytes=4096,
                                                                      max_lines=5))
    upload = await client.files.create(file=("in.jsonl", chat_lines(2)), purpose="batch")
    for fields, param in (({"endpoint": "/v1/images"}, "endpoint"), ({"completion_window": "1h"}, "completion_window"),
                          ({"metadata": {"k": "v" * 600}}, "metadata")):
        args = {"input_file_id": upload.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **fields}
        with pytest.raises(openai.BadRequestError) as refused:
            await client.batches.create(**args)  # type: ignore[arg-type]
        assert refused.value.param == param  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError):
        await client.files.create(file=("in.jsonl", b"{}"), purpose="fine-tune")
    with pytest.raises(openai.APIStatusError) as large:
        await client.files.create(file=("in.jsonl", b"x" * 5000), purpose="batch")
    assert large.value.status_code == 413
    assert len([f async for f in client.files.list()]) == 1  # neither refused upload was kept
    broken = b"not json\n" + jsonl([
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}},
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}},
        {"custom_id": "b", "method": "GET", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}},
        {"custom_id": "c", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gpt-4o"}}])
    failed = await wait_until(client, (await submit(client, broken)).id)
    assert failed.status == "failed" and failed.failed_at and failed.errors and failed.errors.data
    assert [(e.code, e.line) for e in failed.errors.data] == [
        ("invalid_json_line", 1), ("duplicate_custom_id", 3), ("invalid_method", 4), ("mismatched_endpoint", 5)]
    too_many = await wait_until(client, (await submit(client, chat_lines(6))).id)
    assert too_many.status == "failed" and too_many.errors and too_many.errors.data
    assert too_many.errors.data[0].code == "too_many_requests"
    assert echo.total == 0


async def test_cancel_stops_the_remaining_lines(gateway, echo, batch_settings) -> None:
    client, _, _ = await _clients(gateway, echo, batch_settings)
    echo.gate = asyncio.Event()
    created = await submit(client, chat_lines(200))
    await asyncio.wait_for(echo.arrived.wait(), 20)
    cancelling = await client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    echo.gate.set()
    done = await wait_until(client, created.id)
    assert done.status == "cancelled" and done.cancelled_at
    ran = echo.total
    limit = batch_settings.workers * batch_settings.line_concurrency  # at most what was in flight
    assert 0 < ran <= limit
    assert done.request_counts is not None and done.request_counts.completed == ran
    assert len(await output_rows(client, done.output_file_id)) == ran
    with pytest.raises(openai.APIStatusError) as again:
        await client.batches.cancel(created.id)
    assert again.value.status_code == 409
    assert echo.total == ran  # nothing ran after the end


async def test_lines_not_run_by_the_deadline_expire_into_the_error_file(gateway, echo, batch_settings) -> None:
    client, _, _ = await _clients(gateway, echo, batch_settings)
    echo.gate = asyncio.Event()
    created = await submit(client, chat_lines(40), window="2s")
    await asyncio.wait_for(echo.arrived.wait(), 20)
    assert created.expires_at is not None
    await asyncio.sleep(max(0.0, created.expires_at + 1 - time.time()))  # the clock passes the deadline
    echo.gate.set()
    done = await wait_until(client, created.id)
    assert done.status == "expired" and done.expired_at and done.request_counts is not None
    ran = echo.total
    assert 0 < ran < 40 and done.request_counts.completed == ran and done.request_counts.failed == 40 - ran
    errors = await output_rows(client, done.error_file_id)
    assert len(errors) == 40 - ran
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in errors)
