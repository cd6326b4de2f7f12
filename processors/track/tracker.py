"""ByteTrack-class tracking for many streams in one call, with the state of each stream its own.

Every track of every stream lives in one set of parallel arrays (the stream's slot, id, class,
Kalman state, hits, last time seen), and the boxes of one call are concatenated, so each step
is one array pass per call however many streams it carries: predicting, the IoU of every
track-box pair of the same stream and class, matching (``linear_sum_assignment`` only where
candidates compete, see :func:`processors.track.assign.match_pairs`), correcting and starting
tracks. The stages are ByteTrack's:

1. high-score boxes against every confirmed track (tracked or lost), IoU weighted by score;
2. low-score boxes against the tracks still unmatched that were tracked on the last frame;
3. the remaining high-score boxes against unconfirmed tracks (unmatched ones are dropped);
4. high-score boxes still left start new, unconfirmed tracks.

A box gets a track id once its track is confirmed (``confirm_hits`` matches), ``-1`` before and
for low-score boxes that matched nothing. Ids count up per stream and are never reused, not even
after :meth:`MultiStreamTracker.reset`; nothing is shared between streams or instances.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from processors.errors import ProcessorError
from processors.track import kalman
from processors.track.assign import match_pairs, overlapping_pairs


@dataclass(frozen=True)
class TrackerParams:
    """How boxes become tracks (defaults: ByteTrack's on MOT17).

    Attributes:
        high_score: boxes at or above it take part in the first stage and may start tracks.
        low_score: boxes below it are ignored; those in between only extend existing tracks.
        new_track_score: the least score of a box that starts a track.
        min_iou_high: first stage: IoU x score a pair needs (ByteTrack's match_thresh 0.8).
        min_iou_low: second stage: IoU a low-score pair needs.
        min_iou_unconfirmed: third stage: IoU x score a pair needs.
        confirm_hits: matches before a track's id is reported.
        max_lost_s: seconds a track is predicted without a match before it is dropped.
        nominal_fps: the frame rate the motion noise is tuned for (a step of 1/nominal_fps s).
    """

    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    min_iou_high: float = 0.2
    min_iou_low: float = 0.5
    min_iou_unconfirmed: float = 0.3
    confirm_hits: int = 2
    max_lost_s: float = 1.0
    nominal_fps: float = 30.0


class _Table:
    """Every live track, one row each, in parallel arrays."""

    def __init__(self) -> None:
        self.slot = np.zeros(0, np.int64)  # which stream
        self.track_id = np.zeros(0, np.int64)
        self.class_id = np.zeros(0, np.int64)
        self.means = np.zeros((0, 8))
        self.covs = np.zeros((0, 4, 4))  # 2x2 blocks per coordinate (processors/track/kalman.py)
        self.hits = np.zeros(0, np.int64)
        self.confirmed = np.zeros(0, bool)
        self.tracked = np.zeros(0, bool)  # matched on the stream's last frame
        self.seen_s = np.zeros(0)  # pts of the last match

    def select(self, keep: np.ndarray) -> None:
        for name, value in vars(self).items():
            setattr(self, name, value[keep])

    def extend(self, other: dict[str, np.ndarray]) -> None:
        for name, value in other.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))


class MultiStreamTracker:
    """Tracks for any number of streams, updated together.

    Example:
        >>> tracker = MultiStreamTracker()
        >>> ids = tracker.update(["cam1", "cam2"], [0.0, 0.0], [boxes1, boxes2],
        ...                      [scores1, scores2], [classes1, classes2])
        >>> ids[0]  # one track id per box of cam1, -1 where none (yet)
    """

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        if self.params.confirm_hits < 1 or not self.params.max_lost_s >= 0:
            raise ProcessorError("tracker: confirm_hits must be >= 1 and max_lost_s >= 0")
        self._slots: dict[Hashable, int] = {}
        self._next_id = np.zeros(0, np.int64)  # per slot; survives reset: ids never reused
        self._last_s = np.zeros(0)  # per slot: pts of the last update, NaN before the first
        self._rows = _Table()

    def reset(self, stream_id: Hashable) -> None:
        """Forget a stream's tracks (it reconnected, its file looped); later ids stay new."""
        slot = self._slots.get(stream_id)
        if slot is None:
            return
        self._rows.select(self._rows.slot != slot)
        self._last_s[slot] = np.nan

    def track_count(self, stream_id: Hashable) -> int:
        """Tracks held for a stream (confirmed or not, tracked or lost)."""
        slot = self._slots.get(stream_id)
        return 0 if slot is None else int(np.count_nonzero(self._rows.slot == slot))

    def update(
        self,
        stream_ids: Sequence[Hashable],
        pts_s: Sequence[float],
        boxes_xyxy: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
        class_ids: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """One frame for each of ``stream_ids`` (each at most once), at ``pts_s`` seconds.

        ``boxes_xyxy[i]`` is ``(n_i, 4)`` pixels, ``scores[i]`` ``(n_i,)``, ``class_ids[i]``
        ``(n_i,)``. Returns an ``(n_i,)`` int64 array of track ids per stream, ``-1`` for a box
        with no confirmed track. A pts lower than the stream's last one (a loop) resets it.
        """
        p = self.params
        _check_lengths(stream_ids, pts_s, boxes_xyxy, scores, class_ids)
        if not len(stream_ids):
            return []
        slots = self._slots_of(stream_ids)
        now = np.asarray(pts_s, np.float64)
        counts = np.array([len(b) for b in boxes_xyxy], np.int64)
        boxes = _concat(boxes_xyxy, (0, 4), np.float64)
        score = _concat(scores, (0,), np.float64)
        cls = _concat(class_ids, (0,), np.int64)
        for slot in slots[now < self._last_s[slots]]:  # pts went back: a loop
            self._rows.select(self._rows.slot != slot)

        # Per slot: its position in this call (-1: not in it) and the time since its last frame.
        position = np.full(len(self._slots), -1, np.int64)
        position[slots] = np.arange(len(slots))
        steps = np.zeros(len(self._slots))
        gap = now - self._last_s[slots]
        gap[np.isnan(gap)] = 0.0  # a stream's first frame
        steps[slots] = gap * p.nominal_fps
        self._last_s[slots] = now

        rows = self._rows
        row_pos = position[rows.slot]
        in_call = row_pos >= 0
        moving = np.flatnonzero(in_call)
        if len(moving):
            self._predict(moving, steps[rows.slot[moving]])
        det_pos = np.repeat(np.arange(len(slots)), counts)
        out = np.full(len(boxes), -1, np.int64)
        high_mask = score >= p.high_score
        high = np.flatnonzero(high_mask)
        fresh = np.flatnonzero(in_call & ~rows.confirmed)
        if len(moving) and len(boxes):
            t1, d1, t2, d2, t3, d3 = self._associate(
                moving, row_pos, boxes, score, cls, det_pos, high_mask, len(slots)
            )
            high_left = np.ones(len(boxes), bool)
            high_left[d1] = False
            high_left[d3] = False
            new = high[high_left[high] & (score[high] >= p.new_track_score)]
        else:
            t1 = t2 = t3 = d1 = d2 = d3 = np.zeros(0, np.intp)
            new = high[score[high] >= p.new_track_score]

        # Correct the matched tracks; mark the rest of this call's tracks lost.
        rows.tracked[moving] = False
        if len(t1) + len(t2) + len(t3):
            hit, hit_box = np.concatenate([t1, t2, t3]), np.concatenate([d1, d2, d3])
            xyah = kalman.xyxy_to_xyah(boxes[hit_box])
            rows.means[hit], rows.covs[hit] = kalman.update(rows.means[hit], rows.covs[hit], xyah)
            rows.hits[hit] += 1
            rows.confirmed[hit] |= rows.hits[hit] >= p.confirm_hits
            rows.tracked[hit] = True
            rows.seen_s[hit] = now[row_pos[hit]]
            out[hit_box] = np.where(rows.confirmed[hit], rows.track_id[hit], -1)

        # Drop unconfirmed tracks that missed and tracks lost too long; then start new ones.
        if len(moving):
            drop = now[row_pos[moving]] - rows.seen_s[moving] > p.max_lost_s
            drop[np.searchsorted(moving, fresh)] = True
            drop[np.searchsorted(moving, t3)] = False
            if drop.any():
                keep = np.ones(len(rows.slot), bool)
                keep[moving[drop]] = False
                rows.select(keep)
        if len(new):
            self._start(slots[det_pos[new]], now[det_pos[new]], boxes[new], cls[new])
            if p.confirm_hits <= 1:
                out[new] = rows.track_id[len(rows.slot) - len(new) :]
        if len(counts) == 1:
            return [out]
        return np.split(out, np.cumsum(counts)[:-1])

    def _predict(self, moving: np.ndarray, steps: np.ndarray) -> None:
        """Kalman-predict the rows ``moving`` (sorted) by ``steps`` frames, in the table."""
        rows = self._rows
        if len(moving) == len(rows.slot):  # every track is in this call: no gather
            means, covs = rows.means, rows.covs
            means[~rows.tracked, 7] = 0.0  # a lost track's height stops changing
            kalman.predict(means, covs, steps)
            return
        means, covs = rows.means[moving], rows.covs[moving]
        means[~rows.tracked[moving], 7] = 0.0
        kalman.predict(means, covs, steps)
        rows.means[moving], rows.covs[moving] = means, covs

    def _associate(self, moving, row_pos, boxes, score, cls, det_pos, high_mask, groups):
        """ByteTrack's three matching stages over this call's tracks ``moving`` (sorted).

        Every track-box pair of the same stream is listed and its IoU computed once; each stage
        keeps the pairs of its own tracks and boxes (in the same order a per-stage listing
        would give) and matches them. Returns ``t1, d1, t2, d2, t3, d3`` (rows, boxes).
        """
        p = self.params
        rows = self._rows
        dets = np.flatnonzero(score >= p.low_score)
        empty = np.zeros(0, np.intp)
        if not len(dets):
            return empty, empty, empty, empty, empty, empty
        # A pair whose best overlap (IoU, or IoU x score) is at most the least any stage needs,
        # or whose track and box differ in class, matches in no stage: such pairs (most of a
        # crowded call's) are dropped here. The bound only has to keep every pair a stage
        # could take (scores above 1 lower it; a hair below it for rounding): the stages
        # test their own thresholds exactly.
        least = min(p.min_iou_high, p.min_iou_low, p.min_iou_unconfirmed)
        bound = least / max(float(score[dets].max()), 1.0) * (1 - 1e-9)
        t, d, iou = overlapping_pairs(
            kalman.xyah_to_xyxy(rows.means[moving, :4]),
            row_pos[moving],
            boxes[dets],
            det_pos[dets],
            groups,
            bound,
        )
        t, d = moving[t], dets[d]
        k = np.flatnonzero(rows.class_id[t] == cls[d])
        if len(k) < len(t):
            t, d, iou = t[k], d[k], iou[k]
        pair_high = high_mask[d]
        confirmed = rows.confirmed[t]

        def stage(keep, min_overlap, weighted):
            k = np.flatnonzero(keep)
            if not len(k):
                return empty, empty
            overlap = iou[k] * score[d[k]] if weighted else iou[k]
            tk, dk = t[k], d[k]
            return match_pairs(tk, dk, 1.0 - overlap, det_pos[dk], 1.0 - min_overlap)

        t1, d1 = stage(confirmed & pair_high, p.min_iou_high, True)
        free = rows.tracked.copy()  # stage 2: tracked on the last frame, unmatched above
        free[t1] = False
        t2, d2 = stage(confirmed & ~pair_high & free[t], p.min_iou_low, False)
        left = np.ones(len(boxes), bool)
        left[d1] = False
        t3, d3 = stage(~confirmed & pair_high & left[d], p.min_iou_unconfirmed, True)
        return t1, d1, t2, d2, t3, d3

    def _slots_of(self, stream_ids: Sequence[Hashable]) -> np.ndarray:
        """Each stream's slot (new streams get one), refusing a stream twice in one call."""
        for sid in stream_ids:
            if sid not in self._slots:
                self._slots[sid] = len(self._slots)
        grow = len(self._slots) - len(self._last_s)
        if grow:
            self._next_id = np.concatenate([self._next_id, np.ones(grow, np.int64)])
            self._last_s = np.concatenate([self._last_s, np.full(grow, np.nan)])
        slots = np.array([self._slots[sid] for sid in stream_ids], np.int64)
        if len(set(slots.tolist())) != len(slots):
            raise ProcessorError("tracker: a stream appears twice in one update")
        return slots

    def _start(self, slots: np.ndarray, now: np.ndarray, xyxy: np.ndarray, cls: np.ndarray):
        """New tracks for the boxes no track took (grouped by stream), with fresh ids."""
        if not len(slots):
            return
        # Boxes come grouped by stream, in call order: rank within each run of equal slots.
        first = np.concatenate([[0], np.flatnonzero(np.diff(slots)) + 1])
        count = np.diff(np.append(first, len(slots)))
        ids = self._next_id[slots] + np.arange(len(slots)) - np.repeat(first, count)
        self._next_id[slots[first]] += count
        means, covs = kalman.initiate(kalman.xyxy_to_xyah(xyxy))
        n = len(slots)
        confirmed = self.params.confirm_hits <= 1
        self._rows.extend(
            {
                "slot": slots,
                "track_id": ids,
                "class_id": cls,
                "means": means,
                "covs": covs,
                "hits": np.ones(n, np.int64),
                "confirmed": np.full(n, confirmed),
                "tracked": np.ones(n, bool),
                "seen_s": now,
            }
        )


def _check_lengths(stream_ids, pts_s, boxes_xyxy, scores, class_ids) -> None:
    """One clear line for inputs that do not line up (before any state changes)."""
    n = (len(stream_ids), len(pts_s), len(boxes_xyxy), len(scores), len(class_ids))
    if len(set(n)) != 1:
        raise ProcessorError(
            f"tracker: {n[0]} stream ids, {n[1]} pts, {n[2]} box arrays, {n[3]} score arrays "
            f"and {n[4]} class id arrays (expected one of each per stream)"
        )
    for sid, b, s, c in zip(stream_ids, boxes_xyxy, scores, class_ids):
        n = len(b)
        if not n == len(s) == len(c) or np.shape(b) not in ((n, 4), (0,)):
            raise ProcessorError(
                f"tracker: stream {sid}: boxes {np.shape(b)}, {len(s)} scores and {len(c)} "
                "class ids (expected (n, 4) boxes and n of each)"
            )


def _concat(parts: Sequence[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    if not len(parts):
        return np.zeros(empty_shape, dtype)
    return np.concatenate([np.asarray(x, dtype).reshape((-1, *empty_shape[1:])) for x in parts])
