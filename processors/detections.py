"""Detections as parallel typed arrays (boxes, scores, class ids), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes ``[x1, y1, x2, y2]``.
        scores: ``(n,)`` float32 confidences in [0, 1].
        class_ids: ``(n,)`` int32 class indices into the model's labels.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be ({n}, 4) to match scores, got {self.xyxy.shape}")
        if self.scores.shape != (n,) or self.class_ids.shape != (n,):
            raise ValueError(
                f"scores and class_ids must be ({n},), got {self.scores.shape} "
                f"and {self.class_ids.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
