"""How the IR travels: ConfigMap(s) for the config, one Secret for credentials.

Layouts of the head ConfigMap (named `config_map`):
- small config: `data["config.json"]`;
- large config: `binaryData["config.json.gz"]` (gzip, base64 on the wire);
- past one object's size: `data["index.json"]` naming the parts
  `<config_map>-1`, `<config_map>-2`, ... whose `binaryData["part"]` chunks,
  concatenated, are the gzip stream.
The credentials Secret holds `credentials.json` (credential id -> value; ids
contain "/", which Secret keys may not). Every object carries the config hash,
so a reader can tell parts of one publication from parts of another.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

from lockgate.api.ir import Credentials, GatewayConfig, canonical_json

CONFIG_KEY = "config.json"
GZIP_KEY = "config.json.gz"
INDEX_KEY = "index.json"
PART_KEY = "part"
CREDENTIALS_KEY = "credentials.json"
HASH_ANNOTATION = "lockgate.io/config-hash"
CREDENTIALS_HASH_ANNOTATION = "lockgate.io/credentials-hash"
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "lockgate", "app.kubernetes.io/part-of": "lockgate"}
CONFIG_SET_LABEL = "lockgate.io/config-set"  # the head's name, on the head and its parts: one label selector lists them

GZIP_ABOVE = 256 * 1024  # bytes of JSON past which the config is compressed
PART_BYTES = 900 * 1024  # a ConfigMap holds at most 1 MiB of data


def encode(
    config: GatewayConfig,
    credentials: Credentials,
    namespace: str,
    config_map: str = "lockgate-config",
    secret: str = "lockgate-credentials",
    *,
    gzip_above: int = GZIP_ABOVE,
    part_bytes: int = PART_BYTES,
) -> list[dict[str, Any]]:
    """The ConfigMap(s), head first, then the credentials Secret."""
    if not config.hash:
        config = config.with_hash()
    raw = canonical_json(config.model_dump(mode="json")).encode()
    head = _object("ConfigMap", config_map, namespace, config.hash, config_map)
    if len(raw) <= gzip_above:
        head["data"] = {CONFIG_KEY: raw.decode()}
        objects = [head]
    else:
        packed = gzip.compress(raw, mtime=0)
        if len(packed) <= part_bytes:
            head["binaryData"] = {GZIP_KEY: _b64(packed)}
            objects = [head]
        else:
            chunks = [packed[i : i + part_bytes] for i in range(0, len(packed), part_bytes)]
            names = [f"{config_map}-{n}" for n in range(1, len(chunks) + 1)]
            index = {"hash": config.hash, "encoding": "gzip", "parts": names}
            head["data"] = {INDEX_KEY: canonical_json(index)}
            objects = [head]
            for name, chunk in zip(names, chunks, strict=True):
                part = _object("ConfigMap", name, namespace, config.hash, config_map)
                part["binaryData"] = {PART_KEY: _b64(chunk)}
                objects.append(part)
    creds = _object("Secret", secret, namespace, config.hash)
    creds["metadata"]["annotations"][CREDENTIALS_HASH_ANNOTATION] = credentials.content_hash()
    creds["type"] = "Opaque"
    creds["data"] = {CREDENTIALS_KEY: _b64(canonical_json(credentials.values).encode())}
    objects.append(creds)
    return objects


def belongs_to(config_map_name: str, base: str) -> bool:
    """The base ConfigMap or one of its numbered parts (`base-1`, `base-2`...)."""
    return config_map_name == base or re.fullmatch(re.escape(base) + r"-[0-9]+", config_map_name) is not None


def decode(config_maps: list[dict[str, Any]], secret: dict[str, Any]) -> tuple[GatewayConfig, Credentials]:
    """The config and credentials back; ValueError when parts are missing,
    from another publication, or the content does not match its hash."""
    by_name = {cm.get("metadata", {}).get("name"): cm for cm in config_maps}
    head = next((cm for cm in config_maps if _is_head(cm)), None)
    if head is None:
        raise ValueError(f"no ConfigMap holds {CONFIG_KEY}, {GZIP_KEY} or {INDEX_KEY}")
    data = head.get("data") or {}
    binary = head.get("binaryData") or {}
    if CONFIG_KEY in data:
        raw = data[CONFIG_KEY].encode()
    elif GZIP_KEY in binary:
        raw = gzip.decompress(_unb64(binary[GZIP_KEY]))
    else:
        index = json.loads(data[INDEX_KEY])
        chunks = []
        for name in index["parts"]:
            part = by_name.get(name)
            if part is None:
                raise ValueError(f"config part {name} is missing")
            part_hash = part.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
            if part_hash != index["hash"]:
                raise ValueError(f"config part {name} belongs to another publication ({part_hash})")
            chunks.append(_unb64(part["binaryData"][PART_KEY]))
        raw = gzip.decompress(b"".join(chunks))
    config = GatewayConfig.model_validate_json(raw)
    if config.hash != config.content_hash():
        raise ValueError(f"config content does not match its hash {config.hash}")
    return config, decode_credentials(secret)


def decode_credentials(secret: dict[str, Any]) -> Credentials:
    data = secret.get("data") or {}
    if CREDENTIALS_KEY in data:
        return Credentials(values=json.loads(_unb64(data[CREDENTIALS_KEY])))
    string_data = secret.get("stringData") or {}
    if CREDENTIALS_KEY in string_data:
        return Credentials(values=json.loads(string_data[CREDENTIALS_KEY]))
    raise ValueError(f"the credentials Secret has no {CREDENTIALS_KEY}")


def _is_head(cm: dict[str, Any]) -> bool:
    keys = set(cm.get("data") or {}) | set(cm.get("binaryData") or {})
    return bool(keys & {CONFIG_KEY, GZIP_KEY, INDEX_KEY})


def _object(kind: str, name: str, namespace: str, config_hash: str, config_set: str | None = None) -> dict[str, Any]:
    labels = dict(MANAGED_LABELS)
    if config_set is not None:
        labels[CONFIG_SET_LABEL] = config_set
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {HASH_ANNOTATION: config_hash},
        },
    }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)
