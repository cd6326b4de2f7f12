"""``streams shards config.yaml --nodes N [--from M]``: which node takes which stream, and
what moves when the cluster changes size, before anything runs (the same hashing as ``run
--shard``, streams/scale/rendezvous.py)."""

from __future__ import annotations

import sys
import textwrap
from typing import IO

from streams.config import Config
from streams.scale.rendezvous import assign, moves

WIDTH = 100


def print_shards(
    config: Config, nodes: int, from_nodes: int | None = None, out: IO[str] = sys.stdout
) -> None:
    ids = [s.id for s in config.streams]
    shares = assign(ids, nodes)
    print(
        f"{len(ids)} streams over {nodes} nodes (rendezvous hashing of stream ids; "
        f"node K runs `streams run --shard K/{nodes}`, or pod streams-K with --shard auto):",
        file=out,
    )
    for node, share in enumerate(shares):
        head = f"node {node}: {len(share)} streams"
        print(_wrapped(f"{head}: {', '.join(share)}" if share else f"{head}", "    "), file=out)
    if from_nodes is None or from_nodes == nodes:
        return
    moved = moves(ids, from_nodes, nodes)
    share = len(moved) / len(ids) if ids else 0.0
    # Growing, the new nodes' share is the least that can move; shrinking, the gone nodes'.
    least = abs(nodes - from_nodes) / max(nodes, from_nodes)
    print(
        f"from {from_nodes} to {nodes} nodes: {len(moved)} of {len(ids)} streams move "
        f"({share:.0%}; on average {least:.0%} must), the other {len(ids) - len(moved)} stay "
        "where they run",
        file=out,
    )
    for move in moved:
        print(f"  {move.stream}: node {move.before} -> node {move.after}", file=out)


def _wrapped(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)
