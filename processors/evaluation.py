"""Agreement of a model's detections with a reference model's: mAP50 and detections kept.

Used to judge reduced precision (int8, fp16) against fp32 on the same frames, where fp32's
detections stand in for ground truth: ``map50`` is the mean over classes of the area under
the precision/recall curve (all points, VOC 2010+ style) with a candidate box a hit when it
has the reference box's class and IoU >= 0.5 with a reference box not hit yet, best scores
first; ``kept`` is the fraction of reference boxes matched by a candidate at the reference's
own confidence threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from processors.detections import Detections
from processors.letterbox import preprocess_into
from processors.nms import box_iou
from processors.yolo import decode_yolo_batch, detect_head_format

IOU = 0.5
NMS_IOU = 0.45


def _hits(reference: Detections, candidate: Detections, iou: float) -> np.ndarray:
    """Per candidate box (in descending score order): whether it hits a new reference box."""
    order = np.argsort(-candidate.scores, kind="stable")
    taken = np.zeros(len(reference), bool)
    hits = np.zeros(len(order), bool)
    for rank, i in enumerate(order):
        same = (reference.class_ids == candidate.class_ids[i]) & ~taken
        if not same.any():
            continue
        overlap = np.where(same, box_iou(candidate.xyxy[i], reference.xyxy), -1.0)
        best = int(np.argmax(overlap))
        if overlap[best] >= iou:
            taken[best] = True
            hits[rank] = True
    return hits


def map50(
    references: Sequence[Detections],
    candidates: Sequence[Detections],
    iou: float = IOU,
    min_boxes: int = 1,
) -> float:
    """Mean over the reference's classes of the candidates' average precision at ``iou``.

    ``min_boxes``: only classes with at least that many reference boxes count (a class seen
    once scores 0 or 1 on one box; the benchmark reports both means).
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference frames but {len(candidates)} candidates")
    per_class: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    totals: dict[int, int] = {}
    for ref, cand in zip(references, candidates):
        for c in np.unique(ref.class_ids):
            totals[int(c)] = totals.get(int(c), 0) + int((ref.class_ids == c).sum())
        hits = _hits(ref, cand, iou)
        scores = np.sort(cand.scores)[::-1]
        classes = cand.class_ids[np.argsort(-cand.scores, kind="stable")]
        for c in np.unique(classes):
            mask = classes == c
            per_class.setdefault(int(c), []).append((scores[mask], hits[mask]))
    if not totals:
        raise ValueError("the reference has no detections to compare against")
    totals = {c: n for c, n in totals.items() if n >= min_boxes}
    if not totals:
        raise ValueError(f"no class has {min_boxes} reference boxes")
    aps = []
    for c, total in totals.items():
        parts = per_class.get(c, [])
        if not parts:
            aps.append(0.0)
            continue
        scores = np.concatenate([s for s, _ in parts])
        hits = np.concatenate([h for _, h in parts])[np.argsort(-scores, kind="stable")]
        tp = np.cumsum(hits)
        recall = tp / total
        precision = tp / np.arange(1, len(hits) + 1)
        # all-point interpolation: precision made monotone from the right, summed over recall
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.diff(np.concatenate([[0.0], recall]))
        aps.append(float((steps * envelope).sum()))
    return float(np.mean(aps))


def kept(
    references: Sequence[Detections], candidates: Sequence[Detections], iou: float = IOU
) -> float:
    """Fraction of reference boxes that a candidate box of the same class hits."""
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the reference has no detections to compare against")
    return sum(int(_hits(r, c, iou).sum()) for r, c in zip(references, candidates)) / total


def eval_frames(videos: list[str], count: int, calibration_frames: int) -> list[np.ndarray]:
    """``count`` BGR frames spread over ``videos``, half a calibration stride off its frames."""
    import cv2

    frames = []
    per_video = [count // len(videos) + (i < count % len(videos)) for i in range(len(videos))]
    for path, want in zip(videos, per_video):
        cap = cv2.VideoCapture(path)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cal_stride = max(1, total // max(1, calibration_frames // len(videos)))
        stride = max(1, total // want)
        offset = max(1, cal_stride // 2) if cal_stride > 1 else 0
        index = got = 0
        while got < want and cap.grab():
            if index >= offset and (index - offset) % stride == 0:
                ok, image = cap.retrieve()
                if ok:
                    frames.append(image)
                    got += 1
            index += 1
        cap.release()
    return frames


def detect(
    infer,
    images: list[np.ndarray],
    hw: tuple[int, int],
    conf: float,
    batch_size: int = 8,
    multi_label: bool = False,
) -> list[Detections]:
    """Detections of ``infer`` (batch -> output) on ``images``, preprocessed as at run time.

    ``multi_label``: every class past ``conf`` per box, as YOLO's val ranks them for mAP.
    """
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = np.empty((len(chunk), 3, *hw), np.float32)
        boxes = [preprocess_into(batch[i], image) for i, image in enumerate(chunk)]
        output = np.asarray(infer(batch), np.float32)
        head = detect_head_format(output.shape)
        out += decode_yolo_batch(
            output, head, boxes, [im.shape[:2] for im in chunk], conf, NMS_IOU, 100, multi_label
        )
    return out
