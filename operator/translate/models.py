"""A ModelProvider's model -> ir.ProviderModel: its limits and metadata (prices, context window,
intelligence), the spec's values over the default table's."""

from __future__ import annotations

from lockgate.api import ir
from lockgate.api.prices import DEFAULT_CURRENCY, KnownModel, known_model
from lockgate.api.provider import ProviderModel


def provider_model(m: ProviderModel) -> ir.ProviderModel:
    upstream = m.upstream_model or m.name
    known = known_model(upstream, m.name)
    return ir.ProviderModel(
        name=m.name,
        upstream_model=upstream,
        kind=m.kind,
        limits=ir.RateLimits(rpm=m.limits.rpm, tpm=m.limits.tpm) if m.limits else ir.RateLimits(),
        pricing=pricing(m, known),
        context_window=m.context_window or (known.context_window if known else None),
        intelligence=m.intelligence,
    )


def pricing(m: ProviderModel, known: KnownModel | None) -> ir.Pricing | None:
    """The spec's prices, a price it leaves out taken from the table (USD list prices, so only for
    USD) and then 0; a cached-input price defaults to the input price. None: nothing known."""
    spec = m.pricing
    table = known if spec is None or spec.currency == DEFAULT_CURRENCY else None
    if spec is None and table is None:
        return None
    currency = spec.currency if spec is not None else DEFAULT_CURRENCY
    given_input = spec.input if spec is not None else None
    given_output = spec.output if spec is not None else None
    given_cached = spec.cached_input if spec is not None else None
    input_price = given_input if given_input is not None else (table.input if table else 0.0)
    output_price = given_output if given_output is not None else (table.output if table else 0.0)
    if given_cached is not None:
        cached = given_cached
    elif table is not None and given_input is None:
        cached = table.cached_input
    else:
        cached = input_price
    return ir.Pricing(currency=currency, input=input_price, output=output_price, cached_input=cached)
