"""Upstream answers that are not what their content type says: a 502 in the
client's error format, counted as an upstream failure (failover, ejection).

The lying upstream is a raw-socket server on loopback (tests/rawhttp.py).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from lockgate.api import ir
from tests.gatewayconfig import KEY, provider, snapshot
from tests.rawhttp import RawRequest, RawServer, answer

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"Authorization": f"Bearer {KEY}"}


def replying(data: bytes):  # type: ignore[no-untyped-def]
    async def handle(_: RawRequest, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return True

    return handle


def _openai_error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code"}, body
    assert response.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


JSON = "Content-Type: application/json\r\n"
SSE = "Content-Type: text/event-stream\r\n"
LIES = {
    "json that does not parse": (answer(b'{"id": "x", "choices": [', headers=JSON), False),
    "html said to be json": (answer(b"<html><body>portal</body></html>", headers=JSON), False),
    "a json array": (answer(b"[1, 2]", headers=JSON), False),
    "sse that is not sse": (answer(b"<html>\n\n<body>oops</body>\n\n</html>\n\n", headers=SSE), True),
    "sse with a non-json event": (answer(b"data: <html>\n\ndata: [DONE]\n\n", headers=SSE), True),
}


@pytest.mark.parametrize("lie", sorted(LIES))
async def test_a_lying_answer_is_a_502_and_an_outlier_failure(lie: str, gateway) -> None:  # type: ignore[no-untyped-def]
    data, stream = LIES[lie]
    async with RawServer(replying(data)) as raw:
        server = await gateway(snapshot([provider("ns/liar", "openai", raw.url + "/v1",
                                                  outlier_detection=ir.OutlierDetection(consecutive_failures=1))]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=AUTH) as client:
            response = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert response.status_code == 502, response.text
            assert _openai_error(response)["code"] == "upstream_error"
            assert len(raw.requests) == 1
            # Counted as a failure: the provider is ejected, so the next request does not reach it.
            again = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert again.status_code == 503 and _openai_error(again)["code"] == "no_upstream_available"
            assert len(raw.requests) == 1
        metrics = (await httpx.AsyncClient().get(f"http://127.0.0.1:{server.admin_port}/metrics")).text
        assert any('error_type="upstream_error"' in line and 'status_code="502"' in line
                   for line in metrics.splitlines() if line.startswith("lockgate_requests_total"))


async def test_a_lying_answer_fails_over_to_the_next_provider(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    honest = await upstream("openai", text="honest")
    async with RawServer(replying(answer(b"not json", headers=JSON))) as raw:
        server = await gateway(snapshot([provider("ns/liar", "openai", raw.url + "/v1"),
                                         provider("ns/honest", "openai", honest.url, priority=1)]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=AUTH) as client:
            response = await client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == "honest"
            assert len(raw.requests) == 1


async def test_an_upstream_error_that_is_not_json_reaches_the_client_in_its_format(gateway) -> None:  # type: ignore[no-untyped-def]
    page = answer(b"<html>Bad Request</html>", status="400 Bad Request", headers="Content-Type: text/html\r\n")
    async with RawServer(replying(page)) as raw:
        server = await gateway(snapshot([
            provider("ns/liar", "openai", raw.url + "/v1"),
            provider("ns/claude", "anthropic", raw.url, [("claude", "claude-up")]),
        ]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=AUTH) as client:
            response = await client.post("/v1/chat/completions", json=CHAT)
            assert response.status_code == 400
            assert _openai_error(response)["type"] == "api_error"
            messages = await client.post("/v1/messages", json={"model": "claude", "max_tokens": 5,
                                                               "messages": [{"role": "user", "content": "hi"}]})
            assert messages.status_code == 400
            body = messages.json()
            assert body["type"] == "error" and body["error"]["type"] == "api_error", body


async def test_a_model_tool_whose_stream_turns_to_garbage_is_a_tool_error() -> None:
    from lockgate.api.ir import McpServer, ModelTool
    from tests.integration.mcp_fixtures.harness import gateway, key, llm_provider, mcp_client, snapshot, text_of

    events = (b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n', b"data: {broken\n\n")
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n")
    async with RawServer(replying(chunked)) as raw:
        server = McpServer(id="team/llm", name="llm", path="/llm", kind="modelTools",
                           model_tools=(ModelTool(model="tiny", tool_name="ask"),))
        snap = snapshot([server], [key("full", ("team/llm",))], providers=(llm_provider(raw.url + "/v1"),))
        async with gateway(snap) as base, mcp_client(f"{base}/llm/mcp", "sk-full") as client:
            result = await client.call_tool("ask", {"prompt": "hi"})
    assert result.is_error and "upstream" in text_of(result).lower(), result
