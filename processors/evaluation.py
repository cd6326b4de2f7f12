"""Agreement of a model's detections with a reference model's: mAP50 and detections kept.

Used to judge reduced precision (int8, fp16) against fp32 on the same frames, where fp32's
detections stand in for ground truth: ``map50`` is the mean over classes of the area under
the precision/recall curve (all points, VOC 2010+ style) with a candidate box a hit when it
has the reference box's class and IoU >= 0.5 with a reference box not hit yet, best scores
first; ``kept`` is the fraction of reference boxes matched by a candidate at the reference's
own confidence threshold.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

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


class _Ranked:
    """Every candidate box of a set of frames, scored against the reference once.

    Per class: the candidate boxes in descending score order with their frame and whether
    each hit a new reference box; per frame: the reference boxes of each class. A mean AP over
    any reweighting of the frames (a bootstrap resample) then needs no matching again.
    """

    def __init__(self, references: Sequence[Detections], candidates: Sequence[Detections], iou):
        if len(references) != len(candidates):
            raise ValueError(f"{len(references)} reference frames but {len(candidates)} candidates")
        self.frames = len(references)
        totals: dict[int, np.ndarray] = {}
        parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for f, (ref, cand) in enumerate(zip(references, candidates)):
            for c, n in zip(*np.unique(ref.class_ids, return_counts=True)):
                totals.setdefault(int(c), np.zeros(self.frames))[f] = n
            order = np.argsort(-cand.scores, kind="stable")
            hits, scores, classes = _hits(ref, cand, iou), cand.scores[order], cand.class_ids[order]
            for c in np.unique(classes):
                mask = classes == c
                parts.setdefault(int(c), []).append(
                    (scores[mask], hits[mask], np.full(mask.sum(), f))
                )
        if not totals:
            raise ValueError("the reference has no detections to compare against")
        self.totals = totals  # class -> reference boxes per frame
        self.boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # class -> (hit, frame)
        for c, chunks in parts.items():
            scores = np.concatenate([s for s, _, _ in chunks])
            order = np.argsort(-scores, kind="stable")
            self.boxes[c] = (
                np.concatenate([h for _, h, _ in chunks])[order],
                np.concatenate([f for _, _, f in chunks])[order],
            )

    def classes(self, min_boxes: int) -> list[int]:
        chosen = [c for c, per_frame in self.totals.items() if per_frame.sum() >= min_boxes]
        if not chosen:
            raise ValueError(f"no class has {min_boxes} reference boxes")
        return chosen

    def mean_ap(self, weights: np.ndarray, classes: list[int]) -> np.ndarray:
        """Mean AP over ``classes`` for each row of frame ``weights`` (rounds, frames).

        A class with no reference box under a row's weights is left out of that row's mean.
        """
        rounds = weights.shape[0]
        aps = np.full((rounds, len(classes)), np.nan)
        for k, c in enumerate(classes):
            total = weights @ self.totals[c]
            present = total > 0
            aps[present, k] = 0.0
            if c not in self.boxes or not present.any():
                continue
            hit, frame = self.boxes[c]
            w = weights[:, frame]
            tp = np.cumsum(w * hit, axis=1)
            seen = np.cumsum(w, axis=1)
            precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
            recall = tp / np.where(present, total, 1.0)[:, None]
            # all-point interpolation: precision made monotone from the right, summed over recall
            envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            steps = np.diff(recall, axis=1, prepend=0.0)
            aps[present, k] = (steps * envelope).sum(axis=1)[present]
        return np.nanmean(aps, axis=1)


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
    ranked = _Ranked(references, candidates, iou)
    return float(ranked.mean_ap(np.ones((1, ranked.frames)), ranked.classes(min_boxes))[0])


def map50_interval(
    references: Sequence[Detections],
    candidates: Sequence[Detections],
    block: int = 10,
    rounds: int = 1000,
    level: float = 0.95,
    min_boxes: int = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """A bootstrap interval of :func:`map50` over the frames, resampled in blocks.

    Consecutive frames of a video show the same objects, so they are resampled ``block`` at
    a time (a block bootstrap); an interval wider than the goal's margin says that these
    frames cannot decide it. Classes are those of the whole set with ``min_boxes``.
    """
    ranked = _Ranked(references, candidates, IOU)
    classes = ranked.classes(min_boxes)
    starts = np.arange(0, ranked.frames, block)
    rng = np.random.default_rng(seed)
    means = []
    for chunk in range(0, rounds, 100):
        picks = rng.integers(0, len(starts), (min(100, rounds - chunk), len(starts)))
        counts = np.zeros((len(picks), len(starts)))
        np.add.at(counts, (np.arange(len(picks))[:, None], picks), 1.0)
        weights = np.repeat(counts, block, axis=1)[:, : ranked.frames]
        means.append(ranked.mean_ap(weights, classes))
    low, high = np.quantile(np.concatenate(means), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def kept(
    references: Sequence[Detections], candidates: Sequence[Detections], iou: float = IOU
) -> float:
    """Fraction of reference boxes that a candidate box of the same class hits."""
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the reference has no detections to compare against")
    return sum(int(_hits(r, c, iou).sum()) for r, c in zip(references, candidates)) / total


def eval_indices(total: int, want: int, excluded: Collection[int] = ()) -> list[int]:
    """``want`` indices spread evenly over ``range(total)`` less ``excluded`` (all if fewer)."""
    skip = set(excluded)
    free = [i for i in range(total) if i not in skip]
    if want >= len(free):
        return free
    if want <= 0:
        return []
    # spacing of at least 1, so the rounded picks are distinct
    return [free[i] for i in np.linspace(0, len(free) - 1, want).round().astype(int)]


def eval_frames(
    videos: Sequence[str],
    count: int,
    calibration_frames: int,
    calibration_videos: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``count`` BGR frames spread over ``videos``, none of them a frame calibration reads.

    Calibration takes ``calibration_frames`` from ``calibration_videos`` (default: ``videos``)
    as :func:`processors.calibration.calibration_set` does; those frames are left out, so no
    frame is scored that the quantizer saw. A video with fewer frames left than its share gives
    what it has, and the others make up the rest.
    """
    import cv2

    from processors.calibration import video_frame_indices, video_quotas

    cal_videos = [str(Path(v).resolve()) for v in (calibration_videos or videos)]
    quota = dict(zip(cal_videos, video_quotas(calibration_frames, len(cal_videos))))
    free = []
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        want = quota.get(str(Path(path).resolve()), 0)
        free.append(eval_indices(total, total, video_frame_indices(total, want) if want else ()))
    shares, left = [0] * len(videos), count
    while left > 0 and any(n < len(f) for n, f in zip(shares, free)):
        for i, f in enumerate(free):
            if left > 0 and shares[i] < len(f):
                shares[i] += 1
                left -= 1
    frames = []
    for path, f, share in zip(videos, free, shares):
        wanted = set(f[i] for i in eval_indices(len(f), share))
        cap = cv2.VideoCapture(str(path))
        index, last = 0, max(wanted, default=-1)
        while index <= last and cap.grab():
            if index in wanted:
                ok, image = cap.retrieve()
                if ok:
                    frames.append(image)
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
