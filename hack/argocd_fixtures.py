"""Writes a health-check fixture for every combination of the conditions that
decide an object's Argo CD health, with the outcome each must have, into
deploy/argocd/health/<group>/<Kind>/testdata/combo_*.yaml and the combo cases
of health_test.yaml. The outcome comes from the table below, written apart
from the Lua script, so the fixtures test the script against it.

    python hack/argocd_fixtures.py           rewrite
    python hack/argocd_fixtures.py --check   exit 1 when stale
"""

from __future__ import annotations

import copy
import itertools
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
HEALTH = REPO / "deploy" / "argocd" / "health" / "lockgate.io"
KINDS = ("ModelProvider", "ApiKey", "Route", "MCPServer", "Budget")
STATUS = {"T": "True", "F": "False", "U": "Unknown"}
# (condition, statuses it takes); ApiKeys also have Expired and Exhausted, Budgets Exhausted.
COMMON = (("Accepted", "TF"), ("Ready", "TFU"), ("Programmed", "TF"))
APIKEY = (("Expired", "TF"), ("Exhausted", "TF"))
BUDGET = (("Exhausted", "TF"),)  # a team Budget spent for the month
MESSAGE = "{type} is {status} in this fixture"


def expected(states: dict[str, str]) -> dict[str, str]:
    """The health of an object with these condition statuses (the decision table)."""
    def said(kind: str) -> str:
        return MESSAGE.format(type=kind, status=states[kind])

    for kind in ("Accepted", "Ready"):
        if states[kind] == "False":
            return {"status": "Degraded", "message": said(kind)}
    for kind in ("Expired", "Exhausted"):
        if states.get(kind) == "True":
            return {"status": "Degraded", "message": said(kind)}
    if states["Programmed"] == "False":
        return {"status": "Progressing", "message": said("Programmed")}
    if states["Ready"] == "True":
        return {"status": "Healthy", "message": said("Ready")}
    return {"status": "Progressing", "message": said("Ready")}


def combinations(kind: str) -> list[dict[str, str]]:
    axes = COMMON + (APIKEY if kind == "ApiKey" else BUDGET if kind == "Budget" else ())
    return [{name: STATUS[s] for (name, _), s in zip(axes, pick)}
            for pick in itertools.product(*(letters for _, letters in axes))]


def fixture_name(states: dict[str, str]) -> str:
    return "combo_" + "_".join(f"{k.lower()}-{v.lower()}" for k, v in states.items()) + ".yaml"


def fixture(base: dict[str, Any], states: dict[str, str]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    generation = obj["metadata"]["generation"]
    obj["status"] = {"observedGeneration": generation, "conditions": [
        {"type": kind, "status": status, "reason": f"{kind}{status}", "message": MESSAGE.format(type=kind, status=status),
         "observedGeneration": generation, "lastTransitionTime": "2026-11-20T10:00:00Z"}
        for kind, status in states.items()]}
    return obj


def render(kind: str) -> tuple[dict[Path, str], str]:
    """The combo fixture files of a kind, and its health_test.yaml with their cases."""
    folder = HEALTH / kind
    base = yaml.safe_load((folder / "testdata" / "healthy.yaml").read_text(encoding="utf-8"))
    files, cases = {}, []
    for states in combinations(kind):
        name = fixture_name(states)
        files[folder / "testdata" / name] = yaml.safe_dump(fixture(base, states), sort_keys=False)
        cases.append({"healthStatus": expected(states), "inputPath": f"testdata/{name}"})
    spec = yaml.safe_load((folder / "health_test.yaml").read_text(encoding="utf-8"))
    kept = [t for t in spec["tests"] if not t["inputPath"].startswith("testdata/combo_")]
    return files, yaml.safe_dump({"tests": kept + cases}, sort_keys=False)


def main(argv: list[str]) -> int:
    stale = []
    for kind in KINDS:
        files, test_yaml = render(kind)
        files[HEALTH / kind / "health_test.yaml"] = test_yaml
        old = set((HEALTH / kind / "testdata").glob("combo_*.yaml")) - set(files)
        for path, text in files.items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
                if "--check" not in argv:
                    path.write_text(text, encoding="utf-8")
        for path in old:
            stale.append(path)
            if "--check" not in argv:
                path.unlink()
    if "--check" in argv and stale:
        for path in stale:
            print(f"{path.relative_to(REPO)} is stale: run python hack/argocd_fixtures.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
