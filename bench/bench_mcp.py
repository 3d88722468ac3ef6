"""What the MCP gateway adds to a tool call, over loopback HTTP.

The upstream is the SDK fixture server (stateless, JSON answers) in its own
process; the gateway is the real proxy in-process. The same `tools/call`
(2026-07-28 wire) goes straight to the upstream and through the gateway,
sequentially and then with concurrency; a generated HTTP tool (`tools` kind)
over a loopback REST API is measured too. Prints p50/p99 per path and the
gateway's added latency; exits non-zero when the added p50 is over 5 ms.

Run: .venv/bin/python bench/bench_mcp.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lockgate.api.ir import HttpTool, McpServer, ToolArg  # noqa: E402
from tests.integration.mcp_fixtures.harness import (  # noqa: E402
    RestApi,
    fixture_upstream,
    gateway,
    key,
    serve_app,
    snapshot,
    upstream_server,
)

GOAL_ADDED_P50_MS = 5.0
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def _call(name: str, arguments: dict[str, Any], request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": META}}


async def _measure(http: aiohttp.ClientSession, url: str, name: str, arguments: dict[str, Any], count: int,
                   concurrency: int, token: str | None) -> list[float]:
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
               "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    times: list[float] = []
    ids = iter(range(count))

    async def worker() -> None:
        for request_id in ids:
            started = time.perf_counter()
            async with http.post(url, json=_call(name, arguments, request_id), headers=headers) as response:
                body = await response.read()
                assert response.status == 200 and b'"error"' not in body, body[:200]
            times.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


def _row(label: str, times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(f"{label:<44} {len(times):>6} {p50:>9.2f} {p99:>9.2f}")
    return p50, p99


async def main(quick: bool) -> int:
    count = 200 if quick else 1000
    api = RestApi()
    async with fixture_upstream("--stateless", "--json") as upstream, serve_app(api.app()) as api_url:
        tools = McpServer(id="b/rest", name="rest", path="/rest", kind="tools", tools=(
            HttpTool(name="get_item", url=f"{api_url}/items/{{id}}", args=(ToolArg(name="id", position="path"),)),))
        snap = snapshot([upstream_server("b/up", "/up", (upstream,)), tools], [key("bench", ("b/up", "b/rest"))])
        async with gateway(snap) as base, aiohttp.ClientSession() as http:
            await _measure(http, upstream, "add", {"a": 1, "b": 2}, 20, 1, None)  # warm up both paths
            await _measure(http, f"{base}/up/mcp", "add", {"a": 1, "b": 2}, 20, 1, "sk-bench")
            print(f"{'path':<44} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9}")
            direct, _ = _row("upstream directly, sequential",
                             await _measure(http, upstream, "add", {"a": 1, "b": 2}, count, 1, None))
            proxied, _ = _row("through the gateway, sequential",
                              await _measure(http, f"{base}/up/mcp", "add", {"a": 1, "b": 2}, count, 1, "sk-bench"))
            _row("upstream directly, 8 concurrent",
                 await _measure(http, upstream, "add", {"a": 1, "b": 2}, count, 8, None))
            _row("through the gateway, 8 concurrent",
                 await _measure(http, f"{base}/up/mcp", "add", {"a": 1, "b": 2}, count, 8, "sk-bench"))
            _row("generated HTTP tool (tools kind), sequential",
                 await _measure(http, f"{base}/rest/mcp", "get_item", {"id": "a/b"}, count, 1, "sk-bench"))
    added = proxied - direct
    print(f"gateway adds {added:.2f} ms at p50 (goal: under {GOAL_ADDED_P50_MS} ms)")
    return 0 if added < GOAL_ADDED_P50_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
