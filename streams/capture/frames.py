"""The Frame contract between capture workers and the batcher."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

_SEGMENTS = itertools.count(1)


def new_segment() -> int:
    """A segment number no frame of this process had yet (``next`` on a count is atomic)."""
    return next(_SEGMENTS)


@dataclass
class Frame:
    """One decoded picture and where it came from.

    Attributes:
        stream_id: the config's stream id.
        seq: per-stream sequence number of frames handed to the pipeline (0, 1, 2, ...);
            a gap seen by a subscriber is a frame dropped on the way.
        pts_s: presentation time in seconds from the source (stream clock).
        capture_wall_s: wall-clock time (``time.time()``) when decoding finished.
        ready_mono_s: ``time.monotonic()`` when decoding finished (latency base).
        decode_ms: time spent reading and decoding this frame.
        image_bgr: host BGR uint8 array ``(H, W, 3)``, or None for a GPU-decoded frame.
        surface: a ``streams.capture.nvdec.DecodedSurface`` (device NV12) when NVDEC decoded it; it
            must be released once the preprocessing kernel has read it.
        segment: which unbroken run of pictures it belongs to, unique in the process: a new
            value for each session (open, reconnect, restart) and each pass of a looping
            file, so that whoever keeps per-stream state over time (the tracker) knows when
            to start afresh.
    """

    stream_id: str
    seq: int
    pts_s: float
    capture_wall_s: float
    ready_mono_s: float
    decode_ms: float
    image_bgr: np.ndarray | None
    surface: Any = None
    segment: int = 0

    @property
    def source_hw(self) -> tuple[int, int]:
        if self.surface is not None:
            return int(self.surface.height), int(self.surface.width)
        return int(self.image_bgr.shape[0]), int(self.image_bgr.shape[1])

    def release(self, stream: Any = None) -> None:
        """Return a device surface to its decoder once the work queued on ``stream`` has
        read it (no-op for host frames)."""
        if self.surface is not None:
            self.surface.release(stream)


class DisplayClock:
    """Presentation times of pictures in display order, made never to decrease.

    A looping file starts its times again, and a camera's clock can step back (it rebooted, or
    the first packets had no time and counted up from 0); from then on times are shifted so
    that they carry on from the last one, a frame later, instead of repeating old values (which
    an ``fps`` cap would drop).
    """

    def __init__(self, fps: float) -> None:
        self._frame_s = 1.0 / fps if fps else 0.04
        self._offset_s = 0.0
        self._last_raw_s: float | None = None
        self._last_s = 0.0

    def __call__(self, raw_s: float) -> float:
        if self._last_raw_s is not None and raw_s < self._last_raw_s:
            self._offset_s = self._last_s + self._frame_s - raw_s
        self._last_raw_s = raw_s
        self._last_s = raw_s + self._offset_s
        return self._last_s
