"""A JPEG of a frame with its detections drawn: the event's objects in red, the rest in
green, each with its label (and track id). Drawn in the writer thread on a copy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

EVENT_BGR = (0, 0, 255)  # the objects the snapshot is for
OTHER_BGR = (0, 255, 0)
JPEG_QUALITY = 90


def draw_boxes(
    image_bgr: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    track_ids: Sequence[int] | None,
    highlight: set[int],
) -> np.ndarray:
    """A copy of ``image_bgr`` with ``boxes`` (``(n, 4)`` xyxy pixels) drawn; the boxes whose
    track id is in ``highlight`` in :data:`EVENT_BGR` (drawn last, on top), 2 px wide."""
    import cv2

    out = image_bgr.copy()
    height, width = out.shape[:2]
    xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
    tracks = [None] * len(xyxy) if track_ids is None else [int(t) for t in track_ids]
    # The event's objects last, so that no other box is drawn over theirs.
    order = sorted(range(len(xyxy)), key=lambda i: tracks[i] in highlight)
    for i in order:
        x1, y1, x2, y2 = xyxy[i]
        track = tracks[i]
        colour = EVENT_BGR if track is not None and track in highlight else OTHER_BGR
        a = (int(np.clip(round(x1), 0, width - 1)), int(np.clip(round(y1), 0, height - 1)))
        b = (int(np.clip(round(x2), 0, width - 1)), int(np.clip(round(y2), 0, height - 1)))
        cv2.rectangle(out, a, b, colour, 2)
        text = labels[i] if track is None or track < 1 else f"{labels[i]} #{track}"
        cv2.putText(
            out, text, (a[0] + 3, max(a[1] + 14, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1
        )
    return out


def write_jpeg(image_bgr: np.ndarray, path: Path) -> None:
    """Encode and write; OSError on a full disk or a directory it may not write."""
    import cv2

    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the JPEG")
    path.write_bytes(data.tobytes())
