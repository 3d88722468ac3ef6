"""The layering contracts of `make lint` (import-linter) hold here, and fail on a forbidden import."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("api", "common", "operator", "proxy", "cli")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "hack" / "lint-imports.sh"), str(root)], capture_output=True,
                          text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_this_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "source", "broken"), [
    ("operator/uses_proxy.py", "from lockgate.proxy import errors\n", "never import each other"),
    ("proxy/uses_operator.py", "import lockgate.operator.keys\n", "never import each other"),
    ("api/uses_common.py", "from lockgate.common import http\n", "api serves all"),
    ("api/does_io.py", "import aiohttp\n", "no I/O library"),
    ("proxy/pipeline/steps/uses_step.py", "from lockgate.proxy.pipeline.steps import send\n", "steps"),
    ("proxy/handlers_cycle.py",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lockgate.proxy import handlers_cycle2\n",
     "no import cycles"),
])
def test_a_forbidden_import_breaks_the_lint(tmp_path: Path, module: str, source: str, broken: str) -> None:
    tree = _copy(tmp_path)
    (tree / module).write_text(source)
    if module == "proxy/handlers_cycle.py":  # the other half of the cycle
        (tree / "proxy/handlers_cycle2.py").write_text("from lockgate.proxy import handlers_cycle\n")
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    broken_lines = [line for line in result.stdout.splitlines() if broken in line]
    assert broken_lines, result.stdout
