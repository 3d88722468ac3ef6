"""What a client sends is checked at the door: request ids, the Server header,
and metric series that no client input can multiply."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from tests.gatewayconfig import KEY, provider, snapshot

def sent_id(fake) -> str:  # type: ignore[no-untyped-def]
    return {k.lower(): v for k, v in fake.received[-1].headers.items()}["x-request-id"]


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def raw_exchange(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte (headers no client library would send); the answer's
    status, headers (lower-case names) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        data = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, data
    finally:
        writer.close()


def chat_head(port: int, body: bytes, extra: bytes) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").encode() + extra + b"\r\n"


async def test_a_request_id_that_is_not_a_short_printable_token_is_replaced(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    body = json.dumps(CHAT).encode()
    for bad in (b"caf\xc3\xa9-\xff\xfe", b"a" * 129, b"two words", b"quote\"d", b""):
        status, headers, data = await raw_exchange(server.port, chat_head(server.port, body, b"x-request-id: " + bad
                                                                          + b"\r\n"), body)
        assert status == 200, data
        assert re.fullmatch(r"[0-9a-f]{24}", headers["x-request-id"]), headers
        assert sent_id(fake) == headers["x-request-id"]
    status, headers, _ = await raw_exchange(server.port, chat_head(server.port, body, b"x-request-id: req-42/a:b\r\n"),
                                            body)
    assert status == 200 and headers["x-request-id"] == "req-42/a:b"
    assert sent_id(fake) == "req-42/a:b"


async def test_a_key_that_is_not_utf8_is_refused_not_a_failure(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    server = await gateway(snapshot([provider("ns/openai", "openai", (await upstream("openai")).url)]))
    for header in (b"x-api-key: \x80", b"Authorization: Bearer caf\xe9", b"api-key: \xff\xfe"):
        status, headers, data = await raw_exchange(
            server.port, f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode() + header + b"\r\n\r\n")
        assert status == 401, data
        assert json.loads(data)["error"]["code"] == "invalid_api_key" and headers["x-request-id"]


async def test_no_answer_names_a_version_and_every_answer_has_a_request_id(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    async with httpx.AsyncClient() as client:
        answers = [
            await client.post(f"http://127.0.0.1:{server.port}/v1/chat/completions", json=CHAT,
                              headers={"Authorization": f"Bearer {KEY}"}),
            await client.get(f"http://127.0.0.1:{server.port}/nowhere"),
            await client.post(f"http://127.0.0.1:{server.port}/some/mcp", json={}),
            await client.get(f"http://127.0.0.1:{server.admin_port}/metrics"),
            await client.get(f"http://127.0.0.1:{server.admin_port}/healthz"),
        ]
    for response in answers:
        assert response.headers["server"] == "lockgate", response.url
        assert response.headers.get("x-request-id"), response.url
    status, headers, _ = await raw_exchange(server.port, b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and headers.get("server") == "lockgate", headers


async def test_made_up_model_names_add_no_series(upstream, gateway) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]), access_log=None)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as client:
        await client.post(f"http://127.0.0.1:{server.port}/v1/chat/completions", json=CHAT)

        async def series() -> list[str]:
            text = (await client.get(f"http://127.0.0.1:{server.admin_port}/metrics")).text
            return [line for line in text.splitlines() if line.startswith("lockgate_requests_total{")]

        before = await series()
        for n in range(60):
            response = await client.post(f"http://127.0.0.1:{server.port}/v1/chat/completions",
                                         json={**CHAT, "model": f"made-up-{n}"})
            assert response.status_code == 404
        after = await series()
    assert len(after) == len(before) + 1, after
    assert not any("made-up" in line for line in after)
    assert any('model="unknown"' in line and " 60.0" in line for line in after), after
