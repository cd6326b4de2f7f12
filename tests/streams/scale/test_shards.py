"""Where streams run after a reload (streams/scale/shards.py): kept streams never move, added
ones go to the serving worker with the fewest streams."""

from __future__ import annotations

import pytest

from streams.config import parse_config
from streams.scale.shards import reshard, split_streams


def _config(*ids: str):
    return parse_config({"streams": [{"id": i, "url": "sample:bikes.mp4"} for i in ids]})


@pytest.mark.parametrize(
    ("shards", "serving", "ids", "expected"),
    [
        ([["a", "b"], ["c", "d"]], [True, True], "acde", [["a", "e"], ["c", "d"]]),  # fewest
        ([["a"], ["c"]], [True, True], "acde", [["a", "d"], ["c", "e"]]),  # one each, in turn
        ([["a"], ["c"]], [False, True], "acd", [["a"], ["c", "d"]]),  # worker 0 finished
        ([["a", "b"], ["c"]], [True, True], "ca", [["a"], ["c"]]),  # order: the config's
        ([["a", "b"], ["c"]], [True, True], "c", [[], ["c"]]),  # worker 0 left with none
        ([["a"], ["c"]], [False, False], "acd", None),  # nobody to run d
        ([["a"], ["c"]], [False, False], "a", [["a"], []]),  # nothing added: fine
    ],
)
def test_reshard(shards, serving, ids, expected):
    assert reshard(shards, serving, _config(*ids)) == expected


@pytest.mark.parametrize(
    ("shards", "serving", "ids", "expected"),
    [
        ([["a"], ["c"]], [True, True], "acd", [["a", "d"], ["c"]]),  # room: the fewest
        ([["a", "b"], ["c", "d"]], [True, True], "abcde", [["a", "b"], ["c", "d"], ["e"]]),
        ([["a", "b"], ["c", "d"]], [True, True], "abcdef", [["a", "b"], ["c", "d"], ["e", "f"]]),
        ([["a", "b"], []], [True, False], "abe", [["a", "b"], ["e"]]),  # an idle one restarts
        ([["a", "b"], ["c"]], [True, False], "abce", [["a", "b"], ["c"], ["e"]]),  # c waits
        ([["a"], ["c"]], [False, False], "acd", [["a"], ["c"], ["d"]]),  # nobody serves
    ],
)
def test_reshard_with_a_capacity_starts_a_worker_when_all_are_full(shards, serving, ids, expected):
    assert reshard(shards, serving, _config(*ids), capacity=2) == expected


def test_split_streams_is_contiguous():
    assert split_streams(_config(*"abcde"), 2) == [["a", "b", "c"], ["d", "e"]]
