"""What starting costs: `lockgate render` loads no HTTP or Kubernetes client, and a proxy without a
semantic cache no numpy (each a fresh interpreter, as a user starts it)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_the_command_line_and_render_load_no_http_client() -> None:
    loaded = _modules_after("from lockgate.cli import main, render_cmd\nmain.build_parser()")
    assert "lockgate.cli.render_cmd" in loaded
    assert not {"aiohttp", "kopf", "numpy"} & loaded


def test_the_proxy_loads_numpy_only_for_a_semantic_cache() -> None:
    loaded = _modules_after("import lockgate.proxy.server, lockgate.cli.source_files")
    assert "lockgate.proxy.cache.semantic" in loaded and "numpy" not in loaded
    loaded = _modules_after("from lockgate.proxy.cache.semantic import normalised\nnormalised([1.0, 2.0])")
    assert "numpy" in loaded
