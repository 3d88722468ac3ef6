"""The batch line formats (pure): an input line checked, an output or error line written.

Input, one JSON object a line: `{"custom_id": "...", "method": "POST", "url": "<the batch's
endpoint>", "body": {...}}`; custom_ids unique in the file; blank lines are ignored.
Output: `{"id": "batch_req_...", "custom_id": ..., "response": {"status_code", "request_id",
"body"}, "error": null}`; a 2xx answer goes to the output file, any other to the error file,
and a line that never ran (the batch expired first) has `"response": null` and an `error`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_LISTED_ERRORS = 100  # a failed validation lists this many problems at most


class LineError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class Line:
    custom_id: str
    body: dict[str, Any]


def parse_line(raw: bytes, endpoint: str) -> Line:
    """One input line, or LineError saying what is wrong with it."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("invalid_json_line", "This line is not parseable as valid JSON.") from None
    if not isinstance(value, dict):
        raise LineError("invalid_json_line", "This line is not a JSON object.")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError("missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
    if value.get("method") != "POST":
        raise LineError("invalid_method", "The only supported method is POST.", "method")
    if value.get("url") != endpoint:
        raise LineError("mismatched_endpoint", f"The line's url must be the batch's endpoint, {endpoint}.", "url")
    body = value.get("body")
    if not isinstance(body, dict):
        raise LineError("missing_required_parameter", "Missing required parameter: 'body'.", "body")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise LineError("missing_required_parameter", "Missing required parameter: 'body.model'.", "body.model")
    body.pop("stream_options", None)
    if body.get("stream"):
        raise LineError("invalid_value", "Batch lines cannot stream: 'body.stream' must be false.", "body.stream")
    return Line(custom_id, body)


@dataclass
class Validation:
    """What checking a whole input file found: the requests, where each chunk of them starts, problems."""

    total: int = 0
    offsets: list[int] = field(default_factory=list)  # byte offset of each chunk's first line
    errors: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""  # the model of the first line (the Batch object's `model`)


def validate(lines: Iterable[bytes], endpoint: str, *, chunk_lines: int, max_lines: int,
             max_line_bytes: int) -> Validation:
    """Checks every line of an input file (given with their newlines, as a binary file yields them)."""
    result = Validation()
    seen: set[str] = set()
    offset = 0
    for number, raw in enumerate(lines, 1):
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        if result.total >= max_lines:
            _add(result, "too_many_requests", f"The file has more than {max_lines} requests.", None, number)
            break
        if result.total % chunk_lines == 0:
            result.offsets.append(start)
        result.total += 1
        if len(raw) > max_line_bytes:
            _add(result, "line_too_large", f"The line is larger than {max_line_bytes} bytes.", None, number)
            continue
        try:
            line = parse_line(raw, endpoint)
        except LineError as e:
            _add(result, e.code, e.message, e.param, number)
            continue
        if line.custom_id in seen:
            _add(result, "duplicate_custom_id", f"The custom_id '{line.custom_id[:64]}' appears more than once.",
                 "custom_id", number)
        seen.add(line.custom_id)
        if not result.model:
            result.model = str(line.body["model"])
    if result.total == 0 and not result.errors:
        _add(result, "empty_file", "The input file has no requests.", None, None)
    return result


def _add(result: Validation, code: str, message: str, param: str | None, line: int | None) -> None:
    if len(result.errors) < MAX_LISTED_ERRORS:
        result.errors.append({"code": code, "message": message, "param": param, "line": line})


def chunk_lines_from(lines: Iterator[bytes], count: int) -> Iterator[bytes]:
    """The next `count` requests (blank lines skipped) of a file positioned at a chunk's start."""
    taken = 0
    for raw in lines:
        if taken >= count:
            return
        if raw.strip():
            taken += 1
            yield raw


def request_line_id() -> str:
    return f"batch_req_{secrets.token_hex(12)}"


def answered(custom_id: str, status: int, request_id: str, body: bytes) -> bytes:
    """The output (2xx) or error file line of a request that got an answer."""
    try:
        value: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        value = body.decode("utf-8", "replace")
    return orjson.dumps({"id": request_line_id(), "custom_id": custom_id,
                         "response": {"status_code": status, "request_id": request_id, "body": value},
                         "error": None})


def not_run(custom_id: str, code: str, message: str) -> bytes:
    """The error file line of a request that never ran."""
    return orjson.dumps({"id": request_line_id(), "custom_id": custom_id, "response": None,
                         "error": {"code": code, "message": message}})
