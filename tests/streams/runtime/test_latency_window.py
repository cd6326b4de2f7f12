"""LatencyWindow (a NumPy ring) against the deque it replaced: the same rates and percentiles
for the same samples, through wrap-around, and never a torn sample while a thread adds."""

import math
import random
import threading
import time
from collections import deque

import numpy as np
import pytest

from streams.runtime.stats import MAX_SAMPLES, WINDOW_S, LatencyWindow, PipelineStats, StreamStats


class DequeWindow:
    """LatencyWindow as it was (verbatim but for the class wrapper): the reference."""

    def __init__(self):
        self.samples = deque(maxlen=MAX_SAMPLES)

    def add(self, value, now_s=None):
        self.samples.append((time.monotonic() if now_s is None else now_s, value))

    def _recent(self, now_s):
        cutoff = now_s - WINDOW_S
        return [value for t, value in list(self.samples) if t >= cutoff]

    def rate(self, now_s=None):
        now_s = time.monotonic() if now_s is None else now_s
        recent = [t for t, _ in list(self.samples) if t >= now_s - WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = max(now_s - recent[0], 1e-3)
        return len(recent) / span

    def percentiles(self, qs=(50, 99), now_s=None):
        recent = self._recent(time.monotonic() if now_s is None else now_s)
        if not recent:
            return tuple(float("nan") for _ in qs)
        return tuple(float(v) for v in np.percentile(recent, qs))


def same(a, b):
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("per_second", [3.0, 30.0, 900.0, 5000.0])  # 5000/s: the ring wraps
def test_same_figures_as_the_deque(per_second):
    rng = random.Random(int(per_second))
    ring, ref = LatencyWindow(), DequeWindow()
    now = 1000.0
    for step in range(3 * MAX_SAMPLES + 17):
        now += rng.expovariate(per_second)
        value = rng.lognormvariate(3, 0.5)
        ring.add(value, now)
        ref.add(value, now)
        if step % 397 == 0 or step > 3 * MAX_SAMPLES:
            for at in (now, now + 0.5, now + WINDOW_S - 0.01, now + 2 * WINDOW_S):
                assert ring.rate(at) == ref.rate(at)
                assert same(ring.percentiles(now_s=at), ref.percentiles(now_s=at))
                assert same(ring.percentiles((50,), now_s=at), ref.percentiles((50,), now_s=at))
    assert len(ring) == len(ref.samples) == MAX_SAMPLES


def test_empty_and_single_sample():
    ring = LatencyWindow()
    assert ring.rate(5.0) == 0.0 and len(ring) == 0
    assert all(math.isnan(p) for p in ring.percentiles(now_s=5.0))
    ring.add(12.5, 5.0)
    assert ring.rate(5.0) == 0.0  # one sample is no rate, as before
    assert ring.percentiles(now_s=5.0) == (12.5, 12.5)


def test_default_clock_is_monotonic():
    ring = LatencyWindow()
    for _ in range(10):
        ring.add(1.0)
    assert ring.rate() > 0 and ring.percentiles() == (1.0, 1.0)


def test_reader_never_sees_a_torn_sample():
    """A thread adds (time t, value t) pairs as fast as it can; every sample a reader gets has
    its own value, and the window only ever holds the newest samples."""
    ring = LatencyWindow()
    stop = threading.Event()

    def writer():
        t = 0.0
        while not stop.is_set():
            t += 1.0
            ring.add(t, t)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        checked = 0
        while time.monotonic() < deadline:
            times, values = ring._samples()
            assert np.array_equal(times, values)
            assert len(times) <= MAX_SAMPLES
            assert np.all(np.diff(times) == 1.0)  # consecutive: oldest first, no gap
            checked += 1
    finally:
        stop.set()
        thread.join()
    assert checked > 10


def test_snapshots_use_the_windows():
    stream = StreamStats("cam1")
    pipeline = PipelineStats()
    now = time.monotonic()
    for i in range(100):
        stream.latency_ms.add(10.0 + i % 10, now - 2.0 + i * 0.02)
        pipeline.inference_ms.add(4.0, now - 2.0 + i * 0.02)
    snap = stream.snapshot()
    assert snap["p50_ms"] == 14.5 and snap["p99_ms"] == pytest.approx(19.0, abs=0.01)
    assert 40 < snap["fps"] < 51
    assert pipeline.snapshot()["inference_p50_ms"] == 4.0
    assert StreamStats("idle").snapshot()["p50_ms"] is None


def test_rate_and_percentiles_at_one_instant():
    ring, ref = LatencyWindow(), DequeWindow()
    for i in range(500):
        ring.add(float(i % 13), 100.0 + i * 0.01)
        ref.add(float(i % 13), 100.0 + i * 0.01)
    for at in (104.0, 106.0, 110.0, 200.0):
        rate, pcts = ring.rate_and_percentiles((50, 90, 99), now_s=at)
        assert rate == ref.rate(at)
        assert same(pcts, ref.percentiles((50, 90, 99), now_s=at))
