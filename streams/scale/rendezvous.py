"""Which node of a cluster takes which stream: rendezvous (highest-random-weight) hashing.

Every node reads the same camera list and keeps the streams whose highest weight is its own,
so no coordinator exists and nodes need not talk to each other. Going from N to N + 1 nodes
moves only the streams the new node wins (about 1/(N + 1) of them), each to the new node;
a node that restarts takes back exactly the streams it had. Weights come from BLAKE2b of the
stream id and the node's ordinal, never from Python's ``hash()`` (salted per process), so every
node, every Python and every run agrees.

Pure functions on ids; ``streams/scale/shards.py`` then splits a node's share over its worker
processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def weight(stream_id: str, node: int) -> int:
    """The stable 64-bit weight of ``stream_id`` on node ``node`` (an ordinal from 0)."""
    digest = hashlib.blake2b(
        stream_id.encode("utf-8"), digest_size=8, key=f"node-{node}".encode()
    ).digest()
    return int.from_bytes(digest, "big")


def owner(stream_id: str, nodes: int) -> int:
    """The node of ``nodes`` (ordinals 0 .. nodes-1) with the highest weight for the stream;
    the lower ordinal on a tie (one in 2**64)."""
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, got {nodes}")
    return max(range(nodes), key=lambda node: (weight(stream_id, node), -node))


def assign(stream_ids: Iterable[str], nodes: int) -> list[list[str]]:
    """Each node's streams, in the order given: ``assign(ids, 4)[2]`` is node 2's share."""
    shares: list[list[str]] = [[] for _ in range(nodes)]
    for stream_id in stream_ids:
        shares[owner(stream_id, nodes)].append(stream_id)
    return shares


@dataclass(frozen=True)
class Move:
    """A stream that changes node when the cluster goes from one size to another."""

    stream: str
    before: int
    after: int


def moves(stream_ids: Sequence[str], nodes_before: int, nodes_after: int) -> list[Move]:
    """The streams whose node differs between ``nodes_before`` and ``nodes_after`` nodes."""
    found = []
    for stream_id in stream_ids:
        before, after = owner(stream_id, nodes_before), owner(stream_id, nodes_after)
        if before != after:
            found.append(Move(stream_id, before, after))
    return found
