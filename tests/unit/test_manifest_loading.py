"""Manifests load as `yaml.safe_load_all` reads them, and a reload parses only the files that changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lockgate.cli import fast_yaml
from lockgate.cli.manifests import ManifestCache, ManifestError, load_manifests

DOCUMENTS = """\
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {name: a, namespace: ns, labels: {"on": "yes"}}
spec:
  limits: {rpm: 60, tpm: 1_000, monthlyTokens: 0x10}
  models: [gpt-4o, '010', 010, yes, no, null, ~, 1.5, .inf, 2026-01-01]
  shared: &shared {x: "1"}
  again: *shared
  blob: !!binary aGk=
---
merged: {<<: {a: 1}, b: 2}
---
- a list
- {of: [things]}
---
"""


def test_documents_are_what_the_safe_loader_makes() -> None:
    assert list(fast_yaml.load_all(DOCUMENTS)) == list(yaml.safe_load_all(DOCUMENTS))


def test_a_document_nesting_in_itself_is_left_to_the_safe_loader() -> None:
    (doc,) = fast_yaml.load_all("k: &r [1, *r]\n")
    assert doc["k"][1] is doc["k"]


def test_errors_still_say_where(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ManifestError, match="bad.yaml"):
        load_manifests([tmp_path])


def test_a_reload_parses_only_the_files_that_changed(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / f"{name}.yaml").write_text(f"kind: ConfigMap\nmetadata: {{name: {name}}}\n")
    cache = ManifestCache()
    first = load_manifests([tmp_path], cache)
    assert cache.parsed == 3
    assert load_manifests([tmp_path], cache) == first and cache.parsed == 3  # nothing changed, nothing parsed
    changed = tmp_path / "b.yaml"
    changed.write_text("kind: ConfigMap\nmetadata: {name: b2}\n")
    os.utime(changed, ns=(changed.stat().st_mtime_ns + 10**9,) * 2)  # as an edit a second later
    (tmp_path / "c.yaml").unlink()
    (tmp_path / "d.yaml").write_text("kind: ConfigMap\nmetadata: {name: d}\n")
    assert [o["metadata"]["name"] for o in load_manifests([tmp_path], cache)] == ["a", "b2", "d"]
    assert cache.parsed == 5  # b again and d; a from the cache
    assert set(cache.files) == {tmp_path / "a.yaml", changed, tmp_path / "d.yaml"}  # c forgotten


PLAIN_MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {name: k1, namespace: ns, labels: {team: a}}
stringData:
  api-key: lg-0123456789abcdef
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata:
  name: k1
  namespace: ns
spec:
  consumer: c1
  secretName: k1
  models: [gpt-4o, "gpt-4o-mini"]
  limits: {rpm: 60, tpm: 0x10, monthlyTokens: -1}
  enabled: true
  note: |
    two
    lines
  empty: null
---
"""


def test_a_plain_manifest_takes_the_quick_way_and_reads_the_same() -> None:
    assert fast_yaml._quick(PLAIN_MANIFEST) is not None
    assert list(fast_yaml.load_all(PLAIN_MANIFEST)) == list(yaml.safe_load_all(PLAIN_MANIFEST))


@pytest.mark.parametrize("text", [
    "a: yes\n", "a: 'yes'\n", "a: on\n", "a: 010\n", "a: '010'\n", "a: 1:20\n", "a: 1e3\n", "a: 1.5\n",
    "a: 0o17\n", "a: 1_000\n", "a: 2026-01-01\n", "a: ''\n", "a: 0b101\n", "<<: {a: 1}\nb: 2\n", "a: 1\na: 2\n",
    "a: !!str 1\n", "a: !Custom x\n", "%YAML 1.1\n---\na: 1\n", "# only a comment\n", "", "a: .inf\n", "a: ~\n",
    "a: &x [1]\nb: *x\n", "a: [1, 2\n",
])
def test_where_the_two_yaml_versions_could_differ_the_safe_loader_decides(text: str) -> None:
    try:
        expected = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            list(fast_yaml.load_all(text))
        return
    assert list(fast_yaml.load_all(text)) == expected


def test_a_percent_sign_inside_a_value_is_no_directive() -> None:
    text = "kind: Budget\nspec: {note: 80% spent}\n"
    assert fast_yaml._quick(text) == list(yaml.safe_load_all(text))
