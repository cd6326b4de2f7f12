"""Letterbox geometry and CPU preprocessing into the engine's batch input buffer.

The GPU kernel (later) must reproduce exactly this geometry, so it lives in one place:
the image is scaled by ``min(dst_h / src_h, dst_w / src_w)``, rounded to whole pixels and
centred, with the remainder padded with grey (114).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """Maps between source pixels and model-input pixels.

    Attributes:
        scale: model pixels per source pixel.
        pad_x: left padding in model pixels. pad_y: top padding in model pixels.
        resized_wh: size of the scaled image inside the model input.
    """

    scale: float
    pad_x: int
    pad_y: int
    resized_wh: tuple[int, int]

    @classmethod
    def fit(cls, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> Letterbox:
        """Geometry for placing a ``src_hw`` image inside a ``dst_hw`` model input.

        Called for every frame with a handful of distinct sizes, so the result is cached per
        (source size, input size); a Letterbox is immutable, so frames can share one.
        """
        src_h, src_w = src_hw
        dst_h, dst_w = dst_hw
        return _fit(src_h, src_w, dst_h, dst_w)

    def to_source(self, xyxy: np.ndarray, src_hw: tuple[int, int]) -> np.ndarray:
        """Map ``(n, 4)`` boxes from model pixels back to source pixels, clipped to the frame."""
        out = np.empty_like(xyxy, dtype=np.float32)
        xs, ys = out[:, 0::2], out[:, 1::2]  # views, so the clips below write into ``out``
        xs[:] = (xyxy[:, 0::2] - self.pad_x) / self.scale
        ys[:] = (xyxy[:, 1::2] - self.pad_y) / self.scale
        np.clip(xs, 0, src_hw[1], out=xs)
        np.clip(ys, 0, src_hw[0], out=ys)
        return out


def letterbox_bgr(image_bgr: np.ndarray, dst_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Return the letterboxed ``(H, W, 3)`` uint8 BGR image and its geometry."""
    box = Letterbox.fit(image_bgr.shape[:2], dst_hw)
    new_w, new_h = box.resized_wh
    if (new_w, new_h) != (image_bgr.shape[1], image_bgr.shape[0]):
        image_bgr = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    bottom = dst_hw[0] - new_h - box.pad_y
    right = dst_hw[1] - new_w - box.pad_x
    canvas = cv2.copyMakeBorder(
        image_bgr,
        box.pad_y,
        bottom,
        box.pad_x,
        right,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    return canvas, box


def preprocess_into(dst_chw: np.ndarray, image_bgr: np.ndarray) -> Letterbox:
    """Letterbox one BGR uint8 frame into ``dst_chw`` (3, H, W) as RGB in [0, 1].

    ``dst_chw`` is a slot of the engine's batch input buffer, so nothing is allocated
    per frame beyond OpenCV's resize output.
    """
    canvas, box = letterbox_bgr(image_bgr, dst_chw.shape[1:])
    np.multiply(canvas.transpose(2, 0, 1)[::-1], np.float32(1 / 255), out=dst_chw, casting="unsafe")
    return box


@lru_cache(maxsize=1024, typed=True)  # typed: a NumPy int gives what it gave before caching
def _fit(src_h: int, src_w: int, dst_h: int, dst_w: int) -> Letterbox:
    """Letterbox.fit's arithmetic, pure (errors are raised, not cached)."""
    if src_h <= 0 or src_w <= 0:
        raise ValueError(f"source size must be positive, got {(src_h, src_w)}")
    scale = min(dst_h / src_h, dst_w / src_w)
    new_w = min(dst_w, max(1, round(src_w * scale)))
    new_h = min(dst_h, max(1, round(src_h * scale)))
    return Letterbox(scale, (dst_w - new_w) // 2, (dst_h - new_h) // 2, (new_w, new_h))
