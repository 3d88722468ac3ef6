"""The stateful balancer: eligibility under every strategy, leases feeding state back, IR wiring."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lockgate.api import ir
from lockgate.proxy.balancing import STRATEGIES, PickRequest, StrategyBalancer, make_balancer
from lockgate.proxy.balancing.engine_metrics import default_engine_metrics
from lockgate.proxy.balancing.metrics import BalancerCollector
from lockgate.proxy.balancing.scrape import metrics_url, parse_engine_metrics

URLS = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1"]
PICKER = ir.ExternalPicker(url="http://127.0.0.1:9/pick")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(strategy: str, **kw: object) -> ir.LoadBalancing:
    return ir.LoadBalancing(strategy=strategy, external=PICKER if strategy == "external" else None, **kw)


# engine-metrics and external do I/O: tests/integration/test_balancing_http.py covers them
@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s not in ("external", "engine-metrics")])
async def test_every_strategy_honours_exclusion_and_max_concurrency(strategy: str) -> None:
    balancer = StrategyBalancer(URLS, settings(strategy, max_concurrency=2))
    request = PickRequest("m", prefix="system prompt", prompt_tokens=100, max_tokens=50, excluded=frozenset({URLS[0]}))
    leases = [await balancer.pick(request) for _ in range(4)]
    assert all(lease is not None for lease in leases)
    assert {lease.url for lease in leases if lease} == set(URLS[1:])
    assert await balancer.pick(request) is None  # both eligible endpoints hold 2
    assert leases[0] is not None
    leases[0].release(ok=True, output_tokens=10)
    again = await balancer.pick(request)
    assert again is not None and again.url == leases[0].url
    await balancer.close()


async def test_everything_excluded_is_none() -> None:
    balancer = StrategyBalancer(URLS, settings("least-tokens"))
    assert await balancer.pick(PickRequest("m", excluded=frozenset(URLS))) is None


async def test_lease_reserves_tokens_and_feeds_back_averages() -> None:
    clock = Clock()
    balancer = StrategyBalancer(URLS[:1], settings("least-tokens"), clock=clock)
    lease = await balancer.pick(PickRequest("m", prompt_tokens=300, max_tokens=100))
    assert lease is not None
    state = balancer.states[URLS[0]]
    assert (state.in_flight, state.outstanding_tokens) == (1, 400)
    clock.now += 0.5
    lease.first_token()
    assert state.ttft.value == pytest.approx(0.5)
    assert state.prefill_time.value == pytest.approx(0.5 / 300)
    assert (state.outstanding_tokens, state.outstanding_prompt) == (100, 0)  # prompt prefilled, output reserved
    clock.now += 1.58
    lease.release(ok=True, output_tokens=80)
    lease.release(ok=True, output_tokens=80)  # idempotent
    assert (state.in_flight, state.outstanding_tokens, state.completed) == (0, 0, 1)
    assert state.decode_time.value == pytest.approx(1.58 / 79)


async def test_non_streamed_answer_scales_both_speeds_to_its_total_time() -> None:
    clock = Clock()
    balancer = StrategyBalancer(URLS[:1], settings("least-tokens"), clock=clock)
    state = balancer.states[URLS[0]]
    state.prefill_time.value, state.decode_time.value = 0.001, 0.01
    lease = await balancer.pick(PickRequest("m", prompt_tokens=1000, max_tokens=100))
    assert lease is not None
    clock.now += 4.0  # predicted 1000 x 0.001 + 100 x 0.01 = 2 s: the endpoint is twice as slow
    lease.release(ok=True, output_tokens=100)
    alpha = state.prefill_time.alpha
    assert state.prefill_time.value == pytest.approx(0.001 + alpha * (0.002 - 0.001))
    assert state.decode_time.value == pytest.approx(0.01 + alpha * (0.02 - 0.01))


async def test_lease_released_before_the_first_token_frees_its_prompt() -> None:
    balancer = StrategyBalancer(URLS[:1], settings("least-tokens"))
    lease = await balancer.pick(PickRequest("m", prompt_tokens=300, max_tokens=100))
    assert lease is not None and balancer.states[URLS[0]].outstanding_prompt == 300
    lease.release(ok=False)
    state = balancer.states[URLS[0]]
    assert (state.in_flight, state.outstanding_tokens, state.outstanding_prompt) == (0, 0, 0)


async def test_failed_lease_frees_the_endpoint_without_teaching_speed() -> None:
    balancer = StrategyBalancer(URLS[:1], settings("least-tokens"))
    lease = await balancer.pick(PickRequest("m", prompt_tokens=10, max_tokens=10))
    assert lease is not None
    lease.release(ok=False)
    state = balancer.states[URLS[0]]
    assert (state.in_flight, state.outstanding_tokens, state.failed, state.decode_time.value) == (0, 0, 1, None)


async def test_update_keeps_state_of_endpoints_that_stay() -> None:
    balancer = StrategyBalancer(URLS, settings("least-request"))
    lease = await balancer.pick(PickRequest("m"))
    assert lease is not None
    balancer.update([lease.url, "http://10.0.0.9:8000/v1"])
    assert balancer.states[lease.url].in_flight == 1
    assert set(balancer.states) == {lease.url, "http://10.0.0.9:8000/v1"}
    nxt = await balancer.pick(PickRequest("m"))
    assert nxt is not None and nxt.url == "http://10.0.0.9:8000/v1"
    balancer.update(["http://10.0.0.9:8000/v1"])
    lease.release(ok=True)  # the endpoint left; releasing must not fail


async def test_lease_says_why() -> None:
    balancer = StrategyBalancer(URLS, settings("prefix-affinity"))
    lease = await balancer.pick(PickRequest("m", prefix="You are terse."))
    assert lease is not None and lease.reason.startswith("affinity")


def test_unknown_strategy_and_external_without_picker_are_refused() -> None:
    with pytest.raises(ValueError):
        StrategyBalancer(URLS, ir.LoadBalancing(strategy="fastest"))
    with pytest.raises(ValueError):
        StrategyBalancer(URLS, ir.LoadBalancing(strategy="external"))


def test_make_balancer_reads_the_provider() -> None:
    provider = ir.Provider(
        id="ai/qwen",
        type="openai-compatible",
        endpoints=(ir.Endpoint(address="10.0.0.1", port=8000), ir.Endpoint(address="fd00::1", port=8000)),
        base_path="/v1",
        engine="sglang",
        load_balancing=ir.LoadBalancing(strategy="engine-metrics", max_concurrency=8),
        models=(ir.ProviderModel(name="qwen", upstream_model="Qwen/Qwen2.5"),),
    )
    balancer = make_balancer(provider)
    assert isinstance(balancer, StrategyBalancer)
    assert list(balancer.states) == ["http://10.0.0.1:8000/v1", "http://[fd00::1]:8000/v1"]
    assert balancer._scraper is not None and balancer._scraper.names.waiting_metric == "sglang:num_queue_reqs"


VLLM_PAGE = """\
# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 3.0
vllm:num_requests_waiting{model_name="b"} 2.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="a"} 0.25
vllm:kv_cache_usage_perc{model_name="b"} 0.75
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{model_name="a"} 1234.0
"""


def test_parse_vllm_metrics_sums_queues_and_takes_fullest_cache() -> None:
    reading = parse_engine_metrics(VLLM_PAGE, default_engine_metrics("vllm"))
    assert reading is not None
    assert (reading.waiting, reading.running, reading.cache_usage) == (5.0, 7.0, 0.75)


def test_parse_sglang_metrics_and_missing_gauges() -> None:
    page = "# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs 4\nsglang:token_usage 0.5\n"
    reading = parse_engine_metrics(page, default_engine_metrics("sglang"))
    assert reading is not None and (reading.waiting, reading.running, reading.cache_usage) == (4.0, 0.0, 0.5)
    assert parse_engine_metrics(VLLM_PAGE, default_engine_metrics("sglang")) is None


def test_metrics_url_drops_the_api_base_path() -> None:
    assert metrics_url("http://10.0.0.1:8000/v1", "/metrics") == "http://10.0.0.1:8000/metrics"
    assert metrics_url("http://[fd00::1]:8000/api/v1", "/stats/prom") == "http://[fd00::1]:8000/stats/prom"


async def test_collector_exports_pick_rules_and_endpoint_load() -> None:
    balancer = StrategyBalancer(URLS[:2], settings("prefix-affinity", epsilon=0.0))
    leases = [await balancer.pick(PickRequest("m", prefix="same system prompt", prompt_tokens=10, max_tokens=5))
              for _ in range(2)]
    assert [lease.reason.split(":")[0] for lease in leases if lease] == ["affinity", "spill"]
    registry = CollectorRegistry()
    registry.register(BalancerCollector("gw", lambda: [("ns/qwen", balancer), ("ns/fixed", object())]))
    text = generate_latest(registry).decode()
    assert 'lockgate_balancer_picks_total{gateway="gw",provider="ns/qwen",rule="spill",strategy="prefix-affinity"} 1.0' in text
    assert f'lockgate_balancer_endpoint_in_flight{{endpoint="{URLS[0]}",gateway="gw",provider="ns/qwen"}} 1.0' in text
    assert f'lockgate_balancer_endpoint_outstanding_tokens{{endpoint="{URLS[1]}",gateway="gw",provider="ns/qwen"}} 15.0' in text
    assert "ns/fixed" not in text
