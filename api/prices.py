"""Model economics as plain data: the default price table and the cost arithmetic.

Prices are per million tokens in a currency. Costs are counted in integer
micro-units of that currency (1e-6), rounded up per request, so counters in a
shared store add up exactly. Pure: no I/O, tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_CURRENCY: Final = "USD"
MICROS: Final = 1_000_000  # micro-units per currency unit
PER_MILLION: Final = 1_000_000


@dataclass(frozen=True)
class KnownModel:
    """Published list prices (USD per million tokens) and the context window of a well-known model."""

    input: float
    output: float
    cached_input: float
    context_window: int


# List prices as the providers publish them; a ModelProvider's own spec.models[].pricing wins.
KNOWN_MODELS: Final[dict[str, KnownModel]] = {
    "gpt-5": KnownModel(1.25, 10.0, 0.125, 400_000),
    "gpt-5-mini": KnownModel(0.25, 2.0, 0.025, 400_000),
    "gpt-5-nano": KnownModel(0.05, 0.4, 0.005, 400_000),
    "gpt-4.1": KnownModel(2.0, 8.0, 0.5, 1_047_576),
    "gpt-4.1-mini": KnownModel(0.4, 1.6, 0.1, 1_047_576),
    "gpt-4.1-nano": KnownModel(0.1, 0.4, 0.025, 1_047_576),
    "gpt-4o": KnownModel(2.5, 10.0, 1.25, 128_000),
    "gpt-4o-mini": KnownModel(0.15, 0.6, 0.075, 128_000),
    "o3": KnownModel(2.0, 8.0, 0.5, 200_000),
    "o3-mini": KnownModel(1.1, 4.4, 0.55, 200_000),
    "o4-mini": KnownModel(1.1, 4.4, 0.275, 200_000),
    "text-embedding-3-small": KnownModel(0.02, 0.0, 0.02, 8_191),
    "text-embedding-3-large": KnownModel(0.13, 0.0, 0.13, 8_191),
    "claude-opus-4-5": KnownModel(5.0, 25.0, 0.5, 200_000),
    "claude-opus-4-1": KnownModel(15.0, 75.0, 1.5, 200_000),
    "claude-opus-4": KnownModel(15.0, 75.0, 1.5, 200_000),
    "claude-sonnet-4-5": KnownModel(3.0, 15.0, 0.3, 200_000),
    "claude-sonnet-4": KnownModel(3.0, 15.0, 0.3, 200_000),
    "claude-haiku-4-5": KnownModel(1.0, 5.0, 0.1, 200_000),
    "claude-3-5-haiku": KnownModel(0.8, 4.0, 0.08, 200_000),
}

# Dated snapshots and moving aliases of a known model: gpt-4o-2024-08-06, claude-sonnet-4-20250514, ...-latest.
_VERSION_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def known_model(*names: str) -> KnownModel | None:
    """The table's entry for the first of `names` it knows, a dated or -latest name as its base."""
    for name in names:
        found = KNOWN_MODELS.get(name) or KNOWN_MODELS.get(_VERSION_SUFFIX.sub("", name))
        if found is not None:
            return found
    return None


def rate(price_per_million: float) -> int:
    """A price per million tokens as integer micro-units per million tokens (exact to 1e-6)."""
    return round(price_per_million * MICROS)


def cost_micros(input_rate: int, output_rate: int, cached_rate: int, input_tokens: int, output_tokens: int,
                cached_tokens: int = 0) -> int:
    """The cost of one request in micro-units, rounded up: `input_tokens` include the cached ones, which
    are charged at `cached_rate` instead of `input_rate`. Rates from `rate`."""
    cached = min(max(cached_tokens, 0), max(input_tokens, 0))
    total = (max(input_tokens, 0) - cached) * input_rate + cached * cached_rate + max(output_tokens, 0) * output_rate
    return -(-total // PER_MILLION)


def micros_to_amount(micros: int) -> float:
    """Micro-units as an amount of currency (for metrics and logs)."""
    return micros / MICROS


def format_amount(micros: int) -> str:
    """Micro-units as a decimal string with six places ("12.345678"), exact, for statuses."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    return f"{sign}{whole}.{frac:06d}"


def parse_amount(text: str) -> int:
    """A decimal amount of currency ("100", "12.5", "0.000001") as micro-units; ValueError past six places."""
    match = re.fullmatch(r"(\d+)(?:\.(\d{1,6}))?", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an amount: digits with at most six decimal places, like 100 or 12.50")
    whole, frac = match.group(1), (match.group(2) or "").ljust(6, "0")
    return int(whole) * MICROS + int(frac)
