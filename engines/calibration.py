"""INT8 calibration frames as the engines see them: an identity for cache keys and batches.

Engines do not read video or letterbox images (that is processors/calibration.py, which
preprocesses exactly as the pipeline does); they get a :class:`CalibrationSet` and ask it
for float32 ``(n, 3, H, W)`` batches only when a quantized model or calibration cache is not
cached yet. ``identity`` names the set without decoding it (the sources' paths, sizes and
modification times, the frame count and the input size), so a cached int8 engine starts
without reading a single frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from engines.errors import EngineError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration frames for one model input size.

    Attributes:
        identity: sha256 hex of what the frames are made from (cache keys use it).
        frames: how many frames ``batches`` yields in all.
        describe: a human line (``256 frames from 2 videos in /data/calib``).
        read: ``read(batch_size, progress)`` yields float32 ``(n, 3, H, W)`` batches.
    """

    identity: str
    frames: int
    describe: str
    read: Callable[[int, Progress | None], Iterator[np.ndarray]]

    def batches(self, batch_size: int, progress: Progress | None = None) -> Iterator[np.ndarray]:
        """Every calibration frame, ``batch_size`` at a time (the last batch may be short)."""
        count = 0
        for batch in self.read(batch_size, progress):
            count += len(batch)
            yield batch
        if count == 0:
            raise EngineError(f"int8 calibration: no frames could be read ({self.describe})")


def require(calibration: CalibrationSet | None, where: str) -> CalibrationSet:
    """The calibration set, or an EngineError saying int8 needs one."""
    if calibration is None:
        raise EngineError(
            f"{where}: engine.precision int8 needs calibration frames (engine.calibration: "
            "streams, or a folder of images/videos); none were given"
        )
    return calibration
