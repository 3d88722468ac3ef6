"""The development upstream answers the official openai SDK like a real
OpenAI-compatible server would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from lockgate.proxy.dev_upstream import embedding, start


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    runner = await start("127.0.0.1", 0)
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_models_chat_stream_completions_and_embeddings(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    models = [m.id async for m in client.models.list()]
    assert models == ["dev-small", "dev-large", "dev-embed"]

    chat = await client.chat.completions.create(model="dev-small", messages=[{"role": "user", "content": "hello there"}])
    assert chat.choices[0].message.content == "echo: hello there"
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (2, 3)

    capped = await client.chat.completions.create(
        model="dev-small", messages=[{"role": "user", "content": "one two three"}], max_tokens=2
    )
    assert capped.choices[0].message.content == "echo: one" and capped.choices[0].finish_reason == "length"

    stream = await client.chat.completions.create(
        model="dev-large", messages=[{"role": "user", "content": "a b c"}], stream=True, stream_options={"include_usage": True}
    )
    parts, usage = [], None
    async for chunk in stream:
        parts.extend(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert "".join(parts) == "echo: a b c"
    assert usage is not None and usage.total_tokens == 7

    completion = await client.completions.create(model="dev-small", prompt="x y")
    assert completion.choices[0].text == "echo: x y"

    vectors = await client.embeddings.create(model="dev-embed", input=["same", "same", "other"])
    assert vectors.data[0].embedding == vectors.data[1].embedding == embedding("same")
    assert vectors.data[2].embedding != vectors.data[0].embedding

    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="dev-small", messages=[])
    await client.close()
