"""The stateful balancer: endpoint states, one strategy, leases that feed back."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lockgate.api.ir import LoadBalancing
from lockgate.proxy.balancing.choice import Choice, eligible
from lockgate.proxy.balancing.engine_metrics import default_engine_metrics, engine_metrics
from lockgate.proxy.balancing.external import PickerClient, picker_body
from lockgate.proxy.balancing.least_tokens import (
    PRIOR_DECODE_TIME,
    PRIOR_PREFILL_TIME,
    least_tokens,
    request_tokens,
)
from lockgate.proxy.balancing.prefix_affinity import prefix_affinity, prefix_digest
from lockgate.proxy.balancing.request import PickRequest
from lockgate.proxy.balancing.round_robin import least_request, round_robin
from lockgate.proxy.balancing.scrape import MetricsScraper
from lockgate.proxy.balancing.state import EndpointState

STRATEGIES = ("round-robin", "least-request", "least-tokens", "prefix-affinity", "engine-metrics", "external")


@dataclass
class EndpointLease:
    """One request's hold on an endpoint; `release` is idempotent."""

    url: str
    choice: Choice
    state: EndpointState
    prompt_tokens: int
    reserved_tokens: int  # still counted in the endpoint's outstanding tokens
    prompt_reserved: int  # of which the prompt, until the first token
    started: float
    clock: Callable[[], float]
    first_token_at: float | None = None
    released: bool = False

    @property
    def reason(self) -> str:
        return str(self.choice)

    def first_token(self) -> None:
        if self.first_token_at is not None or self.released:
            return
        self.first_token_at = self.clock()
        ttft = self.first_token_at - self.started
        self.state.ttft.add(ttft)
        if self.prompt_tokens > 0:
            self.state.prefill_time.add(ttft / self.prompt_tokens)
        # the prompt is prefilled: only the output remains reserved
        self._release_prompt()

    def _release_prompt(self) -> None:
        self.reserved_tokens -= self.prompt_reserved
        self.state.outstanding_tokens -= self.prompt_reserved
        self.state.outstanding_prompt -= self.prompt_reserved
        self.prompt_reserved = 0

    def release(self, ok: bool, output_tokens: int = 0) -> None:
        if self.released:
            return
        self.released = True
        state = self.state
        self._release_prompt()
        state.in_flight -= 1
        state.outstanding_tokens -= self.reserved_tokens
        if not ok:
            state.failed += 1
            return
        state.completed += 1
        now = self.clock()
        if self.first_token_at is not None:
            if output_tokens > 1:
                state.decode_time.add((now - self.first_token_at) / (output_tokens - 1))
        elif self.prompt_tokens + output_tokens > 0:
            self._learn_unsplit(now - self.started, max(output_tokens, 0))

    def abandon(self) -> None:
        """Give the endpoint back as if nothing was sent to it (the request went elsewhere): no outcome is learnt."""
        if self.released:
            return
        self.released = True
        self._release_prompt()
        self.state.in_flight -= 1
        self.state.outstanding_tokens -= self.reserved_tokens

    def _learn_unsplit(self, elapsed: float, output_tokens: int) -> None:
        """A non-streamed answer shows only its total time: scale both speeds to match it."""
        state = self.state
        prefill = state.prefill_time.value if state.prefill_time.value is not None else PRIOR_PREFILL_TIME
        decode = state.decode_time.value if state.decode_time.value is not None else PRIOR_DECODE_TIME
        predicted = self.prompt_tokens * prefill + output_tokens * decode
        if predicted > 0:
            scale = elapsed / predicted
            state.prefill_time.add(prefill * scale)
            state.decode_time.add(decode * scale)


