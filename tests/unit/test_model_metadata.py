"""Model metadata: prices, context window and intelligence from the API through the translator to the
snapshot the proxy serves from; the default price table and the cost arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from lockgate.api import ir
from lockgate.api.prices import cost_micros, format_amount, known_model, parse_amount, rate
from lockgate.api.provider import ProviderModel
from lockgate.operator.translate import translate
from lockgate.proxy.snapshot import compile_snapshot
from lockgate.proxy.source import Snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _provider(*models: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"type": "openai-compatible", "endpoint": "http://127.0.0.1:1/v1", "models": list(models)}}


def _models(*models: dict[str, Any]) -> dict[str, ir.ProviderModel]:
    result = translate([_provider(*models)], NOW)
    return {m.name: m for m in result.config.providers[0].models}


def test_a_well_known_model_gets_the_default_prices_and_context_window() -> None:
    m = _models({"name": "gpt-4o-mini"})["gpt-4o-mini"]
    assert m.pricing == ir.Pricing(currency="USD", input=0.15, output=0.6, cached_input=0.075)
    assert m.context_window == 128_000
    assert m.intelligence is None


def test_the_table_knows_dated_snapshots_and_the_upstream_name() -> None:
    models = _models({"name": "claude-sonnet-4-20250514"}, {"name": "fast", "upstreamModel": "gpt-4o-2024-08-06"},
                     {"name": "my-llama"})
    assert models["claude-sonnet-4-20250514"].pricing == ir.Pricing(input=3.0, output=15.0, cached_input=0.3)
    assert models["fast"].pricing is not None and models["fast"].pricing.input == 2.5
    assert models["my-llama"].pricing is None and models["my-llama"].context_window is None


def test_spec_values_win_over_the_table_one_by_one() -> None:
    models = _models(
        {"name": "gpt-4o", "pricing": {"output": 8}, "contextWindow": 64000, "intelligence": 0.8},
        {"name": "gpt-4.1", "pricing": {"input": 1.0}},
        {"name": "local", "pricing": {"input": 0.5, "output": 1.5}},
    )
    assert models["gpt-4o"].pricing == ir.Pricing(input=2.5, output=8.0, cached_input=1.25)
    assert models["gpt-4o"].context_window == 64000 and models["gpt-4o"].intelligence == 0.8
    # A spec input price without a cached one: the cached price follows the input price, not the table's.
    assert models["gpt-4.1"].pricing == ir.Pricing(input=1.0, output=8.0, cached_input=1.0)
    assert models["local"].pricing == ir.Pricing(input=0.5, output=1.5, cached_input=0.5)


def test_another_currency_takes_nothing_from_the_usd_table() -> None:
    m = _models({"name": "gpt-4o", "pricing": {"currency": "EUR", "input": 2}})["gpt-4o"]
    assert m.pricing == ir.Pricing(currency="EUR", input=2.0, output=0.0, cached_input=2.0)


@pytest.mark.parametrize("bad", [{"intelligence": 1.5}, {"intelligence": -0.1}, {"contextWindow": 0},
                                 {"pricing": {"input": -1}}, {"pricing": {"currency": "usd"}},
                                 {"pricing": {"inputPrice": 1}}])
def test_invalid_metadata_is_refused_by_the_api_model(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProviderModel.model_validate({"name": "m", **bad})


def test_an_invalid_model_leaves_its_provider_out_with_a_condition() -> None:
    result = translate([_provider({"name": "m", "intelligence": 2})], NOW)
    assert result.config.providers == ()
    (status,) = result.statuses.values()
    assert any(c.status == "False" and "intelligence" in c.message for c in status.conditions)


def test_the_proxy_snapshot_serves_the_metadata_with_each_target() -> None:
    result = translate([_provider({"name": "gpt-4o", "intelligence": 0.9})], NOW)
    compiled = compile_snapshot(Snapshot(result.config, result.credentials))
    (tier,) = compiled.namespace_view("ns").pool.tiers["gpt-4o"]
    (target,) = tier
    assert target.model.pricing is not None and target.model.pricing.output == 10.0
    assert target.model.context_window == 128_000 and target.model.intelligence == 0.9


def test_known_model_takes_the_first_name_it_knows() -> None:
    assert known_model("nope", "o3-latest") == known_model("o3")
    assert known_model("gpt-4o-mini-2024-07-18") == known_model("gpt-4o-mini")
    assert known_model("gpt-4o-audio") is None


def test_cost_charges_cached_input_at_its_price_and_rounds_up_to_a_micro_unit() -> None:
    inp, out, cached = rate(2.5), rate(10.0), rate(1.25)
    # 1000 input of which 400 cached, 100 output: 600 x 2.5 + 400 x 1.25 + 100 x 10 = 3000 micro-units.
    assert cost_micros(inp, out, cached, 1000, 100, 400) == 3000
    assert cost_micros(rate(0.075), 0, 0, 1, 0) == 1  # 0.075 micro-units is charged as 1
    assert cost_micros(rate(0.15), rate(0.6), rate(0.075), 123, 45) == 46  # 18.45 + 27 = 45.45 -> 46
    assert cost_micros(inp, out, cached, 10, 0, 50) == 13  # cached tokens beyond the input count as input
    assert cost_micros(inp, out, cached, 0, 0) == 0


def test_amounts_are_exact_decimal_strings() -> None:
    assert parse_amount("100") == 100_000_000 and parse_amount("0.000001") == 1 and parse_amount("12.5") == 12_500_000
    assert format_amount(12_345_678) == "12.345678" and format_amount(0) == "0.000000"
    for bad in ("-1", "1.0000001", "1e3", ""):
        with pytest.raises(ValueError):
            parse_amount(bad)
