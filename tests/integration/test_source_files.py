"""FileSource over real files: keys, hot reload, broken edits."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lockgate.api.ir import hash_key
from lockgate.proxy.source import Snapshot
from lockgate.cli.source_files import FileSource

PROVIDER = """\
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: local, namespace: demo}}
spec:
  type: openai-compatible
  endpoint: http://127.0.0.1:9/v1
  models: [{{name: {model}}}]
"""
GENERATED_KEY = """\
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {name: generated, namespace: demo}
spec: {consumer: me, secretName: generated-key}
"""
BROUGHT_KEY = """\
apiVersion: v1
kind: Secret
metadata: {name: brought-key, namespace: demo}
stringData: {api-key: lg-brought-0000}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {name: brought, namespace: demo}
spec: {consumer: me, secretName: brought-key}
"""


async def _next(updates: AsyncIterator[Snapshot], timeout: float = 10.0) -> Snapshot:
    return await asyncio.wait_for(anext(updates), timeout)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # as editors do: a new inode


def test_generated_keys_are_stored_once_with_mode_0600(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "p.yaml").write_text(PROVIDER.format(model="m") + "---\n" + GENERATED_KEY + "---\n" + BROUGHT_KEY)
    caplog.set_level(logging.INFO, logger="lockgate")
    first = FileSource([manifests], tmp_path / "state").load()
    key_file = tmp_path / "state" / "keys" / "demo" / "generated"
    key = key_file.read_text().strip()
    assert key.startswith("lg-") and len(key) > 40
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in caplog.text and key not in caplog.text
    hashes = {k.id: [h.sha256 for h in k.hashes] for k in first.config.keys}
    assert hashes == {"demo/generated": [hash_key(key)], "demo/brought": [hash_key("lg-brought-0000")]}
    assert not (tmp_path / "state" / "keys" / "demo" / "brought").exists()
    again = FileSource([manifests], tmp_path / "state").load()  # a restart keeps the key
    assert again.config.hash == first.config.hash


def test_a_reload_translates_only_the_keys_that_changed(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "p.yaml").write_text(PROVIDER.format(model="m") + "---\n" + GENERATED_KEY + "---\n" + BROUGHT_KEY)
    source = FileSource([manifests], tmp_path / "state")
    source.load()
    assert (source.translations.misses, source.translations.hits) == (2, 0)
    (manifests / "more.yaml").write_text(BROUGHT_KEY.replace("brought", "other").replace("0000", "1111"))
    reloaded = source.load()
    assert (source.translations.misses, source.translations.hits) == (3, 2)  # the new key only
    assert {k.id for k in reloaded.config.keys} == {"demo/generated", "demo/brought", "demo/other"}
    assert reloaded.config == FileSource([manifests], tmp_path / "state").load().config  # as a cold start


async def test_edits_reload_and_a_broken_edit_keeps_the_last_good_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "provider.yaml"
    file.write_text(PROVIDER.format(model="first"))
    caplog.set_level(logging.INFO, logger="lockgate")
    updates = FileSource([file], tmp_path / "state", debounce_ms=50).updates()
    try:
        snapshot = await _next(updates)
        assert [m.name for m in snapshot.config.providers[0].models] == ["first"]

        _write(file, PROVIDER.format(model="second"))
        snapshot = await _next(updates)
        assert [m.name for m in snapshot.config.providers[0].models] == ["second"]

        _write(file, "kind: [unclosed\n")
        pending = asyncio.ensure_future(anext(updates))
        deadline = time.monotonic() + 10
        while "keeping the last good config" not in caplog.text:
            assert time.monotonic() < deadline, "the broken edit was not reported"
            await asyncio.sleep(0.05)
        assert not pending.done()  # nothing new was yielded for the broken file

        _write(file, PROVIDER.format(model="third"))
        snapshot = await asyncio.wait_for(pending, 10)
        assert [m.name for m in snapshot.config.providers[0].models] == ["third"]
    finally:
        await updates.aclose()
