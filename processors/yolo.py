"""YOLO output heads: decode raw model outputs into Detections in source pixels.

Two layouts are common:
- ``yolov5`` (also YOLOv3/v7 exports and our Darknet converter): ``(N, boxes, 5 + C)`` rows of
  centre x, centre y, width, height (model pixels), objectness, class scores.
- ``yolov8`` (also v11): ``(N, 4 + C, boxes)``: centre/size then class scores, no objectness.
"""

from __future__ import annotations

import numpy as np

from processors.detections import Detections
from processors.letterbox import Letterbox
from processors.nms import nms

HEAD_FORMATS = ("auto", "yolov5", "yolov8")
MAX_CANDIDATES = 3000


def detect_head_format(output_shape: tuple[int, ...], num_classes: int | None = None) -> str:
    """Guess the head layout from a ``(N, a, b)`` output shape.

    With a known class count the match is exact; otherwise the box axis is the long one.
    """
    if len(output_shape) != 3:
        raise ValueError(f"expected a 3-D YOLO output (N, a, b), got shape {output_shape}")
    _, a, b = output_shape
    if num_classes is not None:
        if b == 5 + num_classes:
            return "yolov5"
        if a == 4 + num_classes:
            return "yolov8"
    if a > 0 and b > 0:
        return "yolov5" if a > b else "yolov8"
    raise ValueError(f"cannot tell the head layout of output shape {output_shape}")


def decode_yolo(
    output: np.ndarray,
    head_format: str,
    letterbox: Letterbox,
    source_hw: tuple[int, int],
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int = 100,
) -> Detections:
    """Decode one image's output (``(boxes, 5+C)`` or ``(4+C, boxes)``) into Detections.

    Scores are ``objectness * class score`` for yolov5 heads and the class score for yolov8.
    Boxes are mapped back through the letterbox into source pixels.
    """
    if head_format == "yolov8":
        rows = output.T
        class_scores = rows[:, 4:]
        objectness = None
    elif head_format == "yolov5":
        rows = output
        objectness = rows[:, 4]
        class_scores = rows[:, 5:]
    else:
        raise ValueError(f"unknown head format {head_format!r}; expected yolov5 or yolov8")
    if objectness is not None:
        # Objectness bounds the final score: cheap first filter before touching class scores.
        candidates = np.flatnonzero(objectness >= conf_threshold)
        class_scores = class_scores[candidates] * objectness[candidates, None]
    else:
        candidates = np.arange(len(rows))
    if candidates.size == 0:
        return Detections.empty()
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    passed = scores >= conf_threshold
    candidates, class_ids, scores = candidates[passed], class_ids[passed], scores[passed]
    if candidates.size == 0:
        return Detections.empty()
    if candidates.size > MAX_CANDIDATES:
        top = np.argpartition(-scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
        candidates, class_ids, scores = candidates[top], class_ids[top], scores[top]
    cxcywh = rows[candidates, :4].astype(np.float32)
    xyxy = np.empty_like(cxcywh)
    xyxy[:, :2] = cxcywh[:, :2] - cxcywh[:, 2:] / 2
    xyxy[:, 2:] = cxcywh[:, :2] + cxcywh[:, 2:] / 2
    keep = nms(xyxy, scores, class_ids, iou_threshold, max_detections)
    return Detections(
        letterbox.to_source(xyxy[keep], source_hw),
        scores[keep].astype(np.float32),
        class_ids[keep].astype(np.int32),
    )
