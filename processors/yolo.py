"""YOLO output heads: decode raw model outputs into Detections in source pixels.

Two layouts are common:
- ``yolov5`` (also YOLOv3/v7 exports and our Darknet converter): ``(N, boxes, 5 + C)`` rows of
  centre x, centre y, width, height (model pixels), objectness, class scores.
- ``yolov8`` (also v11): ``(N, 4 + C, boxes)``: centre/size then class scores, no objectness.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from processors.detections import Detections
from processors.letterbox import Letterbox
from processors.nms import batched_nms

MAX_CANDIDATES = 3000  # per image, the best ones, before NMS
NMS_CHUNK = 512  # candidates per NMS call at most, unless one image has more


def _no_detections() -> Detections:
    empty = Detections.empty()
    for array in (empty.xyxy, empty.scores, empty.class_ids):
        array.flags.writeable = False
    return empty


# Shared by every frame without detections (read-only, so sharing is safe).
_NO_DETECTIONS = _no_detections()


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
    Boxes are mapped back through the letterbox into source pixels. A batch of one of
    ``decode_yolo_batch``.
    """
    return decode_yolo_batch(
        output[None],
        head_format,
        [letterbox],
        [source_hw],
        conf_threshold,
        iou_threshold,
        max_detections,
    )[0]


