"""Budget alerts on a real kube-apiserver: usage driven past 80 % of an ApiKey's monthly
tokens gives the BudgetAlert condition, a Warning Event and one signed CloudEvent
delivered to a loopback webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
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


def test_crossing_80_percent_gives_the_condition_an_event_and_one_webhook_delivery(lockgate: Lockgate) -> None:
    receiver = Receiver()
    try:
        upstream = lockgate.upstreams.start("counted")
        lockgate.start_operator("--usage-interval", "0.3")
        proxy = lockgate.start_proxy()
        alerts = {"thresholds": [50, 80, 100],
                  "webhook": {"url": receiver.url, "secretRef": {"name": "alert-hook", "key": "secret"}}}
        lockgate.apply_objects([
            *backend("a", upstream.port), route(),
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alert-hook"},
             "stringData": {"secret": SIGNING_SECRET}},
            apikey("team", limits={"monthlyTokens": 40}, alerts=alerts),
        ])
        key = wait_for(lambda: lockgate.secret_value("team-key"), 30, "the generated key")
        client = lockgate.client(proxy, key)

        def chat() -> str | None:
            try:
                reply = client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}],
                                                       max_tokens=4)
            except Exception:  # noqa: BLE001 - not served yet
                return None
            return reply.choices[0].message.content

        wait_for(chat, 30, "a first answer")  # 18 tokens (11 + 7): 45 %, no threshold yet
        below = wait_for(lambda: lockgate.condition_is("apikey", "team", "BudgetAlert", "False"), 30,
                         "BudgetAlert=False")
        assert below["reason"] == "BelowThresholds"
        assert chat() == "counted"  # 36 of 40 tokens: 90 %, past 50 and 80 at once

        crossed = wait_for(lambda: lockgate.condition_is("apikey", "team", "BudgetAlert", "True"), 30,
                           "BudgetAlert=True")
        assert crossed["reason"] == "Crossed80Percent"
        assert "80 % of the monthlyTokens budget is used: 36 of 40 tokens" in crossed["message"]
        status = lockgate.obj("apikey", "team")["status"]
        assert status["budgetAlerts"]["fired"] == {"monthlyTokens": [50, 80]}

        def alert_events() -> list[dict[str, Any]] | None:
            out = lockgate.kubectl("get", "events", "--field-selector",
                                   "involvedObject.kind=ApiKey,involvedObject.name=team,reason=BudgetThresholdCrossed",
                                   "-o", "json")
            items = json.loads(out.stdout)["items"]
            return items or None

        [event] = wait_for(alert_events, 30, "the BudgetThresholdCrossed Event")
        assert event["type"] == "Warning" and event["message"].startswith("80 % of the monthlyTokens budget")

        wait_for(lambda: receiver.deliveries or None, 30, "a webhook delivery")
        [(headers, body)] = receiver.deliveries  # one alert for 50 and 80 crossed together
        assert headers["Content-Type"].startswith("application/cloudevents+json")
        expected = "sha256=" + hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Lockgate-Signature-256"] == expected
        cloud_event = json.loads(body)
        assert cloud_event["specversion"] == "1.0" and cloud_event["type"] == "io.lockgate.apikey.budget.threshold"
        assert cloud_event["subject"] == f"{lockgate.namespace}/team"
        assert cloud_event["data"]["threshold"] == 80 and cloud_event["data"]["used"] == 36
        assert cloud_event["data"]["limit"] == 40
        assert len(alert_events() or []) == 1
    finally:
        receiver.close()
