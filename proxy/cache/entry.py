"""A stored answer, its bytes in a store, and how it is served again.

An entry keeps the answer in the client's format as it went out: a whole JSON
body, or a stream's SSE events without the usage chunk (kept apart, so a hit
has one when its own request asks for it, whatever the first request asked).
Served again, the answer's id and `created` are new; everything else, the
usage included, is the original's. Encoding: one JSON header line, then the body.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import orjson

from lockgate.proxy.providers.base import DONE as _DONE
from lockgate.proxy.providers.base import Usage, sse

_CREATED = re.compile(rb'"(created|created_at)"(\s*):(\s*)[0-9]+')


@dataclass(slots=True)
class Entry:
    body: bytes  # the whole answer, or the stream's events (the usage chunk left out)
    stream: bool
    answer_id: str  # the original answer's id ("" when it has none: embeddings)
    model: str  # the model that answered, as the client saw it
    input_tokens: int
    output_tokens: int
    usage_chunk: bytes = b""  # the stream's usage event data (chat and completions), b"" if it had none
    created: int = -1  # the one `created` value the answer holds (-1: several, or none found)

    def encode(self) -> bytes:
        head = {"s": self.stream, "i": self.answer_id, "m": self.model, "u": [self.input_tokens, self.output_tokens],
                "c": self.usage_chunk.decode(), "t": self.created}
        return orjson.dumps(head) + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        head_bytes, sep, body = data.partition(b"\n")
        try:
            head = orjson.loads(head_bytes)
            return cls(body, bool(head["s"]), str(head["i"]), str(head["m"]), int(head["u"][0]), int(head["u"][1]),
                       str(head["c"]).encode(), int(head.get("t", -1)))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            return None

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, True)


def whole_entry(answer: bytes, usage: Usage) -> Entry | None:
    """An entry of a whole answer (a JSON object), or None when it is not one."""
    try:
        payload = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or "error" in payload:
        return None
    answer_id = payload.get("id")
    model = payload.get("model")
    return Entry(answer, False, answer_id if isinstance(answer_id, str) else "",
                 model if isinstance(model, str) else "", usage.input_tokens, usage.output_tokens, b"",
                 _created(answer))


def stream_entry(events: bytes, usage: Usage) -> Entry | None:
    """An entry of a finished stream's client events, or None when it did not end cleanly
    (chat and completions end with [DONE]; the Responses API with response.completed)."""
    blocks = [b for b in events.split(b"\n\n") if b.strip()]
    if not blocks:
        return None
    completed = blocks[-1] + b"\n\n" == _DONE or any(b'"response.completed"' in b for b in blocks[-2:])
    if not completed:
        return None
    kept: list[bytes] = []
    usage_chunk = b""
    answer_id = model = ""
    for block in blocks:
        data = _data(block)
        payload = _json(data) if data is not None and data != b"[DONE]" else None
        if isinstance(payload, dict):
            if not answer_id:
                answer_id, model = _id_and_model(payload)
            if payload.get("choices") == [] and isinstance(payload.get("usage"), dict):
                usage_chunk = data or b""
                continue
        kept.append(block + b"\n\n")
    body = b"".join(kept)
    return Entry(body, True, answer_id, model, usage.input_tokens, usage.output_tokens, usage_chunk,
                 _created(body + usage_chunk))


def _created(data: bytes) -> int:
    """The answer's `created` when every occurrence has the same value, as written without spaces."""
    found = {(m.group(2), m.group(3), m.group(0).rsplit(b":", 1)[1].strip()) for m in _CREATED.finditer(data)}
    if len(found) != 1:
        return -1
    space_before, space_after, value = found.pop()
    return int(value) if not space_before and not space_after else -1


def _data(block: bytes) -> bytes | None:
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            return line[5:].strip()
    return None


def _json(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _id_and_model(payload: dict[str, object]) -> tuple[str, str]:
    inner = payload.get("response")
    source = inner if isinstance(inner, dict) else payload
    answer_id, model = source.get("id"), source.get("model")
    return (answer_id if isinstance(answer_id, str) else "", model if isinstance(model, str) else "")


def new_id(old: str) -> str:
    """An id of the same shape (prefix kept: chatcmpl-, cmpl-, resp_) with new random characters."""
    cut = max(old.rfind("-"), old.rfind("_"))
    return old[: cut + 1] + secrets.token_hex(12)


def renewed(data: bytes, old_id: str, created: int = -1, now: int | None = None) -> bytes:
    """`data` with the answer's id and every `created` made new (`created`: the one old value, if known)."""
    if old_id:
        data = data.replace(old_id.encode(), new_id(old_id).encode())
    stamp = str(int(time.time()) if now is None else now).encode()
    if created >= 0:  # the common case: one value, no spaces; plain replaces
        old = str(created).encode()
        return data.replace(b'"created":' + old, b'"created":' + stamp).replace(b'"created_at":' + old,
                                                                               b'"created_at":' + stamp)
    return _CREATED.sub(rb'"\g<1>"\g<2>:\g<3>' + stamp, data)


def served(entry: Entry, wants_usage: bool, op: str) -> bytes:
    """The bytes a hit answers with: the whole answer, or the stream's events with the usage chunk when asked."""
    if not entry.stream:
        return renewed(entry.body, entry.answer_id, entry.created)
    body = entry.body
    if wants_usage and op in ("chat", "completions"):
        chunk = entry.usage_chunk or _usage_chunk(entry, op)
        done = body.rfind(_DONE)
        event = sse(chunk)
        body = body[:done] + event + body[done:] if done >= 0 else body + event
    return renewed(body, entry.answer_id, entry.created)


def _usage_chunk(entry: Entry, op: str) -> bytes:
    obj = "chat.completion.chunk" if op == "chat" else "text_completion"
    return orjson.dumps({"id": entry.answer_id, "object": obj, "created": max(entry.created, 0), "model": entry.model, "choices": [],
                         "usage": {"prompt_tokens": entry.input_tokens, "completion_tokens": entry.output_tokens,
                                   "total_tokens": entry.input_tokens + entry.output_tokens}})
