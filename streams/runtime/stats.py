"""Per-stream and pipeline figures: counters plus a sliding window for fps and percentiles.

Counters are plain ints written by one thread each (the GIL makes reads safe enough for
display); windows are bounded deques, so nothing grows with uptime.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from streams.states import StreamState

WINDOW_S = 5.0
MAX_SAMPLES = 4096


@dataclass
class LatencyWindow:
    """The last ``MAX_SAMPLES`` (time, value) samples of the last ``WINDOW_S`` seconds."""

    samples: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def add(self, value: float, now_s: float | None = None) -> None:
        self.samples.append((time.monotonic() if now_s is None else now_s, value))

    def _recent(self, now_s: float) -> list[float]:
        cutoff = now_s - WINDOW_S
        return [value for t, value in list(self.samples) if t >= cutoff]

    def rate(self, now_s: float | None = None) -> float:
        """Samples per second over the window."""
        now_s = time.monotonic() if now_s is None else now_s
        recent = [t for t, _ in list(self.samples) if t >= now_s - WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = max(now_s - recent[0], 1e-3)
        return len(recent) / span

    def percentiles(self, qs=(50, 99), now_s: float | None = None) -> tuple[float, ...]:
        recent = self._recent(time.monotonic() if now_s is None else now_s)
        if not recent:
            return tuple(float("nan") for _ in qs)
        return tuple(float(v) for v in np.percentile(recent, qs))


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
        p50, p99 = self.latency_ms.percentiles()
        return {
            "stream": self.stream_id, "state": self.state.value, "fps": round(self.latency_ms.rate(), 2),
            "p50_ms": _round(p50), "p99_ms": _round(p99), "decoded": self.decoded,
            "processed": self.processed, "dropped": self.dropped, "reconnects": self.reconnects,
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
            "inference_p50_ms": _round(p50), "published": self.published,
            "publish_dropped": self.publish_dropped,
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)  # NaN -> None (JSON null)
