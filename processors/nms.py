"""Class-wise non-maximum suppression, vectorised per kept box."""

from __future__ import annotations

import numpy as np


def box_iou(box_xyxy: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with each of ``(n, 4)`` boxes; returns ``(n,)``."""
    x1 = np.maximum(box_xyxy[0], boxes_xyxy[:, 0])
    y1 = np.maximum(box_xyxy[1], boxes_xyxy[:, 1])
    x2 = np.minimum(box_xyxy[2], boxes_xyxy[:, 2])
    y2 = np.minimum(box_xyxy[3], boxes_xyxy[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box_xyxy[2] - box_xyxy[0]) * (box_xyxy[3] - box_xyxy[1])
    areas = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int = 300,
) -> np.ndarray:
    """Indices of the boxes kept, best first; boxes of different classes never suppress.

    Boxes are shifted by ``class_id * offset`` so that one greedy pass over all classes
    is class-wise (the torchvision ``batched_nms`` trick).
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    offset = float(np.abs(xyxy).max()) + 1.0
    shifted = xyxy + (class_ids.astype(np.float32) * offset)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[box_iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
