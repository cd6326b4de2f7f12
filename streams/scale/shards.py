"""Which worker process runs which streams: at start, and after a reload (pure functions).

Why apart from the supervisor: the assignment is list arithmetic on stream ids, testable
without processes, and the one place that decides where a stream added by a reload goes.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.config import Config


def split_streams(config: Config, processes: int) -> list[list[str]]:
    """Contiguous, near-equal shards of stream ids, in config order."""
    ids = [s.id for s in config.streams]
    size, extra = divmod(len(ids), processes)
    shards, start = [], 0
    for index in range(processes):
        end = start + size + (1 if index < extra else 0)
        shards.append(ids[start:end])
        start = end
    return shards


def reshard(
    shards: Sequence[Sequence[str]],
    serving: Sequence[bool],
    config: Config,
    capacity: int | None = None,
) -> list[list[str]] | None:
    """The shards after a reload to ``config``: each worker keeps the streams it has that are
    still configured (so no kept stream moves, and a changed one restarts where it runs),
    and each added stream goes to the serving worker with the fewest streams (the first on a
    tie). Shards list their ids in config order. Example: shards ``[a, b], [c]`` reloaded to
    ``a, c, d`` give ``[a, d], [c]``.

    ``capacity`` None: the number of workers does not change, and None is returned if streams
    are added and no worker serves (every one has finished or could not start). With a
    ``capacity`` (streams per worker), an added stream goes only to a serving worker with
    room (fewer than ``capacity``); when none has, to a worker that is not serving and has no
    streams left (its process is started again), else to a new worker: a shard appended.
    """
    owner = {sid: index for index, shard in enumerate(shards) for sid in shard}
    new = [[s.id for s in config.streams if owner.get(s.id) == i] for i in range(len(shards))]
    open_ = [i for i in range(len(shards)) if serving[i]]
    for stream in config.streams:
        if stream.id in owner:
            continue
        roomy = [i for i in open_ if capacity is None or len(new[i]) < capacity]
        if not roomy:
            if capacity is None:
                return None
            idle = [i for i in range(len(new)) if i not in open_ and not new[i]]
            if not idle:
                new.append([])
                idle = [len(new) - 1]
            open_.append(idle[0])  # serving from now on: it gets the next ones too
            roomy = idle[:1]
        least = min(roomy, key=lambda i: (len(new[i]), i))
        new[least].append(stream.id)
        owner[stream.id] = least
    return [[s.id for s in config.streams if owner.get(s.id) == i] for i in range(len(new))]
