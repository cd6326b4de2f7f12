"""Per-stream and pipeline figures: counters plus a sliding window for fps and percentiles.

Counters are plain ints written by one thread each (the GIL makes reads safe enough for
display); windows are fixed-size NumPy rings, so nothing grows with uptime.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from streams.states import StreamState

WINDOW_S = 5.0
MAX_SAMPLES = 4096
_SLOTS = MAX_SAMPLES + 1  # one spare: the slot being written never holds a sample in view


class LatencyWindow:
    """The last ``MAX_SAMPLES`` (time, value) samples, of which the last ``WINDOW_S`` seconds
    count: a ring of two NumPy arrays, so a snapshot filters arrays instead of copying a deque
    of tuples into lists.

    One thread adds (the completer); any thread reads. ``add`` writes the spare slot and then
    counts it, so a reader takes the ``MAX_SAMPLES`` samples counted before it copied and leaves
    out any whose slots the writer reused while it copied: no lock, no torn (time, value) pair.
    """

    __slots__ = ("_count", "_time_slots", "_times", "_value_slots", "_values")

    def __init__(self) -> None:
        self._times = np.zeros(_SLOTS, np.float64)
        self._values = np.zeros(_SLOTS, np.float64)
        # add() writes one float through a memoryview of each ring (half the cost of NumPy's
        # item assignment); readers see the same memory as arrays.
        self._time_slots, self._value_slots = memoryview(self._times), memoryview(self._values)
        self._count = 0  # samples ever added; the next goes to slot _count % _SLOTS

    def __len__(self) -> int:
        """Samples held (the window may cover fewer)."""
        return min(self._count, MAX_SAMPLES)

    def add(self, value: float, now_s: float | None = None) -> None:
        slot = self._count % _SLOTS
        self._time_slots[slot] = time.monotonic() if now_s is None else now_s
        self._value_slots[slot] = value
        self._count += 1

    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the held (times, values), oldest first."""
        count = self._count
        first = max(0, count - MAX_SAMPLES)
        times, values = (
            _ring_copy(self._times, first, count),
            _ring_copy(self._values, first, count),
        )
        # Slots the writer reused during the copies: samples count to self._count (the last
        # perhaps half written) went into the slots of samples count - _SLOTS on.
        reused = self._count + 1 - _SLOTS - first
        if reused > 0:
            times, values = times[reused:], values[reused:]
        return times, values

    def _recent(self, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        times, values = self._samples()
        recent = times >= now_s - WINDOW_S
        return times[recent], values[recent]

    def rate(self, now_s: float | None = None) -> float:
        """Samples per second over the window."""
        now_s = time.monotonic() if now_s is None else now_s
        return _rate(self._recent(now_s)[0], now_s)

    def percentiles(self, qs=(50, 99), now_s: float | None = None) -> tuple[float, ...]:
        return _percentiles(self._recent(time.monotonic() if now_s is None else now_s)[1], qs)

    def rate_and_percentiles(
        self, qs=(50, 99), now_s: float | None = None
    ) -> tuple[float, tuple[float, ...]]:
        """``rate`` and ``percentiles`` at one instant, from one copy of the window."""
        now_s = time.monotonic() if now_s is None else now_s
        times, values = self._recent(now_s)
        return _rate(times, now_s), _percentiles(values, qs)


def _rate(recent_times: np.ndarray, now_s: float) -> float:
    if len(recent_times) < 2:
        return 0.0
    span = max(now_s - float(recent_times[0]), 1e-3)
    return len(recent_times) / span


def _percentiles(recent_values: np.ndarray, qs) -> tuple[float, ...]:
    if not len(recent_values):
        return tuple(float("nan") for _ in qs)
    return tuple(float(v) for v in np.percentile(recent_values, qs))


def _ring_copy(ring: np.ndarray, first: int, end: int) -> np.ndarray:
    """Samples ``first`` to ``end`` (at most one ring's worth) of ``ring``, oldest first."""
    size = len(ring)
    start, count = first % size, end - first
    if start + count <= size:
        return ring[start : start + count].copy()
    return np.concatenate((ring[start:], ring[: start + count - size]))


@dataclass
class StreamStats:
    """What one stream has done so far."""

    stream_id: str
    state: StreamState = StreamState.STARTING
    decoded: int = 0
    processed: int = 0
    dropped: int = 0  # replaced in the latest-frame slot before the batcher took it
    reconnects: int = 0
    skips: int = 0  # damaged stretches of a file skipped over
    latency_ms: LatencyWindow = field(default_factory=LatencyWindow)
    recorded_latency_ms: list[float] | None = None  # set to [] to keep every sample (bench)

    def snapshot(self) -> dict:
        fps, (p50, p99) = self.latency_ms.rate_and_percentiles()
        return {
            "stream": self.stream_id,
            "state": self.state.value,
            "fps": round(fps, 2),
            "p50_ms": _round(p50),
            "p99_ms": _round(p99),
            "decoded": self.decoded,
            "processed": self.processed,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
        }


@dataclass
class PipelineStats:
    """Pipeline-wide counters."""

    batches: int = 0
    batch_frames: int = 0
    published: int = 0
    publish_dropped: int = 0
    inference_ms: LatencyWindow = field(default_factory=LatencyWindow)

    def snapshot(self) -> dict:
        (p50,) = self.inference_ms.percentiles((50,))
        return {
            "batches": self.batches,
            "mean_batch": round(self.batch_frames / self.batches, 2) if self.batches else 0.0,
            "inference_p50_ms": _round(p50),
            "published": self.published,
            "publish_dropped": self.publish_dropped,
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)  # NaN -> None (JSON null)
