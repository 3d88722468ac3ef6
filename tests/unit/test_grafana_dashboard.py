"""The Grafana dashboard queries only the proxy's and the operator's metrics, by the gateway's dimensions.

The metric names and each one's label names come from the real registries (lockgate.proxy.metrics,
lockgate.operator.metrics), so a renamed metric or a dropped label breaks this test, not the dashboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lockgate.operator.metrics import OperatorMetrics
from lockgate.proxy.cache.metrics import CacheMetrics
from lockgate.proxy.metrics import make_metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD: dict[str, Any] = json.loads((REPO / "deploy" / "grafana" / "lockgate.json").read_text(encoding="utf-8"))

DIMENSIONS = {"gateway", "host", "consumer", "provider", "model", "upstream_model"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset"}


def registry_series() -> dict[str, set[str]]:
    """Every series name the proxy exposes (histograms as _bucket/_sum/_count) -> its label names,
    from a Metrics that has counted one request of each kind."""
    metrics = make_metrics("gw")
    series = metrics.series("api.example.com", "team-a", "ns/openai", "gpt-4o", "gpt-4o-up", "200", "")
    series.requests += 1
    for histogram in (series.duration, series.ttft, series.input_tokens, series.output_tokens):
        histogram.observe(1)
    metrics.overhead.observe(0.001)
    metrics.quota_rejected("team-a", "rate_limit_exceeded", "api.example.com", "gpt-4o")
    cache = CacheMetrics("gw", metrics.registry, lambda: (0, 0, 0))  # the response cache's, on the same registry
    cache.lookup("ns/api", "ns", "gpt-4o", "hit")
    cache.hit("ns/api", "ns", "gpt-4o", 3, 4, 0.97)
    # The operator's budget gauges, from a mirrored usage with a key's and a team Budget's limits.
    usage = {"ns/ci": {"tokens": 5, "remaining": 5}, "Budget/ns/platform": {"tokens": 5, "remaining": 5}}
    out: dict[str, set[str]] = {}
    for family in [*metrics.registry.collect(), *OperatorMetrics(usage=lambda: usage).registry.collect()]:
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


SERIES = registry_series()


def panels() -> Iterator[dict[str, Any]]:
    for panel in DASHBOARD["panels"]:
        yield panel
        yield from panel.get("panels", [])


def exprs() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def metric_names(expr: str) -> list[str]:
    """Bare identifiers of a PromQL expression that are neither functions, keywords nor labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers, ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)  # grouping labels
    names = [m.group() for m in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text)
             if not text[m.end():].lstrip().startswith("(")]  # a function call
    return [n for n in names if n not in PROMQL_WORDS]


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels its matchers name) for each `metric{...}` of an expression."""
    return [(name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", matchers)))
            for name, matchers in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)]


def test_the_registry_has_the_gateway_dimensions() -> None:
    assert {"lockgate_requests_total", "gen_ai_client_operation_duration_seconds_bucket",
            "gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_client_token_usage_sum"} <= SERIES.keys()
    for name in ("lockgate_requests_total", "gen_ai_client_operation_duration_seconds_bucket",
                 "gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_client_token_usage_sum"):
        assert DIMENSIONS <= SERIES[name], f"{name} lacks {DIMENSIONS - SERIES[name]}"
    assert "gen_ai_client_token_usage" not in SERIES  # histograms only through their series


def test_every_query_names_known_metrics() -> None:
    assert len(exprs()) >= 10
    for expr in exprs():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            assert name in SERIES, f"unknown metric {name} in {expr!r}"


def test_metric_name_parser_catches_strangers() -> None:
    assert metric_names('sum by (model) (rate(lockgate_requests_total{a="b"}[5m]))') == ["lockgate_requests_total"]
    assert metric_names("rate(http_requests_total[1m]) / up") == ["http_requests_total", "up"]
    assert "lockgate_requests_total_bucket" not in SERIES
    assert selectors('rate(a_total{x=~"$x", y!=""}[1m]) / b') == [("a_total", {"x", "y"})]


def test_every_matcher_names_a_label_of_its_metric() -> None:
    for expr in exprs():
        for name, labels in selectors(expr):
            assert labels <= SERIES.get(name, set()), f"{name} has no label {labels - SERIES.get(name, set())}: {expr!r}"


def test_queries_use_known_labels_and_variables() -> None:
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert DIMENSIONS <= variables
    for expr in exprs():
        # Grouping labels must belong to a metric of the expression.
        known = set().union(*(SERIES.get(name, set()) for name in metric_names(expr)))
        grouped = {label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                   for label in group.split(",")}
        assert grouped <= known, f"unknown labels {grouped - known} in {expr!r}"
        for var in re.findall(r"\$(\w+)", expr):
            assert var.startswith("__") or var in variables, f"${var} is not a dashboard variable"


def test_requests_are_filtered_by_every_dimension() -> None:
    for expr in exprs():
        if "lockgate_requests_total" in expr or "gen_ai_client" in expr:
            for dim in DIMENSIONS:
                assert f'{dim}=~"${dim}"' in expr, f"{dim} filter missing in {expr!r}"


def test_required_panels_exist() -> None:
    everything = "\n".join(exprs())
    assert "rate(lockgate_requests_total" in everything  # QPS
    for q in ("0.5", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket" in everything
    assert 'status_code=~"5.."' in everything
    assert "lockgate_quota_rejections_total" in everything and "by (reason)" in everything
    assert "by (token_type) (rate(gen_ai_client_token_usage_sum" in everything


def test_budget_panels_show_team_budgets_and_keys() -> None:
    everything = "\n".join(exprs())
    assert "(lockgate_team_budget_used_ratio)" in everything and "(lockgate_apikey_budget_used_ratio)" in everything


def test_panels_are_well_formed() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys() and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
