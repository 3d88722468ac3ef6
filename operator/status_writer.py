"""Writes each Lockgate object's status: the translator's verdict, Programmed,
for ApiKeys the key and Expired, and for ApiKeys and Budgets the usage, Exhausted
and BudgetAlert. Only changed statuses are written; condition transitions are
posted as Events, and so is each budget threshold crossed (with its webhook
delivery, when the object has one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.api.meta import Condition
from lockgate.api.secret_data import secret_values
from lockgate.operator import alerts
from lockgate.api.resources import KIND_BY_NAME
from lockgate.operator.events import event_manifest, post_event, transition_event
from lockgate.operator.keys import key_status_fields
from lockgate.operator.programmed import Rollout, programmed_condition
from lockgate.operator.status import desired_status, status_patch, transitions
from lockgate.operator.translate import ObjectRef, ObjectStatus
from lockgate.operator.usage import budget_usage_id, exhausted_condition, expired_condition
from lockgate.operator.webhooks import WebhookSender
from lockgate.common.kube_client import ApiError, KubeApi, resource_path

log = logging.getLogger("lockgate.operator.status")


def object_status(body: Mapping[str, Any], current: Mapping[str, Any] | None, verdict: ObjectStatus,
                  state: Rollout, secrets: Mapping[str, Mapping[str, Any]],
                  usage: Mapping[str, Any] | None, now: datetime, unchanged: bool = False) -> dict[str, Any]:
    """The full desired status of one object (pure). `unchanged`: the
    object's part of the IR is the one it was last programmed with."""
    generation = body["metadata"].get("generation", verdict.generation)
    previous = {c.get("type"): c for c in (current or {}).get("conditions") or []}
    conditions: list[Condition] = [c for c in verdict.conditions if c.type != "Programmed"]
    conditions.append(programmed_condition(state, verdict.accepted, generation, previous.get("Programmed"), unchanged))
    fields = dict(verdict.fields)
    if body.get("kind") == "ApiKey":
        fields.update(key_status_fields(body, secrets))
        conditions.append(expired_condition((body.get("spec") or {}).get("expiresAt"), now))
    if body.get("kind") in ALERTING_KINDS:
        fields["usage"] = status_usage(usage) if usage else (current or {}).get("usage")
        conditions.append(exhausted_condition(fields["usage"]))
        fields["budgetAlerts"], alert = alerts.evaluate(body, usage or fields["usage"],
                                                        (current or {}).get("budgetAlerts"))
        conditions.append(alert)
    return desired_status(current, conditions, fields, generation, now)


ALERTING_KINDS = ("ApiKey", "Budget")  # the kinds with monthly limits: Exhausted, BudgetAlert, spec.alerts


