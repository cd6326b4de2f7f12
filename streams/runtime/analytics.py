"""Zones and lines in the pipeline (the completer thread): each stream's tracked boxes through
its one :class:`~processors.analytics.StreamAnalytics` (class filters included), events
encoded for ``event/<stream>/``, counts kept in the stream's
:class:`~streams.runtime.stats.AnalyticsCounts` for ``stats``.

Why apart from processors/analytics: what depends on the running stream lives here. The
frame size is known only once frames arrive (``units: fraction`` is scaled to it, pixel
points are checked against it), state starts afresh with each segment (a loop, a reconnect,
a restart), a reload replaces the config, and events are messages with labels and seq.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from processors.analytics import GeometryError, Line, StreamAnalytics, Zone
from processors.detections import Detections
from streams.bus.messages import encode, event_message, topic_bytes
from streams.capture.frames import Frame
from streams.config import Config, LineConfig, StreamConfig, ZoneConfig, check_class_names
from streams.runtime.stats import AnalyticsCounts, StreamStats

logger = logging.getLogger(__name__)

# The point tested for a box is its bottom centre; boxes end at the frame's right and bottom
# edges (x2 == width), where a zone drawn along those edges ends too, and even-odd membership
# leaves a point on those edges outside. Boxes are held this far inside the frame so that a
# zone covering the frame holds every box in it.
EDGE_PX = 1e-3


@dataclass(frozen=True)
class AnalyticsPlan:
    """One stream's zones and lines, their class names resolved to the model's class ids."""

    stream: StreamConfig
    where: str  # its key path, ``streams[i]``
    zone_classes: tuple[tuple[int, ...] | None, ...]  # per zone: the ids it counts, None: all
    line_classes: tuple[tuple[int, ...] | None, ...]


def plan_analytics(config: Config, labels: Sequence[str]) -> dict[str, AnalyticsPlan]:
    """Stream id -> plan, for the streams with zones or lines; ConfigError (the key path
    named, as at load time) for a class name that is not one of ``labels``."""
    index = {name: i for i, name in reversed(list(enumerate(labels)))}  # first one wins
    plans = {}
    for i, stream in enumerate(config.streams):
        if not (stream.zones or stream.lines):
            continue
        where = f"streams[{i}]"
        check_class_names(
            [
                (f"{where}.{kind}[{k}].classes[{j}]", name)
                for kind, items in (("zones", stream.zones), ("lines", stream.lines))
                for k, item in enumerate(items)
                for j, name in enumerate(item.classes or ())
            ],
            tuple(labels),
            config.model.labels,
        )

        def ids(item: ZoneConfig | LineConfig) -> tuple[int, ...] | None:
            return None if item.classes is None else tuple(sorted({index[n] for n in item.classes}))

        plans[stream.id] = AnalyticsPlan(
            stream, where, tuple(map(ids, stream.zones)), tuple(map(ids, stream.lines))
        )
    return plans


@dataclass
class _Live:
    """A stream's analytics for one segment at one frame size (``state`` None: off)."""

    segment: int
    hw: tuple[int, int]
    state: StreamAnalytics | None


