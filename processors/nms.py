"""Class-wise non-maximum suppression: greedy, best first; boxes of different groups never
suppress each other.

``batched_nms`` is the per-batch entry point (one OpenCV call for every image and class of a
batch); ``nms`` is the NumPy greedy pass it falls back to, vectorised per kept box.

IoU is that of float boxes with no "+1 pixel" (``cv2.dnn`` on ``Rect2d`` computes the same);
a box is suppressed when its IoU with a kept box of its group is above the threshold.
"""

from __future__ import annotations

import cv2
import numpy as np

# cv2.dnn.NMSBoxesBatched (OpenCV >= 4.7): one C++ greedy pass over many groups.
_NMS_BOXES_BATCHED = getattr(getattr(cv2, "dnn", None), "NMSBoxesBatched", None)


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
    is class-wise (the torchvision ``batched_nms`` trick). The boxes are first moved so that
    every coordinate is >= 0 and the offset is the coordinate span + 1, so that no two
    classes' shifted boxes can overlap, whatever the signs of the coordinates; the shift is
    done in float64 so that large class ids cost no precision.
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(xyxy, dtype=np.float64)
    low = boxes.min()
    offset = boxes.max() - low + 1.0
    shifted = (boxes - low) + (np.asarray(class_ids, dtype=np.float64) * offset)[:, None]
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[box_iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    group_ids: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Greedy NMS of many independent groups at once (e.g. ``image * num_classes + class``).

    Returns the indices kept, best first over all groups (ties in input order). Nothing is
    capped: greedy NMS keeps a prefix-stable list, so a group's first ``k`` kept boxes are the
    ones a run stopped at ``k`` would keep, and callers cap per group afterwards.

    With ``cv2.dnn.NMSBoxesBatched`` (OpenCV >= 4.7) this is one C++ call; without it, the
    NumPy greedy pass of ``nms`` over every group at once. The two differ only where an IoU
    lies within float rounding of the threshold, and for two boxes both of zero area (OpenCV
    counts their IoU as 1, ``box_iou`` as 0).
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if _NMS_BOXES_BATCHED is None:
        return nms(xyxy, scores, group_ids, iou_threshold, max_detections=n)
    # x, y, w, h in float64: exact for float32 corners, so OpenCV's x + w is the corner again.
    xywh = np.array(xyxy, dtype=np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    # NMSBoxesBatched separates groups by ``group * (max coordinate + 1)``, which is only safe
    # for coordinates >= 0: translate (IoU does not change) so that the smallest is 0.
    low = xywh[:, :2].min()
    if low < 0:
        xywh[:, :2] -= low
    # score_threshold -1: OpenCV keeps scores strictly above it, and every score given is
    # already past the caller's threshold. A list of boxes converts faster than an ndarray.
    kept = _NMS_BOXES_BATCHED(
        xywh.tolist(),
        np.asarray(scores, dtype=np.float32),
        np.asarray(group_ids, dtype=np.int32),
        -1.0,
        float(iou_threshold),
    )
    return np.asarray(kept, dtype=np.int64).reshape(-1)
