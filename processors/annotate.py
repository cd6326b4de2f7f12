"""Draw one frame's detections, track ids, zones and lines onto a (small) picture.

For the browser view's pictures (streams/runtime/preview.py): made only for watched streams,
a few a second, on pictures already scaled down, so drawing with OpenCV box by box is cheap
next to the JPEG encode that follows. Coordinates are given in source pixels with the scale
that maps them onto the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# BGR, saturated and far apart, so a test (and a person) can tell boxes from the video; the
# colour of class id k is PALETTE[k % len(PALETTE)]. Zones and lines have colours of their own.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 0, 255),  # magenta: class 0 (person in COCO)
    (0, 255, 0),  # green
    (0, 0, 255),  # red
    (255, 0, 0),  # blue
    (0, 128, 255),  # orange
    (255, 0, 128),  # violet
    (0, 255, 128),  # spring green
    (128, 0, 255),  # pink
)
ZONE_BGR = (0, 255, 255)  # yellow
LINE_BGR = (255, 255, 0)  # cyan
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(class_id: int) -> tuple[int, int, int]:
    return PALETTE[int(class_id) % len(PALETTE)]


def draw_detections(
    image: np.ndarray,
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    labels: Sequence[str],
    scale: float,
    track_ids: np.ndarray | None = None,
) -> None:
    """Boxes with ``label score`` (and ``#track`` where confirmed) on ``image``, in place.

    ``xyxy``: ``(n, 4)`` boxes in source pixels; ``scale``: picture pixels per source pixel.
    """
    if not len(xyxy):
        return
    height, width = image.shape[:2]
    thickness = max(2, round(width / 320))
    font_scale = max(0.4, width / 1600)
    boxes = np.round(np.asarray(xyxy, np.float64) * scale).astype(np.int32).tolist()
    ids = class_ids.tolist()
    texts = [
        f"{labels[c] if 0 <= c < len(labels) else c} {s:.2f}"
        for c, s in zip(ids, np.asarray(scores, np.float64).tolist())
    ]
    if track_ids is not None:
        texts = [t if k < 0 else f"{t} #{k}" for t, k in zip(texts, track_ids.tolist())]
    for (x0, y0, x1, y1), class_id, text in zip(boxes, ids, texts):
        colour = class_colour(class_id)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
        (tw, th), base = cv2.getTextSize(text, _FONT, font_scale, 1)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else min(y0 + th + base + 2, height - 1)
        cv2.rectangle(image, (x0, ty - th - base), (x0 + tw + 2, ty + 1), colour, cv2.FILLED)
        cv2.putText(image, text, (x0 + 1, ty - base + 1), _FONT, font_scale, (0, 0, 0), 1)


def draw_zones(
    image: np.ndarray,
    zones: Sequence[tuple[str, np.ndarray]],
    lines: Sequence[tuple[str, np.ndarray, np.ndarray]],
    scale: float,
) -> None:
    """Zone polygons and counting lines (points in source pixels) with their names."""
    width = image.shape[1]
    thickness = max(2, round(width / 320))  # JPEG chroma at half resolution: 1 px fades
    font_scale = max(0.4, width / 1600)
    for name, points in zones:
        pts = np.round(np.asarray(points, np.float64) * scale).astype(np.int32)
        cv2.polylines(image, [pts], True, ZONE_BGR, thickness)
        cv2.putText(image, name, tuple(pts[0].tolist()), _FONT, font_scale, ZONE_BGR, 1)
    for name, a, b in lines:
        pa = tuple(np.round(np.asarray(a, np.float64) * scale).astype(int).tolist())
        pb = tuple(np.round(np.asarray(b, np.float64) * scale).astype(int).tolist())
        cv2.line(image, pa, pb, LINE_BGR, thickness)
        cv2.putText(image, name, pa, _FONT, font_scale, LINE_BGR, 1)
