from __future__ import annotations

import json

from lockgate.proxy.providers.anthropic import MessagesPassthrough, MessagesToChunks
from lockgate.proxy.sse import SSESplitter
from lockgate.proxy.providers.openai import OpenAIStream


def _chunk(delta: dict, usage: dict | None = None, choices: bool = True) -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if choices else []}
    if usage is not None:
        payload["usage"] = usage
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _events(data: bytes) -> list[dict]:
    return [json.loads(e[6:]) for e in data.split(b"\n\n") if e.startswith(b"data: {")]


def test_splitter_handles_events_across_reads_and_crlf() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: a\n") == []
    assert splitter.feed(b"\ndata: b\r\n\r\ndata: c") == [b"data: a", b"data: b"]
    assert splitter.pending and splitter.rest() == b"data: c"


def test_a_crlf_split_across_reads_ends_one_line_only() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\ndata: b\r\n\r") == []
    assert splitter.feed(b"\n") == [b"data: a\ndata: b"]


def test_whole_reads_pass_untouched_and_usage_is_read() -> None:
    stream = OpenAIStream(client_wants_usage=True, reasoning="keep", tags=("<think>", "</think>"))
    read = _chunk({"content": "Hi"}) + _chunk({"content": "!"})
    assert stream.feed_bytes(read) is read
    usage = _chunk({}, {"prompt_tokens": 3, "completion_tokens": 2}, choices=False)
    assert stream.feed_bytes(usage + b"data: [DONE]\n\n") == usage + b"data: [DONE]\n\n"
    assert (stream.usage.input_tokens, stream.usage.output_tokens, stream.usage.reported) == (3, 2, True)


def test_injected_usage_chunk_is_dropped_even_when_split_across_reads() -> None:
    stream = OpenAIStream(client_wants_usage=False, reasoning="keep", tags=("<think>", "</think>"))
    usage = _chunk({}, {"prompt_tokens": 3, "completion_tokens": 2}, choices=False)
    out = stream.feed_bytes(_chunk({"content": "a"}) + usage[:20]) + stream.feed_bytes(usage[20:] + b"data: [DONE]\n\n")
    out += stream.end()
    assert [e["choices"][0]["delta"] for e in _events(out)] == [{"content": "a"}]
    assert out.endswith(b"data: [DONE]\n\n")
    assert stream.usage.output_tokens == 2


def test_reasoning_split_in_chunks_and_remainder_flushed_before_done() -> None:
    stream = OpenAIStream(client_wants_usage=True, reasoning="separate", tags=("<think>", "</think>"))
    out = b"".join(stream.feed_bytes(_chunk({"content": p})) for p in ["<th", "ink>why</thi", "nk>ans", "wer <"])
    out += stream.feed_bytes(b"data: [DONE]\n\n") + stream.end()
    events = _events(out)
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    reasoning = "".join(e["choices"][0]["delta"].get("reasoning_content", "") for e in events)
    assert (content, reasoning) == ("answer <", "why")
    assert out.endswith(b"data: [DONE]\n\n")


def test_anthropic_events_to_openai_chunks_and_passthrough_usage() -> None:
    def event(name: str, payload: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()

    stream = [event("message_start", {"message": {"id": "m", "usage": {"input_tokens": 4, "output_tokens": 1}}}),
              event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hey"}}),
              event("message_delta", {"delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}}),
              event("message_stop", {})]
    chunks = MessagesToChunks("claude", client_wants_usage=True)
    out = b"".join(chunks.feed_bytes(e) for e in stream) + chunks.end()
    events = _events(out)
    assert events[1]["choices"][0]["delta"] == {"content": "Hey"}
    assert events[2]["choices"][0]["finish_reason"] == "length"
    assert events[3]["usage"]["completion_tokens"] == 9 and out.endswith(b"data: [DONE]\n\n")
    passthrough = MessagesPassthrough()
    assert b"".join(passthrough.feed_bytes(e) for e in stream) == b"".join(stream)
    assert (passthrough.usage.input_tokens, passthrough.usage.output_tokens) == (4, 9)
