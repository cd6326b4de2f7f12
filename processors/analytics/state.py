"""Zone and line state for many streams, updated for all their tracks in one vectorised call.

Every stream's zones and lines are padded arrays indexed by the stream's slot, and every track
of every stream is one row of a table sorted by (slot, track id), so a call costs one pass of
array expressions however many streams it carries (as :mod:`processors.track.tracker` does):
the even-odd test of each point against its own stream's zone edges only (point-edge pairs
built by ``np.repeat``), the side of each line, the crossings, the dwell clocks. Python runs
once per event, to build it. Nothing is shared between streams: each stream's state is its
rows, its geometry its slot.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from processors.analytics.geometry import Line, Zone
from processors.errors import ProcessorError

ON_EDGE_PX = 1e-6  # a point this close to a zone's edge is on it (float noise, not pixels)

DIRECTIONS = ("in", "out")  # index 0: onto the left of a->b (Line's docstring), 1: the other way
KEY_BITS = 40  # a row's key: slot << KEY_BITS | track id


@dataclass(frozen=True)
class Event:
    """One thing that happened to one track: ``kind`` is 'enter', 'exit', 'dwell' or 'cross'.

    ``name`` is the zone's or line's; ``direction`` is set for 'cross', ``dwell_s`` for 'exit'
    (seconds from the frame it was first seen inside to the frame it was first seen outside,
    or to its last sighting when it was forgotten while inside) and for 'dwell' (seconds
    inside so far, the first frame past the zone's ``dwell_alert_s``: once per visit).
    """

    kind: str
    name: str
    track_id: int
    class_id: int
    pts_s: float
    direction: str | None = None
    dwell_s: float | None = None


@dataclass(frozen=True)
class _Stream:
    zones: tuple[Zone, ...]
    lines: tuple[Line, ...]
    forget_after_s: float


class _Layout:
    """Every stream's zones and lines as arrays over slots (a stream's position), padded to the
    most zones (``zmax``) and lines (``lmax``) of any stream; made again when streams change."""

    def __init__(self, streams: Sequence[_Stream]) -> None:
        n = len(streams)
        self.zmax = max((len(s.zones) for s in streams), default=0)
        self.lmax = max((len(s.lines) for s in streams), default=0)
        self.zone_names = [[z.name for z in s.zones] for s in streams]
        self.line_names = [[ln.name for ln in s.lines] for s in streams]
        self.forget_s = np.array([s.forget_after_s for s in streams], np.float64)
        edges, owner, counts = [], [], []
        self.alert_s = np.full((n, self.zmax), np.inf)
        for slot, stream in enumerate(streams):
            for k, zone in enumerate(stream.zones):
                xy = zone.points
                edges.append(np.hstack([xy, np.roll(xy, -1, axis=0)]))
                owner += [k] * len(xy)
                if zone.dwell_alert_s is not None:
                    self.alert_s[slot, k] = zone.dwell_alert_s
            counts.append(sum(len(z.points) for z in stream.zones))
        self.edges = np.vstack(edges) if edges else np.zeros((0, 4))  # x1 y1 x2 y2
        self.edge_zone = np.array(owner, np.int64)  # each edge's zone, within its stream
        self.edge_count = np.array(counts, np.int64).reshape(n)
        self.edge_start = np.cumsum(self.edge_count) - self.edge_count
        self.line_a = np.zeros((n, self.lmax, 2))
        self.line_b = np.zeros((n, self.lmax, 2))
        self.line_valid = np.zeros((n, self.lmax), bool)
        for slot, stream in enumerate(streams):
            for k, line in enumerate(stream.lines):
                self.line_a[slot, k], self.line_b[slot, k] = line.a, line.b
                self.line_valid[slot, k] = True
        # Class filters: (slot, class row, zone or line) -> counts; row K for every class a
        # filter does not name (only unfiltered zones and lines count those). None: no filter.
        named = [
            c for s in streams for item in (*s.zones, *s.lines) for c in (item.class_ids or ())
        ]
        self.classes_k = max(named, default=-1) + 1
        self.zone_allow = self._allow(streams, "zones", self.zmax) if named else None
        self.line_allow = self._allow(streams, "lines", self.lmax) if named else None

    def _allow(self, streams: Sequence[_Stream], kind: str, width: int) -> np.ndarray:
        table = np.zeros((len(streams), self.classes_k + 1, width), bool)
        for slot, stream in enumerate(streams):
            for k, item in enumerate(getattr(stream, kind)):
                if item.class_ids is None:
                    table[slot, :, k] = True
                else:
                    table[slot, list(item.class_ids), k] = True
        return table

    def class_rows(self, classes: np.ndarray) -> np.ndarray:
        return np.minimum(classes, self.classes_k)


class _Rows:
    """Every remembered track of every stream, one row each, sorted by ``key``."""

    def __init__(self, zmax: int, lmax: int) -> None:
        self.key = np.zeros(0, np.int64)
        self.slot = np.zeros(0, np.int64)
        self.track_id = np.zeros(0, np.int64)
        self.cls = np.zeros(0, np.int64)
        self.last_xy = np.zeros((0, 2))  # NaN until a track has a previous point
        self.last_s = np.zeros(0)
        self.inside = np.zeros((0, zmax), bool)
        self.enter_s = np.zeros((0, zmax))
        self.alerted = np.zeros((0, zmax), bool)  # a 'dwell' event sent for this visit
        self.side = np.zeros((0, lmax), np.int8)  # last side off the line, 0 = none yet
        self.crossed = np.zeros((0, lmax, 2), bool)  # per line and direction, counted once

    def select(self, which: np.ndarray) -> None:
        for name, value in vars(self).items():
            setattr(self, name, value[which])

    def add(self, keys: np.ndarray) -> None:
        """Rows for tracks seen for the first time (``keys`` sorted), merged in key order."""
        k = len(keys)
        zmax, lmax = self.inside.shape[1], self.side.shape[1]
        new = {
            "key": keys,
            "slot": keys >> KEY_BITS,
            "track_id": keys & ((1 << KEY_BITS) - 1),
            "cls": np.zeros(k, np.int64),
            "last_xy": np.full((k, 2), np.nan),
            "last_s": np.zeros(k),
            "inside": np.zeros((k, zmax), bool),
            "enter_s": np.zeros((k, zmax)),
            "alerted": np.zeros((k, zmax), bool),
            "side": np.zeros((k, lmax), np.int8),
            "crossed": np.zeros((k, lmax, 2), bool),
        }
        for name, value in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), value]))
        self.select(np.argsort(self.key, kind="stable"))

    def repad(self, zmax: int, lmax: int) -> None:
        """Columns for ``zmax`` zones and ``lmax`` lines (a stream with more came or went)."""
        for name, width in (
            ("inside", zmax),
            ("enter_s", zmax),
            ("alerted", zmax),
            ("side", lmax),
            ("crossed", lmax),
        ):
            value = getattr(self, name)
            shape = (len(value), width, *value.shape[2:])
            out = np.zeros(shape, value.dtype)
            keep = min(width, value.shape[1])
            out[:, :keep] = value[:, :keep]
            setattr(self, name, out)


class MultiStreamAnalytics:
    """Zone membership, dwell and line crossings for the tracks of many streams at once.

    The point tested for each track is its box's bottom centre (the feet). A track absent for
    its stream's ``forget_after_s`` (stream time) is dropped, with an 'exit' for each zone it
    was still inside. Track id -1 (unconfirmed) is ignored. A zone or line with ``class_ids``
    counts those classes only: a track of another class is never inside that zone and never
    crosses that line.

    Example:
        >>> multi = MultiStreamAnalytics()
        >>> multi.set_stream("cam1", [Zone("door", [[0, 0], [10, 0], [10, 10], [0, 10]])], [])
        >>> multi.set_stream("cam2", [], [Line("gate", [50, 0], [50, 100])])
        >>> events = multi.update(["cam1", "cam2"], [0.0, 0.0], [ids1, ids2], [boxes1, boxes2],
        ...                       [classes1, classes2])
        >>> events[0]  # cam1's events of this frame, in order
    """

    def __init__(self) -> None:
        self._streams: dict[Hashable, _Stream] = {}  # as set; laid out when next used
        self._slots: dict[Hashable, int] = {}  # of the last layout, which the rows follow
        self._layout = _Layout([])
        self._rows = _Rows(0, 0)
        self._stale = False  # streams set or removed since the last layout

    # --- streams ---------------------------------------------------------------------------

    def set_stream(
        self,
        stream_id: Hashable,
        zones: Sequence[Zone],
        lines: Sequence[Line],
        forget_after_s: float = 2.0,
    ) -> None:
        """Give a stream its zones and lines (new, or replacing its old ones): its state
        starts afresh."""
        if not forget_after_s >= 0:
            raise ProcessorError(f"analytics: forget_after_s must be >= 0, got {forget_after_s}")
        self.reset(stream_id)
        self._streams[stream_id] = _Stream(tuple(zones), tuple(lines), forget_after_s)
        self._stale = True  # laid out when next used: 128 streams set, one layout

    def remove_stream(self, stream_id: Hashable) -> None:
        """Forget a stream: its state and its zones and lines."""
        if stream_id in self._streams:
            self.reset(stream_id)
            del self._streams[stream_id]
            self._stale = True

    def reset(self, stream_id: Hashable) -> None:
        """Forget a stream's tracks (its file looped, it reconnected): nobody is inside, and
        the objects seen next enter again. Its zones and lines stay."""
        slot = self._slots.get(stream_id)
        if slot is not None:
            self._rows.select(self._rows.slot != slot)

    def stream_ids(self) -> list[Hashable]:
        return list(self._streams)

    def zones(self, stream_id: Hashable) -> tuple[Zone, ...]:
        return self._streams[stream_id].zones

    def lines(self, stream_id: Hashable) -> tuple[Line, ...]:
        return self._streams[stream_id].lines

    def _laid_out(self) -> None:
        """Lay out the streams set now, if they changed: their slots and padded arrays, the
        rows moved to their streams' new slots and columns (dropped for streams removed)."""
        if not self._stale:
            return
        self._stale = False
        old, streams = self._slots, self._streams
        self._slots = {key: slot for slot, key in enumerate(streams)}
        self._layout = layout = _Layout(list(streams.values()))
        remap = np.full(len(old) + 1, -1, np.int64)
        for key, slot in old.items():
            remap[slot] = self._slots.get(key, -1)
        rows = self._rows
        rows.select(remap[rows.slot] >= 0)
        rows.slot = remap[rows.slot]
        rows.key = rows.slot << KEY_BITS | rows.track_id
        rows.select(np.argsort(rows.key, kind="stable"))
        rows.repad(layout.zmax, layout.lmax)

    # --- queries -----------------------------------------------------------------------------

    def occupancy(self, stream_id: Hashable) -> np.ndarray:
        """Tracks inside each of the stream's zones now, ``(Z,)`` int64."""
        self._laid_out()
        slot = self._slots[stream_id]
        z = len(self._streams[stream_id].zones)
        return self._rows.inside[self._rows.slot == slot, :z].sum(axis=0).astype(np.int64)

    def dwell_s(self, stream_id: Hashable, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        """The stream's track ids ``(n,)`` and seconds each has been inside each zone
        ``(n, Z)`` (0 outside)."""
        self._laid_out()
        rows = self._rows
        mine = rows.slot == self._slots[stream_id]
        z = len(self._streams[stream_id].zones)
        inside, enter_s = rows.inside[mine, :z], rows.enter_s[mine, :z]
        return rows.track_id[mine].copy(), np.where(inside, now_s - enter_s, 0.0)

    # --- the update --------------------------------------------------------------------------

    def update(
        self,
        stream_ids: Sequence[Hashable],
        pts_s: Sequence[float],
        track_ids: Sequence[np.ndarray],
        boxes_xyxy: Sequence[np.ndarray],
        classes: Sequence[np.ndarray],
    ) -> list[list[Event]]:
        """One frame for each of ``stream_ids`` (each at most once, each set with
        ``set_stream``); returns each one's events, in order.

        Args:
            stream_ids: the streams of this call.
            pts_s: each one's frame time in seconds (non-decreasing across its calls).
            track_ids: each one's ``(n_i,)`` ints, -1 for boxes without a confirmed track,
                unique otherwise.
            boxes_xyxy: each one's ``(n_i, 4)`` floats, x1 y1 x2 y2.
            classes: each one's ``(n_i,)`` int class ids.
        """
        calls = len(stream_ids)
        self._laid_out()
        slots = self._slots_of(stream_ids, pts_s, track_ids, boxes_xyxy, classes)
        out: list[list[Event]] = [[] for _ in range(calls)]
        counts = np.array([len(t) for t in track_ids], np.int64)
        ids = _concat(track_ids, (0,), np.int64)
        keep = ids != -1
        rows = self._rows
        if not keep.any() and not len(rows.key):
            return out  # nothing tracked, nothing remembered: the common empty frames
        ids = ids[keep]
        boxes = _concat(boxes_xyxy, (0, 4), np.float64)[keep]
        cls = _concat(classes, (0,), np.int64)[keep]
        pos = np.repeat(np.arange(calls), counts)[keep]  # each box's place in the call
        now = np.asarray(pts_s, np.float64)
        det_slot, det_now = slots[pos], now[pos]
        keys = det_slot << KEY_BITS | ids
        ordered = np.sort(keys)
        if len(ordered) > 1 and (twice := ordered[1:] == ordered[:-1]).any():
            slot = int(ordered[1:][twice][0] >> KEY_BITS)
            raise ProcessorError(
                f"analytics update: a track id appears twice in one frame of stream "
                f"{list(self._slots)[slot]!r}"
            )
        place = np.full(len(self._slots), -1, np.int64)
        place[slots] = np.arange(calls)
        slot_now = np.full(len(self._slots), np.nan)
        slot_now[slots] = now
        self._forget(slot_now, place, out)
        rows = self._rows
        if len(rows.key):
            at = np.minimum(np.searchsorted(rows.key, ordered), len(rows.key) - 1)
            new = ordered[rows.key[at] != ordered]
        else:
            new = ordered
        if len(new):
            rows.add(new)
        r = np.searchsorted(rows.key, keys)
        feet = np.empty((len(ids), 2))
        feet[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
        feet[:, 1] = boxes[:, 3]
        if len(ids) and self._layout.zmax:
            self._zones_step(r, ids, cls, feet, pos, det_slot, det_now, out)
        if len(ids) and self._layout.lmax:
            self._lines_step(r, ids, cls, feet, pos, det_slot, det_now, out)
        rows.last_xy[r] = feet
        rows.last_s[r] = det_now
        rows.cls[r] = cls
        return out

    def _slots_of(self, stream_ids, pts_s, track_ids, boxes_xyxy, classes) -> np.ndarray:
        """Each stream's slot, after checking that the inputs line up (nothing changed yet)."""
        n = (len(stream_ids), len(pts_s), len(track_ids), len(boxes_xyxy), len(classes))
        if len(set(n)) != 1:
            raise ProcessorError(
                f"analytics update: {n[0]} stream ids, {n[1]} pts, {n[2]} track id arrays, "
                f"{n[3]} box arrays and {n[4]} class arrays (expected one of each per stream)"
            )
        for sid, t, b, c in zip(stream_ids, track_ids, boxes_xyxy, classes):
            if sid not in self._slots:
                raise ProcessorError(f"analytics update: stream {sid!r} has no zones or lines set")
            k = len(t)
            if not k == len(b) == len(c) or np.shape(b) not in ((k, 4), (0,)):
                raise ProcessorError(
                    f"analytics update: stream {sid!r}: {k} track ids, boxes {np.shape(b)} and "
                    f"{len(c)} classes; expected one of each per detection"
                )
        slots = np.array([self._slots[sid] for sid in stream_ids], np.int64)
        if len(set(slots.tolist())) != len(slots):
            raise ProcessorError("analytics update: a stream appears twice in one update")
        return slots

    def _forget(self, slot_now: np.ndarray, place: np.ndarray, out: list[list[Event]]) -> None:
        """Drop tracks of this call's streams unseen for their ``forget_after_s``; each leaves
        the zones it was inside: an 'exit' stamped with the frame that decided it (so events
        stay in time order), its dwell up to its last sighting."""
        rows, layout = self._rows, self._layout
        if not len(rows.key):
            return
        with np.errstate(invalid="ignore"):  # NaN: a stream not in this call, not stale
            stale = rows.last_s < slot_now[rows.slot] - layout.forget_s[rows.slot]
        if not stale.any():
            return
        for rk, zk in zip(*np.nonzero(rows.inside & stale[:, None])):
            slot = rows.slot[rk]
            out[place[slot]].append(
                Event(
                    "exit",
                    layout.zone_names[slot][zk],
                    int(rows.track_id[rk]),
                    int(rows.cls[rk]),
                    float(slot_now[slot]),
                    dwell_s=float(rows.last_s[rk] - rows.enter_s[rk, zk]),
                )
            )
        rows.select(~stale)

    def _zones_step(self, r, ids, cls, feet, pos, det_slot, det_now, out) -> None:
        """Even-odd membership of each point in its own stream's zones (a ray to +x against
        every edge of them, as point-edge pairs), then exits, enters and dwell alerts."""
        rows, layout = self._rows, self._layout
        n, z = len(ids), layout.zmax
        per_point = layout.edge_count[det_slot]
        total = int(per_point.sum())
        if total:
            point = np.repeat(np.arange(n), per_point)
            first = np.cumsum(per_point) - per_point
            edge = np.arange(total) + np.repeat(layout.edge_start[det_slot] - first, per_point)
            x1, y1, x2, y2 = layout.edges[edge].T
            px, py = feet[point, 0], feet[point, 1]
            straddles = (y1 > py) != (y2 > py)
            dy = np.where(y2 == y1, 1.0, y2 - y1)
            hits = straddles & (px < x1 + (py - y1) * (x2 - x1) / dy)
            cell = point[hits] * z + layout.edge_zone[edge[hits]]
            inside = (np.bincount(cell, minlength=n * z) % 2 == 1).reshape(n, z)
            # On an edge is inside: a zone is closed. Boxes are clipped to the frame, so an
            # object cut by the frame's bottom has its feet exactly on y = height, and a zone
            # drawn to that edge must hold it (half-open even-odd never would).
            on_edge = (
                (np.abs((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1))
                 <= ON_EDGE_PX * np.hypot(x2 - x1, y2 - y1))
                & (px >= np.minimum(x1, x2) - ON_EDGE_PX)
                & (px <= np.maximum(x1, x2) + ON_EDGE_PX)
                & (py >= np.minimum(y1, y2) - ON_EDGE_PX)
                & (py <= np.maximum(y1, y2) + ON_EDGE_PX)
            )  # fmt: skip
            if on_edge.any():
                cell = point[on_edge] * z + layout.edge_zone[edge[on_edge]]
                inside |= (np.bincount(cell, minlength=n * z) > 0).reshape(n, z)
        else:
            inside = np.zeros((n, z), bool)
        if layout.zone_allow is not None:
            inside &= layout.zone_allow[det_slot, layout.class_rows(cls)]
        was, enter_s = rows.inside[r], rows.enter_s[r]
        now = det_now[:, None]
        entered = inside & ~was
        new_enter_s = np.where(entered, now, enter_s)
        alerted = rows.alerted[r] & inside & ~entered  # cleared on entering, and outside
        due = inside & ~alerted & (now - new_enter_s > layout.alert_s[det_slot])
        names = layout.zone_names
        for i, k in zip(*np.nonzero(was & ~inside)):
            out[pos[i]].append(
                Event(
                    "exit", names[det_slot[i]][k], int(ids[i]), int(cls[i]),
                    float(det_now[i]), dwell_s=float(det_now[i] - enter_s[i, k]),
                )
            )  # fmt: skip
        for i, k in zip(*np.nonzero(entered)):
            out[pos[i]].append(
                Event("enter", names[det_slot[i]][k], int(ids[i]), int(cls[i]), float(det_now[i]))
            )
        for i, k in zip(*np.nonzero(due)):
            out[pos[i]].append(
                Event(
                    "dwell", names[det_slot[i]][k], int(ids[i]), int(cls[i]),
                    float(det_now[i]), dwell_s=float(det_now[i] - new_enter_s[i, k]),
                )
            )  # fmt: skip
        rows.enter_s[r] = new_enter_s
        rows.alerted[r] = alerted | due
        rows.inside[r] = inside

    def _lines_step(self, r, ids, cls, feet, pos, det_slot, det_now, out) -> None:
        """A crossing: the side of the line flips (a point on it keeps the last side) and the
        step from the previous point to this one passes between a and b. Counted once per
        track, line and direction."""
        rows, layout = self._rows, self._layout
        a, b = layout.line_a[det_slot], layout.line_b[det_slot]  # (n, L, 2)
        p = feet[:, None, :]  # (n, 1, 2)
        ab = b - a
        side_now = np.sign(
            ab[..., 0] * (p[..., 1] - a[..., 1]) - ab[..., 1] * (p[..., 0] - a[..., 0])
        ).astype(np.int8)  # (n, L)
        side_last = rows.side[r]
        prev = rows.last_xy[r][:, None, :]  # (n, 1, 2)
        step = p - prev
        da = np.sign(
            step[..., 0] * (a[..., 1] - prev[..., 1]) - step[..., 1] * (a[..., 0] - prev[..., 0])
        )
        db = np.sign(
            step[..., 0] * (b[..., 1] - prev[..., 1]) - step[..., 1] * (b[..., 0] - prev[..., 0])
        )
        between = ~np.isnan(prev[..., 0]) & (da * db <= 0)
        flipped = (side_now != 0) & (side_last != 0) & (side_now != side_last) & between
        flipped &= layout.line_valid[det_slot]
        if layout.line_allow is not None:
            flipped &= layout.line_allow[det_slot, layout.class_rows(cls)]
        direction = np.where(side_now > 0, 0, 1)  # (n, L)
        crossed = rows.crossed[r]
        i, ln = np.nonzero(flipped)
        d = direction[i, ln]
        new = ~crossed[i, ln, d]
        i, ln, d = i[new], ln[new], d[new]
        crossed[i, ln, d] = True
        rows.crossed[r] = crossed
        rows.side[r] = np.where(side_now != 0, side_now, side_last)
        names = layout.line_names
        for j, k, dk in zip(i, ln, d):
            out[pos[j]].append(
                Event(
                    "cross", names[det_slot[j]][k], int(ids[j]), int(cls[j]),
                    float(det_now[j]), DIRECTIONS[dk],
                )
            )  # fmt: skip


class StreamAnalytics:
    """One stream's zones and lines: :class:`MultiStreamAnalytics` with that stream alone.

    Example:
        >>> a = StreamAnalytics([Zone("door", [[0, 0], [10, 0], [10, 10], [0, 10]])], [])
        >>> [e.kind for e in a.update(0.0, np.array([1]), np.array([[4, 2, 6, 5]]), np.array([0]))]
        ['enter']
    """

    def __init__(self, zones: list[Zone], lines: list[Line], forget_after_s: float = 2.0) -> None:
        self.zones = list(zones)
        self.lines = list(lines)
        self.forget_after_s = float(forget_after_s)
        self._multi = MultiStreamAnalytics()
        self._multi.set_stream(0, self.zones, self.lines, self.forget_after_s)

    def occupancy(self) -> np.ndarray:
        """Tracks inside each zone now, ``(Z,)`` int64."""
        return self._multi.occupancy(0)

    def dwell_s(self, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Track ids ``(n,)`` and seconds each has been inside each zone ``(n, Z)`` (0 outside)."""
        return self._multi.dwell_s(0, now_s)

    def update(
        self, pts_s: float, track_ids: np.ndarray, boxes_xyxy: np.ndarray, classes: np.ndarray
    ) -> list[Event]:
        """Advance to frame time ``pts_s`` with this frame's tracked boxes; returns its events
        (see :meth:`MultiStreamAnalytics.update`)."""
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        cls = np.asarray(classes, dtype=np.int64).reshape(-1)
        return self._multi.update([0], [pts_s], [ids], [boxes], [cls])[0]


def _concat(parts: Sequence[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    if not len(parts):
        return np.zeros(empty_shape, dtype)
    return np.concatenate([np.asarray(x, dtype).reshape((-1, *empty_shape[1:])) for x in parts])
