"""What the dashboard and the alert rules query, and what /metrics exports.

Every Lockgate metric is named `lockgate_*` or `gen_ai_*`, so the names a
PromQL expression uses are the identifiers with those prefixes. An exposition
is turned into the sample names it can carry (a counter family `x` exports
`x_total`, a histogram `x_bucket`, `x_sum`, `x_count`), including families
that have no sample yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "lockgate.json"
METRIC = re.compile(r"\b((?:lockgate|gen_ai)_[a-zA-Z0-9_:]*)")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",), "unknown": ("",)}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        if isinstance(node.get("query"), str):
            yield node["query"]
        for value in node.values():
            yield from _exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exprs(value)


def dashboard_exprs(path: Path = DASHBOARD) -> list[str]:
    return list(_exprs(json.loads(path.read_text())))


def rule_exprs(groups: Iterable[dict[str, Any]]) -> list[str]:
    return [rule["expr"] for group in groups for rule in group["rules"]]


def queried(exprs: Iterable[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


def exported(exposition: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
