"""This node's place in a cluster and its share of the streams (``run --shard``).

Every node of a Kubernetes StatefulSet reads the same config; ``--shard K/N`` (or ``--shard
auto``: K from the pod name ``streams-3``, N from ``--replicas`` or ``$STREAMS_REPLICAS``)
says which node this is, and :func:`for_shard` keeps the streams rendezvous hashing gives it
(streams/scale/rendezvous.py). That happens before the split over worker processes, and
again on every reload, so a stream added to the shared file starts on exactly one node.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace

from streams.config import Config, ShardConfig
from streams.scale.rendezvous import assign

REPLICAS_ENV = "STREAMS_REPLICAS"
POD_NAME_ENVS = ("POD_NAME", "HOSTNAME")  # the downward API's name first, then the hostname
MAX_NODES = 10_000
_ORDINAL = re.compile(r"-(\d+)$")  # a StatefulSet pod is <set name>-<ordinal>


def parse_shard(
    text: str, replicas: int | None = None, environ: Mapping[str, str] | None = None
) -> ShardConfig:
    """``K/N`` (node K from 0 of N) or ``auto``; ValueError saying what is wrong and what
    was expected (the caller names the argument)."""
    env = os.environ if environ is None else environ
    if text.strip() == "auto":
        index, count = _pod_ordinal(env), _replicas(replicas, env)
        _check(index, count, f"auto ({index}/{count})", f"--replicas or ${REPLICAS_ENV}")
        return ShardConfig(index, count)
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(
            f"expected K/N (this node's number from 0, of N nodes: 0/4 is the first of four) "
            f"or auto, got {text!r}"
        )
    index, count = int(match.group(1)), int(match.group(2))
    _check(index, count, repr(text.strip()), "N")
    return ShardConfig(index, count)


def _pod_ordinal(env: Mapping[str, str]) -> int:
    for name in POD_NAME_ENVS:
        value = env.get(name, "")
        if match := _ORDINAL.search(value):
            return int(match.group(1))
    seen = ", ".join(f"{n}={env[n]!r}" for n in POD_NAME_ENVS if env.get(n)) or "neither is set"
    raise ValueError(
        f"auto: cannot tell this node's number: {' and '.join(POD_NAME_ENVS)} do not end in "
        f"-<number> as a StatefulSet pod's name does (streams-3) ({seen}); give --shard K/N"
    )


def _replicas(replicas: int | None, env: Mapping[str, str]) -> int:
    if replicas is not None:
        return replicas
    text = env.get(REPLICAS_ENV, "").strip()
    if not text:
        raise ValueError(
            f"auto: the number of nodes is unknown: give --replicas N or set ${REPLICAS_ENV} "
            "(the StatefulSet's replicas)"
        )
    if not text.isdigit():
        raise ValueError(f"auto: ${REPLICAS_ENV} must be a whole number of nodes, got {text!r}")
    return int(text)


def _check(index: int, count: int, given: str, raise_what: str) -> None:
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"{given}: the number of nodes must be 1 to {MAX_NODES}, got {count}")
    if index >= count:
        raise ValueError(
            f"{given}: node {index} does not exist among {count} nodes (numbered 0 to "
            f"{count - 1}); with more nodes, raise {raise_what} on every one of them"
        )


def for_shard(config: Config, shard: ShardConfig | None) -> Config:
    """``config`` with only ``shard``'s streams (config order) and ``shard`` recorded; the
    config as it is without a shard."""
    if shard is None:
        return config
    mine = set(assign([s.id for s in config.streams], shard.count)[shard.index])
    return replace(config, streams=tuple(s for s in config.streams if s.id in mine), shard=shard)
