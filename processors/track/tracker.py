"""ByteTrack-class tracking for many streams in one call, with the state of each stream its own.

Every track of every stream lives in one set of parallel arrays (the stream's slot, id, class,
Kalman state, hits, last time seen), so predicting and correcting are one array pass per call
however many streams it carries. Association runs stream by stream on that stream's rows (a
few small IoU matrices and ``linear_sum_assignment``), in ByteTrack's order:

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
from processors.track.assign import iou_matrix, match


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
        self.covs = np.zeros((0, 8, 8))
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
        self._next_id: list[int] = []  # per slot; survives reset, so ids are never reused
        self._last_s: list[float | None] = []  # per slot: pts of the last update
        self._rows = _Table()

    def reset(self, stream_id: Hashable) -> None:
        """Forget a stream's tracks (it reconnected, its file looped); later ids stay new."""
        slot = self._slots.get(stream_id)
        if slot is None:
            return
        self._rows.select(self._rows.slot != slot)
        self._last_s[slot] = None

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
        slots = np.array([self._slot(sid) for sid in stream_ids], np.int64)
        if len(np.unique(slots)) != len(slots):
            raise ProcessorError("tracker: a stream appears twice in one update")
        boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes_xyxy]
        scores = [np.asarray(s, np.float64).reshape(-1) for s in scores]
        class_ids = [np.asarray(c, np.int64).reshape(-1) for c in class_ids]
        for i, sid in enumerate(stream_ids):
            if not len(boxes[i]) == len(scores[i]) == len(class_ids[i]):
                raise ProcessorError(
                    f"tracker: stream {sid}: {len(boxes[i])} boxes, {len(scores[i])} scores "
                    f"and {len(class_ids[i])} class ids (expected as many of each)"
                )
        for slot, sid, now in zip(slots, stream_ids, pts_s):
            last = self._last_s[slot]
            if last is not None and now < last:
                self.reset(sid)

        rows = self._rows
        # Predict every track of these streams to its frame's time, in one pass.
        step_s = np.zeros(len(self._slots))
        has_last = np.zeros(len(self._slots), bool)
        for slot, now in zip(slots, pts_s):
            last = self._last_s[slot]
            if last is not None:
                step_s[slot], has_last[slot] = now - last, True
            self._last_s[slot] = float(now)
        moving = np.flatnonzero(has_last[rows.slot]) if len(rows.slot) else np.zeros(0, np.intp)
        if len(moving):
            means, covs = rows.means[moving], rows.covs[moving]
            means[~rows.tracked[moving], 7] = 0.0  # a lost track's height stops changing
            kalman.predict(means, covs, step_s[rows.slot[moving]] * p.nominal_fps)
            rows.means[moving], rows.covs[moving] = means, covs
        track_xyxy = kalman.xyah_to_xyxy(rows.means[:, :4])

        # Associate stream by stream on that stream's rows.
        order = np.argsort(rows.slot, kind="stable")
        bounds = np.searchsorted(rows.slot[order], np.stack([slots, slots + 1]))
        matched_rows, matched_boxes, dropped = [], [], []
        new_parts: list[tuple[int, float, np.ndarray, np.ndarray]] = []
        out: list[np.ndarray] = []
        for i, slot in enumerate(slots):
            mine = order[bounds[0, i] : bounds[1, i]]
            rows_i, dets_i, drop_i, new_i = self._associate(
                mine, track_xyxy[mine], boxes[i], scores[i], class_ids[i]
            )
            matched_rows.append(rows_i)
            matched_boxes.append(boxes[i][dets_i])
            dropped.append(drop_i)
            new_parts.append((slot, pts_s[i], new_i, dets_i))
            out.append(np.full(len(boxes[i]), -1, np.int64))

        # Correct the matched tracks, in one pass.
        now_s = np.array([self._last_s[s] for s in range(len(self._slots))] or [0.0])
        in_call = np.zeros(len(self._slots), bool)
        in_call[slots] = True
        if len(rows.slot):
            rows.tracked[in_call[rows.slot]] = False
        hit = np.concatenate(matched_rows) if matched_rows else np.zeros(0, np.intp)
        if len(hit):
            xyah = kalman.xyxy_to_xyah(np.concatenate(matched_boxes))
            rows.means[hit], rows.covs[hit] = kalman.update(rows.means[hit], rows.covs[hit], xyah)
            rows.hits[hit] += 1
            rows.confirmed[hit] |= rows.hits[hit] >= p.confirm_hits
            rows.tracked[hit] = True
            rows.seen_s[hit] = now_s[rows.slot[hit]]
        for i, (rows_i, (_, _, _, dets_i)) in enumerate(zip(matched_rows, new_parts)):
            ids = rows.track_id[rows_i]
            out[i][dets_i] = np.where(rows.confirmed[rows_i], ids, -1)

        # Drop unconfirmed tracks that missed and tracks lost for too long; add new ones.
        keep = np.ones(len(rows.slot), bool)
        for drop_i in dropped:
            keep[drop_i] = False
        if len(rows.slot):
            lost_s = now_s[rows.slot] - rows.seen_s
            keep &= ~(in_call[rows.slot] & (lost_s > p.max_lost_s))
        rows.select(keep)
        self._start(new_parts, boxes, class_ids, out)
        return out

    def _slot(self, stream_id: Hashable) -> int:
        slot = self._slots.get(stream_id)
        if slot is None:
            slot = self._slots[stream_id] = len(self._slots)
            self._next_id.append(1)
            self._last_s.append(None)
        return slot

    def _associate(
        self,
        mine: np.ndarray,
        track_xyxy: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One stream: (matched table rows, their box indices, table rows to drop, boxes that
        start tracks)."""
        p = self.params
        rows = self._rows
        high = np.flatnonzero(scores >= p.high_score)
        low = np.flatnonzero((scores >= p.low_score) & (scores < p.high_score))
        confirmed = rows.confirmed[mine]
        pool, fresh = np.flatnonzero(confirmed), np.flatnonzero(~confirmed)
        same_class = rows.class_id[mine][:, None] == class_ids[None, :]  # (tracks, boxes)

        def stage(tracks, dets, min_overlap, weighted):
            if not len(tracks) or not len(dets):
                return tracks[:0], dets[:0], tracks, dets
            overlap = iou_matrix(track_xyxy[tracks], boxes[dets])
            if weighted:
                overlap *= scores[dets][None, :]
            overlap[~same_class[tracks][:, dets]] = 0.0
            r, c = match(1.0 - overlap, 1.0 - min_overlap)
            left_t, left_d = np.ones(len(tracks), bool), np.ones(len(dets), bool)
            left_t[r], left_d[c] = False, False
            return tracks[r], dets[c], tracks[left_t], dets[left_d]

        t1, d1, pool_left, high_left = stage(pool, high, p.min_iou_high, True)
        was_tracked = pool_left[rows.tracked[mine][pool_left]]
        t2, d2, _, _ = stage(was_tracked, low, p.min_iou_low, False)
        t3, d3, fresh_left, high_left = stage(fresh, high_left, p.min_iou_unconfirmed, True)
        new = high_left[scores[high_left] >= p.new_track_score]
        matched = np.concatenate([t1, t2, t3])
        return mine[matched], np.concatenate([d1, d2, d3]), mine[fresh_left], new

    def _start(self, new_parts, boxes, class_ids, out) -> None:
        """New tracks for the boxes no track took, with fresh per-stream ids."""
        p = self.params
        parts = [(slot, now, new, i) for i, (slot, now, new, _) in enumerate(new_parts) if len(new)]
        if not parts:
            return
        slot_col, id_col, xyxy, cls = [], [], [], []
        for slot, _, new, i in parts:
            first = self._next_id[slot]
            self._next_id[slot] = first + len(new)
            ids = np.arange(first, first + len(new), dtype=np.int64)
            slot_col.append(np.full(len(new), slot, np.int64))
            id_col.append(ids)
            xyxy.append(boxes[i][new])
            cls.append(class_ids[i][new])
            if p.confirm_hits <= 1:
                out[i][new] = ids
        xyah = kalman.xyxy_to_xyah(np.concatenate(xyxy))
        means, covs = kalman.initiate(xyah)
        n = len(means)
        self._rows.extend(
            {
                "slot": np.concatenate(slot_col),
                "track_id": np.concatenate(id_col),
                "class_id": np.concatenate(cls),
                "means": means,
                "covs": covs,
                "hits": np.ones(n, np.int64),
                "confirmed": np.full(n, p.confirm_hits <= 1),
                "tracked": np.ones(n, bool),
                "seen_s": np.concatenate([np.full(len(new), now) for _, now, new, _ in parts]),
            }
        )
