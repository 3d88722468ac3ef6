"""The Grafana dashboard queries only the proxy's metrics, by the gateway's dimensions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD: dict[str, Any] = json.loads((REPO / "deploy" / "grafana" / "lockgate.json").read_text(encoding="utf-8"))

HISTOGRAMS = {"gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
              "gen_ai_server_time_to_first_token_seconds"}
OTHERS = {"lockgate_requests_total", "lockgate_requests_in_flight", "lockgate_quota_rejections_total"}
DIMENSIONS = {"gateway", "host", "consumer", "provider", "model", "upstream_model"}
LABELS = DIMENSIONS | {"token_type", "status_code", "error_type", "reason", "le"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset"}


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


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def test_every_query_names_known_metrics() -> None:
    assert len(exprs()) >= 10
    for expr in exprs():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            # Counters and gauges by name; histograms through their _bucket/_sum/_count series.
            known = name in OTHERS or (base_metric(name) in HISTOGRAMS and base_metric(name) != name)
            assert known, f"unknown metric {name} in {expr!r}"


def test_metric_name_parser_catches_strangers() -> None:
    assert metric_names('sum by (model) (rate(lockgate_requests_total{a="b"}[5m]))') == ["lockgate_requests_total"]
    assert metric_names("rate(http_requests_total[1m]) / up") == ["http_requests_total", "up"]
    assert base_metric("lockgate_requests_total_bucket") == "lockgate_requests_total_bucket"


def test_queries_use_known_labels_and_variables() -> None:
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert DIMENSIONS <= variables
    for expr in exprs():
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", expr))
        used |= {label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                 for label in group.split(",")}
        assert used <= LABELS, f"unknown labels {used - LABELS} in {expr!r}"
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


def test_panels_are_well_formed() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys() and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
