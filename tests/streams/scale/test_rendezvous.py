"""Rendezvous hashing of streams over nodes (streams/scale/rendezvous.py): stable across
processes and Pythons, balanced, and minimal in what moves when the cluster changes size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from streams.scale.rendezvous import Move, assign, moves, owner, weight

IDS = [f"cam-{i:05d}" for i in range(20_000)]


def test_weights_are_pinned_so_an_upgrade_moves_no_camera():
    # A change of hash would move every camera of every cluster at once: pinned values.
    assert weight("cam-00", 0) == 17768201163925621529
    assert weight("cam-00", 1) == 13346612725843144968
    assert owner("cam-00", 4) == assign(["cam-00"], 4).index(["cam-00"])


def test_every_process_agrees_whatever_its_hash_seed():
    """Python's hash() is salted per process; the assignment must not be."""
    code = (
        "import json; from streams.scale.rendezvous import assign; "
        "print(json.dumps(assign([f'cam-{i}' for i in range(200)], 7)))"
    )
    results = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert len(results) == 1
    assert json.loads(results.pop()) == assign([f"cam-{i}" for i in range(200)], 7)


@pytest.mark.parametrize("nodes", [1, 2, 4, 5, 16])
def test_each_stream_on_exactly_one_node_and_shares_balanced(nodes):
    shares = assign(IDS, nodes)
    assert sorted(s for share in shares for s in share) == IDS  # once each, none lost
    mean = len(IDS) / nodes
    assert all(abs(len(share) - mean) < 0.06 * mean for share in shares), [len(s) for s in shares]
    assert shares[0] == sorted(shares[0]), "a share keeps the order given"


@pytest.mark.parametrize("before", [1, 3, 4, 8])
def test_growing_moves_only_the_new_nodes_share(before):
    after = before + 1
    moved = moves(IDS, before, after)
    assert {m.after for m in moved} == {before}, "a stream moves only to the new node"
    assert {m.stream for m in moved} == set(assign(IDS, after)[before])
    assert abs(len(moved) / len(IDS) - 1 / after) < 0.01  # about 1/(N+1), nothing more


def test_shrinking_moves_only_the_gone_nodes_streams():
    moved = moves(IDS, 5, 4)
    assert {m.before for m in moved} == {4}
    assert {m.stream for m in moved} == set(assign(IDS, 5)[4])


def test_moves_lists_each_stream_with_its_nodes():
    ids = IDS[:300]
    for move in moves(ids, 2, 3):
        assert move == Move(move.stream, owner(move.stream, 2), owner(move.stream, 3))
    assert moves(ids, 3, 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        owner("a", 0)
