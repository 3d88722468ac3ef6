"""docs/tenancy.md: its manifests translate as it says, and the error line it
shows is what `lockgate render --strict` prints once the grant is gone."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from lockgate.cli.render_cmd import report
from lockgate.operator.translate import translate

DOC = Path(__file__).resolve().parents[2] / "docs" / "tenancy.md"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY_SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "indexer-key", "namespace": "search"},
              "stringData": {"api-key": "lg-docs-tenancy-0123456789abcdef"}}
PROVIDER_SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "openai-credentials", "namespace": "platform"},
                   "stringData": {"api-key": "sk-docs-tenancy"}}


def _manifests() -> list[dict[str, Any]]:
    text = DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if doc] + [KEY_SECRET, PROVIDER_SECRET]


def test_the_shared_provider_and_server_serve_the_team() -> None:
    translation = translate(_manifests(), NOW)
    assert all(status.accepted for status in translation.statuses.values())
    assert all(c.status == "True" for s in translation.statuses.values() for c in s.conditions if c.type == "ResolvedRefs")
    provider = next(p for p in translation.config.providers if p.id == "platform/openai")
    assert provider.serves("search") and provider.serves("support") and not provider.serves("other")
    assert translation.config.keys[0].mcp_servers == ("platform/tickets",)


def test_without_the_grant_render_reports_the_line_the_docs_show() -> None:
    objects = _manifests()
    for obj in objects:
        if obj["kind"] == "ModelProvider":
            del obj["spec"]["allowedNamespaces"]
    out = io.StringIO()
    assert report(translate(objects, NOW), out) == 1
    shown = next(line.strip() for line in DOC.read_text().splitlines() if line.strip().startswith("error: Route"))
    assert shown in out.getvalue().splitlines()
