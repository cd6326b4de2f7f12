"""Zone and line analytics on hand-made trajectories: the box coordinates are written out, so
each expected event can be checked by reading the test."""

from __future__ import annotations

import numpy as np
import pytest

from processors.analytics import (
    Event,
    GeometryError,
    Line,
    MultiStreamAnalytics,
    StreamAnalytics,
    Zone,
)
from processors.errors import ProcessorError
from tests.processors.reference_analytics import ReferenceAnalytics

SQUARE = Zone("square", [[10, 10], [20, 10], [20, 20], [10, 20]])
# A vertical line at x = 50 from y = 0 down to y = 100 (image axes, y down). 'in' is onto the
# side where (b - a) x (p - a) > 0: (0, 100) x (p - a) = -100 (px - 50) > 0, i.e. x < 50.
GATE = Line("gate", [50, 0], [50, 100])


def feet_box(x: float, y: float) -> list[float]:
    """A 2-wide, 4-tall box whose bottom centre (the point tested) is (x, y)."""
    return [x - 1, y - 4, x + 1, y]


def step(a: StreamAnalytics, t: float, tracks: dict[int, tuple[float, float]], cls: int = 0):
    ids = np.array(list(tracks), dtype=np.int64)
    boxes = np.array([feet_box(*xy) for xy in tracks.values()]).reshape(-1, 4)
    return a.update(t, ids, boxes, np.full(len(ids), cls))


def crossings(events: list[Event]) -> list[tuple[int, str]]:
    return [(e.track_id, e.direction) for e in events if e.kind == "cross"]


def test_a_track_walking_through_a_square_enters_then_exits_with_its_dwell():
    a = StreamAnalytics([SQUARE], [])
    path = [(5, 15), (12, 15), (15, 15), (18, 15), (25, 15)]  # inside at t = 1, 2, 3
    events = []
    for t, xy in enumerate(path):
        events += step(a, float(t), {7: xy}, cls=2)
        if t == 2:
            assert a.occupancy().tolist() == [1]
            ids, dwell = a.dwell_s(2.0)
            assert ids.tolist() == [7] and dwell.tolist() == [[1.0]]
    assert events == [
        Event("enter", "square", 7, 2, 1.0),
        Event("exit", "square", 7, 2, 4.0, dwell_s=3.0),
    ]
    assert a.occupancy().tolist() == [0]


def test_a_track_that_disappears_inside_exits_when_forgotten():
    a = StreamAnalytics([SQUARE], [], forget_after_s=1.0)
    step(a, 0.0, {3: (15, 15)})
    step(a, 0.5, {3: (16, 15)})
    assert step(a, 1.0, {}) == []  # absent for 0.5 s: still remembered
    # The exit is stamped with the frame that decided it (2.0), so no event that is
    # published later carries an earlier time; its dwell runs to the last sighting.
    assert step(a, 2.0, {}) == [Event("exit", "square", 3, 0, 2.0, dwell_s=0.5)]
    assert a.occupancy().tolist() == [0]
    assert step(a, 2.5, {3: (15, 15)}) == [Event("enter", "square", 3, 0, 2.5)]  # afresh


def test_a_forgotten_exit_comes_after_the_events_before_it():
    a = StreamAnalytics([SQUARE], [], forget_after_s=1.0)
    step(a, 0.0, {1: (15, 15), 2: (50, 50)})
    events = step(a, 0.5, {2: (15, 15)})  # 1 vanishes inside; 2 enters
    events += step(a, 1.0, {2: (16, 15)})
    events += step(a, 1.6, {2: (50, 50)})  # 2 leaves; 1 is forgotten in this frame
    times = [e.pts_s for e in events]
    assert times == sorted(times), events
    assert {(e.kind, e.track_id) for e in events} == {("enter", 2), ("exit", 1), ("exit", 2)}


def test_a_dwell_alert_fires_once_per_visit_after_the_set_time():
    a = StreamAnalytics([Zone("queue", SQUARE.points, dwell_alert_s=1.5)], [])
    # Inside from t = 0; 1.5 s is not "longer than" 1.5 s; 2.0 is; later frames send nothing.
    inside = [step(a, t, {5: (15, 15)}) for t in (0.0, 0.5, 1.5, 2.0, 2.5, 4.0)]
    assert inside == [
        [Event("enter", "queue", 5, 0, 0.0)],
        [],
        [],
        [Event("dwell", "queue", 5, 0, 2.0, dwell_s=2.0)],
        [],
        [],
    ]
    # Out and back in: a new visit, its own alert 1.5 s + after entering again.
    assert step(a, 5.0, {5: (30, 15)}) == [Event("exit", "queue", 5, 0, 5.0, dwell_s=5.0)]
    assert step(a, 6.0, {5: (15, 15)}) == [Event("enter", "queue", 5, 0, 6.0)]
    assert step(a, 7.0, {5: (15, 15)}) == []
    assert step(a, 7.5, {5: (15, 15)}) == []  # 1.5 s: not yet
    assert step(a, 7.75, {5: (15, 15)}) == [Event("dwell", "queue", 5, 0, 7.75, dwell_s=1.75)]


