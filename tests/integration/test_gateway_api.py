"""The internal entry point other modules (MCP model tools) use: chat_deltas through the whole pipeline."""

from __future__ import annotations

import pytest

from lockgate.proxy.auth import authenticate
from lockgate.proxy.errors import ApiError
from lockgate.proxy.internal import chat_deltas
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.upstreams import Action


async def test_chat_deltas_run_the_pipeline_and_refuse_like_the_api(upstream, gateway) -> None:
    primary = await upstream("openai")
    fallback = await upstream("anthropic", text="via claude fallback")
    primary.then(Action(status=500))
    snap = snapshot([provider("ns/openai", "openai", primary.url),
                     provider("ns/claude", "anthropic", fallback.url, [("gpt-4o", "claude-x")], priority=1)],
                    [key("ns/a", KEY, models=("gpt-4o",))])
    server = await gateway(snap)
    gw = server.gateway
    entry = authenticate(gw.snapshot, {"Authorization": f"Bearer {KEY}"})
    deltas = [d async for d in chat_deltas(gw, entry, {"model": "gpt-4o", "max_tokens": 20,
                                                       "messages": [{"role": "user", "content": "hi"}]})]
    assert "".join(deltas) == "via claude fallback" and len(deltas) > 1
    assert fallback.received[-1].body["max_tokens"] == 20
    series = {k[2:5]: v.requests for k, v in gw.metrics.series_by_labels.items()}
    assert series[("ns/claude", "gpt-4o", "claude-x")] == 1
    with pytest.raises(ApiError) as refused:
        [d async for d in chat_deltas(gw, entry, {"model": "other", "messages": []})]
    assert refused.value.status == 404
    assert gw.in_flight == 0
