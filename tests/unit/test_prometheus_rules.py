"""The chart's PrometheusRule passes `promtool check rules` and the alert
cases of tests/fixtures/prometheus (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.cached_tools import find_cached_tool
from tests.unit.chart_support import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus"


def find_promtool() -> str:
    return find_cached_tool("promtool", "promtool/v*/bin/promtool", "LOCKGATE_PROMTOOL", "hack/observability-binaries.sh")


def rule_groups(values: Path | None = None) -> list[dict]:
    rendered = render(values_files=[values] if values else [], sets=["metrics.prometheusRule.enabled=true"])
    rules = [o for o in rendered if o["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    return rules[0]["spec"]["groups"]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_are_off_by_default() -> None:
    assert not [o for o in render() if o["kind"] == "PrometheusRule"]


def test_rules_check_and_alert_cases_pass(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    shutil.copy(FIXTURES / "lockgate-rules-test.yaml", tmp_path)
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = promtool("test", "rules", "lockgate-rules-test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_threshold_value_changes_what_fires(tmp_path: Path) -> None:
    """With the error threshold raised past 10 %, the openai case must fail: the fixture really tests the rule."""
    values = tmp_path / "values.yaml"  # a file: `--set` would pass 0.2 as a string
    values.write_text("metrics: {prometheusRule: {upstreamErrorRatio: 0.2}}\n")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(values)}))
    shutil.copy(FIXTURES / "lockgate-rules-test.yaml", tmp_path)
    tested = promtool("test", "rules", "lockgate-rules-test.yaml", cwd=tmp_path)
    assert tested.returncode != 0 and "LockgateUpstreamErrorRate" in tested.stdout + tested.stderr


def test_the_team_budget_case_follows_the_budget_ratio(tmp_path: Path) -> None:
    """With the budget ratio raised to 95 %, the team Budget at 92 % must not fire: the case must fail."""
    values = tmp_path / "values.yaml"
    values.write_text("metrics: {prometheusRule: {budgetUsedRatio: 0.95}}\n")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(values)}))
    shutil.copy(FIXTURES / "lockgate-rules-test.yaml", tmp_path)
    tested = promtool("test", "rules", "lockgate-rules-test.yaml", cwd=tmp_path)
    output = tested.stdout + tested.stderr
    assert tested.returncode != 0 and "LockgateTeamBudgetAlmostSpent" in output
    assert "alertname: LockgateBudgetAlmostSpent," not in output  # the key at 95 % still fires
