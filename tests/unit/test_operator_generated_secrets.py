"""Secrets the operator generates for the install: created when absent, never changed."""

from __future__ import annotations

import base64

import pytest

from lockgate.cli.operator_cmd import settings_from
from lockgate.operator.generated_secrets import GENERATED_BY, GeneratedSecret, new_value, secret_action

WANTED = GeneratedSecret("lockgate-redis", "password")


def test_parse_names_a_secret_and_its_key() -> None:
    assert GeneratedSecret.parse("lockgate-mcp-session/session-key") == GeneratedSecret("lockgate-mcp-session",
                                                                                         "session-key")
    for bad in ("no-key", "/key", "name/"):
        with pytest.raises(ValueError, match="NAME/KEY"):
            GeneratedSecret.parse(bad)


def test_an_absent_secret_is_created_with_a_random_value() -> None:
    action = secret_action(WANTED, "lockgate-system", None, "v" * 48)
    assert action is not None and action[0] == "create"
    manifest = action[1]
    assert manifest["metadata"] == {"name": "lockgate-redis", "namespace": "lockgate-system", "labels": GENERATED_BY}
    assert base64.b64decode(manifest["data"]["password"]) == b"v" * 48
    values = {new_value() for _ in range(20)}
    assert len(values) == 20 and all(len(v) == 48 and v.replace("-", "").replace("_", "").isalnum() for v in values)


def test_an_existing_value_is_never_changed() -> None:
    existing = {"data": {"password": base64.b64encode(b"kept").decode(), "other": "eA=="}}
    assert secret_action(WANTED, "ns", existing, "new") is None


def test_a_secret_without_the_key_gets_only_that_key() -> None:
    action = secret_action(WANTED, "ns", {"data": {"other": "eA=="}}, "new")
    assert action == ("patch", {"data": {"password": base64.b64encode(b"new").decode()}})


def test_the_operator_command_takes_generated_secrets() -> None:
    import argparse

    from lockgate.cli import operator_cmd

    parser = argparse.ArgumentParser()
    operator_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["operator", "-n", "a", "--generate-secret", "s1/k1", "--generate-secret", "s2/k2"])
    assert settings_from(args).generated_secrets == (GeneratedSecret("s1", "k1"), GeneratedSecret("s2", "k2"))
