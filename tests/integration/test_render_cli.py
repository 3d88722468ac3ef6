"""`lockgate render` as users run it in CI: a real process over real files."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lockgate.api.configmap import decode
from lockgate.api.ir import hash_key

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "contract"


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.cli.main", "render", *args], capture_output=True, text=True, timeout=60
    )


def _contract_secret_values() -> dict[str, str]:
    values = {}
    for file in CONTRACT.glob("*.yaml"):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc.get("kind") == "Secret":
                for key, value in (doc.get("stringData") or {}).items():
                    values[f"{doc['metadata']['name']}/{key}"] = value
                for key, value in (doc.get("data") or {}).items():
                    values[f"{doc['metadata']['name']}/{key}"] = base64.b64decode(value).decode()
    return values


@pytest.mark.skipif(not CONTRACT.is_dir(), reason="the shared contract folder is not beside this checkout")
def test_contract_renders_strictly_with_secrets_only_in_the_one_secret() -> None:
    result = _render("--strict", "-o", "json", "--include-secret-values", "-f", str(CONTRACT))
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    secrets = [o for o in items if o["kind"] == "Secret"]
    maps = [o for o in items if o["kind"] == "ConfigMap"]
    assert len(secrets) == 1 and maps
    secret_values = _contract_secret_values()
    assert secret_values, "the contract has Secrets"
    outside = json.dumps(maps) + result.stderr
    for name, value in secret_values.items():
        assert value not in outside, f"{name} leaked outside the credentials Secret"
    config, credentials = decode(maps, secrets[0])
    provider_values = {v for k, v in secret_values.items() if k.endswith("-credentials/api-key")}
    assert set(credentials.values.values()) == provider_values
    brought = secret_values["batch-jobs-key/token"]
    key = next(k for k in config.keys if k.id == "ai-gateway/batch-jobs")
    assert [h.sha256 for h in key.hashes] == [hash_key(brought)]
    assert "KeyPending" in result.stderr  # generated keys are the operator's job


@pytest.mark.skipif(not CONTRACT.is_dir(), reason="the shared contract folder is not beside this checkout")
def test_secret_values_stay_out_of_the_output_by_default() -> None:
    result = _render("--strict", "-f", str(CONTRACT))
    assert result.returncode == 0, result.stderr
    for name, value in _contract_secret_values().items():
        assert value not in result.stdout + result.stderr, f"{name} printed"
    (secret,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Secret"]
    assert secret["metadata"]["annotations"]["lockgate.io/redacted"] == "true"
    assert secret["data"] and set(secret["data"].values()) == {""}


def test_strict_fails_on_a_rejected_object_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: lockgate.io/v1alpha1\nkind: Route\nmetadata: {name: r, namespace: ns}\n"
        "spec: {type: openai, aliases: [{name: a, targets: [{model: missing}]}]}\n"
    )
    lenient = _render("-f", str(tmp_path))
    assert lenient.returncode == 0
    strict = _render("--strict", "-f", str(tmp_path))
    assert strict.returncode == 1
    assert "Route ns/r: not accepted (UnknownModel)" in strict.stderr
    assert list(yaml.safe_load_all(strict.stdout))[0]["kind"] == "ConfigMap"


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    result = _render("-f", str(tmp_path))
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr
