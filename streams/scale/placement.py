"""Which GPU and worker process runs which stream, by load; and when a GPU counts as failed.

Pure functions and one small policy class, no processes: the supervisor asks them and acts.

Why by load, not count: a 4K camera at 30 fps costs NVDEC and the engine about 25 times a
720p one at 5 fps, so two GPUs with the same number of streams can be one idle and one
overloaded. A stream's cost is its expected pixels per second (decode and the letterbox scale
with pixels, inference with frames; both with fps): measured ``fps`` from the workers' stats
once a stream runs, else its configured ``fps``, else :data:`DEFAULT_FPS`; its resolution where
the stats report one (``width`` x ``height``), else 1080p.

Placement has two levels. Across GPUs: greedy longest-first (LPT: the costliest stream goes
to the GPU whose load per worker is lowest, and so on), which keeps every GPU within one
stream's cost of the others. Within one GPU: contiguous runs in config order, each taking streams
until it holds its share of the cost, so equal streams split exactly as before
(``streams/scale/shards.py``) and a worker's streams stay neighbours in the table.

A GPU fails (:class:`GpuHealth`) when its workers die more than ``budget`` times within
``window_s``, or when a worker reports an Xid (the NVIDIA driver's GPU fault codes), a GPU
fallen off the bus or an uncorrectable ECC error. The last healthy GPU never fails: with
nowhere to move its streams to, restarting its workers with back-off is all that is left.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.config import StreamConfig

DEFAULT_FPS = 30.0  # a camera without a configured fps: the usual 30
DEFAULT_PIXELS = 1920 * 1080  # a stream whose resolution is not known yet
# The driver's and CUDA's words for a GPU that is broken, not a program that is.
GPU_FAULT = re.compile(
    r"\bXid\b(?:\s*\(PCI:[0-9A-Fa-f:.]+\))?[\s:,]*(?P<xid>\d+)"
    r"|fallen off the bus|uncorrectable ECC|ECC_UNCORRECTABLE|cudaErrorECCUncorrectable",
    re.IGNORECASE,
)


def stream_cost(stream: StreamConfig, measured: Mapping | None = None) -> float:
    """Expected megapixels per second of ``stream``: fps x resolution (module docstring).

    ``measured``: the stream's latest ``stats`` row, if any (its ``fps``; ``width`` and
    ``height`` where present).
    """
    fps = float(measured.get("fps") or 0.0) if measured else 0.0
    if fps <= 0.0:
        fps = float(stream.fps) if stream.fps else DEFAULT_FPS
    pixels = DEFAULT_PIXELS
    if measured and measured.get("width") and measured.get("height"):
        pixels = int(measured["width"]) * int(measured["height"])
    return fps * pixels / 1e6


def worker_gpus(gpus: Sequence[int], processes: int) -> list[int]:
    """The GPU of each worker process: at least one per GPU, the same number on each
    (``processes`` rounded up to a multiple), neighbours on one GPU; worker 0 on the first."""
    if not gpus:
        raise ValueError("no GPU to place workers on")
    per_gpu = max(1, math.ceil(processes / len(gpus)))
    return [gpu for gpu in gpus for _ in range(per_gpu)]


def _gpu_order(workers: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(workers))


def _split_contiguous(ids: Sequence[str], costs: Mapping[str, float], parts: int) -> list[list]:
    """``ids`` (in order) cut into ``parts`` contiguous runs of near-equal cost: each run
    takes streams while its total is below its share of what is left (so it overshoots by
    less than one stream), leaving one stream at least for each later run while there are
    enough. Equal costs give ``shards.split_streams``' split exactly (the first runs one
    longer)."""
    shards: list[list] = []
    start, left = 0, sum(costs[s] for s in ids)
    for part in range(parts):
        runs_left = parts - part
        if runs_left == 1:
            shards.append(list(ids[start:]))
            break
        share, taken, end = left / runs_left, 0.0, start
        keep = max(0, min(runs_left - 1, len(ids) - start - 1))  # for the later runs
        while end < len(ids) - keep and (taken < share or end == start):
            taken += costs[ids[end]]
            end += 1
        shards.append(list(ids[start:end]))
        start, left = end, left - taken
    return shards


def place(
    stream_ids: Sequence[str], costs: Mapping[str, float], workers: Sequence[int]
) -> list[list[str]]:
    """Each worker's stream ids (config order) for a fresh start.

    Args:
        stream_ids: every stream, in config order.
        costs: each stream's cost (:func:`stream_cost`).
        workers: the GPU of each worker (:func:`worker_gpus`).

    Example: streams a (4K30), b, c, d (720p5) on GPUs [0, 1], one worker each: a alone on
    GPU 0, b, c and d on GPU 1.
    """
    gpus = _gpu_order(workers)
    slots = {gpu: sum(1 for w in workers if w == gpu) for gpu in gpus}
    load = dict.fromkeys(gpus, 0.0)
    on_gpu: dict[int, set[str]] = {gpu: set() for gpu in gpus}
    order = {sid: i for i, sid in enumerate(stream_ids)}
    for sid in sorted(stream_ids, key=lambda s: (-costs[s], order[s])):
        gpu = min(gpus, key=lambda g: (load[g] / slots[g], gpus.index(g)))
        load[gpu] += costs[sid]
        on_gpu[gpu].add(sid)
    shards: list[list[str]] = [[] for _ in workers]
    for gpu in gpus:
        indices = [i for i, w in enumerate(workers) if w == gpu]
        mine = [sid for sid in stream_ids if sid in on_gpu[gpu]]
        for index, shard in zip(indices, _split_contiguous(mine, costs, len(indices))):
            shards[index] = shard
    return shards


def _least_loaded(
    candidates: Sequence[int],
    workers: Sequence[int],
    load: Sequence[float],
) -> int | None:
    """The worker to give a stream: on the GPU whose load per candidate worker is lowest,
    the candidate of that GPU with the lowest load (the first on a tie)."""
    if not candidates:
        return None
    per_gpu: dict[int, list[int]] = {}
    for index in candidates:
        per_gpu.setdefault(workers[index], []).append(index)
    gpus = _gpu_order([workers[i] for i in candidates])

    def gpu_load(gpu: int) -> float:
        on = [i for i, w in enumerate(workers) if w == gpu]
        return sum(load[i] for i in on) / len(per_gpu[gpu])

    gpu = min(gpus, key=lambda g: (gpu_load(g), gpus.index(g)))
    return min(per_gpu[gpu], key=lambda i: (load[i], i))


def reshard(
    shards: Sequence[Sequence[str]],
    serving: Sequence[bool],
    stream_ids: Sequence[str],
    costs: Mapping[str, float],
    workers: Sequence[int],
) -> list[list[str]] | None:
    """The shards after a reload to ``stream_ids``: kept streams stay where they run; each
    added one (costliest first) goes to a serving worker by :func:`_least_loaded`. On one
    GPU with equal costs: the worker with the fewest streams, the first on a tie (what
    ``streams/scale/shards.py`` did). None if streams are added and no worker serves."""
    owner = {sid: i for i, shard in enumerate(shards) for sid in shard}
    wanted = set(stream_ids)
    load = [sum(costs[s] for s in shard if s in wanted) for shard in shards]
    open_ = [i for i in range(len(shards)) if serving[i]]
    order = {sid: i for i, sid in enumerate(stream_ids)}
    added = sorted((s for s in stream_ids if s not in owner), key=lambda s: (-costs[s], order[s]))
    for sid in added:
        index = _least_loaded(open_, workers, load)
        if index is None:
            return None
        owner[sid] = index
        load[index] += costs[sid]
    return [[s for s in stream_ids if owner[s] == i] for i in range(len(shards))]


@dataclass(frozen=True)
class Move:
    """One stream taken off a failed GPU."""

    stream: str
    from_gpu: int
    to_gpu: int
    to_worker: int


def evacuate(
    shards: Sequence[Sequence[str]],
    workers: Sequence[int],
    failed: set[int] | frozenset[int],
    costs: Mapping[str, float],
    usable: Sequence[bool],
) -> tuple[list[list[str]], list[Move]] | None:
    """The streams of workers on ``failed`` GPUs moved to usable workers on the others,
    costliest first, each to the least loaded GPU then worker. The rest stay where they
    run. None when no usable worker is left on a healthy GPU."""
    new = [list(shard) for shard in shards]
    targets = [i for i, gpu in enumerate(workers) if gpu not in failed and usable[i]]
    leaving = [
        (sid, workers[i]) for i, shard in enumerate(shards) if workers[i] in failed for sid in shard
    ]
    if not leaving:
        return new, []
    if not targets:
        return None
    load = [
        sum(costs.get(s, 0.0) for s in shard) if i in targets else 0.0
        for i, shard in enumerate(shards)
    ]
    for i, gpu in enumerate(workers):
        if gpu in failed:
            new[i] = []
    order = {sid: n for n, (sid, _) in enumerate(leaving)}
    moves = []
    for sid, gpu in sorted(leaving, key=lambda item: (-costs.get(item[0], 0.0), order[item[0]])):
        index = _least_loaded(targets, workers, load)
        assert index is not None
        new[index].append(sid)
        load[index] += costs.get(sid, 0.0)
        moves.append(Move(sid, gpu, workers[index], index))
    return new, moves


def gpu_fault(text: str) -> str | None:
    """The GPU fault ``text`` (a worker's error or log line) names, or None: ``Xid 79``,
    ``fallen off the bus``, ``uncorrectable ECC``."""
    match = GPU_FAULT.search(text or "")
    if match is None:
        return None
    return f"Xid {match.group('xid')}" if match.group("xid") else match.group(0)


class GpuHealth:
    """Decides when a GPU has failed: deaths of its workers past a budget, or a GPU fault.

    Args:
        gpus: every GPU of the run.
        budget: worker deaths on one GPU within ``window_s`` that are still restarts; one more
            fails the GPU.
        window_s: the window those deaths are counted over.
    """

    def __init__(self, gpus: Sequence[int], budget: int, window_s: float) -> None:
        self.gpus = list(gpus)
        self.budget = budget
        self.window_s = window_s
        self.failed: dict[int, str] = {}  # GPU -> why
        self._deaths: dict[int, deque[float]] = {gpu: deque() for gpu in self.gpus}

    def healthy(self) -> list[int]:
        return [gpu for gpu in self.gpus if gpu not in self.failed]

    def fail(self, gpu: int, reason: str) -> str | None:
        """Take ``gpu`` out for ``reason`` (returned), unless it is out already or the last
        healthy GPU (None: keep restarting its workers)."""
        if gpu in self.failed or self.healthy() == [gpu]:
            return None
        self.failed[gpu] = reason
        return reason

    def death(self, gpu: int, now_s: float) -> str | None:
        """A worker on ``gpu`` died at ``now_s``: the reason the GPU failed, if it now has."""
        deaths = self._deaths[gpu]
        deaths.append(now_s)
        while deaths and deaths[0] < now_s - self.window_s:
            deaths.popleft()
        if len(deaths) <= self.budget:
            return None
        return self.fail(
            gpu,
            f"GPU {gpu} failed: its workers died {len(deaths)} times in "
            f"{self.window_s:.0f} s (workers.gpu_restart_budget {self.budget})",
        )

    def fault(self, gpu: int, text: str, worker: int) -> str | None:
        """A worker on ``gpu`` reported ``text``: the reason the GPU failed, if it names a GPU
        fault (:func:`gpu_fault`)."""
        fault = gpu_fault(text)
        if fault is None:
            return None
        return self.fail(gpu, f"GPU {gpu} failed: {fault} (worker process {worker})")
