from __future__ import annotations

from lockgate.proxy.providers.anthropic_translate import (
    StreamToOpenAI,
    error_to_openai,
    request_to_anthropic,
    response_to_openai,
)


def test_request_system_parts_images_tools_and_tool_results() -> None:
    body = {
        "model": "claude", "temperature": 0.2, "stop": "END", "user": "u1", "max_completion_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "42"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    out = request_to_anthropic(body, "claude-sonnet-4-5")
    assert out["model"] == "claude-sonnet-4-5" and out["max_tokens"] == 100
    assert out["system"] == "Be brief.\n\nUse tools."
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u1"}
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "tool", "name": "f"}
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "user"]  # the tool result and the next user turn are merged
    assert out["messages"][0]["content"][1] == {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    assert out["messages"][1]["content"][1] == {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                                             {"type": "text", "text": "Thanks"}]


def test_request_defaults_max_tokens() -> None:
    assert request_to_anthropic({"messages": []}, "m")["max_tokens"] == 4096


def test_response_text_tools_stop_reasons_usage() -> None:
    message = {"id": "msg_1", "content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "Hi"},
                                          {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}}],
               "stop_reason": "tool_use",
               "usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 3}}
    out = response_to_openai(message, "claude")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Hi" and choice["message"]["reasoning_content"] == "hm"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x":1}'}
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert response_to_openai({"content": [], "stop_reason": "max_tokens"}, "m")["choices"][0]["finish_reason"] == "length"


def test_stream_events_to_chunks() -> None:
    t = StreamToOpenAI("claude")
    chunks = []
    for kind, payload in [
        ("message_start", {"message": {"id": "m1", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "He"}}),
        ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
    ]:
        chunks += t.event(kind, payload)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "He"}
    assert deltas[2]["tool_calls"][0]["id"] == "t" and deltas[3]["tool_calls"][0]["function"] == {"arguments": '{"a"'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["id"] == "m1" for c in chunks)
    assert t.usage_chunk()["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}


def test_errors() -> None:
    out = error_to_openai({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    assert out["error"]["type"] == "rate_limit_error" and out["error"]["message"] == "slow down"
    assert error_to_openai("garbage")["error"]["type"] == "api_error"
