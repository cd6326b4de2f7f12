"""Streams over several GPUs by load, and when a GPU counts as failed
(streams/scale/placement.py): pure functions, checked against hand-worked cases and, on
random inputs, against the properties they promise."""

from __future__ import annotations

import random

import pytest

from streams.config import parse_config
from streams.scale import shards as count_shards
from streams.scale.placement import (
    DEFAULT_FPS,
    GpuHealth,
    Move,
    evacuate,
    gpu_fault,
    place,
    reshard,
    stream_cost,
    worker_gpus,
)


def _config(*ids: str):
    return parse_config({"streams": [{"id": i, "url": "sample:bikes.mp4"} for i in ids]})


def _gpu_loads(shards, workers, costs) -> dict[int, float]:
    loads: dict[int, float] = {}
    for shard, gpu in zip(shards, workers):
        loads[gpu] = loads.get(gpu, 0.0) + sum(costs[s] for s in shard)
    return loads


# --- a stream's cost ------------------------------------------------------------------------


def test_cost_is_fps_times_pixels_measured_first_then_configured_then_default():
    stream = parse_config({"streams": [{"id": "a", "url": "sample:bikes.mp4", "fps": 5}]}).streams[
        0
    ]
    assert stream_cost(stream) == pytest.approx(5 * 1920 * 1080 / 1e6)  # configured fps, 1080p
    assert stream_cost(stream, {"fps": 0.0}) == stream_cost(stream)  # not running yet
    assert stream_cost(stream, {"fps": 25.0}) == pytest.approx(25 * 1920 * 1080 / 1e6)
    assert stream_cost(stream, {"fps": 25.0, "width": 3840, "height": 2160}) == pytest.approx(
        25 * 3840 * 2160 / 1e6
    )
    free = _config("b").streams[0]  # no fps configured: a camera's usual
    assert stream_cost(free) == pytest.approx(DEFAULT_FPS * 1920 * 1080 / 1e6)


# --- workers per GPU ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "processes", "expected"),
    [
        ([0], 1, [0]),
        ([0, 1], 1, [0, 1]),  # at least one per GPU
        ([0, 1], 3, [0, 0, 1, 1]),  # the same number on each
        ([2, 5], 4, [2, 2, 5, 5]),  # GPU numbers as listed
        ([0, 1, 2, 3], 4, [0, 1, 2, 3]),
    ],
)
def test_worker_gpus(gpus, processes, expected):
    assert worker_gpus(gpus, processes) == expected


def test_worker_gpus_needs_a_gpu():
    with pytest.raises(ValueError):
        worker_gpus([], 2)


# --- placement at start ---------------------------------------------------------------------


def test_one_costly_stream_gets_a_gpu_to_itself():
    costs = {"a": 249.0, "b": 4.6, "c": 4.6, "d": 4.6}  # 4K30 and three 720p5
    assert place(list("abcd"), costs, [0, 1]) == [["a"], ["b", "c", "d"]]


def test_equal_streams_alternate_over_gpus_and_stay_contiguous_within_one():
    costs = dict.fromkeys("abcdef", 1.0)
    assert place(list("abcdef"), costs, [0, 0, 1, 1]) == [["a", "c"], ["e"], ["b", "d"], ["f"]]


def test_a_gpu_with_more_workers_takes_more_load():
    costs = dict.fromkeys("abcdef", 1.0)
    shards = place(list("abcdef"), costs, [0, 0, 1])  # GPU 0 has two workers, GPU 1 one
    assert _gpu_loads(shards, [0, 0, 1], costs) == {0: 4.0, 1: 2.0}


def test_more_workers_than_streams_leaves_workers_spare():
    assert place(["a"], {"a": 1.0}, [0, 1]) == [["a"], []]
    assert place(["a", "b"], {"a": 1.0, "b": 1.0}, [0, 0, 1, 1]) == [["a"], [], ["b"], []]


