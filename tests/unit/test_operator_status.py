"""Status merging: lastTransitionTime kept, foreign conditions kept, no-op writes avoided."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lockgate.api.meta import Condition
from lockgate.operator.status import desired_status, merge_conditions, status_patch, transitions

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=5)


def cond(type_: str, status: str, reason: str = "Ok") -> Condition:
    return Condition(type=type_, status=status, reason=reason, message="m")  # type: ignore[arg-type]


def test_unchanged_status_keeps_transition_time_and_needs_no_write() -> None:
    first = desired_status(None, [cond("Accepted", "True")], {"models": ["a"]}, 3, T0)
    again = desired_status(first, [cond("Accepted", "True")], {"models": ["a"]}, 3, T1)
    assert again["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status_patch(first, again) is None


def test_changed_condition_gets_new_transition_time_and_generation() -> None:
    first = desired_status(None, [cond("Accepted", "True")], {}, 1, T0)
    second = desired_status(first, [cond("Accepted", "False", "InvalidSpec")], {}, 2, T1)
    c = second["conditions"][0]
    assert (c["status"], c["reason"], c["observedGeneration"]) == ("False", "InvalidSpec", 2)
    assert c["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert second["observedGeneration"] == 2
    assert status_patch(first, second) == {"status": second}


def test_reason_change_without_status_change_keeps_time_but_is_written() -> None:
    first = desired_status(None, [cond("Ready", "False", "NoEndpoints")], {}, 1, T0)
    second = desired_status(first, [cond("Ready", "False", "SecretNotFound")], {}, 1, T1)
    assert second["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status_patch(first, second) is not None


def test_foreign_conditions_are_kept_and_stale_fields_removed() -> None:
    current = {"conditions": [{"type": "example.com/Audited", "status": "True", "reason": "X"}],
               "readyEndpoints": 2}
    desired = desired_status(current, [cond("Accepted", "True")], {"readyEndpoints": None}, 1, T0)
    assert [c["type"] for c in desired["conditions"]] == ["Accepted", "example.com/Audited"]
    patch = status_patch(current, desired)
    assert patch is not None and patch["status"]["readyEndpoints"] is None


def test_condition_order_does_not_cause_writes() -> None:
    a = merge_conditions([], [cond("Accepted", "True"), cond("Ready", "True")], 1, T0)
    status = {"observedGeneration": 1, "conditions": a}
    assert status_patch(status, {"observedGeneration": 1, "conditions": list(reversed(a))}) is None


def test_transitions_report_changed_statuses_with_severity() -> None:
    before = [{"type": "Accepted", "status": "True"}, {"type": "Exhausted", "status": "False"}]
    after = [{"type": "Accepted", "status": "False", "reason": "InvalidSpec", "message": "bad"},
             {"type": "Exhausted", "status": "True", "reason": "MonthlyBudgetExhausted", "message": ""},
             {"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]
    changes = {t.type: t for t in transitions(before, after)}
    assert set(changes) == {"Accepted", "Exhausted"}  # Ready appearing True is no news
    assert changes["Accepted"].warning and changes["Exhausted"].warning
    appearing_bad = transitions([], [{"type": "Ready", "status": "False", "reason": "NoEndpoints"}])
    assert [t.type for t in appearing_bad] == ["Ready"] and appearing_bad[0].old is None
