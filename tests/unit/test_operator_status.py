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


def test_status_inputs_change_with_what_the_status_depends_on() -> None:
    from lockgate.operator.programmed import Rollout
    from lockgate.operator.status_writer import inputs_of
    from lockgate.operator.translate import ObjectStatus

    body = {"kind": "ApiKey", "metadata": {"name": "k", "resourceVersion": "7", "generation": 1},
            "spec": {"secretName": "k-key", "expiresAt": "2030-01-01T00:00:00Z"}}
    secrets = {"k-key": {"metadata": {"resourceVersion": "3"}}}
    verdict = ObjectStatus(1, [Condition(type="Accepted", status="True", reason="Accepted", last_transition_time=T0)])
    later = ObjectStatus(1, [Condition(type="Accepted", status="True", reason="Accepted",
                                       last_transition_time=T0 + timedelta(seconds=5))])
    done, other = Rollout("a" * 64, "c", 1, 1), Rollout("b" * 64, "c", 1, 0)
    base = inputs_of(body, verdict, "p1", done, False, secrets, None, T0)
    assert inputs_of(body, later, "p1", done, False, secrets, None, T0) == base  # a verdict's time is no input
    assert inputs_of(body, verdict, "p1", other, True, secrets, None, T0) == \
        inputs_of(body, verdict, "p1", done, True, secrets, None, T0)  # stably Programmed: the rollout is no input
    assert inputs_of(body, verdict, "p1", other, False, secrets, None, T0) != base
    assert inputs_of(body, verdict, "p2", done, False, secrets, None, T0) != base
    assert inputs_of(body, verdict, "p1", done, False, {"k-key": {"metadata": {"resourceVersion": "4"}}},
                     None, T0) != base
    assert inputs_of(body, verdict, "p1", done, False, secrets, {"tokens": 5}, T0) != base
    assert inputs_of(body, verdict, "p1", done, False, secrets, None, datetime(2031, 1, 1, tzinfo=timezone.utc)) != base


def test_a_null_field_equals_a_missing_one() -> None:
    stored = {"usage": {"tokens": 0, "month": "2026-12"}, "conditions": []}
    assert status_patch(stored, {"usage": {"tokens": 0, "month": "2026-12", "remaining": None}, "conditions": []}) is None
    patch = status_patch({"usage": {"tokens": 0, "remaining": 5}, "conditions": []},
                         {"usage": {"tokens": 0, "remaining": None}, "conditions": []})
    assert patch == {"status": {"usage": {"tokens": 0, "remaining": None}, "conditions": []}}  # null removes it
