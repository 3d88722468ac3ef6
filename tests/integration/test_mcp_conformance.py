"""The MCP conformance suite and the Inspector CLI, through the gateway, against the SDK fixture upstream.

Both are Node programs installed by hack/setup.d/40-mcp-tools.sh; without them
these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.integration.mcp_fixtures import node_tools
from tests.integration.mcp_fixtures.harness import fixture_upstream, gateway, key, key_injector, serve_app, snapshot, upstream_server

SERVER = "team/fixture"


async def _run(*argv: str, timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace")


def _failed_checks(results: Path) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    for checks in results.glob("server-*/checks.json"):
        for check in json.loads(checks.read_text()):
            if check.get("status") == "FAILURE":
                failed.setdefault(checks.parent.name, []).append(f"{check['id']}: {check.get('errorMessage')}")
    return failed


@pytest.mark.slow
@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
async def test_conformance_suite_passes_through_the_gateway(revision: str, tmp_path: Path) -> None:
    node, suite = node_tools.conformance()
    async with fixture_upstream() as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,))], [key("full", (SERVER,))])
        # The suite sends no Authorization header: a forwarder adds the key, as a configured client would.
        async with gateway(snap) as real, serve_app(key_injector(real, "sk-full")) as base:
            code, output = await _run(node, str(suite), "server", "--url", f"{base}/fixture/mcp",
                                      "--requirements", revision, "-o", str(tmp_path), timeout=600)
    summary = output[output.find("=== SUMMARY ==="):]
    failed = _failed_checks(tmp_path)
    assert code == 0, f"{summary}\nfailed checks: {json.dumps(failed, indent=1)[:4000]}"
    assert "Total:" in summary and list(tmp_path.glob("server-*/checks.json"))
    assert _scored_failures(summary) == set(), summary


def _scored_failures(summary: str) -> set[str]:
    """Failing scenarios the revision requires (extension and pending ones are listed apart)."""
    body, _, unscored = summary.partition("Not scored")
    failing = {line.split()[1].rstrip(":") for line in body.splitlines() if line.startswith("✗")}
    return failing - {line.split()[1] for line in unscored.splitlines() if line.strip().startswith("✗")}


async def test_inspector_cli_lists_and_calls_tools_through_the_gateway() -> None:
    node, inspector = node_tools.inspector()
    async with fixture_upstream() as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,))],
                        [key("narrow", (SERVER,), {SERVER: ("add", "echo")})])
        async with gateway(snap) as base:
            common = [node, str(inspector), "--cli", f"{base}/fixture/mcp", "--transport", "http",
                      "--header", "Authorization: Bearer sk-narrow"]
            code, listed = await _run(*common, "--method", "tools/list", timeout=120)
            assert code == 0, listed
            names = {t["name"] for t in json.loads(listed[listed.find("{"):])["tools"]}
            assert names == {"add", "echo"}
            code, called = await _run(*common, "--method", "tools/call", "--tool-name", "add",
                                      "--tool-arg", "a=20", "--tool-arg", "b=22", timeout=120)
    assert code == 0, called
    assert json.loads(called[called.find("{"):])["content"][0]["text"] == "42"
