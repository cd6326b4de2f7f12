"""The Frame contract between capture workers and the batcher."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        image_bgr: host BGR uint8 array ``(H, W, 3)``.
    """

    stream_id: str
    seq: int
    pts_s: float
    capture_wall_s: float
    ready_mono_s: float
    decode_ms: float
    image_bgr: np.ndarray

    @property
    def source_hw(self) -> tuple[int, int]:
        return int(self.image_bgr.shape[0]), int(self.image_bgr.shape[1])
