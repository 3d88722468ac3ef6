"""Model filters (reasoning, params) and chatTemplate routes."""

from __future__ import annotations

import aiohttp
import openai

from lockgate.api import ir
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action

MESSAGES = [{"role": "user", "content": "hi"}]

# The contract's reply-to-en template, as written in 30-routes.yaml.
REPLY_TO_EN = (
    "你的任务：以下给定文本是一个视频的相关文本信息，可能为标题、简介、弹幕或评论，请你将给定的文本逐条翻译成英文。"
    "输入为一个json格式，key为序号，value为待翻译的文本，一共有{{ len(reply_list) }}个文本。\n"
    "注意，用{dyn:xxx}符号包裹的是图片引用，不需要翻译，直接保留。用[xxx]包裹的是表情符号，不需要翻译，直接保留。\n"
    "输出一共{{ len(reply_list) }}个翻译后的结果，直接输出翻译后的英文，不要进行任何解释。\n"
    "输入: {{ jsonify(slice_to_index_map(reply_list, 1)) }}\n"
    "输出:\n"
)


def _qwen(fake, reasoning: str = "separate") -> ir.Provider:  # type: ignore[no-untyped-def]
    return provider("ns/qwen", "openai-compatible", None, [("qwen2.5-72b", "Qwen/Qwen2.5-72B-Instruct")],
                    credential=None, endpoints=[fake.host],
                    compat=ir.Compat(reasoning=reasoning, drop_params=("logit_bias",), default_params={"top_k": 20},
                                     max_tokens_param="max_tokens"))


async def test_reasoning_separated_across_chunk_boundaries(upstream, gateway) -> None:
    fake = await upstream("vllm")
    pieces = ["<thi", "nk>let me", " think</th", "ink>", "The answer", " is 4", "<", "3"]
    fake.then(Action(chunks=pieces), Action(chunks=pieces))
    server = await gateway(snapshot([_qwen(fake)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="qwen2.5-72b", messages=MESSAGES, stream=True,
                                                  max_completion_tokens=30, logit_bias={"1": 1})
    content, reasoning = "", ""
    async for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
    assert (content, reasoning) == ("The answer is 4<3", "let me think")
    sent = fake.received[-1].body
    assert "logit_bias" not in sent and sent["top_k"] == 20
    assert sent["max_tokens"] == 30 and "max_completion_tokens" not in sent
    answer = await client.chat.completions.create(model="qwen2.5-72b", messages=MESSAGES)
    assert answer.choices[0].message.content == "The answer is 4<3"
    assert (answer.choices[0].message.model_extra or {})["reasoning_content"] == "let me think"


async def test_reasoning_stripped(upstream, gateway) -> None:
    fake = await upstream("vllm")
    fake.then(Action(chunks=["<think>hidden", "</think>", "shown"]))
    server = await gateway(snapshot([_qwen(fake, "strip")]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="qwen2.5-72b", messages=MESSAGES, stream=True)
    chunks = [c async for c in stream if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "shown"
    assert not any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks)


def _template_route(response: str = "json") -> ir.Route:
    return ir.Route(id="ns/reply-to-en", type="chatTemplate", hosts=("127.0.0.1",), path="/v1/reply-to-en",
                    timeout=30, chat_template=ir.ChatTemplate(
                        model="qwen2.5-72b", response=response, prompt_template=REPLY_TO_EN,
                        variables={"reply_list": ir.TemplateVariable(type="array", required=True,
                                                                     items=ir.TemplateVariable(type="string"))}))


async def test_chat_template_renders_the_contract_prompt_and_parses_json(upstream, gateway) -> None:
    fake = await upstream("vllm")
    fake.then(Action(text='```json\n{"1": "Hello", "2": "[smile] nice"}\n```'), Action(text="not json at all"))
    snap = snapshot([_qwen(fake, "keep")], [key("ns/search", KEY, routes=("ns/reply-to-en",)),
                                            key("ns/other", OTHER_KEY, routes=())],
                    routes=[_template_route(), ir.Route(id="ns/public", type="openai", hosts=("127.0.0.1",))])
    server = await gateway(snap)
    url = f"http://127.0.0.1:{server.port}/v1/reply-to-en"
    auth = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, headers=auth, json={"reply_list": ["你好", "[微笑] 不错"]}) as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {"1": "Hello", "2": "[smile] nice"}
        prompt = fake.received[-1].body["messages"][0]["content"]
        assert "一共有2个文本" in prompt
        assert '输入: {"1": "你好", "2": "[微笑] 不错"}' in prompt
        async with session.post(url, headers=auth, json={"reply_list": ["x"]}) as response:
            assert response.status == 502
            assert (await response.json())["error"]["code"] == "invalid_model_output"
        async with session.post(url, headers=auth, json={"reply_list": "not a list"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "reply_list"
        async with session.post(url, headers=auth, json={}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["param"] == "reply_list"
        async with session.post(url, headers={"Authorization": f"Bearer {OTHER_KEY}"},
                                json={"reply_list": ["x"]}) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "route_not_allowed"


async def test_chat_template_text_response(upstream, gateway) -> None:
    fake = await upstream("vllm", text="plain answer")
    server = await gateway(snapshot([_qwen(fake, "keep")], routes=[_template_route("text")]))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server.port}/v1/reply-to-en",
                                headers={"Authorization": f"Bearer {KEY}"}, json={"reply_list": ["a"]}) as response:
            assert response.status == 200
            assert await response.text() == "plain answer"
