"""The prompt prefix the proxy hands the balancer, from each API's body shape."""

from __future__ import annotations

from lockgate.proxy.balancing.prefix import prompt_prefix
from lockgate.proxy.balancing.prefix_affinity import prefix_digest


def test_chat_prefix_is_the_conversation_in_order() -> None:
    body = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {}}]},
    ]}
    assert prompt_prefix(body) == "system\nBe brief.\nuser\nHi\n"


def test_turns_of_one_chat_share_the_digest_of_their_system_prompt() -> None:
    system = {"role": "system", "content": "You are a support agent for ACME. " * 100}
    first = prompt_prefix({"messages": [system, {"role": "user", "content": "my order is late"}]})
    later = prompt_prefix({"messages": [system, {"role": "user", "content": "my order is late"},
                                        {"role": "assistant", "content": "sorry"}, {"role": "user", "content": "?"}]})
    assert later.startswith(first)
    assert prefix_digest(first, 2048) == prefix_digest(later, 2048)


def test_anthropic_system_responses_and_completions_bodies() -> None:
    anthropic = {"system": [{"type": "text", "text": "Rules."}], "messages": [{"role": "user", "content": "Q"}]}
    assert prompt_prefix(anthropic) == "system\nRules.\nuser\nQ\n"
    responses = {"instructions": "Rules.", "input": [{"role": "user", "content": "Q"}]}
    assert prompt_prefix(responses) == "system\nRules.\nuser\nQ\n"
    assert prompt_prefix({"prompt": "Once upon"}) == "user\nOnce upon\n"
    assert prompt_prefix({"input": "embed me"}) == "user\nembed me\n"
    assert prompt_prefix({"model": "x"}) == ""


def test_prefix_stops_at_the_limit() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 100} for _ in range(1000)]}
    assert len(prompt_prefix(body, limit=250)) == 250
