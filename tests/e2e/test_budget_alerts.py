"""Budget alerts on a real kube-apiserver: usage driven past 80 % of an ApiKey's monthly
tokens, or of a team Budget's, gives the BudgetAlert condition, a Warning Event and one
signed CloudEvent delivered to a loopback webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.lockgate_env import (  # noqa: F401  (fixtures)
    Lockgate, apikey, backend, crds, lockgate, route, wait_for,
)

SIGNING_SECRET = "alert-signing-secret"


class Receiver:
    """A loopback webhook receiver that records what it is sent."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def threshold_events(lockgate: Lockgate, kind: str, name: str) -> list[dict[str, Any]] | None:
    out = lockgate.kubectl("get", "events", "--field-selector",
                           f"involvedObject.kind={kind},involvedObject.name={name},reason=BudgetThresholdCrossed",
                           "-o", "json")
    return json.loads(out.stdout)["items"] or None


def webhook(receiver: Receiver) -> dict[str, Any]:
    return {"url": receiver.url, "secretRef": {"name": "alert-hook", "key": "secret"}}


def serve(lockgate: Lockgate, *objects: dict[str, Any]) -> Callable[[], str | None]:
    """The operator, a proxy, an upstream answering 11 input and 7 output tokens, the webhook's signing
    Secret and `objects` (with the key "team"): a chat with that key, None while it is not served."""
    upstream = lockgate.upstreams.start("counted")
    lockgate.start_operator("--usage-interval", "0.3")
    proxy = lockgate.start_proxy()
    lockgate.apply_objects([*backend("a", upstream.port), route(),
                            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alert-hook"},
                             "stringData": {"secret": SIGNING_SECRET}}, *objects])
    key = wait_for(lambda: lockgate.secret_value("team-key"), 30, "the generated key")
    client = lockgate.client(proxy, key)

    def chat() -> str | None:
        try:
            reply = client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=4)
        except Exception:  # noqa: BLE001 - not served yet
            return None
        return reply.choices[0].message.content

    return chat


def assert_signed(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The delivery's CloudEvent, once its content type and signature are checked."""
    assert headers["Content-Type"].startswith("application/cloudevents+json")
    expected = "sha256=" + hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Lockgate-Signature-256"] == expected
    event: dict[str, Any] = json.loads(body)
    assert event["specversion"] == "1.0"
    return event


def alerted_once_at_80(lockgate: Lockgate, receiver: Receiver, kind: str, name: str, used: str) -> dict[str, Any]:
    """Past 50 and 80 % of the monthly tokens at once: BudgetAlert=True, one Warning Event and one
    signed delivery, for 80 (what was crossed together is told once); the delivery's CloudEvent."""
    crossed = wait_for(lambda: lockgate.condition_is(kind.lower(), name, "BudgetAlert", "True"), 30,
                       f"BudgetAlert=True on {kind} {name}")
    assert crossed["reason"] == "Crossed80Percent"
    assert f"80 % of the monthlyTokens budget is used: {used} tokens" in crossed["message"]
    assert lockgate.obj(kind.lower(), name)["status"]["budgetAlerts"]["fired"] == {"monthlyTokens": [50, 80]}
    [event] = wait_for(lambda: threshold_events(lockgate, kind, name), 30, "the BudgetThresholdCrossed Event")
    assert event["type"] == "Warning" and event["message"].startswith("80 % of the monthlyTokens budget")
    wait_for(lambda: receiver.deliveries or None, 30, "a webhook delivery")
    [(headers, body)] = receiver.deliveries
    assert len(threshold_events(lockgate, kind, name) or []) == 1
    return assert_signed(headers, body)


def test_crossing_80_percent_gives_the_condition_an_event_and_one_webhook_delivery(lockgate: Lockgate) -> None:
    receiver = Receiver()
    try:
        alerts = {"thresholds": [50, 80, 100], "webhook": webhook(receiver)}
        chat = serve(lockgate, apikey("team", limits={"monthlyTokens": 40}, alerts=alerts))
        wait_for(chat, 30, "a first answer")  # 18 tokens (11 + 7): 45 %, no threshold yet
        below = wait_for(lambda: lockgate.condition_is("apikey", "team", "BudgetAlert", "False"), 30,
                         "BudgetAlert=False")
        assert below["reason"] == "BelowThresholds"
        assert chat() == "counted"  # 36 of 40 tokens: 90 %, past 50 and 80 at once

        cloud_event = alerted_once_at_80(lockgate, receiver, "ApiKey", "team", "36 of 40")
        assert cloud_event["type"] == "io.lockgate.apikey.budget.threshold"
        assert cloud_event["subject"] == f"{lockgate.namespace}/team"
        assert cloud_event["data"]["threshold"] == 80 and cloud_event["data"]["used"] == 36
        assert cloud_event["data"]["limit"] == 40
    finally:
        receiver.close()


def test_a_team_budget_past_80_percent_alerts_once(lockgate: Lockgate) -> None:
    receiver = Receiver()
    try:
        platform = {"apiVersion": "lockgate.io/v1alpha1", "kind": "Budget", "metadata": {"name": "platform"},
                    "spec": {"monthlyTokens": 42, "alerts": {"webhook": webhook(receiver)}}}  # at 50, 80 and 100 %
        chat = serve(lockgate, platform, apikey("team", budgets=["platform"]))

        def budget_tokens(tokens: int) -> dict[str, Any] | None:
            status = (lockgate.get("budget", "platform") or {}).get("status") or {}
            return status if (status.get("usage") or {}).get("tokens") == tokens else None

        wait_for(chat, 30, "a first answer")  # 18 of 42 tokens: 43 %
        wait_for(lambda: budget_tokens(18), 30, "the Budget's usage mirrored")
        below = lockgate.condition_is("budget", "platform", "BudgetAlert", "False")
        assert below is not None and below["reason"] == "BelowThresholds"
        assert chat() == "counted"  # 36 of 42 tokens: 86 %, past 50 and 80 at once

        assert lockgate.condition_is("apikey", "team", "BudgetAlert", "False")  # the key has no limit of its own
        cloud_event = alerted_once_at_80(lockgate, receiver, "Budget", "platform", "36 of 42")
        assert cloud_event["type"] == "io.lockgate.budget.threshold"
        assert cloud_event["source"] == f"/apis/lockgate.io/v1alpha1/namespaces/{lockgate.namespace}/budgets/platform"
        assert cloud_event["subject"] == f"{lockgate.namespace}/platform"
        assert cloud_event["data"]["teamBudget"] == {"namespace": lockgate.namespace, "name": "platform",
                                                     "keys": ["team"]}
        assert (cloud_event["data"]["threshold"], cloud_event["data"]["used"], cloud_event["data"]["limit"]) == (
            80, 36, 42)

        # A second key rewrites the Budget's status (its keys) on the next reconcile: nothing is told twice.
        lockgate.apply_objects([apikey("web", budgets=["platform"])])
        wait_for(lambda: lockgate.obj("budget", "platform")["status"].get("keys") == ["team", "web"] or None, 30,
                 "the Budget rewritten with both keys")
        wait_for(lambda: lockgate.condition_is("apikey", "web", "Programmed", "True"), 30, "the second key served")
        assert lockgate.obj("budget", "platform")["status"]["budgetAlerts"]["fired"] == {"monthlyTokens": [50, 80]}
        assert len(receiver.deliveries) == 1
        assert len(threshold_events(lockgate, "Budget", "platform") or []) == 1
    finally:
        receiver.close()
