"""The per-stream analytics the project had first, kept as a test oracle: one object per stream,
its own arrays and its own (N, E) point-edge matrix. processors/analytics/state.py does the same
for many streams in one call; tests/processors/test_analytics.py checks they agree event for
event on random walks."""

from __future__ import annotations

import numpy as np

from processors.analytics.geometry import Line, Zone
from processors.analytics.state import Event
from processors.errors import ProcessorError

DIRECTIONS = ("in", "out")  # index 0: onto the left of a->b (Line's docstring), 1: the other way


class ReferenceAnalytics:
    """Zone membership, dwell and line crossings for one stream's tracks.

    The point tested for each track is its box's bottom centre (the feet). State is parallel
    arrays over the tracks seen (rows kept sorted by track id), so one ``update`` handles every
    track of a frame at once; a track absent for ``forget_after_s`` seconds is dropped (an
    'exit' for each zone it was still inside). Track id -1 (unconfirmed) is ignored. A zone or
    line with ``class_ids`` counts those classes only (a track of another class is never in
    that zone and never crosses that line), so one instance serves every filter of a stream.

    Example:
        >>> a = ReferenceAnalytics([Zone("door", [[0, 0], [10, 0], [10, 10], [0, 10]])], [])
        >>> [e.kind for e in a.update(0.0, np.array([1]), np.array([[4, 2, 6, 5]]), np.array([0]))]
        ['enter']
    """

    def __init__(self, zones: list[Zone], lines: list[Line], forget_after_s: float = 2.0) -> None:
        self.zones = list(zones)
        self.lines = list(lines)
        self.forget_after_s = float(forget_after_s)
        self._edges, self._onehot = zone_edges(self.zones)
        self._alert_s = np.array(
            [np.inf if zn.dwell_alert_s is None else zn.dwell_alert_s for zn in self.zones]
        )
        self._a = np.array([ln.a for ln in self.lines]).reshape(-1, 2)
        self._b = np.array([ln.b for ln in self.lines]).reshape(-1, 2)
        # Class filters, looked up by class id; None where nothing is filtered.
        self._zone_classes = _table_or_none([zn.class_ids for zn in self.zones])
        self._line_classes = _table_or_none([ln.class_ids for ln in self.lines])
        z, n_lines = len(self.zones), len(self.lines)
        self._ids = np.zeros(0, dtype=np.int64)
        self._cls = np.zeros(0, dtype=np.int64)
        self._last_xy = np.zeros((0, 2))  # NaN until a track has a previous point
        self._last_s = np.zeros(0)
        self._inside = np.zeros((0, z), dtype=bool)
        self._enter_s = np.zeros((0, z))
        self._alerted = np.zeros((0, z), dtype=bool)  # a 'dwell' event sent for this visit
        self._side = np.zeros((0, n_lines), dtype=np.int8)  # last side off the line, 0 = none yet
        self._crossed = np.zeros((0, n_lines, 2), dtype=bool)

    def occupancy(self) -> np.ndarray:
        """Tracks inside each zone now, ``(Z,)`` int64."""
        return self._inside.sum(axis=0).astype(np.int64)

    def dwell_s(self, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Track ids ``(n,)`` and seconds each has been inside each zone ``(n, Z)`` (0 outside)."""
        return self._ids.copy(), np.where(self._inside, now_s - self._enter_s, 0.0)

    def update(
        self, pts_s: float, track_ids: np.ndarray, boxes_xyxy: np.ndarray, classes: np.ndarray
    ) -> list[Event]:
        """Advance to frame time ``pts_s`` with this frame's tracked boxes; returns its events.

        Args:
            pts_s: the frame's time in seconds (non-decreasing across calls).
            track_ids: ``(n,)`` int, -1 for boxes without a confirmed track; unique otherwise.
            boxes_xyxy: ``(n, 4)`` float, x1 y1 x2 y2.
            classes: ``(n,)`` int class ids.
        """
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        cls = np.asarray(classes, dtype=np.int64).reshape(-1)
        if not len(ids) == len(boxes) == len(cls):
            raise ProcessorError(
                f"analytics update: {len(ids)} track ids, {len(boxes)} boxes and "
                f"{len(cls)} classes; expected one of each per detection"
            )
        keep = ids != -1
        ids, boxes, cls = ids[keep], boxes[keep], cls[keep]
        if not len(ids) and not len(self._ids):
            return []  # nothing tracked, nothing remembered: the common empty frame
        ordered = np.sort(ids)
        if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():
            raise ProcessorError("analytics update: a track id appears twice in one frame")
        events = self._forget(pts_s)
        if len(self._ids):  # ids not held yet: where a sorted search does not find them
            at = np.minimum(np.searchsorted(self._ids, ordered), len(self._ids) - 1)
            self._add(ordered[self._ids[at] != ordered])
        else:
            self._add(ordered)
        rows = np.searchsorted(self._ids, ids)
        feet = np.empty((len(ids), 2))
        feet[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
        feet[:, 1] = boxes[:, 3]
        if self.zones:
            events += self._zones_step(pts_s, rows, ids, cls, feet)
        events += self._lines_step(pts_s, rows, ids, cls, feet)
        self._last_xy[rows] = feet
        self._last_s[rows] = pts_s
        self._cls[rows] = cls
        return events

    def _add(self, new_ids: np.ndarray) -> None:
        """Rows for tracks seen for the first time, then all rows re-sorted by id."""
        if len(new_ids) == 0:
            return
        k = len(new_ids)
        self._ids = np.concatenate([self._ids, new_ids])
        self._cls = np.concatenate([self._cls, np.zeros(k, dtype=np.int64)])
        self._last_xy = np.vstack([self._last_xy, np.full((k, 2), np.nan)])
        self._last_s = np.concatenate([self._last_s, np.zeros(k)])
        self._inside = np.vstack([self._inside, np.zeros((k, len(self.zones)), dtype=bool)])
        self._enter_s = np.vstack([self._enter_s, np.zeros((k, len(self.zones)))])
        self._alerted = np.vstack([self._alerted, np.zeros((k, len(self.zones)), dtype=bool)])
        self._side = np.vstack([self._side, np.zeros((k, len(self.lines)), dtype=np.int8)])
        self._crossed = np.concatenate(
            [self._crossed, np.zeros((k, len(self.lines), 2), dtype=bool)]
        )
        self._take(np.argsort(self._ids, kind="stable"))

    def _take(self, order: np.ndarray) -> None:
        for name in (
            "_ids",
            "_cls",
            "_last_xy",
            "_last_s",
            "_inside",
            "_enter_s",
            "_alerted",
            "_side",
        ):
            setattr(self, name, getattr(self, name)[order])
        self._crossed = self._crossed[order]

    def _forget(self, now_s: float) -> list[Event]:
        """Drop tracks unseen for ``forget_after_s``; each leaves the zones it was inside."""
        stale = self._last_s < now_s - self.forget_after_s
        if not stale.any():
            return []
        r, z = np.nonzero(self._inside & stale[:, None])
        events = [
            Event(
                "exit",
                self.zones[zk].name,
                int(self._ids[rk]),
                int(self._cls[rk]),
                float(now_s),  # decided now: events stay in time order
                dwell_s=float(self._last_s[rk] - self._enter_s[rk, zk]),
            )
            for rk, zk in zip(r, z)
        ]
        self._take(np.nonzero(~stale)[0])
        return events

    def _zones_step(self, now_s, rows, ids, cls, feet) -> list[Event]:
        inside = points_in_zones(feet, self._edges, self._onehot)
        if self._zone_classes is not None:
            inside &= self._zone_classes[np.minimum(cls, len(self._zone_classes) - 1)]
        was = self._inside[rows]
        enter_s = self._enter_s[rows]
        i_exit, z_exit = np.nonzero(was & ~inside)
        dwell = now_s - enter_s[i_exit, z_exit]
        events = [
            Event("exit", self.zones[z].name, int(ids[i]), int(cls[i]), now_s, dwell_s=float(d))
            for i, z, d in zip(i_exit, z_exit, dwell)
        ]
        entered = inside & ~was
        events += [
            Event("enter", self.zones[z].name, int(ids[i]), int(cls[i]), now_s)
            for i, z in zip(*np.nonzero(entered))
        ]
        enter_s = np.where(entered, now_s, enter_s)
        # A dwell alert once per visit: cleared on entering (and while outside).
        alerted = self._alerted[rows] & inside & ~entered
        due = inside & ~alerted & (now_s - enter_s > self._alert_s)
        i_due, z_due = np.nonzero(due)
        events += [
            Event("dwell", self.zones[z].name, int(ids[i]), int(cls[i]), now_s, dwell_s=float(d))
            for i, z, d in zip(i_due, z_due, now_s - enter_s[i_due, z_due])
        ]
        self._enter_s[rows] = enter_s
        self._alerted[rows] = alerted | due
        self._inside[rows] = inside
        return events

    def _lines_step(self, now_s, rows, ids, cls, feet) -> list[Event]:
        """A crossing: the side of the line flips (a point on it keeps the last side) and the
        step from the previous point to this one passes between a and b. Counted once per
        track, line and direction."""
        if not self.lines or len(rows) == 0:
            return []
        a, b = self._a[None], self._b[None]  # (1, L, 2)
        p = feet[:, None, :]  # (n, 1, 2)
        ab = b - a
        side_now = np.sign(
            ab[..., 0] * (p[..., 1] - a[..., 1]) - ab[..., 1] * (p[..., 0] - a[..., 0])
        )
        side_now = side_now.astype(np.int8)  # (n, L)
        side_last = self._side[rows]
        prev = self._last_xy[rows][:, None, :]  # (n, 1, 2)
        step = p - prev
        da = np.sign(
            step[..., 0] * (a[..., 1] - prev[..., 1]) - step[..., 1] * (a[..., 0] - prev[..., 0])
        )
        db = np.sign(
            step[..., 0] * (b[..., 1] - prev[..., 1]) - step[..., 1] * (b[..., 0] - prev[..., 0])
        )
        between = ~np.isnan(prev[..., 0]) & (da * db <= 0)
        flipped = (side_now != 0) & (side_last != 0) & (side_now != side_last) & between
        if self._line_classes is not None:
            flipped &= self._line_classes[np.minimum(cls, len(self._line_classes) - 1)]
        direction = np.where(side_now > 0, 0, 1)  # (n, L)
        crossed = self._crossed[rows]
        i, ln = np.nonzero(flipped)
        d = direction[i, ln]
        new = ~crossed[i, ln, d]
        i, ln, d = i[new], ln[new], d[new]
        crossed[i, ln, d] = True
        self._crossed[rows] = crossed
        self._side[rows] = np.where(side_now != 0, side_now, side_last)
        return [
            Event("cross", self.lines[k].name, int(ids[j]), int(cls[j]), now_s, DIRECTIONS[dk])
            for j, k, dk in zip(i, ln, d)
        ]


def _table_or_none(filters: list[tuple[int, ...] | None]) -> np.ndarray | None:
    return None if all(f is None for f in filters) else class_table(filters)


def class_table(filters: list[tuple[int, ...] | None]) -> np.ndarray:
    """Which class counts for which zone or line: ``(K + 1, n)`` bool, row ``c`` for class
    ``c < K`` (K: one past the largest id a filter names), the last row for every other class
    (only unfiltered ones count it). Index it with ``np.minimum(class_ids, K)``."""
    named = [c for f in filters if f is not None for c in f]
    k = max(named, default=-1) + 1
    table = np.zeros((k + 1, len(filters)), dtype=bool)
    for j, f in enumerate(filters):
        if f is None:
            table[:, j] = True
        else:
            table[list(f), j] = True
    return table


def zone_edges(zones: list[Zone]) -> tuple[np.ndarray, np.ndarray]:
    """All zones' edges stacked, ``(E, 4)`` as x1 y1 x2 y2, and a one-hot ``(E, Z)`` owner map."""
    rows, owner = [], []
    for k, zone in enumerate(zones):
        xy = zone.points
        rows.append(np.hstack([xy, np.roll(xy, -1, axis=0)]))
        owner += [k] * len(xy)
    if not rows:
        return np.zeros((0, 4)), np.zeros((0, 0))
    onehot = np.zeros((len(owner), len(zones)))
    onehot[np.arange(len(owner)), owner] = 1.0
    return np.vstack(rows), onehot


def points_in_zones(xy: np.ndarray, edges: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Even-odd membership of every point in every zone at once: ``(N, 2)`` -> ``(N, Z)`` bool.

    A ray to +x from each point, tested against every edge of every zone in one ``(N, E)``
    expression; the per-zone crossing count is one matrix product with the owner map.
    """
    if len(xy) == 0 or onehot.shape[1] == 0:
        return np.zeros((len(xy), onehot.shape[1]), dtype=bool)
    px, py = xy[:, 0:1], xy[:, 1:2]
    x1, y1, x2, y2 = (edges[:, i][None, :] for i in range(4))
    straddles = (y1 > py) != (y2 > py)
    dy = np.where(y2 == y1, 1.0, y2 - y1)
    x_at = x1 + (py - y1) * (x2 - x1) / dy
    hits = straddles & (px < x_at)
    cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    e = 1e-6  # on an edge is inside (a zone is closed), as in processors/analytics/state.py
    on_edge = (
        (np.abs(cross) <= e * np.hypot(x2 - x1, y2 - y1))
        & (px >= np.minimum(x1, x2) - e)
        & (px <= np.maximum(x1, x2) + e)
        & (py >= np.minimum(y1, y2) - e)
        & (py <= np.maximum(y1, y2) + e)
    )
    odd = (hits.astype(np.float64) @ onehot).astype(np.int64) % 2 == 1
    return odd | ((on_edge.astype(np.float64) @ onehot) > 0)
