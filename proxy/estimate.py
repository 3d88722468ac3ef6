"""What a request is expected to cost before it is forwarded: pure arithmetic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.proxy.filters.params import max_output_tokens

DEFAULT_OUTPUT_RESERVATION = 4096  # output tokens reserved when the request sets no max (a proxy flag)


@dataclass(frozen=True, slots=True)
class Estimate:
    prompt_tokens: int  # prompt characters / 4
    max_tokens: int | None  # the client's own output cap; None when the request sets none

    def reserved(self, cap: int, tpm_limits: tuple[int | None, ...] = ()) -> int:
        """Tokens to reserve against tpm and the monthly budget.

        With max_tokens: prompt + max_tokens, as asked (a request larger than a tpm is refused).
        Without: prompt + the configured cap, lowered to what the tightest tpm in `tpm_limits` leaves
        after the prompt, so a request whose prompt fits is never refused as too large because of a cap
        the client did not ask for. Settling with the real usage corrects the window afterwards.
        """
        if self.max_tokens is not None:
            return self.prompt_tokens + self.max_tokens
        output = max(0, cap)
        for tpm in tpm_limits:
            if tpm is not None:
                output = min(output, tpm - self.prompt_tokens)
        return self.prompt_tokens + max(0, output)


def estimate_request(body: dict[str, Any], raw_length: int | None = None) -> Estimate:
    """The prompt estimate (characters of the body / 4) and the client's output cap."""
    if raw_length is None:
        raw_length = len(orjson.dumps(body))
    return Estimate(raw_length // 4, max_output_tokens(body))
