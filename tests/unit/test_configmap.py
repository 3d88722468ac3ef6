"""The IR's ConfigMap/Secret codec: small, gzip and split layouts round-trip."""

from __future__ import annotations

import copy
import random
import string

import pytest

from lockgate.api import ir
from lockgate.api.configmap import CREDENTIALS_KEY, GZIP_KEY, INDEX_KEY, decode, encode


def _config(models: int) -> ir.GatewayConfig:
    rng = random.Random(7)  # random names compress poorly, which the split case needs
    names = ["".join(rng.choices(string.ascii_lowercase, k=24)) for _ in range(models)]
    provider = ir.Provider(
        id="ns/p", type="openai", base_url="https://api.example.com/v1", credential="provider/ns/p",
        models=tuple(ir.ProviderModel(name=n, upstream_model=n) for n in names),
    )
    return ir.GatewayConfig(providers=(provider,)).with_hash()


CREDS = ir.Credentials(values={"provider/ns/p": "sk-secret-value"})


def _split(objects: list[dict]) -> tuple[list[dict], dict]:
    return [o for o in objects if o["kind"] == "ConfigMap"], next(o for o in objects if o["kind"] == "Secret")


def test_small_config_is_plain_json_and_round_trips() -> None:
    config = _config(3)
    objects = encode(config, CREDS, "gw")
    maps, secret = _split(objects)
    assert [m["metadata"]["name"] for m in maps] == ["lockgate-config"]
    assert "config.json" in maps[0]["data"]
    assert "sk-secret-value" not in str(maps)
    assert secret["metadata"]["name"] == "lockgate-credentials" and CREDENTIALS_KEY in secret["data"]
    assert decode(maps, secret) == (config, CREDS)


def test_large_config_is_gzipped_into_binary_data() -> None:
    config = _config(2000)
    maps, secret = _split(encode(config, CREDS, "gw", gzip_above=1024))
    assert len(maps) == 1 and GZIP_KEY in maps[0]["binaryData"]
    assert decode(maps, secret)[0] == config


def test_config_past_one_object_is_split_with_an_index() -> None:
    config = _config(2000)
    maps, secret = _split(encode(config, CREDS, "gw", config_map="cfg", gzip_above=1024, part_bytes=8 * 1024))
    names = [m["metadata"]["name"] for m in maps]
    assert names[0] == "cfg" and INDEX_KEY in maps[0]["data"]
    assert names[1:] == [f"cfg-{i}" for i in range(1, len(maps))] and len(maps) > 2
    assert {m["metadata"]["labels"]["lockgate.io/config-set"] for m in maps} == {"cfg"}
    shuffled = list(reversed(maps))  # the reader may list them in any order
    assert decode(shuffled, secret)[0] == config


def test_missing_or_foreign_parts_are_refused() -> None:
    config = _config(2000)
    maps, secret = _split(encode(config, CREDS, "gw", gzip_above=1024, part_bytes=8 * 1024))
    with pytest.raises(ValueError, match="missing"):
        decode(maps[:-1], secret)
    foreign = copy.deepcopy(maps)
    foreign[1]["metadata"]["annotations"]["lockgate.io/config-hash"] = "other"
    with pytest.raises(ValueError, match="another publication"):
        decode(foreign, secret)


def test_tampered_content_does_not_match_its_hash() -> None:
    maps, secret = _split(encode(_config(2), CREDS, "gw"))
    maps[0]["data"]["config.json"] = maps[0]["data"]["config.json"].replace("api.example.com", "evil.example.com")
    with pytest.raises(ValueError, match="hash"):
        decode(maps, secret)
