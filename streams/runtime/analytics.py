"""Zones and lines in the pipeline (the completer thread): the tracked boxes of every stream
of a batch that has zones or lines through one :class:`~processors.analytics.MultiStreamAnalytics`
call, events encoded for ``event/<stream>/``, counts kept in each stream's
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

from processors.analytics import GeometryError, Line, MultiStreamAnalytics, Zone
from processors.detections import Detections
from streams.bus.messages import encode, event_message, topic_bytes
from streams.capture.frames import Frame
from streams.config import Config, LineConfig, StreamConfig, ZoneConfig, check_class_names
from streams.runtime.stats import AnalyticsCounts, StreamStats

logger = logging.getLogger(__name__)


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
    """A stream's analytics for one segment at one frame size (``on`` False: off)."""

    segment: int
    hw: tuple[int, int]
    on: bool


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
        self._state = MultiStreamAnalytics()  # the streams whose analytics are on
        # The last process() call's (index in its frames, that frame's event messages), for
        # the recorder (snapshots and clips of events).
        self.frame_events: list[tuple[int, list[dict]]] = []

    @property
    def active(self) -> bool:
        return bool(self._plans)

    def live_streams(self) -> set[str]:
        """The streams whose zones and lines hold state now (each once, whatever its age)."""
        return set(self._live) | set(self._state.stream_ids())

    def configure(self, config: Config, stream_stats: Mapping[str, StreamStats]) -> None:
        """Apply a config: a stream removed, or whose zones or lines changed, loses its state
        (a changed stream restarts anyway); each stream with zones or lines gets its counts,
        keeping those of zones and lines it still has (counters never go back)."""
        plans = plan_analytics(config, self.labels)
        for stream_id in list(self._live):
            old, new = self._plans.get(stream_id), plans.get(stream_id)
            if new is None or old is None or old.stream != new.stream:
                del self._live[stream_id]
                self._state.remove_stream(stream_id)
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
        self.frame_events = []
        if not plans or track_ids is None:
            return messages, notes
        take: list[int] = []  # the frames whose streams count: one update for all of them
        boxes: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            plan = plans.get(frame.stream_id)
            stats = stream_stats.get(frame.stream_id)
            if plan is None or track_ids[i] is None or stats is None or stats.analytics is None:
                continue
            live = self._live.get(frame.stream_id)
            if live is None or live.segment != frame.segment:
                live = self._start(plan, frame, live, stats.analytics, notes)
            if not live.on:
                continue
            take.append(i)  # a box on the frame's edge is inside a zone drawn to it (closed)
            boxes.append(decoded[i].xyxy)
        if not take:
            return messages, notes
        events = self._state.update(
            [frames[i].stream_id for i in take],
            [frames[i].pts_s for i in take],
            [track_ids[i] for i in take],
            boxes,
            [decoded[i].class_ids for i in take],
        )
        for i, frame_events in zip(take, events):
            if frame_events:
                frame = frames[i]
                counts = stream_stats[frame.stream_id].analytics
                dicts: list[dict] = []
                messages += self._encode(frame, frame_events, counts, dicts)
                self.frame_events.append((i, dicts))
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
        hw, stream_id = frame.source_hw, plan.stream.id
        counts.clear_occupancy()
        if last is not None and last.hw == hw:  # the same zones and lines at the same size
            if last.on:
                self._state.reset(stream_id)
            live = _Live(frame.segment, hw, last.on)  # (off: said once already)
        else:
            try:
                zones, lines = _build(plan, hw)
            except _OutOfFrame as err:
                reason = (
                    f"analytics off: {err}; this stream's zones and lines count nothing until "
                    "its config is fixed (a reload applies it), other streams go on"
                )
                logger.error("stream %s: %s", stream_id, reason)
                counts.off = str(err)
                notes.append((stream_id, reason))
                self._state.remove_stream(stream_id)
                live = _Live(frame.segment, hw, False)
            else:
                self._state.set_stream(stream_id, zones, lines, plan.stream.tracking.max_lost_s)
                counts.off = None
                live = _Live(frame.segment, hw, True)
        self._live[stream_id] = live
        return live

    def _encode(
        self, frame: Frame, events: list, counts: AnalyticsCounts, dicts: list[dict]
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
            dicts.append(message)
        return out


class _OutOfFrame(ValueError):
    """A zone or line of the config does not fit the stream's frames (message: key path)."""


def _build(plan: AnalyticsPlan, hw: tuple[int, int]) -> tuple[list[Zone], list[Line]]:
    """The stream's zones and lines in pixels of its ``hw`` frames (_OutOfFrame if one does
    not fit)."""
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
    return zones, lines


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
