"""The Dockerfile: multi-stage, slim base, non-root user, `lockgate` entry point."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [arg for kw, arg in self.instructions if kw == keyword]
        return found[-1] if found else None


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0])
            stages.append(Stage(base=base, name=parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


ARGS, STAGES = parse((REPO / "Dockerfile").read_text(encoding="utf-8"))
FINAL = STAGES[-1]


def test_multi_stage_on_slim_python() -> None:
    assert len(STAGES) >= 2
    assert all(s.base == "python:3.11-slim" for s in STAGES)
    copies = [arg for kw, arg in FINAL.instructions if kw == "COPY"]
    assert any(c.startswith(f"--from={STAGES[0].name} ") for c in copies), "runtime copies the built venv"
    assert not [arg for kw, arg in FINAL.instructions if kw == "RUN" and "pip install" in arg]


def test_runs_as_a_non_root_user() -> None:
    user = FINAL.last("USER")
    assert user is not None
    uid, _, gid = user.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0))
    created = " ".join(arg for kw, arg in FINAL.instructions if kw == "RUN")
    assert f"--uid {uid}" in created


def test_entrypoint_is_the_console_script() -> None:
    entry = FINAL.last("ENTRYPOINT")
    assert entry is not None
    assert json.loads(entry) == ["lockgate"], "exec form, so signals reach the process"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "lockgate" in scripts


def test_copied_sources_exist() -> None:
    for keyword, arg in STAGES[0].instructions:
        if keyword == "COPY" and not arg.startswith("--from"):
            *sources, _dest = arg.split()
            for source in sources:
                if not any(ch in source for ch in "*?["):
                    assert (REPO / source).exists(), source


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv"} <= set(ignored)


def test_every_package_folder_is_copied() -> None:
    """A package folder added to pyproject but not to the Dockerfile would be missing from the image."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {d.split("/")[0] for d in setuptools.get("package-dir", {}).values()}
    copied = {arg.split()[0].rstrip("/") for kw, arg in STAGES[0].instructions if kw == "COPY" and "--from" not in arg}
    assert folders and folders <= copied, f"not copied into the image: {folders - copied}"
