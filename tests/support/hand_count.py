"""A person's count of a sample clip (tests/data/*.yaml) and the tools to hold a run against it.

Used by tests/test_hand_count.py (detector + tracker + analytics called directly) and
tests/test_hand_count_pipeline.py (events a ZeroMQ subscriber receives, turned back into
``Event``s by ``events_from_messages``): ``load_hand_count`` reads the truth,
``geometry``/``analytics_config`` give the zone and line to configure, and
``match_events`` compares what was reported with what a person counted, whatever produced it
(an ``Observed`` per event: kind, zone/line name, direction, label, frame, track id).

Example:
    >>> truth = load_hand_count()
    >>> run = run_clip(assets.videos[truth.clip], assets.model_onnx, truth)
    >>> report = match_events(observed_from(run.events, truth.fps), truth.expected)
    >>> assert report.ok, report.describe()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from processors.analytics import Event, Line, StreamAnalytics, Zone
from processors.labels import COCO80

BIKES = Path(__file__).resolve().parent.parent / "data" / "bikes_hand_count.yaml"


@dataclass(frozen=True)
class Expected:
    """One event a person counted (``required``) or accepts (not required), in a frame window."""

    object_id: str
    classes: tuple[str, ...]
    kind: str  # enter | exit | cross
    name: str  # the zone's or line's
    direction: str | None
    frame: int  # the hand count
    frames: tuple[int, int]  # accepted, inclusive
    required: bool
    pair: str | None = None  # optional events reported both or neither


@dataclass(frozen=True)
class TrackSpan:
    """Frames over which one visible object must keep one track id, and where it is (by eye)."""

    object_id: str
    classes: tuple[str, ...]
    frames: tuple[int, int]  # inclusive
    x_keys: tuple[tuple[int, float], ...]  # (frame, bottom-centre x) to interpolate

    def x_at(self, frame: int) -> float:
        keys = np.array(self.x_keys, dtype=np.float64)
        return float(np.interp(frame, keys[:, 0], keys[:, 1]))


@dataclass(frozen=True)
class HandCount:
    clip: str
    size_wh: tuple[int, int]
    fps: float
    line: dict
    zone: dict
    expected: tuple[Expected, ...]
    spans: tuple[TrackSpan, ...]


def load_hand_count(path: Path = BIKES) -> HandCount:
    data = yaml.safe_load(path.read_text())
    line, zone = data["line"], data["zone"]
    expected, spans = [], []
    for obj in data["objects"]:
        classes = tuple(obj["classes"])
        for e in obj["events"]:
            expected.append(
                Expected(
                    object_id=obj["id"],
                    classes=classes,
                    kind=e["kind"],
                    name=line["name"] if e["kind"] == "cross" else zone["name"],
                    direction=e.get("direction"),
                    frame=int(e["frame"]),
                    frames=(int(e["frames"][0]), int(e["frames"][1])),
                    required=bool(e["required"]),
                    pair=e.get("pair"),
                )
            )
        if "track" in obj:
            t = obj["track"]
            keys = tuple((int(f), float(x)) for f, x in t["x"])
            spans.append(TrackSpan(obj["id"], classes, (t["frames"][0], t["frames"][1]), keys))
    return HandCount(
        clip=data["clip"],
        size_wh=(int(data["size"][0]), int(data["size"][1])),
        fps=float(data["fps"]),
        line=line,
        zone=zone,
        expected=tuple(expected),
        spans=tuple(spans),
    )


def geometry(truth: HandCount) -> tuple[list[Zone], list[Line]]:
    """The zone and the line in source pixels, as processors/analytics takes them."""
    zone, line = truth.zone, truth.line
    return [Zone(zone["name"], zone["points"])], [Line(line["name"], line["a"], line["b"])]


def analytics_config(truth: HandCount, fractions: bool = False) -> dict:
    """The zone and the line as a stream's ``zones:`` and ``lines:`` config entries
    (docs/configuration.md), in source pixels or, ``fractions``, as ``units: fraction``."""
    zone, line = truth.zone, truth.line
    suffix, units = ("_frac", {"units": "fraction"}) if fractions else ("", {})
    return {
        "zones": [{"name": zone["name"], "points": zone[f"points{suffix}"], **units}],
        "lines": [
            {"name": line["name"], "a": line[f"a{suffix}"], "b": line[f"b{suffix}"], **units}
        ],
    }


def expected_counts(truth: HandCount, required_only: bool = True) -> dict[tuple, int]:
    """What a person counted, per (kind, name, direction, first class): e.g. crossings 'in'."""
    counts: dict[tuple, int] = {}
    for e in truth.expected:
        if e.required or not required_only:
            key = (e.kind, e.name, e.direction, e.classes[0])
            counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass
class ClipRun:
    """Per frame: pts, boxes ``(n, 4)``, scores, class ids, track ids; the analytics' events in
    the order they were returned (the last ones from a flush after the clip)."""

    pts_s: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    class_ids: list[np.ndarray] = field(default_factory=list)
    track_ids: list[np.ndarray] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def run_clip(video: Path, model_onnx: Path, truth: HandCount, batch: int = 8) -> ClipRun:
    """The project's CPU path over every frame of ``video``: YOLOv3-tiny on ONNX Runtime, the
    default model thresholds, the default tracker, ``StreamAnalytics`` with the truth's zone and
    line. Called at the processors level: no capture worker, batcher or publisher."""
    import cv2

    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.options import EngineOptions
    from processors.letterbox import preprocess_into
    from processors.track import MultiStreamTracker, TrackerParams
    from processors.yolo import decode_yolo_batch, detect_head_format
    from streams.config import ModelConfig, TrackingConfig

    model, tracking = ModelConfig(), TrackingConfig()  # what `streams run` uses by default
    params = TrackerParams(
        high_score=tracking.high_score,
        low_score=tracking.low_score,
        new_track_score=tracking.new_track_score,
        confirm_hits=tracking.confirm_hits,
        max_lost_s=tracking.max_lost_s,
    )
    tracker, analytics = MultiStreamTracker(params), StreamAnalytics(*geometry(truth))
    engine = OnnxRuntimeEngine(model_onnx, EngineOptions(backend="onnxruntime", max_batch=batch))
    head = detect_head_format(engine.output_specs[0].shape, len(COCO80))
    buffer = np.zeros((batch, 3, *engine.input_hw), engine.input_spec.dtype)
    capture = cv2.VideoCapture(str(video))
    run = ClipRun()
    try:
        frame_index, done = 0, False
        while not done:
            boxes, shapes = [], []
            while len(boxes) < batch:
                ok, image = capture.read()
                if not ok:
                    done = True
                    break
                boxes.append(preprocess_into(buffer[len(boxes)], image))
                shapes.append(image.shape[:2])
            if not boxes:
                break
            (output,) = engine.infer(buffer[: len(boxes)])
            found = decode_yolo_batch(
                output, head, boxes, shapes, model.conf_threshold, model.iou_threshold
            )
            for detections in found:
                pts = frame_index / truth.fps  # a constant-rate file: pts = frame / fps
                (ids,) = tracker.update(
                    ["clip"],
                    [pts],
                    [detections.xyxy],
                    [detections.scores],
                    [detections.class_ids],
                )
                run.events += analytics.update(pts, ids, detections.xyxy, detections.class_ids)
                run.pts_s.append(pts)
                run.boxes.append(detections.xyxy)
                run.scores.append(detections.scores)
                run.class_ids.append(detections.class_ids)
                run.track_ids.append(ids)
                frame_index += 1
    finally:
        capture.release()
        engine.close()
    # After the clip: time enough for every track still held to be forgotten (its exits).
    flush_s = run.pts_s[-1] + analytics.forget_after_s + 1.0
    empty = np.zeros(0, np.int64)
    run.events += analytics.update(flush_s, empty, np.zeros((0, 4)), empty)
    return run


@dataclass(frozen=True)
class Observed:
    """One reported event, in the terms of the hand count."""

    kind: str
    name: str
    direction: str | None
    label: str
    frame: int
    track_id: int
    dwell_s: float | None = None


def observed_from(events: list[Event], fps: float) -> list[Observed]:
    """Events as frames of the clip. An exit's frame is when the object was last inside (its
    enter + its dwell): an object that vanished inside is only let go ``forget_after_s``
    later, and its exit event carries that later time so that events stay in time order."""
    entered: dict[tuple[int, str], float] = {}
    observed = []
    for e in events:
        at_s = e.pts_s
        if e.kind == "enter":
            entered[(e.track_id, e.name)] = e.pts_s
        elif e.kind == "exit" and (e.track_id, e.name) in entered and e.dwell_s is not None:
            at_s = entered.pop((e.track_id, e.name)) + e.dwell_s
        observed.append(
            Observed(
                e.kind,
                e.name,
                e.direction,
                COCO80[e.class_id],
                round(at_s * fps),
                e.track_id,
                e.dwell_s,
            )  # fmt: skip
        )
    return observed


def events_from_messages(messages: list[dict]) -> list[Event]:
    """``event/<stream>/`` messages (docs/messages.md) as the analytics' ``Event``s, in the
    order received, for ``observed_from``: the pipeline's events held to the same count."""
    return [
        Event(
            kind=m["event"],
            name=m["line"] if m["event"] == "cross" else m["zone"],
            track_id=m["track_id"],
            class_id=m["class_id"],
            pts_s=m["pts"],
            direction=m.get("direction"),
            dwell_s=m.get("dwell_s"),
        )
        for m in messages
    ]


