"""Choosing an upstream: tiers, failover, retries, outlier ejection, timeouts."""

from __future__ import annotations

import openai
import pytest

from lockgate.api import ir
from lockgate.proxy.source import Snapshot
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action

MESSAGES = [{"role": "user", "content": "hi"}]


def _client(server) -> openai.AsyncOpenAI:  # type: ignore[no-untyped-def]
    return openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)


async def test_priority_tier_failover_on_5xx_429_and_connect_error(upstream, gateway) -> None:
    primary = await upstream("openai", text="primary")
    azure = await upstream("azure", text="from azure")
    primary.then(Action(status=500), Action(status=429))
    snap = snapshot([
        provider("ns/openai", "openai", primary.url, outlier_detection=ir.OutlierDetection(consecutive_failures=10)),
        provider("ns/azure", "azure-openai", azure.url, [("gpt-4o", "gpt-4o-prod")], priority=1,
                 api_version="2024-10-21"),
        provider("ns/dead", "openai", "http://127.0.0.1:9/v1", priority=2),
    ])
    server = await gateway(snap)
    client = _client(server)
    for _ in range(2):
        answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert answer.choices[0].message.content == "from azure"
    sent = azure.received[-1]
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "secret-of-ns/azure"
    answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "primary"


async def test_retries_with_backoff_on_the_same_provider(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(status=503), Action(status=502))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, retries=2)]))
    answer = await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello there, friend."
    assert len(fake.received) == 3


async def test_client_errors_are_relayed_not_failed_over(upstream, gateway) -> None:
    first = await upstream("openai")
    second = await upstream("openai")
    first.then(Action(status=400))
    server = await gateway(snapshot([provider("ns/a", "openai", first.url),
                                     provider("ns/b", "openai", second.url, priority=1)]))
    with pytest.raises(openai.BadRequestError):
        await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert second.received == []


async def test_outlier_ejection_skips_a_failing_provider_and_honours_retry_after(upstream, gateway) -> None:
    bad = await upstream("openai", text="bad")
    good = await upstream("openai", text="good")
    bad.then(Action(status=500), Action(status=500))
    snap = snapshot([
        provider("ns/bad", "openai", bad.url, outlier_detection=ir.OutlierDetection(consecutive_failures=2,
                                                                                   base_ejection_time=30)),
        provider("ns/good", "openai", good.url, priority=1),
    ])
    server = await gateway(snap)
    client = _client(server)
    for _ in range(2):
        assert (await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)).choices[0].message.content == "good"
    assert len(bad.received) == 2
    for _ in range(3):  # ejected: not even tried, though it would answer now
        assert (await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)).choices[0].message.content == "good"
    assert len(bad.received) == 2
    detector = server.gateway.deps.outliers
    assert detector.is_ejected("ns/bad")


async def test_retry_after_ejects_at_once(upstream, gateway) -> None:
    limited = await upstream("openai", text="limited")
    other = await upstream("openai", text="other")
    limited.then(Action(status=429, retry_after=120))
    server = await gateway(snapshot([provider("ns/limited", "openai", limited.url),
                                     provider("ns/other", "openai", other.url, priority=1)]))
    client = _client(server)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(limited.received) == 1
    until = server.gateway.deps.outliers.ejected_until("ns/limited")
    import time
    assert until - time.monotonic() > 100


async def test_no_upstream_left_and_timeouts(upstream, gateway) -> None:
    slow = await upstream("openai")
    slow.then(Action(hang=True))
    snap = snapshot([provider("ns/slow", "openai", slow.url, timeouts=ir.Timeouts(connect=1, first_token=0.3,
                                                                                 request=5))])
    server = await gateway(snap)
    with pytest.raises(openai.APIStatusError) as timed_out:
        await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert timed_out.value.status_code == 504
    assert timed_out.value.code == "upstream_timeout"
    failing = await upstream("openai")
    failing.then(*[Action(status=500)] * 3)
    server = await gateway(snapshot([provider("ns/f", "openai", failing.url)]))
    with pytest.raises(openai.APIStatusError) as exhausted:
        await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exhausted.value.status_code == 502


async def test_stream_fails_over_before_the_first_byte(upstream, gateway) -> None:
    broken = await upstream("openai")
    fine = await upstream("openai", text="fine stream")
    broken.then(Action(chunks=["never"], break_after=0))
    server = await gateway(snapshot([provider("ns/broken", "openai", broken.url),
                                     provider("ns/fine", "openai", fine.url, priority=1)]))
    stream = await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "fine stream"


async def test_self_hosted_endpoints_are_balanced_and_ejected(upstream, gateway) -> None:
    fakes = [await upstream("vllm", text=f"pod {i}") for i in range(3)]
    fakes[2].then(*[Action(status=500)] * 10)
    snap = snapshot([provider("ns/qwen", "openai-compatible", None, [("qwen", "Qwen/Qwen2.5")], credential=None,
                              endpoints=[f.host for f in fakes], retries=1,
                              outlier_detection=ir.OutlierDetection(consecutive_failures=1, base_ejection_time=60))])
    server = await gateway(snap)
    client = _client(server)
    answers = [(await client.chat.completions.create(model="qwen", messages=MESSAGES)).choices[0].message.content
               for _ in range(6)]
    assert set(answers) == {"pod 0", "pod 1"}
    assert len(fakes[2].received) == 1  # failed once, then ejected
    assert fakes[0].received[-1].body["model"] == "Qwen/Qwen2.5"
    assert "Authorization" not in fakes[0].received[-1].headers



async def test_a_credential_that_would_split_the_request_head_is_not_sent_and_fails_over(upstream, gateway) -> None:
    first = await upstream("openai", text="first")
    second = await upstream("openai", text="second")
    snap = snapshot([provider("ns/a", "openai", first.url), provider("ns/b", "openai", second.url, priority=1)])
    values = {**snap.credentials.values, "ns/a/cred": "sk-a\r\nX-Injected: 1"}  # a Secret with a stray newline
    server = await gateway(Snapshot(snap.config, ir.Credentials(values=values)))
    answer = await _client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "second"
    assert first.received == [] and len(second.received) == 1
