"""docs/caching.md's example served by `lockgate run`, called with the official openai SDK: one process
with the in-process store, then two processes sharing a real redis-server, where an answer one stored
(whole, streamed, or a paraphrase's) is a hit on the other and a purge on either drops it for both."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.integration.cache.test_cache_pipeline import bag_of_words
from tests.integration.conftest import StartUpstream
from tests.integration.quota.proxies import Proxy
from tests.integration.quota.redis_server import RedisServer
from tests.upstreams import FakeUpstream

DOC = Path(__file__).resolve().parents[3] / "docs" / "caching.md"
APP_KEY = "lg-docs-cache-0123456789abcdef"
AUDITOR_KEY = "lg-docs-cache-auditor-0123456789"
QUESTION = "What is the capital of France?"


def docs_manifests(folder: Path, upstream: FakeUpstream) -> Path:
    text = DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 1 and "http://127.0.0.1:8181/v1" in blocks[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cache.yaml").write_text(blocks[0].replace("http://127.0.0.1:8181/v1", upstream.url))
    return folder


def docs_commands(admin_port: int) -> list[list[str]]:
    lines = [line for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S) for line in block.splitlines()]
    assert lines and all(line.startswith("curl ") for line in lines)
    return [shlex.split(line.replace(":9090/", f":{admin_port}/")) for line in lines]


async def stored(proxy: Proxy, count: int) -> None:
    """Until the proxy stored `count` answers (a stream is stored just after its last byte went out)."""
    pattern = re.compile(r"^lockgate_cache_stores_total\{.*\} ([0-9.]+)$", re.M)
    async with asyncio.timeout(20):
        while sum(float(v) for v in pattern.findall(str(await proxy.admin("/metrics")))) < count:
            await asyncio.sleep(0.05)


def chats(fake: FakeUpstream) -> int:
    return sum(r.path.endswith("/chat/completions") for r in fake.received)


async def ask(proxy: Proxy, question: str = QUESTION, api_key: str = APP_KEY, **params: Any) -> tuple[str, str]:
    """(x-lockgate-cache, the answer's text) of a chat completion, streamed or not."""
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=api_key, max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": question}], temperature=0, **params)
        answer = raw.parse()
        if params.get("stream"):
            text = "".join([c.choices[0].delta.content or "" async for c in answer if c.choices])  # type: ignore
        else:
            text = answer.choices[0].message.content or ""  # type: ignore[union-attr]
        return raw.headers["x-lockgate-cache"], text
    finally:
        await client.close()


async def test_the_documented_policy_through_lockgate_run(upstream: StartUpstream, proxies: Callable[..., Proxy],
                                                          tmp_path: Path) -> None:
    fake = await upstream(embed=bag_of_words)
    proxy = await proxies(docs_manifests(tmp_path / "m", fake), tmp_path / "state", "memory").start(deadline=120)
    assert await ask(proxy) == ("miss", fake.text)
    assert await ask(proxy) == ("hit", fake.text)
    assert await ask(proxy, stream=True) == ("miss", fake.text)
    await stored(proxy, 2)
    assert await ask(proxy, stream=True, stream_options={"include_usage": True}) == ("hit", fake.text)
    assert (await ask(proxy, "what's the capital city of France"))[0] == "hit"  # semantic: a paraphrase
    assert (await ask(proxy, "What is the population of Germany?"))[0] == "miss"
    assert (await ask(proxy, api_key=AUDITOR_KEY))[0] == "bypass"  # the key's override
    assert chats(fake) == 4

    outputs = [subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
               for command in docs_commands(proxy.admin_port)]
    assert outputs == ['{"purged":3}', '{"purged":0}', '{"purged":0}']  # namespace scope: no consumer entries
    assert await ask(proxy) == ("miss", fake.text)
    metrics = str(await proxy.admin("/metrics"))
    assert 'lockgate_cache_lookups_total{gateway="lockgate",model="gpt-4o",namespace="demo",result="hit",' \
           'route="demo/api"} 3.0' in metrics
    assert chats(fake) == 5


@pytest.mark.redis
async def test_two_proxies_share_answers_through_redis(redis_server: RedisServer, upstream: StartUpstream,
                                                       proxies: Callable[..., Proxy], tmp_path: Path) -> None:
    fake = await upstream(embed=bag_of_words)
    manifests = docs_manifests(tmp_path / "m", fake)
    store = redis_server.url + "?socket_timeout=2&socket_connect_timeout=2"
    one, two = await asyncio.gather(*(proxies(manifests, tmp_path / f"state-{i}", store).start(deadline=120) for i in (1, 2)))
    assert await ask(one) == ("miss", fake.text)
    assert await ask(two) == ("hit", fake.text)
    assert await ask(one, stream=True) == ("miss", fake.text)
    await stored(one, 2)
    assert await ask(two, stream=True) == ("hit", fake.text)
    assert (await ask(two, "what's the capital city of France"))[0] == "hit"  # the index, through Redis
    assert chats(fake) == 2

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{two.admin_url}/cache/purge", params={"route": "demo/api"}) as r:
            assert (await r.json()) == {"purged": 2}
    assert await ask(one) == ("miss", fake.text)
    assert chats(fake) == 3
