"""Every metric the Grafana dashboard and the chart's alert rules query is one
a running `lockgate` proxy or the operator exports; the proxy's health
metrics (config load failures, endpoints) move when they should."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.operator.metrics import OperatorMetrics
from tests.integration.gateway_process import quickstart_process, wait_for
from tests.metric_catalog import dashboard_exprs, exported, queried, rule_exprs
from tests.unit.chart_support import render


def _sample(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def chart_rule_groups() -> list[dict]:
    rules = [o for o in render(sets=["metrics.prometheusRule.enabled=true"]) if o["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    return rules[0]["spec"]["groups"]


def test_dashboard_and_rules_query_only_exported_metrics(tmp_path: Path) -> None:
    with quickstart_process(tmp_path) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="lg-quickstart-demo-key", max_retries=0)
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        (tmp_path / "quickstart" / "99-broken.yaml").write_text("kind: [broken\n")
        wait_for(lambda: _sample(httpx.get(f"{gw.admin}/metrics").text,
                                 "lockgate_config_load_failures_total") == 1, "the failed load counted", gw)
        proxy = httpx.get(f"{gw.admin}/metrics").text

    assert (_sample(proxy, "lockgate_upstream_endpoints") or 0) >= 1
    assert _sample(proxy, "lockgate_upstream_endpoints_ejected") == 0
    operator = generate_latest(OperatorMetrics().registry).decode()
    available = exported(proxy) | exported(operator)
    wanted = queried(dashboard_exprs()) | queried(rule_exprs(chart_rule_groups()))
    assert {"lockgate_requests_total", "lockgate_operator_config_programmed"} <= wanted  # the parse found names
    assert wanted - available == set(), f"queried but not exported: {sorted(wanted - available)}"
