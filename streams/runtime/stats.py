"""Per-stream and pipeline figures: counters plus a sliding window for fps and percentiles.

Counters are plain ints written by one thread each (the GIL makes reads safe enough for
display); windows are fixed-size NumPy rings, so nothing grows with uptime.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from streams.capture import nvdec_sessions
from streams.record.recorder import RecordCounts
from streams.states import StreamState

if TYPE_CHECKING:
    from streams.config import Config

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


ZONE_COUNTS = ("occupancy", "entered", "exited", "dwell_alerts")
LINE_COUNTS = ("in", "out")
_ZONE_STEPS = {  # an event's change to a zone's counts, in ZONE_COUNTS order
    "enter": (1, 1, 0, 0),
    "exit": (-1, 0, 1, 0),
    "dwell": (0, 0, 0, 1),
}


class AnalyticsCounts:
    """One stream's zone and line counts, by class name: what its events added up to.

    The completer counts each event (events are few: a dict lookup each); snapshots, on
    other threads, read copies. Occupancy is entered minus exited since the stream's state
    last started afresh (``clear_occupancy``); the other counts only grow, and a config
    reload keeps them for the zones and lines it keeps (``previous``), by name.
    """

    def __init__(
        self,
        zones: list[str],
        lines: list[str],
        previous: AnalyticsCounts | None = None,
    ) -> None:
        # name -> class name -> counts (ZONE_COUNTS / LINE_COUNTS order)
        self.zones: dict[str, dict[str, list[int]]] = {name: {} for name in zones}
        self.lines: dict[str, dict[str, list[int]]] = {name: {} for name in lines}
        self.off: str | None = None  # why this stream's analytics are off, if they are
        if previous is not None:
            for mine, theirs in ((self.zones, previous.zones), (self.lines, previous.lines)):
                for name in mine.keys() & theirs.keys():
                    mine[name] = {c: list(row) for c, row in list(theirs[name].items())}
            self.clear_occupancy()

    def count(self, kind: str, name: str, label: str, direction: str | None = None) -> None:
        """One event: ``enter``, ``exit``, ``dwell`` of zone ``name``, ``cross`` of a line."""
        if kind == "cross":
            row = self.lines[name].get(label) or self.lines[name].setdefault(label, [0, 0])
            row[LINE_COUNTS.index(direction)] += 1
            return
        row = self.zones[name].get(label) or self.zones[name].setdefault(label, [0, 0, 0, 0])
        for i, step in enumerate(_ZONE_STEPS[kind]):
            row[i] += step

    def clear_occupancy(self) -> None:
        """The stream's tracks started afresh: nobody is inside any more."""
        for per_class in self.zones.values():
            for row in list(per_class.values()):
                row[0] = 0

    def snapshot(self) -> dict:
        """``zones`` and ``lines`` lists, totals and ``by_class``, as ``stats`` carries them."""
        out: dict = {
            "zones": [_counted("zone", n, c, ZONE_COUNTS) for n, c in list(self.zones.items())],
            "lines": [_counted("line", n, c, LINE_COUNTS) for n, c in list(self.lines.items())],
        }
        if self.off is not None:
            out["analytics_error"] = self.off
        return out


def _counted(kind: str, name: str, per_class: dict[str, list[int]], keys: tuple) -> dict:
    rows = sorted((label, list(row)) for label, row in list(per_class.items()))
    totals = [sum(row[i] for _, row in rows) for i in range(len(keys))]
    return {
        kind: name,
        **dict(zip(keys, totals)),
        "by_class": [{"class": label, **dict(zip(keys, row))} for label, row in rows],
    }


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
    analytics: AnalyticsCounts | None = None  # streams with zones or lines (the completer's)
    record: RecordCounts | None = None  # streams that record snapshots and clips
    size: tuple[int, int] | None = None  # (width, height) of its frames, once live

    def snapshot(self) -> dict:
        fps, (p50, p99) = self.latency_ms.rate_and_percentiles()
        analytics = self.analytics
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
            **({"width": self.size[0], "height": self.size[1]} if self.size else {}),
            **(analytics.snapshot() if analytics is not None else {}),
            **({"record": self.record.snapshot()} if self.record is not None else {}),
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
            "nvdec_sessions": nvdec_sessions.open_now(),
        }


def with_shard(pipeline: dict, config: Config) -> dict:
    """``pipeline`` figures with ``shard`` (this node's ``index`` and ``count``) on a node
    started with ``run --shard``; as they are otherwise."""
    return pipeline if config.shard is None else {**pipeline, "shard": config.shard.describe()}


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)  # NaN -> None (JSON null)
