"""Golden tests of the translator: tests/unit/golden/<case>/input.yaml in,
expected.yaml (IR, credential ids, statuses) out. After an intended change,
run `pytest tests/unit/test_translate_golden.py --update-golden` and review
the diff."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockgate.operator.translate import Translation, translate

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").exists())


def render(translation: Translation) -> dict[str, Any]:
    """What a golden file holds: never credential values, only their ids."""
    statuses = {}
    for ref, status in sorted(translation.statuses.items()):
        statuses[str(ref)] = {
            "conditions": [
                {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message} for c in status.conditions
            ],
            **status.fields,
        }
    return {
        "config": translation.config.model_dump(mode="json"),
        "credentials": sorted(translation.credentials.values),
        "statuses": statuses,
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, request: pytest.FixtureRequest) -> None:
    folder = GOLDEN / case
    objects = [doc for doc in yaml.safe_load_all((folder / "input.yaml").read_text()) if doc]
    got = render(translate(objects, NOW))
    expected_file = folder / "expected.yaml"
    if request.config.getoption("--update-golden"):
        expected_file.write_text(yaml.safe_dump(got, sort_keys=False, allow_unicode=True, width=120))
    assert expected_file.exists(), f"no {expected_file.name} for {case}: run with --update-golden"
    assert got == yaml.safe_load(expected_file.read_text())


def test_golden_cases_cover_every_kind_and_reason() -> None:
    kinds: set[str] = set()
    reasons: set[str] = set()
    for case in CASES:
        expected = yaml.safe_load((GOLDEN / case / "expected.yaml").read_text())
        for ref, status in expected["statuses"].items():
            kinds.add(ref.split()[0])
            reasons.update(c["reason"] for c in status["conditions"] if c["status"] == "False")
    assert kinds == {"ModelProvider", "ApiKey", "Route", "MCPServer", "Budget"}
    assert {
        "InvalidSpec", "SecretNotFound", "InvalidTemplate", "UnknownModel", "UnknownServer", "InvalidTool",
        "Conflict", "NoEndpoints", "KeyPending", "Expired", "RefNotPermitted", "BudgetNotFound", "CurrencyMismatch",
    } <= reasons