@pytest.mark.parametrize(
    ("n", "processes"),  # never more workers than streams on one device (resolve_processes)
    [(n, p) for n in (1, 2, 3, 5, 7, 24, 25) for p in (1, 2, 3, 5) if p <= n],
)
def test_one_device_with_equal_costs_splits_as_before(n, processes):
    """On one GPU with streams alike, placement is the contiguous near-equal split that
    ``shards.split_streams`` made (what the worker tests and users saw before)."""
    ids = [f"s{i}" for i in range(n)]
    shards = place(ids, dict.fromkeys(ids, 1.0), [0] * processes)
    expected = count_shards.split_streams(_config(*ids), processes)
    assert shards == expected


def test_random_placements_keep_every_stream_once_and_gpus_within_one_stream():
    """LPT's promise: every stream placed exactly once, and no GPU's load per worker above
    another's by more than the costliest stream."""
    rng = random.Random(17)
    for _ in range(300):
        gpus = list(range(rng.randint(1, 8)))
        workers = worker_gpus(gpus, rng.randint(1, 20))
        ids = [f"s{i}" for i in range(rng.randint(1, 60))]
        costs = {s: rng.choice([0.3, 4.6, 62.2, 248.8]) * rng.uniform(0.5, 1.5) for s in ids}
        shards = place(ids, costs, workers)
        placed = [s for shard in shards for s in shard]
        assert sorted(placed) == sorted(ids)
        for shard in shards:  # each shard in config order
            assert shard == sorted(shard, key=ids.index)
        per_worker = len(workers) // len(gpus)
        loads = [v / per_worker for v in _gpu_loads(shards, workers, costs).values()]
        if len(ids) >= len(gpus):
            assert max(loads) - min(loads) <= max(costs.values()) / per_worker + 1e-9


def test_placement_balances_load_where_a_count_split_does_not():
    """Two GPUs, streams of mixed sizes in an unlucky config order: by count, one GPU takes
    every 4K stream; by load the two are within one stream."""
    ids = [f"k{i}" for i in range(4)] + [f"h{i}" for i in range(4)]
    costs = {**{f"k{i}": 248.8 for i in range(4)}, **{f"h{i}": 4.6 for i in range(4)}}
    by_count = count_shards.split_streams(_config(*ids), 2)
    count_loads = sorted(_gpu_loads(by_count, [0, 1], costs).values())
    load_loads = sorted(_gpu_loads(place(ids, costs, [0, 1]), [0, 1], costs).values())
    assert count_loads[1] / count_loads[0] > 40
    assert load_loads[1] / load_loads[0] < 1.01


# --- after a reload -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shards", "serving", "ids"),
    [
        ([["a", "b"], ["c", "d"]], [True, True], "acde"),
        ([["a"], ["c"]], [True, True], "acde"),
        ([["a"], ["c"]], [False, True], "acd"),
        ([["a", "b"], ["c"]], [True, True], "ca"),
        ([["a", "b"], ["c"]], [True, True], "c"),
        ([["a"], ["c"]], [False, False], "acd"),
        ([["a"], ["c"]], [False, False], "a"),
    ],
)
def test_reshard_on_one_gpu_with_equal_costs_matches_the_count_rule(shards, serving, ids):
    costs = dict.fromkeys(ids, 1.0)
    assert reshard(shards, serving, list(ids), costs, [0] * len(shards)) == count_shards.reshard(
        shards, serving, _config(*ids)
    )


def test_reshard_sends_an_added_stream_to_the_gpu_with_the_least_load():
    costs = {"a": 248.8, "b": 4.6, "c": 4.6, "d": 62.2}
    # GPU 0 runs the 4K stream, GPU 1 two small ones: d goes to GPU 1 though it has more.
    assert reshard([["a"], ["b", "c"]], [True, True], list("abcd"), costs, [0, 1]) == [
        ["a"],
        ["b", "c", "d"],
    ]


def test_reshard_keeps_every_stream_where_it_runs():
    costs = {"a": 1.0, "b": 100.0, "c": 1.0}
    assert reshard([["a", "b"], ["c"]], [True, True], list("abc"), costs, [0, 1]) == [
        ["a", "b"],
        ["c"],
    ]