@dataclass
class StrategyBalancer:
    urls: Sequence[str]
    settings: LoadBalancing = field(default_factory=LoadBalancing)
    engine: str = "generic"
    clock: Callable[[], float] = time.monotonic
    states: dict[str, EndpointState] = field(init=False, default_factory=dict)
    _turn: int = field(init=False, default=0)
    _scraper: MetricsScraper | None = field(init=False, default=None)
    _picker: PickerClient | None = field(init=False, default=None)
    _closed: bool = field(init=False, default=False)  # a late pick must not restart background work
    decisions: Counter[str] = field(init=False, default_factory=Counter)  # picks per Choice.rule

    def __post_init__(self) -> None:
        if self.settings.strategy not in STRATEGIES:
            raise ValueError(f"unknown load-balancing strategy {self.settings.strategy!r}")
        self.update(self.urls)
        if self.settings.strategy == "engine-metrics":
            names = self.settings.metrics or default_engine_metrics(self.engine)
            self._scraper = MetricsScraper(names, lambda: self.states.values(), self.clock)
        if self.settings.strategy == "external":
            if self.settings.external is None:
                raise ValueError("strategy external needs an endpoint picker (loadBalancing.external)")
            self._picker = PickerClient(self.settings.external, self.clock)

    @property
    def strategy(self) -> str:
        return self.settings.strategy

    def update(self, urls: Sequence[str]) -> None:
        """Keep what is known of endpoints that stay; leases on removed ones still release harmlessly."""
        self.urls = list(dict.fromkeys(urls))
        self.states = {u: self.states.get(u) or EndpointState(u) for u in self.urls}

    async def pick(self, request: PickRequest) -> EndpointLease | None:
        candidates = eligible(list(self.states.values()), request.excluded, self.settings.max_concurrency)
        if not candidates:
            return None
        if self._scraper is not None and not self._closed:
            self._scraper.start()
        turn = self._turn
        self._turn += 1
        choice = await self._choose(candidates, request, turn)
        state = self.states.get(choice.url)
        cap = self.settings.max_concurrency
        if state is None or (cap is not None and state.in_flight >= cap):
            # the endpoints changed while an external picker was being asked
            candidates = eligible(list(self.states.values()), request.excluded, cap)
            fallback = least_tokens(candidates, request.prompt_tokens, request.max_tokens, turn)
            if fallback is None:
                return None
            choice, state = fallback, self.states[fallback.url]
        self.decisions[choice.rule] += 1
        reserved = request_tokens(request.prompt_tokens, request.max_tokens)
        prompt = max(request.prompt_tokens, 0)
        state.in_flight += 1
        state.outstanding_tokens += reserved
        state.outstanding_prompt += prompt
        return EndpointLease(choice.url, choice, state, prompt, reserved, prompt, self.clock(), self.clock)

    async def _choose(self, candidates: list[EndpointState], request: PickRequest, turn: int) -> Choice:
        s = self.settings
        strategy = s.strategy
        choice: Choice | None
        if strategy == "round-robin":
            choice = round_robin(candidates, turn)
        elif strategy == "least-request":
            choice = least_request(candidates, turn)
        elif strategy == "least-tokens":
            choice = least_tokens(candidates, request.prompt_tokens, request.max_tokens, turn)
        elif strategy == "prefix-affinity":
            choice = prefix_affinity(candidates, prefix_digest(request.prefix, s.prefix_length), s.epsilon, turn)
        elif strategy == "engine-metrics":
            assert self._scraper is not None
            choice = engine_metrics(
                candidates,
                prefix_digest(request.prefix, s.prefix_length),
                request.prompt_tokens,
                request.max_tokens,
                self.clock(),
                self._scraper.names.stale_after,
                turn=turn,
            )
        else:
            choice = await self._ask_picker(candidates, request, turn)
        assert choice is not None  # candidates is never empty here
        return choice

    async def _ask_picker(self, candidates: list[EndpointState], request: PickRequest, turn: int) -> Choice | None:
        assert self._picker is not None
        digest = prefix_digest(request.prefix, self.settings.prefix_length)
        body = picker_body(request.model, digest, request.prompt_tokens, request.max_tokens, candidates)
        answer = None if self._closed else await self._picker.ask(body, candidates)
        if answer is not None:
            return answer
        fallback = least_tokens(candidates, request.prompt_tokens, request.max_tokens, turn)
        if fallback is None:
            return None
        why = "balancer closed" if self._closed else self._picker.last_error
        return Choice(fallback.url, "picker-fallback", f"{why}; {fallback}")

    async def close(self) -> None:
        self._closed = True
        if self._scraper is not None:
            await self._scraper.close()
        if self._picker is not None:
            await self._picker.close()
