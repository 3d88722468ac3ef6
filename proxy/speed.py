"""Measured speed per model: recent time to first token and output tokens per second.

Speed is measured, not declared. Every answered request reports what it saw
(`SpeedBook.observe`); each model keeps an exponentially weighted mean of its
recent values, so the last few dozen requests matter and older ones fade.
Keys are configured model names, so the table is bounded by the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHT = 0.3  # how much one new observation moves the mean
MAX_MODELS = 10_000  # models come from the configuration; this only guards memory


@dataclass
class Speed:
    ttft: float | None = None  # seconds
    tokens_per_second: float | None = None
    samples: int = 0


def _mean(old: float | None, new: float) -> float:
    return new if old is None else old + WEIGHT * (new - old)


class SpeedBook:
    def __init__(self) -> None:
        self._models: dict[str, Speed] = {}

    def observe(self, model: str, ttft: float | None, output_tokens: int, seconds: float) -> None:
        """One answer of `model`: its time to first token, and `output_tokens` produced in `seconds`."""
        speed = self._models.get(model)
        if speed is None:
            if len(self._models) >= MAX_MODELS:
                return
            speed = self._models[model] = Speed()
        if ttft is not None and ttft >= 0:
            speed.ttft = _mean(speed.ttft, ttft)
        if output_tokens > 0 and seconds > 0:
            speed.tokens_per_second = _mean(speed.tokens_per_second, output_tokens / seconds)
        speed.samples += 1

    def of(self, model: str) -> Speed:
        return self._models.get(model) or Speed()
