"""The standalone gateway's config source: manifests on disk.

Reads files and folders of manifests, translates them with the same pure
translator the operator uses, and yields a new snapshot whenever a change
produces a different config. A file that does not parse keeps the last good
snapshot (and the log says why); a rejected object is left out, as in a cluster.

Generated keys: an ApiKey whose `secretName` Secret is not among the manifests
gets a key generated once and kept under `<state dir>/keys/<namespace>/<name>`
(mode 0600); the log says where, never what.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from lockgate.api.apikey import GENERATED_KEY_FIELD
from lockgate.api.secret_data import generate_key
from lockgate.cli.manifests import SUFFIXES, ManifestCache, ManifestError, load_manifests
from lockgate.api.meta import DNS_SUBDOMAIN, GROUP
from lockgate.operator.translate import Translation, translate
from lockgate.operator.translate.cache import TranslationCache
from lockgate.proxy.source import Snapshot

log = logging.getLogger("lockgate.source.files")
STATE_DIR_ENV = "LOCKGATE_STATE_DIR"
_SAFE_NAME = re.compile(DNS_SUBDOMAIN)


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or ".state")


class FileSource:
    def __init__(self, paths: Iterable[str | Path], state_dir: str | Path | None = None, *, debounce_ms: int = 300) -> None:
        self.paths = [Path(p).resolve() for p in paths]
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.debounce_ms = debounce_ms
        self.last: Translation | None = None  # the last good translation, statuses included
        self.load_failures = 0  # edits that did not load (a metric)
        self.cache = ManifestCache()  # a reload parses only the files that changed
        self.translations = TranslationCache()  # and translates only the objects that changed

    def load(self) -> Translation:
        """Reads and translates once; raises ManifestError for unreadable files."""
        objects = load_manifests(self.paths, self.cache)
        objects.extend(self._generated_key_secrets(objects))
        translation = translate(objects, datetime.now(UTC), self.translations)
        _log_problems(translation)
        return translation

    async def updates(self) -> AsyncIterator[Snapshot]:
        current: tuple[str, str] | None = None
        first = True
        async for _ in self._changes():
            try:
                translation = await asyncio.to_thread(self.load)
            except ManifestError as exc:
                self.load_failures += 1
                kept = "keeping the last good config" if current else "waiting for a valid config"
                log.error("manifests not loaded, %s: %s", kept, exc)
                continue
            version = (translation.config.hash, translation.credentials.content_hash())
            self.last = translation
            if version == current:
                continue
            verb = "loaded" if first else "reloaded"
            first = False
            current = version
            log.info(
                "config %s: %d providers, %d keys, %d routes, %d MCP servers (hash %s)", verb,
                len(translation.config.providers), len(translation.config.keys), len(translation.config.routes),
                len(translation.config.mcp_servers), translation.config.hash[:12],
            )
            yield Snapshot(translation.config, translation.credentials)

    async def _changes(self) -> AsyncIterator[None]:
        """One tick for the initial read, then one per batch of changes. The
        watcher starts before the initial read, so no edit falls between."""
        roots = sorted({p if p.is_dir() else p.parent for p in self.paths})
        files = {p for p in self.paths if not p.is_dir()}
        dirs = [p for p in self.paths if p.is_dir()]

        def relevant(_: Change, raw: str) -> bool:
            path = Path(raw)
            if path in files:
                return True
            return path.suffix in SUFFIXES and any(path.is_relative_to(d) for d in dirs)

        changed = asyncio.Event()

        async def watch() -> None:
            try:
                async for _batch in awatch(*roots, watch_filter=relevant, debounce=self.debounce_ms, step=50):
                    changed.set()
            except Exception:
                log.exception("watching %s stopped; edits are no longer picked up", ", ".join(map(str, roots)))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)  # the task creates its inotify watch before its first await
        try:
            yield None
            while True:
                await changed.wait()
                changed.clear()
                yield None
        finally:
            watcher.cancel()

    def _generated_key_secrets(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        present = {(_ns(o), _name(o)) for o in objects if o.get("kind") == "Secret"}
        synthesized = []
        for obj in objects:
            if obj.get("kind") != "ApiKey" or not str(obj.get("apiVersion", "")).startswith(f"{GROUP}/"):
                continue
            spec = obj.get("spec") or {}
            secret_name = spec.get("secretName")
            ns, name = _ns(obj), _name(obj)
            if not isinstance(secret_name, str) or (ns, secret_name) in present:
                continue
            if not all(_SAFE_NAME.fullmatch(part) for part in (ns, name, secret_name)):
                continue  # the translator rejects the object; no file for a name like that
            key = self._stored_key(ns, name)
            present.add((ns, secret_name))
            synthesized.append({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": ns},
                "stringData": {GENERATED_KEY_FIELD: key},
            })
        return synthesized

    def _stored_key(self, namespace: str, name: str) -> str:
        path = self.state_dir / "keys" / namespace / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = generate_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        log.warning("generated a key for ApiKey %s/%s; read it from %s (mode 0600)", namespace, name, path)
        return key


def _ns(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _log_problems(translation: Translation) -> None:
    for ref, status in sorted(translation.statuses.items()):
        for cond in status.conditions:
            if cond.type == "Accepted" and cond.status != "True":
                log.warning("%s left out (%s): %s", ref, cond.reason, cond.message)
            elif cond.type == "Ready" and cond.status != "True" and status.accepted:
                log.info("%s not ready (%s): %s", ref, cond.reason, cond.message)