# How far (px) a box's bottom centre may be from where the eye put the object: the rider's
# and cyclist's boxes were within ~30 px of it; the nearest other box of their class (the
# parked motorbike's helmet, a 'person' at x ~580) is 145 px from the cyclist.
SPAN_TOLERANCE_PX = 60


def span_track_ids(
    span: TrackSpan,
    frames: dict[int, tuple[np.ndarray, list[str], np.ndarray]],
    tolerance_px: float = SPAN_TOLERANCE_PX,
) -> list[int | None]:
    """Per frame of ``span``, the track id of the box of its classes whose bottom centre is
    nearest where the eye put the object (None: no such box within ``tolerance_px``, or the
    frame is missing). ``frames``: frame -> (boxes ``(n, 4)``, labels, track ids)."""
    ids: list[int | None] = []
    for frame in range(span.frames[0], span.frames[1] + 1):
        if frame not in frames:
            ids.append(None)
            continue
        boxes, labels, track_ids = frames[frame]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        feet_x = (boxes[:, 0] + boxes[:, 2]) / 2
        mine = np.isin(np.asarray(labels, dtype=object), span.classes)
        distance = np.where(mine, np.abs(feet_x - span.x_at(frame)), np.inf)
        nearest = int(np.argmin(distance)) if len(distance) else -1
        ok = nearest >= 0 and distance[nearest] <= tolerance_px
        ids.append(int(track_ids[nearest]) if ok else None)
    return ids