def decode_yolo_batch(
    outputs: np.ndarray,
    head_format: str,
    letterboxes: Sequence[Letterbox],
    source_hws: Sequence[tuple[int, int]],
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int = 100,
    multi_label: bool = False,
) -> list[Detections]:
    """Decode a whole batch's output into one Detections per image, vectorised over the batch.

    ``outputs`` is ``(N, boxes, 5+C)`` (yolov5) or ``(N, 4+C, boxes)`` (yolov8), float32 or
    float16, possibly a view of an engine buffer with more rows than frames: the first
    ``len(letterboxes)`` rows are decoded. Nothing returned refers to ``outputs``.

    Per image the result is what ``decode_yolo`` gave before it was a batch of one: candidates
    past ``conf_threshold`` (scores ``objectness * class score`` for yolov5, computed in float32
    also for float16 outputs), the MAX_CANDIDATES best per image, a greedy class-wise NMS in
    model pixels, best first, at most ``max_detections``, mapped through that frame's letterbox
    and clipped to it. Boxes of different images never suppress each other: one NMS over the
    batch with a group per (image, class).

    ``multi_label``: a box gives a candidate for every class past ``conf_threshold``, not only
    for its best one. That is how YOLOv5/v7/v8 compute mAP (their val, at conf 0.001), used
    by ``processors.evaluation``; the pipeline keeps one class per box.
    """
    n = len(letterboxes)
    if len(source_hws) != n:
        raise ValueError(f"{n} letterboxes but {len(source_hws)} source sizes")
    if head_format not in ("yolov5", "yolov8"):
        raise ValueError(f"unknown head format {head_format!r}; expected yolov5 or yolov8")
    if outputs.ndim != 3 or outputs.shape[0] < n:
        raise ValueError(f"expected a (N >= {n}, a, b) YOLO output, got shape {outputs.shape}")
    if n == 0:
        return []
    outputs = outputs[:n]
    conf = np.float32(conf_threshold)
    if head_format == "yolov5":
        num_boxes, num_classes = outputs.shape[1], outputs.shape[2] - 5
        # Objectness bounds the final score: one cheap filter over the whole batch first.
        flat = np.flatnonzero(_as_float32(outputs[:, :, 4]) >= conf)
        if outputs.flags.c_contiguous:
            rows = outputs.reshape(n * num_boxes, -1)[flat]  # (K, 5 + C), a copy
        else:
            rows = outputs[flat // num_boxes, flat % num_boxes]
        rows = _as_float32(rows)
        class_scores = rows[:, 5:] * rows[:, 4:5]
    else:
        num_boxes, num_classes = outputs.shape[2], outputs.shape[1] - 4
        # The best class score is the final score: filter on it over the whole batch.
        flat = np.flatnonzero(_as_float32(outputs[:, 4:, :].max(axis=1)) >= conf)
        rows = _as_float32(outputs[flat // num_boxes, :, flat % num_boxes])  # (K, 4 + C)
        class_scores = rows[:, 4:]
    if flat.size == 0:
        return [_NO_DETECTIONS] * n
    image_idx = flat // num_boxes
    if multi_label:
        row, class_ids = np.nonzero(class_scores >= conf)
        rows, scores, image_idx = rows[row], class_scores[row, class_ids], image_idx[row]
    else:
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores.max(axis=1)  # the argmax's score
    passed = scores >= conf
    if not passed.all():
        rows, scores, class_ids, image_idx = (
            rows[passed],
            scores[passed],
            class_ids[passed],
            image_idx[passed],
        )
        if scores.size == 0:
            return [_NO_DETECTIONS] * n
    per_image = None
    if scores.size > min(MAX_CANDIDATES, NMS_CHUNK):
        per_image = np.bincount(image_idx, minlength=n)
    if scores.size > MAX_CANDIDATES and per_image.max() > MAX_CANDIDATES:
        # The MAX_CANDIDATES best of each image (candidates are grouped by image, in box order).
        order = np.lexsort((-scores, image_idx))
        rank = np.arange(order.size) - (np.cumsum(per_image) - per_image)[image_idx[order]]
        top = np.sort(order[rank < MAX_CANDIDATES])
        rows, scores, class_ids, image_idx = rows[top], scores[top], class_ids[top], image_idx[top]
        per_image = np.minimum(per_image, MAX_CANDIDATES)
    half = rows[:, 2:4] / 2
    xyxy = np.concatenate((rows[:, :2] - half, rows[:, :2] + half), axis=1)  # model pixels
    # NMS in model pixels (unclipped), one group per (image, class), so NMS never mixes them.
    keep = _nms_by_image(
        xyxy, scores, image_idx * num_classes + class_ids, per_image, iou_threshold
    )
    # Best first over the batch -> grouped by image, still best first, capped per image.
    kept_image = image_idx[keep]
    order = np.argsort(kept_image, kind="stable")
    keep, kept_image = keep[order], kept_image[order]
    counts = np.bincount(kept_image, minlength=n).tolist()
    if max(counts) > max_detections:
        starts = np.cumsum([0, *counts[:-1]])
        capped = np.arange(keep.size) - starts[kept_image] < max_detections
        keep, kept_image = keep[capped], kept_image[capped]
        counts = [min(c, max_detections) for c in counts]
        if keep.size == 0:  # max_detections 0
            return [_NO_DETECTIONS] * n
    # Back through each frame's letterbox (as Letterbox.to_source does), all boxes at once:
    # pads, scale and clip bounds of the images with detections, repeated per box.
    geometry = np.array(
        [
            (box.pad_x, box.pad_y, box.pad_x, box.pad_y, box.scale, hw[1], hw[0], hw[1], hw[0])
            for box, hw, count in zip(letterboxes, source_hws, counts)
            if count
        ],
        np.float32,
    ).repeat([c for c in counts if c], axis=0)
    boxes = xyxy[keep]
    boxes -= geometry[:, 0:4]
    boxes /= geometry[:, 4:5]
    np.maximum(boxes, 0, out=boxes)
    np.minimum(boxes, geometry[:, 5:9], out=boxes)
    kept_scores = scores[keep]
    kept_classes = class_ids[keep].astype(np.int32)
    detections = []
    start = 0
    for count in counts:
        if count:
            end = start + count
            detections.append(
                Detections(boxes[start:end], kept_scores[start:end], kept_classes[start:end])
            )
            start = end
        else:
            detections.append(_NO_DETECTIONS)
    return detections


def _as_float32(array: np.ndarray) -> np.ndarray:
    return array if array.dtype == np.float32 else array.astype(np.float32)


def _nms_by_image(
    xyxy: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    per_image: np.ndarray | None,
    iou_threshold: float,
) -> np.ndarray:
    """``batched_nms`` of the whole batch, in as few calls as keep its cost near linear.

    A greedy pass compares each box with every box kept so far, of any group, so one call
    costs ``candidates x kept``: consecutive images are grouped into calls of at most
    ``NMS_CHUNK`` candidates (an image with more gets a call of its own). The usual batch is
    one call. Candidates are grouped by image; returns indices best first within each call.
    """
    if per_image is None or len(scores) <= NMS_CHUNK:
        return batched_nms(xyxy, scores, groups, iou_threshold)
    kept = []
    start = end = 0
    for count in [*per_image.tolist(), None]:
        if end > start and (count is None or end + count - start > NMS_CHUNK):
            part = slice(start, end)
            kept.append(batched_nms(xyxy[part], scores[part], groups[part], iou_threshold) + start)
            start = end
        end += count or 0
    return np.concatenate(kept)
