"""This node's shard (streams/scale/cluster.py): ``--shard K/N`` and the StatefulSet pod-name
form, each bad value refused with what was expected; the config cut to the node's share."""

from __future__ import annotations

import pytest

from streams.config import ShardConfig, parse_config
from streams.scale.cluster import for_shard, parse_shard
from streams.scale.rendezvous import assign


@pytest.mark.parametrize(
    ("text", "env", "replicas", "expected"),
    [
        ("0/4", {}, None, ShardConfig(0, 4)),
        (" 3 / 4 ", {}, None, ShardConfig(3, 4)),
        ("0/1", {}, None, ShardConfig(0, 1)),
        ("auto", {"HOSTNAME": "streams-3", "STREAMS_REPLICAS": "5"}, None, ShardConfig(3, 5)),
        ("auto", {"POD_NAME": "cams-12", "HOSTNAME": "node7"}, 16, ShardConfig(12, 16)),
        ("auto", {"POD_NAME": "x", "HOSTNAME": "streams-0"}, 2, ShardConfig(0, 2)),
    ],
)
def test_parse_shard(text, env, replicas, expected):
    assert parse_shard(text, replicas, env) == expected


@pytest.mark.parametrize(
    ("text", "env", "replicas", "message"),
    [
        ("4/4", {}, None, r"'4/4': node 4 does not exist among 4 nodes \(numbered 0 to 3\)"),
        ("1/0", {}, None, "the number of nodes must be 1 to 10000, got 0"),
        ("2", {}, None, "expected K/N .* or auto, got '2'"),
        ("-1/4", {}, None, "expected K/N"),
        ("a/b", {}, None, "expected K/N"),
        ("auto", {"HOSTNAME": "laptop"}, 4, r"do not end in -<number> .*HOSTNAME='laptop'"),
        ("auto", {}, 4, r"\(neither is set\)"),
        ("auto", {"HOSTNAME": "streams-1"}, None, r"give --replicas N or set \$STREAMS_REPLICAS"),
        ("auto", {"HOSTNAME": "streams-1", "STREAMS_REPLICAS": "four"}, None, "whole number"),
        ("auto", {"HOSTNAME": "streams-4", "STREAMS_REPLICAS": "4"}, None, r"auto \(4/4\)"),
    ],
)
def test_bad_shards_say_what_was_expected(text, env, replicas, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(text, replicas, env)


def test_for_shard_keeps_the_nodes_share_in_config_order():
    ids = [f"cam-{i}" for i in range(40)]
    config = parse_config({"streams": [{"id": i, "url": "sample:bikes.mp4"} for i in ids]})
    assert for_shard(config, None) is config
    cut = [for_shard(config, ShardConfig(k, 3)) for k in range(3)]
    for k, node in enumerate(cut):
        assert [s.id for s in node.streams] == assign(ids, 3)[k]
        assert node.shard == ShardConfig(k, 3)
        assert node.model == config.model and node.publish == config.publish
    assert sorted(s.id for node in cut for s in node.streams) == sorted(ids)


def test_the_worker_split_takes_only_the_nodes_share():
    from streams.scale.shards import split_streams
    from streams.scale.supervisor import resolve_processes

    ids = [f"cam-{i}" for i in range(12)]
    config = parse_config(
        {
            "streams": [{"id": i, "url": "sample:bikes.mp4"} for i in ids],
            "workers": {"processes": 12},
        }
    )
    node = for_shard(config, ShardConfig(1, 4))
    share = assign(ids, 4)[1]
    assert resolve_processes(node)[0] == len(share)  # at most one process per stream it has
    assert sorted(sum(split_streams(node, 2), [])) == sorted(share)
