"""The quickstart the README promises: every object accepted and ready."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lockgate.api.ir import hash_key
from lockgate.cli.manifests import load_manifests
from lockgate.operator.translate import translate

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def test_quickstart_is_accepted_and_ready_with_the_documented_demo_key() -> None:
    result = translate(load_manifests([QUICKSTART]), datetime(2026, 1, 1, tzinfo=UTC))
    not_ready = {
        str(ref): [(c.type, c.reason) for c in status.conditions if c.status != "True"]
        for ref, status in result.statuses.items()
        if any(c.status != "True" for c in status.conditions)
    }
    assert not_ready == {}
    assert {str(ref).split()[0] for ref in result.statuses} == {"ModelProvider", "ApiKey", "Route", "MCPServer"}
    assert [h.sha256 for h in result.config.keys[0].hashes] == [hash_key("lg-quickstart-demo-key")]
    assert result.config.providers[0].base_url == "http://127.0.0.1:8181/v1"