# --- a failed GPU's streams -----------------------------------------------------------------


def test_evacuate_moves_a_failed_gpus_streams_by_load_and_leaves_the_rest():
    costs = {"a": 62.2, "b": 4.6, "c": 62.2, "d": 4.6, "e": 62.2}
    shards = [["a", "b"], ["c"], ["d", "e"]]
    workers = [0, 1, 2]
    new, moves = evacuate(shards, workers, {2}, costs, [True, True, True])
    assert new == [["a", "b", "d"], ["c", "e"]] + [[]]
    assert moves == [Move("e", 2, 1, 1), Move("d", 2, 0, 0)]


def test_evacuate_skips_workers_that_cannot_run_and_gives_up_with_none_left():
    costs = dict.fromkeys("abc", 1.0)
    shards = [["a"], ["b"], ["c"]]
    new, moves = evacuate(shards, [0, 1, 1], {0}, costs, [True, False, True])
    assert new == [[], ["b"], ["c", "a"]]
    assert moves == [Move("a", 0, 1, 2)]
    assert evacuate(shards, [0, 1, 1], {0}, costs, [True, False, False]) is None
    assert evacuate(shards, [0, 0, 0], {1}, costs, [True] * 3) == (shards, [])  # nothing there


def test_evacuate_fills_a_spare_worker_first():
    costs = dict.fromkeys("abc", 1.0)
    new, _ = evacuate([["a", "b"], ["c"], []], [0, 1, 1], {0}, costs, [True] * 3)
    assert new == [[], ["c", "b"], ["a"]]  # a to the idle worker, then b to the first of two


# --- when a GPU has failed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.", "Xid 79"),
        ("cudaErrorLaunchFailure (Xid 13 in the kernel log)", "Xid 13"),
        ("CUDA_ERROR_ECC_UNCORRECTABLE: uncorrectable ECC error encountered", "ECC_UNCORRECTABLE"),
        ("the GPU has fallen off the bus", "fallen off the bus"),
        ("20 batches in a row failed, the last: cudaErrorIllegalAddress", None),
        ("stream xid7: cannot open rtsp://10.0.0.1/Xid", None),  # no number: not a fault code
        ("", None),
    ],
)
def test_gpu_fault(text, fault):
    assert gpu_fault(text) == fault


def test_deaths_past_the_budget_within_the_window_fail_a_gpu():
    health = GpuHealth([0, 1], budget=2, window_s=60)
    assert health.death(1, 0.0) is None
    assert health.death(1, 30.0) is None
    reason = health.death(1, 59.0)
    assert reason is not None and reason.startswith("GPU 1 failed: its workers died 3 times")
    assert health.failed == {1: reason}
    assert health.healthy() == [0]
    assert health.death(1, 60.0) is None  # failed once: said once


def test_deaths_spread_beyond_the_window_never_fail_a_gpu():
    health = GpuHealth([0, 1], budget=2, window_s=60)
    for t in range(0, 1000, 31):
        assert health.death(0, float(t)) is None
    assert health.failed == {}


def test_the_last_healthy_gpu_never_fails():
    health = GpuHealth([0, 1], budget=0, window_s=60)
    assert health.death(0, 0.0) is not None
    assert health.death(1, 1.0) is None  # nowhere to move its streams: it keeps restarting
    assert health.fault(1, "Xid 79", worker=3) is None
    assert health.healthy() == [1]


def test_an_xid_fails_a_gpu_at_once_and_names_the_worker():
    health = GpuHealth([0, 1, 2], budget=5, window_s=60)
    assert health.fault(2, "cudaErrorLaunchTimeout", worker=4) is None
    assert health.fault(2, "NVRM: Xid 48: DBE", worker=4) == (
        "GPU 2 failed: Xid 48 (worker process 4)"
    )
    assert health.healthy() == [0, 1]