@dataclass
class MatchReport:
    matched: dict[int, int]  # observed index -> expected index
    extra: list[Observed]  # reported, no person counted it
    missing: list[Expected]  # a person counted it, required, not reported
    broken_pairs: list[str]  # optional pairs reported half

    @property
    def ok(self) -> bool:
        return not (self.extra or self.missing or self.broken_pairs)

    def describe(self) -> str:
        lines = [f"extra (not in the hand count): {o}" for o in self.extra]
        lines += [f"missing (a person counted it): {e}" for e in self.missing]
        lines += [f"pair reported half: {p}" for p in self.broken_pairs]
        return "\n".join(lines)


def _fits(o: Observed, e: Expected) -> bool:
    return (
        o.kind == e.kind
        and o.name == e.name
        and o.direction == e.direction
        and o.label in e.classes
        and e.frames[0] <= o.frame <= e.frames[1]
    )


def match_events(observed: list[Observed], expected: tuple[Expected, ...]) -> MatchReport:
    """Each reported event to at most one counted event of its kind, place, direction and
    class whose window holds its frame (a maximum bipartite matching, so overlapping windows
    cannot steal each other's match); then what is left over on either side."""
    fits = [[j for j, e in enumerate(expected) if _fits(o, e)] for o in observed]
    owner: dict[int, int] = {}  # expected index -> observed index

    def assign(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(observed)):
        assign(i, set())
    matched = {i: j for j, i in owner.items()}
    extra = [o for i, o in enumerate(observed) if i not in matched]
    missing = [e for j, e in enumerate(expected) if e.required and j not in owner]
    pairs: dict[str, list[bool]] = {}
    for j, e in enumerate(expected):
        if e.pair is not None:
            pairs.setdefault(f"{e.object_id}/{e.pair}", []).append(j in owner)
    broken = [name for name, got in pairs.items() if any(got) and not all(got)]
    return MatchReport(matched, extra, missing, broken)
