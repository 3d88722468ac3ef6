"""How the IR travels: ConfigMap(s) for the config, one Secret for credentials.

Layouts of the head ConfigMap (named `config_map`):
- small config: `data["config.json"]`;
- large config: `binaryData["config.json.gz"]` (gzip, base64 on the wire);
- past one object's size: `data["index.json"]` naming the parts
  `<config_map>-1`, `<config_map>-2`, ... whose `binaryData["part"]` chunks,
  concatenated, are the gzip stream;
- many ApiKeys (past `SHARD_KEYS_ABOVE`): `data["index.json"]` with
  `"encoding": "shards"`, the keys in a fixed number of shards by their id
  and the rest in its own part(s), each part with its own hash (config_shards.py).
The credentials Secret holds `credentials.json` (credential id -> value; ids
contain "/", which Secret keys may not). Every object carries a hash, so a
reader can tell parts of one publication from parts of another.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

from lockgate.api.config_shards import (
    KEY_SHARDS, SHARD_KEYS_ABOVE, SHARDED, PartCache, ShardMemo, decode_shards, encode_shards,
)
from lockgate.api.configmap_objects import (
    CONFIG_KEY, CONFIG_SET_LABEL, CREDENTIALS_HASH_ANNOTATION, CREDENTIALS_KEY, GZIP_ABOVE, GZIP_KEY,
    HASH_ANNOTATION, INDEX_KEY, MANAGED_LABELS, PART_BYTES, PART_KEY, annotated_hash, b64, config_object, unb64,
)
from lockgate.api.ir import Credentials, GatewayConfig, canonical_json

__all__ = ["CONFIG_KEY", "CONFIG_SET_LABEL", "CREDENTIALS_HASH_ANNOTATION", "CREDENTIALS_KEY", "GZIP_KEY",
           "HASH_ANNOTATION", "INDEX_KEY", "MANAGED_LABELS", "PartCache", "ShardMemo", "belongs_to", "decode",
           "decode_credentials", "encode"]


def encode(
    config: GatewayConfig,
    credentials: Credentials,
    namespace: str,
    config_map: str = "lockgate-config",
    secret: str = "lockgate-credentials",
    *,
    gzip_above: int = GZIP_ABOVE,
    part_bytes: int = PART_BYTES,
    shard_keys_above: int = SHARD_KEYS_ABOVE,
    key_shards: int = KEY_SHARDS,
    memo: ShardMemo | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMap(s), head first, then the credentials Secret. `memo` (the
    same one every call) re-encodes only the key shards that changed."""
    if not config.hash:
        config = config.with_hash()
    if len(config.keys) > shard_keys_above:
        objects = encode_shards(config, namespace, config_map, shards=key_shards, part_bytes=part_bytes, memo=memo)
    else:
        objects = _encode_whole(config, namespace, config_map, gzip_above, part_bytes)
    creds = config_object("Secret", secret, namespace, config.hash)
    creds["metadata"]["annotations"][CREDENTIALS_HASH_ANNOTATION] = credentials.content_hash()
    creds["type"] = "Opaque"
    creds["data"] = {CREDENTIALS_KEY: b64(canonical_json(credentials.values).encode())}
    objects.append(creds)
    return objects


def _encode_whole(config: GatewayConfig, namespace: str, config_map: str, gzip_above: int,
                  part_bytes: int) -> list[dict[str, Any]]:
    raw = canonical_json(config.model_dump(mode="json")).encode()
    head = config_object("ConfigMap", config_map, namespace, config.hash, config_map)
    if len(raw) <= gzip_above:
        head["data"] = {CONFIG_KEY: raw.decode()}
        return [head]
    packed = gzip.compress(raw, mtime=0)
    if len(packed) <= part_bytes:
        head["binaryData"] = {GZIP_KEY: b64(packed)}
        return [head]
    chunks = [packed[i : i + part_bytes] for i in range(0, len(packed), part_bytes)]
    names = [f"{config_map}-{n}" for n in range(1, len(chunks) + 1)]
    index = {"hash": config.hash, "encoding": "gzip", "parts": names}
    head["data"] = {INDEX_KEY: canonical_json(index)}
    objects = [head]
    for name, chunk in zip(names, chunks, strict=True):
        part = config_object("ConfigMap", name, namespace, config.hash, config_map)
        part["binaryData"] = {PART_KEY: b64(chunk)}
        objects.append(part)
    return objects


def belongs_to(config_map_name: str, base: str) -> bool:
    """The base ConfigMap or one of its parts (`base-1`, `base-2`..., `base-keys-00`...)."""
    pattern = re.escape(base) + r"-(keys-)?[0-9]+"
    return config_map_name == base or re.fullmatch(pattern, config_map_name) is not None


def decode(config_maps: list[dict[str, Any]], secret: dict[str, Any],
           cache: PartCache | None = None) -> tuple[GatewayConfig, Credentials]:
    """The config and credentials back; ValueError when parts are missing,
    from another publication, or the content does not match its hash.
    `cache`: decoded parts of a sharded layout kept from the previous call."""
    by_name = {cm.get("metadata", {}).get("name"): cm for cm in config_maps}
    head = next((cm for cm in config_maps if _is_head(cm)), None)
    if head is None:
        raise ValueError(f"no ConfigMap holds {CONFIG_KEY}, {GZIP_KEY} or {INDEX_KEY}")
    data = head.get("data") or {}
    binary = head.get("binaryData") or {}
    if CONFIG_KEY in data:
        raw = data[CONFIG_KEY].encode()
    elif GZIP_KEY in binary:
        raw = gzip.decompress(unb64(binary[GZIP_KEY]))
    else:
        index = json.loads(data[INDEX_KEY])
        if index.get("encoding") == SHARDED:
            return decode_shards(index, by_name, cache), decode_credentials(secret)
        chunks = []
        for name in index["parts"]:
            part = by_name.get(name)
            if part is None:
                raise ValueError(f"config part {name} is missing")
            part_hash = annotated_hash(part)
            if part_hash != index["hash"]:
                raise ValueError(f"config part {name} belongs to another publication ({part_hash})")
            chunks.append(unb64(part["binaryData"][PART_KEY]))
        raw = gzip.decompress(b"".join(chunks))
    config = GatewayConfig.model_validate_json(raw)
    if config.hash != config.content_hash():
        raise ValueError(f"config content does not match its hash {config.hash}")
    return config, decode_credentials(secret)


def decode_credentials(secret: dict[str, Any]) -> Credentials:
    data = secret.get("data") or {}
    if CREDENTIALS_KEY in data:
        return Credentials(values=json.loads(unb64(data[CREDENTIALS_KEY])))
    string_data = secret.get("stringData") or {}
    if CREDENTIALS_KEY in string_data:
        return Credentials(values=json.loads(string_data[CREDENTIALS_KEY]))
    raise ValueError(f"the credentials Secret has no {CREDENTIALS_KEY}")


def _is_head(cm: dict[str, Any]) -> bool:
    keys = set(cm.get("data") or {}) | set(cm.get("binaryData") or {})
    return bool(keys & {CONFIG_KEY, GZIP_KEY, INDEX_KEY})
