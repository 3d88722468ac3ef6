"""The Lockgate manifests the docs show are valid resources: a reader who copies one gets it accepted
by the API's models (the same models the CRDs are generated from)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lockgate.api.resources import KIND_BY_NAME, ApiKey, Budget, MCPServer, ModelProvider, Route

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / "data-plane.md", REPO / "docs" / "mcp.md", REPO / "docs" / "observability.md"]
MODELS = {"MCPServer": MCPServer, "Route": Route, "ModelProvider": ModelProvider, "ApiKey": ApiKey, "Budget": Budget}


def manifests(doc: Path) -> list[dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    return [d for block in blocks for d in yaml.safe_load_all(block)
            if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("lockgate.io/")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_documented_manifests_are_valid(doc: Path) -> None:
    found = manifests(doc)
    assert found, f"{doc.name} shows no Lockgate manifest"
    for manifest in found:
        kind = str(manifest["kind"])
        assert kind in KIND_BY_NAME
        MODELS[kind].model_validate(manifest)
