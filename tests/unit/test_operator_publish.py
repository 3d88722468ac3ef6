"""Publishing order and content-hash annotations; proxy-side ConfigMap naming."""

from __future__ import annotations

import pytest

from lockgate.api.configmap import encode
from lockgate.api.ir import Credentials, GatewayConfig
from lockgate.operator.publish import content_hash_of, stamp, write_order
from lockgate.api.configmap import belongs_to
from lockgate.proxy.source_kube import parse_ref


def test_secret_first_parts_next_index_last() -> None:
    config = GatewayConfig().with_hash()
    creds = Credentials(values={"ns/p": "secret"})
    objects = encode(config, creds, "ns", "cfg", "creds", gzip_above=0, part_bytes=64)
    ordered = write_order(stamp(objects, config, creds), "cfg")
    names = [o["metadata"]["name"] for o in ordered]
    assert names[0] == "creds" and names[-1] == "cfg" and len(names) >= 3
    assert content_hash_of(ordered[0]) == creds.content_hash()
    assert all(content_hash_of(o) == config.hash for o in ordered[1:])


def test_config_map_parts_belong_to_their_base() -> None:
    assert belongs_to("lockgate-config", "lockgate-config")
    assert belongs_to("lockgate-config-12", "lockgate-config")
    assert not belongs_to("lockgate-config-x", "lockgate-config")
    assert not belongs_to("other", "lockgate-config")


def test_parse_ref() -> None:
    assert parse_ref("ns/name") == ("ns", "name")
    assert parse_ref("name", "dflt") == ("dflt", "name")
    with pytest.raises(ValueError):
        parse_ref("name")


def test_split_configuration_parts_come_from_the_heads_index() -> None:
    from lockgate.proxy.source_kube import part_names

    config = GatewayConfig().with_hash()
    objects = encode(config, Credentials(), "ns", "cfg", "creds", gzip_above=0, part_bytes=64)
    head = objects[0]
    assert part_names(head) == [o["metadata"]["name"] for o in objects[1:-1]] and part_names(head)
    assert part_names({"data": {"config.json": "{}"}}) == [] and part_names(None) == []
