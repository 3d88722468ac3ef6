"""docs/batch.md's commands: its Python example runs against a gateway with the Batch API on,
and its `lockgate run` command line is one the command accepts, with the API on."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from lockgate.cli.main import build_parser
from lockgate.cli.serving import batch_settings_from
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url

pytestmark = pytest.mark.redis

DOC = (Path(__file__).resolve().parents[3] / "docs" / "batch.md").read_text(encoding="utf-8")


def block(language: str) -> str:
    (found,) = re.findall(rf"```{language}\n(.*?)```", DOC, re.S)
    return str(found)


async def test_the_python_example_runs(gateway, echo, batch_settings) -> None:
    server = await gateway(snapshot([provider("ns/local", "openai", echo.url, [("gpt-4o", "gpt-4o")])]),
                           batch=batch_settings)
    env = {**os.environ, "OPENAI_BASE_URL": base_url(server), "OPENAI_API_KEY": KEY}
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", block("python"), env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    printed = out.decode().splitlines()
    assert printed[0].startswith("completed ")
    assert printed[1:] == [f"q{i} echo: Question {i}" for i in range(3)]


def test_the_command_line_turns_the_api_on() -> None:
    (line,) = [line for line in block("sh").splitlines() if line.startswith("lockgate run")]
    args = build_parser().parse_args(shlex.split(line)[1:])
    settings = batch_settings_from(args)
    assert settings.enabled and settings.store == "redis://127.0.0.1:6379/0"
    assert settings.files_dir == "./.state/batch-files" and settings.completion_windows == ("24h",)