def _programmed_now(status: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Programmed=True at the object's generation: it stays so while its part of the IR is unchanged."""
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Programmed"), None)
    return cond is not None and cond.get("status") == "True" \
        and cond.get("observedGeneration") == body["metadata"].get("generation")


STATUS_USAGE_FIELDS = ("month", "tokens", "remaining", "requests", "cost", "remainingCost", "currency")


def status_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """What of the mirrored usage goes into the status (KeyUsage); the rest feeds metrics and alerts."""
    return {k: usage[k] for k in STATUS_USAGE_FIELDS if k in usage}


def inputs_of(body: Mapping[str, Any], verdict: ObjectStatus, part: str | None, state: Rollout, stable: bool,
              secrets: Mapping[str, Mapping[str, Any]], usage: Mapping[str, Any] | None, now: datetime) -> tuple[Any, ...]:
    """Everything an object's desired status depends on, cheap to compare: equal inputs
    give an equal status, so an object whose inputs did not change is not looked at again.
    `stable`: the object stays Programmed whatever the rollout does (see programmed_condition)."""
    spec = body.get("spec") or {}
    secret = secrets.get(spec.get("secretName") or (spec.get("existingSecret") or {}).get("name") or "")
    expires = spec.get("expiresAt")
    return (
        body["metadata"].get("resourceVersion") or id(body), verdict.generation, verdict.fields,
        [(c.type, c.status, c.reason, c.message, c.observed_generation) for c in verdict.conditions], part,
        None if stable else (state.complete, state.replicas, state.loaded, state.config_hash, state.discovery),
        ((secret or {}).get("metadata") or {}).get("resourceVersion") or id(secret), usage,
        expires is not None and expired_condition(expires, now).status == "True",
    )


def by_namespace(secrets: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    grouped: dict[str, dict[str, Mapping[str, Any]]] = {}
    for (ns, name), secret in secrets.items():
        grouped.setdefault(ns, {})[name] = secret
    return grouped


PATCH_CONCURRENCY = 16  # status patches in flight at once (a first start writes every object's)
PATCH_BATCH = 32  # statuses written between two looks at whether a change waits to be published


@dataclass(frozen=True)
class _Pending:
    """A status to write, and what to do once it is written."""

    ref: ObjectRef
    body: Mapping[str, Any]
    current: Mapping[str, Any]
    desired: dict[str, Any]
    patch: dict[str, Any]
    inputs: tuple[Any, ...]
    secrets: Mapping[str, Mapping[str, Any]]
    usage: Mapping[str, Any] | None


class StatusWriter:
    def __init__(self, api: KubeApi, webhooks: WebhookSender | None = None) -> None:
        self.api = api
        self.webhooks = webhooks or WebhookSender()
        self._written: dict[str, dict[str, Any]] = {}  # uid -> status we last wrote
        self._programmed: dict[str, str | None] = {}  # uid -> IR fingerprint it was last programmed with
        self._inputs: dict[str, tuple[Any, ...]] = {}  # uid -> inputs of the status last found right
        self.computed = 0  # desired statuses computed (not skipped as unchanged) so far
        self.left = 0  # statuses the last pass left for the next one (it gave way to a change)

    async def write(self, bodies: Mapping[ObjectRef, Mapping[str, Any]], verdicts: Mapping[ObjectRef, ObjectStatus],
                    state: Rollout, secrets: Mapping[tuple[str, str], Mapping[str, Any]],
                    usage: Mapping[str, Mapping[str, Any]], now: datetime,
                    parts: Mapping[tuple[str, str], str] | None = None,
                    preempt: Callable[[], bool] | None = None) -> int:
        """Write every changed status; the number written. `parts`: each
        object's IR fingerprint (see programmed.fingerprints). `preempt`:
        asked between batches; True stops (what is left is found again next time)."""
        live_uids = set()
        grouped = by_namespace(secrets)
        pending: list[_Pending] = []
        for ref, body in bodies.items():
            verdict = verdicts.get(ref)
            uid = body["metadata"].get("uid", "")
            live_uids.add(uid)
            if verdict is None:
                continue
            # Our own last write is fresher than the watched copy until its event arrives.
            current = self._written.get(uid) or body.get("status") or {}
            ns_secrets = grouped.get(ref.namespace, {})
            part = (parts or {}).get((ref.kind, f"{ref.namespace}/{ref.name}"))
            if state.complete:
                self._programmed[uid] = part
            # After a restart nothing is remembered: what is stored was programmed.
            unchanged = self._programmed.get(uid, part) == part
            usage_id = f"{ref.namespace}/{ref.name}"
            key_usage = usage.get(budget_usage_id(usage_id) if ref.kind == "Budget" else usage_id)
            inputs = inputs_of(body, verdict, part, state, unchanged and _programmed_now(current, body), ns_secrets,
                               key_usage, now)
            if self._inputs.get(uid) == inputs:
                continue
            self.computed += 1
            desired = object_status(body, current, verdict, state, ns_secrets, key_usage, now, unchanged)
            patch = status_patch(current, desired)
            if patch is None:
                self._inputs[uid] = inputs
                continue
            next_inputs = inputs_of(body, verdict, part, state, unchanged and _programmed_now(desired, body),
                                    ns_secrets, key_usage, now)
            pending.append(_Pending(ref, body, current, desired, patch, next_inputs, ns_secrets, key_usage))
        written, self.left = 0, 0
        for start in range(0, len(pending), PATCH_BATCH):
            if start and preempt is not None and preempt():
                self.left = len(pending) - start  # a change waits to be published: the rest is written next pass
                break
            written += await self._send(pending[start:start + PATCH_BATCH], now)
        for uid in set(self._written) - live_uids:
            del self._written[uid]
        for uid in set(self._programmed) - live_uids:
            del self._programmed[uid]
        for uid in set(self._inputs) - live_uids:
            del self._inputs[uid]
        return written

    async def _send(self, batch: list[_Pending], now: datetime) -> int:
        """Patch a batch of statuses, PATCH_CONCURRENCY at a time; post their Events and alerts."""
        limit = asyncio.Semaphore(PATCH_CONCURRENCY)

        async def send(item: _Pending) -> bool:
            async with limit:
                return await self._patch(item.ref, item.patch)

        done = await asyncio.gather(*(send(item) for item in batch))
        written = 0
        for item, ok in zip(batch, done, strict=True):
            if not ok:
                continue
            body, current, desired, uid = item.body, item.current, item.desired, item.body["metadata"].get("uid", "")
            written += 1
            self._written[uid] = desired
            self._inputs[uid] = item.inputs
            for change in transitions(current.get("conditions") or [], desired["conditions"]):
                await post_event(self.api, transition_event(body, change, now))
            if body.get("kind") in ALERTING_KINDS:
                await self._alert(body, current, desired, item.usage or desired.get("usage"), item.secrets, now)
        return written

    async def _alert(self, body: Mapping[str, Any], current: Mapping[str, Any], desired: Mapping[str, Any],
                     usage: Mapping[str, Any] | None, secrets: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
        """A Warning Event, and a webhook delivery, for each budget threshold this write recorded first."""
        crossings = alerts.new_crossings(current.get("budgetAlerts"), desired.get("budgetAlerts"),
                                         alerts.budgets_of(usage))
        webhook = ((body.get("spec") or {}).get("alerts") or {}).get("webhook")
        for crossing in crossings:
            message = alerts.describe(crossing.budget, crossing.threshold, crossing.period)
            await post_event(self.api, event_manifest(body, alerts.EVENT_REASON, message, True, now))
            if not (webhook and webhook.get("url")):
                continue
            ref = webhook.get("secretRef") or {}
            secret = secret_values(secrets.get(ref.get("name", ""))).get(ref.get("key", "")) if ref else None
            if ref and not secret:  # never send unsigned what the receiver expects signed
                log.warning("budget alert of %s/%s not sent: its webhook's signing Secret %s has no key %r",
                            body["metadata"]["namespace"], body["metadata"]["name"], ref.get("name"), ref.get("key"))
                continue
            self.webhooks.send(webhook["url"], alerts.cloud_event(body, crossing, now), secret)

    async def close(self) -> None:
        await self.webhooks.close()

    async def _patch(self, ref: ObjectRef, patch: dict[str, Any]) -> bool:
        info = KIND_BY_NAME[ref.kind]
        path = resource_path("lockgate.io/v1alpha1", info.plural, ref.namespace, ref.name, "status")
        try:
            await self.api.patch(path, patch)
        except ApiError as e:
            if e.status != 404:  # deleted meanwhile: nothing to report on
                log.warning("status of %s not written: %s", ref, e)
            return False
        return True