def test_dwell_alerts_are_per_track_and_per_zone():
    a = StreamAnalytics(
        [Zone("short", SQUARE.points, dwell_alert_s=1.0), Zone("none", SQUARE.points)], []
    )
    step(a, 0.0, {1: (15, 15)})
    step(a, 1.0, {1: (15, 15), 2: (12, 12)})  # track 2 arrives a second later
    assert step(a, 1.5, {1: (15, 15), 2: (12, 12)}) == [
        Event("dwell", "short", 1, 0, 1.5, dwell_s=1.5)
    ]
    assert step(a, 2.5, {1: (15, 15), 2: (12, 12)}) == [
        Event("dwell", "short", 2, 0, 2.5, dwell_s=1.5)
    ]
    with pytest.raises(GeometryError, match="dwell_alert_s must be > 0"):
        Zone("bad", SQUARE.points, dwell_alert_s=0)


def test_unconfirmed_tracks_are_ignored():
    a = StreamAnalytics([SQUARE], [GATE])
    assert step(a, 0.0, {-1: (15, 15)}) == []
    assert a.occupancy().tolist() == [0]


def test_a_bow_tie_polygon_is_refused():
    with pytest.raises(GeometryError, match="'bow'.*self-intersecting"):
        Zone("bow", [[0, 0], [10, 10], [10, 0], [0, 10]])
    with pytest.raises(ValueError, match="at least 3 points, got 2"):
        Zone("thin", [[0, 0], [10, 10]])
    with pytest.raises(ValueError, match="'dot'.*same point"):
        Line("dot", [5, 5], [5, 5])
    Zone("concave", [[0, 0], [10, 0], [10, 10], [5, 3], [0, 10]])  # not self-intersecting


def test_a_concave_zone_uses_even_odd_membership():
    a = StreamAnalytics([Zone("v", [[0, 0], [10, 0], [10, 10], [5, 3], [0, 10]])], [])
    # 1 is in the notch between the arms, 2 in the left arm, 3 in the body
    assert step(a, 0.0, {1: (5, 8), 2: (1, 8), 3: (5, 1)}) == [
        Event("enter", "v", 2, 0, 0.0),
        Event("enter", "v", 3, 0, 0.0),
    ]


def test_a_point_on_a_zone_edge_is_inside():
    """Boxes are clipped to the frame: one cut by the frame's bottom has its feet on y = h, and
    a zone drawn to the frame's edge must hold it (bikes.mp4: the man whose box always ends at
    y = 272 was never inside a zone ending there; tests/test_hand_count.py)."""
    frame = Zone("frame", [[0, 0], [640, 0], [640, 272], [0, 272]])
    a = StreamAnalytics([frame, SQUARE], [])
    on = {1: (320, 272), 2: (640, 100), 3: (0, 0), 4: (15, 10), 5: (20, 20)}
    assert sorted((e.track_id, e.name) for e in step(a, 0.0, on)) == [
        (1, "frame"), (2, "frame"), (3, "frame"), (4, "frame"), (4, "square"),
        (5, "frame"), (5, "square"),
    ]  # fmt: skip
    off = {1: (320, 272.01), 2: (640.01, 100), 3: (-0.01, 0), 4: (15, 9.99), 5: (20.01, 20)}
    events = step(a, 1.0, off)
    assert sorted((e.kind, e.track_id, e.name) for e in events) == [
        ("exit", 1, "frame"), ("exit", 2, "frame"), ("exit", 3, "frame"), ("exit", 4, "square"),
        ("exit", 5, "square"),
    ]  # fmt: skip


def test_one_crossing_counts_once_with_its_direction():
    a = StreamAnalytics([], [GATE])
    events = []
    for t, x in enumerate([60, 55, 45, 40]):  # right to left of the screen: onto x < 50
        events += step(a, float(t), {1: (x, 50)})
    assert events == [Event("cross", "gate", 1, 0, 2.0, "in")]


def test_passing_beyond_the_end_of_the_line_is_no_crossing():
    a = StreamAnalytics([], [GATE])
    assert step(a, 0.0, {1: (60, 150)}) + step(a, 1.0, {1: (40, 150)}) == []


def test_a_track_jittering_across_the_line_counts_once_per_direction():
    a = StreamAnalytics([], [GATE])
    xs = [52, 48, 50, 52, 48, 52, 48]  # 5 crossings (50 is on the line and changes nothing)
    events = []
    for t, x in enumerate(xs):
        events += step(a, float(t), {4: (x, 50)})
    assert crossings(events) == [(4, "in"), (4, "out")]


