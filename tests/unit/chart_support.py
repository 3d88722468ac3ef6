"""Helpers for the chart tests: find helm, render the chart into objects."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lockgate"
KUBE_VERSION = "1.33.0"  # helm's default depends on how it was built; pin it
RELEASE = "lg"
NAMESPACE = "lockgate-system"

Obj = dict[str, Any]


def find_helm() -> str:
    """$LOCKGATE_HELM, then PATH, then the cache hack/setup.d/35-helm.sh fills."""
    cache = Path(os.environ.get("LOCKGATE_CACHE") or Path.home() / ".cache" / "lockgate")
    built = sorted(cache.glob("helm/v3.*/bin/helm"), key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])])
    candidates = [os.environ.get("LOCKGATE_HELM"), shutil.which("helm"), *reversed([str(p) for p in built]),
                  str(cache / "helm-bin" / "helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "helm not found: run hack/setup.d/35-helm.sh or set LOCKGATE_HELM"
    if os.environ.get("CI") == "true":
        pytest.fail(message)  # CI must not pass by skipping the chart tests
    pytest.skip(message)


def run_helm(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([find_helm(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def template_args(values_files: Sequence[Path] = (), sets: Sequence[str] = (), chart: Path = CHART) -> list[str]:
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def render(values_files: Sequence[Path] = (), sets: Sequence[str] = (), chart: Path = CHART) -> list[Obj]:
    """Objects `helm template` renders (comment-only documents dropped)."""
    out = run_helm(template_args(values_files, sets, chart)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(objs: Sequence[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: Sequence[Obj], kind: str, name_suffix: str = "") -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def render_notes(sets: Sequence[str] = ()) -> str:
    """NOTES.txt as `helm install` would print it, rendered offline through a
    throw-away template in a copy of the chart (helm template skips NOTES)."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "lockgate"
        shutil.copytree(CHART, chart)
        (chart / "templates" / "notes-preview.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-preview\ndata:\n"
            '  notes: {{ include "lockgate/templates/NOTES.txt" . | toJson }}\n', encoding="utf-8")
        (preview,) = [o for o in render(sets=sets, chart=chart) if o["metadata"]["name"] == "notes-preview"]
        notes: str = preview["data"]["notes"]
        return notes
