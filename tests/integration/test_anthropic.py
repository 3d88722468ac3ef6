"""Anthropic providers: OpenAI clients translated to the Messages API, and Anthropic SDK clients passed through."""

from __future__ import annotations

import anthropic
import openai

from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action


async def test_openai_chat_is_translated_to_messages_and_back(upstream, gateway) -> None:
    fake = await upstream("anthropic", text="Bonjour le monde")
    server = await gateway(snapshot([provider("ns/claude", "anthropic", fake.url, [("claude", "claude-sonnet-4-5")])]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    answer = await client.chat.completions.create(model="claude", max_tokens=50, messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ])
    assert answer.choices[0].message.content == "Bonjour le monde"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    sent = fake.received[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "secret-of-ns/claude"
    assert sent.headers["anthropic-version"]
    assert sent.body["model"] == "claude-sonnet-4-5"
    assert sent.body["system"] == "Be brief."
    assert sent.body["max_tokens"] == 50
    assert sent.body["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


async def test_openai_tool_calls_through_anthropic(upstream, gateway) -> None:
    fake = await upstream("anthropic")
    fake.then(Action(tool_call={"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}))
    server = await gateway(snapshot([provider("ns/claude", "anthropic", fake.url, [("claude", "claude-x")])]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    answer = await client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Paris?"}],
                                                  tools=tools, tool_choice="required")
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, call.function.arguments) == ("toolu_1", "get_weather", '{"city":"Paris"}')
    sent = fake.received[-1].body
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "any"}


async def test_openai_stream_from_anthropic_events(upstream, gateway) -> None:
    fake = await upstream("anthropic", text="one two three")
    server = await gateway(snapshot([provider("ns/claude", "anthropic", fake.url, [("claude", "claude-x")])]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "count"}],
                                                  stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


async def test_anthropic_sdk_messages_pass_through(upstream, gateway) -> None:
    fake = await upstream("anthropic", text="Hi from Claude")
    server = await gateway(snapshot([provider("ns/claude", "anthropic", fake.url, [("claude", "claude-sonnet-4-5")])]))
    client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{server.port}", api_key=KEY, max_retries=0)
    message = await client.messages.create(model="claude", max_tokens=20,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].text == "Hi from Claude"
    assert fake.received[-1].body["model"] == "claude-sonnet-4-5"
    async with client.messages.stream(model="claude", max_tokens=20,
                                      messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hi from Claude"
    assert final.usage.output_tokens == 7
    bad = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{server.port}", api_key="wrong", max_retries=0)
    try:
        await bad.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected 401")
    except anthropic.AuthenticationError:
        pass
