"""Argo CD health checks of the five kinds, run over their health_test.yaml cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.argocd_lua import run_health

REPO = Path(__file__).resolve().parents[2]
HEALTH = REPO / "deploy" / "argocd" / "health" / "lockgate.io"
KINDS = ("ModelProvider", "ApiKey", "Route", "MCPServer", "Budget")


def cases() -> list[Any]:
    found = []
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text(encoding="utf-8"))
        for test in spec["tests"]:
            found.append(pytest.param(kind, test["inputPath"], test["healthStatus"], id=f"{kind}-{test['inputPath']}"))
    return found


def load(kind: str, input_path: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((HEALTH / kind / input_path).read_text(encoding="utf-8"))
    return obj


@pytest.mark.parametrize("kind, input_path, expected", cases())
def test_health_case(kind: str, input_path: str, expected: dict[str, str]) -> None:
    obj = load(kind, input_path)
    assert obj["kind"] == kind, "testdata of another kind"
    script = (HEALTH / kind / "health.lua").read_text(encoding="utf-8")
    assert run_health(script, obj) == expected


def test_every_kind_has_every_outcome() -> None:
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH / kind / "health_test.yaml").read_text(encoding="utf-8"))
        assert {t["healthStatus"]["status"] for t in spec["tests"]} == {"Healthy", "Progressing", "Degraded"}
        listed = {t["inputPath"] for t in spec["tests"]}
        on_disk = {f"testdata/{p.name}" for p in (HEALTH / kind / "testdata").glob("*.yaml")}
        assert listed == on_disk, f"{kind}: testdata files and health_test.yaml disagree"


def test_kinds_share_one_script() -> None:
    scripts = {(HEALTH / kind / "health.lua").read_text(encoding="utf-8") for kind in KINDS}
    assert len(scripts) == 1, "the health.lua files drifted apart"


def test_sandbox_has_no_string_library() -> None:
    """The runner must be as strict as Argo CD, or the tests prove nothing."""
    with pytest.raises(Exception, match="string"):
        run_health('return {status = string.upper("x")}', {})


def test_degraded_wins_over_ready_true_when_not_accepted() -> None:
    obj = load("Route", "testdata/healthy.yaml")
    obj["status"]["conditions"][0].update(status="False", reason="InvalidSpec", message="")
    script = (HEALTH / "Route" / "health.lua").read_text(encoding="utf-8")
    assert run_health(script, obj) == {"status": "Degraded", "message": "InvalidSpec"}


def test_every_combination_of_conditions_has_a_fixture() -> None:
    """hack/argocd_fixtures.py writes one fixture per combination of Accepted, Ready and
    Programmed (and Expired, Exhausted for ApiKeys, Exhausted for Budgets) with its outcome from a decision table
    kept apart from the Lua; the cases above run each. Here: the files are current."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(REPO / "hack" / "argocd_fixtures.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    for kind in KINDS:
        combos = list((HEALTH / kind / "testdata").glob("combo_*.yaml"))
        assert len(combos) == (2 * 3 * 2) * {"ApiKey": 4, "Budget": 2}.get(kind, 1)


@pytest.mark.parametrize("conditions, expected", [
    ({"Accepted": "True", "Ready": "True", "Programmed": "False"}, "Progressing"),
    ({"Accepted": "True", "Ready": "True", "Programmed": "True", "Expired": "True"}, "Degraded"),
    ({"Accepted": "True", "Ready": "True", "Programmed": "True", "Exhausted": "True"}, "Degraded"),
])
def test_programmed_false_is_progressing_and_a_spent_key_is_degraded(conditions: dict[str, str],
                                                                      expected: str) -> None:
    obj = load("ApiKey", "testdata/healthy.yaml")
    obj["status"]["conditions"] = [{"type": t, "status": s, "reason": t, "message": f"why {t}"}
                                   for t, s in conditions.items()]
    health = run_health((HEALTH / "ApiKey" / "health.lua").read_text(encoding="utf-8"), obj)
    bad = next((t for t, s in conditions.items() if s == ("False" if t == "Programmed" else "True")
                and t in ("Programmed", "Expired", "Exhausted")), None)
    assert health == {"status": expected, "message": f"why {bad}"}
