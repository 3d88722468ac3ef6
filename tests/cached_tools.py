"""Test tools built outside the repository (hack/*-binaries.sh fill ~/.cache/lockgate), and stopping
the processes tests start."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest


def find_cached_tool(name: str, pattern: str, variable: str, script: str) -> str:
    """`$variable`, then PATH, then the newest `pattern` under the cache (`<tool>/v<version>/bin/<name>`).
    Missing: a skip, or under CI=true a failure (the setup script builds it there)."""
    cache = Path(os.environ.get("LOCKGATE_CACHE") or Path.home() / ".cache" / "lockgate")
    built = sorted(cache.glob(pattern), key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])])
    for candidate in (os.environ.get(variable), shutil.which(name), *reversed([str(p) for p in built])):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} not found: run {script} or set {variable}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def stop_process(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
