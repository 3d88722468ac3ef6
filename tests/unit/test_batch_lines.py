"""The batch line format: checking an input file, finding chunks, writing output lines (pure)."""

from __future__ import annotations

import io

import orjson
import pytest

from lockgate.proxy.batch import lines
from lockgate.proxy.batch.records import FileRecord, batch_object, page

URL = "/v1/chat/completions"


def row(cid: str, **over: object) -> bytes:
    value = {"custom_id": cid, "method": "POST", "url": URL, "body": {"model": "m", "messages": []}, **over}
    return orjson.dumps(value) + b"\n"


def test_chunks_start_at_request_lines_and_skip_blank_ones() -> None:
    data = row("a") + b"\n" + row("b") + row("c") + b"  \n" + row("d") + row("e")
    found = lines.validate(io.BytesIO(data), URL, chunk_lines=2, max_lines=10, max_line_bytes=1000)
    assert found.errors == [] and found.total == 5 and found.model == "m"
    assert len(found.offsets) == 3
    for chunk, expected in enumerate((["a", "b"], ["c", "d"], ["e"])):
        source = io.BytesIO(data)
        source.seek(found.offsets[chunk])
        taken = list(lines.chunk_lines_from(iter(source), 2))
        assert [lines.parse_line(t, URL).custom_id for t in taken] == expected


@pytest.mark.parametrize(("raw", "code", "param"), [
    (b"{", "invalid_json_line", None),
    (b"[1]", "invalid_json_line", None),
    (row("")[:-1], "missing_required_parameter", "custom_id"),
    (row("a", method="GET"), "invalid_method", "method"),
    (row("a", url="/v1/embeddings"), "mismatched_endpoint", "url"),
    (row("a", body=[]), "missing_required_parameter", "body"),
    (row("a", body={"messages": []}), "missing_required_parameter", "body.model"),
    (row("a", body={"model": "m", "stream": True}), "invalid_value", "body.stream"),
])
def test_bad_lines_say_what_is_wrong(raw: bytes, code: str, param: str | None) -> None:
    with pytest.raises(lines.LineError) as error:
        lines.parse_line(raw, URL)
    assert (error.value.code, error.value.param) == (code, param)


def test_file_level_problems_carry_line_numbers_and_are_capped() -> None:
    found = lines.validate(io.BytesIO(row("a") + row("a") + b"x" * 50 + b"\n"), URL, chunk_lines=5, max_lines=10,
                           max_line_bytes=40)
    assert [(e["code"], e["line"]) for e in found.errors] == [
        ("line_too_large", 1), ("line_too_large", 2), ("line_too_large", 3)]
    many = lines.validate(io.BytesIO(b"".join(row(str(i)) for i in range(5))), URL, chunk_lines=5, max_lines=3,
                          max_line_bytes=1000)
    assert many.errors[-1]["code"] == "too_many_requests" and many.errors[-1]["line"] == 4
    junk = lines.validate(io.BytesIO(b"{\n" * 500), URL, chunk_lines=5, max_lines=1000, max_line_bytes=1000)
    assert len(junk.errors) == lines.MAX_LISTED_ERRORS
    assert lines.validate(io.BytesIO(b"\n\n"), URL, chunk_lines=5, max_lines=10,
                          max_line_bytes=100).errors[0]["code"] == "empty_file"


def test_output_and_error_lines_have_openais_shape() -> None:
    ok = orjson.loads(lines.answered("c1", 200, "rid", b'{"x": 1}'))
    assert ok["id"].startswith("batch_req_") and ok["custom_id"] == "c1" and ok["error"] is None
    assert ok["response"] == {"status_code": 200, "request_id": "rid", "body": {"x": 1}}
    assert orjson.loads(lines.answered("c", 502, "r", b"<html>"))["response"]["body"] == "<html>"
    never = orjson.loads(lines.not_run("c2", "batch_expired", "too late"))
    assert never["response"] is None and never["error"] == {"code": "batch_expired", "message": "too late"}


def test_objects_and_pages() -> None:
    record = FileRecord("file-1", "ns/k", 10, 5, "in.jsonl", "batch", 99)
    assert FileRecord.from_json(record.to_json()) == record
    assert record.to_openai()["bytes"] == 10 and record.expired(99) and not record.expired(98)
    fields = {"id": "batch_1", "endpoint": URL, "input_file_id": "file-1", "completion_window": "24h",
              "status": "in_progress", "created_at": "5", "expires_at": "86405", "total": "3", "completed": "1",
              "input_tokens": "7", "output_tokens": "2", "metadata": '{"a": "b"}'}
    obj = batch_object(fields)
    assert obj["request_counts"] == {"total": 3, "completed": 1, "failed": 0}
    assert obj["usage"]["total_tokens"] == 9 and obj["metadata"] == {"a": "b"} and obj["errors"] is None
    assert obj["output_file_id"] is None and obj["in_progress_at"] is None
    assert page([], False) == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