class AnalyticsStage:
    """Every stream's zone and line state, fed one batch at a time by the completer.

    ``configure`` (at start and after each reload) takes the config's zones and lines;
    ``process`` runs a batch's tracked frames and returns their events, encoded, and the
    live notes to publish (a stream whose zones do not fit its frames: analytics off).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)
        self._plans: dict[str, AnalyticsPlan] = {}
        self._live: dict[str, _Live] = {}

    @property
    def active(self) -> bool:
        return bool(self._plans)

    def live_streams(self) -> set[str]:
        """The streams whose zones and lines hold state now (one per stream, not per run)."""
        return set(self._live)

    def configure(self, config: Config, stream_stats: Mapping[str, StreamStats]) -> None:
        """Apply a config: a stream removed, or whose zones or lines changed, loses its state
        (a changed stream restarts anyway); each stream with zones or lines gets its counts,
        keeping those of zones and lines it still has (counters never go back)."""
        plans = plan_analytics(config, self.labels)
        for stream_id in list(self._live):
            old, new = self._plans.get(stream_id), plans.get(stream_id)
            if new is None or old is None or old.stream != new.stream:
                del self._live[stream_id]
        for stream_id, stats in stream_stats.items():
            plan = plans.get(stream_id)
            if plan is None:
                stats.analytics = None
                continue
            unchanged = (
                old := self._plans.get(stream_id)
            ) is not None and old.stream == plan.stream
            if stats.analytics is None or not unchanged:
                stats.analytics = AnalyticsCounts(
                    [z.name for z in plan.stream.zones],
                    [ln.name for ln in plan.stream.lines],
                    previous=stats.analytics,
                )
        self._plans = plans

    def process(
        self,
        frames: Sequence[Frame],
        decoded: Sequence[Detections],
        track_ids: Sequence[np.ndarray | None] | None,
        stream_stats: Mapping[str, StreamStats],
    ) -> tuple[list[tuple[bytes, bytes]], list[tuple[str, str]]]:
        """The batch's events as ``(topic, payload)`` pairs, in time order per stream, and
        ``(stream id, reason)`` live notes. Streams without zones or lines cost one lookup."""
        plans = self._plans
        messages: list[tuple[bytes, bytes]] = []
        notes: list[tuple[str, str]] = []
        if not plans or track_ids is None:
            return messages, notes
        for i, frame in enumerate(frames):
            plan = plans.get(frame.stream_id)
            ids = track_ids[i]
            stats = stream_stats.get(frame.stream_id)
            if plan is None or ids is None or stats is None or stats.analytics is None:
                continue
            live = self._live.get(frame.stream_id)
            if live is None or live.segment != frame.segment:
                live = self._start(plan, frame, live, stats.analytics, notes)
            if live.state is None:
                continue
            detections = decoded[i]
            boxes = detections.xyxy
            if len(boxes):
                height, width = live.hw
                boxes = np.minimum(boxes, (width - EDGE_PX, height - EDGE_PX) * 2)
            events = live.state.update(frame.pts_s, ids, boxes, detections.class_ids)
            if events:
                messages += self._encode(frame, events, stats.analytics)
        return messages, notes

    def _start(
        self,
        plan: AnalyticsPlan,
        frame: Frame,
        last: _Live | None,
        counts: AnalyticsCounts,
        notes: list[tuple[str, str]],
    ) -> _Live:
        """State afresh for a new segment, at this frame's size: fractions scaled, pixels
        checked. A zone or line outside the frame turns this stream's analytics off (logged,
        a live note, ``analytics_error`` in its stats) until the config or frame size changes."""
        hw = frame.source_hw
        counts.clear_occupancy()
        if last is not None and last.state is None and last.hw == hw:
            live = _Live(frame.segment, hw, None)  # still off: said once already
        else:
            try:
                live = _Live(frame.segment, hw, _build(plan, hw))
                counts.off = None
            except _OutOfFrame as err:
                reason = (
                    f"analytics off: {err}; this stream's zones and lines count nothing until "
                    "its config is fixed (a reload applies it), other streams go on"
                )
                logger.error("stream %s: %s", plan.stream.id, reason)
                counts.off = str(err)
                notes.append((plan.stream.id, reason))
                live = _Live(frame.segment, hw, None)
        self._live[plan.stream.id] = live
        return live

    def _encode(
        self, frame: Frame, events: list, counts: AnalyticsCounts
    ) -> list[tuple[bytes, bytes]]:
        """Each event counted and made a message; per event, as events are few."""
        labels, num_labels = self.labels, len(self.labels)
        out_topic = topic_bytes("event", frame.stream_id)
        out = []
        for event in events:
            label = (
                labels[event.class_id] if 0 <= event.class_id < num_labels else str(event.class_id)
            )
            counts.count(event.kind, event.name, label, event.direction)
            message = event_message(
                stream_id=frame.stream_id,
                event=event.kind,
                name=event.name,
                track_id=event.track_id,
                label=label,
                class_id=event.class_id,
                # The frame on which it was seen: a track forgotten while inside exits on the
                # frame that forgot it (its dwell_s runs to its last sighting), so each
                # stream's events come in pts order.
                pts_s=frame.pts_s,
                capture_wall_s=frame.capture_wall_s,
                seq=frame.seq,
                direction=event.direction,
                dwell_s=event.dwell_s,
            )
            out.append((out_topic, encode(message)))
        return out


class _OutOfFrame(ValueError):
    """A zone or line of the config does not fit the stream's frames (message: key path)."""


def _build(plan: AnalyticsPlan, hw: tuple[int, int]) -> StreamAnalytics:
    stream, where = plan.stream, plan.where
    scale = np.array([hw[1], hw[0]], np.float64)  # x by width, y by height
    zones = [
        _zone(zone, f"{where}.zones[{k}]", scale, classes)
        for k, (zone, classes) in enumerate(zip(stream.zones, plan.zone_classes))
    ]
    lines = [
        _line(line, f"{where}.lines[{k}]", scale, classes)
        for k, (line, classes) in enumerate(zip(stream.lines, plan.line_classes))
    ]
    return StreamAnalytics(zones, lines, forget_after_s=stream.tracking.max_lost_s)


def _pixels(
    points: Sequence[tuple[float, float]], units: str, keys: list[str], scale: np.ndarray
) -> np.ndarray:
    xy = np.array(points, np.float64)
    if units == "fraction":
        return xy * scale
    outside = np.flatnonzero((xy > scale).any(axis=1))
    if len(outside):
        k = outside[0]
        width, height = (int(v) for v in scale)
        raise _OutOfFrame(
            f"{keys[k]}: [{xy[k, 0]:g}, {xy[k, 1]:g}] is outside the stream's {width}x{height} "
            f"frame (pixels: x 0..{width}, y 0..{height}; or give fractions with units: fraction)"
        )
    return xy


def _zone(zone: ZoneConfig, where: str, scale: np.ndarray, classes: tuple[int, ...] | None) -> Zone:
    keys = [f"{where}.points[{j}]" for j in range(len(zone.points))]
    points = _pixels(zone.points, zone.units, keys, scale)
    try:
        return Zone(zone.name, points, zone.dwell_alert_s, classes)
    except GeometryError as err:  # cannot happen after the config's checks; said if it does
        raise _OutOfFrame(f"{where}.points: {err}") from err


def _line(line: LineConfig, where: str, scale: np.ndarray, classes: tuple[int, ...] | None) -> Line:
    a, b = _pixels((line.a, line.b), line.units, [f"{where}.a", f"{where}.b"], scale)
    try:
        return Line(line.name, a, b, classes)
    except GeometryError as err:
        raise _OutOfFrame(f"{where}.b: {err}") from err