def test_two_tracks_crossing_opposite_ways_count_one_each_direction():
    a = StreamAnalytics([], [GATE])
    events = []
    for t, (x1, x2) in enumerate([(30, 70), (45, 55), (55, 45), (70, 30)]):
        events += step(a, float(t), {1: (x1, 50), 2: (x2, 50)})
    assert sorted(crossings(events)) == [(1, "out"), (2, "in")]


def _random_walks(n: int, frames: int, seed: int = 0) -> np.ndarray:
    """``(frames, n, 2)`` feet points wandering over two zones and two lines."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 100, size=(1, n, 2))
    return start + np.cumsum(rng.normal(0, 4, size=(frames, n, 2)), axis=0)


def test_many_tracks_in_one_call_match_the_same_tracks_one_by_one():
    zones = [SQUARE, Zone("tri", [[40, 40], [90, 45], [60, 95]], dwell_alert_s=1.0)]
    lines = [GATE, Line("diag", [0, 0], [100, 80])]
    walks = _random_walks(500, 20)
    present = np.random.default_rng(1).random((20, 500)) > 0.1  # some frames missed
    together = StreamAnalytics(zones, lines, forget_after_s=1.0)
    alone = [StreamAnalytics(zones, lines, forget_after_s=1.0) for _ in range(500)]
    got, want = [], []
    for f in range(20):
        t = f * 0.25
        on = np.nonzero(present[f])[0]
        boxes = np.array([feet_box(*walks[f, k]) for k in range(500)])
        got += together.update(t, on + 1, boxes[on], on % 3)
        for k in range(500):
            if present[f, k]:
                want += alone[k].update(t, np.array([k + 1]), boxes[k : k + 1], np.array([k % 3]))
            else:
                want += alone[k].update(t, np.zeros(0), np.zeros((0, 4)), np.zeros(0))
    key = lambda e: (e.pts_s, e.track_id, e.kind, e.name, e.direction or "")  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    kinds = {e.kind for e in got}
    assert kinds == {"enter", "exit", "dwell", "cross"}, kinds  # the walk exercises every path
    assert together.occupancy().tolist() == list(np.sum([s.occupancy() for s in alone], axis=0))


def test_class_filters_count_only_their_classes():
    people = Zone("people", SQUARE.points, class_ids=(0,))
    cars_gate = Line("cars", [50, 0], [50, 100], class_ids=(2, 7))
    a = StreamAnalytics([people, SQUARE], [cars_gate, GATE])
    boxes = np.array([feet_box(15, 15), feet_box(16, 16), feet_box(60, 50), feet_box(61, 50)])
    ids, cls = np.array([1, 2, 3, 4]), np.array([0, 2, 2, 99])  # 99: a class no filter names
    events = a.update(0.0, ids, boxes, cls)
    assert [(e.kind, e.name, e.track_id) for e in events] == [
        ("enter", "people", 1),
        ("enter", "square", 1),
        ("enter", "square", 2),  # the car: in the unfiltered square only
    ]
    assert a.occupancy().tolist() == [1, 2]
    boxes[2:, 0] -= 20  # tracks 3 (a car) and 4 (class 99) cross both lines leftwards
    boxes[2:, 2] -= 20
    assert sorted((e.name, e.track_id) for e in a.update(1.0, ids, boxes, cls)) == [
        ("cars", 3),
        ("gate", 3),
        ("gate", 4),
    ]
    with pytest.raises(GeometryError, match="class_ids must be a non-empty tuple"):
        Zone("none", SQUARE.points, class_ids=())


def test_streams_in_one_call_keep_their_own_tracks_zones_and_resets():
    multi = MultiStreamAnalytics()
    multi.set_stream("a", [SQUARE], [])
    multi.set_stream("b", [], [GATE], forget_after_s=0.5)
    box = np.array([feet_box(15, 15)])
    one, zero = np.array([1]), np.array([0])
    # The same track id in two streams is two objects: a enters its square, b has no zone.
    assert multi.update(["a", "b"], [0.0, 0.0], [one, one], [box, box], [zero, zero]) == [
        [Event("enter", "square", 1, 0, 0.0)],
        [],
    ]
    multi.reset("b")  # b only: a's track is still inside
    assert multi.occupancy("a").tolist() == [1]
    assert multi.update(["a"], [1.0], [one], [box], [zero]) == [[]]
    multi.set_stream("a", [SQUARE, Zone("big", [[0, 0], [90, 0], [90, 90], [0, 90]])], [])
    assert multi.occupancy("a").tolist() == [0, 0]  # new zones: afresh
    assert multi.update(["a"], [2.0], [one], [box], [zero]) == [
        [Event("enter", "square", 1, 0, 2.0), Event("enter", "big", 1, 0, 2.0)]
    ]
    multi.remove_stream("b")
    assert multi.stream_ids() == ["a"] and multi.occupancy("a").tolist() == [1, 1]
    with pytest.raises(ProcessorError, match="stream 'b' has no zones or lines set"):
        multi.update(["b"], [3.0], [one], [box], [zero])
    with pytest.raises(ProcessorError, match="a stream appears twice"):
        multi.update(["a", "a"], [3.0, 3.0], [one, one], [box, box], [zero, zero])
    with pytest.raises(ProcessorError, match="appears twice in one frame of stream 'a'"):
        multi.update(["a"], [3.0], [np.array([1, 1])], [np.vstack([box, box])], [[0, 0]])
    with pytest.raises(ProcessorError, match="stream 'a': 1 track ids, boxes \\(2, 4\\)"):
        multi.update(["a"], [3.0], [one], [np.vstack([box, box])], [zero])


def _stream_geometry(rng: np.random.Generator, k: int) -> tuple[list[Zone], list[Line], float]:
    """Stream k's zones and lines: 0-3 random convex zones, 0-2 lines, filters and alerts."""
    zones, lines = [], []
    for j in range(rng.integers(0, 4)):
        cx, cy = rng.uniform(20, 80, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
        radius = rng.uniform(10, 40)
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        alert = float(rng.choice([0.5, 1.5])) if rng.random() < 0.5 else None
        classes = (int(rng.integers(0, 3)),) if rng.random() < 0.3 else None
        zones.append(Zone(f"z{k}.{j}", points, alert, classes))
    for j in range(rng.integers(0, 3)):
        a, b = rng.uniform(0, 100, 2), rng.uniform(0, 100, 2)
        classes = (0, 1) if rng.random() < 0.3 else None
        lines.append(Line(f"l{k}.{j}", a, b, classes))
    if not zones and not lines:
        lines.append(Line(f"l{k}", [50, 0], [50, 100]))
    return zones, lines, float(rng.choice([0.5, 1.0]))


def test_many_streams_in_one_call_match_the_reference_stream_by_stream():
    """40 streams, each its own zones (convex, concave-free random polygons), lines, class
    filters, dwell alerts and forget time, 25 tracks each on random walks; each call carries
    a random subset of the streams (frames missed, as under load), some streams reset or are
    set anew midway. Every stream's events and occupancy equal the reference's, one object
    per stream."""
    rng = np.random.default_rng(7)
    streams = 40
    multi = MultiStreamAnalytics()
    reference = {}
    for k in range(streams):
        zones, lines, forget = _stream_geometry(rng, k)
        multi.set_stream(f"s{k}", zones, lines, forget)
        reference[f"s{k}"] = ReferenceAnalytics(zones, lines, forget_after_s=forget)
    walks = _random_walks(streams * 25, 40, seed=3).reshape(40, streams, 25, 2)
    seen = {"enter": 0, "exit": 0, "dwell": 0, "cross": 0}
    for f in range(40):
        if f == 20:  # a loop and a reload midway
            multi.reset("s3")
            reference["s3"] = ReferenceAnalytics(*multi_args(multi, "s3"))
            zones, lines, forget = _stream_geometry(rng, 99)
            multi.set_stream("s5", zones, lines, forget)
            reference["s5"] = ReferenceAnalytics(zones, lines, forget_after_s=forget)
        call = [k for k in range(streams) if rng.random() < 0.8]
        args = ([], [], [], [], [])
        for k in call:
            present = np.flatnonzero(rng.random(25) < 0.85)
            ids = present + 1
            ids[rng.random(len(ids)) < 0.1] = -1  # unconfirmed boxes
            boxes = np.array([feet_box(*walks[f, k, t]) for t in present]).reshape(-1, 4)
            for arg, value in zip(args, (f"s{k}", f * 0.25 + k * 0.01, ids, boxes, present % 3)):
                arg.append(value)
        got = multi.update(*args)
        for sid, pts, ids, boxes, cls, events in zip(*args, got):
            assert events == reference[sid].update(pts, ids, boxes, cls), (f, sid)
            for event in events:
                seen[event.kind] += 1
        for sid in reference:
            assert multi.occupancy(sid).tolist() == reference[sid].occupancy().tolist(), sid
    assert all(count > 5 for count in seen.values()), seen  # every path was exercised


def multi_args(multi: MultiStreamAnalytics, sid: str):
    """The zones, lines and forget time a stream was set with (for its reference)."""
    return list(multi.zones(sid)), list(multi.lines(sid)), multi._layout.forget_s[multi._slots[sid]]
